//! The SQLite file behind a URL, checked before SQLite opens it, so a missing or read-only
//! folder is reported once, by name, with what to do (SQLite itself only says "unable to open
//! database file", without the path).

use std::path::{Path, PathBuf};

/// What `HERALD_DATABASE_URL` should look like, for the advice in messages.
const EXAMPLE: &str = "HERALD_DATABASE_URL=sqlite:///PATH/herald.db";

/// Whether a SQLite URL names an in-memory database, which has no file to check.
pub(super) fn in_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    rest.starts_with(":memory:")
        || rest
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|pair| pair == "mode=memory"))
}

/// `path` made absolute against the working directory, so a relative URL such as
/// `sqlite://herald.db` is shown as the file it really is.
pub(super) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The folder that holds `file` (the working directory for a bare file name).
fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// For `serve` and `migrate`, which create the database when it is missing: the folder must
/// exist and be writable (SQLite writes the `-wal` and `-shm` files beside the database even
/// when the database exists), and an existing file must be writable.
pub(super) fn check_creatable(file: &Path) -> Result<(), String> {
    let file = absolute(file);
    let folder = folder_of(&file);
    match std::fs::metadata(&folder) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "{} is not a folder, so it cannot hold the database; set {EXAMPLE} to a file in a folder",
                folder.display()
            ));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "the folder {} does not exist; create it or set {EXAMPLE}",
                folder.display()
            ));
        }
        Err(error) => {
            return Err(format!(
                "cannot use the folder {}: {error}; set {EXAMPLE} to a folder herald can write",
                folder.display()
            ));
        }
    }
    if file.is_dir() {
        return Err(format!(
            "{} is a folder, not a database file; set {EXAMPLE}",
            file.display()
        ));
    }
    if let Err(error) = probe_folder(&folder) {
        return Err(format!(
            "cannot write in {}: {error}; make the folder writable for this user or set {EXAMPLE} to one that is",
            folder.display()
        ));
    }
    if file.exists()
        && let Err(error) = std::fs::OpenOptions::new().write(true).open(&file)
    {
        return Err(format!(
            "cannot write to {}: {error}; make it writable for this user or set {EXAMPLE}",
            file.display()
        ));
    }
    Ok(())
}

/// Creates and removes a file in `folder`: the only honest test of whether this process may
/// create files there (permission bits say nothing of read-only mounts, ACLs or root).
fn probe_folder(folder: &Path) -> std::io::Result<()> {
    let probe = folder.join(format!(".herald-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// For every other command, which never creates a database: the file must be there.
pub(super) fn check_existing(file: &Path) -> Result<(), String> {
    let file = absolute(file);
    match std::fs::metadata(&file) {
        Ok(metadata) if metadata.is_dir() => Err(format!(
            "{} is a folder, not a herald database; point HERALD_DATABASE_URL at herald's database file",
            file.display()
        )),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "no herald database at {} (HERALD_DATABASE_URL); run `herald serve` or `herald migrate` first, or point HERALD_DATABASE_URL at an existing one",
            file.display()
        )),
        Err(error) => Err(format!(
            "cannot read {}: {error}; point HERALD_DATABASE_URL at a database this user can read",
            file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_in_memory_urls() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://shared?mode=memory&cache=shared",
        ] {
            assert!(in_memory(url), "{url}");
        }
        for url in ["sqlite://herald.db", "sqlite:///tmp/memory.db?mode=rwc"] {
            assert!(!in_memory(url), "{url}");
        }
    }

    #[test]
    fn a_bare_file_name_lives_in_the_working_directory() {
        assert_eq!(folder_of(Path::new("herald.db")), PathBuf::from("."));
        assert_eq!(
            folder_of(Path::new("/x/y/herald.db")),
            PathBuf::from("/x/y")
        );
    }

    #[test]
    fn names_the_missing_folder_and_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("no/such/folder/herald.db");
        let message = check_creatable(&file).unwrap_err();
        assert_eq!(
            message,
            format!(
                "the folder {} does not exist; create it or set HERALD_DATABASE_URL=sqlite:///PATH/herald.db",
                dir.path().join("no/such/folder").display()
            )
        );
        let existing = check_existing(&file).unwrap_err();
        assert!(
            existing.starts_with(&format!("no herald database at {}", file.display())),
            "{existing}"
        );
    }

    #[test]
    fn a_file_where_the_folder_should_be_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let message = check_creatable(&plain.join("herald.db")).unwrap_err();
        assert!(
            message.starts_with(&format!("{} is not a folder", plain.display())),
            "{message}"
        );
        let folder = check_creatable(dir.path()).unwrap_err();
        assert!(
            folder.contains("is a folder, not a database file"),
            "{folder}"
        );
        assert!(
            check_existing(dir.path())
                .unwrap_err()
                .contains("is a folder")
        );
    }

    #[test]
    fn a_writable_folder_passes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        check_creatable(&dir.path().join("herald.db")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
