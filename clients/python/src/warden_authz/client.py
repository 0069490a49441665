"""The wrapper: plain Python types over the generated ``AuthzService`` stub."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import grpc

from ._proto.warden.v1 import authz_pb2, authz_pb2_grpc

#: The address used when neither ``connect`` nor ``WARDEN_CONNECT`` names one: the socket of
#: ``warden serve`` in its default data directory, relative to the working directory.
DEFAULT_CONNECT = "unix:./data/warden.sock"

#: One check: (subject, org, resource, action).
Item = Tuple[str, str, str, str]

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def grpc_target(connect: str) -> str:
    """Warden's address syntax (``unix:PATH`` or ``tcp:HOST:PORT``) as a gRPC target."""
    if connect.startswith("unix:") and len(connect) > len("unix:"):
        return connect
    if connect.startswith("tcp:") and len(connect) > len("tcp:"):
        return connect[len("tcp:") :]
    raise ValueError(f"connect={connect!r}: expected unix:PATH or tcp:HOST:PORT")


class WardenError(Exception):
    """The daemon refused a call or could not be reached. ``code`` is the gRPC status code
    (``INVALID_ARGUMENT`` names the field in ``message``; ``UNAVAILABLE``: no daemon there;
    ``DEADLINE_EXCEEDED``: the call's ``timeout`` passed)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Explanation:
    """The decisive rule and role path of a decision."""

    effect: str
    #: Empty for a deny that no rule matched.
    rule_file: str
    rule_line: int
    rule_text: str
    #: e.g. ``bob -[role:org_contributor@acme]-> role:org_contributor``.
    role_path: str


@dataclass(frozen=True)
class Decision:
    """A decision, the directory revision it was made at, and (from ``explain``) why."""

    allowed: bool
    #: Pass to :meth:`Client.at_revision` to read at least this state elsewhere.
    revision: int
    decision_id: str = ""
    explanation: Optional[Explanation] = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class ItemError:
    """Why one item of :meth:`Client.batch` got no decision (the others still do)."""

    code: grpc.StatusCode
    #: Names the item and field, e.g. ``items[1].subject: must not be empty``.
    message: str


class Client:
    """A connection to one Warden daemon.

    ``connect`` is ``unix:PATH`` or ``tcp:HOST:PORT``; ``None`` reads ``WARDEN_CONNECT``, then
    uses ``unix:./data/warden.sock``. A Unix socket is used with no channel options at all:
    Warden accepts whatever ``:authority`` grpc-core sends there.

    ``token`` is sent as ``authorization: Bearer <token>`` on every call (what a daemon
    started with ``--tcp-token-sha256`` asks of TCP callers). ``root_certificates`` (PEM
    bytes) turns on TLS for a ``tcp:`` address; ``tls_server_name`` overrides the name the
    certificate is checked against. ``timeout`` is each call's deadline in seconds (``None``:
    none). Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        connect: Optional[str] = None,
        *,
        token: Optional[str] = None,
        timeout: Optional[float] = None,
        root_certificates: Optional[bytes] = None,
        tls_server_name: Optional[str] = None,
    ) -> None:
        self.connect = connect or os.environ.get("WARDEN_CONNECT") or DEFAULT_CONNECT
        target = grpc_target(self.connect)
        if token is not None and not (token.isascii() and token.isprintable()):
            # Checked before a channel exists, so a bad token leaks nothing.
            raise ValueError("token: must be printable ASCII (it is sent as an authorization header)")
        if root_certificates is not None:
            if self.connect.startswith("unix:"):
                raise ValueError(
                    f"connect={self.connect!r}: TLS applies to tcp: addresses only "
                    "(a Unix socket is reached without it)"
                )
            options = []
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            self._channel = grpc.secure_channel(
                target, grpc.ssl_channel_credentials(root_certificates), options=options
            )
        else:
            self._channel = grpc.insecure_channel(target)
        self._metadata: Tuple[Tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token is not None else ()
        )
        self._stub = authz_pb2_grpc.AuthzServiceStub(self._channel)
        self._timeout = timeout
        self._min_revision = 0

    # Views sharing the connection ------------------------------------------------------

    def _view(self, **changes) -> "Client":
        view = object.__new__(Client)
        view.__dict__.update(self.__dict__)
        view.__dict__.update(changes)
        return view

    def at_revision(self, min_revision: int) -> "Client":
        """The same connection, every call answered at directory revision ``min_revision``
        or later (read your own writes: pass the revision a directory change returned). The
        daemon waits briefly for a revision it has not reached, then refuses with
        ``FAILED_PRECONDITION``."""
        if min_revision < 0:
            raise ValueError(f"min_revision: must be 0 or more, got {min_revision}")
        return self._view(_min_revision=min_revision)

    def with_timeout(self, timeout: Optional[float]) -> "Client":
        """The same connection with another deadline per call, in seconds."""
        return self._view(_timeout=timeout)

    @property
    def channel(self) -> grpc.Channel:
        """The gRPC channel, for the other services' stubs in :mod:`warden_authz.v1`."""
        return self._channel

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Questions -------------------------------------------------------------------------

    def can(self, subject: str, org: str, resource: str, action: str) -> bool:
        """May ``subject`` do ``action`` on ``resource`` in ``org``?"""
        return self._decide((subject, org, resource, action), explain=False).allowed

    def check(self, subject: str, org: str, resource: str, action: str) -> Decision:
        """:meth:`can` with the revision and decision id."""
        return self._decide((subject, org, resource, action), explain=False)

    def explain(self, subject: str, org: str, resource: str, action: str) -> Decision:
        """:meth:`check` with the decisive rule (``file:line``, effect) and role path."""
        return self._decide((subject, org, resource, action), explain=True)

    def batch(self, items: Iterable[Item]) -> List[Union[bool, ItemError]]:
        """Many checks in one round trip, answered in the order asked. An item the daemon
        rejects (an empty field, say) is an :class:`ItemError`; the others still decide."""
        req = authz_pb2.BatchCheckRequest(
            items=[_check_request(i) for i in items], min_revision=self._min_revision
        )
        resp = self._call(self._stub.BatchCheck, req)
        out: List[Union[bool, ItemError]] = []
        for r in resp.results:
            which = r.WhichOneof("result")
            if which == "decision":
                out.append(r.decision.allowed)
            elif which == "error":
                out.append(ItemError(_CODES.get(r.error.code, grpc.StatusCode.UNKNOWN), r.error.message))
            else:
                out.append(ItemError(grpc.StatusCode.INTERNAL, "the daemon sent an empty result"))
        return out

    def lookup_resources(self, subject: str, org: str, action: str, page_size: int = 0) -> List[str]:
        """Every resource in ``org`` that ``subject`` may ``action``, all pages followed
        (``page_size`` per round trip; 0 is the daemon's default)."""
        req = authz_pb2.LookupResourcesRequest(
            subject=subject, org=org, action=action, page_size=page_size, min_revision=self._min_revision
        )
        return self._pages(self._stub.LookupResources, req, "resources")

    def lookup_subjects(self, org: str, resource: str, action: str, page_size: int = 0) -> List[str]:
        """Every member of ``org`` who may ``action`` on ``resource``, all pages followed."""
        req = authz_pb2.LookupSubjectsRequest(
            org=org, resource=resource, action=action, page_size=page_size, min_revision=self._min_revision
        )
        return self._pages(self._stub.LookupSubjects, req, "subjects")

    # Plumbing --------------------------------------------------------------------------

    def _decide(self, item: Item, explain: bool) -> Decision:
        req = _check_request(item)
        req.explain = explain
        req.min_revision = self._min_revision
        resp = self._call(self._stub.Check, req)
        why = None
        if resp.HasField("explanation"):
            e = resp.explanation
            why = Explanation(e.effect, e.rule_file, e.rule_line, e.rule_text, e.role_path)
        return Decision(resp.allowed, resp.revision, resp.decision_id, why)

    def _pages(self, method, req, field: str) -> List[str]:
        out: List[str] = []
        while True:
            page = self._call(method, req)
            out.extend(getattr(page, field))
            if not page.next_page_token:
                return out
            # Later pages are read at least at the first page's revision, so a directory
            # change mid-iteration cannot make the token meaningless.
            req.min_revision = max(req.min_revision, page.revision)
            req.page_token = page.next_page_token

    def _call(self, method, req):
        try:
            return method(req, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            code = e.code() if callable(getattr(e, "code", None)) else grpc.StatusCode.UNKNOWN
            details = e.details() if callable(getattr(e, "details", None)) else str(e)
            raise WardenError(code, details or "") from e


def _check_request(item: Sequence[str]) -> "authz_pb2.CheckRequest":
    subject, org, resource, action = item
    return authz_pb2.CheckRequest(subject=subject, org=org, resource=resource, action=action)
