//! Connecting: clear errors for a wrong URL or an unreachable server, never a password; and
//! opening an existing store (every command but `serve` and `migrate`), which never creates or
//! migrates one.

use std::time::Duration;

use herald::config::DatabaseConfig;
use herald::store::Store;

use crate::databases;

fn config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        database_url: url.into(),
        database_max_connections: 2,
        database_statement_timeout: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error_without_the_password() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once; the
    // message says so instead of the pool's "timed out" ten seconds later.
    let error = Store::connect(&config("postgres://herald:hunter2@127.0.0.1:9/herald"))
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert_eq!(
        message,
        "cannot connect to PostgreSQL at postgres://herald:[redacted]@127.0.0.1:9/herald: \
         connection refused by 127.0.0.1:9; is PostgreSQL running and listening there? Check \
         the host and port in HERALD_DATABASE_URL"
    );
    let unknown = Store::open_existing(&config(
        "postgres://herald:hunter2@no-such-host.invalid/herald",
    ))
    .await
    .unwrap_err();
    assert_eq!(
        format!("{unknown:#}"),
        "cannot connect to PostgreSQL at postgres://herald:[redacted]@no-such-host.invalid/herald: \
         unknown host \"no-such-host.invalid\"; check the host in HERALD_DATABASE_URL"
    );
}

#[tokio::test]
async fn a_missing_postgres_database_is_named_with_the_command_that_creates_it() {
    let Some(db) = databases::postgres().await else {
        return;
    };
    let (server, _) = db.url.rsplit_once('/').unwrap();
    let url = format!("{server}/herald_no_such_database");
    for result in [
        Store::connect(&config(&url)).await,
        Store::open_existing(&config(&url)).await,
    ] {
        let message = format!("{:#}", result.unwrap_err());
        assert_eq!(
            message,
            format!(
                "cannot connect to PostgreSQL at {url}: database \"herald_no_such_database\" does \
                 not exist; create it (`createdb herald_no_such_database`) or fix the database name \
                 in HERALD_DATABASE_URL"
            )
        );
    }
}

