//! gRPC services, listeners (Unix socket, TCP), health and reflection.

/// Generated protobuf messages and tonic clients/servers for `warden.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("warden.v1");
}

/// Encoded `FileDescriptorSet` of every `warden.v1` proto, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");
