//! The demo directory (`warden serve --demo`) uses real plans: each demo org's plan is a
//! row of the plan table in `policies/limits.toml`, so `org get`/`org list` show an org
//! whose plan rules apply, not a plan name the instance does not know.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn every_demo_org_is_on_a_plan_of_the_plan_table() {
    let limits: toml::Table = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/limits.toml"))
            .expect("limits.toml"),
    )
    .expect("limits.toml parses");
    let plans = limits["plans"].as_table().expect("[plans]");

    let daemon = Workdir::new().start_with(&["--demo"]);
    for (org, admin) in [("acme", "alice"), ("globex", "erin")] {
        let out = Command::new(WARDEN)
            .args(["org", "get", org, "--actor", admin, "--connect"])
            .arg(daemon.work.unix_target())
            .env_remove("WARDEN_ACTOR")
            .output()
            .expect("run warden org get");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("plan: "))
            .unwrap_or_else(|| panic!("no plan line:\n{stdout}"));
        assert!(
            plans.contains_key(plan),
            "demo org {org} is on plan `{plan}`, not a row of limits.toml's [plans]"
        );
    }
}
