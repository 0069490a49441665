"""The console in a real browser (run by tests/console_browser.rs against `serve --demo --ui`).

Headless system Chromium driven by Playwright: every page renders without console errors; a
refused write (demoting the last admin) shows the gateway's refusal next to the form, which
keeps what was typed; a role change made in the page shows in `warden member list` and on the
activity page; the playground answers as `warden check --explain` for every demo user and a
set of requests; the policy preview of an edit is written out for the Rust side to compare
with `warden policy diff`. Screenshots of each page go to $SCREENSHOTS.

Prints "N passed, N failed" and exits non-zero on any failure.
"""

import json
import os
import re
import subprocess
import sys

from playwright.sync_api import expect, sync_playwright

UI = os.environ["WARDEN_UI"]
BIN = os.environ["WARDEN_BIN"]
CONNECT = os.environ["WARDEN_CONNECT"]
SHOTS = os.environ["SCREENSHOTS"]
EDITED = os.environ["EDITED_CSV"]
RESULT = os.environ["RESULT_JSON"]
PROFILE = os.environ["PROFILE_DIR"]

USERS = ["alice", "bob", "carol", "dave", "erin"]
REQUESTS = [
    ("apps/web", "app:read"),
    ("apps/api", "app:read"),
    ("apps/api", "app:write"),
    ("org", "member:manage"),
    ("apps/web/secrets", "app:read"),
]

passed, failed = 0, 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAILED: {what}", flush=True)


def cli(*args):
    return subprocess.run([BIN, *args, "--connect", CONNECT], capture_output=True, text=True)


