//! Warden's integration tests, in one test binary.
//!
//! Every file beside this one is a module named after the behaviour it protects; they share
//! `common` (starting and stopping the real daemon) and `store_support` (store fixtures).
//! One binary instead of one per file: each of them linked the whole daemon (tonic, redb,
//! casbin-rs), which cost ~200 MB of disk and a link step apiece. Run one file's tests with
//! `cargo test --test integration <module>::`, e.g. `cargo test --test integration conformance::`.

mod common;
mod store_support;

mod app_labels;
mod audit;
mod authzen;
mod bench_cli;
mod caller_errors;
mod casbin_rs_differential;
mod check_explain_deny;
mod check_explain_team;
mod cli_connect;
mod cli_exit_codes;
mod cli_help;
mod cli_json;
mod cli_times;
mod client;
mod cluster;
mod cluster_catchup;
mod cluster_disk;
mod cluster_faults;
mod cluster_snapshots;
mod cluster_telemetry;
mod cluster_upgrade_demo;
mod collaborators;
mod conformance;
mod connections;
mod console_browser;
mod crash_durability;
mod daemon_authz;
mod daemon_grpc;
mod daemon_lifecycle;
mod daemon_logs;
mod daemon_metrics;
mod daemon_policy_tests;
mod daemon_reload;
mod default_policy;
mod demo_plans;
mod deploy_envoy;
mod deploy_files;
mod directory_api;
mod directory_cli;
mod directory_crash;
mod directory_digest;
mod directory_min_revision;
mod directory_trust;
mod disk_trouble;
mod envoy_ext_authz;
mod escalation;
mod hostile_input;
mod hostile_policy;
mod http_gateway;
mod lifecycle_domains;
mod lifecycle_invitations;
mod lifecycle_limits;
mod limits;
mod list_search_sort;
mod no_panic;
mod policy_authoring;
mod policy_diff_cli;
mod policy_eval_cli;
mod policy_load_snapshot;
mod policy_reload_storm;
mod policy_test_cli;
mod publishing;
mod python_client;
mod python_package;
mod readme_tour;
mod resource_grammar;
mod security_settings;
mod snapshot;
mod store_changes;
mod store_dump;
mod store_index;
mod store_lifecycle;
mod store_open;
mod store_reads;
mod tokens;
mod traces;
mod transport;
mod uds_any_client;
mod usage;
mod watch_changes;
mod write_determinism;
