//! The Python package `clients/python` (`warden_authz`) as a user gets it: a clean venv,
//! `pip install ./clients/python[test]` (the stubs are generated from `proto/` by the
//! package's build hook), then its own pytest suite against the real daemon serving the
//! demo directory, on the Unix socket with no channel options and on TCP with a bearer token.
//!
//! Needs python3 with venv and pip, and PyPI (or a pip cache). Anything missing fails the
//! test with what to install: it never passes by skipping.

use crate::common;
use crate::python_client::{repo, run};

use common::*;
use std::process::Command;

#[test]
fn python_package_installs_in_a_clean_venv_and_passes_its_tests_against_the_daemon() {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-package-venv");
    run(
        "creating a clean venv (python3 -m venv)",
        Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv),
    );
    let python = venv.join("bin/python");
    run(
        "pip install ./clients/python[test]",
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
            .arg(format!("{}[test]", repo().join("clients/python").display())),
    );

    let token = crate::transport::random_token();
    let mut daemon = Workdir::new().start_with(&[
        "--demo",
        "--tcp-token-sha256",
        &warden::api::auth::token_sha256_hex(&token),
        // Long enough that only the client's deadline can end the test's waiting call.
        "--min-revision-wait",
        "60s",
    ]);
    let tests = repo().join("clients/python/tests");
    let out = run(
        "pytest clients/python/tests",
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(&tests)
            // The installed package, not the source tree, is what is tested.
            .current_dir(venv.as_path())
            .env_remove("PYTHONPATH")
            .env("WARDEN_CONNECT", daemon.work.unix_target())
            .env("WARDEN_TEST_TCP", daemon.work.tcp_target())
            .env("WARDEN_TEST_TOKEN", &token),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("8 passed") && !stdout.contains("failed"),
        "pytest:\n{stdout}"
    );
    daemon.stop();
}
