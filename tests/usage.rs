//! Usage reports through a running daemon: checks answered for members are counted per member
//! and day (Check and BatchCheck), strangers and tokens are not, the report needs `usage:read`,
//! counts survive a restart (flushed at shutdown), and the instance counts monthly active orgs
//! on the Unix socket only. Against `serve --demo` (acme: alice admin, bob org_contributor,
//! dave org_user; globex: erin admin).

use crate::common;

use common::directory::{assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::process::{Command, Stdio};
use tonic::Code;
use warden::api::pb;
use warden::api::pb::usage_service_client::UsageServiceClient;

fn report(actor: &str, days: u32) -> pb::GetOrgUsageRequest {
    pb::GetOrgUsageRequest {
        actor: actor.into(),
        org_id: "acme".into(),
        days,
    }
}

fn checks_of(r: &pb::GetOrgUsageResponse, user: &str) -> u64 {
    r.members
        .iter()
        .find(|m| m.user_id == user)
        .map_or(0, |m| m.checks)
}

#[test]
fn member_checks_are_counted_reported_and_kept() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let (unix, tcp) = (daemon.work.unix_target(), daemon.work.tcp_target());
    runtime().block_on(async {
        let mut c = clients(&tcp).await;
        let mut u = UsageServiceClient::new(warden::api::client::connect(&tcp).await.expect("tcp"));
        for _ in 0..3 {
            c.check("bob", "acme", "apps/web", "app:write", 0).await;
        }
        c.check("dave", "acme", "apps/web", "app:write", 0).await; // a deny is still an answered check
        c.check("mallory", "acme", "apps/web", "app:read", 0).await; // not a member: not counted
        c.check("erin", "globex", "apps/ledger", "app:read", 0).await;
        let item = |s: &str| pb::CheckRequest {
            subject: s.into(),
            org: "acme".into(),
            resource: "apps/web".into(),
            action: "app:read".into(),
            ..Default::default()
        };
        c.authz
            .batch_check(pb::BatchCheckRequest {
                items: vec![item("bob"), item("dave"), item("")],
                min_revision: 0,
            })
            .await
            .expect("BatchCheck");

        let r = u
            .get_org_usage(report("alice", 0))
            .await
            .expect("GetOrgUsage")
            .into_inner();
        assert_eq!(
            (
                checks_of(&r, "bob"),
                checks_of(&r, "dave"),
                checks_of(&r, "mallory")
            ),
            (4, 2, 0)
        );
        assert_eq!(r.total_checks, 6);
        assert_eq!(r.members[0].user_id, "bob", "most active first");
        assert_eq!(r.days.len(), 1);
        assert_eq!((r.days[0].checks, r.days[0].active_members), (6, 2));
        assert_eq!(r.to_day - r.from_day, 29);

        // bob (org_contributor) may read usage; dave (org_user) and erin (other org) may not.
        u.get_org_usage(report("bob", 7)).await.expect("bob reads usage");
        assert_refused(
            u.get_org_usage(report("dave", 7)).await,
            Code::PermissionDenied,
            &["usage:read"],
        );
        assert_refused(
            u.get_org_usage(report("erin", 7)).await,
            Code::PermissionDenied,
            &["usage:read"],
        );
        assert_refused(
            u.get_org_usage(report("alice", 400)).await,
            Code::InvalidArgument,
            &["days:"],
        );
        assert_refused(
            u.get_instance_usage(pb::GetInstanceUsageRequest::default()).await,
            Code::PermissionDenied,
            &["Unix socket"],
        );
    });

    // A clean stop flushes the counts; a restart reports them from the store.
    daemon.stop();
    daemon.restart();
    runtime().block_on(async {
        let mut u = UsageServiceClient::new(warden::api::client::connect(&unix).await.expect("unix"));
        let r = u
            .get_org_usage(report("alice", 1))
            .await
            .expect("GetOrgUsage")
            .into_inner();
        assert_eq!((checks_of(&r, "bob"), checks_of(&r, "dave")), (4, 2));
        let i = u
            .get_instance_usage(pb::GetInstanceUsageRequest::default())
            .await
            .expect("GetInstanceUsage")
            .into_inner();
        assert_eq!(i.monthly_active_orgs, 2, "acme and globex");
        let old = u
            .get_instance_usage(pb::GetInstanceUsageRequest {
                month: "2001-01".into(),
            })
            .await
            .expect("GetInstanceUsage")
            .into_inner();
        assert_eq!(old.monthly_active_orgs, 0);
        assert_refused(
            u.get_instance_usage(pb::GetInstanceUsageRequest {
                month: "2001-13".into(),
            })
            .await,
            Code::InvalidArgument,
            &["month:"],
        );
    });
    let out = Command::new(WARDEN)
        .args(["usage", "org", "acme", "--actor", "alice", "--connect", &unix])
        .stdin(Stdio::null())
        .output()
        .expect("warden usage");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("member: bob 4"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
