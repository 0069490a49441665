"""A Python client for Warden, on stubs generated from proto/warden/v1 with grpcio-tools.

    pip install -r examples/python/requirements.txt
    examples/python/generate.sh                        # writes examples/python/gen
    cargo run --release -- serve --demo                # in another terminal
    PYTHONPATH=examples/python/gen python examples/python/warden_example.py

Connects to --connect, else WARDEN_CONNECT, else unix:./data/warden.sock (unix:PATH or
tcp:HOST:PORT, e.g. tcp:127.0.0.1:50051). Against the demo directory it asks the questions of the README's tour
and prints one line per answer.
"""

import argparse
import os
import sys

import grpc

from warden.v1 import authz_pb2, authz_pb2_grpc, directory_pb2, directory_pb2_grpc


def target_of(arg: str) -> str:
    """Warden's address syntax to gRPC's: unix:PATH is the same, tcp:ADDR drops the scheme."""
    return arg[len("tcp:"):] if arg.startswith("tcp:") else arg


def can(authz, subject, org, resource, action) -> bool:
    req = authz_pb2.CheckRequest(subject=subject, org=org, resource=resource, action=action)
    return authz.Check(req, timeout=5).allowed


def lookup_resources(authz, subject, org, action):
    """Every page: a lookup is complete only once next_page_token is empty."""
    out, token = [], ""
    while True:
        page = authz.LookupResources(
            authz_pb2.LookupResourcesRequest(
                subject=subject, org=org, action=action, page_size=1, page_token=token
            ),
            timeout=5,
        )
        out.extend(page.resources)
        token = page.next_page_token
        if not token:
            return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connect",
        "--target",  # the flag's old name
        dest="connect",
        default=os.environ.get("WARDEN_CONNECT") or "unix:./data/warden.sock",
    )
    args = parser.parse_args()

    # No channel options needed: Warden takes any :authority on its Unix socket (grpc-core
    # sends the socket path there).
    with grpc.insecure_channel(target_of(args.connect)) as channel:
        authz = authz_pb2_grpc.AuthzServiceStub(channel)
        members = directory_pb2_grpc.MemberServiceStub(channel)

        for subject, action in [("alice", "app:write"), ("dave", "app:write"), ("dave", "app:read")]:
            verdict = "allow" if can(authz, subject, "acme", "apps/web", action) else "deny"
            print(f"check {subject} {action} apps/web: {verdict}")

        why = authz.Check(
            authz_pb2.CheckRequest(
                subject="alice", org="acme", resource="apps/web", action="app:write", explain=True
            ),
            timeout=5,
        ).explanation
        print(
            f"explain alice app:write apps/web: {why.effect} by {why.rule_text} via {why.role_path}"
            f" (rule at {why.rule_file}:{why.rule_line})"
        )

        batch = authz.BatchCheck(
            authz_pb2.BatchCheckRequest(
                items=[
                    authz_pb2.CheckRequest(subject="carol", org="acme", resource="apps/web", action="app:read"),
                    authz_pb2.CheckRequest(subject="carol", org="acme", resource="apps/api", action="app:read"),
                    authz_pb2.CheckRequest(subject="", org="acme", resource="apps/api", action="app:read"),
                ]
            ),
            timeout=5,
        )
        answers = []
        for r in batch.results:
            if r.WhichOneof("result") == "decision":
                answers.append("allow" if r.decision.allowed else "deny")
            else:
                answers.append(f"error ({r.error.message})")
        print("batch carol web/api/no-subject: " + ", ".join(answers))

        print("dave may read: " + ", ".join(lookup_resources(authz, "dave", "acme", "app:read")))

        page = members.ListMembers(directory_pb2.ListMembersRequest(org_id="acme", actor="alice"), timeout=5)
        print("members of acme: " + ", ".join(f"{m.user_id}={m.role}" for m in page.members))

        try:
            authz.Check(authz_pb2.CheckRequest(subject="alice", org="acme", resource="apps/web"), timeout=5)
        except grpc.RpcError as e:
            print(f"missing action: {e.code().name}: {e.details()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
