#!/usr/bin/env python3
"""Differential fuzzing of Warden's Casbin engine against pycasbin (1.43.0).

Random models within Warden's supported feature set (basic, RBAC with and without
domains, a hierarchy, `g`/`g2`, the four effects allow-override / deny-override /
allow-and-no-deny / priority, keyMatch..keyMatch5, regexMatch, globMatch, ipMatch, role
and domain matching functions), random policies over a small vocabulary so that rules
collide, random requests. Each policy is answered by `warden policy eval` (one process
per policy) and by pycasbin (a fresh enforcer per request where a role matching function
is set, because pycasbin's role manager keeps the names it was asked about).

A disagreement is minimised (policy lines removed while it persists) and printed, then
classified: a known contested behaviour (policies/README.md, "Contested behaviours")
or unexplained. The exit status is 1 when any disagreement is unexplained.

Run through scripts/casbin-differential.sh, which installs pycasbin into a venv.
"""

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile

import casbin
from casbin import util

logging.disable(logging.CRITICAL)

FUNCS = {
    "keyMatch": util.key_match,
    "keyMatch2": util.key_match2,
    "keyMatch3": util.key_match3,
    "keyMatch4": util.key_match4,
    "keyMatch5": util.key_match5,
    "regexMatch": util.regex_match,
    "globMatch": util.glob_match,
}

EFFECTS = {
    "allow_override": "some(where (p.eft == allow))",
    "deny_override": "!some(where (p.eft == deny))",
    "allow_and_deny": "some(where (p.eft == allow)) && !some(where (p.eft == deny))",
    "priority": "priority(p.eft) || deny",
}

USERS = ["alice", "bob", "carol", "dave"]
ROLES = ["admin", "editor", "viewer", "ops"]
DOMAINS = ["d1", "d2"]
ACTS = ["read", "write", "delete"]

# Object patterns per matching function, and the concrete objects requests use.
OBJ_PATTERNS = {
    "==": ["/data/1", "/data/2", "data1", "/files/a.txt"],
    "keyMatch": ["/data/*", "/data/1", "/files/*", "*"],
    "keyMatch2": ["/data/:id", "/data/*", "/data/1", "/files/:name/edit", "*"],
    "keyMatch3": ["/data/{id}", "/data/*", "/files/{name}/edit", "/data/1"],
    "keyMatch4": ["/data/{id}", "/data/{id}/sub/{id}", "/files/{name}.{ext}", "/data/*"],
    "keyMatch5": ["/data/{id}", "/data/*", "/files/{name}", "/data/1"],
    "regexMatch": ["^/data/[0-9]+$", "^/files/.*", "/data/1", "^/(data|files)/a"],
    "globMatch": ["/data/*", "/files/*.txt", "/data/[0-9]", "/data/?", "/**/x"],
}
OBJECTS = [
    "/data/1", "/data/2", "/data/12", "/data/", "/data/1/sub/1", "/data/1/sub/2", "/data/a?x=1",
    "/files/a.txt", "/files/a/edit", "/files/readme", "/files/a.b", "data1", "/x", "/a/b/x", "",
]
IP_PATTERNS = ["10.0.0.0/8", "192.168.1.0/24", "10.1.2.3", "::1", "fe80::/10"]
IPS = ["10.1.2.3", "10.9.9.9", "192.168.1.7", "192.168.2.7", "::1", "fe80::1", "not-an-ip"]
ROLE_PATTERNS = ["admin", "editor", "team/:t", "team/a", "team/b", "viewer"]


