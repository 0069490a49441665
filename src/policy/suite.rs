//! Policy test suites: YAML files in `<policy dir>/tests/*.yaml`, each a small fixture
//! directory (orgs, members, teams, apps) and requests with the expected answer.
//!
//! `warden policy test` runs them and prints a report; `warden serve
//! --require-policy-tests` loads policies through [`load_dir_tested`], so a policy whose
//! tests fail is refused at startup and on reload exactly like a broken file.
//!
//! The fixture is turned into [`IndexOp`]s and fed to a fresh [`DirectoryIndex`], and
//! every case goes through [`Engine::explain`]: the same decision path the daemon
//! serves, so a passing suite says something about production. Never touches redb.
//!
//! Named `suite` rather than `tests` so it is not mistaken for a `#[cfg(test)]` module.

use super::{PolicyError, PolicyErrors};
use crate::engine::index::{DirectoryIndex, IndexOp};
use crate::engine::{CheckInput, CompiledPolicy, Engine, Explanation};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The subdirectory of a policy directory that holds the test files.
pub const TESTS_DIR: &str = "tests";

/// One test file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// What the file tests; shown in the report.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub fixture: Fixture,
    pub cases: Vec<Case>,
}

/// The directory the cases run against.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    pub orgs: BTreeMap<String, OrgFixture>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgFixture {
    /// user → org role (without the `role:` prefix).
    #[serde(default)]
    pub members: BTreeMap<String, String>,
    #[serde(default)]
    pub teams: BTreeMap<String, TeamFixture>,
    #[serde(default)]
    pub apps: Vec<String>,
    /// app → its labels (the app must be in `apps`).
    #[serde(default)]
    pub labels: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamFixture {
    #[serde(default)]
    pub members: Vec<String>,
    /// Apps granted to the team.
    #[serde(default)]
    pub apps: Vec<String>,
}

/// One request and the answer it must get.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub name: Option<String>,
    pub subject: String,
    pub org: String,
    pub resource: String,
    pub action: String,
    pub allow: bool,
}

impl Case {
    /// The request in one line, for the report.
    fn request(&self) -> String {
        format!(
            "{} {} {} in {}",
            self.subject, self.action, self.resource, self.org
        )
    }
}

/// A parsed test file with where it came from.
#[derive(Debug)]
pub struct SuiteFile {
    pub path: String,
    pub file: TestFile,
    /// Line of each case (1-based; 0 when it could not be located).
    pub case_lines: Vec<u32>,
    /// Line of each fixture member, by (org, user) (absent when it could not be located).
    pub member_lines: BTreeMap<(String, String), u32>,
}

/// Parse one test file's text. Errors are `file:line: reason`.
pub fn parse(path: &str, text: &str) -> Result<SuiteFile, PolicyError> {
    let file: TestFile = serde_norway::from_str(text).map_err(|e| {
        let at = e.location();
        let mut reason = e.to_string();
        // The location goes in front, `file:line:`, not again at the end.
        if let Some(l) = &at {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(stripped) = reason.strip_suffix(&suffix) {
                reason = stripped.to_string();
            }
        }
        PolicyError {
            file: path.into(),
            line: at.map_or(0, |l| l.line() as u32),
            reason,
        }
    })?;
    let mut case_lines = locate_cases(text);
    if case_lines.len() != file.cases.len() {
        case_lines = vec![0; file.cases.len()];
    }
    // A request the daemon would refuse is a mistake in the file, not a deny to expect.
    for (i, (c, &line)) in file.cases.iter().zip(&case_lines).enumerate() {
        let problem = crate::directory::resource::resource_problem(&c.resource)
            .map(|why| format!("cases[{i}].resource: {why}"))
            .or_else(|| {
                crate::engine::subject_problem(&c.subject).map(|why| format!("cases[{i}].subject: {why}"))
            });
        if let Some(reason) = problem {
            return Err(PolicyError {
                file: path.into(),
                line,
                reason,
            });
        }
    }
    let member_lines = locate_members(text, &file.fixture);
    Ok(SuiteFile {
        path: path.into(),
        file,
        case_lines,
        member_lines,
    })
}

