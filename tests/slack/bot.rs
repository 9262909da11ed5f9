//! `slack-bot` destinations end to end, beyond threads: exactly once after a timeout or a crash,
//! Slack's `ok: false` answers, the environment-only bot, refused configurations, templates, plain
//! messages, and the README's example, against the fake Slack Web API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_slack::{Answer, CHANNEL, FakeSlackApi, TOKEN};
use crate::harness::{Setup, comment, issue_event, opened, refused};
use crate::threads::THREADS;

#[tokio::test]
async fn a_timed_out_send_is_found_by_its_metadata_and_not_repeated() {
    let slack = FakeSlackApi::with_script(vec![Answer::PostThenHang]).await;
    let setup = Setup::new();
    let file = crate::harness::bot_file(&slack, setup.dir.path(), THREADS).replace(
        "max_per_second = 0",
        "max_per_second = 0\ntimeout = \"500ms\"",
    );
    let herald = setup.file(file).spawn().await;
    herald.send("issues", "t-1", &opened(11, &[])).await;
    let states = herald.settled("triage", 1).await;
    assert_eq!(states[0].0, "delivered", "{states:?}");
    assert_eq!(slack.messages().len(), 1, "not sent twice");
    assert_eq!(slack.calls("chat.postMessage").len(), 1);
    let lookups = slack.calls("conversations.history");
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].params["include_all_metadata"], "true");
    let store = herald.store().await;
    let row = &store
        .list_deliveries(None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.destination == "triage")
        .unwrap();
    let history = store.attempts(row.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, "ambiguous");
    // The thread works on: the comment goes under the parent found by its metadata.
    herald
        .send("issue_comment", "t-2", &comment(11, "hubot", "ok"))
        .await;
    herald.settled("triage", 2).await;
    assert_eq!(slack.replies(&slack.messages()[0].ts).len(), 1);
    slack.assert_no_problems();
}

#[tokio::test]
async fn a_crash_mid_request_is_checked_before_sending_again() {
    let slack = FakeSlackApi::with_script(vec![Answer::PostThenHang]).await;
    let setup = Setup::new()
        .args(&["--shutdown-grace", "300ms", "--slack-timeout", "10s"])
        .bot(&slack, THREADS);
    let (dir, url) = (std::sync::Arc::clone(&setup.dir), setup.database_url());
    let first = setup.spawn().await;
    first.send("issues", "k-1", &opened(12, &[])).await;
    slack.wait_for_messages(1).await;
    // Stopped with the request in flight: its outcome is never recorded.
    first.stop().await.unwrap();
    let second = Setup::on(&url, dir).bot(&slack, THREADS).spawn().await;
    let states = second.settled("triage", 1).await;
    assert_eq!(states[0].0, "delivered", "{states:?}");
    assert_eq!(slack.messages().len(), 1, "found, not sent again");
    assert_eq!(slack.calls("conversations.history").len(), 1);
    slack.assert_no_problems();
}

#[tokio::test]
async fn ok_false_answers_are_classified() {
    let slack = FakeSlackApi::with_script(vec![
        Answer::Refuse("not_in_channel"),
        Answer::Refuse("invalid_auth"),
        Answer::RateLimited(1),
        Answer::Refuse("internal_error"),
    ])
    .await;
    let routes = "[[routes]]\nevents = [\"issues.opened\"]\nto = [\"triage\"]\n";
    let herald = Setup::new()
        .args(&["--delivery-concurrency", "1"])
        .bot(&slack, routes)
        .spawn()
        .await;
    herald.send("issues", "o-1", &opened(21, &[])).await;
    herald.settled("triage", 1).await;
    herald.send("issues", "o-2", &opened(22, &[])).await;
    herald.settled("triage", 2).await;
    herald.send("issues", "o-3", &opened(23, &[])).await;
    let states = herald.settled("triage", 3).await;
    assert_eq!(states[0].0, "dead");
    let first = states[0].1.as_deref().unwrap();
    assert!(
        first.contains("not_in_channel") && first.contains("/invite"),
        "{first}"
    );
    assert_eq!(states[1].0, "dead");
    assert!(states[1].1.as_deref().unwrap().contains("invalid_auth"));
    // Rate limited (paused, no step used), then a passing error (a step), then delivered.
    assert_eq!(states[2].0, "delivered", "{states:?}");
    let store = herald.store().await;
    let row = store
        .list_deliveries(None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.delivery_id == "o-3" && r.destination == "triage")
        .unwrap();
    let outcomes: Vec<String> = store
        .attempts(row.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, vec!["rate_limited", "retry"]);
    assert_eq!(row.attempts, 2);
    assert_eq!(slack.messages().len(), 1);
}

#[tokio::test]
async fn the_environment_alone_makes_a_bot_destination() {
    let slack = FakeSlackApi::start().await;
    let herald = Setup::new()
        .args(&[
            "--slack-bot-token",
            TOKEN,
            "--slack-channel",
            CHANNEL,
            "--slack-api-url",
            &slack.url,
        ])
        .spawn()
        .await;
    herald.send("issues", "e-1", &opened(41, &[])).await;
    let states = herald.settled("slack", 1).await;
    assert_eq!(states[0].0, "delivered");
    let parent = slack.wait_for_messages(1).await.remove(0);
    assert_eq!(parent.role(), "parent");
    assert_eq!(parent.metadata["event_payload"]["destination"], "slack");
    slack.assert_no_problems();
}

