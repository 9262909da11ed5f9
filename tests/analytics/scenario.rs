//! One hand-computed history of issues, as webhook deliveries in the order GitHub would send
//! them, and the metrics it must give. Every expected number is worked out in a comment.

use serde_json::{Value, json};

use crate::helpers::{CommentSpec, IssueSpec, Snapshot};

/// `(event, delivery id, payload)` in the order things happened.
pub type Delivery = (&'static str, String, Value);

fn issue(spec: &IssueSpec, action: &str, state: &Snapshot) -> Delivery {
    let delivery = format!(
        "{}#{}-{action}-{}",
        spec.repo, spec.number, state.updated_at
    );
    ("issues", delivery, spec.event(action, state))
}

fn comment(spec: &IssueSpec, action: &str, comment: &CommentSpec, state: &Snapshot) -> Delivery {
    let delivery = format!(
        "{}#{}-comment-{}-{action}",
        spec.repo, spec.number, comment.id
    );
    (
        "issue_comment",
        delivery,
        spec.comment_event(action, comment, state),
    )
}

/// The history, in order:
///
/// - #1 (alice, `bug`, assigned to bob), 2020-01-05: comments by alice herself, by
///   `dependabot[bot]` (type Bot) and by `ci-helper` (type Bot) do not count; bob answers after
///   2 h (**7200 s**); closed as completed after 1 day (**86400 s**).
/// - #2 (carol, `bug` and `ui`), 2020-01-06: bob answers after 30 min (**1800 s**); closed as
///   not planned after 1 h, reopened, closed as completed after 5 h: the last close counts
///   (**18000 s**, completed).
/// - #3 (dave), 2020-01-07: open, never answered.
/// - #4: a pull request (with a comment): not an issue.
/// - #5 (erin), 2020-01-08: answered, then deleted: gone from every metric.
/// - #6 (alice, `docs`, in acme/gadgets), 2020-01-09: `renovate[bot]` (type User, but a `[bot]`
///   login) does not count, gina's comment after 20 s was deleted, frank answers after **45 s**;
///   closed as not planned after 3 days (**259200 s**).
/// - #7, created 2019-12-31T23:59:59Z: outside a January window.
/// - #8 (hank, assigned to bob), 2020-01-10: ivy answers after 4 h (**14400 s**); open.
#[expect(
    clippy::too_many_lines,
    reason = "one line per delivery reads as the timeline"
)]
pub fn history() -> Vec<Delivery> {
    let one = IssueSpec::new("acme/widgets", 1, "alice", "2020-01-05T00:00:00Z")
        .labels(&["bug"])
        .assignees(&["bob"]);
    let two =
        IssueSpec::new("acme/widgets", 2, "carol", "2020-01-06T00:00:00Z").labels(&["bug", "ui"]);
    let three = IssueSpec::new("acme/widgets", 3, "dave", "2020-01-07T00:00:00Z");
    let pull = IssueSpec::new("acme/widgets", 4, "alice", "2020-01-07T12:00:00Z").pull_request();
    let five = IssueSpec::new("acme/widgets", 5, "erin", "2020-01-08T00:00:00Z");
    let six = IssueSpec::new("acme/gadgets", 6, "alice", "2020-01-09T00:00:00Z").labels(&["docs"]);
    let seven = IssueSpec::new("acme/widgets", 7, "alice", "2019-12-31T23:59:59Z");
    let eight =
        IssueSpec::new("acme/widgets", 8, "hank", "2020-01-10T00:00:00Z").assignees(&["bob"]);
    let reopened = Snapshot {
        updated_at: "2020-01-06T02:00:00Z",
        state: "open",
        // GitHub keeps the old closed_at on a reopened issue; only the state tells.
        closed_at: Some("2020-01-06T01:00:00Z"),
        state_reason: Some("reopened"),
    };
    vec![
        issue(&one, "opened", &Snapshot::open("2020-01-05T00:00:00Z")),
        comment(
            &one,
            "created",
            &CommentSpec::new(101, "alice", "2020-01-05T00:10:00Z"),
            &Snapshot::open("2020-01-05T00:10:00Z"),
        ),
        comment(
            &one,
            "created",
            &CommentSpec::new(102, "dependabot[bot]", "2020-01-05T00:20:00Z").bot(),
            &Snapshot::open("2020-01-05T00:20:00Z"),
        ),
        comment(
            &one,
            "created",
            &CommentSpec::new(103, "ci-helper", "2020-01-05T00:25:00Z").bot(),
            &Snapshot::open("2020-01-05T00:25:00Z"),
        ),
        issue(&two, "opened", &Snapshot::open("2020-01-06T00:00:00Z")),
        comment(
            &one,
            "created",
            &CommentSpec::new(104, "bob", "2020-01-05T02:00:00Z"),
            &Snapshot::open("2020-01-05T02:00:00Z"),
        ),
        comment(
            &one,
            "created",
            &CommentSpec::new(105, "carol", "2020-01-05T03:00:00Z"),
            &Snapshot::open("2020-01-05T03:00:00Z"),
        ),
        comment(
            &two,
            "created",
            &CommentSpec::new(201, "bob", "2020-01-06T00:30:00Z"),
            &Snapshot::open("2020-01-06T00:30:00Z"),
        ),
        issue(
            &two,
            "closed",
            &Snapshot::closed("2020-01-06T01:00:00Z", "not_planned"),
        ),
        issue(&two, "reopened", &reopened),
        issue(
            &two,
            "closed",
            &Snapshot::closed("2020-01-06T05:00:00Z", "completed"),
        ),
        issue(
            &one,
            "closed",
            &Snapshot::closed("2020-01-06T00:00:00Z", "completed"),
        ),
        issue(&three, "opened", &Snapshot::open("2020-01-07T00:00:00Z")),
        issue(&pull, "opened", &Snapshot::open("2020-01-07T12:00:00Z")),
        comment(
            &pull,
            "created",
            &CommentSpec::new(401, "bob", "2020-01-07T12:01:00Z"),
            &Snapshot::open("2020-01-07T12:01:00Z"),
        ),
        issue(&five, "opened", &Snapshot::open("2020-01-08T00:00:00Z")),
        comment(
            &five,
            "created",
            &CommentSpec::new(501, "bob", "2020-01-08T00:30:00Z"),
            &Snapshot::open("2020-01-08T00:30:00Z"),
        ),
        issue(&five, "deleted", &Snapshot::open("2020-01-08T01:00:00Z")),
        issue(&six, "opened", &Snapshot::open("2020-01-09T00:00:00Z")),
        comment(
            &six,
            "created",
            &CommentSpec::new(601, "renovate[bot]", "2020-01-09T00:00:10Z"),
            &Snapshot::open("2020-01-09T00:00:10Z"),
        ),
        comment(
            &six,
            "created",
            &CommentSpec::new(602, "gina", "2020-01-09T00:00:20Z"),
            &Snapshot::open("2020-01-09T00:00:20Z"),
        ),
        comment(
            &six,
            "created",
            &CommentSpec::new(603, "frank", "2020-01-09T00:00:45Z"),
            &Snapshot::open("2020-01-09T00:00:45Z"),
        ),
        comment(
            &six,
            "deleted",
            &CommentSpec::new(602, "gina", "2020-01-09T00:00:20Z"),
            &Snapshot::open("2020-01-09T00:01:00Z"),
        ),
        issue(
            &six,
            "closed",
            &Snapshot::closed("2020-01-12T00:00:00Z", "not_planned"),
        ),
        issue(&seven, "opened", &Snapshot::open("2019-12-31T23:59:59Z")),
        comment(
            &seven,
            "created",
            &CommentSpec::new(701, "bob", "2020-01-01T00:00:09Z"),
            &Snapshot::open("2020-01-01T00:00:09Z"),
        ),
        issue(&eight, "opened", &Snapshot::open("2020-01-10T00:00:00Z")),
        comment(
            &eight,
            "created",
            &CommentSpec::new(801, "ivy", "2020-01-10T04:00:00Z"),
            &Snapshot::open("2020-01-10T04:00:00Z"),
        ),
    ]
}