/// Lines of the fixture's members (`alice: admin`, in block or flow style): for each org,
/// the first line after the org's key that names the user and then the role. Best effort,
/// like [`locate_cases`]; a member it cannot find is left out.
fn locate_members(text: &str, fixture: &Fixture) -> BTreeMap<(String, String), u32> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeMap::new();
    for (org, o) in &fixture.orgs {
        let org_key = format!("{org}:");
        let Some(start) = lines.iter().position(|l| l.trim_start().starts_with(&org_key)) else {
            continue;
        };
        for (user, role) in &o.members {
            let user_key = format!("{user}:");
            let found = lines[start..].iter().position(|l| {
                l.find(&user_key)
                    .is_some_and(|at| l[at + user_key.len()..].trim_start().starts_with(role.as_str()))
            });
            if let Some(i) = found {
                out.insert((org.clone(), user.clone()), (start + i) as u32 + 1);
            }
        }
    }
    out
}

/// Lines where the items of the top-level `cases:` sequence start. serde gives values no
/// positions, so this reads the layout: after `cases:`, every `- ` at the sequence's
/// indentation starts an item. Best effort: the caller drops the result when the count
/// does not match the parsed cases.
fn locate_cases(text: &str) -> Vec<u32> {
    let mut lines = Vec::new();
    let mut in_cases = false;
    let mut indent = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = line.len() - trimmed.len();
        if depth == 0 && !trimmed.starts_with('-') {
            in_cases = trimmed.starts_with("cases:");
            continue;
        }
        if in_cases && trimmed.starts_with('-') && *indent.get_or_insert(depth) == depth {
            lines.push(i as u32 + 1);
        }
    }
    lines
}

