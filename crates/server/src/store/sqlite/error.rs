//! SQLite's errors in the store's backend-neutral terms: a kind, and whether trying again may
//! help. Nothing outside this folder sees a `sqlx` error.

use crate::store::{StoreError, StoreErrorKind};

// SQLite primary result codes (https://sqlite.org/rescode.html).
pub(super) const BUSY: i64 = 5;
pub(super) const LOCKED: i64 = 6;
pub(super) const READONLY: i64 = 8;
const IOERR: i64 = 10;
const CORRUPT: i64 = 11;
const FULL: i64 = 13;
pub(super) const CANTOPEN: i64 = 14;
const NOTADB: i64 = 26;

/// SQLite's primary result code of a database error (the low byte of the extended code);
/// `None` for anything else, including another database's errors.
pub(super) fn primary_code(err: &sqlx::Error) -> Option<i64> {
    let db = err.as_database_error()?;
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    let code = db.code()?;
    code.parse::<i64>().ok().map(|code| code & 0xff)
}

/// The store's kind of a SQLite failure, and whether it is transient.
fn classify(err: &sqlx::Error) -> (StoreErrorKind, bool) {
    use StoreErrorKind::{Corrupt, NotFound, Unavailable};
    match err {
        sqlx::Error::Database(_) => match primary_code(err) {
            Some(BUSY | LOCKED) => (Unavailable, true),
            Some(CORRUPT | NOTADB) => (Corrupt, false),
            Some(IOERR | FULL) => (Unavailable, true),
            _ => (Unavailable, false),
        },
        sqlx::Error::RowNotFound => (NotFound, false),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => (Corrupt, false),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => {
            (Unavailable, true)
        }
        _ => (Unavailable, false),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        let (kind, transient) = classify(&err);
        StoreError::Backend {
            kind,
            detail: err.to_string(),
            transient,
        }
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// Maps a unique-constraint violation to `Conflict` on `what` named `name`.
pub(super) fn conflict(what: &'static str, name: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    let name = name.to_owned();
    move |err| {
        if is_unique_violation(&err) {
            StoreError::Conflict { what, name }
        } else {
            StoreError::from(err)
        }
    }
}
