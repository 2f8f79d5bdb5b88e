//! Tollgate's own protocol between the filter and the server (`proto/tollgate/v1`).

pub mod v1 {
    #![allow(clippy::all, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    include!(concat!(env!("OUT_DIR"), "/tollgate.v1.rs"));
}

mod grant;
pub use grant::{GrantWireError, grant_from_wire, grant_to_wire};

/// gRPC path of `Grants.Resolve`, for callers that dispatch by name (the filter).
pub const SERVICE: &str = "tollgate.v1.Grants";
pub const RESOLVE: &str = "Resolve";
pub const CHANGES: &str = "Changes";
pub const WATCH: &str = "Watch";

/// The encoded descriptor set, for gRPC reflection.
#[cfg(feature = "server")]
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
