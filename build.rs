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

/// Messages the HTTP/JSON listener reads or writes.
const JSON_MESSAGES: &[&str] = &[
    "CheckRequest",
    "CheckResponse",
    "Explanation",
    "NearMiss",
    "BatchCheckRequest",
    "BatchCheckResponse",
    "BatchCheckResult",
    "ItemError",
    "LookupResourcesRequest",
    "LookupResourcesResponse",
    "LookupSubjectsRequest",
    "LookupSubjectsResponse",
    "GetOrgRequest",
    "Org",
    "OrgSettings",
    "ListMembersRequest",
    "ListMembersResponse",
    "Member",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded here; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut build =
        tonic_prost_build::configure().file_descriptor_set_path(out_dir.join("warden_descriptor.bin"));
    // The HTTP/JSON listener (src/api/http.rs) speaks these messages as JSON, with the
    // proto field names; requests are strict about unknown fields.
    for message in JSON_MESSAGES {
        build = build.message_attribute(
            format!(".warden.v1.{message}"),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default, deny_unknown_fields)]",
        );
    }
    build = build.enum_attribute(
        ".warden.v1.BatchCheckResult.result",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")]",
    );
    build.compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
