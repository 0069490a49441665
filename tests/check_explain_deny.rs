//! `warden check --explain` on a deny, against the demo daemon: besides "no rule
//! matched", the operator sees the closest rules and what each failed, with the
//! request's values in place; over gRPC the same list is in `Explanation.near_misses`.

use crate::common;

use common::directory::clients;
use common::*;
use std::process::Command;
use warden::api::pb;

fn check(daemon: &Daemon, args: &[&str]) -> (i32, String) {
    let out = Command::new(WARDEN)
        .arg("check")
        .args(args)
        .args(["--explain", "--connect", &daemon.work.unix_target()])
        .output()
        .expect("run warden check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8"),
    )
}

#[test]
fn explained_denies_list_the_closest_rules_and_why() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let csv = daemon.work.policies().join("policy.csv");
    let (code, out) = check(
        &daemon,
        &[
            "--subject",
            "dave",
            "--org",
            "acme",
            "--resource",
            "apps/web",
            "--action",
            "app:write",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("effect:    default deny"), "{out}");
    assert!(out.contains("closest rules that did not match:"), "{out}");
    let contributor_line = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .position(|l| l == "p, role:org_contributor, apps/:app, app:write, org, allow")
        .expect("the shipped policy has the contributor's write rule")
        + 1;
    let expected = format!(
        "    {}:{contributor_line}: p, role:org_contributor, apps/:app, app:write, org, allow\n      failed: g(\"dave\", \"role:org_contributor\", \"acme\")\n",
        csv.display()
    );
    assert!(out.contains(&expected), "wanted\n{expected}in\n{out}");
    assert_eq!(
        out.matches("      failed: ").count(),
        3,
        "one failed conjunct for each of 3 rules:\n{out}"
    );

    // An allow explains its rule and lists no near misses.
    let (code, out) = check(
        &daemon,
        &[
            "--subject",
            "alice",
            "--org",
            "acme",
            "--resource",
            "apps/web",
            "--action",
            "app:write",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("closest rules"), "{out}");

    // The same over gRPC.
    let explanation = runtime().block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        c.authz
            .check(pb::CheckRequest {
                subject: "carol".into(),
                org: "acme".into(),
                resource: "apps/api".into(),
                action: "app:write".into(),
                explain: true,
                ..Default::default()
            })
            .await
            .expect("Check")
            .into_inner()
            .explanation
            .expect("an explanation")
    });
    assert!(!explanation.allowed);
    assert_eq!(explanation.near_misses.len(), 3);
    let team_rule = explanation
        .near_misses
        .iter()
        .find(|m| m.rule_text == "p, role:team_contributor, apps/:app, app:write, team, allow")
        .expect("carol's team write rule is a near miss");
    assert_eq!(
        team_rule.failed,
        vec![concat!(
            r#"(("team" == "org" || ("team" == "team" && g2("carol", "app:" + keyGet2("apps/api", "apps/:app", "app"), "acme")))"#,
            r#" || g3("app:" + keyGet2("apps/api", "apps/:app", "app"), "team", "acme"))"#
        )]
    );
}
