//! Per-org security settings through a running daemon: an admin sets the password policy and
//! identity providers, members and the login layer read them, others are refused; bad settings
//! are named field by field; SSO auto-join adds a user with the provider's role, only through
//! the Unix socket and only for a provider configured for it. Against `serve --demo`.

use crate::common;

use common::directory::{assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::process::{Command, Stdio};
use tonic::Code;
use warden::api::pb;
use warden::api::pb::security_service_client::SecurityServiceClient;

fn oidc(id: &str, issuer: &str, join: &str) -> pb::IdentityProvider {
    pb::IdentityProvider {
        idp_id: id.into(),
        config: Some(pb::identity_provider::Config::Oidc(pb::OidcProvider {
            issuer: issuer.into(),
            client_id: "0oa1client".into(),
        })),
        auto_join_role: join.into(),
    }
}

fn saml(id: &str, url: &str, xml: &str) -> pb::IdentityProvider {
    pb::IdentityProvider {
        idp_id: id.into(),
        config: Some(pb::identity_provider::Config::Saml(pb::SamlProvider {
            metadata_url: url.into(),
            metadata_xml: xml.into(),
        })),
        auto_join_role: String::new(),
    }
}

fn set(actor: &str, min_length: u32, idps: Vec<pb::IdentityProvider>) -> pb::SetSecuritySettingsRequest {
    pb::SetSecuritySettingsRequest {
        actor: actor.into(),
        org_id: "acme".into(),
        password: Some(pb::PasswordPolicy {
            min_length,
            require_digit: true,
            rotation_days: 90,
            ..Default::default()
        }),
        identity_providers: idps,
    }
}

#[test]
fn admins_set_members_read_and_sso_users_join() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let (unix, tcp) = (daemon.work.unix_target(), daemon.work.tcp_target());
    runtime().block_on(async {
        let mut c = clients(&unix).await;
        let mut s = SecurityServiceClient::new(warden::api::client::connect(&unix).await.expect("unix"));
        let mut remote = SecurityServiceClient::new(warden::api::client::connect(&tcp).await.expect("tcp"));
        c.upsert_user("frank", "frank").await;

        let good = vec![
            oidc("okta", "https://acme.okta.com", "org_user"),
            saml("corp", "https://idp.corp.example/metadata", ""),
        ];
        let r = remote
            .set_security_settings(set("alice", 12, good))
            .await
            .expect("Set")
            .into_inner();
        assert!(r.revision > 0);
        let get = |actor: &str| pb::GetSecuritySettingsRequest {
            min_revision: 0,
            actor: actor.into(),
            org_id: "acme".into(),
        };
        let got = remote
            .get_security_settings(get("dave"))
            .await
            .expect("Get")
            .into_inner();
        let p = got.password.expect("password");
        assert_eq!((p.min_length, p.require_digit, p.rotation_days), (12, true, 90));
        assert_eq!(got.identity_providers.len(), 2);
        assert_eq!(got.updated_by, "alice");
        assert_refused(
            remote.get_security_settings(get("frank")).await,
            Code::PermissionDenied,
            &["org:read"],
        );
        // The login layer, on the Unix socket, reads them for a user who is not a member yet.
        assert_eq!(
            s.get_security_settings(get("frank"))
                .await
                .expect("Get")
                .into_inner(),
            got
        );

        // Denied and invalid settings change nothing.
        let before = c.stats().await.revision;
        assert_refused(
            remote.set_security_settings(set("bob", 8, vec![])).await,
            Code::PermissionDenied,
            &["bob", "security:manage"],
        );
        let bad: Vec<(pb::SetSecuritySettingsRequest, &str)> = vec![
            (set("alice", 300, vec![]), "password.min_length:"),
            (
                set("alice", 8, vec![oidc("okta", "http://acme.okta.com", "")]),
                "identity_providers[0].issuer:",
            ),
            (
                set("alice", 8, vec![saml("corp", "", "")]),
                "identity_providers[0].metadata_url:",
            ),
            (
                set(
                    "alice",
                    8,
                    vec![saml("corp", "https://x.example/m", "<EntityDescriptor/>")],
                ),
                "identity_providers[0].metadata_url:",
            ),
            (
                set("alice", 8, vec![saml("corp", "", "not xml")]),
                "identity_providers[0].metadata_xml:",
            ),
            (
                set(
                    "alice",
                    8,
                    vec![
                        oidc("okta", "https://a.example", ""),
                        oidc("okta", "https://b.example", ""),
                    ],
                ),
                "identity_providers[1].id:",
            ),
            (
                set("alice", 8, vec![oidc("okta", "https://a.example", "overlord")]),
                "identity_providers[0].auto_join_role:",
            ),
            (
                set(
                    "alice",
                    8,
                    vec![pb::IdentityProvider {
                        idp_id: "x".into(),
                        config: None,
                        auto_join_role: String::new(),
                    }],
                ),
                "identity_providers[0].config:",
            ),
        ];
        for (req, field) in bad {
            assert_refused(
                remote.set_security_settings(req).await,
                Code::InvalidArgument,
                &[field],
            );
        }
        assert_eq!(c.stats().await.revision, before);

        // SSO auto-join: only on the Unix socket, only through a provider with a role.
        let join = |idp: &str| pb::SsoJoinRequest {
            actor: "frank".into(),
            org_id: "acme".into(),
            idp_id: idp.into(),
        };
        assert_refused(
            remote.sso_join(join("okta")).await,
            Code::PermissionDenied,
            &["Unix socket"],
        );
        assert_refused(
            s.sso_join(join("corp")).await,
            Code::FailedPrecondition,
            &["no auto-join role"],
        );
        assert_refused(s.sso_join(join("github")).await, Code::NotFound, &["github"]);
        let joined = s.sso_join(join("okta")).await.expect("SsoJoin").into_inner();
        assert_eq!(joined.role, "org_user");
        assert!(
            c.check("frank", "acme", "apps/web", "app:read", joined.revision)
                .await
        );
        assert!(
            !c.check("frank", "acme", "apps/web", "app:write", joined.revision)
                .await
        );
        assert_refused(s.sso_join(join("okta")).await, Code::AlreadyExists, &["frank"]);
    });

    // The CLI: settings from a JSON file, read back; the audit log shows the join.
    let file = daemon.work.dir.path().join("security.json");
    std::fs::write(
        &file,
        r#"{"password": {"min_length": 14}, "identity_providers": [
            {"id": "azure", "kind": "saml", "metadata_xml": "<EntityDescriptor/>", "auto_join_role": "org_user"}]}"#,
    )
    .expect("write settings");
    let warden = |args: &[&str]| {
        Command::new(WARDEN)
            .args(args)
            .args(["--connect", &unix])
            .env_remove("WARDEN_ACTOR")
            .stdin(Stdio::null())
            .output()
            .expect("warden")
    };
    let out = warden(&[
        "security",
        "set",
        "acme",
        "--file",
        &file.display().to_string(),
        "--actor",
        "alice",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = warden(&["security", "get", "acme", "--actor", "dave"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("min_length 14")
            && text.contains("idp: azure saml (inline metadata), auto-join as org_user"),
        "{text}"
    );
    let out = warden(&["audit", "acme", "--type", "sso_join", "--actor", "alice"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\tfrank\tsso_join\tacme\t"));

    // Export → import → export keeps the settings.
    daemon.stop();
    let export = |data: &std::path::Path| {
        let out = Command::new(WARDEN)
            .args(["export", "--data"])
            .arg(data)
            .stdin(Stdio::null())
            .output()
            .expect("export");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let dump = export(&daemon.work.data());
    assert!(dump.contains(r#""security""#) && dump.contains("azure"), "{dump}");
    let (file, fresh) = (
        daemon.work.dir.path().join("dump.json"),
        daemon.work.dir.path().join("fresh"),
    );
    std::fs::write(&file, &dump).expect("write dump");
    let out = Command::new(WARDEN)
        .arg("import")
        .arg(&file)
        .arg("--data")
        .arg(&fresh)
        .stdin(Stdio::null())
        .output()
        .expect("import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(export(&fresh), dump);
}
