//! The webhook secret from Secret Manager: read at start through `versions/latest:access` with
//! the shared token, re-read every refresh interval; a rotation takes effect without a restart
//! while the previous value verifies for the grace period; failed refreshes keep the secret;
//! start-up failures stop serve with what to do.

use herald::github::sign_sha256;

use crate::common::{AppBuilder, TestApp, wait_until};
use crate::fake_google::FakeGoogle;

const SECRET: &str = "projects/p1/secrets/github-webhook";

fn builder(google: &FakeGoogle, refresh: &str, grace: &str) -> AppBuilder {
    AppBuilder::new().without("--webhook-secret").args(&[
        "--webhook-secret-gcp",
        SECRET,
        "--secret-manager-api-url",
        &google.address,
        "--gce-metadata-host",
        &google.metadata_host(),
        "--webhook-secret-refresh",
        refresh,
        "--webhook-secret-grace",
        grace,
        "--notify-events",
        "",
    ])
}

/// POSTs a `ping`-like event signed with `secret`; returns the status.
async fn send_signed(app: &TestApp, secret: &str) -> u16 {
    let body = br#"{"zen":"Design for failure.","hook_id":1}"#;
    app.post("/webhook")
        .header("x-github-event", "star")
        .header("x-github-delivery", uuid())
        .header("x-github-hook-id", "1")
        .header("x-hub-signature-256", sign_sha256(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn uuid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_takes_effect_without_a_restart_and_the_old_value_keeps_verifying() {
    let google = FakeGoogle::start().await;
    google.add_secret_version(SECRET, "first-s3cret\n");
    let app = builder(&google, "100ms", "1h").spawn().await;
    assert_eq!(send_signed(&app, "first-s3cret").await, 202);
    assert_eq!(send_signed(&app, "a-guess").await, 401);

    google.add_secret_version(SECRET, "second-s3cret");
    wait_until("the new version verifies", || async {
        send_signed(&app, "second-s3cret").await == 202
    })
    .await;
    assert_eq!(
        send_signed(&app, "first-s3cret").await,
        202,
        "still in its grace period"
    );

    // Every read is the documented request, with the one token herald asked for.
    let reads = google.requests_to("/secrets/");
    assert!(reads.len() >= 2);
    for read in &reads {
        assert_eq!(
            read.path,
            "/v1/projects/p1/secrets/github-webhook/versions/latest:access"
        );
        assert_eq!(read.authorization, "Bearer ya29.test-token-1");
    }
    assert_eq!(google.token_requests().len(), 1, "the token is reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_value_stops_verifying_when_its_grace_ends() {
    let google = FakeGoogle::start().await;
    google.add_secret_version(SECRET, "first-s3cret");
    let app = builder(&google, "100ms", "300ms").spawn().await;
    assert_eq!(send_signed(&app, "first-s3cret").await, 202);
    google.add_secret_version(SECRET, "second-s3cret");
    wait_until("the old value is refused", || async {
        send_signed(&app, "first-s3cret").await == 401
    })
    .await;
    assert_eq!(send_signed(&app, "second-s3cret").await, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_during_a_rotations_grace_accepts_the_previous_value() {
    use std::time::Duration;
    let google = FakeGoogle::start().await;
    google.add_secret_version_aged(SECRET, "first-s3cret", Duration::from_secs(7200));
    google.add_secret_version_aged(SECRET, "second-s3cret", Duration::from_secs(600));
    let app = builder(&google, "5m", "1h").spawn().await;
    assert_eq!(send_signed(&app, "second-s3cret").await, 202);
    assert_eq!(
        send_signed(&app, "first-s3cret").await,
        202,
        "replaced 10 minutes ago"
    );
    assert!(
        google
            .requests_to("/secrets/")
            .iter()
            .any(|read| read.path == "/v1/projects/p1/secrets/github-webhook/versions/2"),
        "the current version's creation time was read"
    );
    // Replaced longer ago than the grace period: only the current value.
    let app = builder(&google, "5m", "5m").spawn().await;
    assert_eq!(send_signed(&app, "second-s3cret").await, 202);
    assert_eq!(send_signed(&app, "first-s3cret").await, 401);
    // Without the permission to read a version's metadata, only the current value; serve runs.
    google.deny_metadata(true);
    let app = builder(&google, "5m", "1h").spawn().await;
    assert_eq!(send_signed(&app, "first-s3cret").await, 401);
    google.deny_metadata(false);
    // A pinned version is the only one.
    let app = builder(&google, "5m", "1h")
        .arg(
            "--webhook-secret-gcp",
            "projects/p1/secrets/github-webhook/versions/2",
        )
        .spawn()
        .await;
    assert_eq!(send_signed(&app, "second-s3cret").await, 202);
    assert_eq!(send_signed(&app, "first-s3cret").await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_signs_with_the_first_of_the_secrets_in_secret_manager() {
    let google = FakeGoogle::start().await;
    google.add_secret_version(SECRET, "first-s3cret,older-s3cret\n");
    let app = builder(&google, "5m", "1h").spawn().await;
    assert_eq!(send_signed(&app, "older-s3cret").await, 202, "both verify");
    let host = google.metadata_host();
    let url = format!("{}/webhook", app.address);
    let sent = crate::helpers::run_herald(
        &["send-test", "--url", &url, "--delivery", "from-send-test"],
        &[
            ("HERALD_WEBHOOK_SECRET_GCP", SECRET),
            ("HERALD_SECRET_MANAGER_API_URL", &google.address),
            ("GCE_METADATA_HOST", &host),
        ],
    )
    .await;
    assert!(sent.success, "{sent:?}");
    assert!(sent.stdout.contains("-> HTTP 202"), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_refreshes_keep_the_secret_in_use() {
    let google = FakeGoogle::start().await;
    google.add_secret_version(SECRET, "first-s3cret");
    let app = builder(&google, "100ms", "1h").spawn().await;
    let before = google.requests_to("/secrets/").len();
    google.fail_secrets(Some((503, "backendError")));
    wait_until("two refreshes failed", || async {
        google.requests_to("/secrets/").len() >= before + 2
    })
    .await;
    assert_eq!(send_signed(&app, "first-s3cret").await, 202);
    let ready = app.get("/readyz").send().await.unwrap().status();
    assert_eq!(
        ready, 200,
        "a failed refresh does not make the instance unready"
    );
    google.fail_secrets(Some((403, "PERMISSION_DENIED")));
    let before = google.requests_to("/secrets/").len();
    wait_until("a refused refresh", || async {
        google.requests_to("/secrets/").len() > before
    })
    .await;
    assert_eq!(send_signed(&app, "first-s3cret").await, 202);
}

/// Runs serve's start-up with `builder`; it must fail. Returns the error's text.
pub async fn start_up_error(builder: AppBuilder) -> String {
    crate::common::install_crypto();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let result = tokio::time::timeout(
        crate::common::DEADLINE,
        herald::startup::serve(builder.config(), listener, shutdown.clone()),
    )
    .await
    .expect("start-up ends");
    shutdown.cancel();
    format!("{:#}", result.expect_err("start-up must fail"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_failures_are_fatal_and_say_what_to_do() {
    let google = FakeGoogle::start().await;
    // No such secret.
    let message = start_up_error(builder(&google, "5m", "1h")).await;
    assert!(
        message
            .contains("Secret Manager has no projects/p1/secrets/github-webhook/versions/latest")
            && message.contains("gcloud secrets create github-webhook"),
        "{message}"
    );
    // No permission.
    google.add_secret_version(SECRET, "s");
    google.fail_secrets(Some((
        403,
        "Permission 'secretmanager.versions.access' denied",
    )));
    let message = start_up_error(builder(&google, "5m", "1h")).await;
    assert!(
        message.contains("may not read projects/p1/secrets/github-webhook/versions/latest")
            && message.contains("roles/secretmanager.secretAccessor")
            && message.contains("secretmanager.versions.access"),
        "{message}"
    );
    google.fail_secrets(None);
    // No credentials: no key file, and no metadata server answers.
    let port = crate::common::free_port();
    let message = start_up_error(
        builder(&google, "5m", "1h").arg("--gce-metadata-host", &format!("127.0.0.1:{port}")),
    )
    .await;
    assert!(
        message.contains("no Google credentials")
            && message.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{message}"
    );
    // Not a secret name; and two sources at once.
    let message =
        start_up_error(builder(&google, "5m", "1h").arg("--webhook-secret-gcp", "github-webhook"))
            .await;
    assert!(
        message
            .contains("HERALD_WEBHOOK_SECRET_GCP: \"github-webhook\" is not a Secret Manager name"),
        "{message}"
    );
    let message = start_up_error(builder(&google, "5m", "1h").arg("--webhook-secret", "x")).await;
    assert!(
        message.contains("keep one source of webhook secrets"),
        "{message}"
    );
}