/// Read and parse every `*.yaml`/`*.yml` file of `<dir>/tests`, in name order. A missing
/// `tests/` directory is an empty suite.
pub fn load(dir: &Path) -> Result<Vec<SuiteFile>, PolicyErrors> {
    let tests = dir.join(TESTS_DIR);
    let entries = match std::fs::read_dir(&tests) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(PolicyErrors(vec![PolicyError {
                file: tests.display().to_string(),
                line: 0,
                reason: format!("cannot read: {e}"),
            }]));
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse(&name, &text) {
                Ok(f) => files.push(f),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(PolicyError {
                file: name,
                line: 0,
                reason: format!("cannot read: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub name: Option<String>,
    pub request: String,
    pub line: u32,
    pub expected: bool,
    pub got: bool,
    /// Why the engine answered as it did; `None` when it refused the request.
    pub explanation: Option<Explanation>,
    /// The engine's refusal (a deny), e.g. a reserved subject prefix.
    pub error: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.expected == self.got
    }

    fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", self.request),
            None => self.request.clone(),
        }
    }

    /// The explanation in one line: effect, decisive rule, role path.
    fn why(&self) -> String {
        if let Some(e) = &self.error {
            return format!("refused: {e}");
        }
        let Some(x) = &self.explanation else {
            return String::new();
        };
        let rule = x.rule.as_ref().map_or_else(
            || "no rule".to_string(),
            |r| format!("rule {}:{} `{}`", r.file, r.line, r.text),
        );
        format!("effect {}, {rule}, role path `{}`", x.effect, x.role_path)
    }
}

impl CaseResult {
    /// For a deny: the rules that came closest to matching, as `check --explain` lists them.
    pub fn near_misses(&self) -> &[crate::engine::nearmiss::NearMiss] {
        self.explanation
            .as_ref()
            .map_or(&[], |x| x.near_misses.as_slice())
    }

    /// The failure in a few lines: expected vs got, the explanation, the near misses.
    fn failure_text(&self) -> String {
        let mut out = format!(
            "expected {}, got {}\n{}\n",
            word(self.expected),
            word(self.got),
            self.why()
        );
        for m in self.near_misses() {
            let _ = writeln!(out, "near miss {}:{}: {}", m.rule.file, m.rule.line, m.rule.text);
            for f in &m.failed {
                let _ = writeln!(out, "  failed: {f}");
            }
        }
        out
    }

    fn to_json(&self) -> serde_json::Value {
        let rule =
            |r: &crate::engine::RuleRef| serde_json::json!({"file": r.file, "line": r.line, "text": r.text});
        let x = self.explanation.as_ref();
        serde_json::json!({
            "name": self.name,
            "request": self.request,
            "line": self.line,
            "passed": self.passed(),
            "expected": word(self.expected),
            "got": word(self.got),
            "effect": x.map(|x| x.effect.as_str()),
            "rule": x.and_then(|x| x.rule.as_ref()).map(rule),
            "role_path": x.map(|x| x.role_path.as_str()).filter(|p| !p.is_empty()),
            "near_misses": self.near_misses().iter().map(|m| serde_json::json!({
                "rule": rule(&m.rule),
                "failed": m.failed,
            })).collect::<Vec<_>>(),
            "error": self.error,
        })
    }
}

/// Which cases `policy test --filter` runs: a glob over the whole case name when the
/// filter has `*`, `?` or `[`, else a substring of it. A case without a name is matched
/// by its request (`alice app:read apps/web in acme`).
#[derive(Debug, Clone)]
pub enum CaseFilter {
    Substring(String),
    Glob(globset::GlobMatcher),
}

impl CaseFilter {
    pub fn parse(filter: &str) -> Result<Self, String> {
        if filter.contains(['*', '?', '[']) {
            globset::GlobBuilder::new(filter)
                .literal_separator(false)
                .build()
                .map(|g| CaseFilter::Glob(g.compile_matcher()))
                .map_err(|e| format!("--filter `{filter}`: {e}"))
        } else {
            Ok(CaseFilter::Substring(filter.to_string()))
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            CaseFilter::Substring(s) => name.contains(s.as_str()),
            CaseFilter::Glob(g) => g.is_match(name),
        }
    }
}

/// Keep only the cases `filter` selects; files left without a case are dropped.
/// Returns how many cases are kept.
pub fn retain_cases(files: &mut Vec<SuiteFile>, filter: &CaseFilter) -> usize {
    for f in files.iter_mut() {
        let cases = std::mem::take(&mut f.file.cases);
        let lines = std::mem::take(&mut f.case_lines);
        for (c, line) in cases.into_iter().zip(lines) {
            let keep = match &c.name {
                Some(n) => filter.matches(n),
                None => filter.matches(&c.request()),
            };
            if keep {
                f.file.cases.push(c);
                f.case_lines.push(line);
            }
        }
    }
    files.retain(|f| !f.file.cases.is_empty());
    files.iter().map(|f| f.file.cases.len()).sum()
}

/// Text XML 1.0 can carry: the characters it forbids even escaped (most C0 controls) are
/// replaced, and markup characters are escaped, for attributes and content alike.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn word(allow: bool) -> &'static str {
    if allow { "allow" } else { "deny" }
}

#[derive(Debug)]
pub struct FileReport {
    pub path: String,
    pub name: Option<String>,
    pub cases: Vec<CaseResult>,
}

/// Every file's results, in file order.
#[derive(Debug, Default)]
pub struct Report {
    pub files: Vec<FileReport>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.cases().filter(|c| c.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.cases().filter(|c| !c.passed()).count()
    }

    fn cases(&self) -> impl Iterator<Item = &CaseResult> {
        self.files.iter().flat_map(|f| f.cases.iter())
    }

