//! `deploy/envoy/` cannot run here (no Envoy, no mesh), so this keeps it consistent with
//! Warden: the Envoy config and the Istio snippet parse as YAML, the Envoy ext_authz
//! filter forwards the metadata namespace and payload key the shipped mapping reads and
//! fails closed, the provider the Istio policy names is the one the mesh registers, the
//! shipped mapping loads, and the `warden serve` lines in their comments use real flags.

use crate::common;

use common::*;
use serde::Deserialize;
use serde_norway::Value;
use std::path::Path;
use std::process::Command;
use warden::api::ext_authz::Mapping;
use warden::api::ext_authz::mapping::Source;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML document"))
        .collect()
}

/// Every mapping in a sequence (recursively) whose `name` is `name`.
fn find_named<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Mapping(m) => {
            if m.get("name").and_then(Value::as_str) == Some(name) {
                out.push(v);
            }
            m.values().for_each(|c| find_named(c, name, out));
        }
        Value::Sequence(s) => s.iter().for_each(|c| find_named(c, name, out)),
        _ => {}
    }
}

fn named<'a>(v: &'a Value, name: &str) -> &'a Value {
    let mut out = Vec::new();
    find_named(v, name, &mut out);
    assert_eq!(out.len(), 1, "expected exactly one `{name}`");
    out[0]
}

/// The `warden serve …` commands quoted in a file's comments; each flag must be one
/// `warden serve --help` lists.
fn assert_quoted_serve_flags(rel: &str) {
    let help = String::from_utf8(
        Command::new(WARDEN)
            .args(["serve", "--help"])
            .output()
            .expect("warden serve --help")
            .stdout,
    )
    .unwrap();
    let text = read(rel);
    let mut commands = 0;
    let mut flags = 0;
    let lines: Vec<&str> = text.lines().map(|l| l.trim_start_matches(['#', ' '])).collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("warden serve ") else {
            continue;
        };
        commands += 1;
        let mut words: Vec<&str> = rest.split_whitespace().collect();
        // A command continued with `\` on the next comment line.
        if words.last() == Some(&"\\") {
            words.pop();
            words.extend(lines[i + 1].split_whitespace());
        }
        for w in words.iter().filter_map(|w| w.strip_prefix("--")) {
            flags += 1;
            assert!(
                help.split(|c: char| c.is_whitespace() || c == ',')
                    .any(|h| h == format!("--{w}")),
                "{rel}: `--{w}` is not a `warden serve` flag"
            );
        }
    }
    assert!(
        commands >= 1 && flags >= 2,
        "{rel}: no `warden serve` command with flags found"
    );
}

#[test]
fn envoy_config_forwards_what_the_shipped_mapping_reads_and_fails_closed() {
    let mapping = Mapping::parse(&read("deploy/envoy/ext_authz.toml")).expect("the shipped mapping loads");
    let docs = documents(&read("deploy/envoy/envoy.yaml"));
    assert_eq!(docs.len(), 1);
    let envoy = &docs[0];

    let ext_authz = &named(envoy, "envoy.filters.http.ext_authz")["typed_config"];
    assert_eq!(
        ext_authz["@type"].as_str(),
        Some("type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz")
    );
    assert_eq!(ext_authz["transport_api_version"].as_str(), Some("V3"));
    assert_eq!(
        ext_authz["failure_mode_allow"].as_bool(),
        Some(false),
        "Warden down must mean deny"
    );
    let cluster = ext_authz["grpc_service"]["envoy_grpc"]["cluster_name"]
        .as_str()
        .expect("a gRPC ext_authz service");
    let warden = named(envoy, cluster);
    assert!(
        warden["typed_extension_protocol_options"].as_mapping().is_some(),
        "the Warden cluster must speak HTTP/2 (gRPC)"
    );
    let namespaces: Vec<&str> = ext_authz["metadata_context_namespaces"]
        .as_sequence()
        .expect("metadata_context_namespaces")
        .iter()
        .filter_map(Value::as_str)
        .collect();

    // Every metadata source of the mapping is forwarded, under the key jwt_authn writes.
    let jwt = &named(envoy, "envoy.filters.http.jwt_authn")["typed_config"];
    let payload_key = jwt["providers"]["idp"]["payload_in_metadata"]
        .as_str()
        .expect("payload_in_metadata");
    let mut metadata_sources = 0;
    for source in mapping.subject.iter().chain(&mapping.org).chain(&mapping.app) {
        if let Source::Metadata { filter, path } = source {
            metadata_sources += 1;
            assert!(
                namespaces.contains(&filter.as_str()),
                "{filter} is not forwarded to Warden"
            );
            assert_eq!(
                path[0], payload_key,
                "the mapping reads {path:?}, jwt_authn writes {payload_key}"
            );
        }
    }
    assert!(
        metadata_sources > 0,
        "the shipped mapping takes the subject from the JWT"
    );

    // jwt_authn runs before ext_authz, the router last.
    let http_filters: Vec<&str> =
        named(envoy, "envoy.filters.network.http_connection_manager")["typed_config"]["http_filters"]
            .as_sequence()
            .expect("http_filters")
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
    assert_eq!(
        http_filters,
        [
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.ext_authz",
            "envoy.filters.http.router"
        ]
    );
    assert_quoted_serve_flags("deploy/envoy/envoy.yaml");
}

