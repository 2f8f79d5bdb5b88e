//! Compiles the vendored write-format protos (proto/opentelemetry, proto/prometheus, proto/loki)
//! with protox: pure Rust, no protoc.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    "prometheus/write/v1/remote.proto",
    "prometheus/write/v2/types.proto",
    "loki/push.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    for dir in ["opentelemetry", "prometheus", "loki"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let files: Vec<PathBuf> = FILES.iter().map(|f| root.join(f)).collect();
    let descriptors = protox::compile(&files, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
