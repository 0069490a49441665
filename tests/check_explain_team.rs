//! Issue 11, item 22: an allow that comes from a team grant names the team and the grant it
//! used, over gRPC (`Explanation.role_path`) and in `warden check --explain`. Against the
//! demo daemon: carol is a team contributor in acme, in team `frontend`, which is granted
//! app `web`.

use crate::common;

use common::directory::clients;
use common::*;
use std::process::Command;
use warden::api::pb;

const GRANT: &str = "app:web granted to team:frontend (carol -[member]-> team:frontend -[grant]-> app:web)";

#[test]
fn a_team_scoped_allow_names_the_team_and_the_grant() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        let mut c = clients(&target).await;
        let explain = |who: &str, resource: &str, action: &str| pb::CheckRequest {
            subject: who.into(),
            org: "acme".into(),
            resource: resource.into(),
            action: action.into(),
            explain: true,
            ..Default::default()
        };
        let e = c
            .authz
            .check(explain("carol", "apps/web/models/1", "app:write"))
            .await
            .expect("Check")
            .into_inner()
            .explanation
            .expect("explanation");
        assert!(e.allowed);
        assert_eq!(
            e.role_path,
            format!("carol -[role:team_contributor@acme]-> role:team_contributor; {GRANT}")
        );
        // An org-scoped allow used no grant and says none.
        let e = c
            .authz
            .check(explain("bob", "apps/web", "app:write"))
            .await
            .expect("Check")
            .into_inner()
            .explanation
            .expect("explanation");
        assert!(e.allowed && !e.role_path.contains("granted"), "{e:?}");
        // Nor does a deny.
        let e = c
            .authz
            .check(explain("carol", "apps/api", "app:write"))
            .await
            .expect("Check")
            .into_inner()
            .explanation
            .expect("explanation");
        assert!(!e.allowed && !e.role_path.contains("granted"), "{e:?}");
    });

    let out = Command::new(WARDEN)
        .args([
            "check",
            "--subject",
            "carol",
            "--org",
            "acme",
            "--resource",
            "apps/web",
        ])
        .args(["--action", "app:read", "--explain", "--connect", &target])
        .output()
        .expect("run warden check");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(GRANT), "{stdout}");
}
