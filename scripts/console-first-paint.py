"""First paint of each console page against a running `warden serve --ui` (issue 15).

Not a test: a measurement for big directories, e.g. the 1M-membership one
(`warden gen-directory --orgs 100 --members 10000 --out dir.json`, `warden import`, then
`warden serve --data … --ui tcp:127.0.0.1:8081`). Needs the venv of tests/console/requirements.txt
and the system Chromium (`apt-get install chromium`).

    python scripts/console-first-paint.py http://127.0.0.1:8081 <actor> <org> [runs]

For each page, the milliseconds from navigation start until the page's first data is on screen,
median and max over the runs (the first, cold, run included). "On screen" is taken in the page
itself: a MutationObserver notes when the element that holds the data (never the "Loading…"
placeholder) enters the DOM, and the time is read two animation frames later, after the frame that
paints it. Reading `performance.now()` from the test process once Playwright has noticed the element
instead adds its polling and round trips (tens to 200 ms while the page's other requests run).
"""

import json
import statistics
import sys
import tempfile

from playwright.sync_api import sync_playwright

ui, actor, org = sys.argv[1], sys.argv[2], sys.argv[3]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
pages = [
    ("organizations", f"/?view=orgs", "#org-list table, #org-list p:not(.muted)"),
    ("org (members page 1)", f"/?view=org&org={org}", "#members table"),
    ("check", f"/?view=check&tab=check&subject={actor}&org={org}&resource=org&action=member:read", "#verdict"),
    ("policy", "/?view=policy", "#policy-hash"),
    ("activity", f"/?view=activity&org={org}", "#timeline, #audit p:not(.muted)"),
]
with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
    ctx = pw.chromium.launch_persistent_context(
        profile, executable_path="/usr/bin/chromium", headless=True,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    ctx.add_init_script("""
      window.__painted = {};
      const watch = %s;
      new MutationObserver(() => {
        for (const sel of watch) {
          if (!(sel in window.__painted) && document.querySelector(sel)) {
            window.__painted[sel] = null;
            requestAnimationFrame(() => requestAnimationFrame(() => { window.__painted[sel] = performance.now(); }));
          }
        }
      }).observe(document, { subtree: true, childList: true });
    """ % json.dumps([p[2] for p in pages]))
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.goto(ui + "/")
    page.evaluate(f"sessionStorage.setItem('actor', {actor!r})")
    print(f"{'page':24} {'median ms':>10} {'max ms':>8}")
    for name, path, selector in pages:
        times = []
        for _ in range(runs):
            page.goto(ui + path)
            page.wait_for_selector(selector, timeout=60000)
            # (wait_for_function would evaluate a string in the page, which the console's CSP forbids)
            painted = None
            for _ in range(600):
                painted = page.evaluate(f"window.__painted[{json.dumps(selector)}]")
                if painted is not None:
                    break
                page.wait_for_timeout(5)
            assert painted is not None, f"{name}: {selector} never painted"
            times.append(painted)
        print(f"{name:24} {statistics.median(times):10.0f} {max(times):8.0f}")
    ctx.close()
