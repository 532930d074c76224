//! Generates the tonic/prost code from `proto/` with a vendored `protoc`, so a fresh machine
//! builds with cargo alone (no system protoc, no environment variables).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // tonic-prost-build emits no rerun-if-changed of its own.
    println!("cargo:rerun-if-changed=proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        // Undecodable requests are the caller's error, not INTERNAL (see src/codec.rs).
        .codec_path("crate::codec::LedgerCodec")
        .file_descriptor_set_path(out_dir.join("ledger_descriptor.bin"))
        .compile_with_config(config, &["proto/ledger/v1/ledger.proto", "proto/ledger/v1/raft.proto"], &["proto"])?;
    Ok(())
}
