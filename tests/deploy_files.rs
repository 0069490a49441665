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

fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML document"))
        .collect()
}

fn seq<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_sequence().unwrap_or_else(|| panic!("{what} is not a list"))
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    seq(list, "list")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("nothing named {name}"))
}

fn mount_of<'a>(container: &'a Value, path: &str) -> &'a str {
    seq(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(path))
        .and_then(|m| m["name"].as_str())
        .unwrap_or_else(|| panic!("nothing mounted at {path}"))
}

/// A container's args with each `$(VAR)` replaced as the kubelet does, from the
/// container's own `env`; `sample` gives a value for variables the cluster fills in
/// (fieldRef, secretKeyRef).
fn expand_args(container: &Value, sample: &[(&str, &str)]) -> Vec<String> {
    let env = seq(&container["env"], "env");
    seq(&container["args"], "args")
        .iter()
        .map(|a| {
            let mut arg = a.as_str().expect("string arg").to_string();
            while let Some(at) = arg.find("$(") {
                let close = at + arg[at..].find(')').expect("closed $(VAR)");
                let var = arg[at + 2..close].to_string();
                let def = env
                    .iter()
                    .find(|e| e["name"].as_str() == Some(var.as_str()))
                    .unwrap_or_else(|| panic!("$({var}) is not in the container's env"));
                let value = match def["value"].as_str() {
                    Some(v) => v.to_string(),
                    None => sample
                        .iter()
                        .find(|(k, _)| *k == var)
                        .unwrap_or_else(|| panic!("no sample value for $({var})"))
                        .1
                        .to_string(),
                };
                arg.replace_range(at..=close, &value);
            }
            arg
        })
        .collect()
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().expect("file type").is_dir() {
            files_under(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

/// The manifest's policy ConfigMap items as (key, path).
fn configmap_items(pod: &Value) -> Vec<(String, String)> {
    let volume = named(&pod["spec"]["volumes"], "warden-policies");
    seq(&volume["configMap"]["items"], "configMap items")
        .iter()
        .map(|i| {
            (
                i["key"].as_str().expect("key").to_string(),
                i["path"].as_str().expect("path").to_string(),
            )
        })
        .collect()
}

#[test]
fn k8s_manifest_runs_warden_as_native_sidecar_with_grpc_probes_and_no_open_listener() {
    let text = read("deploy/k8s/sidecar.yaml");
    assert!(!text.contains("0.0.0.0"), "sidecar.yaml listens on 0.0.0.0");
    let docs = documents(&text);
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Pod", "NetworkPolicy"]);
    let (pod, netpol) = (&docs[0], &docs[1]);

    // A native sidecar: an init container that keeps running, so the app starts after it.
    let warden = named(&pod["spec"]["initContainers"], "warden");
    assert_eq!(warden["restartPolicy"].as_str(), Some("Always"));
    assert!(
        seq(&pod["spec"]["containers"], "containers")
            .iter()
            .all(|c| c["name"].as_str() != Some("warden")),
        "warden must not also be a regular container"
    );
    let app = named(&pod["spec"]["containers"], "app");

    let token = "ab".repeat(32);
    let args = expand_args(warden, &[("POD_IP", "10.1.2.3"), ("TCP_TOKEN_SHA256", &token)]);
    assert_serve_args("deploy/k8s/sidecar.yaml", &args, &serve_help());
    assert!(args.contains(&"--require-policy-tests".to_string()));
    assert!(args.contains(&"unix:/run/warden/sock/warden.sock".to_string()));
    assert!(args.contains(&"tcp:10.1.2.3:50051".to_string()), "{args:?}");
    assert_eq!(
        named(&warden["env"], "POD_IP")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("status.podIP")
    );
    assert_eq!(
        named(&app["env"], "WARDEN_CONNECT")["value"].as_str(),
        Some("unix:/run/warden/sock/warden.sock"),
        "the app dials the socket Warden serves"
    );

    // One emptyDir holds the socket for both containers.
    let socket = mount_of(warden, "/run/warden");
    assert_eq!(mount_of(app, "/run/warden"), socket);
    assert!(named(&pod["spec"]["volumes"], socket).get("emptyDir").is_some());
    assert_eq!(mount_of(warden, "/etc/warden/policies"), "warden-policies");

    // gRPC health probes on the TCP listener's port; no HTTP port at all.
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            warden[probe]["grpc"]["port"].as_u64(),
            Some(50051),
            "{probe} is a gRPC health check on the listener"
        );
    }
    assert!(warden.get("ports").is_none(), "warden exposes no container port");
    assert!(!text.contains("httpGet") && !text.contains("--metrics"));

    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                warden["resources"][kind][resource].as_str().is_some(),
                "warden has no {kind}.{resource}"
            );
        }
    }

    // The NetworkPolicy selects this Pod and opens only the app's port.
    assert_eq!(
        netpol["spec"]["podSelector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(seq(&netpol["spec"]["policyTypes"], "policyTypes").len(), 1);
    assert_eq!(netpol["spec"]["policyTypes"][0].as_str(), Some("Ingress"));
    let app_port = app["ports"][0]["containerPort"].as_u64().expect("app port");
    let open: Vec<u64> = seq(&netpol["spec"]["ingress"], "ingress")
        .iter()
        .flat_map(|rule| seq(&rule["ports"], "ports").iter())
        .map(|p| p["port"].as_u64().expect("numeric port"))
        .collect();
    assert_eq!(open, [app_port]);
}

#[test]
fn k8s_policy_configmap_items_hold_every_policy_file_and_its_tests() {
    let pod = &documents(&read("deploy/k8s/sidecar.yaml"))[0];
    let items = configmap_items(pod);
    let mut expected = Vec::new();
    files_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        "",
        &mut expected,
    );
    expected.sort();
    let mut paths: Vec<String> = items.iter().map(|(_, p)| p.clone()).collect();
    paths.sort();
    assert_eq!(
        paths, expected,
        "the ConfigMap items must put every policies/ file at its path"
    );
    assert!(paths.iter().any(|p| p.starts_with("tests/")));
    for (key, path) in &items {
        // `kubectl create configmap --from-file=policies/ --from-file=policies/tests/`
        // names each key after the file.
        assert_eq!(Some(key.as_str()), path.rsplit('/').next(), "{path}");
    }
}

