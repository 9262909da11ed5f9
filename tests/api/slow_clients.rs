//! Clients that connect and send nothing, half a request, or a declared body that never comes:
//! they are cut off in time, they cannot hold the body budget, and normal webhooks are answered
//! meanwhile.

use std::time::{Duration, Instant};

use herald::github::sign_sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    AppBuilder, DEADLINE, Process, SECRET, TestApp, opened_issue, quiet_herald_command, wait_until,
};

fn host(app_address: &str) -> String {
    app_address.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes the connection; returns what it sent. Fails after [`DEADLINE`].
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {DEADLINE:?}"
    );
    String::from_utf8_lossy(&received).into_owned()
}

/// A request that declares a full-size body with a signature header, then sends nothing. With
/// `Expect: 100-continue`, the server's "100 Continue" tells when the handler started reading.
async fn bodiless(address: &str, index: usize) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: {address}\r\nContent-Length: 26214400\r\n\
         X-Hub-Signature-256: sha256=00\r\nX-GitHub-Event: issues\r\n\
         X-GitHub-Delivery: bodiless-{index}\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn wait_for_continue(stream: &mut TcpStream) {
    let mut received = [0_u8; 64];
    let read = tokio::time::timeout(DEADLINE, stream.read(&mut received)).await;
    let count = read.expect("the handler started reading the body").unwrap();
    let text = String::from_utf8_lossy(&received[..count]);
    assert!(text.starts_with("HTTP/1.1 100 Continue"), "{text}");
}

/// Whether the server has sent nothing more on `stream` (no answer yet, not closed).
async fn still_waiting(stream: &mut TcpStream) -> bool {
    let mut received = [0_u8; 64];
    tokio::time::timeout(Duration::from_millis(50), stream.read(&mut received))
        .await
        .is_err()
}

#[tokio::test]
async fn bodiless_requests_cannot_hold_the_body_budget() {
    // The issue's attack: eleven 25 MiB declarations against the default 256 MiB budget, with a
    // body timeout long enough that they all stay open for the whole test.
    let app = AppBuilder::new()
        .arg("--body-timeout", "120s")
        .spawn()
        .await;
    let address = host(&app.address);
    let mut attackers = Vec::new();
    for index in 0..11 {
        attackers.push(bodiless(&address, index).await);
    }
    // Every handler is reading (ten of them used to reserve the whole budget by declaration).
    for attacker in &mut attackers {
        wait_for_continue(attacker).await;
    }
    for round in 0..5 {
        let started = Instant::now();
        let response = app
            .client
            .post(format!("{}/webhook", app.address))
            .timeout(Duration::from_secs(10)) // GitHub's own limit
            .header("x-github-event", "issues")
            .header("x-github-delivery", format!("legit-{round}"))
            .header(
                "x-hub-signature-256",
                sign_sha256(SECRET, &opened_issue(round)),
            )
            .body(opened_issue(round))
            .send()
            .await
            .expect("a normal webhook is answered while bodiless requests are open");
        assert_eq!(response.status(), 202);
        eprintln!(
            "webhook {round} answered in {:?} under the attack",
            started.elapsed()
        );
    }
    for attacker in &mut attackers {
        assert!(
            still_waiting(attacker).await,
            "the attack was still in place"
        );
    }
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_its_room_given_back() {
    let app = AppBuilder::new()
        .arg("--body-timeout", "1s")
        .arg("--body-budget-mib", "0")
        .spawn()
        .await;
    let address = host(&app.address);
    // Half a body that then stops: the budget holds what arrived, until the timeout.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let body = opened_issue(1);
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\
         X-Hub-Signature-256: {}\r\nX-GitHub-Event: issues\r\nX-GitHub-Delivery: stall\r\n\r\n",
        body.len(),
        sign_sha256(SECRET, &body)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("the body stopped arriving"), "{answer}");
    // The smallest budget is whole again: a full-size (if invalid) body is read and refused.
    let at_limit = vec![b' '; herald::http::MAX_BODY_BYTES];
    assert_eq!(app.send("issues", "edge", &at_limit).await.status(), 400);
}

async fn assert_closed_by_server(app: &TestApp, first_bytes: &[u8]) {
    let mut stream = TcpStream::connect(host(&app.address)).await.unwrap();
    stream.write_all(first_bytes).await.unwrap();
    let received = read_until_closed(&mut stream).await;
    // hyper may answer a header timeout with 408 before closing; it never answers 2xx.
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "{received}"
    );
}

#[tokio::test]
async fn idle_half_sent_and_kept_alive_connections_are_closed() {
    let app = AppBuilder::new()
        .arg("--header-timeout", "1s")
        .spawn()
        .await;
    // Connected, nothing sent.
    assert_closed_by_server(&app, b"").await;
    // Half the headers.
    assert_closed_by_server(&app, b"POST /webhook HTTP/1.1\r\nHost: herald\r\n").await;
    // One request answered, then idle on a kept-alive connection.
    let mut stream = TcpStream::connect(host(&app.address)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
}

#[tokio::test]
async fn more_idle_connections_than_open_files_do_not_stop_the_server() {
    // A real process with a small open-file limit, as the issue's 1,024 with 1,100 connections.
    let mut command = quiet_herald_command();
    let dir = tempfile::tempdir().unwrap();
    command
        .current_dir(dir.path())
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_HEADER_TIMEOUT", "1s")
        .env("HERALD_MAX_CONNECTIONS", "100");
    let herald = command.get_program().to_owned();
    let mut limited = std::process::Command::new("sh");
    limited
        .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\""])
        .arg(herald)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    let process = Process::serve(limited).await;
    let address = host(&process.address);
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let client = reqwest::Client::new();
    wait_until(
        "/healthz answers with 300 idle connections open",
        || async {
            client
                .get(format!("{}/healthz", process.address))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let body = opened_issue(7);
    assert_eq!(
        process.send_issue(&client, "after-idle".into(), body).await,
        202
    );
    drop(idle);
}
