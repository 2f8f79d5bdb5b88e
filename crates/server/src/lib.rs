//! The Tollgate server: authoritative store, live grant snapshot, admin REST API and CLI.
//!
//! Layers, outermost first (each may use the ones below it, never one above):
//!
//! * [`http`] — the admin REST API (axum): router, extractors, DTOs, OpenAPI, error mapping.
//! * [`grpc`] — ext_authz `Check` and the filter's `Grants` service (tonic), on the snapshot.
//! * [`service`] — admin operations and their rules; typed [`service::ServiceError`]s.
//! * [`directory`] — the live grant snapshot, published from the store's change feed.
//! * [`store`] — the authoritative store, opened from its URL into one [`store::AnyStore`].
//!
//! Beside them: [`model`] (domain types), [`serve`] (wiring and listeners), [`config`],
//! [`metrics`], [`usage`] (last-used times) and [`cli`].

pub mod cli;
pub mod config;
pub mod console;
pub mod directory;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod model;
pub mod serve;
pub mod service;
pub mod store;
pub mod usage;

// Module paths from before the layers, kept so that tests, fuzz targets and tools that name
// them keep compiling.
pub use grpc::{authz, grants};
pub use http as api;
pub use http::error;
pub use service as admin;
