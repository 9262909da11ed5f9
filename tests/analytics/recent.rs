//! A small history relative to now, for the dashboard (which shows the last weeks) and the
//! browser test; every number the page must show is worked out here.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{CommentSpec, IssueSpec, Snapshot, TestApp};

/// `hours` ago as RFC 3339 (leaked: the specs hold `&'static str`).
fn ago(now: OffsetDateTime, hours: i64) -> &'static str {
    let at = now - time::Duration::hours(hours);
    Box::leak(at.format(&Rfc3339).unwrap().into_boxed_str())
}

/// The deliveries, in order:
/// - #1 (alice, `bug`), 10 days ago: bob answers after 1 h, closed (completed) after 2 days.
/// - #2 (carol), 3 days ago: bob answers after 3 h; open.
/// - #3 (dave), 2 days ago: open, no answer.
/// - #4 (erin), 40 days ago: open, no answer: the oldest unanswered.
/// - #5 (frank), 20 hours ago: only `k8s-ci-robot` (an account of type User) commented, after
///   10 minutes; an answer unless `ignore_users` lists it.
///
/// Over the last 12 weeks: 5 opened, 1 closed, 4 open now; first responses [1 h, 3 h] (plus
/// 10 min for #5 when the robot counts): median 2 h (1 h without ignoring).
pub fn history(now: OffsetDateTime) -> Vec<(&'static str, String, Value)> {
    let one = IssueSpec::new("acme/widgets", 1, "alice", ago(now, 240)).labels(&["bug"]);
    let two = IssueSpec::new("acme/widgets", 2, "carol", ago(now, 72));
    let three = IssueSpec::new("acme/widgets", 3, "dave", ago(now, 48));
    let four = IssueSpec::new("acme/gadgets", 4, "erin", ago(now, 960));
    let five = IssueSpec::new("acme/widgets", 5, "frank", ago(now, 20));
    let mut deliveries = Vec::new();
    let mut push = |event: &'static str, body: Value| {
        let delivery = format!("recent-{}", deliveries.len());
        deliveries.push((event, delivery, body));
    };
    push(
        "issues",
        one.event("opened", &Snapshot::open(ago(now, 240))),
    );
    push(
        "issue_comment",
        one.comment_event(
            "created",
            &CommentSpec::new(101, "bob", ago(now, 239)),
            &Snapshot::open(ago(now, 239)),
        ),
    );
    push(
        "issues",
        one.event("closed", &Snapshot::closed(ago(now, 192), "completed")),
    );
    push("issues", two.event("opened", &Snapshot::open(ago(now, 72))));
    push(
        "issue_comment",
        two.comment_event(
            "created",
            &CommentSpec::new(201, "bob", ago(now, 69)),
            &Snapshot::open(ago(now, 69)),
        ),
    );
    push(
        "issues",
        three.event("opened", &Snapshot::open(ago(now, 48))),
    );
    push(
        "issues",
        four.event("opened", &Snapshot::open(ago(now, 960))),
    );
    push(
        "issues",
        five.event("opened", &Snapshot::open(ago(now, 20))),
    );
    let robot = CommentSpec {
        created_at: Box::leak(
            (now - time::Duration::hours(20) + time::Duration::minutes(10))
                .format(&Rfc3339)
                .unwrap()
                .into_boxed_str(),
        ),
        ..CommentSpec::new(501, "k8s-ci-robot", "")
    };
    push(
        "issue_comment",
        five.comment_event("created", &robot, &Snapshot::open(ago(now, 19))),
    );
    deliveries
}

/// Sends the history and waits until the analytics have it.
pub async fn seed(app: &TestApp) {
    for (event, delivery, body) in history(OffsetDateTime::now_utc()) {
        assert_eq!(app.send(event, &delivery, &body).await, 202, "{delivery}");
    }
    app.wait_for_deliveries().await;
}
