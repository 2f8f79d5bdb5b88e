//! The conformance suite and the replica cases on a throwaway PostgreSQL cluster per test, and
//! what only PostgreSQL has: concurrent migrations, a newer schema, TLS settings, an outage.
//! Skipped with a loud message where PostgreSQL is not installed, failed under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::store::conformance::{conformance_suite, replica_suite};
use crate::store::{StoreErrorKind, open};

// The cluster harness the end-to-end suites use too; standard library and tempfile only.
#[path = "../../../../../tests/src/postgres.rs"]
#[allow(dead_code)]
mod cluster;

pub(crate) use cluster::PgCluster;

/// A fresh cluster with database `tollgate`, or `None` (skip) when PostgreSQL is missing.
fn cluster() -> Option<PgCluster> {
    let cluster = match PgCluster::start() {
        Ok(cluster) => cluster?,
        Err(err) => panic!("cannot start PostgreSQL: {err}"),
    };
    cluster.create_database("tollgate").unwrap();
    Some(cluster)
}

async fn open_one() -> Option<(PostgresStore, PgCluster)> {
    let cluster = cluster()?;
    let store = PostgresStore::open(&cluster.url("tollgate")).await.unwrap();
    Some((store, cluster))
}

/// Two replicas: two pools on one database, opened (and migrated) at once.
async fn open_pair() -> Option<(PostgresStore, PostgresStore, PgCluster)> {
    let cluster = cluster()?;
    let url = cluster.url("tollgate");
    let (a, b) = tokio::join!(PostgresStore::open(&url), PostgresStore::open(&url));
    Some((a.unwrap(), b.unwrap(), cluster))
}

conformance_suite!(conformance, open_one());
replica_suite!(replicas, open_pair());

#[tokio::test]
async fn schema_is_versioned_and_a_newer_one_is_refused() {
    let Some(cluster) = cluster() else { return };
    let url = cluster.url("tollgate");
    let store = PostgresStore::open(&url).await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(version, schema::MIGRATIONS.len() as i64);
    // Reopening applies nothing and keeps the data.
    drop(PostgresStore::open(&url).await.unwrap());
    sqlx::query("UPDATE schema_version SET version = 99")
        .execute(&store.pool)
        .await
        .unwrap();
    let err = PostgresStore::open(&url).await.err().expect("newer schema");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

#[tokio::test]
async fn urls_passwords_and_tls_settings() {
    let Some(cluster) = cluster() else { return };
    // Through the backend-neutral `open`, with `postgresql://` too.
    let url = cluster
        .url("tollgate")
        .replace("postgres://", "postgresql://");
    assert!(matches!(
        open(&url).await.unwrap(),
        crate::store::AnyStore::Postgres(_)
    ));

    // A wrong password: a clear error, without the password.
    let wrong = cluster
        .url("tollgate")
        .replace(cluster::PASSWORD, "wrong-s3cret");
    let err = PostgresStore::open(&wrong)
        .await
        .err()
        .expect("wrong password");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    assert!(!message.contains("wrong-s3cret"), "{message}");

    for mode in ["require", "verify-ca", "verify-full"] {
        let url = cluster
            .url("tollgate")
            .replace("sslmode=disable", &format!("sslmode={mode}"));
        let err = PostgresStore::open(&url).await.err().expect("no TLS");
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err}");
        assert!(err.to_string().contains("no TLS"), "{err}");
        assert!(!err.to_string().contains(cluster::PASSWORD), "{err}");
    }
}

/// PostgreSQL gone: reads and writes fail fast as transient `Unavailable`; back: the same pool
/// works again by itself, and the listener reconnects and wakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_and_heals() {
    let Some((store, cluster)) = open_one().await else {
        return;
    };
    let listener = store.listen();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !listener.is_connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("listener connects");
    cluster.stop().unwrap();
    let started = std::time::Instant::now();
    let err = store.is_bootstrapped().await.expect_err("down");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < ACQUIRE_TIMEOUT + Duration::from_secs(2));
    tokio::time::timeout(Duration::from_secs(5), async {
        while listener.is_connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("listener notices");

    cluster.start_again().unwrap();
    tokio::time::timeout(Duration::from_secs(15), async {
        while store.is_bootstrapped().await.is_err() || !listener.is_connected() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("pool and listener recover");
}

/// A write through one replica wakes the other's listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_notifies_other_replicas() {
    let Some((a, b, _cluster)) = open_pair().await else {
        return;
    };
    let listener = b.listen();
    // The first wake-up is the one every (re)connection sends.
    tokio::time::timeout(Duration::from_secs(5), listener.changed())
        .await
        .expect("connected");
    let account = a
        .create_account(
            crate::model::NewAccount {
                tenant: Name::parse("acme").unwrap(),
                name: Name::parse("ci").unwrap(),
                display_name: String::new(),
                description: String::new(),
                owner_email: String::new(),
                role: Name::parse("viewer").unwrap(),
                label_policy: String::new(),
                all_tenants: false,
                read_tenants: Default::default(),
                hide_policy_labels: false,
                created_at: 1,
                created_by: "t".into(),
            },
            audit(),
        )
        .await
        .unwrap();
    let token = tollgate_core::Token::generate().unwrap();
    let started = std::time::Instant::now();
    a.create_token(
        account.id,
        NewToken {
            name: Name::parse("t").unwrap(),
            hash: token.hash(),
            hint: token.hint(),
            created_at: 1,
            expires_at: None,
        },
        audit(),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(1), listener.changed())
        .await
        .expect("notified within 1 s");
    assert!(started.elapsed() < Duration::from_secs(1));
    let changes = b.changes_since(0, 10).await.unwrap();
    assert_eq!(changes.last().map(|c| c.hash), Some(token.hash()));
}

fn audit() -> AuditRecord {
    AuditRecord {
        at: 1,
        actor: "t".into(),
        tenant: "acme".into(),
        action: "x".into(),
        target: "x".into(),
        outcome: "ok".into(),
    }
}
