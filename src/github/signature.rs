//! Verifying `X-Hub-Signature-256` (and, when allowed, the legacy SHA-1 `X-Hub-Signature`) over
//! the raw body, in constant time, against every configured secret.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use sha1::Sha1;
use sha2::Sha256;

use super::WebhookSecrets;

/// Why a request is not authorized. All of them answer 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature")]
    Missing,
    #[error("malformed signature")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

impl SignatureError {
    /// A short label for the rejection counter.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Malformed => "signature_malformed",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

/// Checks signatures against all current secrets. The secrets can be replaced while requests
/// are being verified (a rotation read from Secret Manager): each verification reads one
/// consistent set without taking a lock. Clones share the secrets.
#[derive(Debug, Clone)]
pub struct SignatureVerifier {
    secrets: Arc<ArcSwap<WebhookSecrets>>,
    allow_sha1: bool,
}

impl SignatureVerifier {
    pub fn new(secrets: WebhookSecrets, allow_sha1: bool) -> Self {
        Self {
            secrets: Arc::new(ArcSwap::from_pointee(secrets)),
            allow_sha1,
        }
    }

    /// Verifies with `secrets` from now on.
    pub fn replace_secrets(&self, secrets: WebhookSecrets) {
        self.secrets.store(Arc::new(secrets));
    }

    /// The secrets in use now.
    pub fn secrets(&self) -> Arc<WebhookSecrets> {
        self.secrets.load_full()
    }

    /// Whether a request with these signature headers could verify at all. Lets the handler
    /// answer 401 before reading (up to 25 MiB of) an unsigned body.
    pub fn has_signature(&self, sha256_present: bool, sha1_present: bool) -> bool {
        sha256_present || (self.allow_sha1 && sha1_present)
    }

    /// Verifies `body` given the values of `X-Hub-Signature-256` and `X-Hub-Signature`.
    ///
    /// When the SHA-256 header is present it alone decides; SHA-1 is consulted only when it is
    /// absent and SHA-1 is allowed, so a forged SHA-1 cannot override a wrong SHA-256.
    pub fn verify(
        &self,
        body: &[u8],
        sha256_header: Option<&[u8]>,
        sha1_header: Option<&[u8]>,
    ) -> Result<(), SignatureError> {
        if let Some(header) = sha256_header {
            let expected = decode(header, b"sha256=")?;
            return self.matches_any::<Hmac<Sha256>>(body, &expected);
        }
        match sha1_header {
            Some(header) if self.allow_sha1 => {
                let expected = decode(header, b"sha1=")?;
                self.matches_any::<Hmac<Sha1>>(body, &expected)
            }
            _ => Err(SignatureError::Missing),
        }
    }

    fn matches_any<M: Mac + KeyInit>(
        &self,
        body: &[u8],
        expected: &[u8],
    ) -> Result<(), SignatureError> {
        // Every secret is tried, so the time taken does not reveal which one matched.
        let mut matched = false;
        let secrets = self.secrets.load();
        for secret in secrets.iter() {
            let mut mac = <M as KeyInit>::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(body);
            matched |= mac.verify_slice(expected).is_ok();
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

fn decode(header: &[u8], prefix: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let digest = header
        .strip_prefix(prefix)
        .ok_or(SignatureError::Malformed)?;
    hex::decode(digest).map_err(|_| SignatureError::Malformed)
}

/// The `X-Hub-Signature-256` value GitHub would send for `body` signed with `secret`.
pub fn sign_sha256(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secrets: &str, allow_sha1: bool) -> SignatureVerifier {
        SignatureVerifier::new(WebhookSecrets::parse(secrets).unwrap(), allow_sha1)
    }

    fn sha1(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    }

    // GitHub's documented test vector (docs: "Validating webhook deliveries").
    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn verifies_githubs_documented_example() {
        assert_eq!(sign_sha256(GITHUB_SECRET, GITHUB_BODY), GITHUB_SIGNATURE);
        let result = verifier(GITHUB_SECRET, false).verify(
            GITHUB_BODY,
            Some(GITHUB_SIGNATURE.as_bytes()),
            None,
        );
        assert_eq!(result, Ok(()));
    }

    type Case<'a> = (
        &'a str,
        bool,
        Option<&'a str>,
        Option<&'a str>,
        Result<(), SignatureError>,
    );

    #[test]
    fn table_of_outcomes() {
        let body = b"{\"zen\":\"Keep it logically awesome.\"}";
        let good = sign_sha256("new", body);
        let old = sign_sha256("old", body);
        let other = sign_sha256("someone-else", body);
        let good_sha1 = sha1("new", body);
        let cases: &[Case] = &[
            ("new", false, Some(&good), None, Ok(())),
            ("old,new", false, Some(&good), None, Ok(())),
            ("old,new", false, Some(&old), None, Ok(())),
            (
                "new",
                false,
                Some(&old),
                None,
                Err(SignatureError::Mismatch),
            ),
            (
                "old,new",
                false,
                Some(&other),
                None,
                Err(SignatureError::Mismatch),
            ),
            ("new", false, None, None, Err(SignatureError::Missing)),
            (
                "new",
                false,
                Some("sha256=zz"),
                None,
                Err(SignatureError::Malformed),
            ),
            (
                "new",
                false,
                Some("md5=abcd"),
                None,
                Err(SignatureError::Malformed),
            ),
            ("new", false, Some(""), None, Err(SignatureError::Malformed)),
            (
                "new",
                false,
                None,
                Some(&good_sha1),
                Err(SignatureError::Missing),
            ),
            ("new", true, None, Some(&good_sha1), Ok(())),
            (
                "new",
                true,
                None,
                Some("sha1=00"),
                Err(SignatureError::Mismatch),
            ),
            // A present SHA-256 decides even when a valid SHA-1 comes along.
            (
                "new",
                true,
                Some(&other),
                Some(&good_sha1),
                Err(SignatureError::Mismatch),
            ),
        ];
        for (secrets, allow_sha1, sha256, sha1, expected) in cases {
            let actual = verifier(secrets, *allow_sha1).verify(
                body,
                sha256.map(str::as_bytes),
                sha1.map(str::as_bytes),
            );
            assert_eq!(
                actual, *expected,
                "secrets={secrets} sha256={sha256:?} sha1={sha1:?}"
            );
        }
    }

    #[test]
    fn replaced_secrets_take_effect_for_every_clone() {
        let body = b"{}";
        let verifier = verifier("old", false);
        let shared = verifier.clone();
        let new = sign_sha256("new", body);
        assert_eq!(
            shared.verify(body, Some(new.as_bytes()), None),
            Err(SignatureError::Mismatch)
        );
        verifier.replace_secrets(WebhookSecrets::parse("new").unwrap());
        assert_eq!(shared.verify(body, Some(new.as_bytes()), None), Ok(()));
        let old = sign_sha256("old", body);
        assert_eq!(
            shared.verify(body, Some(old.as_bytes()), None),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(shared.secrets().primary(), "new");
    }

    #[test]
    fn a_signature_of_another_body_does_not_verify() {
        let signature = sign_sha256("s", b"one");
        let result = verifier("s", false).verify(b"two", Some(signature.as_bytes()), None);
        assert_eq!(result, Err(SignatureError::Mismatch));
    }
}