#[test]
fn istio_custom_policy_names_the_registered_provider() {
    let docs = documents(&read("deploy/envoy/istio.yaml"));
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ServiceEntry",
            "AuthorizationPolicy",
            "RequestAuthentication",
            "AuthorizationPolicy"
        ]
    );
    let mesh: Value = serde_norway::from_str(docs[0]["data"]["mesh"].as_str().expect("mesh config text"))
        .expect("the mesh config parses");
    let provider = &mesh["extensionProviders"][0];
    let grpc = &provider["envoyExtAuthzGrpc"];
    assert_eq!(grpc["failOpen"].as_bool(), Some(false));
    assert_eq!(grpc["port"].as_u64(), Some(50051));
    let custom = &docs[2];
    assert_eq!(custom["spec"]["action"].as_str(), Some("CUSTOM"));
    assert_eq!(custom["spec"]["provider"]["name"], provider["name"]);
    assert_eq!(
        docs[1]["spec"]["hosts"][0], grpc["service"],
        "the ServiceEntry resolves the provider's host"
    );

    // The header the RequestAuthentication writes is the one the comment maps.
    let claim_header = docs[3]["spec"]["jwtRules"][0]["outputClaimToHeaders"][0]["header"]
        .as_str()
        .expect("outputClaimToHeaders");
    let text = read("deploy/envoy/istio.yaml");
    let suggested = format!("subject = [{{ header = \"{claim_header}\" }}]");
    assert!(text.contains(&suggested), "istio.yaml should suggest {suggested}");
    assert!(text.contains("--ext-authz /etc/warden/istio_ext_authz.toml"));
    assert_quoted_serve_flags("deploy/envoy/istio.yaml");

    // The shipped Istio mapping reads only what reaches Warden through Istio: request
    // headers (the claim header) and the path, never filter metadata or context
    // extensions, which Istio's provider does not send.
    let istio_text = read("deploy/envoy/istio_ext_authz.toml");
    let m = Mapping::parse(&istio_text).expect("the shipped Istio mapping loads");
    assert_eq!(m.subject, vec![Source::Header(claim_header.to_string())]);
    for source in m.subject.iter().chain(&m.org).chain(&m.app) {
        assert!(
            matches!(source, Source::Header(_) | Source::PathParam(_)),
            "Istio does not forward {source:?}"
        );
    }
    assert!(!m.org.is_empty() && !m.app.is_empty());
    // Same routes as the Envoy mapping.
    let rules = |t: &str| t[t.find("# Route rules").expect("route rules section")..].to_string();
    assert_eq!(rules(&istio_text), rules(&read("deploy/envoy/ext_authz.toml")));
    let envoy = Mapping::parse(&read("deploy/envoy/ext_authz.toml")).expect("loads");
    for (method, path) in [
        ("GET", "/orgs/acme/apps/web/secrets/db"),
        ("DELETE", "/orgs/acme/apps/web/pages/7"),
        ("POST", "/orgs/acme/apps"),
        ("GET", "/orgs/acme"),
    ] {
        let action = |m: &Mapping| m.route(method, path).map(|r| r.rule.action.clone());
        assert!(action(&m).is_some(), "{method} {path} is mapped");
        assert_eq!(action(&m), action(&envoy), "{method} {path}");
    }
    assert_quoted_serve_flags("deploy/envoy/istio_ext_authz.toml");
}
