//! Property test: no request, however malformed, makes the webhook panic or answer a 5xx
//! other than 503, and nothing unsigned is ever stored.

use std::sync::OnceLock;

use herald::github::sign_sha256;
use proptest::prelude::*;

use crate::helpers::{AppBuilder, SECRET, TestApp};

struct Shared {
    runtime: tokio::runtime::Runtime,
    app: TestApp,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime.block_on(AppBuilder::new().spawn());
        Shared { runtime, app }
    })
}

#[derive(Debug, Clone)]
enum Signature {
    Absent,
    Valid,
    ValidForOtherBody,
    Garbage(String),
}

fn signature() -> impl Strategy<Value = Signature> {
    prop_oneof![
        Just(Signature::Absent),
        Just(Signature::Valid),
        Just(Signature::ValidForOtherBody),
        "[ -~]{0,80}".prop_map(Signature::Garbage),
        "[0-9a-f]{64}".prop_map(|hex| Signature::Garbage(format!("sha256={hex}"))),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        (any::<i64>(), "[ -~]{0,30}", "[ -~]{0,30}").prop_map(|(number, action, text)| {
            serde_json::json!({"action": action, "issue": {"number": number, "title": text}, "sender": {"login": text}})
                .to_string()
                .into_bytes()
        }),
        Just(br#"{"action": 5, "issue": {"number": "x"}, "repository": []}"#.to_vec()),
    ]
}

fn header_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[ -~]{0,300}".prop_map(Some),
        Just(Some("issues".to_owned())),
        Just(Some("ping".to_owned()))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_input_causes_a_5xx_other_than_503(
        body in body(),
        signature in signature(),
        event in header_value(),
        delivery in header_value(),
        content_type in prop_oneof![Just(None), Just(Some("application/json")), Just(Some("application/x-www-form-urlencoded"))],
    ) {
        let shared = shared();
        let status = shared.runtime.block_on(async {
            let mut request = shared.app.post("/webhook").body(body.clone());
            let signature = match &signature {
                Signature::Absent => None,
                Signature::Valid => Some(sign_sha256(SECRET, &body)),
                Signature::ValidForOtherBody => Some(sign_sha256(SECRET, b"other")),
                Signature::Garbage(text) => Some(text.clone()),
            };
            for (name, value) in [("x-hub-signature-256", signature), ("x-github-event", event.clone()),
                                  ("x-github-delivery", delivery.clone()), ("content-type", content_type.map(str::to_owned))] {
                if let Some(value) = value {
                    request = request.header(name, value);
                }
            }
            request.send().await.unwrap().status().as_u16()
        });
        prop_assert!(!(500..600).contains(&status) || status == 503, "answered {status}");
        if !matches!(signature, Signature::Valid) {
            prop_assert_eq!(status, 401);
        }
        if matches!(status, 200 | 202) {
            prop_assert!(matches!(signature, Signature::Valid));
        }
    }
}

/// Fuzzing with proptest, run by `cargo test`: signature verification, payload indexing and form
/// decoding are pure functions, so thousands of cases take a moment. The same properties are
/// cargo-fuzz targets in `fuzz/` for longer runs.
mod fuzz {
    use herald::github::{
        IndexedEvent, MAX_DEPTH, SignatureVerifier, WebhookSecrets, json_document, nesting_depth,
        sign_sha256,
    };
    use proptest::prelude::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    /// Cases per property: 2,048 in the suite, more with `HERALD_FUZZ_CASES` for a longer run.
    fn cases() -> u32 {
        std::env::var("HERALD_FUZZ_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(2048)
    }

    /// JSON-like text: valid documents of any depth around the limit, and near misses.
    fn json_like() -> impl Strategy<Value = Vec<u8>> {
        let leaf = prop_oneof![
            Just("1".to_owned()),
            Just("null".to_owned()),
            "\"[ -~]{0,12}\"",
            Just("\"\\u0000\"".to_owned()),
            Just("\"\\\"[{\"".to_owned()),
            Just("-1e400".to_owned()),
            Just("18446744073709551616".to_owned()),
        ];
        let nested = (leaf, 0..(MAX_DEPTH + 8), any::<bool>()).prop_map(|(leaf, depth, arrays)| {
            let (open, close) = if arrays { ("[", "]") } else { ("{\"k\":", "}") };
            format!("{}{leaf}{}", open.repeat(depth), close.repeat(depth))
        });
        prop_oneof![
            nested
                .clone()
                .prop_map(|inner| format!("{{\"action\":\"opened\",\"x\":{inner}}}").into_bytes()),
            nested.prop_map(String::into_bytes),
            proptest::collection::vec(
                prop_oneof![
                    Just(b'{'),
                    Just(b'}'),
                    Just(b'['),
                    Just(b']'),
                    Just(b'"'),
                    Just(b'\\'),
                    Just(b':'),
                    Just(b','),
                    Just(b'1'),
                    any::<u8>()
                ],
                0..300,
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn signatures_verify_exactly_the_signed_body(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            secret in "[!-+\\--~]{1,40}",
            other in "[!-+\\--~]{1,40}",
            flip in any::<usize>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let verifier = SignatureVerifier::new(WebhookSecrets::parse(&format!("{other},{secret}")).unwrap(), true);
            let signature = sign_sha256(&secret, &body);
            prop_assert!(verifier.verify(&body, Some(signature.as_bytes()), None).is_ok());
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[flip % body.len()] ^= 1 << (flip % 8);
                prop_assert!(verifier.verify(&changed, Some(signature.as_bytes()), None).is_err());
            }
            // Arbitrary header bytes never panic and never verify by accident.
            prop_assert!(verifier.verify(&body, Some(&garbage), Some(&garbage)).is_err() || garbage == signature.as_bytes());
        }

        #[test]
        fn what_intake_indexes_every_sink_can_parse(body in json_like()) {
            let depth = nesting_depth(&body);
            match IndexedEvent::parse(&body) {
                Ok((_, text)) => {
                    prop_assert!(depth <= MAX_DEPTH);
                    prop_assert!(serde_json::from_str::<serde_json::Value>(text).is_ok(), "accepted but unparsable");
                }
                Err(_) => {
                    // Refused only for a reason: not an object, not JSON, or too deep.
                    let parsed = std::str::from_utf8(&body).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
                    prop_assert!(!matches!(parsed, Some(serde_json::Value::Object(_))) || depth > MAX_DEPTH);
                }
            }
        }

        #[test]
        fn form_decoding_gives_back_the_payload(
            payload in "\\PC{0,200}",
            other in "[ -~]{0,20}",
            raw in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let form = form_urlencoded::Serializer::new(String::new())
                .append_pair("zen", &other)
                .append_pair("payload", &payload)
                .finish();
            prop_assert_eq!(json_document(FORM, form.into_bytes()).unwrap(), payload);
            // Any bytes at all: an answer, never a panic.
            let _ = json_document(FORM, raw.clone());
            let _ = json_document(Some("application/json"), raw);
        }
    }
}
