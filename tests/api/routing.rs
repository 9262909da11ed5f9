//! Route matching over the real payloads of `../shared/github-payloads`, and the commands that
//! explain the configuration: `herald routes test` and `herald config check`.

use std::path::Path;

use herald::config::RouteConfig;
use herald::github::IndexedEvent;
use herald::routes::{Route, Router};
use serde_json::{Value, json};

use crate::helpers::{herald_command, payload, payloads_dir};

fn router(routes: &str) -> Router {
    #[derive(serde::Deserialize)]
    struct Routes {
        routes: Vec<RouteConfig>,
    }
    let parsed: Routes = toml::from_str(routes).unwrap();
    Router {
        routes: parsed
            .routes
            .iter()
            .enumerate()
            .map(|(index, route)| Route::new(index, route).unwrap())
            .collect(),
        built_in: Vec::new(),
    }
}

/// The destinations `body` goes to as event `event`.
fn destinations(router: &Router, event: &str, body: &Value) -> Vec<String> {
    let bytes = serde_json::to_vec(body).unwrap();
    let (indexed, _) = IndexedEvent::parse(&bytes).unwrap();
    router
        .route(&indexed.subject(event))
        .into_iter()
        .map(|matched| matched.destination.to_string())
        .collect()
}

fn json(relative: &str) -> Value {
    serde_json::from_slice(&payload(relative)).unwrap()
}

/// The shape of the README's example (bugs and P0s from these repositories to #triage, everything
/// else to #issues, no bots) over the shared payloads' repositories; the README's own text is
/// checked by `the_readme_configuration_example_routes_as_the_readme_says`.
const TEAM: &str = r#"
[[routes]]
name = "bugs and P0s"
repositories = ["codertocat/*", "octo-org/*"]
events = ["issues.opened", "issues.labeled"]
labels_any = ["bug", "P0"]
to = ["triage"]

[[routes]]
name = "everything else"
events = ["issues.opened"]
labels_none = ["bug", "P0"]
to = ["issues"]
"#;

#[test]
fn the_team_example_over_real_payloads() {
    let router = router(TEAM);
    let opened = json("issues/opened.payload.json"); // Codertocat/Hello-World, label "bug"
    let mut no_labels = opened.clone();
    no_labels["issue"]["labels"] = json!([]);
    let mut p0_elsewhere = opened.clone();
    p0_elsewhere["issue"]["labels"] = json!([{"name": "P0"}]);
    p0_elsewhere["repository"]["full_name"] = json!("someone/else");
    let mut by_bot = opened.clone();
    by_bot["issue"]["user"] = json!({"login": "renovate[bot]", "id": 2, "type": "Bot"});
    let labeled = json("issues/labeled.payload.json"); // "bug" just added to an open issue
    let edited = json("issues/edited.payload.json");
    let comment = json("issue_comment/created.payload.json");
    let table: Vec<(&str, &Value, Vec<&str>)> = vec![
        ("issues", &opened, vec!["triage"]),
        ("issues", &no_labels, vec!["issues"]),
        ("issues", &p0_elsewhere, vec![]),
        ("issues", &by_bot, vec![]),
        ("issues", &labeled, vec!["triage"]),
        ("issues", &edited, vec![]),
        ("issue_comment", &comment, vec![]),
    ];
    for (event, body, expected) in table {
        assert_eq!(
            destinations(&router, event, body),
            expected,
            "{event}.{} {} {}",
            body["action"],
            body["repository"]["full_name"],
            body["issue"]["labels"]
        );
    }
}

#[test]
fn a_label_added_later_announces_an_issue_once() {
    let router = router(
        r#"
[[routes]]
events = ["issues.opened"]
labels_any = ["P0"]
to = ["pager"]
"#,
    );
    let mut labeled = json("issues/labeled.payload.json");
    labeled["label"] = json!({"name": "P0"});
    labeled["issue"]["labels"] = json!([{"name": "bug"}, {"name": "P0"}]);
    let bytes = serde_json::to_vec(&labeled).unwrap();
    let (indexed, _) = IndexedEvent::parse(&bytes).unwrap();
    let matches = router.route(&indexed.subject("issues"));
    assert_eq!(matches.len(), 1);
    assert!(matches[0].late, "announced as new to the route");
    // The same label added to a closed issue announces nothing.
    labeled["issue"]["state"] = json!("closed");
    assert!(destinations(&router, "issues", &labeled).is_empty());
}

