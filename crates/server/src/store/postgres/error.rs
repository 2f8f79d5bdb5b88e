//! PostgreSQL's errors in the store's backend-neutral terms: a kind, and whether trying again
//! may help. Nothing outside this folder sees a `sqlx` error.
//!
//! Classified by SQLSTATE class (https://www.postgresql.org/docs/current/errcodes-appendix.html):
//! a server that is down, restarting, overloaded or that picked this transaction as a deadlock
//! victim is `Unavailable` and transient; that is what the admin API answers 503 for.

use crate::store::{StoreError, StoreErrorKind};

/// SQLSTATE of a unique-constraint violation.
const UNIQUE_VIOLATION: &str = "23505";

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?;
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    db.code().map(|code| code.into_owned())
}

/// The store's kind of a PostgreSQL failure, and whether it is transient.
fn classify(err: &sqlx::Error) -> (StoreErrorKind, bool) {
    use StoreErrorKind::{Corrupt, NotFound, Unavailable, Unsupported};
    match err {
        sqlx::Error::Database(_) => match sqlstate(err).as_deref() {
            // Connection exceptions, insufficient resources, operator intervention (shutdown,
            // cannot connect now), serialization failure and deadlock.
            Some(code)
                if ["08", "53", "57"]
                    .iter()
                    .any(|class| code.starts_with(class))
                    || code == "40001"
                    || code == "40P01" =>
            {
                (Unavailable, true)
            }
            Some("XX001" | "XX002") => (Corrupt, false),
            _ => (Unavailable, false),
        },
        sqlx::Error::RowNotFound => (NotFound, false),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => (Corrupt, false),
        sqlx::Error::Configuration(_) => (Unsupported, false),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => (Unavailable, true),
        _ => (Unavailable, false),
    }
}

/// A PostgreSQL failure as a [`StoreError`]. The message is sqlx's: it names the server's error
/// or the I/O failure, never the connection URL or its password.
pub(super) fn backend(err: sqlx::Error) -> StoreError {
    let (kind, transient) = classify(&err);
    StoreError::Backend {
        kind,
        detail: format!("PostgreSQL: {err}"),
        transient,
    }
}

/// `?` on sqlx results inside this folder: every error goes through [`backend`].
pub(super) trait PgResult<T> {
    fn pg(self) -> Result<T, StoreError>;
}

impl<T> PgResult<T> for Result<T, sqlx::Error> {
    fn pg(self) -> Result<T, StoreError> {
        self.map_err(backend)
    }
}

/// Maps a unique-constraint violation to `Conflict` on `what` named `name`.
pub(super) fn conflict(what: &'static str, name: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    let name = name.to_owned();
    move |err| {
        if sqlstate(&err).as_deref() == Some(UNIQUE_VIOLATION) {
            StoreError::Conflict { what, name }
        } else {
            backend(err)
        }
    }
}
