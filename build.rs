//! Compiles `proto/warden/v1/*.proto` into the daemon's tonic servers and writes the file
//! descriptor set that gRPC reflection serves. The messages and clients are the
//! `warden-client` crate's (`extern_path`): one set of Rust types on both sides, and the
//! CLI talks to the daemon through that crate.
//!
//! protoc comes from `protoc-bin-vendored`, so building Warden never needs a system
//! protoc and every machine compiles the protos with the same version.
//!
//! It reruns only when a proto or this file changes (`cargo:rerun-if-changed`); without
//! those lines cargo reruns it, and so rebuilds the crate, after any change to any file of
//! the package. The embedded default policies are `include_str!`ed, which cargo tracks on
//! its own.

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
    println!("cargo:rerun-if-changed=build.rs");
    // The directory: a proto added there (and imported) counts too.
    println!("cargo:rerun-if-changed=proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded here; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(".warden.v1", "::warden_client::pb")
        // prost's codec, with a request that does not decode answered INVALID_ARGUMENT.
        .codec_path("crate::api::codec::Codec")
        .file_descriptor_set_path(out_dir.join("warden_descriptor.bin"))
        .compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