#[test]
fn event_rules_hold_for_every_shared_payload() {
    let router = router(
        r#"
[[routes]]
events = ["issues"]
include_bots = true
to = ["issues-only"]

[[routes]]
events = ["pull_request.opened"]
include_bots = true
to = ["new-prs"]
"#,
    );
    let mut checked = 0;
    for directory in std::fs::read_dir(payloads_dir()).unwrap() {
        let directory = directory.unwrap().path();
        if !directory.is_dir() {
            continue;
        }
        let event = directory
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for file in std::fs::read_dir(&directory).unwrap() {
            let file = file.unwrap().path();
            let body = std::fs::read(&file).unwrap();
            let Ok((indexed, _)) = IndexedEvent::parse(&body) else {
                continue;
            };
            let got: Vec<String> = router
                .route(&indexed.subject(&event))
                .into_iter()
                .map(|m| m.destination.to_string())
                .collect();
            let expected: Vec<&str> = match (event.as_str(), indexed.action.as_deref()) {
                ("issues", _) => vec!["issues-only"],
                ("pull_request", Some("opened")) => vec!["new-prs"],
                _ => vec![],
            };
            assert_eq!(got, expected, "{}", file.display());
            checked += 1;
        }
    }
    assert!(checked > 250, "only {checked} payloads checked");
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("herald.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn routes_test_explains_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[destinations.triage]\nkind = \"stdout\"\n[destinations.issues]\nkind = \"stdout\"\n{TEAM}"
        ),
    );
    let output = herald_command()
        .args(["routes", "test", "--config", &config, "--event", "issues"])
        .arg(payloads_dir().join("issues/opened.payload.json"))
        .env("HERALD_WEBHOOK_SECRET", "x")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "event issues.opened in Codertocat/Hello-World by Codertocat with labels [bug]\n  \
         match  bugs and P0s  -> triage\n  \
         skip   everything else: labels_none: \"bug\" is on the item\n\
         destinations: analytics, triage\n"
    );
}

