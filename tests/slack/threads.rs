//! Threads that follow an issue: the parent card kept current, replies, restarts, two
//! instances on PostgreSQL, a comment before its parent, a label added later, coalescing.

use serde_json::{Value, json};

use crate::databases;
use crate::fake_slack::{Answer, FakeSlackApi, Message};
use crate::harness::{Setup, comment, issue_event, opened};
use crate::helpers::{FakeSlack, wait_until};

pub const THREADS: &str = r#"
[[routes]]
name = "triage"
events = ["issues", "issue_comment", "pull_request"]
to = ["triage"]
thread = true
also_send_to_channel = true
mention = "<!subteam^S0123>"
"#;

fn block_text(message: &Message) -> String {
    message.blocks.to_string()
}

#[tokio::test]
async fn a_thread_follows_an_issue_and_its_parent_stays_current() {
    let slack = FakeSlackApi::start().await;
    let herald = Setup::new().bot(&slack, THREADS).spawn().await;
    assert_eq!(
        herald.send("issues", "d-1", &opened(1, &["bug"])).await,
        202
    );
    let parent = slack.wait_for_messages(1).await.remove(0);
    assert_eq!(parent.role(), "parent");
    assert!(parent.thread_ts.is_none());
    assert!(parent.text.starts_with("<!subteam^S0123> Issue in Codertocat/Hello-World: #1 Spelling error in the README file (Open"), "{}", parent.text);
    assert_eq!(
        parent.metadata,
        json!({"event_type": "herald_delivery", "event_payload": {
            "delivery_id": "d-1", "destination": "triage", "row": parent.metadata["event_payload"]["row"],
            "role": "parent", "repository": "codertocat/hello-world", "number": 1}})
    );
    assert!(block_text(&parent).contains(":large_green_circle: *Open*"));

    assert_eq!(
        herald
            .send("issue_comment", "d-2", &comment(1, "hubot", "On it"))
            .await,
        202
    );
    let replies = wait_for_replies(&slack, &parent.ts, 1).await;
    assert!(
        replies[0]
            .text
            .starts_with("New comment in Codertocat/Hello-World: #1"),
        "{}",
        replies[0].text
    );
    assert!(!replies[0].text.contains("subteam"), "replies do not ping");
    assert!(block_text(&replies[0]).contains(">On it"));

    let mut labeled = issue_event("labeled", 1, &["bug", "P0"], "2019-05-15T16:00:00Z");
    labeled["label"] = json!({"name": "P0"});
    herald.send("issues", "d-3", &labeled).await;
    let replies = wait_for_replies(&slack, &parent.ts, 2).await;
    assert!(
        replies[1].text.starts_with("Label P0 added in"),
        "{}",
        replies[1].text
    );
    slack.wait_for_calls("chat.update", 1).await;
    let current = slack.message(&parent.ts).unwrap();
    assert!(
        block_text(&current).contains("labels: `bug`, `P0`"),
        "{}",
        block_text(&current)
    );
    assert!(
        current.text.starts_with("<!subteam^S0123> "),
        "the mention stays"
    );

    let mut assigned = issue_event("assigned", 1, &["bug", "P0"], "2019-05-15T16:05:00Z");
    assigned["assignee"] = json!({"login": "octocat", "html_url": "https://github.com/octocat"});
    assigned["issue"]["assignees"] = json!([{"login": "Codertocat"}, {"login": "octocat"}]);
    herald.send("issues", "d-4", &assigned).await;
    let replies = wait_for_replies(&slack, &parent.ts, 3).await;
    assert!(
        block_text(&replies[2]).contains("*Assigned to* <https://github.com/octocat|octocat>"),
        "{}",
        block_text(&replies[2])
    );
    slack.wait_for_calls("chat.update", 2).await;

    let mut closed = issue_event("closed", 1, &["bug", "P0"], "2019-05-16T09:00:00Z");
    closed["issue"]["state"] = json!("closed");
    closed["issue"]["state_reason"] = json!("completed");
    closed["issue"]["closed_at"] = json!("2019-05-16T09:00:00Z");
    closed["issue"]["assignees"] = json!([{"login": "Codertocat"}, {"login": "octocat"}]);
    herald.send("issues", "d-5", &closed).await;
    let replies = wait_for_replies(&slack, &parent.ts, 4).await;
    assert!(replies[3].broadcast, "a close is also sent to the channel");
    assert!(
        replies[3].text.starts_with("Issue closed as completed in"),
        "{}",
        replies[3].text
    );
    slack.wait_for_calls("chat.update", 3).await;
    let current = slack.message(&parent.ts).unwrap();
    assert!(block_text(&current).contains(":white_check_mark: *Closed as completed*"));
    assert!(block_text(&current).contains("assigned to Codertocat, octocat"));

    // An older snapshot arriving late never rolls the parent back.
    let stale = issue_event("edited", 1, &["bug"], "2019-05-15T15:30:00Z");
    herald.send("issues", "d-6", &stale).await;
    wait_for_replies(&slack, &parent.ts, 5).await;
    let states = herald.settled("triage", 6).await;
    assert!(
        states.iter().all(|(status, _)| status == "delivered"),
        "{states:?}"
    );
    assert_eq!(slack.calls("chat.update").len(), 3);
    assert!(block_text(&slack.message(&parent.ts).unwrap()).contains("Closed as completed"));
    assert_eq!(slack.parents().len(), 1);
    slack.assert_no_problems();
}

