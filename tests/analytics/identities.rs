//! Identities by GitHub's numeric user id: an author's rename never turns their own comment
//! into a first response (through webhooks, through backfill, and for rows stored before the
//! upgrade, whose ids the migration reads from the stored payloads), and a renamed author stays
//! one group.

use std::path::Path;

use serde_json::{Value, json};

use crate::databases;
use crate::fake_github::FakeGithub;
use crate::helpers::{CommentSpec, IssueSpec, Snapshot, TestApp, run_herald};

const OPENED: &str = "2026-01-05T10:00:00Z";

/// The issue's repro: #1 opened by `octo-author`, who comments 10 minutes later, then renames
/// to `octo-author-2`; `octo-helper` answers two hours after the opening, in a payload that
/// shows the issue's author under the new login.
fn rename_history() -> Vec<(&'static str, &'static str, Value)> {
    let before = IssueSpec::new("octo/app", 1, "octo-author", OPENED);
    let after = before.clone().renamed("octo-author-2");
    let own = CommentSpec::new(11, "octo-author", "2026-01-05T10:10:00Z");
    let helper = CommentSpec::new(12, "octo-helper", "2026-01-05T12:00:00Z");
    // A second issue, opened after the rename under the new login.
    let second = IssueSpec::new("octo/app", 2, "octo-author", "2026-01-06T10:00:00Z")
        .renamed("octo-author-2");
    vec![
        (
            "issues",
            "r1",
            before.event("opened", &Snapshot::open(OPENED)),
        ),
        (
            "issue_comment",
            "r2",
            before.comment_event("created", &own, &Snapshot::open("2026-01-05T10:10:00Z")),
        ),
        (
            "issue_comment",
            "r3",
            after.comment_event("created", &helper, &Snapshot::open("2026-01-05T12:00:00Z")),
        ),
        (
            "issues",
            "r4",
            second.event("opened", &Snapshot::open("2026-01-06T10:00:00Z")),
        ),
    ]
}

const JANUARY: &str = "since=2026-01-01&until=2026-01-31";

