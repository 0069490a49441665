//! gRPC services, listeners (Unix socket, TCP), health and reflection.
