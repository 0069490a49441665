//! `deploy/` cannot be run here (no Docker, no systemd, no cluster), so this keeps it
//! honest another way: the Kubernetes manifest parses and wires the socket, policies
//! and probes together, and every `warden serve` flag the unit, the Dockerfile and the
//! manifest pass is one `warden serve --help` lists, with addresses Warden accepts.

use crate::common;

use common::*;
use serde_norway::Value;
use std::path::Path;
use std::process::Command;
use warden::api::listener::Listen;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn serve_help() -> String {
    let out = Command::new(WARDEN)
        .args(["serve", "--help"])
        .output()
        .expect("run warden serve --help");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// Check one `warden serve …` argument list (without the program name) against the
/// binary's help, and parse the addresses it passes.
fn assert_serve_args(source: &str, args: &[String], help: &str) {
    assert_eq!(
        args.first().map(String::as_str),
        Some("serve"),
        "{source}: {args:?}"
    );
    let mut flags = 0;
    for (i, arg) in args.iter().enumerate() {
        let Some(flag) = arg.strip_prefix("--") else {
            continue;
        };
        flags += 1;
        let flag = flag.split('=').next().unwrap();
        assert!(
            help.split(|c: char| c.is_whitespace() || c == ',')
                .any(|w| w == format!("--{flag}")),
            "{source}: `--{flag}` is not a `warden serve` flag; see `warden serve --help`"
        );
        if matches!(flag, "listen" | "metrics") {
            let value = args
                .get(i + 1)
                .unwrap_or_else(|| panic!("{source}: --{flag} needs a value"));
            value
                .parse::<Listen>()
                .unwrap_or_else(|e| panic!("{source}: --{flag} {value}: {e}"));
        }
    }
    assert!(flags >= 3, "{source}: found only {flags} flags in {args:?}");
    assert_passes_serve_checks(source, args);
}

/// The arguments resolve as `warden serve` resolves them: in particular, no listener
/// that others can reach without authentication (refused unless --insecure-remote), and
/// no --insecure-remote either.
fn assert_passes_serve_checks(source: &str, args: &[String]) {
    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: warden::cli::config::ServeArgs,
    }
    let parsed = <Serve as clap::Parser>::try_parse_from(args).unwrap_or_else(|e| panic!("{source}: {e}"));
    let config = parsed
        .args
        .resolve()
        .unwrap_or_else(|e| panic!("{source}: `warden serve` would refuse to start: {e:#}"));
    assert!(!config.insecure_remote, "{source}: ships --insecure-remote");
    for l in &config.listen {
        if let Listen::Tcp(addr) = l {
            assert!(
                addr.ip().is_loopback() || config.tcp_token_sha256.is_some(),
                "{source}: {l} is reachable by others without a token"
            );
        }
    }
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn mount_of<'a>(container: &'a Value, path: &str) -> &'a str {
    container["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(path))
        .and_then(|m| m["name"].as_str())
        .unwrap_or_else(|| panic!("nothing mounted at {path}"))
}

#[test]
fn k8s_sidecar_manifest_parses_and_wires_socket_policies_and_probes() {
    let pod: Value = serde_norway::from_str(&read("deploy/k8s/sidecar.yaml")).expect("valid YAML");
    assert_eq!(pod["kind"].as_str(), Some("Pod"));
    let warden = container(&pod, "warden");
    let app = container(&pod, "app");

    let args: Vec<String> = warden["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    assert_serve_args("deploy/k8s/sidecar.yaml", &args, &serve_help());
    assert!(args.contains(&"unix:/run/warden/sock/warden.sock".to_string()));
    assert!(args.contains(&"tcp:0.0.0.0:9090".to_string()));
    assert_eq!(
        app["env"][0]["value"].as_str(),
        Some("unix:/run/warden/sock/warden.sock"),
        "the app dials the socket Warden serves"
    );

    // One emptyDir holds the socket for both containers.
    let socket = mount_of(warden, "/run/warden");
    assert_eq!(mount_of(app, "/run/warden"), socket);
    let volume = |name: &str| {
        pod["spec"]["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    assert!(volume(socket).get("emptyDir").is_some());
    assert!(
        volume(mount_of(warden, "/etc/warden/policies"))
            .get("configMap")
            .is_some()
    );

    assert_eq!(
        warden["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(warden["readinessProbe"]["httpGet"]["port"].as_u64(), Some(9090));
    assert!(
        warden["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .all(|p| p["containerPort"].as_u64() == Some(9090))
    );
    assert_eq!(
        warden["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(warden["livenessProbe"]["httpGet"]["port"].as_u64(), Some(9090));
}

#[test]
fn systemd_unit_runs_serve_with_real_flags() {
    let unit = read("deploy/warden.service");
    // Join `\`-continued lines, then take ExecStart.
    let joined = unit.replace("\\\n", " ");
    let exec = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace().map(String::from);
    assert!(words.next().expect("program").ends_with("/warden"));
    let args: Vec<String> = words.collect();
    assert_serve_args("deploy/warden.service", &args, &serve_help());

    for line in [
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "StateDirectory=warden",
        "RuntimeDirectory=warden",
    ] {
        assert!(unit.lines().any(|l| l == line), "warden.service lacks {line}");
    }
    let rw = unit
        .lines()
        .find_map(|l| l.strip_prefix("ReadWritePaths="))
        .expect("ReadWritePaths");
    for dir in ["/var/lib/warden", "/run/warden"] {
        assert!(
            rw.split_whitespace().any(|d| d == dir),
            "ReadWritePaths lacks {dir}"
        );
        assert!(exec.contains(dir), "ExecStart does not use {dir}");
    }
}

#[test]
fn dockerfile_runs_serve_with_real_flags_as_non_root() {
    let docker = read("deploy/Dockerfile");
    let instruction = |name: &str| -> Vec<String> {
        let json = docker
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("Dockerfile has no exec-form {name}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{name} is not a JSON array: {e}"))
    };
    assert!(instruction("ENTRYPOINT")[0].ends_with("/warden"));
    assert_serve_args("deploy/Dockerfile", &instruction("CMD"), &serve_help());
    assert!(docker.contains("cargo build --release --locked"));
    assert!(docker.contains("FROM debian:bookworm-slim"));
    let user = docker
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "USER {user}");
}
