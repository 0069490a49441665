//! The CLI prints times as RFC 3339 in UTC (issue 14 §6), never raw milliseconds: member
//! list, invitations, tokens, the audit log (whose `--since` takes RFC 3339 too) and the
//! policy status, against the real daemon with the demo directory.

use crate::common;

use common::{WARDEN, Workdir};
use std::process::{Command, Stdio};

fn warden(target: &str, args: &[&str]) -> String {
    let out = Command::new(WARDEN)
        .args(args)
        .args(["--connect", target])
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_ACTOR")
        .stdin(Stdio::null())
        .output()
        .expect("run warden");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "warden {args:?}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The value after `label` on the line that has it, which must be an RFC 3339 UTC time
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ`) within this century's plausible range.
#[track_caller]
fn time_after(text: &str, label: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no `{label}` in:\n{text}"));
    let value = line[line.find(label).unwrap() + label.len()..].trim();
    let t = value.split_whitespace().next().unwrap_or_default();
    assert_rfc3339(t, text);
    t.to_string()
}

#[track_caller]
fn assert_rfc3339(t: &str, context: &str) {
    let ok = t.len() == 24
        && t.ends_with('Z')
        && t.as_bytes()[10] == b'T'
        && t.starts_with("20")
        && t.chars().filter(char::is_ascii_digit).count() == 17;
    assert!(ok, "`{t}` is not RFC 3339 UTC with milliseconds in:\n{context}");
}

#[test]
fn text_output_shows_rfc3339_times() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();

    let members = warden(&target, &["member", "list", "acme", "--actor", "alice"]);
    time_after(&members, "joined:");

    let invited = warden(
        &target,
        &[
            "invitation",
            "create",
            "acme",
            "--email",
            "new@example.com",
            "--role",
            "org_user",
            "--actor",
            "alice",
        ],
    );
    time_after(&invited, "expires:");
    time_after(&invited, "created:");
    assert!(!invited.contains("unix_ms"), "{invited}");

    let token = warden(
        &target,
        &[
            "token",
            "create",
            "--user",
            "alice",
            "--name",
            "ci",
            "--scope",
            "app:read",
            "--expires-in",
            "3600",
            "--actor",
            "alice",
        ],
    );
    time_after(&token, "expires:");
    assert!(token.contains("last used: never"), "{token}");

    let status = warden(&target, &["admin", "status"]);
    time_after(&status, "loaded at:");
    assert!(!status.contains("unix ms"), "{status}");

    // The audit log's time column, and a filter written the same way.
    let audit = warden(&target, &["audit", "acme", "--actor", "alice"]);
    let first = audit.lines().next().unwrap_or_default();
    let at = first.split('\t').nth(1).unwrap_or_default();
    assert_rfc3339(at, &audit);
    let since = warden(&target, &["audit", "acme", "--actor", "alice", "--since", at]);
    assert!(since.lines().next().is_some_and(|l| l.contains('\t')), "{since}");
    let later = warden(
        &target,
        &[
            "audit",
            "acme",
            "--actor",
            "alice",
            "--since",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert!(later.lines().all(|l| !l.contains('\t')), "{later}");
}
