//! A policy reload storm against the real daemon: while clients on the Unix socket and
//! on TCP check without pause, 100 policy edits land in a row, a third of them broken
//! (syntax errors, wrong arity, unknown functions, truncated files, a deleted file, a
//! ConfigMap-style symlink swap onto a broken version), with SIGHUP and `ReloadPolicy`
//! fired into the middle of it.
//!
//! Every good version `K` allows `alice` by one rule whose text carries `apps/:vK`, so
//! an explained decision names the version that made it. Broken versions carry
//! `apps/:bK`. The model behind a symlink swap pins the policy's domain column to the
//! swap's tag, so a load that mixed one version's model with another's rules would deny
//! `alice`, which no good version does. The test asserts that no check failed, that
//! every decision came from a good version, and that the last good version is serving
//! at the end.

use crate::common;

use common::*;
use std::collections::BTreeSet;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden::api::client::connect;
use warden::api::pb;

const EDITS: usize = 100;

/// The model of a plain edit: the rule's domain must equal the request's.
fn model(tag: Option<&str>) -> String {
    let dom = match tag {
        None => "r.dom == p.dom".to_string(),
        Some(t) => format!("p.dom == \"{t}\""),
    };
    format!(
        "[request_definition]\nr = sub, dom, obj, act\n\n[policy_definition]\np = sub, dom, obj, act\n\n\
         [policy_effect]\ne = some(where (p.eft == allow))\n\n[matchers]\nm = r.sub == p.sub && {dom} && keyMatch2(r.obj, p.obj) && r.act == p.act\n"
    )
}

/// Good version `k` under a model whose domain column is `dom` (`acme`, or a swap tag).
fn good_policy(k: usize, dom: &str) -> String {
    format!("# good version {k}\np, carol, {dom}, apps/:x, write\np, alice, {dom}, apps/:v{k}, read\n")
}

/// What the test has made the directory look like.
struct Dir {
    root: PathBuf,
    /// The domain column the model behind `..data` expects (`acme` for the plain model).
    dom: String,
    /// Swaps made so far (each gets a fresh `..sN` directory).
    swaps: usize,
    /// Whether the last edit left `..data` on a broken version, so the next good edit
    /// must be a swap.
    data_broken: bool,
}

impl Dir {
    fn policy(&self) -> PathBuf {
        self.root.join("policy.csv")
    }

    /// Point `..data` at a new version directory holding `files`, atomically.
    fn swap(&mut self, files: &[(&str, &str)]) {
        self.swaps += 1;
        let name = format!("..s{}", self.swaps);
        let v = self.root.join(&name);
        std::fs::create_dir(&v).unwrap();
        for (f, text) in files {
            std::fs::write(v.join(f), text).unwrap();
        }
        symlink(&name, self.root.join("..data_tmp")).unwrap();
        std::fs::rename(self.root.join("..data_tmp"), self.root.join("..data")).unwrap();
    }

    /// Make `policy.csv` a symlink through `..data` again (an editor's rename may have
    /// replaced it with a plain file), without changing what it says: the current
    /// version directory first receives the plain file's text.
    fn relink_policy(&self) {
        let p = self.policy();
        let is_link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            return;
        }
        // A deleted file stays as good as deleted: empty, which is refused.
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(self.root.join("..data").join("policy.csv"), text).unwrap();
        symlink("..data/policy.csv", self.root.join("policy.csv.lnk")).unwrap();
        std::fs::rename(self.root.join("policy.csv.lnk"), &p).unwrap();
    }
}

