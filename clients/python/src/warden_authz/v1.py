"""Every ``warden.v1`` message module and gRPC stub module, generated from Warden's protos
when the package was built: ``authz_pb2`` / ``authz_pb2_grpc`` (Check, BatchCheck, lookups),
``directory_pb2`` / ``directory_pb2_grpc`` (orgs, members, teams, apps, users) and the rest.
Use them on :attr:`warden_authz.Client.channel` for calls the wrapper does not cover."""

from ._proto.warden.v1 import (  # noqa: F401
    admin_pb2,
    admin_pb2_grpc,
    apps_pb2,
    apps_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    authz_pb2,
    authz_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    lifecycle_pb2,
    lifecycle_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)