def gen_case(rng):
    """A random (model text, policy lines, role matching, domain matching, request maker)."""
    kind = rng.choice(["basic", "rbac", "rbac", "domains", "g2", "ip"])
    effect = rng.choice(list(EFFECTS))
    func = rng.choice(list(OBJ_PATTERNS))
    with_eft = effect != "allow_override" or rng.random() < 0.5
    obj_match = "r.obj == p.obj" if func == "==" else f"{func}(r.obj, p.obj)"
    role_matching, domain_matching = {}, {}
    if kind == "domains":
        r_def, p_def = "sub, dom, obj, act", "sub, dom, obj, act"
        g_def = "g = _, _, _"
        sub_match = "g(r.sub, p.sub, r.dom) && r.dom == p.dom"
        if rng.random() < 0.4:
            domain_matching["g"] = "keyMatch"
    elif kind == "ip":
        r_def, p_def = "sub, ip, act", "sub, ip, act"
        g_def = None
        obj_match = "ipMatch(r.ip, p.ip)"
        sub_match = "r.sub == p.sub"
    else:
        r_def, p_def = "sub, obj, act", "sub, obj, act"
        g_def = None if kind == "basic" else ("g = _, _\ng2 = _, _" if kind == "g2" else "g = _, _")
        sub_match = "r.sub == p.sub" if kind == "basic" else "g(r.sub, p.sub)"
        if kind == "g2":
            obj_match = "g2(r.obj, p.obj)"
        if kind == "rbac" and rng.random() < 0.3:
            role_matching["g"] = "keyMatch2"
    if with_eft:
        p_def += ", eft"
    conj = [sub_match, obj_match, "r.act == p.act"]
    if rng.random() < 0.3:
        rng.shuffle(conj)
    model = f"[request_definition]\nr = {r_def}\n\n[policy_definition]\np = {p_def}\n\n"
    if g_def:
        model += f"[role_definition]\n{g_def}\n\n"
    model += f"[policy_effect]\ne = {EFFECTS[effect]}\n\n[matchers]\nm = {' && '.join(conj)}\n"

    lines = []
    subjects = USERS + ROLES if kind != "basic" else USERS
    if role_matching:
        subjects = subjects + ["team/a", "team/:t"]
    for _ in range(rng.randint(0, 8)):
        sub = rng.choice(subjects)
        act = rng.choice(ACTS)
        if kind == "ip":
            cells = [sub, rng.choice(IP_PATTERNS), act]
        elif kind == "domains":
            cells = [sub, rng.choice(DOMAINS), rng.choice(OBJ_PATTERNS[func]), act]
        elif kind == "g2":
            cells = [sub, rng.choice(["group1", "group2", "/data/1"]), act]
        else:
            cells = [sub, rng.choice(OBJ_PATTERNS[func]), act]
        if with_eft:
            cells.append(rng.choice(["allow", "allow", "deny"]))
        lines.append("p, " + ", ".join(cells))
    if kind != "basic" and kind != "ip":
        for _ in range(rng.randint(0, 6)):
            child = rng.choice(USERS + ROLES + (["team/a", "team/b"] if role_matching else []))
            parent = rng.choice(ROLE_PATTERNS if role_matching else ROLES)
            if kind == "domains":
                dom = "*" if domain_matching and rng.random() < 0.5 else rng.choice(DOMAINS)
                lines.append(f"g, {child}, {parent}, {dom}")
            else:
                lines.append(f"g, {child}, {parent}")
        if kind == "g2":
            for _ in range(rng.randint(1, 4)):
                lines.append(f"g2, {rng.choice(OBJECTS[:8])}, {rng.choice(['group1', 'group2'])}")
    rng.shuffle(lines)

    def request(rng2):
        sub = rng2.choice(USERS + ROLES[:1] + (["team/a", "team/c"] if role_matching else []))
        act = rng2.choice(ACTS)
        if kind == "ip":
            return [sub, rng2.choice(IPS), act]
        if kind == "domains":
            return [sub, rng2.choice(DOMAINS + ["d3"]), rng2.choice(OBJECTS), act]
        return [sub, rng2.choice(OBJECTS), act]

    return model, lines, role_matching, domain_matching, request


def pycasbin_answers(model, lines, role_matching, domain_matching, requests):
    with tempfile.TemporaryDirectory() as d:
        mp, pp = os.path.join(d, "model.conf"), os.path.join(d, "policy.csv")
        open(mp, "w").write(model)
        open(pp, "w").write("\n".join(lines) + "\n")

        def enforcer():
            e = casbin.Enforcer(mp, pp)
            for g, f in role_matching.items():
                e.get_named_role_manager(g).add_matching_func(FUNCS[f])
            for g, f in domain_matching.items():
                e.get_named_role_manager(g).add_domain_matching_func(FUNCS[f])
            if role_matching or domain_matching:
                e.build_role_links()
            return e

        try:
            shared = enforcer()
        except Exception as ex:  # noqa: BLE001 - any load failure is an answer
            return [f"load error: {type(ex).__name__}"] * len(requests)
        out = []
        for req in requests:
            e = enforcer() if role_matching else shared
            try:
                out.append(bool(e.enforce(*req)))
            except Exception:  # noqa: BLE001 - pycasbin raises plain exceptions
                out.append("error")
        return out


