//! The gRPC layer (tonic): Envoy's ext_authz `Check` ([`authz`]) and the filter's
//! `tollgate.v1.Grants` ([`grants`]); [`wire`] serves `Check` with its answers encoded by hand.
//!
//! May use: tonic, `envoy-types`, `tollgate-proto`, the core crate's pipeline, the live snapshot
//! through a [`SnapshotHandle`](crate::directory::SnapshotHandle), metrics and usage recording.
//! Never the admin service, the HTTP layer or a store backend: a Check reads memory only.

pub mod authz;
pub mod grants;
pub mod wire;