pub async fn wait_for_replies(slack: &FakeSlackApi, parent: &str, count: usize) -> Vec<Message> {
    wait_until(&format!("{count} replies in the thread"), || async {
        slack.replies(parent).len() >= count
    })
    .await;
    slack.replies(parent)
}

#[tokio::test]
async fn threads_survive_a_restart() {
    let slack = FakeSlackApi::start().await;
    let setup = Setup::new().bot(&slack, THREADS);
    let dir = std::sync::Arc::clone(&setup.dir);
    let url = setup.database_url();
    let first = setup.spawn().await;
    first.send("issues", "r-1", &opened(7, &["bug"])).await;
    let parent = slack.wait_for_messages(1).await.remove(0);
    first.settled("triage", 1).await;
    first.stop().await.unwrap();

    let second = Setup::on(&url, dir).bot(&slack, THREADS).spawn().await;
    second
        .send("issue_comment", "r-2", &comment(7, "hubot", "Still there?"))
        .await;
    let replies = wait_for_replies(&slack, &parent.ts, 1).await;
    assert_eq!(replies[0].thread_ts.as_deref(), Some(parent.ts.as_str()));
    second.settled("triage", 2).await;
    assert_eq!(
        slack.parents().len(),
        1,
        "no second parent after the restart"
    );
    slack.assert_no_problems();
}

#[tokio::test]
async fn a_comment_claimed_before_its_parent_waits_for_it() {
    // The issue's first attempt fails and waits 4 s; the comment comes meanwhile.
    let slack = FakeSlackApi::with_script(vec![Answer::Status(500)]).await;
    let herald = Setup::new()
        .args(&["--retry-schedule", "4s,4s"])
        .bot(&slack, THREADS)
        .spawn()
        .await;
    herald.send("issues", "c-1", &opened(3, &[])).await;
    slack.wait_for_calls("chat.postMessage", 1).await;
    herald
        .send("issue_comment", "c-2", &comment(3, "hubot", "first!"))
        .await;
    let states = herald.settled("triage", 2).await;
    assert!(
        states.iter().all(|(status, _)| status == "delivered"),
        "{states:?}"
    );
    let parents = slack.parents();
    assert_eq!(parents.len(), 1);
    assert_eq!(
        parents[0].metadata["event_payload"]["delivery_id"], "c-1",
        "the issue is the parent"
    );
    let replies = slack.replies(&parents[0].ts);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].metadata["event_payload"]["delivery_id"], "c-2");
    // The comment waited (deferred) rather than starting a thread of its own.
    let store = herald.store().await;
    let rows = store.list_deliveries(None, 100).await.unwrap();
    let comment_row = rows
        .iter()
        .find(|r| r.destination == "triage" && r.delivery_id == "c-2")
        .unwrap();
    let history = store.attempts(comment_row.id).await.unwrap();
    assert!(
        history.iter().any(|a| a.outcome == "deferred"),
        "{history:?}"
    );
    assert_eq!(
        comment_row.attempts, 1,
        "waiting used no step of the schedule"
    );
    slack.assert_no_problems();
}