    /// A readable report: per file its counts, every failing case with expected, got and
    /// the explanation (every passing case too when `verbose`), then the summary line
    /// `N passed, M failed`.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        for f in &self.files {
            let failed = f.cases.iter().filter(|c| !c.passed()).count();
            let title = f.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{}{title}: {} passed, {failed} failed",
                f.path,
                f.cases.len() - failed
            );
            for c in &f.cases {
                if c.passed() {
                    if verbose {
                        let _ = writeln!(out, "  ok   {}", c.label());
                    }
                    continue;
                }
                let _ = writeln!(out, "  FAIL {}:{}: {}", f.path, c.line, c.label());
                let _ = writeln!(out, "       expected {}, got {}", word(c.expected), word(c.got));
                let _ = writeln!(out, "       {}", c.why());
                let misses = c.near_misses();
                if !misses.is_empty() {
                    let _ = writeln!(out, "       closest rules that did not match:");
                    for m in misses {
                        let _ = writeln!(out, "         {}:{}: {}", m.rule.file, m.rule.line, m.rule.text);
                        for f in &m.failed {
                            let _ = writeln!(out, "           failed: {f}");
                        }
                    }
                }
            }
        }
        let _ = writeln!(out, "{} passed, {} failed", self.passed(), self.failed());
        out
    }

    /// The report as one JSON document: per file its cases with the request, expected and
    /// got, the explanation and the near misses; then the totals.
    pub fn render_json(&self) -> String {
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "path": f.path,
                    "name": f.name,
                    "cases": f.cases.iter().map(CaseResult::to_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "files": files,
            "passed": self.passed(),
            "failed": self.failed(),
        });
        format!("{doc}\n")
    }

    /// The report as JUnit XML (the Ant/Jenkins schema CI systems read): one `testsuite`
    /// per file, one `testcase` per case (`classname` the file, `name` the case's label,
    /// `file` and `line` where it is), a failing case with a `failure` whose message is
    /// "expected X, got Y" and whose text is the explanation and the near misses.
    pub fn render_junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"warden policy test\" tests=\"{}\" failures=\"{}\" errors=\"0\">",
            self.passed() + self.failed(),
            self.failed()
        );
        for f in &self.files {
            let failed = f.cases.iter().filter(|c| !c.passed()).count();
            let path = xml_escape(&f.path);
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" file=\"{path}\">",
                xml_escape(f.name.as_deref().unwrap_or(&f.path)),
                f.cases.len()
            );
            for c in &f.cases {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{path}\" name=\"{}\" file=\"{path}\" line=\"{}\"",
                    xml_escape(&c.label()),
                    c.line
                );
                if c.passed() {
                    out.push_str("/>\n");
                } else {
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"policy test\" message=\"expected {}, got {}\">{}</failure>\n    </testcase>",
                        word(c.expected),
                        word(c.got),
                        xml_escape(&c.failure_text())
                    );
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }

    /// The failing cases as `file:line: reason` errors, the shape reload failures take in
    /// the log and the admin status.
    pub fn failures(&self) -> PolicyErrors {
        PolicyErrors(
            self.files
                .iter()
                .flat_map(|f| {
                    f.cases.iter().filter(|c| !c.passed()).map(|c| PolicyError {
                        file: f.path.clone(),
                        line: c.line,
                        reason: format!(
                            "policy test failed: {}: expected {}, got {} ({})",
                            c.label(),
                            word(c.expected),
                            word(c.got),
                            c.why()
                        ),
                    })
                })
                .collect(),
        )
    }
}

