//! Micro-benchmarks of the core's hot paths: `make bench` runs them (criterion).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tollgate_core::promql::Enforcer;
use tollgate_core::{Grant, Policy, RequestView, Role, RouteTable, Token, decide};

/// Queries of the kind dashboards send (kube-prometheus, node exporter, Prometheus itself),
/// one per line; `tollgate-bench promql` times the same list.
const DASHBOARD_QUERIES: &str = include_str!("dashboard_queries.promql");

fn token(c: &mut Criterion) {
    let token = Token::generate().unwrap();
    let header = format!("Bearer {}", token.expose_secret());
    c.bench_function("token: parse bearer + checksum", |b| {
        b.iter(|| Token::from_authorization(black_box(&header)))
    });
    c.bench_function("token: sha-256", |b| b.iter(|| black_box(&token).hash()));
}

fn selectors(c: &mut Criterion) {
    let policy = Policy::parse(r#"{tenant="a", env=~"prod|staging"} or {team="b"}"#).unwrap();
    let narrow = Policy::parse(r#"{tenant="a", env="prod", job="api"}"#).unwrap();
    let wide = Policy::parse(r#"{tenant=~"a|b"}"#).unwrap();
    c.bench_function("selector: contains (narrowing)", |b| {
        b.iter(|| black_box(&policy).contains(black_box(&narrow)))
    });
    c.bench_function("selector: contains (widening)", |b| {
        b.iter(|| black_box(&policy).contains(black_box(&wide)))
    });
    c.bench_function("selector: parse policy", |b| {
        b.iter(|| Policy::parse(black_box(r#"{tenant="a", env=~"prod|staging"}"#)))
    });
}

fn decision(c: &mut Criterion) {
    let grant = Grant {
        token_id: 1,
        account_id: 1,
        account: "dash".into(),
        tenant: "acme".into(),
        role: Role::Viewer.as_str().into(),
        scopes: Role::Viewer.scopes(),
        policy: Policy::parse(r#"{kube_namespace="prometheus"}"#).unwrap(),
        expires_at: None,
        all_tenants: false,
        read_tenants: Default::default(),
        hide_policy_labels: false,
    };
    let routes = RouteTable::default();
    c.bench_function("decide: allow with narrowing header", |b| {
        b.iter(|| {
            let mut view = RequestView::new("GET", "/api/v1/query_range?query=up");
            view.observe_header(
                "x-tollgate-labels",
                r#"{kube_namespace="prometheus", job="a"}"#,
            );
            view.observe_header("x-scope-orgid", "acme");
            decide(black_box(&grant), &view, &routes, 1_800_000_000)
        })
    });
}

fn promql(c: &mut Criterion) {
    let enforcer = Enforcer::new(&Policy::parse(r#"{kube_namespace="prometheus"}"#).unwrap())
        .unwrap()
        .unwrap();
    let mut group = c.benchmark_group("promql: enforce dashboard query");
    for (i, query) in DASHBOARD_QUERIES.lines().enumerate() {
        group.bench_function(format!("q{i}"), |b| {
            b.iter(|| enforcer.rewrite_query(black_box(query)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, token, selectors, decision, promql);
criterion_main!(benches);