/// The January 2020 window as query parameters.
pub const JANUARY: &str = "since=2020-01-01&until=2020-01-31";

fn zero_buckets() -> Value {
    json!({"<1d": 0, "1-7d": 0, "7-30d": 0, ">30d": 0})
}

/// The metrics of acme/gadgets in January: #6 alone.
fn gadgets() -> Value {
    json!({
        "issues": {"opened": 1, "closed": 1, "open_now": 0},
        "time_to_first_response": {"count": 1, "unanswered": 0,
            "mean_seconds": 45, "median_seconds": 45, "p90_seconds": 45},
        "time_to_close": {"count": 1, "mean_seconds": 259_200, "median_seconds": 259_200,
            "p90_seconds": 259_200, "state_reasons": {"completed": 0, "not_planned": 1}},
        "backlog": {"open": 0, "age_buckets": zero_buckets()}
    })
}

/// The metrics of acme/widgets in January: #1, #2, #3, #8.
fn widgets() -> Value {
    json!({
        "issues": {"opened": 4, "closed": 2, "open_now": 2},
        // [1800, 7200, 14400]: mean 23400/3 = 7800; median 7200;
        // p90 rank 0.9·2 = 1.8 → 7200 + 0.8·(14400 − 7200) = 12960
        "time_to_first_response": {"count": 3, "unanswered": 1,
            "mean_seconds": 7800, "median_seconds": 7200, "p90_seconds": 12_960},
        // [18000, 86400]: mean 52200; median rank 0.5 → 52200;
        // p90 rank 0.9 → 18000 + 0.9·68400 = 79560
        "time_to_close": {"count": 2, "mean_seconds": 52_200, "median_seconds": 52_200,
            "p90_seconds": 79_560, "state_reasons": {"completed": 2, "not_planned": 0}},
        // #3 and #8, both years old by now.
        "backlog": {"open": 2, "age_buckets": {"<1d": 0, "1-7d": 0, "7-30d": 0, ">30d": 2}}
    })
}

