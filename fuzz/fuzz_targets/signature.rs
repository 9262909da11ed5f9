//! Signature verification: never panics on any header bytes; a signature verifies exactly the
//! body it signed, and one changed byte does not.
#![no_main]

use herald::github::{SignatureVerifier, WebhookSecrets, sign_sha256};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (header, body) = rest.split_at((split as usize).min(rest.len()));
    let verifier =
        SignatureVerifier::new(WebhookSecrets::parse("fuzz-secret,other").unwrap(), true);
    assert!(
        verifier.verify(body, Some(header), Some(header)).is_err()
            || header == sign_sha256("fuzz-secret", body).as_bytes()
            || header == sign_sha256("other", body).as_bytes()
    );
    let signature = sign_sha256("other", body);
    assert!(
        verifier
            .verify(body, Some(signature.as_bytes()), None)
            .is_ok()
    );
    if let Some((first, tail)) = body.split_first() {
        let mut changed = vec![first ^ 0x01];
        changed.extend_from_slice(tail);
        assert!(
            verifier
                .verify(&changed, Some(signature.as_bytes()), None)
                .is_err()
        );
    }
});
