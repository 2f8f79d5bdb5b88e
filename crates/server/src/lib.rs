//! The Tollgate server: authoritative store, live grant snapshot, admin REST API and CLI.

pub mod admin;
pub mod api;
pub mod authz;
pub mod cli;
pub mod config;
pub mod directory;
pub mod error;
pub mod grants;
pub mod metrics;
pub mod model;
pub mod serve;
pub mod store;
pub mod usage;
