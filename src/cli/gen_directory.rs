//! `warden gen-directory`: a synthetic org directory for load tests, written as a dump that
//! `warden import` loads.
//!
//! The shape is the engine bench's (`benches/support`): `orgs` × `members` memberships with
//! roles 5% admin, 20% org contributor, 40% team contributor (each in one of `teams` teams), 35%
//! org user; `apps` apps per org; every team granted 2 apps. `warden bench` draws its requests
//! from the same names, so both must be given the same sizes. Records are written one by one
//! as they are generated, so a 1M-membership directory never sits in memory here (the import
//! still reads the whole file).

use crate::directory::{App, Membership, Org, OrgSettings, Owner, Team, TeamGrant, TeamMember, User};
use crate::store::DUMP_FORMAT;
use anyhow::{Context, bail};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Sizes of a generated directory. Names are derived from indexes so that the load generator
/// can draw requests without reading the directory back.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Shape {
    /// Number of orgs.
    #[arg(long, default_value_t = 10_000)]
    pub orgs: usize,
    /// Members per org (member 0 of every org is its admin).
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Teams per org.
    #[arg(long, default_value_t = 10)]
    pub teams: usize,
    /// Apps per org.
    #[arg(long, default_value_t = 20)]
    pub apps: usize,
}

/// Largest directory this command writes: 10M memberships is far past the 1M target
/// and still a file `warden import` can read.
const MAX_MEMBERSHIPS: usize = 10_000_000;

impl Shape {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.orgs == 0 || self.members == 0 {
            bail!("--orgs and --members must be at least 1 (every org needs its admin)");
        }
        if self.orgs.saturating_mul(self.members) > MAX_MEMBERSHIPS {
            bail!("--orgs × --members is capped at {MAX_MEMBERSHIPS} memberships");
        }
        if self.teams > 0 && self.apps == 0 {
            bail!("teams are granted apps: --apps must be at least 1 when --teams is");
        }
        if self.teams > 1000 || self.apps > 100_000 {
            bail!("--teams is capped at 1000 and --apps at 100000 per org");
        }
        Ok(())
    }
}

pub fn org(o: usize) -> String {
    format!("org{o}")
}

pub fn user(o: usize, i: usize) -> String {
    format!("user{o}x{i}")
}

/// App ids are unique across the directory, so they carry their org.
pub fn app(o: usize, a: usize) -> String {
    format!("org{o}-app{a}")
}

pub fn team(t: usize) -> String {
    format!("team{t}")
}

/// Org role of member `i`: 5% admin, 20% org contributor, 40% team contributor, 35% org user.
pub fn role_of(i: usize) -> &'static str {
    match i % 20 {
        0 => "admin",
        1..=4 => "org_contributor",
        5..=12 => "team_contributor",
        _ => "org_user",
    }
}

/// The team a team contributor belongs to; `seed` rotates the assignment.
fn team_of(shape: &Shape, i: usize, seed: u64) -> usize {
    (i + seed as usize) % shape.teams
}

/// The `k`-th app granted to team `t`; `seed` rotates the choice.
fn granted_app(shape: &Shape, t: usize, k: usize, seed: u64) -> usize {
    (t * 2 + k + seed as usize) % shape.apps
}

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    #[command(flatten)]
    pub shape: Shape,
    /// Rotates team membership and grants; 0 gives exactly the engine bench's directory.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The dump file to write (JSON).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run(args: GenArgs) -> ExitCode {
    match generate(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn generate(args: &GenArgs) -> anyhow::Result<()> {
    args.shape.validate()?;
    let file =
        std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    write_dump(&mut w, &args.shape, args.seed)
        .and_then(|()| w.flush())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let s = &args.shape;
    let contributors = (0..s.members)
        .filter(|&i| role_of(i) == "team_contributor")
        .count();
    println!(
        "wrote {}: {} orgs, {} users and memberships, {} teams, {} team members, {} apps, {} grants",
        args.out.display(),
        s.orgs,
        s.orgs * s.members,
        s.orgs * s.teams,
        if s.teams > 0 { s.orgs * contributors } else { 0 },
        s.orgs * s.apps,
        s.orgs * s.teams * s.apps.min(2),
    );
    Ok(())
}

/// Writes `[a,b,…]` one element at a time.
struct ListWriter<'w, W: Write> {
    w: &'w mut W,
    first: bool,
}

