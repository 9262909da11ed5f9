//! Whether an existing database has exactly the schema this herald expects, read from the
//! migration table without changing anything: commands other than `serve` and `migrate` use a
//! store only in that state, and otherwise say which command brings it there.

use std::collections::BTreeSet;

/// What is wrong with a database's schema, for a command that will not migrate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SchemaProblem {
    /// No migration table: an empty database, or not herald's.
    NoTables,
    /// Migrations this herald has and the database lacks.
    Pending,
    /// A migration this herald does not know: a newer herald migrated it.
    Newer { version: i64 },
    /// A migration that failed part-way.
    Dirty { version: i64 },
}

impl SchemaProblem {
    /// One line, naming the database as `at` shows it.
    pub(super) fn message(&self, at: &str) -> String {
        match self {
            Self::NoTables => format!(
                "the database at {at} has no herald tables; run `herald migrate` first, or point HERALD_DATABASE_URL at an existing herald database"
            ),
            Self::Pending => {
                format!("the database at {at} needs `herald migrate` (this herald is newer)")
            }
            Self::Newer { version } => format!(
                "the database at {at} was migrated by a newer herald (migration {version} is unknown to this one); run that herald, or upgrade this one"
            ),
            Self::Dirty { version } => format!(
                "migration {version} of the database at {at} stopped part-way; run `herald migrate` to see why"
            ),
        }
    }
}

/// Compares the migrations this binary knows with those the database records
/// (`(version, success)` rows of `_sqlx_migrations`).
pub(super) fn verdict(known: &[i64], applied: &[(i64, bool)]) -> Result<(), SchemaProblem> {
    let known: BTreeSet<i64> = known.iter().copied().collect();
    if let Some((version, _)) = applied.iter().find(|(_, success)| !success) {
        return Err(SchemaProblem::Dirty { version: *version });
    }
    let applied: BTreeSet<i64> = applied.iter().map(|(version, _)| *version).collect();
    if applied.is_disjoint(&known) {
        // An empty migration table, or another program's migrations.
        return Err(SchemaProblem::NoTables);
    }
    if let Some(version) = applied.difference(&known).next() {
        return Err(SchemaProblem::Newer { version: *version });
    }
    if !known.is_subset(&applied) {
        return Err(SchemaProblem::Pending);
    }
    Ok(())
}

/// Whether reading the migration table failed because there is none.
pub(super) fn is_missing_table(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            // PostgreSQL's undefined_table; SQLite says so in words.
            database.code().as_deref() == Some("42P01")
                || database.message().starts_with("no such table")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [i64; 3] = [1, 2, 4];

    #[test]
    fn only_exactly_this_schema_passes() {
        assert_eq!(verdict(&KNOWN, &[(1, true), (2, true), (4, true)]), Ok(()));
        assert_eq!(
            verdict(&KNOWN, &[(1, true), (2, true)]),
            Err(SchemaProblem::Pending)
        );
        assert_eq!(verdict(&KNOWN, &[]), Err(SchemaProblem::NoTables));
        assert_eq!(
            verdict(&KNOWN, &[(20_240_101, true)]),
            Err(SchemaProblem::NoTables),
            "another program's migrations"
        );
        assert_eq!(
            verdict(&KNOWN, &[(1, true), (2, true), (4, true), (5, true)]),
            Err(SchemaProblem::Newer { version: 5 })
        );
        assert_eq!(
            verdict(&KNOWN, &[(1, true), (2, false)]),
            Err(SchemaProblem::Dirty { version: 2 })
        );
    }

    #[test]
    fn messages_say_which_command_fixes_it() {
        assert_eq!(
            SchemaProblem::Pending.message("/srv/herald.db"),
            "the database at /srv/herald.db needs `herald migrate` (this herald is newer)"
        );
        assert!(
            SchemaProblem::NoTables
                .message("x")
                .contains("run `herald migrate` first")
        );
    }
}
