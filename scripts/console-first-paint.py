"""First paint of each console page against a running `warden serve --ui` (issue 15).

Not a test: a measurement for big directories, e.g. the 1M-membership one
(`warden gen-directory --orgs 100 --members 10000 --out dir.json`, `warden import`, then
`warden serve --data … --ui tcp:127.0.0.1:8081`). Needs the venv of tests/console/requirements.txt
and the system Chromium (`apt-get install chromium`).

    python scripts/console-first-paint.py http://127.0.0.1:8081 <actor> <org> [runs]

For each page, the milliseconds from navigation start until the page's first data is on screen
(the element that holds it), median and max over the runs (the first, cold, run included).
"""

import statistics
import sys
import tempfile

from playwright.sync_api import sync_playwright

ui, actor, org = sys.argv[1], sys.argv[2], sys.argv[3]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
pages = [
    ("organizations", f"/?view=orgs", "#org-list table, #org-list p"),
    ("org (members page 1)", f"/?view=org&org={org}", "#members table"),
    ("check", f"/?view=check&tab=check&subject={actor}&org={org}&resource=org&action=member:read", "#verdict"),
    ("policy", "/?view=policy", "#policy-hash"),
    ("activity", f"/?view=activity&org={org}", "#timeline, #audit p"),
]
with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
    ctx = pw.chromium.launch_persistent_context(
        profile, executable_path="/usr/bin/chromium", headless=True,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.goto(ui + "/")
    page.evaluate(f"sessionStorage.setItem('actor', {actor!r})")
    print(f"{'page':24} {'median ms':>10} {'max ms':>8}")
    for name, path, selector in pages:
        times = []
        for _ in range(runs):
            page.goto(ui + path)
            page.wait_for_selector(selector, timeout=60000)
            times.append(page.evaluate("performance.now()"))
        print(f"{name:24} {statistics.median(times):10.0f} {max(times):8.0f}")
    ctx.close()
