//! A synthetic org directory for benchmarks: `orgs` × `members` memberships, teams and
//! apps per org, and a mixed stream of allowed and denied requests.

use warden::engine::index::IndexOp;

pub struct Shape {
    pub orgs: usize,
    pub members: usize,
    pub teams: usize,
    pub apps: usize,
}

/// Org role of member `i` of an org: 5% admin, 20% org contributor, 40% team
/// contributor, 35% org user.
pub fn role_of(i: usize) -> &'static str {
    match i % 20 {
        0 => "admin",
        1..=4 => "org_contributor",
        5..=12 => "team_contributor",
        _ => "org_user",
    }
}

pub fn org(o: usize) -> String {
    format!("org{o}")
}

pub fn user(o: usize, i: usize) -> String {
    format!("user{o}x{i}")
}

/// The index operations for one org (memberships, apps, teams, team members, grants).
pub fn org_ops(shape: &Shape, o: usize) -> Vec<IndexOp> {
    let org = org(o);
    let mut ops = Vec::with_capacity(shape.members * 2 + shape.apps + shape.teams * 2);
    for a in 0..shape.apps {
        ops.push(IndexOp::AddApp {
            org: org.clone(),
            app: format!("app{a}"),
            labels: vec![],
        });
    }
    for i in 0..shape.members {
        ops.push(IndexOp::SetMember {
            org: org.clone(),
            user: user(o, i),
            role: role_of(i).into(),
        });
        if role_of(i) == "team_contributor" && shape.teams > 0 {
            ops.push(IndexOp::AddTeamMember {
                org: org.clone(),
                team: format!("team{}", i % shape.teams),
                user: user(o, i),
            });
        }
    }
    for t in 0..shape.teams {
        for k in 0..2 {
            ops.push(IndexOp::GrantApp {
                org: org.clone(),
                team: format!("team{t}"),
                app: format!("app{}", (t * 2 + k) % shape.apps.max(1)),
            });
        }
    }
    ops
}

/// A small deterministic PRNG (xorshift) so runs are repeatable without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

pub const ACTIONS: &[&str] = &[
    "app:read",
    "app:write",
    "app:delete",
    "org:read",
    "org:update",
    "member:invite",
    "team:manage",
    "billing:manage",
];

/// (subject, org, resource, action) requests: members of the org asking about its apps
/// and itself, members of other orgs, and strangers.
pub fn requests(shape: &Shape, n: usize, seed: u64) -> Vec<[String; 4]> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let o = rng.below(shape.orgs);
            let subject = match rng.below(10) {
                0 => user((o + 1) % shape.orgs, rng.below(shape.members)),
                1 => format!("stranger{}", rng.below(1000)),
                _ => user(o, rng.below(shape.members)),
            };
            let action = ACTIONS[rng.below(ACTIONS.len())];
            let resource = if action.starts_with("app:") {
                match rng.below(3) {
                    0 => format!("apps/app{}", rng.below(shape.apps)),
                    1 => format!("apps/app{}/models/m{}", rng.below(shape.apps), rng.below(100)),
                    _ => format!("apps/app{}/workflows/w{}", rng.below(shape.apps), rng.below(100)),
                }
            } else {
                "org".to_string()
            };
            [subject, org(o), resource, action.to_string()]
        })
        .collect()
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}
