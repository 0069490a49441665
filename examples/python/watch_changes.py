"""Follow Warden's directory changes from Python (AuditService.WatchChanges), e.g. to
invalidate a cache, on stubs generated from proto/warden/v1 with grpcio-tools.

    PYTHONPATH=examples/python/gen python examples/python/watch_changes.py --from 1

Prints one line per committed change: `revision type org actor`. When the daemon closes the
stream because this reader fell behind (RESOURCE_EXHAUSTED), it resumes at the revision the
daemon names in the `x-warden-resume-revision` trailer, so no change is missed. Over TCP,
name an org and an actor holding `audit:read` there (--org, --actor).
"""

import argparse
import sys

import grpc

from warden.v1 import audit_pb2, audit_pb2_grpc

RESUME_TRAILER = "x-warden-resume-revision"


def target_of(arg: str) -> str:
    """Warden's address syntax to gRPC's: unix:PATH is the same, tcp:ADDR drops the scheme."""
    return arg[len("tcp:"):] if arg.startswith("tcp:") else arg


def resume_revision(err: grpc.RpcError):
    for key, value in err.trailing_metadata() or ():
        if key == RESUME_TRAILER:
            return int(value)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="unix:./data/warden.sock")
    parser.add_argument("--from", dest="start", type=int, default=0, help="first revision; 0: the oldest")
    parser.add_argument("--org", default="", help="only this org's changes")
    parser.add_argument("--actor", default="", help="required over TCP")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many changes; 0: follow")
    args = parser.parse_args()

    shown, start = 0, args.start
    with grpc.insecure_channel(target_of(args.target)) as channel:
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        while True:
            req = audit_pb2.WatchChangesRequest(actor=args.actor, org_id=args.org, from_revision=start)
            try:
                for change in audit.WatchChanges(req):
                    print(f"{change.revision} {change.change_type} {change.org_id or '-'} {change.actor}", flush=True)
                    shown += 1
                    if args.limit and shown >= args.limit:
                        return 0
                return 0
            except grpc.RpcError as err:
                resume = resume_revision(err)
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and resume is not None:
                    start = resume
                    continue
                print(f"{err.code().name}: {err.details()}", file=sys.stderr)
                return 1


if __name__ == "__main__":
    sys.exit(main())
