//! Integration tests: a real server on 127.0.0.1:0, a real HTTP client, the built CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod authz;
mod cli;
mod grants;
mod harness;
mod roles;
mod security;