/// Replace a file the way editors do: write a temp file, rename over.
fn write_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The broken edit number `i` (`k` numbers the marker of its otherwise valid line).
fn broken_edit(dir: &mut Dir, i: usize, k: usize) -> &'static str {
    let dom = dir.dom.clone();
    let valid = format!("p, alice, {dom}, apps/:b{k}, read\n");
    match i % 7 {
        0 => {
            std::fs::write(
                dir.policy(),
                format!("{valid}p, alice, \"{dom}, apps/:b{k}, read\n"),
            )
            .unwrap();
            "syntax error (unterminated quote)"
        }
        1 => {
            write_rename(&dir.policy(), &format!("{valid}p, alice, {dom}, apps/:b{k}\n"));
            "wrong arity"
        }
        2 => {
            let m = model(Some(&format!("t{k}"))).replace("keyMatch2", "keyMatch9");
            let p = format!("p, alice, t{k}, apps/:b{k}, read\n");
            dir.swap(&[("model.conf", &m), ("policy.csv", &p)]);
            dir.relink_policy();
            dir.data_broken = true;
            "unknown function (symlink swap)"
        }
        3 => {
            let full = format!("{valid}p, alice, {dom}, apps/:b{k}, read\n");
            std::fs::write(dir.policy(), &full[..full.len() - 12]).unwrap();
            "truncated mid-line"
        }
        4 => {
            std::fs::write(dir.policy(), "").unwrap();
            "truncated to nothing"
        }
        5 => {
            let _ = std::fs::remove_file(dir.policy());
            "deleted"
        }
        _ => {
            let m = model(Some(&format!("t{k}"))).replace(" && r.act", " && (r.act");
            let p = format!("p, alice, t{k}, apps/:b{k}, read\n");
            dir.swap(&[("model.conf", &m), ("policy.csv", &p)]);
            dir.relink_policy();
            dir.data_broken = true;
            "matcher syntax error (symlink swap)"
        }
    }
}

/// Good edit number `i`: version `k`, by one of three means.
fn good_edit(dir: &mut Dir, i: usize, k: usize) -> &'static str {
    let how = if dir.data_broken { 2 } else { (i + i / 3) % 3 };
    match how {
        0 => {
            // In place (follows the symlink into the current version directory, or
            // re-creates a deleted file).
            std::fs::write(dir.policy(), good_policy(k, &dir.dom)).unwrap();
            "in place"
        }
        1 => {
            write_rename(&dir.policy(), &good_policy(k, &dir.dom));
            "write-rename"
        }
        _ => {
            let tag = format!("t{k}");
            // Before the swap, `policy.csv` must lead through `..data` again, holding
            // the version now serving (or, after a broken swap, this one's rules are
            // about to replace it anyway).
            if !dir.data_broken {
                dir.relink_policy();
            }
            dir.swap(&[
                ("model.conf", &model(Some(&tag))),
                ("policy.csv", &good_policy(k, &tag)),
            ]);
            dir.relink_policy();
            dir.dom = tag;
            dir.data_broken = false;
            "symlink swap"
        }
    }
}

/// What the checkers saw.
#[derive(Default)]
struct Seen {
    checks: AtomicU64,
    failures: parking_lot::Mutex<Vec<String>>,
    /// Version numbers of `alice`'s allowing rule.
    versions: parking_lot::Mutex<BTreeSet<usize>>,
    /// Decisions that belong to no good version.
    foreign: parking_lot::Mutex<Vec<String>>,
}

