//! Compiles `../proto/warden/v1/*.proto` (the daemon's own protos, at the repository root)
//! into prost messages and tonic clients. No servers: those are the daemon's, which takes
//! its message types from this crate so both sides share one set of Rust types.
//!
//! protoc comes from `protoc-bin-vendored`, so building the client never needs a system
//! protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let dir = root.join("warden/v1");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut protos: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    protos.retain(|p| p.extension().is_some_and(|x| x == "proto"));
    // Sorted so the generated file does not depend on the directory's order.
    protos.sort();
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded here; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&protos, &[root])?;
    Ok(())
}
