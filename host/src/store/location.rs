//! Where a store lives: the one way every command turns `--database` (or `[server]
//! database`) into a backend, so a value no backend understands is refused instead of
//! becoming a file name.

use std::io;
use std::path::{Path, PathBuf};

/// A database location, read from `sqlite:PATH`, `sqlite://PATH`, a plain file path, or a
/// `postgres://` / `postgresql://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite database file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL database (libpq URL syntax, as sqlx reads it).
    Postgres(String),
}

impl std::fmt::Display for StoreLocation {
    /// The location without a password, for logs and errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// Why a database location was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    /// A URL of a scheme no backend reads.
    #[error(
        "`{url}`: unknown database scheme `{scheme}:`; use `sqlite:PATH`, a path or \
         `postgres://…`"
    )]
    UnknownScheme {
        /// The location as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// `sqlite:` with nothing after it.
    #[error("`{0}`: the SQLite URL names no file")]
    Empty(String),
}

impl StoreLocation {
    /// Reads a location.
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use waybill_host::store::StoreLocation;
    /// let at = |s: &str| StoreLocation::parse(s);
    /// assert_eq!(at("sqlite:/var/lib/w.db"), Ok(StoreLocation::Sqlite("/var/lib/w.db".into())));
    /// assert_eq!(at("data/w.db"), Ok(StoreLocation::Sqlite(PathBuf::from("data/w.db"))));
    /// assert_eq!(at("postgres://db/waybill"), Ok(StoreLocation::Postgres("postgres://db/waybill".into())));
    /// assert!(at("mysql://db/waybill").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        let Some((scheme, rest)) = split_scheme(text) else {
            return Ok(StoreLocation::Sqlite(PathBuf::from(text)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                // `sqlite:///abs/path` and `sqlite://rel/path` as sqlx writes them, and
                // `sqlite:path`; a query string (`?mode=rwc`) is sqlx's, not a file name.
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let path = path.split_once('?').map_or(path, |(p, _)| p);
                if path.is_empty() {
                    return Err(LocationError::Empty(text.to_owned()));
                }
                Ok(StoreLocation::Sqlite(PathBuf::from(path)))
            }
            "postgres" | "postgresql" => Ok(StoreLocation::Postgres(text.to_owned())),
            other => Err(LocationError::UnknownScheme {
                url: redact(text),
                scheme: other.to_owned(),
            }),
        }
    }
}

/// The scheme of a URL-looking location: letters, digits, `+ - .`, at least two characters
/// (so nothing here mistakes a path for a URL), before the first `:`.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let looks_like_scheme = scheme.len() >= 2
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    looks_like_scheme.then_some((scheme, rest))
}

/// The location without a password (`postgres://user:secret@host` → `postgres://user:***@host`),
/// so an error message or a printed configuration never carries it.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return text.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => text.to_owned(),
    }
}

/// Creates `dir` (and its parents) if missing, readable by its owner only: the database
/// holds tenants' keys.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the database file with mode 0600 if it does not exist yet, so SQLite (which
/// gives its WAL and shared-memory files the database file's mode) never makes a
/// world-readable file.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_forms_and_plain_paths_are_files() {
        for (text, path) in [
            ("sqlite:w.db", "w.db"),
            ("sqlite://w.db", "w.db"),
            ("sqlite:///var/lib/waybill/w.db", "/var/lib/waybill/w.db"),
            ("SQLite:/tmp/w.db?mode=rwc", "/tmp/w.db"),
            ("/var/lib/waybill/w.db", "/var/lib/waybill/w.db"),
            ("./data/w.db", "./data/w.db"),
            ("c:w.db", "c:w.db"),
        ] {
            assert_eq!(
                StoreLocation::parse(text),
                Ok(StoreLocation::Sqlite(path.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn postgres_urls_are_databases_shown_without_the_password_and_other_schemes_refused() {
        let at = StoreLocation::parse("postgres://app:hunter2@127.0.0.1/waybill").unwrap();
        assert_eq!(
            at,
            StoreLocation::Postgres("postgres://app:hunter2@127.0.0.1/waybill".into())
        );
        let shown = at.to_string();
        assert!(
            shown.contains("app:***@127.0.0.1") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(matches!(
            StoreLocation::parse("postgresql://db/w"),
            Ok(StoreLocation::Postgres(_))
        ));
        let err = StoreLocation::parse("mysql://root:pw@localhost/w").unwrap_err();
        assert_eq!(
            err,
            LocationError::UnknownScheme {
                url: "mysql://root:***@localhost/w".into(),
                scheme: "mysql".into()
            }
        );
        assert_eq!(
            StoreLocation::parse("sqlite:"),
            Err(LocationError::Empty("sqlite:".into()))
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_directory_and_the_file_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
        let file = dir.join("w.db");
        create_private_file(&file).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        // An existing file keeps its content.
        std::fs::write(&file, b"x").unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}
