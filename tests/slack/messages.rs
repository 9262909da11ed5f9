//! What each event kind looks like in Slack, over every payload of `../shared/github-payloads`
//! for issues, comments, pull requests and releases, plus the cases those payloads lack (closes
//! with each reason, a merge) and hostile text. Snapshots live in `snapshots/`; review a change
//! with `cargo insta review`.

use std::collections::BTreeMap;

use herald::config::RouteConfig;
use herald::routes::{Route, Router};
use herald::sinks::slack::template::Templates;
use herald::sinks::slack::view::Payload;
use herald::sinks::slack::{Card, render_event};
use serde_json::{Value, json};

use crate::harness::sample;
use crate::helpers::payloads_dir;

fn rendered(event: &str, payload: &Value) -> Value {
    render_event(event, &payload.to_string()).to_webhook_body()
}

/// Every payload of one event kind, by file name.
fn every_payload(event: &str) -> BTreeMap<String, Value> {
    let dir = payloads_dir().join(event);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            std::path::Path::new(name)
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no payloads in {}", dir.display());
    names
        .into_iter()
        .map(|name| {
            let payload = sample(&format!("{event}/{name}"));
            (name, rendered(event, &payload))
        })
        .collect()
}

#[test]
fn issues() {
    let mut all = every_payload("issues");
    for (reason, name) in [
        ("completed", "closed.completed"),
        ("not_planned", "closed.not_planned"),
        ("duplicate", "closed.duplicate"),
    ] {
        let mut closed = sample("issues/opened.payload.json");
        closed["action"] = json!("closed");
        closed["issue"]["state"] = json!("closed");
        closed["issue"]["state_reason"] = json!(reason);
        closed["issue"]["closed_at"] = json!("2019-05-16T09:00:00Z");
        all.insert(
            format!("{name} (made from opened)"),
            rendered("issues", &closed),
        );
    }
    insta::assert_json_snapshot!("issues", all);
}

#[test]
fn issue_comments() {
    insta::assert_json_snapshot!("issue_comment", every_payload("issue_comment"));
}

#[test]
fn pull_requests() {
    let mut all = every_payload("pull_request");
    let mut merged = sample("pull_request/closed.payload.json");
    merged["pull_request"]["merged"] = json!(true);
    merged["pull_request"]["merged_at"] = json!("2019-05-15T15:21:18Z");
    all.insert(
        "closed.merged (made from closed)".into(),
        rendered("pull_request", &merged),
    );
    insta::assert_json_snapshot!("pull_request", all);
}

#[test]
fn releases() {
    insta::assert_json_snapshot!("release", every_payload("release"));
}

#[test]
fn other_events_get_a_plain_line() {
    let mut all = BTreeMap::new();
    for (event, file) in [
        ("push", "push/payload.json"),
        ("fork", "fork/payload.json"),
        ("star", "star/created.payload.json"),
    ] {
        if payloads_dir().join(file).exists() {
            all.insert(event.to_owned(), rendered(event, &sample(file)));
        }
    }
    assert!(!all.is_empty());
    insta::assert_json_snapshot!("other", all);
}

/// The card a thread's parent shows, for an issue and a pull request in each state.
#[test]
fn thread_parents() {
    let mut all = BTreeMap::new();
    let mut cases = vec![
        ("issue open", "issues", sample("issues/opened.payload.json")),
        (
            "pull request open",
            "pull_request",
            sample("pull_request/opened.payload.json"),
        ),
        (
            "pull request closed",
            "pull_request",
            sample("pull_request/closed.payload.json"),
        ),
    ];
    let mut closed = sample("issues/assigned.payload.json");
    closed["issue"]["state"] = json!("closed");
    closed["issue"]["state_reason"] = json!("not_planned");
    cases.push(("issue closed as not planned, assigned", "issues", closed));
    let mut merged = sample("pull_request/closed.payload.json");
    merged["pull_request"]["merged"] = json!(true);
    cases.push(("pull request merged", "pull_request", merged));
    for (name, event, payload) in cases {
        let text = payload.to_string();
        let card = Card::from_payload(event, &Payload::parse(&text)).expect("an item");
        let message = card.render(Some("<!subteam^S0123>"));
        all.insert(
            name,
            json!({ "text": message.text, "blocks": message.blocks }),
        );
    }
    insta::assert_json_snapshot!("thread_parents", all);
}

