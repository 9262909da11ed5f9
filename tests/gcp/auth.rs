//! Google access tokens: from a service-account key (the JWT verified by the fake with the key's
//! public half) and from the metadata server; reused until shortly before expiry, refreshed once
//! for concurrent callers, and failures explained.

use std::sync::Arc;
use std::time::Duration;

use herald::config::GoogleConfig;
use herald::gcp::{AuthError, GoogleAuth};

use crate::fake_google::{FakeGoogle, TestKey, TokenReply};

fn key_config(path: std::path::PathBuf) -> GoogleConfig {
    GoogleConfig {
        google_application_credentials: Some(path),
        gce_metadata_host: "127.0.0.1:9".into(),
    }
}

fn metadata_config(host: String) -> GoogleConfig {
    GoogleConfig {
        google_application_credentials: None,
        gce_metadata_host: host,
    }
}

#[tokio::test]
async fn a_service_account_key_is_exchanged_for_a_token_that_is_reused() {
    crate::common::install_crypto();
    let google = FakeGoogle::start().await;
    let key = TestKey::generate();
    google.trust(&key);
    let auth = GoogleAuth::from_config(&key_config(key.key_file(&google.token_uri()))).unwrap();
    assert_eq!(
        auth.describe(),
        "service account herald-test@p1.iam.gserviceaccount.com"
    );
    let first = auth.token().await.unwrap();
    let second = auth.token().await.unwrap();
    assert_eq!(first.bearer(), "Bearer ya29.test-token-1");
    assert_eq!(second.bearer(), first.bearer(), "reused while fresh");
    // The fake verified the signature and the claims before answering.
    let requests = google.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["aud"], google.token_uri());
    assert!(
        !format!("{first:?}").contains("test-token"),
        "Debug hides it"
    );
}

#[tokio::test]
async fn a_token_close_to_expiry_is_replaced_and_a_refused_one_forgotten() {
    crate::common::install_crypto();
    let google = FakeGoogle::start().await;
    let key = TestKey::generate();
    google.trust(&key);
    // 60 s left is inside the refresh margin: the next caller gets a new token.
    google.script_tokens(vec![TokenReply::Token { expires_in: 60 }]);
    let auth = GoogleAuth::from_config(&key_config(key.key_file(&google.token_uri()))).unwrap();
    let first = auth.token().await.unwrap();
    let second = auth.token().await.unwrap();
    assert_eq!(first.bearer(), "Bearer ya29.test-token-1");
    assert_eq!(second.bearer(), "Bearer ya29.test-token-2");
    assert_eq!(auth.token().await.unwrap().bearer(), second.bearer());
    // An API refused it (401): the next call asks again.
    auth.invalidate().await;
    assert_eq!(
        auth.token().await.unwrap().bearer(),
        "Bearer ya29.test-token-3"
    );
    assert_eq!(google.token_requests().len(), 3);
}

#[tokio::test]
async fn concurrent_callers_wait_for_one_refresh() {
    crate::common::install_crypto();
    let google = FakeGoogle::start().await;
    google.script_tokens(vec![TokenReply::Slow(Duration::from_millis(300))]);
    let auth = GoogleAuth::from_config(&metadata_config(google.metadata_host())).unwrap();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let auth = Arc::clone(&auth);
        callers.spawn(async move { auth.token().await.unwrap().bearer() });
    }
    let tokens = callers.join_all().await;
    assert!(
        tokens
            .iter()
            .all(|token| token == "Bearer ya29.test-token-1"),
        "{tokens:?}"
    );
    assert_eq!(google.token_requests().len(), 1);
}

#[tokio::test]
async fn the_metadata_server_gives_tokens_on_google_cloud() {
    crate::common::install_crypto();
    let google = FakeGoogle::start().await;
    let auth = GoogleAuth::from_config(&metadata_config(google.metadata_host())).unwrap();
    assert_eq!(
        auth.token().await.unwrap().bearer(),
        "Bearer ya29.test-token-1"
    );
    // The fake answers 403 without `Metadata-Flavor: Google`, so the header was sent.
    assert_eq!(google.token_requests(), vec![serde_json::json!("metadata")]);
}

#[tokio::test]
async fn failures_say_what_to_do() {
    crate::common::install_crypto();
    let google = FakeGoogle::start().await;
    // A key Google does not know: the signature does not verify.
    let key = TestKey::generate();
    google.trust(&TestKey::generate());
    let auth = GoogleAuth::from_config(&key_config(key.key_file(&google.token_uri()))).unwrap();
    let error = auth.token().await.unwrap_err();
    assert!(
        matches!(error, AuthError::Refused { status: 400, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("invalid_grant: Invalid JWT Signature.")
            && message.contains("create a new key"),
        "{message}"
    );
    // Off Google Cloud, without a key: nothing answers at the metadata address.
    let port = crate::common::free_port();
    let auth = GoogleAuth::from_config(&metadata_config(format!("127.0.0.1:{port}"))).unwrap();
    let message = auth.token().await.unwrap_err().to_string();
    assert!(
        message.starts_with("no Google credentials")
            && message.contains("set GOOGLE_APPLICATION_CREDENTIALS"),
        "{message}"
    );
    // A broken key file is refused when read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    std::fs::write(&path, r#"{"type":"authorized_user"}"#).unwrap();
    let message = GoogleAuth::from_config(&key_config(path))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("herald takes a service-account key"),
        "{message}"
    );
    // The endpoint down is an outage, not a refusal.
    google.script_tokens(vec![TokenReply::Status(503, "backend_error")]);
    google.trust(&key);
    let auth = GoogleAuth::from_config(&key_config(key.key_file(&google.token_uri()))).unwrap();
    let error = auth.token().await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}