/// Lay `policies/` out as the kubelet mounts the manifest's ConfigMap: the files in a
/// timestamped directory, `..data` pointing at it, and a symlink per top-level item.
fn configmap_layout(target: &Path, items: &[(String, String)], edit: impl Fn(&str, String) -> String) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let data = target.join("..2026_12_03_00_00_00.000000001");
    for (_, path) in items {
        let dest = data.join(path);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(source.join(path)).unwrap();
        std::fs::write(dest, edit(path, text)).unwrap();
    }
    std::os::unix::fs::symlink("..2026_12_03_00_00_00.000000001", target.join("..data")).unwrap();
    let mut top: Vec<&str> = items.iter().map(|(_, p)| p.split('/').next().unwrap()).collect();
    top.dedup();
    for name in top {
        let link = target.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
        }
    }
}

#[test]
fn k8s_configmap_layout_serves_with_require_policy_tests_and_refuses_a_failing_test() {
    let pod = &documents(&read("deploy/k8s/sidecar.yaml"))[0];
    let items = configmap_items(pod);

    // As shipped: the tests are found (through the `tests` symlink) and pass.
    let work = Workdir::with_policy_files(&[]);
    configmap_layout(&work.policies(), &items, |_, t| t);
    let mut daemon = work.start_with(&["--require-policy-tests"]);
    daemon.stop();

    // A failing case in tests/ stops startup: the daemon really runs the mounted tests.
    let work = Workdir::with_policy_files(&[]);
    configmap_layout(&work.policies(), &items, |path, t| {
        if path.starts_with("tests/") {
            t.replacen("allow: true", "allow: false", 1)
        } else {
            t
        }
    });
    let (status, stderr) = run_to_exit(work.serve_command().arg("--require-policy-tests"));
    assert!(!status.success(), "a failing policy test must stop startup");
    assert!(
        stderr.contains("tests/default_roles.yaml") && stderr.contains("policy test failed"),
        "{stderr}"
    );
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

/// The Dockerfile's instructions, `\`-continued lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<String> {
    read("deploy/Dockerfile")
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn exec_form(json: &str, what: &str) -> Vec<String> {
    serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{what} is not a JSON array: {e}: {json}"))
}

/// The Dockerfile's HEALTHCHECK command (exec form).
fn healthcheck_command(instructions: &[String]) -> Vec<String> {
    let hc = instructions
        .iter()
        .find_map(|l| l.strip_prefix("HEALTHCHECK "))
        .expect("HEALTHCHECK");
    let (_, cmd) = hc.split_once(" CMD ").expect("HEALTHCHECK … CMD [..]");
    exec_form(cmd, "HEALTHCHECK CMD")
}

#[test]
fn dockerfile_runs_serve_with_real_flags_as_non_root() {
    let docker = dockerfile_instructions();
    let instruction = |name: &str| -> Vec<String> {
        let json = docker
            .iter()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("Dockerfile has no exec-form {name}"));
        exec_form(json, name)
    };
    assert!(instruction("ENTRYPOINT")[0].ends_with("/warden"));
    let cmd = instruction("CMD");
    assert_serve_args("deploy/Dockerfile", &cmd, &serve_help());
    assert!(
        docker
            .iter()
            .any(|l| l.contains("cargo build --release --locked"))
    );
    assert!(docker.iter().any(|l| l == "FROM debian:bookworm-slim"));
    let user = docker.iter().find_map(|l| l.strip_prefix("USER ")).expect("USER");
    assert!(!user.starts_with("root") && !user.starts_with('0'), "USER {user}");

    // The health check asks the socket `serve` listens on, with a real CLI command.
    let health = healthcheck_command(&docker);
    assert!(health[0].ends_with("/warden"));
    let listen = cmd
        .iter()
        .skip_while(|a| *a != "--listen")
        .nth(1)
        .expect("--listen");
    assert_eq!(health[1..], ["admin", "status", "--connect", listen.as_str()]);
}

