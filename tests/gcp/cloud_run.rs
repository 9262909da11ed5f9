//! Cloud Run: serve refuses a SQLite store on the container's memory disk unless told it may
//! lose it; Cloud SQL's Unix-socket URL works (shown on this machine's PostgreSQL socket); logs
//! carry the trace of `traceparent` as well as of `X-Cloud-Trace-Context`.

use std::process::Stdio;

use crate::common::{Process, SECRET, herald_command, quiet_herald_command, wait_until};

#[test]
fn serve_refuses_sqlite_on_cloud_run_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald_command()
        .arg("serve")
        .current_dir(dir.path())
        .env("K_SERVICE", "herald")
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("refusing to keep the store in SQLite on Cloud Run")
            && stderr.contains("Use Cloud SQL for PostgreSQL")
            && stderr.contains("HERALD_ALLOW_EPHEMERAL_STORE=true"),
        "{stderr}"
    );
    assert!(!dir.path().join("herald.db").exists(), "nothing created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_store_can_be_accepted_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = quiet_herald_command();
    command
        .current_dir(dir.path())
        .env("K_SERVICE", "herald")
        .env("HERALD_ALLOW_EPHEMERAL_STORE", "true")
        .env("HERALD_WEBHOOK_SECRET", SECRET);
    let server = Process::serve(command).await;
    let status = server
        .send_issue(
            &reqwest::Client::new(),
            "d-1".into(),
            crate::common::opened_issue(1),
        )
        .await;
    assert_eq!(status, 202);
}

/// The directory of this machine's PostgreSQL socket, if there is one.
fn socket_directory() -> Option<&'static str> {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|dir| std::path::Path::new(dir).join(".s.PGSQL.5432").exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_sql_is_reached_through_its_unix_socket_url() {
    let Some(database) = crate::databases::postgres().await else {
        return;
    };
    let Some(socket) = socket_directory() else {
        assert!(
            std::env::var("HERALD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "PostgreSQL answers on TCP but has no Unix socket here"
        );
        eprintln!("NOTICE: no PostgreSQL Unix socket here; skipping the Cloud SQL socket test");
        return;
    };
    // Cloud SQL's form: no host in the authority, the socket's directory as `host`.
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let url = format!("postgres://postgres@/{name}?host={socket}");
    let dir = tempfile::tempdir().unwrap();
    let mut command = quiet_herald_command();
    command
        .current_dir(dir.path())
        .env("HERALD_DATABASE_URL", &url)
        .env("HERALD_WEBHOOK_SECRET", SECRET);
    let server = Process::serve(command).await;
    let status = server
        .send_issue(
            &reqwest::Client::new(),
            "socket-1".into(),
            crate::common::opened_issue(9),
        )
        .await;
    assert_eq!(status, 202);
    let store = database.connect().await;
    wait_until("the event is in the database behind the socket", || async {
        store.count_events().await.unwrap() == 1
    })
    .await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_the_trace_of_a_traceparent_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = herald_command();
    command
        .current_dir(dir.path())
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_LOG_FORMAT", "json")
        .env("GOOGLE_CLOUD_PROJECT", "proj")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Process::serve(command).await;
    let body = crate::common::opened_issue(3);
    let response = reqwest::Client::new()
        .post(format!("{}/webhook", server.address))
        .header("x-github-event", "issues")
        .header("x-github-delivery", "traced")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header(
            "x-hub-signature-256",
            herald::github::sign_sha256(SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    server.terminate();
    server.child.wait().unwrap();
    let mut logs = String::new();
    std::io::Read::read_to_string(server.child.stderr.as_mut().unwrap(), &mut logs).unwrap();
    let stored = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|entry| entry["message"] == "event stored")
        .unwrap_or_else(|| panic!("an 'event stored' entry in {logs}"));
    assert_eq!(
        stored["logging.googleapis.com/trace"],
        "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    );
}