#[tokio::test]
async fn bad_bot_settings_are_refused_with_the_key_and_the_next_step() {
    let slack = FakeSlackApi::start().await;
    let file = "[destinations.triage]\nkind = \"slack-bot\"\nchannel = \"#triage\"\ntoken = \"xoxb-1\"\n\n[[routes]]\nto = [\"triage\"]\nmention = \"@oncall\"\nremind_after = \"1d\"\nbusiness_hours = { zone = \"Europe/Berlin\", days = \"Mon-Fri\", hours = \"9-5\" }\n".to_owned();
    let error = refused(Setup::new().file(file)).await;
    assert!(
        error.contains("destinations.triage.channel: \"#triage\" is not a channel id"),
        "{error}"
    );
    assert!(
        error.contains("routes[0]: mention: \"@oncall\" is not a Slack mention"),
        "{error}"
    );
    assert!(error.contains("routes[0]: business_hours"), "{error}");
    let missing =
        "[destinations.triage]\nkind = \"slack-bot\"\n\n[[routes]]\nto = [\"triage\"]\n".to_owned();
    let error = refused(Setup::new().file(missing)).await;
    assert!(
        error.contains("destinations.triage.token: required for kind slack-bot"),
        "{error}"
    );
    assert!(
        error.contains("destinations.triage.channel: required"),
        "{error}"
    );
    let error =
        refused(Setup::new().args(&["--slack-bot-token", TOKEN, "--slack-api-url", &slack.url]))
            .await;
    assert!(
        error.contains("HERALD_SLACK_BOT_TOKEN is set without HERALD_SLACK_CHANNEL"),
        "{error}"
    );
    let error = refused(Setup::new().args(&[
        "--slack-bot-token",
        "xoxb-secret-value",
        "--slack-channel",
        "C1",
        "--slack-webhook-url",
        "https://hooks.slack.com/x",
    ]))
    .await;
    assert!(error.contains("choose one"), "{error}");
    assert!(!error.contains("xoxb-secret-value"), "no secret in errors");
    let webhook = "[destinations.issues]\nkind = \"slack-webhook\"\nurl = \"https://hooks.slack.com/services/T/B/x\"\n\n[[routes]]\nname = \"slow\"\nto = [\"issues\"]\nremind_after = \"24h\"\n".to_owned();
    let error = refused(Setup::new().file(webhook)).await;
    assert!(
        error.contains("slow: remind_after needs a slack-bot destination"),
        "{error}"
    );
    assert!(
        !error.contains("hooks.slack.com"),
        "the webhook URL is a secret: {error}"
    );
    let broken = "[destinations.triage]\nkind = \"slack-bot\"\nchannel = \"C1\"\ntoken = \"xoxb-1\"\n\n[[routes]]\nname = \"p0\"\nto = [\"triage\"]\ntemplate = \"{% if %}\"\n".to_owned();
    let error = refused(Setup::new().file(broken)).await;
    assert!(error.contains("p0: template: line 1"), "{error}");
}

#[tokio::test]
async fn a_route_template_shapes_the_message_and_user_text_cannot_break_out() {
    let slack = FakeSlackApi::start().await;
    let routes = r#"
[[routes]]
events = ["issues.opened"]
to = ["triage"]
thread = false
mention = "<!subteam^S0123>"
template = "{{ mention }} :rotating_light: *{{ url | link('#' ~ number ~ ' ' ~ title) }}* from {{ author }} ({{ labels | join(', ') }})"
"#;
    let herald = Setup::new().bot(&slack, routes).spawn().await;
    let mut issue = opened(51, &["<!here>", "P0"]);
    issue["issue"]["title"] = json!("*boom* <!channel> `x`");
    herald.send("issues", "m-1", &issue).await;
    let message = slack.wait_for_messages(1).await.remove(0);
    assert_eq!(
        message.role(),
        "message",
        "thread = false: a plain channel message"
    );
    assert_eq!(
        message.text,
        "<!subteam^S0123> :rotating_light: *<https://github.com/Codertocat/Hello-World/issues/51|#51 ∗boom∗ &lt;!channel&gt; ˋxˋ>* from Codertocat (&lt;!here&gt;, P0)"
    );
    slack.assert_no_problems();
}

