//! What the documents promise about the commands and the image: `herald bigquery schema` prints
//! what docs/cloud-run.md feeds to `bq mk`; every setting docs/cloud-run.md and
//! docs/bigquery/README.md name is one herald knows; the Dockerfile is what the docs describe.

use std::path::Path;

use serde_json::Value;

use crate::helpers::run_herald;

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).unwrap()
}

#[tokio::test]
async fn bigquery_schema_prints_the_fields_and_the_ddl() {
    let json = run_herald(&["bigquery", "schema"], &[]).await;
    assert!(json.success, "{json:?}");
    let fields: Value = serde_json::from_str(&json.stdout).unwrap();
    let names: Vec<&str> = fields
        .as_array()
        .unwrap()
        .iter()
        .map(|field| field["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 10);
    assert_eq!(
        fields[9],
        serde_json::json!({"name": "payload", "type": "JSON", "mode": "REQUIRED",
        "description": "The webhook's body, as GitHub sent it"})
    );
    let ddl = run_herald(
        &[
            "bigquery",
            "schema",
            "--format",
            "ddl",
            "--table",
            "p1.herald.events",
        ],
        &[],
    )
    .await;
    assert!(
        ddl.stdout
            .starts_with("CREATE TABLE IF NOT EXISTS `p1.herald.events` ("),
        "{ddl:?}"
    );
    assert!(
        ddl.stdout
            .contains("PARTITION BY DATE(occurred_at)\nCLUSTER BY repository"),
        "{ddl:?}"
    );
    let placeholder = run_herald(&["bigquery", "schema", "--format", "ddl"], &[]).await;
    assert!(
        placeholder.stdout.contains("`PROJECT.DATASET.TABLE`"),
        "{placeholder:?}"
    );
}

#[tokio::test]
async fn the_table_can_come_from_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    let one = "[destinations.warehouse]\nkind = \"bigquery\"\ntable = \"p1.from_file.events\"\n";
    std::fs::write(&path, one).unwrap();
    let config = path.display().to_string();
    let ddl = run_herald(
        &["bigquery", "schema", "--format", "ddl"],
        &[("HERALD_CONFIG", &config)],
    )
    .await;
    assert!(ddl.stdout.contains("`p1.from_file.events`"), "{ddl:?}");
    std::fs::write(
        &path,
        format!(
            "{one}[destinations.archive]\nkind = \"bigquery\"\ntable = \"p1.archive.events\"\n"
        ),
    )
    .unwrap();
    let ambiguous = run_herald(&["bigquery", "setup"], &[("HERALD_CONFIG", &config)]).await;
    assert!(!ambiguous.success);
    assert!(
        ambiguous.stderr.contains(
            "several BigQuery destinations (archive, warehouse); choose one with --destination NAME"
        ),
        "{ambiguous:?}"
    );
    let chosen = run_herald(
        &[
            "bigquery",
            "schema",
            "--format",
            "ddl",
            "--destination",
            "archive",
        ],
        &[("HERALD_CONFIG", &config)],
    )
    .await;
    assert!(chosen.stdout.contains("`p1.archive.events`"), "{chosen:?}");
}

#[tokio::test]
async fn the_documents_name_only_settings_herald_knows() {
    let help = run_herald(&["serve", "--help"], &[]).await;
    assert!(help.success);
    let setup = run_herald(&["bigquery", "setup", "--help"], &[]).await;
    for document in ["docs/cloud-run.md", "docs/bigquery/README.md"] {
        let text = read(document);
        let mut named: Vec<&str> = text
            .match_indices("HERALD_")
            .map(|(start, _)| {
                let rest = &text[start..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        named.extend(
            [
                "GOOGLE_APPLICATION_CREDENTIALS",
                "GCE_METADATA_HOST",
                "GOOGLE_CLOUD_PROJECT",
            ]
            .into_iter()
            .filter(|name| text.contains(name)),
        );
        assert!(!named.is_empty() || document.contains("bigquery"));
        for name in named {
            assert!(
                help.stdout.contains(&format!("env: {name}"))
                    || setup.stdout.contains(&format!("env: {name}")),
                "{document} names {name}, which `herald serve --help` does not list"
            );
        }
    }
    let cloud_run = read("docs/cloud-run.md");
    for flag in [
        "--no-cpu-throttling",
        "--min-instances=1",
        "--add-cloudsql-instances",
        "--service-account",
    ] {
        assert!(
            cloud_run.contains(flag),
            "docs/cloud-run.md deploys with {flag}"
        );
    }
    let dockerfile = read("Dockerfile");
    for line in [
        "USER 65532:65532",
        "ENTRYPOINT [\"/usr/local/bin/herald\"]",
        "CMD [\"serve\"]",
        " && strip target/release/herald",
        "FROM gcr.io/distroless/cc-debian12:nonroot",
        "cargo build --release --locked --bin herald",
    ] {
        assert!(dockerfile.contains(line), "the Dockerfile has {line:?}");
    }
    // The dependency layer comes before the sources are copied in.
    let dependencies = dockerfile.find("COPY Cargo.toml Cargo.lock").unwrap();
    let sources = dockerfile.find("COPY src ./src").unwrap();
    assert!(
        dependencies < dockerfile.find("cargo build").unwrap()
            && dockerfile.find("cargo build").unwrap() < sources
    );
}
