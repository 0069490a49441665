//! The directory from the command line and across restarts: `--demo`, the directory
//! commands' exit codes, restarts that keep every write, offline export/import round
//! trips, and a store that cannot be opened stopping startup.

use crate::common;

use common::directory::clients;
use common::{WARDEN, Workdir, run_to_exit, runtime};
use std::process::{Command, Output, Stdio};
use warden::api::pb;

/// Run `warden args…` to completion, returning its output.
fn warden(args: &[&str]) -> Output {
    Command::new(WARDEN)
        .args(args)
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_ACTOR")
        .env_remove("WARDEN_DATA")
        .stdin(Stdio::null())
        .output()
        .expect("run warden")
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check(target: &str, subject: &str) -> Output {
    warden(&[
        "check",
        "--subject",
        subject,
        "--org",
        "acme",
        "--resource",
        "apps/web",
        "--action",
        "app:write",
        "--connect",
        target,
    ])
}

#[test]
fn demo_directory_answers_checks_from_the_cli() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        assert_exit(&check(&target, "alice"), 0);
        assert_exit(&check(&target, "dave"), 1);
    }
}

#[test]
fn directory_commands_print_the_revision_and_exit_by_outcome() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let unix = daemon.work.unix_target();
    let tcp = daemon.work.tcp_target();

    let out = warden(&[
        "user",
        "upsert",
        "frank",
        "--email",
        "frank@example.com",
        "--actor",
        "frank",
        "--connect",
        &tcp,
    ]);
    assert_exit(&out, 0);
    let out = warden(&[
        "member",
        "add",
        "acme",
        "frank",
        "--role",
        "org_contributor",
        "--actor",
        "alice",
        "--connect",
        &unix,
    ]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let revision: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("revision: "))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {stdout}"));
    let out = warden(&[
        "check",
        "--subject",
        "frank",
        "--org",
        "acme",
        "--resource",
        "apps/web",
        "--action",
        "app:write",
        "--min-revision",
        &revision.to_string(),
        "--connect",
        &tcp,
    ]);
    assert_exit(&out, 0);

    // Refused by the directory: 1. Malformed or unreachable: 2.
    let out = warden(&[
        "member",
        "remove",
        "acme",
        "bob",
        "--actor",
        "dave",
        "--connect",
        &tcp,
    ]);
    assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("member:manage"));
    assert_exit(
        &warden(&[
            "member",
            "remove",
            "acme",
            "alice",
            "--actor",
            "alice",
            "--connect",
            &unix,
        ]),
        1,
    );
    assert_exit(
        &warden(&["org", "get", "nowhere", "--actor", "alice", "--connect", &unix]),
        1,
    );
    assert_exit(
        &warden(&[
            "member",
            "add",
            "acme",
            "Bad User",
            "--role",
            "org_user",
            "--actor",
            "alice",
            "--connect",
            &unix,
        ]),
        2,
    );
    assert_exit(
        &warden(&[
            "org",
            "list",
            "--actor",
            "alice",
            "--connect",
            "unix:/nonexistent/warden.sock",
        ]),
        2,
    );

    // A tour of the rest, all acknowledged.
    for args in [
        &[
            "org", "create", "initech", "--name", "Initech", "--actor", "frank",
        ][..],
        &[
            "org",
            "update",
            "initech",
            "--plan",
            "enterprise",
            "--actor",
            "frank",
        ],
        &["org", "get", "initech", "--actor", "frank"],
        &[
            "org", "list", "--user", "frank", "--query", "INI", "--actor", "frank",
        ],
        &["member", "role", "acme", "frank", "org_user", "--actor", "alice"],
        &["member", "list", "acme", "--query", "fr", "--actor", "dave"],
        &[
            "team", "create", "acme", "backend", "--name", "Backend", "--actor", "alice",
        ],
        &[
            "team", "rename", "acme", "backend", "Back end", "--actor", "alice",
        ],
        &[
            "team",
            "add-member",
            "acme",
            "backend",
            "frank",
            "--actor",
            "alice",
        ],
        &["team", "grant", "acme", "backend", "api", "--actor", "alice"],
        &["team", "list", "acme", "--actor", "frank"],
        &["team", "revoke", "acme", "backend", "api", "--actor", "alice"],
        &[
            "team",
            "remove-member",
            "acme",
            "backend",
            "frank",
            "--actor",
            "alice",
        ],
        &["team", "delete", "acme", "backend", "--actor", "alice"],
        &[
            "app", "create", "scratch", "--user", "frank", "--name", "Scratch", "--actor", "frank",
        ],
        &[
            "app", "transfer", "scratch", "--to-org", "initech", "--actor", "frank",
        ],
        &["app", "get", "scratch", "--actor", "frank"],
        &["app", "list", "--org", "initech", "--actor", "frank"],
        &["app", "delete", "scratch", "--actor", "frank"],
        &["org", "delete", "initech", "--actor", "frank"],
        &["user", "get", "frank", "--actor", "frank"],
    ] {
        let mut full = args.to_vec();
        full.extend(["--connect", &unix]);
        let out = warden(&full);
        assert_exit(&out, 0);
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
    }
}