fn version_of(rule_text: &str) -> Option<usize> {
    let at = rule_text.find("apps/:v")? + "apps/:v".len();
    let digits: String = rule_text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn checker(target: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let mut c = pb::authz_service_client::AuthzServiceClient::new(connect(&target).await.expect("connect"));
    while !stop.load(Ordering::Relaxed) {
        let alice = c
            .check(pb::CheckRequest {
                subject: "alice".into(),
                org: "acme".into(),
                resource: "apps/web".into(),
                action: "read".into(),
                explain: true,
                ..Default::default()
            })
            .await;
        let bob = c
            .check(pb::CheckRequest {
                subject: "bob".into(),
                org: "acme".into(),
                resource: "apps/web".into(),
                action: "read".into(),
                ..Default::default()
            })
            .await;
        seen.checks.fetch_add(2, Ordering::Relaxed);
        match (alice, bob) {
            (Ok(a), Ok(b)) => {
                let a = a.into_inner();
                let rule = a.explanation.map(|e| e.rule_text).unwrap_or_default();
                match version_of(&rule) {
                    Some(v) if a.allowed => {
                        seen.versions.lock().insert(v);
                    }
                    _ => seen
                        .foreign
                        .lock()
                        .push(format!("alice allowed={} by {rule:?}", a.allowed)),
                }
                if b.into_inner().allowed {
                    seen.foreign.lock().push("bob allowed".into());
                }
            }
            (a, b) => seen
                .failures
                .lock()
                .push(format!("{target}: {:?} / {:?}", a.err(), b.err())),
        }
    }
}

async fn status(target: &str) -> pb::PolicyStatus {
    let mut a = pb::admin_service_client::AdminServiceClient::new(connect(target).await.expect("connect"));
    a.get_policy_status(pb::GetPolicyStatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

#[test]
fn a_hundred_edits_a_third_broken_under_load() {
    // The ConfigMap layout from the start: files lead through `..data`.
    let work = Workdir::with_policy_files(&[]);
    let root = work.policies();
    let v0 = root.join("..s0");
    std::fs::create_dir(&v0).unwrap();
    std::fs::write(v0.join("model.conf"), model(Some("t0"))).unwrap();
    std::fs::write(v0.join("policy.csv"), good_policy(0, "t0")).unwrap();
    symlink("..s0", root.join("..data")).unwrap();
    for f in ["model.conf", "policy.csv"] {
        symlink(format!("..data/{f}"), root.join(f)).unwrap();
    }
    let mut dir = Dir {
        root: root.clone(),
        dom: "t0".into(),
        swaps: 0,
        data_broken: false,
    };

    let daemon = work.start();
    let unix = daemon.work.unix_target();
    let tcp = daemon.work.tcp_target();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let checkers: Vec<_> = [&unix, &tcp, &unix, &tcp]
        .into_iter()
        .map(|t| rt.spawn(checker(t.clone(), seen.clone(), stop.clone())))
        .collect();

    let mut last_good = 0;
    let mut kinds = BTreeSet::new();
    let mut rng_state = 0x5eed_u64;
    let mut next = move || {
        // xorshift: a reproducible schedule without a seeded-RNG dependency.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut broken_count = 0;
    for i in 1..=EDITS {
        // Edits 3, 6, 9, … are broken: a third, spread through the storm.
        let kind = if i % 3 == 0 {
            broken_count += 1;
            broken_edit(&mut dir, broken_count, i)
        } else {
            last_good = i;
            good_edit(&mut dir, i, i)
        };
        kinds.insert(kind);
        if i % 10 == 5 {
            daemon.signal(libc::SIGHUP);
        }
        if i % 10 == 7 {
            let t = unix.clone();
            rt.spawn(async move {
                let mut a =
                    pb::admin_service_client::AdminServiceClient::new(connect(&t).await.expect("connect"));
                let _ = a.reload_policy(pb::ReloadPolicyRequest {}).await;
            });
        }
        // Sometimes faster than the watcher's debounce, sometimes slower.
        std::thread::sleep(Duration::from_millis(next() % 120));
    }
    assert_eq!(broken_count, EDITS / 3);

    // The last edit is good (100 % 3 != 0); once the daemon has settled on it, a last
    // explicit reload must agree.
    assert_eq!(last_good, EDITS);
    let start = Instant::now();
    while !seen.versions.lock().contains(&last_good) {
        assert!(
            start.elapsed() < PATIENCE,
            "version {last_good} never served; logs:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let settled = rt.block_on(async {
        let mut a = pb::admin_service_client::AdminServiceClient::new(connect(&unix).await.unwrap());
        a.reload_policy(pb::ReloadPolicyRequest {})
            .await
            .expect("final reload")
            .into_inner()
    });
    let checks_before_stop = seen.checks.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for c in checkers {
        rt.block_on(c).unwrap();
    }

    // The serving policy is exactly the last good version's files.
    let expected = warden::policy::load_dir(&root).expect("the final directory is good");
    assert_eq!(settled.content_hash, expected.hash);
    assert_eq!(rt.block_on(status(&unix)).content_hash, expected.hash);

    let failures = seen.failures.lock();
    let foreign = seen.foreign.lock();
    let versions = seen.versions.lock();
    let s = rt.block_on(status(&unix));
    println!(
        "{EDITS} edits ({broken_count} broken: {kinds:?}); {} checks; {} good versions observed; \
         reloads ok {} / failed {}",
        seen.checks.load(Ordering::Relaxed),
        versions.len(),
        s.reloads_succeeded,
        s.reloads_failed
    );
    assert!(
        failures.is_empty(),
        "failed checks: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(
        foreign.is_empty(),
        "{} decisions from no good version, e.g. {:?}",
        foreign.len(),
        &foreign[..foreign.len().min(5)]
    );
    let good: BTreeSet<usize> = (0..=EDITS).filter(|i| i % 3 != 0 || *i == 0).collect();
    assert!(versions.is_subset(&good), "{versions:?}");
    assert!(checks_before_stop > 0);
    assert!(s.reloads_failed > 0, "the broken edits were never even loaded");
}
