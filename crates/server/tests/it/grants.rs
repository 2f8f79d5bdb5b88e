//! `tollgate.v1.Grants`, the filter's protocol: Resolve by hash, and the change feed.

use crate::harness::TestServer;
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;
use tollgate_proto::v1::{ChangesRequest, ResolveRequest, change::Kind, grants_server::Grants};
use tollgate_server::directory::Directory;
use tollgate_server::grants::GrantsService;
use tollgate_server::store::SqliteStore;

async fn service(server: &TestServer) -> (GrantsService, Arc<Directory<SqliteStore>>) {
    let store = SqliteStore::open(&format!("sqlite://{}", server.store_path.display()))
        .await
        .unwrap();
    let directory = Arc::new(Directory::open(store).await.unwrap());
    (GrantsService::new(directory.clone()), directory)
}

fn hash(token: &str) -> Vec<u8> {
    tollgate_core::Token::parse(token)
        .unwrap()
        .hash()
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn resolve_and_feed() {
    let server = TestServer::start().await;
    let (id, token) = server
        .account_with_token(json!({"name": "dash", "role": "viewer", "labelPolicy": "{ns=\"a\"}"}))
        .await;
    let (service, directory) = service(&server).await;

    let resolved = service
        .resolve(tonic::Request::new(ResolveRequest {
            token_hash: hash(&token),
        }))
        .await
        .unwrap()
        .into_inner();
    let grant = resolved.grant.expect("known token");
    assert_eq!(
        (
            grant.account.as_str(),
            grant.tenant.as_str(),
            grant.role.as_str(),
            grant.label_policy.as_str()
        ),
        ("dash", "default", "viewer", "{ns=\"a\"}")
    );
    assert_eq!(resolved.revision, directory.snapshot().revision());
    let unknown = tollgate_core::Token::generate().unwrap();
    let none = service
        .resolve(tonic::Request::new(ResolveRequest {
            token_hash: unknown.hash().as_bytes().to_vec(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(none.grant.is_none());
    let bad = service
        .resolve(tonic::Request::new(ResolveRequest {
            token_hash: vec![1, 2, 3],
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // A new cache asks without a cursor and gets the current revision only.
    let start = service
        .changes(tonic::Request::new(ChangesRequest {
            since: None,
            limit: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(start.changes.is_empty() && !start.resync);
    let cursor = start.revision;

    let tokens = server
        .admin(
            Method::GET,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            None,
        )
        .await
        .json;
    let token_id = tokens["tokens"][0]["id"].as_i64().unwrap();
    server
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            None,
        )
        .await
        .expect(204, "");
    // This directory is a second reader of the store: it catches up like a replica would.
    directory.refresh().await.unwrap();
    let feed = service
        .changes(tonic::Request::new(ChangesRequest {
            since: Some(cursor),
            limit: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(feed.changes.len(), 1);
    assert_eq!(feed.changes[0].token_hash, hash(&token));
    assert_eq!(feed.changes[0].kind, Kind::Revoked as i32);
    assert!(feed.revision > cursor && !feed.more);

    // Paging through a long feed.
    for i in 0..5 {
        server
            .account_with_token(json!({"name": format!("bulk-{i}"), "role": "viewer"}))
            .await;
    }
    directory.refresh().await.unwrap();
    let first = service
        .changes(tonic::Request::new(ChangesRequest {
            since: Some(feed.revision),
            limit: 2,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.changes.len(), first.more), (2, true));
    let rest = service
        .changes(tonic::Request::new(ChangesRequest {
            since: Some(first.revision),
            limit: 100,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rest.changes.len(), rest.more), (3, false));

    // A cursor from the future (a replaced store): start over.
    let resync = service
        .changes(tonic::Request::new(ChangesRequest {
            since: Some(rest.revision + 100),
            limit: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resync.resync);
    assert_eq!(resync.revision, directory.snapshot().revision());
    server.stop().await;
}

async fn next(
    stream: &mut <GrantsService as Grants>::WatchStream,
) -> tollgate_proto::v1::ChangesResponse {
    use futures_util::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("a message within 5 s")
        .expect("the stream goes on")
        .expect("no error")
}

#[tokio::test]
async fn watch_pushes_changes_as_they_publish_with_the_membership_filter() {
    use tollgate_core::membership::Membership;
    use tollgate_proto::v1::WatchRequest;

    let server = TestServer::start().await;
    let (id, token) = server
        .account_with_token(json!({"name": "pushed", "role": "viewer"}))
        .await;
    let (service, directory) = service(&server).await;
    let mut stream = service
        .watch(tonic::Request::new(WatchRequest {
            since: None,
            heartbeat_ms: 200,
            membership: true,
        }))
        .await
        .unwrap()
        .into_inner();

    // First: the current revision and the membership filter of every live token.
    let first = next(&mut stream).await;
    assert_eq!(first.revision, directory.snapshot().revision());
    let wire = first.membership.expect("membership asked for");
    let filter = Membership::from_parts(wire.bits, wire.hashes).unwrap();
    let live = tollgate_core::Token::parse(&token).unwrap().hash();
    assert!(filter.may_contain(&live));
    let strangers = (0..1000)
        .filter(|_| filter.may_contain(&tollgate_core::Token::generate().unwrap().hash()))
        .count();
    assert!(strangers < 50, "{strangers} of 1000 forged tokens pass");

    // Nothing happens: a heartbeat at the same revision, without the filter again.
    let heartbeat = next(&mut stream).await;
    assert_eq!(heartbeat.revision, first.revision);
    assert!(heartbeat.changes.is_empty() && heartbeat.membership.is_none());

    // A revocation is pushed as soon as the directory publishes it.
    let tokens = server
        .admin(
            Method::GET,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            None,
        )
        .await
        .json;
    let token_id = tokens["tokens"][0]["id"].as_i64().unwrap();
    server
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            None,
        )
        .await
        .expect(204, "");
    let published = std::time::Instant::now();
    directory.refresh().await.unwrap();
    let pushed = loop {
        let message = next(&mut stream).await;
        if !message.changes.is_empty() {
            break message;
        }
    };
    assert!(
        published.elapsed() < std::time::Duration::from_millis(190),
        "pushed, not sent with the next heartbeat"
    );
    assert_eq!(pushed.changes.len(), 1);
    assert_eq!(pushed.changes[0].token_hash, hash(&token));
    assert_eq!(pushed.changes[0].kind, Kind::Revoked as i32);
    assert!(pushed.revision > first.revision);

    // A cursor from another store: resync, with a fresh filter.
    let mut foreign = service
        .watch(tonic::Request::new(WatchRequest {
            since: Some(u64::MAX),
            heartbeat_ms: 1000,
            membership: true,
        }))
        .await
        .unwrap()
        .into_inner();
    let resync = next(&mut foreign).await;
    assert!(resync.resync && resync.membership.is_some());

    // Without the filter asked for, none is sent.
    let mut plain = service
        .watch(tonic::Request::new(WatchRequest {
            since: None,
            heartbeat_ms: 0,
            membership: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(next(&mut plain).await.membership.is_none());
}

#[tokio::test]
async fn watch_streams_end_when_the_server_stops() {
    use futures_util::StreamExt;
    use tollgate_proto::v1::WatchRequest;
    let server = TestServer::start().await;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (service, _directory) = service(&server).await;
    let service = service.with_shutdown(stopping);
    let mut stream = service
        .watch(tonic::Request::new(WatchRequest {
            since: None,
            heartbeat_ms: 60_000,
            membership: false,
        }))
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    stop.send(true).unwrap();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("ends at once, not at the next heartbeat");
    assert!(end.is_none());
}
