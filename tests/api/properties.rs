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
