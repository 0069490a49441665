"""Python client for Warden, the authorization sidecar.

    from warden_authz import Client

    with Client() as warden:              # WARDEN_CONNECT, else unix:./data/warden.sock
        if warden.can("alice", "acme", "apps/web", "app:write"):
            ...

``Client`` asks the questions applications ask (``can``, ``check``, ``explain``, ``batch``,
``lookup_resources``, ``lookup_subjects``), reads its own writes with ``at_revision``, and
takes a deadline per call (``timeout``) and a bearer token for TCP. The generated messages and
stubs of every ``warden.v1`` service are in :mod:`warden_authz.v1`.
"""

from .client import (
    DEFAULT_CONNECT,
    Client,
    Decision,
    Explanation,
    ItemError,
    WardenError,
    grpc_target,
)

__all__ = [
    "DEFAULT_CONNECT",
    "Client",
    "Decision",
    "Explanation",
    "ItemError",
    "WardenError",
    "grpc_target",
]