impl<'w, W: Write> ListWriter<'w, W> {
    fn open(w: &'w mut W, field: &str) -> std::io::Result<Self> {
        write!(w, ",\"{field}\":[")?;
        Ok(Self { w, first: true })
    }

    fn push(&mut self, record: &impl Serialize) -> std::io::Result<()> {
        if !self.first {
            self.w.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut *self.w, record).map_err(std::io::Error::other)
    }

    fn close(self) -> std::io::Result<()> {
        self.w.write_all(b"]")
    }
}

/// The dump as one JSON object with the fields of [`crate::store::Dump`], in its order. The
/// revision is 0: the import records itself at revision 1.
fn write_dump(w: &mut impl Write, s: &Shape, seed: u64) -> std::io::Result<()> {
    write!(w, "{{\"format\":{DUMP_FORMAT},\"revision\":0")?;

    let mut list = ListWriter::open(w, "users")?;
    for o in 0..s.orgs {
        for i in 0..s.members {
            let id = user(o, i);
            list.push(&User {
                email: format!("{id}@example.com"),
                username: None,
                email_verified: None,
                id,
            })?;
        }
    }
    list.close()?;

    let mut list = ListWriter::open(w, "orgs")?;
    for o in 0..s.orgs {
        list.push(&Org {
            id: org(o),
            name: format!("Org {o}"),
            billing_email: None,
            plan: "team".into(),
            logo_url: None,
            public_metadata: serde_json::Value::Null,
            private_metadata: serde_json::Value::Null,
            settings: OrgSettings::default(),
            created_by: user(o, 0),
            created_at_ms: 0,
            updated_at_ms: None,
        })?;
    }
    list.close()?;

    let mut list = ListWriter::open(w, "memberships")?;
    for o in 0..s.orgs {
        for i in 0..s.members {
            list.push(&Membership {
                org: org(o),
                user: user(o, i),
                role: role_of(i).into(),
                joined_at_ms: 0,
                terms_accepted: None,
                updated_at_ms: None,
            })?;
        }
    }
    list.close()?;

    let mut list = ListWriter::open(w, "teams")?;
    for o in 0..s.orgs {
        for t in 0..s.teams {
            list.push(&Team {
                org: org(o),
                id: team(t),
                name: format!("Team {t}"),
            })?;
        }
    }
    list.close()?;

    let mut list = ListWriter::open(w, "team_members")?;
    if s.teams > 0 {
        for o in 0..s.orgs {
            for i in (0..s.members).filter(|&i| role_of(i) == "team_contributor") {
                list.push(&TeamMember {
                    org: org(o),
                    team: team(team_of(s, i, seed)),
                    user: user(o, i),
                })?;
            }
        }
    }
    list.close()?;

    let mut list = ListWriter::open(w, "apps")?;
    for o in 0..s.orgs {
        for a in 0..s.apps {
            list.push(&App {
                id: app(o, a),
                owner: Owner::Org(org(o)),
                name: format!("App {a}"),
                labels: vec![],
                created_at_ms: 0,
                updated_at_ms: None,
            })?;
        }
    }
    list.close()?;

    let mut list = ListWriter::open(w, "team_grants")?;
    for o in 0..s.orgs {
        for t in 0..s.teams {
            let mut granted = [granted_app(s, t, 0, seed), granted_app(s, t, 1, seed)];
            granted.sort_unstable();
            for (k, &a) in granted.iter().enumerate() {
                // With a single app both grants name it; a grant is a set member, keep one.
                if k == 1 && a == granted[0] {
                    continue;
                }
                list.push(&TeamGrant {
                    org: org(o),
                    team: team(t),
                    app: app(o, a),
                })?;
            }
        }
    }
    list.close()?;

    w.write_all(b"}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_dump_parses_with_expected_counts() {
        let shape = Shape {
            orgs: 3,
            members: 20,
            teams: 2,
            apps: 4,
        };
        let mut buf = Vec::new();
        write_dump(&mut buf, &shape, 0).unwrap();
        let dump = crate::store::Dump::from_json(std::str::from_utf8(&buf).unwrap()).unwrap();
        let c = dump.counts();
        assert_eq!((c.users, c.orgs, c.memberships), (60, 3, 60));
        assert_eq!((c.teams, c.team_members, c.apps, c.team_grants), (6, 24, 12, 12));
    }
}