#[test]
fn config_check_names_every_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[destinations.triage]\nkind = \"slack-webhook\"\nurl = \"not a url\"\n",
            "destinations.triage.url: not a URL",
        ),
        (
            "[destinations.triage]\nkind = \"slack-webhook\"\nurl = \"${NOT_SET_ANYWHERE}\"\n",
            "destinations.triage.url: the environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "[destinations.triage]\nkind = \"stdout\"\nmax_per_second = -3\n",
            "destinations.triage.max_per_second: -3 must be between 0 (no limit) and 10000",
        ),
        (
            "[destinations.triage]\nkind = \"stdout\"\nconcurrency = 0\n",
            "destinations.triage.concurrency: 0 must be between 1 and 1024",
        ),
        (
            "[destinations.triage]\nkind = \"stdout\"\ntimeout = \"forever\"\n",
            "destinations.triage.timeout:",
        ),
        (
            "[destinations.analytics]\nkind = \"stdout\"\n",
            "destinations.analytics: the name is taken",
        ),
        (
            "[destinations.triage]\nkind = \"pager\"\n",
            "unknown variant `pager`",
        ),
        (
            "[[routes]]\nto = [\"nowhere\"]\n",
            "routes[0]: `to` names \"nowhere\", which is not a destination",
        ),
        (
            "[[routes]]\nrepositories = [\"a/[\"]\nto = [\"stdout\"]\n",
            "routes[0]: repositories",
        ),
        (
            "[[routes]]\nlabel_any = [\"bug\"]\nto = [\"x\"]\n",
            "unknown field `label_any`",
        ),
        ("retry_schedul = \"5s\"\n", "did you mean `retry_schedule`?"),
        (
            "[destinations.triage]\nkind = \"slack-webhook\"\nurl = \"https://hooks.slack.test/x\"\n\
             max_per_second = 0\ntimeout = \"20s\"\n",
            "destinations.triage.timeout (20s) with max_per_second = 0 (up to 4 waves of requests \
             per round): HERALD_DELIVERY_LEASE (1m) must be longer than 1m 20s",
        ),
        (
            "[destinations.triage]\nkind = \"slack-webhook\"\nurl = \"https://hooks.slack.test/x\"\n\
             timeout = \"1m\"\n",
            "destinations.triage.timeout (1m): HERALD_DELIVERY_LEASE (1m) must be longer, or",
        ),
    ];
    for (text, expected) in cases {
        let config = write_config(dir.path(), text);
        let output = herald_command()
            .args(["config", "check", "--config", &config])
            .env("HERALD_WEBHOOK_SECRET", "x")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "retry_schedule = \"5s,1m\"\n\n[destinations.triage]\nkind = \"slack-webhook\"\nurl = \"${TRIAGE_URL}\"\n\n[[routes]]\nto = [\"triage\"]\n",
    );
    let output = herald_command()
        .args(["config", "check", "--config", &config])
        .env("HERALD_WEBHOOK_SECRET", "hunter2-secret")
        .env(
            "TRIAGE_URL",
            "https://hooks.slack.com/services/T/B/hunter2-url",
        )
        .env("HERALD_DATABASE_URL", "postgres://app:hunter2-db@db/herald")
        .env("HERALD_POLL_INTERVAL", "2s")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
    for line in [
        "retry_schedule = \"5s,1m\"  # file",
        "poll_interval = \"2s\"  # HERALD_POLL_INTERVAL",
        "webhook_secret = \"[redacted]\"  # HERALD_WEBHOOK_SECRET",
        "database_url = \"postgres://app:[redacted]@db/herald\"  # HERALD_DATABASE_URL",
        "[destinations.triage]",
        "url = \"[redacted]\"",
        "to = [\"triage\"]",
        "# the configuration is valid",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// The README, as text.
fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// Every ```toml block of the README.
fn readme_toml_blocks() -> Vec<String> {
    readme()
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

/// The README's configuration-file example (between its `config-example` markers).
fn readme_config_example() -> String {
    readme()
        .split("<!-- config-example -->\n```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n<!-- /config-example -->").next())
        .expect("the README's configuration-file example")
        .to_owned()
}

/// The README's example routes as it says: bugs and P0s from these repositories to #triage,
/// everything else from them to #issues, nothing by bots or excluded authors.
#[test]
fn the_readme_configuration_example_routes_as_the_readme_says() {
    let router = router(&readme_config_example());
    let in_repo = |mut body: Value, repository: &str| {
        body["repository"]["full_name"] = json!(repository);
        body
    };
    let opened = json("issues/opened.payload.json"); // label "bug"
    let bug = in_repo(opened.clone(), "octo-org/app");
    let mut p0 = in_repo(opened.clone(), "octo-org/api-gateway");
    p0["issue"]["labels"] = json!([{"name": "P0"}]);
    let mut question = in_repo(opened.clone(), "octo-org/app");
    question["issue"]["labels"] = json!([{"name": "question"}]);
    let elsewhere = in_repo(opened.clone(), "someone/else");
    let mut by_bot = question.clone();
    by_bot["issue"]["user"] = json!({"login": "dependabot[bot]", "id": 2, "type": "Bot"});
    let mut excluded = question.clone();
    excluded["issue"]["user"] = json!({"login": "octo-ci", "id": 3, "type": "User"});
    // "bug" just added to an open issue: announced to #triage, once, as new to it.
    let labeled = in_repo(json("issues/labeled.payload.json"), "octo-org/app");
    let edited = in_repo(json("issues/edited.payload.json"), "octo-org/app");
    let comment = in_repo(json("issue_comment/created.payload.json"), "octo-org/app");
    let table: Vec<(&str, &Value, Vec<&str>)> = vec![
        ("bug", &bug, vec!["triage"]),
        ("P0", &p0, vec!["triage"]),
        ("question", &question, vec!["issues"]),
        ("another repository", &elsewhere, vec![]),
        ("a bot", &by_bot, vec![]),
        ("an excluded author", &excluded, vec![]),
        ("bug added later", &labeled, vec!["triage"]),
        ("edited", &edited, vec![]),
    ];
    for (what, body, expected) in table {
        assert_eq!(destinations(&router, "issues", body), expected, "{what}");
    }
    assert!(destinations(&router, "issue_comment", &comment).is_empty());
}

/// Every TOML example of the README is a configuration `herald config check` accepts, with the
/// environment variables it references set.
#[test]
fn every_toml_example_in_the_readme_passes_config_check() {
    let blocks = readme_toml_blocks();
    assert!(blocks.len() >= 3, "only {} TOML blocks found", blocks.len());
    assert!(blocks.contains(&readme_config_example()));
    for block in blocks {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &block);
        let mut command = herald_command();
        command
            .args(["config", "check", "--config", &config])
            .current_dir(dir.path())
            .env("HERALD_WEBHOOK_SECRET", "readme-secret");
        for reference in block.split("${").skip(1) {
            let name = reference.split('}').next().unwrap();
            let value = if name.contains("TOKEN") {
                "xoxb-readme-example"
            } else {
                "https://hooks.slack.com/services/T000/B000/readme"
            };
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("# the configuration is valid"),
            "the README's example does not pass `herald config check`:\n{block}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// With `[[routes]]`, the environment's Slack variables are refused unless a destination takes
/// them, as the refusal advises; following the advice is accepted.
#[test]
fn environment_slack_settings_are_accepted_when_a_destination_references_them() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let config = write_config(dir.path(), text);
        herald_command()
            .args(["config", "check", "--config", &config])
            .env("HERALD_WEBHOOK_SECRET", "x")
            .env(
                "HERALD_SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T/B/x",
            )
            .output()
            .unwrap()
    };
    let routes = "[[routes]]\nto = [\"stdout\"]\n";
    let refused = check(&format!(
        "[destinations.stdout]\nkind = \"stdout\"\n{routes}"
    ));
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("url = \"${HERALD_SLACK_WEBHOOK_URL}\""),
        "{refused:?}"
    );
    let referenced = check(&format!(
        "[destinations.team]\nkind = \"slack-webhook\"\nurl = \"${{HERALD_SLACK_WEBHOOK_URL}}\"\n\
         [destinations.stdout]\nkind = \"stdout\"\n{routes}"
    ));
    assert!(referenced.status.success(), "{referenced:?}");
}
