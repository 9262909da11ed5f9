//! Delivery to a fake Slack: the exact request, escaping, retries, dead letters, restarts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{AppBuilder, FakeSlack, Reply, delivery_states, payload, wait_until};

fn issue_with(number: i64, title: &str, body: &str) -> Vec<u8> {
    let mut issue: Value = serde_json::from_slice(&payload("issues/opened.payload.json")).unwrap();
    issue["issue"]["number"] = json!(number);
    issue["issue"]["title"] = json!(title);
    issue["issue"]["body"] = json!(body);
    serde_json::to_vec(&issue).unwrap()
}

async fn wait_for_status(
    app: &crate::helpers::TestApp,
    status: &str,
    count: usize,
) -> Vec<(String, i64, Option<String>)> {
    let store = app.store().await;
    wait_until(&format!("{count} deliveries are {status}"), || async {
        delivery_states(&store)
            .await
            .iter()
            .filter(|(s, _, _)| s == status)
            .count()
            >= count
    })
    .await;
    delivery_states(&store).await
}

#[tokio::test]
async fn slack_receives_the_exact_message_for_an_opened_issue() {
    let slack = FakeSlack::start().await;
    let app = AppBuilder::new().slack(&slack).spawn().await;
    assert_eq!(
        app.send("issues", "o-1", &payload("issues/opened.payload.json"))
            .await
            .status(),
        202
    );
    let requests = slack.wait_for_requests(1).await;
    assert_eq!(requests[0].path, "/services/T000/B000/XXXX");
    assert_eq!(slack.requests_to("T000/B000/XXXX"), 1);
    assert_eq!(requests[0].content_type, "application/json");
    assert_eq!(
        requests[0].json,
        json!({
            "text": "New issue in Codertocat/Hello-World: #1 Spelling error in the README file (by Codertocat)",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text":
                    "*New issue*\n*<https://github.com/Codertocat/Hello-World/issues/1|#1 Spelling error in the README file>*"}},
                {"type": "section", "text": {"type": "mrkdwn", "text":
                    ">It looks like you accidently spelled 'commit' with two 't's."}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text":
                    "<https://github.com/Codertocat/Hello-World|Codertocat/Hello-World> · issue by <https://github.com/Codertocat|Codertocat> · labels: `bug` · <!date^1557933618^{date_short_pretty} at {time}|2019-05-15 15:20 UTC>"}]}
            ],
            "unfurl_links": false,
            "unfurl_media": false
        })
    );
    let states = wait_for_status(&app, "delivered", 1).await;
    assert_eq!(states, vec![("delivered".to_owned(), 1, None)]);
}

#[tokio::test]
async fn user_text_cannot_ping_channels_or_forge_links() {
    let slack = FakeSlack::start().await;
    let app = AppBuilder::new().slack(&slack).spawn().await;
    let body = issue_with(
        7,
        "<!channel> <https://evil.example|click here> & win",
        "Hi <!here> <@U024BE7LH> <https://evil.example|login>",
    );
    assert_eq!(app.send("issues", "evil", &body).await.status(), 202);
    let message = slack.wait_for_requests(1).await[0].json.to_string();
    for raw in [
        "<!channel>",
        "<!here>",
        "<@U024BE7LH>",
        "<https://evil.example",
    ] {
        assert!(
            !message.contains(raw),
            "{raw} reached Slack unescaped: {message}"
        );
    }
    assert!(
        message.contains("&lt;!channel&gt; &lt;https://evil.example|click here&gt; &amp; win"),
        "{message}"
    );
    assert!(
        message.contains("Hi &lt;!here&gt; &lt;@U024BE7LH&gt;"),
        "{message}"
    );
}

#[tokio::test]
async fn only_configured_events_notify() {
    let slack = FakeSlack::start().await;
    let app = AppBuilder::new().slack(&slack).spawn().await;
    assert_eq!(
        app.send("issues", "c-1", &payload("issues/labeled.payload.json"))
            .await
            .status(),
        202
    );
    assert_eq!(
        app.send(
            "issue_comment",
            "c-2",
            &payload("issue_comment/created.payload.json")
        )
        .await
        .status(),
        202
    );
    assert_eq!(
        app.send("issues", "c-3", &payload("issues/opened.payload.json"))
            .await
            .status(),
        202
    );
    wait_for_status(&app, "delivered", 1).await;
    // One outbox row in all: the labeled issue and the comment were stored but notify nobody.
    assert_eq!(delivery_states(&app.store().await).await.len(), 1);
    assert_eq!(slack.requests().len(), 1);

    let chatty = AppBuilder::new()
        .slack(&slack)
        .arg("--notify-events", "issues,issue_comment.created")
        .spawn()
        .await;
    chatty
        .send("issues", "c-1", &payload("issues/labeled.payload.json"))
        .await;
    chatty
        .send(
            "issue_comment",
            "c-2",
            &payload("issue_comment/created.payload.json"),
        )
        .await;
    let requests = slack.wait_for_requests(3).await;
    let texts: Vec<&str> = requests[1..]
        .iter()
        .map(|r| r.json["text"].as_str().unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Label bug added in Codertocat/Hello-World: #1")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("New comment in Codertocat/Hello-World: #1")),
        "{texts:?}"
    );
}