def warden_answers(warden, model, lines, role_matching, domain_matching, requests):
    with tempfile.TemporaryDirectory() as d:
        mp, pp = os.path.join(d, "model.conf"), os.path.join(d, "policy.csv")
        open(mp, "w").write(model)
        open(pp, "w").write("\n".join(lines) + "\n")
        cmd = [warden, "policy", "eval", "--model", mp, "--policy", pp]
        for g, f in role_matching.items():
            cmd += ["--role-matching", f"{g}={f}"]
        for g, f in domain_matching.items():
            cmd += ["--domain-matching", f"{g}={f}"]
        stdin = "".join(json.dumps({"request": r}) + "\n" for r in requests)
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            return [f"load error: {res.stderr.strip()[:200]}"] * len(requests)
        out = []
        for line in res.stdout.splitlines():
            v = json.loads(line)
            out.append(v["allow"] if "allow" in v else "error")
        return out


def same(a, b):
    if isinstance(a, str) and isinstance(b, str):
        return a.startswith("load error") == b.startswith("load error") and (a == "error") == (b == "error")
    return a == b


def minimise(warden, model, lines, rm, dm, req):
    """Drop policy lines while Warden and pycasbin still disagree on `req`."""
    cur = list(lines)
    changed = True
    while changed:
        changed = False
        for i in range(len(cur)):
            trial = cur[:i] + cur[i + 1:]
            w = warden_answers(warden, model, trial, rm, dm, [req])[0]
            p = pycasbin_answers(model, trial, rm, dm, [req])[0]
            if not same(w, p):
                cur = trial
                changed = True
                break
    return cur


def contested(model, lines, rm, req, warden, pycasbin):
    """The contested behaviour (policies/README.md) that explains a disagreement, if any."""
    text = model + "\n".join(lines)
    if rm and warden is False and pycasbin is True and any(
        line.startswith("g,") and ":" in line.split(", ")[2] for line in lines
    ):
        # pycasbin links a pattern parent to every name it matches (`team/:t` -> `team/a`),
        # so a name matching the pattern inherits those names; Go casbin and Warden do not.
        return "a role pattern's matches are not its parents (Go casbin)"
    obj_at = 2 if "r = sub, dom" in model else 1
    if "regexMatch" in model and any(
        not line.split(", ")[obj_at + 1].startswith("^") for line in lines if line.startswith("p,")
    ):
        return "regexMatch anchoring (pycasbin anchors at the start)"
    if "globMatch" in model and "**" in text:
        return "globMatch `**` crosses `/` (Go casbin's doublestar)"
    if any(isinstance(x, str) and any(ord(c) > 127 for c in x) for x in req):
        return "regexMatch \\d/\\w on Unicode"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warden", required=True)
    ap.add_argument("--policies", type=int, default=200)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--show", type=int, default=20, help="how many minimised disagreements to print")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    total = agree = 0
    findings = []
    for n in range(args.policies):
        model, lines, rm, dm, request = gen_case(rng)
        rrng = random.Random(rng.random())
        reqs = [request(rrng) for _ in range(args.requests)]
        w = warden_answers(args.warden, model, lines, rm, dm, reqs)
        p = pycasbin_answers(model, lines, rm, dm, reqs)
        for req, a, b in zip(reqs, w, p):
            total += 1
            if same(a, b):
                agree += 1
            else:
                findings.append((n, model, lines, rm, dm, req, a, b))
    print(f"{args.policies} policies x {args.requests} requests = {total} checks; "
          f"{agree} agree, {total - agree} disagree")
    by_reason = {}
    unexplained = []
    seen_shapes = set()
    for n, model, lines, rm, dm, req, a, b in findings:
        why = contested(model, lines, rm, req, a, b)
        if why:
            by_reason[why] = by_reason.get(why, 0) + 1
            continue
        unexplained.append((n, model, lines, rm, dm, req, a, b))
    for why, count in sorted(by_reason.items()):
        print(f"  contested: {why}: {count}")
    print(f"  unexplained: {len(unexplained)}")
    shown = 0
    for n, model, lines, rm, dm, req, a, b in unexplained:
        if shown >= args.show:
            break
        if n in seen_shapes:
            print(f"    policy #{n} also: request {json.dumps(req)}: warden {a}, pycasbin {b}")
            continue
        seen_shapes.add(n)
        small = minimise(args.warden, model, lines, rm, dm, req)
        shown += 1
        print(f"\n--- policy #{n} (minimised to {len(small)} of {len(lines)} lines)")
        print(model.strip())
        if rm or dm:
            print(f"role matching {rm}, domain matching {dm}")
        print("policy.csv:\n  " + "\n  ".join(small))
        print(f"request {json.dumps(req)}: warden {a}, pycasbin {b}")
    sys.exit(1 if unexplained else 0)


if __name__ == "__main__":
    main()