#[tokio::test]
async fn malformed_urls_are_rejected_clearly() {
    for url in [
        "postgres://herald:hunter2@127.0.0.1:notaport/db",
        "mysql://root:hunter2@localhost/db",
        "herald.db",
    ] {
        let message = format!("{:#}", Store::connect(&config(url)).await.unwrap_err());
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.contains("invalid PostgreSQL URL") || message.contains("must start with"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_missing_sqlite_folder_is_named_once_with_what_to_do() {
    let message = format!(
        "{:#}",
        Store::connect(&config("sqlite:///nonexistent-dir/herald.db"))
            .await
            .unwrap_err()
    );
    assert_eq!(
        message,
        "the folder /nonexistent-dir does not exist; create it or set \
         HERALD_DATABASE_URL=sqlite:///PATH/herald.db"
    );
}

#[tokio::test]
async fn a_sqlite_url_without_a_file_is_refused() {
    // SQLite would give each pooled connection a private temporary database: migrations on
    // one, "no such table" on the others.
    for url in ["sqlite://", "sqlite://?mode=rwc"] {
        for result in [
            Store::connect(&config(url)).await,
            Store::open_existing(&config(url)).await,
        ] {
            assert_eq!(
                format!("{:#}", result.unwrap_err()),
                format!("{url} names no file; set HERALD_DATABASE_URL=sqlite:///PATH/herald.db")
            );
        }
    }
}

#[tokio::test]
async fn a_read_only_folder_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("read-only");
    std::fs::create_dir(&folder).unwrap();
    // Root writes through permission bits, so as root the folder is a read-only mount.
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&folder)
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let url = format!("sqlite://{}", folder.join("herald.db").display());
    let message = format!("{:#}", Store::connect(&config(&url)).await.unwrap_err());
    if mounted {
        let _ = std::process::Command::new("umount").arg(&folder).status();
    }
    let cause = if mounted {
        "Read-only file system (os error 30)"
    } else {
        "Permission denied (os error 13)"
    };
    assert_eq!(
        message,
        format!(
            "cannot write in {}: {cause}; make the folder writable for this user or set \
             HERALD_DATABASE_URL=sqlite:///PATH/herald.db to one that is",
            folder.display()
        )
    );
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(
        &file,
        "not a database, but long enough to have a header of sorts\n".repeat(20),
    )
    .unwrap();
    let url = format!("sqlite://{}", file.display());
    let message = format!(
        "{:#}",
        Store::open_existing(&config(&url)).await.unwrap_err()
    );
    assert_eq!(
        message,
        format!(
            "{} is not a SQLite database; point HERALD_DATABASE_URL at herald's database",
            file.display()
        )
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_reported_after_a_short_deadline() {
    // Accepts the connection and never says a word, as a firewall that drops replies would
    // leave it; the pool alone would retry for ten seconds and then only say it timed out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let url = format!("postgres://herald:hunter2@{address}/herald");
    let message = format!("{:#}", Store::connect(&config(&url)).await.unwrap_err());
    silent.abort();
    assert_eq!(
        message,
        format!(
            "cannot connect to PostgreSQL at postgres://herald:[redacted]@{address}/herald: no \
             answer from {address} within 5s; check the host and port in HERALD_DATABASE_URL \
             and any firewall in between"
        )
    );
}

#[tokio::test]
async fn opening_never_creates_a_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.db");
    let url = format!("sqlite://{}", file.display());
    let message = format!(
        "{:#}",
        Store::open_existing(&config(&url)).await.unwrap_err()
    );
    assert_eq!(
        message,
        format!(
            "no herald database at {} (HERALD_DATABASE_URL); run `herald serve` or `herald \
             migrate` first, or point HERALD_DATABASE_URL at an existing one",
            file.display()
        )
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn opening_refuses_a_database_without_this_heralds_schema() {
    for db in databases::all().await {
        let at = if db.label == "sqlite" {
            db.url.trim_start_matches("sqlite://").to_owned()
        } else {
            db.url.clone()
        };
        if db.label == "sqlite" {
            // An empty file, as `herald deliveries list` used to leave behind.
            std::fs::write(&at, b"").unwrap();
        }
        let message = format!(
            "{:#}",
            Store::open_existing(&db.config()).await.unwrap_err()
        );
        assert_eq!(
            message,
            format!(
                "the database at {at} has no herald tables; run `herald migrate` first, or point \
                 HERALD_DATABASE_URL at an existing herald database"
            ),
            "{}",
            db.label
        );

        // An older herald's database: every migration but the newest applied.
        migrate_all_but_the_newest(&db).await;
        let message = format!(
            "{:#}",
            Store::open_existing(&db.config()).await.unwrap_err()
        );
        assert_eq!(
            message,
            format!("the database at {at} needs `herald migrate` (this herald is newer)"),
            "{}",
            db.label
        );
        // `herald migrate` (here, `connect`) brings it up to date; then it opens.
        db.connect().await.close().await;
        let store = Store::open_existing(&db.config()).await.unwrap();
        assert_eq!(store.count_events().await.unwrap(), 0, "{}", db.label);
        store.close().await;
    }
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_herald_is_refused_by_every_command() {
    for db in databases::all().await {
        db.connect().await.close().await;
        execute(
            &db,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             SELECT 999999, 'from the future', success, checksum, execution_time \
             FROM _sqlx_migrations WHERE version = 1",
        )
        .await;
        for result in [
            Store::open_existing(&db.config()).await,
            Store::connect(&db.config()).await,
        ] {
            let message = format!("{:#}", result.unwrap_err());
            assert!(
                message.contains(
                    "was migrated by a newer herald (migration 999999 is unknown to this one)"
                ),
                "{}: {message}",
                db.label
            );
        }
    }
}

/// Runs one statement on the test database directly, as another program (or an older or newer
/// herald) would have.
async fn execute(db: &databases::TestDatabase, sql: &'static str) {
    use sqlx::Connection;
    if db.label == "sqlite" {
        let mut connection = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&mut connection).await.unwrap();
        connection.close().await.unwrap();
    } else {
        let mut connection = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&mut connection).await.unwrap();
        connection.close().await.unwrap();
    }
}

/// Migrates the test database as the herald before the newest migration did.
async fn migrate_all_but_the_newest(db: &databases::TestDatabase) {
    use sqlx::Connection;
    fn older(migrator: &sqlx::migrate::Migrator) -> i64 {
        let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        versions[versions.len() - 2]
    }
    if db.label == "sqlite" {
        let migrator = sqlx::migrate!("migrations/sqlite");
        let mut connection = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        migrator
            .run_to(older(&migrator), &mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
    } else {
        let migrator = sqlx::migrate!("migrations/postgres");
        let mut connection = sqlx::PgConnection::connect(&db.url).await.unwrap();
        migrator
            .run_to(older(&migrator), &mut connection)
            .await
            .unwrap();
        connection.close().await.unwrap();
    }
}
