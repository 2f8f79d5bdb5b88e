//! Compiles proto/ with protox (pure Rust: no protoc to download) into prost messages, and with
//! the `server` feature also the tonic service and a descriptor set for reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = root.join("tollgate/v1/grants.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&root])?;
    #[cfg(feature = "server")]
    {
        use protox::prost::Message;
        let out = PathBuf::from(std::env::var("OUT_DIR")?);
        std::fs::write(out.join("descriptor.bin"), descriptors.encode_to_vec())?;
        tonic_prost_build::configure()
            .build_client(false)
            .build_server(true)
            .compile_fds(descriptors)?;
    }
    #[cfg(not(feature = "server"))]
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