/// The fixture as index operations, after checking it the way the store would: roles
/// the policy assigns, team members who are org members, granted apps that exist.
fn fixture_ops(
    file: &SuiteFile,
    roles: &std::collections::BTreeSet<String>,
) -> Result<Vec<IndexOp>, PolicyErrors> {
    let fixture = &file.file.fixture;
    let mut ops = Vec::new();
    let mut errors = Vec::new();
    let mut err_at = |line: u32, reason: String| {
        errors.push(PolicyError {
            file: file.path.clone(),
            line,
            reason: format!("fixture: {reason}"),
        })
    };
    for (org, o) in &fixture.orgs {
        for app in &o.apps {
            ops.push(IndexOp::AddApp {
                org: org.clone(),
                app: app.clone(),
                labels: o.labels.get(app).cloned().unwrap_or_default(),
            });
        }
        for app in o.labels.keys() {
            if !o.apps.contains(app) {
                err_at(
                    0,
                    format!("org `{org}`: labels of `{app}`, which is not in its apps"),
                );
            }
        }
        for (user, role) in &o.members {
            if !roles.contains(role) {
                let known: Vec<&str> = roles.iter().map(String::as_str).collect();
                let hint = super::lint::suggest(role, known.iter().copied())
                    .map(|s| format!("Did you mean `{s}`? "))
                    .unwrap_or_default();
                let line = file
                    .member_lines
                    .get(&(org.clone(), user.clone()))
                    .copied()
                    .unwrap_or(0);
                err_at(
                    line,
                    format!(
                        "org `{org}`: member `{user}` has role `{role}`, which the policy does not \
                         assign (it assigns {}). {hint}If `{role}` is a new role, add it to \
                         engine.toml [directory] roles",
                        known.join(", ")
                    ),
                );
            }
            ops.push(IndexOp::SetMember {
                org: org.clone(),
                user: user.clone(),
                role: role.clone(),
            });
        }
        for (team, t) in &o.teams {
            for user in &t.members {
                if !o.members.contains_key(user) {
                    err_at(
                        0,
                        format!("org `{org}`: team `{team}` member `{user}` is not a member of the org"),
                    );
                }
                ops.push(IndexOp::AddTeamMember {
                    org: org.clone(),
                    team: team.clone(),
                    user: user.clone(),
                });
            }
            for app in &t.apps {
                if !o.apps.contains(app) {
                    err_at(
                        0,
                        format!(
                            "org `{org}`: team `{team}` is granted app `{app}`, which is not in the org's apps"
                        ),
                    );
                }
                ops.push(IndexOp::GrantApp {
                    org: org.clone(),
                    team: team.clone(),
                    app: app.clone(),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(ops)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// A fresh directory index holding `file`'s fixture (its cases are not read), checked as
/// [`run`] checks it against the org roles in `roles`. `warden policy diff --fixture`
/// compares two policies over it.
pub fn fixture_index(
    file: &SuiteFile,
    roles: &std::collections::BTreeSet<String>,
) -> Result<DirectoryIndex, PolicyErrors> {
    let ops = fixture_ops(file, roles)?;
    let index = DirectoryIndex::new();
    index.apply(1, &ops);
    Ok(index)
}

/// Run every file against `policy`, each on its own fresh directory index. A fixture the
/// store would refuse is an error, not a failed case.
pub fn run(policy: &Arc<CompiledPolicy>, files: &[SuiteFile]) -> Result<Report, PolicyErrors> {
    let roles = policy.org_roles();
    let mut report = Report::default();
    let mut errors = Vec::new();
    for f in files {
        let ops = match fixture_ops(f, &roles) {
            Ok(ops) => ops,
            Err(e) => {
                errors.extend(e.0);
                continue;
            }
        };
        let index = Arc::new(DirectoryIndex::new());
        index.apply(1, &ops);
        let engine = Engine::new(policy.clone(), index);
        let cases = f
            .file
            .cases
            .iter()
            .zip(&f.case_lines)
            .map(|(c, &line)| {
                let q = CheckInput {
                    subject: &c.subject,
                    org: &c.org,
                    resource: &c.resource,
                    action: &c.action,
                };
                // A refused request is a deny, as it is for a daemon client.
                let (got, explanation, error) = match engine.explain(&q) {
                    Ok(x) => (x.allowed, Some(x), None),
                    Err(e) => (false, None, Some(e.to_string())),
                };
                CaseResult {
                    name: c.name.clone(),
                    request: c.request(),
                    line,
                    expected: c.allow,
                    got,
                    explanation,
                    error,
                }
            })
            .collect();
        report.files.push(FileReport {
            path: f.path.clone(),
            name: f.file.name.clone(),
            cases,
        });
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// [`super::load_dir`], then the directory's tests: a policy whose test files do not
/// load or whose cases fail is refused with one `file:line: reason` per problem. This is
/// the loader of `warden serve --require-policy-tests`, at startup and on reload.
pub fn load_dir_tested(dir: &Path) -> Result<CompiledPolicy, PolicyErrors> {
    let policy = Arc::new(super::load_dir(dir)?);
    let files = load(dir)?;
    let report = run(&policy, &files)?;
    if report.failed() > 0 {
        return Err(report.failures());
    }
    // The engines that shared the policy are gone, so this is the only reference.
    Arc::try_unwrap(policy).map_err(|_| {
        PolicyErrors(vec![PolicyError {
            file: dir.display().to_string(),
            line: 0,
            reason: "internal: policy still shared after its tests".into(),
        }])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
name: small
fixture:
  orgs:
    acme:
      members: {alice: admin, carol: team_contributor}
      teams: {frontend: {members: [carol], apps: [web]}}
      apps: [web, api]
cases:
  - {subject: alice, org: acme, resource: apps/web, action: app:delete, allow: true}
  # a comment between cases
  - name: team contributor outside its team
    subject: carol
    org: acme
    resource: apps/api
    action: app:read
    allow: false
";

    #[test]
    fn parses_flow_and_block_cases_with_their_lines() {
        let f = parse("t.yaml", GOOD).unwrap();
        assert_eq!(f.file.name.as_deref(), Some("small"));
        assert_eq!(f.file.cases.len(), 2);
        assert_eq!(f.case_lines, vec![9, 11]);
        assert_eq!(f.file.fixture.orgs["acme"].teams["frontend"].apps, vec!["web"]);
    }

    #[test]
    fn unknown_field_is_an_error_naming_it_and_its_line() {
        let text = GOOD.replace(
            "    action: app:read\n",
            "    action: app:read\n    allowed: false\n",
        );
        let e = parse("t.yaml", &text).unwrap_err();
        assert_eq!(e.file, "t.yaml");
        assert!(e.reason.contains("unknown field `allowed`"), "{e}");
        assert!(e.line > 0, "{e}");
    }

    #[test]
    fn missing_expectation_is_an_error() {
        let e = parse(
            "t.yaml",
            "cases:\n  - {subject: a, org: o, resource: org, action: x}\n",
        )
        .unwrap_err();
        assert!(e.reason.contains("missing field `allow`"), "{e}");
    }

    #[test]
    fn runs_cases_and_reports_failures_with_the_explanation() {
        let policy = Arc::new(crate::policy::load_defaults().unwrap());
        let mut f = parse("t.yaml", GOOD).unwrap();
        assert_eq!(run(&policy, std::slice::from_ref(&f)).unwrap().failed(), 0);

        f.file.cases[0].allow = false;
        let report = run(&policy, &[f]).unwrap();
        assert_eq!((report.passed(), report.failed()), (1, 1));
        let text = report.render(false);
        assert!(text.contains("FAIL t.yaml:9:"), "{text}");
        assert!(text.contains("expected deny, got allow"), "{text}");
        assert!(text.contains("p, role:admin, apps/*, *, org, allow"), "{text}");
        assert!(text.contains("alice -"), "{text}");
        assert!(text.ends_with("1 passed, 1 failed\n"), "{text}");
        assert_eq!(report.failures().0[0].line, 9);
    }

    #[test]
    fn fixture_the_store_would_refuse_is_an_error() {
        let policy = Arc::new(crate::policy::load_defaults().unwrap());
        let f = parse("t.yaml", &GOOD.replace("alice: admin", "alice: owner")).unwrap();
        let e = run(&policy, &[f]).unwrap_err();
        assert!(e.to_string().contains("role `owner`"), "{e}");

        // A misspelt role: named at the member's line, with the role it probably meant.
        let f = parse("t.yaml", &GOOD.replace("alice: admin", "alice: admn")).unwrap();
        let e = run(&policy, &[f]).unwrap_err();
        assert_eq!(e.0[0].line, 5, "{e}");
        assert!(e.0[0].reason.contains("Did you mean `admin`?"), "{e}");
    }
}