const LATE: &str = r#"
[[routes]]
events = ["issues.opened"]
labels_any = ["bug"]
to = ["triage"]
mention = "<@U0ONCALL>"
"#;

pub fn labeled(number: i64, labels: &[&str], added: &str, at: &str) -> Value {
    let mut body = issue_event("labeled", number, labels, at);
    body["label"] = json!({ "name": added });
    body
}

#[tokio::test]
async fn a_label_added_later_announces_the_issue_once() {
    let slack = FakeSlackApi::start().await;
    let herald = Setup::new().bot(&slack, LATE).spawn().await;
    herald.send("issues", "l-1", &opened(9, &[])).await;
    herald.settled("analytics", 1).await;
    herald
        .send(
            "issues",
            "l-2",
            &labeled(9, &["bug"], "bug", "2019-05-15T16:00:00Z"),
        )
        .await;
    let parent = slack.wait_for_messages(1).await.remove(0);
    assert!(parent.text.starts_with("<@U0ONCALL> "), "{}", parent.text);
    assert!(block_text(&parent).contains("labels: `bug`"));
    // Unlabeled, then labeled again: the issue was announced already.
    let mut unlabeled = issue_event("unlabeled", 9, &[], "2019-05-15T16:01:00Z");
    unlabeled["label"] = json!({"name": "bug"});
    herald.send("issues", "l-3", &unlabeled).await;
    herald
        .send(
            "issues",
            "l-4",
            &labeled(9, &["bug"], "bug", "2019-05-15T16:02:00Z"),
        )
        .await;
    let states = herald.settled("triage", 2).await;
    assert_eq!(
        states.len(),
        2,
        "opened and unlabeled do not match the route"
    );
    assert!(states.iter().all(|(status, _)| status == "delivered"));
    herald.settled("analytics", 4).await;
    assert_eq!(slack.messages().len(), 1, "announced once");
    slack.assert_no_problems();
}

#[tokio::test]
async fn a_label_added_later_announces_once_through_a_webhook_too() {
    let slack = FakeSlack::start().await;
    let file = format!(
        "[destinations.issues]\nkind = \"slack-webhook\"\nurl = \"{}\"\nmax_per_second = 0\n\n{}",
        slack.url(),
        LATE.replace("\"triage\"", "\"issues\"")
    );
    let herald = Setup::new().file(file).spawn().await;
    herald.send("issues", "w-1", &opened(4, &[])).await;
    herald
        .send(
            "issues",
            "w-2",
            &labeled(4, &["bug"], "bug", "2019-05-15T16:00:00Z"),
        )
        .await;
    herald
        .send(
            "issues",
            "w-3",
            &labeled(4, &["bug", "ui"], "bug", "2019-05-15T16:02:00Z"),
        )
        .await;
    let states = herald.settled("issues", 2).await;
    assert!(
        states.iter().all(|(status, _)| status == "delivered"),
        "{states:?}"
    );
    let requests = slack.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let text = requests[0].json["text"].as_str().unwrap();
    assert!(
        text.starts_with("<@U0ONCALL> Issue now labeled bug in Codertocat/Hello-World: #4"),
        "{text}"
    );
}