#[tokio::test]
async fn a_rename_through_webhooks_changes_nothing() {
    let app = TestApp::spawn(&[]).await;
    for (event, delivery, body) in rename_history() {
        assert_eq!(app.send(event, delivery, &body).await, 202, "{delivery}");
    }
    app.wait_for_deliveries().await;
    let report = app.metrics(JANUARY).await;
    // Two hours, not the author's own comment after 10 minutes; #2 is unanswered.
    assert_eq!(
        report["time_to_first_response"],
        json!({"count": 1, "unanswered": 1, "mean_seconds": 7200, "median_seconds": 7200,
               "p90_seconds": 7200})
    );
    // One author, named by the newest login, not split in two by the rename.
    let by_author = app.metrics(&format!("{JANUARY}&group_by=author")).await;
    let groups: Vec<(&str, i64)> = by_author["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap(),
                g["issues"]["opened"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(groups, [("octo-author-2", 2)]);
}

#[tokio::test]
async fn a_rename_between_webhooks_and_backfill_changes_nothing() {
    // Webhooks stored the issue and the author's own comment under the old login; the backfill
    // (run after the rename) brings the issue under the new login and the helper's answer.
    let app = TestApp::spawn(&[]).await;
    for (event, delivery, body) in rename_history().into_iter().take(2) {
        assert_eq!(app.send(event, delivery, &body).await, 202, "{delivery}");
    }
    app.wait_for_deliveries().await;
    let renamed = IssueSpec::new("octo/app", 1, "octo-author", OPENED).renamed("octo-author-2");
    let issues = vec![vec![
        renamed.object(&Snapshot::open("2026-01-05T12:00:00Z")),
    ]];
    let comments = vec![vec![
        // GitHub lists old comments under the account's current login.
        CommentSpec::new(11, "octo-author-2", "2026-01-05T10:10:00Z")
            .by_id(crate::helpers::user_id("octo-author"))
            .object(&renamed),
        CommentSpec::new(12, "octo-helper", "2026-01-05T12:00:00Z").object(&renamed),
    ]];
    let github = FakeGithub::start("octo/app", None, issues, comments).await;
    let output = run_herald(
        &["backfill", "octo/app"],
        &[
            ("HERALD_DATABASE_URL", &app.database_url),
            ("HERALD_GITHUB_API_URL", &github.url),
        ],
    )
    .await;
    assert!(output.success, "{output:?}");
    let report = app.metrics(JANUARY).await;
    assert_eq!(
        report["time_to_first_response"]["median_seconds"],
        json!(7200)
    );
    assert_eq!(report["time_to_first_response"]["count"], json!(1));
    assert_eq!(github.violations(), Vec::<String>::new());
}

/// Rows as herald 0006 wrote them: lifecycle rows without ids, the raw payloads beside them.
macro_rules! write_old_rows {
    ($pool:expr) => {{
        let pool = $pool;
        for (event, delivery, body) in rename_history() {
            let number = body["issue"]["number"].as_i64().unwrap();
            sqlx::query(
                "INSERT INTO events (hook_id, delivery_id, event, action, repository, issue_number,
                    actor, received_at, payload)
                 VALUES ('h', $1, $2, 'x', 'octo/app', $3, 'a', 0, $4)",
            )
            .bind(delivery)
            .bind(event)
            .bind(number)
            .bind(body.to_string())
            .execute(&pool)
            .await
            .unwrap();
        }
        // The lifecycle rows 0006 kept: the newest issue snapshots and both comments of #1.
        for (number, created, updated) in [
            (1_i64, "2026-01-05T10:00:00Z", "2026-01-05T12:00:00Z"),
            (2, "2026-01-06T10:00:00Z", "2026-01-06T10:00:00Z"),
        ] {
            sqlx::query(
                "INSERT INTO issues (repository, number, title, author, created_at, updated_at,
                    state) VALUES ('octo/app', $1, 't', 'octo-author-2', $2, $3, 'open')",
            )
            .bind(number)
            .bind(ms(created))
            .bind(ms(updated))
            .execute(&pool)
            .await
            .unwrap();
        }
        for (id, author, created) in [
            (11_i64, "octo-author", "2026-01-05T10:10:00Z"),
            (12, "octo-helper", "2026-01-05T12:00:00Z"),
        ] {
            sqlx::query(
                "INSERT INTO issue_comments (repository, comment_id, issue_number, author,
                    created_at) VALUES ('octo/app', $1, 1, $2, $3)",
            )
            .bind(id)
            .bind(author)
            .bind(ms(created))
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }};
}

/// Applies migrations up to 0006 from a copy of the folder, as an older herald would have, and
/// writes rows as it would have.
async fn herald_0006(url: &str, backend: &str) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0007" {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    if backend == "sqlite" {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        migrator.run(&pool).await.unwrap();
        write_old_rows!(pool);
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        write_old_rows!(pool);
    }
}

fn ms(text: &str) -> i64 {
    herald::time_util::to_ms(
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap(),
    )
}

#[tokio::test]
async fn the_upgrade_fills_ids_from_the_stored_payloads() {
    for database in databases::all().await {
        herald_0006(&database.url, database.label).await;
        // Opening the store applies 0007.
        let store = database.connect().await;
        let query = herald::analytics::ReportRequest {
            since: Some("2026-01-01".into()),
            until: Some("2026-01-31".into()),
            ..Default::default()
        }
        .parse(herald::time_util::now_ms())
        .unwrap();
        let records = store.issue_lifecycles(&query).await.unwrap();
        let first = &records[0];
        assert_eq!(
            (first.first_responder.as_deref(), first.first_response_at),
            (Some("octo-helper"), Some(ms("2026-01-05T12:00:00Z"))),
            "{}",
            database.label
        );
        let ids = store
            .ids_of_logins(&["OCTO-AUTHOR".into(), "octo-author-2".into()])
            .await
            .unwrap();
        assert_eq!(
            ids,
            [crate::helpers::user_id("octo-author")],
            "{}: both logins are one account",
            database.label
        );
        store.close().await;
    }
}