#[tokio::test]
async fn server_errors_and_refused_connections_are_retried_until_delivered() {
    let slack = FakeSlack::with_script(vec![Reply::Status(500), Reply::Status(503)]).await;
    let app = AppBuilder::new()
        .slack(&slack)
        .args(&["--retry-schedule", "0s,0s,0s,0s"])
        .spawn()
        .await;
    app.send("issues", "flaky", &payload("issues/opened.payload.json"))
        .await;
    let states = wait_for_status(&app, "delivered", 1).await;
    assert_eq!(states, vec![("delivered".to_owned(), 3, None)]);
    let requests = slack.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests.windows(2).all(|pair| pair[0].json == pair[1].json),
        "every attempt sends the same message"
    );
    let store = app.store().await;
    let row = store.list_deliveries(None, 10).await.unwrap();
    let slack_row = row.iter().find(|r| r.destination == "slack").unwrap();
    let history: Vec<String> = store
        .attempts(slack_row.id)
        .await
        .unwrap()
        .into_iter()
        .map(|attempt| format!("{} {}", attempt.outcome, attempt.error.unwrap_or_default()))
        .collect();
    assert_eq!(
        history,
        vec![
            "retry HTTP 500 Internal Server Error: invalid_payload",
            "retry HTTP 503 Service Unavailable: invalid_payload"
        ]
    );
}

/// Slack answers after the timeout: each message may or may not be posted. herald's rule for
/// incoming webhooks is at most once: such a message is dead-lettered as "may have received it"
/// and never sent again by itself, so a slow Slack cannot multiply messages.
#[tokio::test]
async fn a_timed_out_slack_request_is_never_repeated() {
    let slow = Reply::Slow(Duration::from_millis(1_500));
    let slack = FakeSlack::with_script(vec![slow.clone(), slow]).await;
    let app = AppBuilder::new()
        .slack(&slack)
        .args(&["--retry-schedule", "0s,0s,0s", "--slack-timeout", "300ms"])
        .spawn()
        .await;
    for (delivery, number) in [("slow-1", 1), ("slow-2", 2)] {
        app.send("issues", delivery, &issue_with(number, "t", "b"))
            .await;
    }
    let states = wait_for_status(&app, "dead", 2).await;
    assert_eq!(states.len(), 2);
    for (_, attempts, error) in &states {
        assert_eq!(*attempts, 1);
        let error = error.as_deref().unwrap();
        assert!(
            error.starts_with("timed out after the request was sent"),
            "{error}"
        );
        assert!(error.contains("may have received it"), "{error}");
    }
    assert_eq!(
        slack.requests().len(),
        2,
        "two events, two requests: a timeout never causes a second"
    );
}

/// A 429 pauses the whole destination for its `Retry-After` and uses no step of the retry schedule
/// (here a single retry, which two rate limits in a row would otherwise exhaust).
#[tokio::test]
async fn retry_after_pauses_the_destination_without_using_the_schedule() {
    let limited = Reply::RetryAfter(429, 1);
    let slack = FakeSlack::with_script(vec![limited.clone(), limited]).await;
    let app = AppBuilder::new()
        .slack(&slack)
        .args(&["--retry-schedule", "0s", "--delivery-concurrency", "1"])
        .spawn()
        .await;
    for number in 1..=4 {
        app.send(
            "issues",
            &format!("limited-{number}"),
            &issue_with(number, "t", "b"),
        )
        .await;
    }
    let states = wait_for_status(&app, "delivered", 4).await;
    assert_eq!(
        states,
        vec![("delivered".to_owned(), 1, None); 4],
        "a rate limit uses no step of the retry schedule"
    );
    // Two 429s, then each message once: nothing else was sent while the destination was paused.
    let numbers: Vec<String> = slack
        .requests()
        .iter()
        .map(|request| request.json["text"].as_str().unwrap().to_owned())
        .map(|text| {
            text.split('#')
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(numbers, ["1", "1", "1", "2", "3", "4"]);
    let requests = slack.requests();
    for pair in requests[..3].windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(900),
            "the destination was paused for its Retry-After (1 s)"
        );
    }
    let store = app.store().await;
    let first = store
        .list_deliveries(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.destination == "slack")
        .min_by_key(|row| row.id)
        .unwrap();
    let history: Vec<String> = store
        .attempts(first.id)
        .await
        .unwrap()
        .into_iter()
        .map(|attempt| attempt.outcome)
        .collect();
    assert_eq!(history, ["rate_limited", "rate_limited"]);
}