#[tokio::test]
async fn a_burst_about_one_issue_becomes_one_message_and_one_parent_update() {
    let slack = FakeSlackApi::start().await;
    // Wide enough for four requests on a loaded machine; the test waits it out once.
    let routes = format!("{THREADS}coalesce = \"5s\"\n");
    let herald = Setup::new().bot(&slack, &routes).spawn().await;
    herald.send("issues", "b-1", &opened(31, &[])).await;
    herald
        .send(
            "issues",
            "b-2",
            &labeled(31, &["bug"], "bug", "2019-05-15T15:20:20Z"),
        )
        .await;
    herald
        .send(
            "issues",
            "b-3",
            &labeled(31, &["bug", "P0"], "P0", "2019-05-15T15:20:21Z"),
        )
        .await;
    herald
        .send(
            "issues",
            "b-4",
            &labeled(31, &["bug", "P0", "ui"], "ui", "2019-05-15T15:20:22Z"),
        )
        .await;
    let states = herald.settled("triage", 4).await;
    assert!(
        states.iter().all(|(status, _)| status == "delivered"),
        "{states:?}"
    );
    let messages = slack.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let parent = &messages[0];
    let text = block_text(parent);
    assert!(
        text.contains("labels: `bug`, `P0`, `ui`"),
        "the newest state: {text}"
    );
    assert!(text.contains("also: label bug added by"), "{text}");
    assert!(slack.calls("chat.update").len() <= 1);
    // Later events are not held back by the burst: a comment after the window replies at once.
    herald
        .send("issue_comment", "b-5", &comment(31, "hubot", "on it"))
        .await;
    herald.settled("triage", 5).await;
    assert_eq!(slack.replies(&parent.ts).len(), 1);
    slack.assert_no_problems();
}

#[tokio::test]
async fn two_instances_on_postgresql_agree_on_one_parent_per_issue() {
    const ISSUES: i64 = 12;
    let Some(db) = databases::postgres().await else {
        return;
    };
    let slack = FakeSlackApi::start().await;
    let first = Setup::on(&db.url, std::sync::Arc::new(tempfile::tempdir().unwrap()))
        .bot(&slack, THREADS)
        .spawn()
        .await;
    let second = Setup::on(&db.url, std::sync::Arc::new(tempfile::tempdir().unwrap()))
        .bot(&slack, THREADS)
        .spawn()
        .await;
    let sends = (0..ISSUES).map(|n| {
        let (first, second) = (&first, &second);
        async move {
            let issue = opened(100 + n, &["bug"]);
            let remark = comment(100 + n, "hubot", "seen");
            let (issue_id, comment_id) = (format!("p-{n}"), format!("q-{n}"));
            // The comment goes to the other instance, at the same moment.
            let (a, b) = tokio::join!(
                first.send("issues", &issue_id, &issue),
                second.send("issue_comment", &comment_id, &remark)
            );
            assert_eq!((a, b), (202, 202));
        }
    });
    futures_util::future::join_all(sends).await;
    let states = first.settled("triage", (ISSUES * 2) as usize).await;
    assert!(
        states.iter().all(|(status, _)| status == "delivered"),
        "{states:?}"
    );
    let parents = slack.parents();
    assert_eq!(parents.len(), ISSUES as usize, "one parent per issue");
    // Whichever came first, the thread is the issue's card with the comment under it.
    for parent in &parents {
        let replies = slack.replies(&parent.ts);
        let number = &parent.metadata["event_payload"]["number"];
        assert_eq!(replies.len(), 1, "issue {number}: {replies:?}");
        assert!(
            replies[0].metadata["event_payload"]["delivery_id"]
                .as_str()
                .unwrap()
                .starts_with('q')
        );
    }
    assert_eq!(
        slack.messages().len(),
        (ISSUES * 2) as usize,
        "nothing doubled, nothing lost"
    );
    slack.assert_no_problems();
}