/// `warden export` of `data` as text (the daemon must be stopped).
/// `org update --max-memberships/--deletable/--terms-version` change only the settings
/// given (the others keep their value), `org get` shows them, an org user is refused, and
/// the limit is enforced on the next add.
#[test]
fn org_settings_from_the_cli() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--connect", target.as_str()]);
        warden(&all)
    };
    let update = |actor: &str, flags: &[&str]| {
        let mut args = vec!["org", "update", "acme", "--actor", actor];
        args.extend(flags);
        run(&args)
    };
    assert_exit(
        &update("alice", &["--terms-version", "2026-11", "--deletable", "false"]),
        0,
    );
    // A second update of one setting keeps the other two.
    assert_exit(&update("alice", &["--max-memberships", "5"]), 0);
    let got = run(&["org", "get", "acme", "--actor", "alice"]);
    assert_exit(&got, 0);
    let text = String::from_utf8_lossy(&got.stdout);
    for line in ["max_memberships: 5", "deletable: false", "terms_version: 2026-11"] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
    // An org user may not change settings: PERMISSION_DENIED, and nothing changes.
    let denied = update("dave", &["--max-memberships", "500"]);
    assert_ne!(denied.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("org:update"),
        "{denied:?}"
    );
    let again = run(&["org", "get", "acme", "--actor", "alice"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("max_memberships: 5"));
    // Not deletable: even the admin's delete is refused.
    let delete = run(&["org", "delete", "acme", "--force", "--actor", "alice"]);
    assert_ne!(delete.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&delete.stderr).contains("deletable"),
        "{delete:?}"
    );
    // The limit (5) holds: acme has 4 members; a fifth joins, a sixth is refused.
    for (user, fits) in [("zed1", true), ("zed2", false)] {
        assert_exit(
            &run(&[
                "user",
                "upsert",
                user,
                "--email",
                &format!("{user}@example.com"),
                "--actor",
                user,
            ]),
            0,
        );
        let added = run(&[
            "member", "add", "acme", user, "--role", "org_user", "--actor", "alice",
        ]);
        if fits {
            assert_exit(&added, 0);
        } else {
            assert_ne!(added.status.code(), Some(0));
            assert!(
                String::from_utf8_lossy(&added.stderr).contains("limit"),
                "{added:?}"
            );
        }
    }
}

fn export(data: &std::path::Path, format: &str) -> String {
    let out = warden(&[
        "export",
        "--format",
        format,
        "--data",
        &data.display().to_string(),
    ]);
    assert_exit(&out, 0);
    String::from_utf8(out.stdout).expect("utf-8 export")
}

#[test]
fn restarts_keep_every_acknowledged_write() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    let target = daemon.work.unix_target();
    let written = rt.block_on(async {
        let mut c = clients(&target).await;
        c.upsert_user("frank", "frank").await;
        c.add_member("alice", "acme", "frank", "org_contributor")
            .await
            .expect("AddMember");
        c.member
            .remove_member(pb::RemoveMemberRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                user_id: "dave".into(),
            })
            .await
            .expect("RemoveMember");
        c.stats().await
    });
    daemon.stop();
    let first = export(&daemon.work.data(), "json");

    // A restart with --demo again must not reseed over the changed directory.
    daemon.restart();
    rt.block_on(async {
        let mut c = clients(&daemon.work.tcp_target()).await;
        assert_eq!(c.stats().await, written);
        assert!(c.check("frank", "acme", "apps/web", "app:write", 0).await);
        assert!(!c.check("dave", "acme", "apps/web", "app:read", 0).await);
        assert!(c.check("carol", "acme", "apps/web", "app:write", 0).await);
    });
    daemon.stop();
    assert_eq!(export(&daemon.work.data(), "json"), first);
}

#[test]
fn export_then_import_into_a_fresh_store_is_identical() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let data = daemon.work.data();

    // Offline means offline: a served store is refused with a clear message.
    let out = warden(&["export", "--data", &data.display().to_string()]);
    assert_exit(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already open"),
        "{out:?}"
    );
    daemon.stop();

    for (format, name) in [("json", "dump.json"), ("yaml", "dump.yaml")] {
        let original = export(&data, format);
        assert!(original.contains("alice-sandbox"), "{original}");
        let file = daemon.work.dir.path().join(name);
        std::fs::write(&file, &original).expect("write dump");
        let fresh = daemon.work.dir.path().join(format!("fresh-{format}"));
        let out = warden(&[
            "import",
            &file.display().to_string(),
            "--data",
            &fresh.display().to_string(),
        ]);
        assert_exit(&out, 0);
        assert_eq!(export(&fresh, format), original, "{format} round trip");
        // Importing twice is refused: the store is no longer empty.
        let out = warden(&[
            "import",
            &file.display().to_string(),
            "--data",
            &fresh.display().to_string(),
        ]);
        assert_exit(&out, 2);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not empty"),
            "{out:?}"
        );
    }

    // The imported store serves the same decisions.
    let work = Workdir::new();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).expect("data dir");
        std::fs::copy(from.join("warden.redb"), to.join("warden.redb")).expect("copy store");
    };
    copy(&daemon.work.dir.path().join("fresh-json"), &work.data());
    let imported = work.start();
    assert_exit(&check(&imported.work.unix_target(), "alice"), 0);
    assert_exit(&check(&imported.work.unix_target(), "dave"), 1);
}

#[test]
fn a_store_that_cannot_be_opened_stops_startup() {
    let work = Workdir::new();
    std::fs::create_dir_all(work.data()).expect("data dir");
    std::fs::write(work.data().join("warden.redb"), b"this is not a redb file at all").expect("garbage");
    let (status, stderr) = run_to_exit(&mut work.serve_command());
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("warden.redb"),
        "the error should name the file: {stderr}"
    );
    assert!(
        !work.socket().exists(),
        "no listener may open before the store does"
    );
}
