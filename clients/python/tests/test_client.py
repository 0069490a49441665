"""warden_authz.Client against the real daemon serving the demo directory."""

import grpc
import pytest

from warden_authz import Client, Decision, ItemError, WardenError, grpc_target
from warden_authz.v1 import directory_pb2, directory_pb2_grpc


def test_default_client_reads_warden_connect_and_needs_no_channel_options(unix_target):
    # No argument: WARDEN_CONNECT (set to the daemon's Unix socket) names the daemon, and
    # the channel has no options (no grpc.default_authority) yet every call works.
    with Client() as warden:
        assert warden.connect == unix_target
        assert warden.can("alice", "acme", "apps/web", "app:write") is True
        assert warden.can("dave", "acme", "apps/web", "app:write") is False
        assert warden.can("dave", "acme", "apps/web", "app:read") is True


def test_check_and_explain_carry_revision_and_rule(unix_target):
    with Client(unix_target) as warden:
        d = warden.check("alice", "acme", "apps/web", "app:write")
        assert isinstance(d, Decision) and d.allowed and d.revision > 0
        assert d.decision_id
        assert d.explanation is None
        why = warden.explain("alice", "acme", "apps/web", "app:write").explanation
        assert why is not None and why.effect == "allow"
        assert why.rule_file.endswith("policy.csv") and why.rule_line > 0
        assert why.role_path.startswith("alice")
        denied = warden.explain("dave", "acme", "apps/web", "app:write")
        assert not denied and denied.explanation is not None


def test_batch_answers_in_order_with_per_item_errors(unix_target):
    with Client(unix_target) as warden:
        answers = warden.batch(
            [
                ("carol", "acme", "apps/web", "app:write"),
                ("carol", "acme", "apps/api", "app:read"),
                ("carol", "acme", "", "app:read"),
                ("alice", "acme", "apps/api", "app:delete"),
            ]
        )
        assert answers[0] is True and answers[1] is False and answers[3] is True
        assert isinstance(answers[2], ItemError)
        assert answers[2].code == grpc.StatusCode.INVALID_ARGUMENT
        assert answers[2].message.startswith("items[2].resource")


def test_lookups_follow_every_page(unix_target):
    with Client(unix_target) as warden:
        paged = warden.lookup_resources("dave", "acme", "app:read", page_size=1)
        assert paged == ["apps/api", "apps/web"]
        assert warden.lookup_resources("dave", "acme", "app:read") == paged
        assert warden.lookup_resources("carol", "acme", "app:write") == ["apps/web"]
        subjects = warden.lookup_subjects("acme", "apps/web", "app:write", page_size=1)
        assert "alice" in subjects and "carol" in subjects and "dave" not in subjects


def test_refusals_are_typed_errors_naming_the_field(unix_target):
    with Client(unix_target) as warden:
        with pytest.raises(WardenError) as e:
            warden.can("", "acme", "apps/web", "app:read")
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "subject" in e.value.message


def test_at_revision_reads_your_writes_and_a_deadline_bounds_the_wait(unix_target):
    with Client(unix_target) as warden:
        assert not warden.can("dave", "acme", "apps/api", "app:write")
        # Promote dave through the generated MemberService stub on the same channel.
        members = directory_pb2_grpc.MemberServiceStub(warden.channel)
        changed = members.UpdateMemberRole(
            directory_pb2.UpdateMemberRoleRequest(
                actor="alice", org_id="acme", user_id="dave", role="org_contributor"
            ),
            timeout=10,
        )
        fresh = warden.at_revision(changed.revision).check("dave", "acme", "apps/api", "app:write")
        assert fresh.allowed and fresh.revision >= changed.revision
        # A revision the directory will not reach: the call ends at its deadline (the daemon
        # is started with a minute's --min-revision-wait, so only the deadline can end it).
        with pytest.raises(WardenError) as e:
            warden.at_revision(changed.revision + 1_000_000).with_timeout(0.3).can("alice", "acme", "apps/web", "app:write")
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(ValueError):
            warden.at_revision(-1)


def test_tcp_needs_the_bearer_token_the_daemon_was_given(tcp_target, tcp_token):
    with Client(tcp_target, token=tcp_token, timeout=10) as warden:
        assert warden.can("alice", "acme", "apps/web", "app:write")
    with Client(tcp_target, timeout=10) as anonymous:
        with pytest.raises(WardenError) as e:
            anonymous.can("alice", "acme", "apps/web", "app:write")
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_no_daemon_is_unavailable_and_bad_addresses_are_refused(tmp_path):
    with Client(f"unix:{tmp_path}/none.sock", timeout=5) as nobody:
        with pytest.raises(WardenError) as e:
            nobody.can("alice", "acme", "apps/web", "app:write")
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
    for bad in ["unix:", "tcp:", "localhost:50051", "http://x"]:
        with pytest.raises(ValueError, match="expected unix:PATH or tcp:HOST:PORT"):
            grpc_target(bad)
    with pytest.raises(ValueError, match="TLS applies to tcp:"):
        Client("unix:/tmp/x.sock", root_certificates=b"")
    with pytest.raises(ValueError, match="token: must be printable ASCII"):
        Client("tcp:127.0.0.1:1", token="two\nlines")
