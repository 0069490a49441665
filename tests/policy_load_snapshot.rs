//! A policy directory read while a ConfigMap-style `..data` swap lands must load as one
//! version or the other, never one version's model with the other's rules.

use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn version(dom: &str) -> (String, String) {
    let model = format!(
        "[request_definition]\nr = sub, dom, obj, act\n\n[policy_definition]\np = sub, dom, obj, act\n\n\
         [policy_effect]\ne = some(where (p.eft == allow))\n\n[matchers]\nm = r.sub == p.sub && p.dom == \"{dom}\" && r.obj == p.obj && r.act == p.act\n"
    );
    let policy = format!("p, alice, {dom}, data, read\n");
    (model, policy)
}

#[test]
fn a_swap_during_a_load_never_mixes_versions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut hashes = Vec::new();
    for name in ["a", "b"] {
        let v = root.join(format!("..{name}"));
        std::fs::create_dir(&v).unwrap();
        let (m, p) = version(name);
        std::fs::write(v.join("model.conf"), m).unwrap();
        std::fs::write(v.join("policy.csv"), p).unwrap();
        hashes.push(warden::policy::load_dir(&v).unwrap().hash);
    }
    symlink("..a", root.join("..data")).unwrap();
    for f in ["model.conf", "policy.csv"] {
        symlink(format!("..data/{f}"), root.join(f)).unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, stop) = (root.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let target = if swaps.is_multiple_of(2) { "..b" } else { "..a" };
                symlink(target, root.join("..tmp")).unwrap();
                std::fs::rename(root.join("..tmp"), root.join("..data")).unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let mut mixed = 0;
    let mut loads = 0;
    let mut failed = 0;
    while loads < 5_000 {
        loads += 1;
        match warden::policy::load_dir(&root) {
            Ok(p) if !hashes.contains(&p.hash) => mixed += 1,
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    println!("{loads} loads during {swaps} swaps: {mixed} mixed, {failed} refused as unstable");
    assert_eq!(mixed, 0, "{mixed} of {loads} loads mixed two versions");
    assert!(failed < loads, "no load ever succeeded");
}
