//! Why a PostgreSQL connection failed, in the operator's words, with the setting to change:
//! "connection refused", "unknown host", "authentication failed", "database does not exist",
//! rather than the pool's "timed out" ten seconds later.

use std::io::ErrorKind;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

/// Where herald tried to connect, for the explanation (never the password).
pub(super) struct Server {
    host: String,
    port: u16,
    /// The Unix socket folder (`host=/cloudsql/…` or `host=/var/run/postgresql`), if any.
    socket: Option<String>,
    user: String,
    database: Option<String>,
}

impl Server {
    pub(super) fn of(options: &PgConnectOptions) -> Self {
        Self {
            host: options.get_host().to_owned(),
            port: options.get_port(),
            socket: options.get_socket().map(|path| path.display().to_string()),
            user: options.get_username().to_owned(),
            database: options.get_database().map(str::to_owned),
        }
    }

    fn address(&self) -> String {
        match &self.socket {
            Some(folder) => format!("the socket {folder}/.s.PGSQL.{}", self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }
}

/// The cause of a failed connection and the next step, in one line.
pub(super) fn explain(error: &sqlx::Error, server: &Server) -> String {
    match error {
        sqlx::Error::Database(database) => {
            by_code(database.code().as_deref(), database.message(), server)
        }
        sqlx::Error::Io(io) => by_io(io, server),
        sqlx::Error::Tls(tls) => format!(
            "the TLS handshake failed ({tls}); check sslmode and the certificates in HERALD_DATABASE_URL"
        ),
        sqlx::Error::PoolTimedOut => no_answer(server, None),
        other => other.to_string(),
    }
}

/// No answer at all within `waited` (a firewall dropping packets, the wrong address).
pub(super) fn no_answer(server: &Server, waited: Option<Duration>) -> String {
    let within = waited.map_or_else(String::new, |waited| {
        format!(" within {}", humantime::format_duration(waited))
    });
    format!(
        "no answer from {}{within}; check the host and port in HERALD_DATABASE_URL and any firewall in between",
        server.address()
    )
}

/// Errors the server sent, by SQLSTATE.
fn by_code(code: Option<&str>, message: &str, server: &Server) -> String {
    match code {
        // invalid_password; invalid_authorization_specification (no pg_hba.conf entry, no role).
        Some("28P01" | "28000") => format!(
            "authentication failed for user {:?} ({message}); check the user and password in HERALD_DATABASE_URL",
            server.user
        ),
        // invalid_catalog_name
        Some("3D000") => {
            let name = server.database.as_deref().unwrap_or(&server.user);
            format!(
                "database {name:?} does not exist; create it (`createdb {name}`) or fix the database name in HERALD_DATABASE_URL"
            )
        }
        // cannot_connect_now
        Some("57P03") => {
            format!("{message}; the server is starting or stopping, try again in a moment")
        }
        // too_many_connections
        Some("53300") => format!(
            "{message}; lower HERALD_DATABASE_MAX_CONNECTIONS or raise max_connections on the server"
        ),
        _ => message.to_owned(),
    }
}

/// Errors of the connection itself.
fn by_io(error: &std::io::Error, server: &Server) -> String {
    let text = error.to_string();
    if text.starts_with("failed to lookup address") {
        return format!(
            "unknown host {:?}; check the host in HERALD_DATABASE_URL",
            server.host
        );
    }
    match (error.kind(), &server.socket) {
        (ErrorKind::ConnectionRefused, None) => format!(
            "connection refused by {}; is PostgreSQL running and listening there? Check the host and port in HERALD_DATABASE_URL",
            server.address()
        ),
        (ErrorKind::ConnectionRefused | ErrorKind::NotFound, Some(_)) => format!(
            "nothing listens on {}; is PostgreSQL running? Check host= in HERALD_DATABASE_URL",
            server.address()
        ),
        (ErrorKind::TimedOut, _) => no_answer(server, None),
        (ErrorKind::PermissionDenied, Some(_)) => format!(
            "permission denied on {}; let this user reach the socket, or connect over TCP",
            server.address()
        ),
        _ => strip_os_code(&text).to_owned(),
    }
}

/// `Connection reset by peer (os error 104)` without the number.
fn strip_os_code(text: &str) -> &str {
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> Server {
        Server {
            host: "db.internal".into(),
            port: 5432,
            socket: None,
            user: "app".into(),
            database: Some("herald".into()),
        }
    }

    #[test]
    fn server_errors_name_the_setting_to_change() {
        let server = tcp();
        for (code, message, expected) in [
            (
                "28P01",
                "password authentication failed for user \"app\"",
                "authentication failed for user \"app\" (password authentication failed for user \"app\"); check the user and password in HERALD_DATABASE_URL",
            ),
            (
                "3D000",
                "database \"herald\" does not exist",
                "database \"herald\" does not exist; create it (`createdb herald`) or fix the database name in HERALD_DATABASE_URL",
            ),
            (
                "53300",
                "sorry, too many clients already",
                "sorry, too many clients already; lower HERALD_DATABASE_MAX_CONNECTIONS or raise max_connections on the server",
            ),
            ("XX000", "something else", "something else"),
        ] {
            assert_eq!(by_code(Some(code), message, &server), expected);
        }
    }

    #[test]
    fn connection_errors_say_what_happened_where() {
        let server = tcp();
        let refused = sqlx::Error::Io(std::io::Error::from(ErrorKind::ConnectionRefused));
        assert_eq!(
            explain(&refused, &server),
            "connection refused by db.internal:5432; is PostgreSQL running and listening there? Check the host and port in HERALD_DATABASE_URL"
        );
        let lookup = sqlx::Error::Io(std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        ));
        assert_eq!(
            explain(&lookup, &server),
            "unknown host \"db.internal\"; check the host in HERALD_DATABASE_URL"
        );
        let socket = Server {
            socket: Some("/cloudsql/p:r:i".into()),
            ..tcp()
        };
        let missing = sqlx::Error::Io(std::io::Error::from(ErrorKind::NotFound));
        assert_eq!(
            explain(&missing, &socket),
            "nothing listens on the socket /cloudsql/p:r:i/.s.PGSQL.5432; is PostgreSQL running? Check host= in HERALD_DATABASE_URL"
        );
        assert_eq!(
            no_answer(&server, Some(Duration::from_secs(5))),
            "no answer from db.internal:5432 within 5s; check the host and port in HERALD_DATABASE_URL and any firewall in between"
        );
        assert_eq!(
            strip_os_code("Connection reset by peer (os error 104)"),
            "Connection reset by peer"
        );
    }
}