/// `?since=2020-01-01&until=2020-01-31[&group_by=repo]`.
pub fn january(grouped: bool) -> Value {
    let groups = if grouped {
        let mut gadgets = gadgets();
        gadgets["key"] = json!("acme/gadgets");
        let mut widgets = widgets();
        widgets["key"] = json!("acme/widgets");
        json!([gadgets, widgets])
    } else {
        json!([])
    };
    json!({
        // `until` is a date: the window runs to the end of the 31st.
        "window": {"since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z"},
        // #1, #2, #3, #6, #8 (not the pull request #4, the deleted #5, nor #7 from December).
        "issues": {"opened": 5, "closed": 3, "open_now": 2},
        // [45, 1800, 7200, 14400]: mean 23445/4 = 5861.25; median rank 1.5 → 1800 + 0.5·5400 = 4500;
        // p90 rank 0.9·3 = 2.7 → 7200 + 0.7·7200 = 12240. #3 is unanswered.
        "time_to_first_response": {"count": 4, "unanswered": 1,
            "mean_seconds": 5861.25, "median_seconds": 4500, "p90_seconds": 12_240},
        // [18000, 86400, 259200]: mean 363600/3 = 121200; median 86400;
        // p90 rank 1.8 → 86400 + 0.8·172800 = 224640.
        "time_to_close": {"count": 3, "mean_seconds": 121_200, "median_seconds": 86_400,
            "p90_seconds": 224_640, "state_reasons": {"completed": 2, "not_planned": 1}},
        "backlog": {"open": 2, "age_buckets": {"<1d": 0, "1-7d": 0, "7-30d": 0, ">30d": 2}},
        "groups": groups
    })
}

/// `?since=2020-01-01&until=2020-01-31&label=bug`: #1 and #2.
pub fn january_bug() -> Value {
    json!({
        "window": {"since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z"},
        "issues": {"opened": 2, "closed": 2, "open_now": 0},
        // [1800, 7200]: mean 4500; median 4500; p90 rank 0.9 → 1800 + 0.9·5400 = 6660
        "time_to_first_response": {"count": 2, "unanswered": 0,
            "mean_seconds": 4500, "median_seconds": 4500, "p90_seconds": 6660},
        "time_to_close": {"count": 2, "mean_seconds": 52_200, "median_seconds": 52_200,
            "p90_seconds": 79_560, "state_reasons": {"completed": 2, "not_planned": 0}},
        "backlog": {"open": 0, "age_buckets": zero_buckets()},
        "groups": []
    })
}

/// `?repo=acme/gadgets` over January.
pub fn january_gadgets() -> Value {
    let mut report = gadgets();
    report["window"] = json!({"since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z"});
    report["groups"] = json!([]);
    report
}
