//! Compiles `proto/warden/v1/*.proto` into Rust (prost messages + tonic clients and
//! servers) and writes the file descriptor set that gRPC reflection serves.
//!
//! protoc comes from `protoc-bin-vendored`, so building Warden never needs a system
//! protoc and every machine compiles the protos with the same version.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/warden/v1/authz.proto",
    "proto/warden/v1/admin.proto",
    "proto/warden/v1/directory.proto",
    "proto/warden/v1/lifecycle.proto",
    "proto/warden/v1/tokens.proto",
    "proto/warden/v1/audit.proto",
    "proto/warden/v1/apps.proto",
    "proto/warden/v1/security.proto",
    "proto/warden/v1/usage.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded here; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // prost's codec, with a request that does not decode answered INVALID_ARGUMENT.
        .codec_path("crate::api::codec::Codec")
        .file_descriptor_set_path(out_dir.join("warden_descriptor.bin"))
        .compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