#[tokio::test]
async fn a_plain_message_can_be_posted_through_a_bot_destination() {
    helpers_crypto();
    let slack = FakeSlackApi::start().await;
    let target = herald::delivery::Target::SlackBot {
        token: secrecy::SecretString::from(TOKEN),
        channel: CHANNEL.to_owned(),
        api_url: slack.url.clone(),
        timeout: Duration::from_secs(5),
    };
    let message = herald::sinks::slack::SlackMessage::plain("*Weekly digest*: 3 opened".to_owned());
    target.post_plain(&message).await.unwrap();
    let posted = slack.wait_for_messages(1).await.remove(0);
    assert_eq!(posted.text, "*Weekly digest*: 3 opened");
    slack.script(vec![Answer::Refuse("channel_not_found")]);
    let error = target.post_plain(&message).await.unwrap_err().to_string();
    assert!(error.contains("channel_not_found"), "{error}");
    assert!(
        !format!("{target:?}").contains(TOKEN),
        "Debug hides the token"
    );
}

fn helpers_crypto() {
    crate::helpers::install_crypto();
}

#[tokio::test]
async fn with_a_template_the_announcement_is_the_thread_parent_and_stays_as_posted() {
    let slack = FakeSlackApi::start().await;
    let routes = r#"
[[routes]]
events = ["issues"]
to = ["triage"]
template = ":bug: *{{ title }}* opened by {{ author }}{% if late %} (now labeled {{ label }}){% endif %}"
"#;
    let herald = Setup::new().bot(&slack, routes).spawn().await;
    herald.send("issues", "tp-1", &opened(61, &[])).await;
    let parent = slack.wait_for_messages(1).await.remove(0);
    assert_eq!(parent.role(), "parent");
    assert_eq!(
        parent.text,
        ":bug: *Spelling error in the README file* opened by Codertocat"
    );
    let mut labeled = issue_event("labeled", 61, &["bug"], "2019-05-15T16:00:00Z");
    labeled["label"] = json!({"name": "bug"});
    herald.send("issues", "tp-2", &labeled).await;
    herald.settled("triage", 2).await;
    let replies = slack.replies(&parent.ts);
    assert_eq!(replies.len(), 1);
    assert_eq!(
        replies[0].text,
        ":bug: *Spelling error in the README file* opened by Codertocat"
    );
    assert!(
        slack.calls("chat.update").is_empty(),
        "a templated parent is not redrawn"
    );
    slack.assert_no_problems();
}

/// The README's example, as written there: the promise it makes is what happens.
#[tokio::test]
async fn the_readme_example_does_what_the_readme_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("<!-- slack-example -->\n```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n<!-- /slack-example -->").next())
        .expect("the README's Slack example");
    let slack = FakeSlackApi::start().await;
    let setup = Setup::new();
    let token = setup.dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let file = block.replace(
        "token = \"${SLACK_BOT_TOKEN}\"",
        &format!(
            "token = \"file:{}\"\napi_url = \"{}\"\nmax_per_second = 0",
            token.display(),
            slack.url
        ),
    );
    let herald = setup.file(file).spawn().await;
    let in_repo = |mut body: Value, repo: &str| {
        body["repository"]["full_name"] = json!(repo);
        body
    };
    // A bug in octo-org/app: a thread in #triage, no ping (not P0).
    herald
        .send(
            "issues",
            "x-1",
            &in_repo(opened(1, &["bug"]), "octo-org/app"),
        )
        .await;
    // It becomes P0: a reply that pings @oncall.
    let mut p0 = in_repo(
        issue_event("labeled", 1, &["bug", "P0"], "2019-05-15T16:00:00Z"),
        "octo-org/app",
    );
    p0["label"] = json!({"name": "P0"});
    herald.send("issues", "x-2", &p0).await;
    // A question elsewhere in the organisation: #issues.
    herald
        .send(
            "issues",
            "x-3",
            &in_repo(opened(2, &["question"]), "octo-org/web"),
        )
        .await;
    // A bot's bug, and a bug in another organisation: nowhere.
    let mut by_bot = in_repo(opened(3, &["bug"]), "octo-org/app");
    by_bot["issue"]["user"] = json!({"login": "dependabot[bot]", "type": "Bot"});
    herald.send("issues", "x-4", &by_bot).await;
    herald
        .send("issues", "x-5", &in_repo(opened(4, &["bug"]), "other/app"))
        .await;
    herald.settled("analytics", 5).await;
    let triage = herald.settled("triage", 2).await;
    assert!(
        triage.iter().all(|(status, _)| status == "delivered"),
        "{triage:?}"
    );
    herald.settled("issues", 1).await;
    let messages = slack.messages();
    assert_eq!(messages.len(), 3, "{messages:?}");
    let parent = messages
        .iter()
        .find(|m| m.channel == CHANNEL && m.role() == "parent")
        .unwrap();
    assert!(!parent.text.contains("subteam"), "{}", parent.text);
    let replies = slack.replies(&parent.ts);
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0]
            .text
            .starts_with("<!subteam^S0ONCALL> Label P0 added"),
        "{}",
        replies[0].text
    );
    let other = messages
        .iter()
        .find(|m| m.channel == crate::fake_slack::OTHER_CHANNEL)
        .unwrap();
    assert!(other.text.contains("#2 "), "{}", other.text);
    // The bug is reminded of after 24 working hours.
    let reminders = herald
        .store()
        .await
        .slack_reminders("triage")
        .await
        .unwrap();
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0].issue_number, 1);
    slack.assert_no_problems();
}
