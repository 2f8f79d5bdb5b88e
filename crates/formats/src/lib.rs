//! The write formats Tollgate confines to a label policy, as prost messages generated from the
//! vendored protos in `proto/` (see proto/README.md). The filter and ext_authz read these bodies
//! at the wire level (`tollgate_core::write`); these types are the independent decoder that tests,
//! fuzz targets and benchmarks build and check bodies with.

#![allow(clippy::all, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Module paths follow the proto packages, as prost's generated cross-references expect.
pub mod opentelemetry {
    pub mod proto {
        macro_rules! package {
            ($name:ident, $file:literal) => {
                pub mod $name {
                    pub mod v1 {
                        include!(concat!(env!("OUT_DIR"), "/", $file));
                    }
                }
            };
        }
        package!(common, "opentelemetry.proto.common.v1.rs");
        package!(resource, "opentelemetry.proto.resource.v1.rs");
        package!(metrics, "opentelemetry.proto.metrics.v1.rs");
        package!(logs, "opentelemetry.proto.logs.v1.rs");
        package!(trace, "opentelemetry.proto.trace.v1.rs");
        /// The request messages of `/v1/metrics`, `/v1/logs` and `/v1/traces`.
        pub mod collector {
            package!(metrics, "opentelemetry.proto.collector.metrics.v1.rs");
            package!(logs, "opentelemetry.proto.collector.logs.v1.rs");
            package!(trace, "opentelemetry.proto.collector.trace.v1.rs");
        }
    }
}

/// OTLP under short names.
pub mod otlp {
    pub use super::opentelemetry::proto::collector::{
        logs::v1 as logs_service, metrics::v1 as metrics_service, trace::v1 as trace_service,
    };
    pub use super::opentelemetry::proto::{
        common::v1 as common, logs::v1 as logs, metrics::v1 as metrics, resource::v1 as resource,
        trace::v1 as trace,
    };
}

/// Prometheus remote write 1.0 (`prometheus.WriteRequest`).
pub mod remote_write_v1 {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Prometheus remote write 2.0 (`io.prometheus.write.v2.Request`).
pub mod remote_write_v2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}

/// Loki's push request (`logproto.PushRequest`).
pub mod loki {
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
}