def cli_explain(subject, org, resource, action):
    out = cli("check", "--subject", subject, "--org", org, "--resource", resource, "--action", action, "--explain")
    lines = out.stdout.splitlines()
    fields = {}
    for line in lines[1:]:
        m = re.match(r"\s+(effect|rule|role path):\s+(.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2).strip()
    return lines[0].strip() if lines else out.stderr, fields


def main():
    os.makedirs(SHOTS, exist_ok=True)
    result = {}
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            PROFILE,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
            viewport={"width": 1280, "height": 900},
        )
        page = context.pages[0] if context.pages else context.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def settle():
            # A locator, not wait_for_function: the console's CSP forbids eval, which that uses.
            expect(page.get_by_text("Loading\u2026")).to_have_count(0, timeout=30000)

        def clean(step, allowed=()):
            bad = [e for e in errors if not any(a in e for a in allowed)]
            check(not bad, f"{step}: console errors {bad}")
            errors.clear()

        # Who the page acts as.
        page.goto(UI + "/?view=orgs")
        page.fill("#actor", "alice")
        page.click("#who button[type=submit]")
        page.wait_for_selector("#org-list table")
        settle()
        check(page.locator("#org-list").inner_text().find("acme") >= 0, "orgs: acme listed")
        scope = page.locator("#org-scope").inner_text()
        check("globex" not in page.locator("#org-list").inner_text() and "belongs to" in scope,
              f"orgs: alice, no platform admin, sees her own orgs: {scope!r}")
        page.screenshot(path=f"{SHOTS}/organizations.png", full_page=True)
        clean("organizations")

        page.goto(UI + "/?view=org&org=acme")
        page.wait_for_selector("#members table")
        settle()
        body = page.locator("main").inner_text()
        for want in ["Acme Corp", "frontend", "web", "Members", "Security settings"]:
            check(want in body, f"org page shows {want!r}")
        page.screenshot(path=f"{SHOTS}/org.png", full_page=True)
        clean("org page")

        # Teams show counts; a team's members load when the team is opened.
        check("1 member" in page.locator("#teams").inner_text(), "teams: frontend's member count")
        check(page.locator("#team-members-frontend li").count() == 0, "team members not loaded before the team is opened")
        page.locator("#teams summary", has_text="1 member").click()
        page.wait_for_selector("#team-members-frontend li")
        check("carol" in page.locator("#team-members-frontend").inner_text(), "opening frontend lists carol")
        clean("team members")

        # The last admin cannot be demoted: the refusal shows beside the form, which keeps the choice.
        page.select_option("#role-alice", "org_user")
        page.click("#change-alice")
        page.wait_for_selector("#status-alice .err")
        refusal = page.locator("#status-alice").inner_text()
        check("last admin" in refusal and "failed_precondition" in refusal, f"last-admin refusal shown: {refusal!r}")
        check(page.locator("#role-alice").input_value() == "org_user", "the form keeps what was typed")
        page.screenshot(path=f"{SHOTS}/refusal.png", full_page=False)
        clean("refused write", allowed=("status of 400", "status of 412", "Failed to load resource"))

        # A role change through the page reaches the directory and the audit log.
        page.select_option("#role-dave", "org_contributor")
        page.click("#change-dave")
        page.wait_for_selector("#status-dave .ok")
        listed = cli("member", "list", "acme", "--actor", "alice")
        dave = [l for l in listed.stdout.splitlines() if "dave" in l]
        check(dave and "org_contributor" in dave[0], f"`warden member list` shows dave's new role: {dave}")
        page.goto(UI + "/?view=activity&org=acme")
        page.wait_for_selector("#timeline")
        settle()
        first = page.locator("#timeline details").first
        first.locator("summary").click()
        text = first.inner_text()
        check("change_role" in text and "dave" in text and "org_contributor" in text, f"activity shows the role change: {text[:200]!r}")
        expect(page.locator("#charts svg polyline")).to_have_count(2, timeout=30000)
        page.wait_for_timeout(2500)
        check("now" in page.locator("#charts").inner_text(), "activity charts drawn from the daemon's counters")
        page.screenshot(path=f"{SHOTS}/activity.png", full_page=True)
        clean("activity")

        # The playground answers as `warden check --explain`.
        shot = False
        for user in USERS:
            for resource, action in REQUESTS:
                page.goto(f"{UI}/?view=check&tab=check&subject={user}&org=acme&resource={resource}&action={action}")
                page.wait_for_selector("#verdict")
                verdict = page.locator("#verdict").inner_text().strip().lower()
                want, fields = cli_explain(user, "acme", resource, action)
                what = f"{user} {action} {resource}"
                check(verdict == want, f"playground {what}: page {verdict!r}, CLI {want!r}")
                rule = fields.get("rule", "")
                if re.match(r"\S+:\d+", rule):
                    got = page.locator("#rule-ref").inner_text()
                    check(rule.startswith(got), f"playground {what}: rule {got!r}, CLI {rule!r}")
                    check(page.locator("pre.src .hl").count() == 1, f"playground {what}: the rule's line is highlighted")
                if fields.get("role path"):
                    got = page.locator("#role-path").inner_text()
                    check(got == fields["role path"], f"playground {what}: role path {got!r}, CLI {fields['role path']!r}")
                    check(page.locator("svg[role=img]").count() == 1, f"playground {what}: role path graph")
                if verdict == "deny" and not shot and page.locator("#near-misses li").count() > 0:
                    page.screenshot(path=f"{SHOTS}/check.png", full_page=True)
                    shot = True
                clean(f"playground {what}")
        page.goto(f"{UI}/?view=check&tab=who&org=acme&resource=apps/web&action=app:read")
        page.wait_for_selector("#who-list")
        who = page.locator("#who-list").inner_text()
        check("alice" in who and "carol" in who, f"who can read apps/web: {who!r}")
        clean("who can")
        page.goto(f"{UI}/?view=check&tab=what&subject=bob&org=acme&action=app:write")
        page.wait_for_selector("#what-list")
        check("apps/web" in page.locator("#what-list").inner_text(), "what bob can write")
        clean("what can")

        # The charts' first paint already holds the playground's checks from before the page opened.
        page.goto(UI + "/?view=activity&org=acme")
        page.wait_for_selector("#charts[data-first-samples]")
        samples = int(page.get_attribute("#charts", "data-first-samples"))
        decided = int(page.get_attribute("#charts", "data-first-decisions"))
        check(samples >= 2 and decided > 0, f"charts drawn from history on first paint: {samples} samples, {decided} decisions")
        expect(page.locator("#chart-rate")).to_contain_text("over the last", timeout=30000)
        clean("activity history")

        # Policy: files, an invalid edit shows its error inline, a valid one its blast radius.
        page.goto(UI + "/?view=policy")
        page.wait_for_selector("#policy-csv")
        settle()
        check("policy.csv" in page.locator("#policy-files").inner_text(), "policy files listed")
        page.wait_for_selector("#policy-tests-summary")
        tests = page.locator("#policy-tests-summary").inner_text()
        want = subprocess.run([BIN, "policy", "test", os.environ["POLICY_DIR"]], capture_output=True, text=True).stdout
        counts = re.fullmatch(r"(\d+) passed, (\d+) failed", (want.strip().splitlines() or [""])[-1])
        check(counts is not None and tests == counts.group(0), f"policy tests on the page {tests!r} = `warden policy test` {want[-200:]!r}")
        page.fill("#policy-csv", "p, role:member, org\n")
        page.click("#policy-preview button[type=submit]")
        page.wait_for_selector("#preview-errors")
        err = page.locator("#preview-errors").inner_text()
        check(re.search(r"policy\.csv:1:", err) is not None, f"invalid edit named at policy.csv:1: {err!r}")
        with open(EDITED) as f:
            page.fill("#policy-csv", f.read())
        page.click("#policy-preview button[type=submit]")
        page.wait_for_selector("#preview-flips")
        result["summary"] = page.locator("#preview-summary").inner_text().strip()
        result["flips"] = int(page.locator("#preview-flips").inner_text())
        result["groups"] = [
            [c.inner_text().strip() for c in row.locator("td").all()][:4]
            for row in page.locator("#preview-groups tbody tr").all()
        ]
        page.screenshot(path=f"{SHOTS}/policy.png", full_page=True)
        clean("policy")

        # A phone width renders too.
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(UI + "/?view=org&org=acme")
        page.wait_for_selector("#members table")
        settle()
        page.screenshot(path=f"{SHOTS}/org-phone.png", full_page=False)
        clean("phone width")
        context.close()
    with open(RESULT, "w") as f:
        json.dump(result, f)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
