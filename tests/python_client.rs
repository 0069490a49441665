//! The Python example client (`examples/python/`) against the real daemon: a venv with
//! the pinned `requirements.txt`, stubs generated from `proto/` with grpcio-tools, and
//! `warden_example.py` run on both listeners of `serve --demo`, its output asserted line
//! by line.
//!
//! Needs python3 with venv and pip, and PyPI (or a pip cache). CI makes the venv once in
//! `.ci/run` and passes it as `WARDEN_PY_VENV`; without it the test makes its own under
//! the target directory and reuses it while `requirements.txt` is unchanged. Anything
//! missing fails the test with what to install: it never passes by skipping.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[track_caller]
fn run(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}; python3 with venv and pip is required"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A venv with `requirements.txt` installed: `WARDEN_PY_VENV`, or one made here.
fn venv() -> PathBuf {
    let requirements = repo().join("examples/python/requirements.txt");
    if let Ok(v) = std::env::var("WARDEN_PY_VENV") {
        let v = PathBuf::from(v);
        assert!(
            v.join("bin/python").exists(),
            "WARDEN_PY_VENV={} has no bin/python",
            v.display()
        );
        return v;
    }
    let wanted = std::fs::read_to_string(&requirements).expect("examples/python/requirements.txt");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-venv");
    let stamp = venv.join("requirements.installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return venv;
    }
    run(
        "creating the venv",
        Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv),
    );
    run(
        "pip install -r examples/python/requirements.txt",
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r"])
            .arg(&requirements),
    );
    std::fs::write(&stamp, wanted).expect("write the venv stamp");
    venv
}

#[test]
fn python_example_client_against_the_demo_daemon() {
    let venv = venv();
    let python = venv.join("bin/python");
    let gen_dir = tempfile::tempdir().expect("tempdir");
    run(
        "examples/python/generate.sh",
        Command::new("bash")
            .arg(repo().join("examples/python/generate.sh"))
            .arg(gen_dir.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
    );
    assert!(gen_dir.path().join("warden/v1/authz_pb2_grpc.py").exists());

    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let policy_csv = daemon.work.policies().join("policy.csv");
    let expected = [
        "check alice app:write apps/web: allow".to_string(),
        "check dave app:write apps/web: deny".to_string(),
        "check dave app:read apps/web: allow".to_string(),
        format!(
            "explain alice app:write apps/web: allow by p, role:org_contributor, apps/:app, app:write, org, allow \
             via alice -[role:admin@acme]-> role:admin -> role:org_contributor (rule at {}:",
            policy_csv.display()
        ),
        "batch carol web/api/no-subject: allow, deny, error (items[2].subject: must not be empty)"
            .to_string(),
        "dave may read: apps/api, apps/web".to_string(),
        "members of acme: alice=admin, bob=org_contributor, carol=team_contributor, dave=org_user"
            .to_string(),
        "missing action: INVALID_ARGUMENT: action: must not be empty".to_string(),
    ];
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        let out = run(
            "warden_example.py",
            Command::new(&python)
                .arg(repo().join("examples/python/warden_example.py"))
                .args(["--target", &target])
                .env("PYTHONPATH", gen_dir.path()),
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{target}:\n{stdout}");
        for (line, want) in lines.iter().zip(&expected) {
            assert!(
                line.starts_with(want.as_str()),
                "{target}: got\n  {line}\nwanted\n  {want}"
            );
        }
    }
    daemon.stop();
}