#[test]
fn dockerfile_caches_dependencies_in_a_layer_before_the_sources() {
    let docker = dockerfile_instructions();
    let position = |pred: &dyn Fn(&str) -> bool, what: &str| {
        docker
            .iter()
            .position(|l| pred(l))
            .unwrap_or_else(|| panic!("Dockerfile has no {what}"))
    };
    let manifests = position(
        &|l| l.starts_with("COPY Cargo.toml Cargo.lock"),
        "COPY of the manifests",
    );
    let deps = position(
        &|l| l.starts_with("RUN ") && l.contains("cargo build --release --locked"),
        "dependency build",
    );
    let sources = position(&|l| l == "COPY . .", "COPY . .");
    assert!(
        manifests < deps && deps < sources,
        "manifests, then dependencies, then sources"
    );
    let dep_run = &docker[deps];

    // The placeholder crate has a file for every target Cargo.toml declares, or cargo
    // refuses the manifest before building anything.
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
    let mut targets = vec![manifest["lib"]["path"].as_str().expect("lib path").to_string()];
    for kind in ["bin", "test", "bench"] {
        for t in manifest
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let dir = match kind {
                "bin" => "src/bin",
                "test" => "tests",
                _ => "benches",
            };
            let default = format!("{dir}/{}.rs", t["name"].as_str().expect("target name"));
            targets.push(
                t.get("path")
                    .and_then(|p| p.as_str())
                    .map(String::from)
                    .unwrap_or(default),
            );
        }
    }
    for path in &targets {
        assert!(
            dep_run.contains(path.as_str()),
            "the dependency layer lacks a placeholder {path}"
        );
    }
    // The build script and what it reads are in the layer.
    assert!(docker[manifests].contains("build.rs"));
    assert!(docker[..deps].iter().any(|l| l == "COPY proto proto"));
    // Cargo reads every workspace member's manifest (and builds the client crate the CLI
    // uses), so each member other than the root is copied whole before the build.
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace members");
    for m in members.iter().filter_map(|m| m.as_str()).filter(|m| *m != ".") {
        assert!(
            docker[..deps].iter().any(|l| *l == format!("COPY {m} {m}")),
            "the dependency layer lacks the workspace member {m}"
        );
    }
    // The real sources are newer than the placeholders' build.
    let rebuild = &docker[sources + 1];
    assert!(rebuild.contains("touch src/lib.rs src/main.rs") && rebuild.contains("cargo build"));
}

#[test]
fn dockerignore_keeps_build_output_and_git_out() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target", ".git", "data"] {
        assert!(patterns.contains(&needed), ".dockerignore lacks {needed}");
    }
    // Nothing the build needs is excluded.
    for needed in ["src", "proto", "policies", "Cargo.toml", "Cargo.lock", "build.rs"] {
        assert!(
            !patterns.iter().any(|p| p.trim_end_matches('/') == needed),
            "{needed} excluded"
        );
    }
}

#[test]
fn dockerfile_healthcheck_passes_on_a_serving_daemon_and_fails_without_one() {
    let health = healthcheck_command(&dockerfile_instructions());
    let mut daemon = Workdir::new().start();
    let target = daemon.work.unix_target();
    let run = |target: &str| {
        Command::new(WARDEN)
            .args(&health[1..health.len() - 1])
            .arg(target)
            .env_remove("WARDEN_CONNECT")
            .output()
            .expect("run the health check")
    };
    let out = run(&target);
    assert!(
        out.status.success(),
        "healthy daemon: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.stop();
    assert!(!run(&target).status.success(), "no daemon must be unhealthy");
}