#[tokio::test]
async fn client_errors_are_dead_lettered_without_retrying() {
    let slack = FakeSlack::with_script(vec![Reply::Status(400)]).await;
    let app = AppBuilder::new()
        .slack(&slack)
        .arg("--retry-schedule", "0s,0s,0s")
        .spawn()
        .await;
    app.send("issues", "rejected", &payload("issues/opened.payload.json"))
        .await;
    let states = wait_for_status(&app, "dead", 1).await;
    assert_eq!(states.len(), 1);
    let (_, attempts, error) = &states[0];
    assert_eq!(*attempts, 1);
    assert!(error.as_deref().unwrap().contains("400"), "{error:?}");
    assert_eq!(slack.requests().len(), 1);
}

#[tokio::test]
async fn dead_letter_after_the_schedule_then_retry_on_demand() {
    let slack = FakeSlack::with_script(vec![
        Reply::Status(500),
        Reply::Status(502),
        Reply::Status(500),
    ])
    .await;
    let app = AppBuilder::new()
        .slack(&slack)
        .arg("--retry-schedule", "0s,0s")
        .spawn()
        .await;
    app.send("issues", "doomed", &payload("issues/opened.payload.json"))
        .await;
    let states = wait_for_status(&app, "dead", 1).await;
    let (_, attempts, error) = &states[0];
    assert_eq!(*attempts, 3, "one try plus two retries");
    assert!(
        error
            .as_deref()
            .unwrap()
            .starts_with("gave up after 3 attempts"),
        "{error:?}"
    );
    assert_eq!(slack.requests().len(), 3);

    // `herald deliveries retry` does this; Slack now answers 200.
    let store = app.store().await;
    assert_eq!(
        store
            .retry_dead(None, herald::time_util::now_ms())
            .await
            .unwrap(),
        1
    );
    let states = wait_for_status(&app, "delivered", 1).await;
    assert_eq!(states[0].1, 1, "a revived delivery starts a fresh schedule");
    assert_eq!(slack.requests().len(), 4);
}

#[tokio::test]
async fn pending_work_is_delivered_once_after_a_restart() {
    let slack = FakeSlack::start().await;
    // Slack allows a burst of 5 and then one message per 1000 s: the rest stays pending.
    let first = AppBuilder::new()
        .slack(&slack)
        .arg("--slack-max-per-second", "0.001")
        .spawn()
        .await;
    for number in 1..=8 {
        let status = first
            .send(
                "issues",
                &format!("restart-{number}"),
                &issue_with(number, &format!("issue {number}"), "b"),
            )
            .await
            .status();
        assert_eq!(status, 202);
    }
    slack.wait_for_requests(5).await;
    let dir = first.dir.clone();
    first.stop().await.unwrap();
    assert_eq!(
        slack.requests().len(),
        5,
        "nothing more was sent while shutting down"
    );

    let second = AppBuilder::in_dir(dir).slack(&slack).spawn().await;
    wait_for_status(&second, "delivered", 8).await;
    assert_eq!(
        crate::helpers::notified_numbers(&slack),
        (1..=8).collect::<Vec<_>>(),
        "each issue notified exactly once"
    );
}

#[tokio::test]
async fn without_slack_notifications_go_to_stdout_and_count_as_delivered() {
    let app = AppBuilder::new().spawn().await;
    app.send("issues", "console", &payload("issues/opened.payload.json"))
        .await;
    let states = wait_for_status(&app, "delivered", 1).await;
    assert_eq!(states, vec![("delivered".to_owned(), 1, None)]);
}

/// Slack unreachable (connection refused) for a while, then back: every notification arrives,
/// each exactly once, and none is dead-lettered while the schedule lasts.
#[tokio::test]
async fn slack_down_then_up_delivers_everything_once() {
    let port = crate::helpers::free_port();
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/XXXX");
    let app = AppBuilder::new()
        .arg("--slack-webhook-url", &url)
        .args(&[
            "--retry-schedule",
            "50ms,100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s,1s,1s",
        ])
        .spawn()
        .await;
    for number in 1..=5 {
        app.send(
            "issues",
            &format!("down-{number}"),
            &issue_with(number, "t", "b"),
        )
        .await;
    }
    let store = app.store().await;
    wait_until("every notification failed at least twice", || async {
        let states = delivery_states(&store).await;
        states.len() == 5
            && states
                .iter()
                .all(|(status, attempts, _)| status == "pending" && *attempts >= 2)
    })
    .await;
    let slack = FakeSlack::on(&format!("127.0.0.1:{port}"), Vec::new()).await;
    let states = wait_for_status(&app, "delivered", 5).await;
    assert!(
        states.iter().all(|(status, _, _)| status == "delivered"),
        "{states:?}"
    );
    assert_eq!(
        crate::helpers::notified_numbers(&slack),
        vec![1, 2, 3, 4, 5],
        "each exactly once"
    );
}