/// Titles, labels, bodies, comments and logins written to break out: nothing pings, links or
/// formats, and the text stays readable.
#[test]
fn hostile_text() {
    let mut issue = sample("issues/opened.payload.json");
    issue["issue"]["title"] = json!(
        "<!channel> *urgent* _now_ ~gone~ `rm -rf` <https://evil.example|login> & <@U024BE7LH>"
    );
    issue["issue"]["labels"] = json!([{"name": "bug`, <!here>"}, {"name": "*P0*"}]);
    issue["issue"]["user"]["login"] = json!("<!everyone>");
    issue["issue"]["body"] = json!(
        "<!-- template -->\n### Steps <!here>\n1. `a <b> c`\n2. click [here](https://evil.example)\n\n```\n<!channel>\n```\n![x](https://img) <img src=x onerror=alert(1)>\n> quoted <@U1>\n- [x] *done*\nlast line with a very long tail that goes on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on and on"
    );
    let mut all = BTreeMap::new();
    all.insert("issue opened", rendered("issues", &issue));
    let mut comment = sample("issue_comment/created.payload.json");
    comment["comment"]["body"] =
        json!("<!here> see <https://evil.example|the fix> *now*\r\n\r\nthanks");
    comment["comment"]["user"]["login"] = json!("_mallory_");
    all.insert("comment", rendered("issue_comment", &comment));
    let mut labeled = sample("issues/labeled.payload.json");
    labeled["label"]["name"] = json!("`<!channel>`");
    all.insert("labeled", rendered("issues", &labeled));
    let text = serde_json::to_string(&all).unwrap();
    for raw in [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<@U024BE7LH>",
        "<@U1>",
        "<https://evil",
        "*urgent*",
        "`rm -rf`",
    ] {
        assert!(!text.contains(raw), "{raw} got through");
    }
    insta::assert_json_snapshot!("hostile", all);
}

/// Every template field filled with text written to break out: the template's own Slack syntax
/// stays, the fields' does not.
#[test]
fn hostile_template_fields() {
    let source = "{{ mention }} *{{ url | link('#' ~ number ~ ' ' ~ title) }}* in {{ repository }} by {{ author }} \
                  labels {{ labels | join(', ') }} / {{ label }} / {{ assignees | join(', ') }} / {{ state_reason }}\n\
                  {{ comment_author }}: {{ excerpt }} {{ created_at | date }} {{ sender | upper }}";
    let config = RouteConfig {
        template: Some(source.to_owned()),
        to: vec!["triage".to_owned()],
        ..RouteConfig::default()
    };
    let router = Router {
        routes: vec![Route::new(0, &config).unwrap()],
        built_in: Vec::new(),
    };
    let templates = Templates::compile(&router).unwrap();
    let mut all = BTreeMap::new();
    let mut issue = sample("issues/labeled.payload.json");
    issue["issue"]["title"] = json!("<!channel> *x* `y` <https://evil|z>");
    issue["issue"]["labels"] = json!([{"name": "<!here>"}, {"name": "_p0_"}]);
    issue["issue"]["assignees"] = json!([{"login": "<@U1>"}]);
    issue["label"] = json!({"name": "~<!everyone>~"});
    issue["issue"]["state_reason"] = json!("<!subteam^S1>");
    issue["repository"]["full_name"] = json!("<evil>/repo");
    issue["sender"]["login"] = json!("<!channel>");
    let mut comment = sample("issue_comment/created.payload.json");
    comment["comment"]["user"]["login"] = json!("*bold*");
    comment["comment"]["body"] = json!("<!here>\n`code` <https://evil|x>");
    for (name, event, payload) in [
        ("labeled", "issues", issue),
        ("comment", "issue_comment", comment),
    ] {
        let text = payload.to_string();
        let message = templates
            .render(
                0,
                event,
                &Payload::parse(&text),
                Some("<!subteam^S0123>"),
                false,
            )
            .unwrap()
            .unwrap();
        for raw in [
            "<!channel>",
            "<!here>",
            "<!everyone>",
            "<@U1>",
            "<https://evil",
            "<!subteam^S1>",
            "<evil>",
        ] {
            assert!(
                !message.text.contains(raw),
                "{raw} got through: {}",
                message.text
            );
        }
        assert!(message.text.starts_with("<!subteam^S0123> "));
        all.insert(name, message.text);
    }
    insta::assert_json_snapshot!("hostile_template", all);
}

/// A payload near GitHub's 25 MiB cap, mostly fields no message shows, renders like a small one.
#[test]
fn a_huge_payload_renders_like_a_small_one() {
    let mut issue = sample("issues/opened.payload.json");
    let small = rendered("issues", &issue);
    issue["issue"]["reactions"] = json!({ "filler": "x".repeat(24 * 1024 * 1024) });
    issue["issue"]["body"] = json!(format!(
        "{}\n{}",
        "It looks like you accidently spelled 'commit' with two 't's.",
        "y ".repeat(1024 * 1024)
    ));
    let big = rendered("issues", &issue);
    assert_eq!(big["blocks"][0], small["blocks"][0]);
    assert_eq!(big["blocks"][2], small["blocks"][2]);
    let excerpt = big["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        excerpt.len() < 400,
        "the excerpt is cut: {} bytes",
        excerpt.len()
    );
}
