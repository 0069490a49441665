//! The ext_authz mapping file: how an HTTP request seen by Envoy becomes one Warden
//! check `(subject, org, resource, action)`.
//!
//! An operator writes it in TOML (see `deploy/envoy/ext_authz.toml`). It names where the
//! subject, the org and the app come from — a request header, a route's
//! `context_extensions`, a field of the filter metadata (JWT claims put there by Envoy's
//! `jwt_authn` filter), or a parameter of the matched path template — and lists route
//! rules, tried in order, that turn method + path into an action and a resource.
//!
//! Pure: parsing, validation and matching only; no I/O beyond reading the file in
//! [`Mapping::load`], no tonic. Every mistake in the file is reported with the rule
//! number and the field, at load time, so a running daemon never meets a bad mapping.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// Most route rules one mapping may hold; a longer list is surely generated wrong.
pub const MAX_RULES: usize = 10_000;

/// A mapping file that could not be used, with the place that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Where one value (the subject, the org, the app) is read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A request header (matched case-insensitively: Envoy sends lowercase names).
    /// Only safe when Envoy strips the header from client requests first.
    Header(String),
    /// A key of the route's `context_extensions` (per-route ext_authz config).
    ContextExtension(String),
    /// A field of `metadata_context.filter_metadata[filter]`, e.g. the JWT payload that
    /// `jwt_authn` stores under `payload_in_metadata`: `path = ["jwt_payload", "sub"]`.
    Metadata { filter: String, path: Vec<String> },
    /// A `{name}` parameter of the route rule's path template.
    PathParam(String),
}

/// The file's shape. Unknown keys are errors, so a typo never silently widens access.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMapping {
    subject: Vec<Source>,
    org: Vec<Source>,
    #[serde(default)]
    app: Vec<Source>,
    /// Add `x-warden-*` headers to the upstream request on allow.
    #[serde(default)]
    upstream_headers: bool,
    #[serde(rename = "rule")]
    rules: Vec<FileRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    /// HTTP methods, upper case; empty or absent = any method.
    #[serde(default)]
    methods: Vec<String>,
    path: String,
    action: String,
    /// Resource template, `{param}` substituted; default `apps/{app}` when the request
    /// names an app, else `org`.
    resource: Option<String>,
}

/// A validated mapping, ready to match requests.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub subject: Vec<Source>,
    pub org: Vec<Source>,
    pub app: Vec<Source>,
    pub upstream_headers: bool,
    pub rules: Vec<Rule>,
}

/// One route rule: the first whose method and path match decides the action.
#[derive(Debug, Clone)]
pub struct Rule {
    methods: Vec<String>,
    path: Template,
    pub action: String,
    resource: Option<Vec<Piece>>,
}

/// A path template: `/orgs/{org}/apps/{app}/models/*/**`. Segments are literals,
/// `{name}` (one segment, captured), `*` (one segment) or a final `**` (the rest, possibly
/// nothing).
#[derive(Debug, Clone)]
struct Template {
    segments: Vec<Segment>,
    rest: bool,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
    Any,
}

/// A piece of a resource template.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Param(String),
}

/// What a matched rule yields: its action, its resource template and the captured
/// path parameters.
#[derive(Debug)]
pub struct RouteMatch<'m, 'p> {
    pub rule: &'m Rule,
    pub params: Vec<(&'m str, &'p str)>,
}

impl Mapping {
    /// Read and validate a mapping file.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| MappingError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parse and validate mapping text; the error names the rule and field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileMapping = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.subject.is_empty() {
            return Err("subject: name at least one source".into());
        }
        if file.org.is_empty() {
            return Err("org: name at least one source".into());
        }
        if file.rules.is_empty() {
            return Err("rule: no [[rule]] entries; every request would be denied".into());
        }
        if file.rules.len() > MAX_RULES {
            return Err(format!("rule: {} rules, at most {MAX_RULES}", file.rules.len()));
        }
        for (field, sources) in [("subject", &file.subject), ("org", &file.org), ("app", &file.app)] {
            for s in sources {
                validate_source(field, s)?;
            }
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.into_iter().enumerate() {
            let at = format!("rule {}", i + 1);
            let path = Template::parse(&r.path).map_err(|e| format!("{at}: path `{}`: {e}", r.path))?;
            if r.action.trim().is_empty() {
                return Err(format!("{at}: action: must not be empty"));
            }
            let mut methods = Vec::with_capacity(r.methods.len());
            for m in r.methods {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(format!("{at}: methods: `{m}` is not an HTTP method"));
                }
                methods.push(m.to_ascii_uppercase());
            }
            let resource = match r.resource {
                Some(t) => Some(parse_resource(&t).map_err(|e| format!("{at}: resource `{t}`: {e}"))?),
                None => None,
            };
            rules.push(Rule {
                methods,
                path,
                action: r.action,
                resource,
            });
        }
        Ok(Self {
            subject: file.subject,
            org: file.org,
            app: file.app,
            upstream_headers: file.upstream_headers,
            rules,
        })
    }

    /// The first rule matching `method` and `path` (the query string and fragment are
    /// ignored), with its captured parameters.
    pub fn route<'m, 'p>(&'m self, method: &str, path: &'p str) -> Option<RouteMatch<'m, 'p>> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        self.rules.iter().find_map(|rule| {
            if !rule.methods.is_empty() && !rule.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
                return None;
            }
            rule.path.matches(path).map(|params| RouteMatch { rule, params })
        })
    }
}

impl Rule {
    /// The resource this rule names: its template with `{param}` filled from `lookup`
    /// (path parameters, then `org` and `app`), or the default. `None` when the template
    /// names a parameter the request did not supply.
    pub fn resource(&self, app: Option<&str>, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
        match &self.resource {
            None => Some(match app {
                Some(a) => format!("apps/{a}"),
                None => "org".to_string(),
            }),
            Some(pieces) => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Param(name) => out.push_str(&lookup(name)?),
                    }
                }
                Some(out)
            }
        }
    }
}

fn validate_source(field: &str, s: &Source) -> Result<(), String> {
    let empty = match s {
        Source::Header(h) => h.is_empty(),
        Source::ContextExtension(k) => k.is_empty(),
        Source::PathParam(p) => p.is_empty(),
        Source::Metadata { filter, path } => {
            filter.is_empty() || path.is_empty() || path.iter().any(String::is_empty)
        }
    };
    if empty {
        return Err(format!("{field}: a source with an empty name: {s:?}"));
    }
    Ok(())
}

impl Template {
    fn parse(text: &str) -> Result<Self, String> {
        let Some(body) = text.strip_prefix('/') else {
            return Err("must start with `/`".into());
        };
        let mut segments = Vec::new();
        let mut rest = false;
        let parts: Vec<&str> = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            if *part == "**" {
                if i + 1 != parts.len() {
                    return Err("`**` may only be the last segment".into());
                }
                rest = true;
            } else if *part == "*" {
                segments.push(Segment::Any);
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(format!(
                        "`{{{name}}}`: parameter names are letters, digits and `_`"
                    ));
                }
                segments.push(Segment::Param(name.to_string()));
            } else if part.contains(['{', '}', '*']) {
                return Err(format!(
                    "segment `{part}`: write a literal, `{{name}}`, `*` or a final `**`"
                ));
            } else {
                segments.push(Segment::Literal((*part).to_string()));
            }
        }
        Ok(Self { segments, rest })
    }

    fn matches<'t, 'p>(&'t self, path: &'p str) -> Option<Vec<(&'t str, &'p str)>> {
        let body = path.strip_prefix('/')?;
        let mut parts = if body.is_empty() {
            None
        } else {
            Some(body.split('/'))
        }
        .into_iter()
        .flatten();
        let mut params = Vec::new();
        for seg in &self.segments {
            let part = parts.next()?;
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) | Segment::Any if part.is_empty() => return None,
                Segment::Param(name) => params.push((name.as_str(), part)),
                Segment::Any => {}
            }
        }
        if !self.rest && parts.next().is_some() {
            return None;
        }
        Some(params)
    }
}

fn parse_resource(text: &str) -> Result<Vec<Piece>, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("an unclosed `{`")?;
        let name = &after[..close];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "`{{{name}}}`: parameter names are letters, digits and `_`"
            ));
        }
        pieces.push(Piece::Param(name.to_string()));
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("a `}` without `{`".into());
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

/// Why an HTTP request path (query and fragment ignored) is not canonical, if it is not:
/// it must start with `/`; no segment may be `.` or `..`, none but the last may be empty
/// (no `//`); no control character, no `\`, and no percent-encoded `.`, `/` or `\`
/// (`%2e`, `%2f`, `%5c`), which a server may decode into one of those. Such a path can be
/// routed here as one resource and served upstream as another; Envoy's own normalisation
/// (`normalize_path`, `merge_slashes`) is the first line, this the second.
pub fn path_problem(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if let Some((at, c)) = path.char_indices().find(|(_, c)| c.is_control()) {
        return Some(format!(
            "a control character (U+{:04X}) at byte {at}",
            u32::from(c)
        ));
    }
    let shown: String = path.chars().take(128).collect();
    let Some(body) = path.strip_prefix('/') else {
        return Some(format!("`{shown}` does not start with `/`"));
    };
    if path.contains('\\') {
        return Some(format!("`{shown}` contains `\\`"));
    }
    let lower = path.to_ascii_lowercase();
    if let Some(enc) = ["%2e", "%2f", "%5c"].iter().find(|e| lower.contains(**e)) {
        return Some(format!("`{shown}` contains the encoded separator or dot `{enc}`"));
    }
    let segments: Vec<&str> = body.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let why = match *seg {
            "" if i != last => "is empty (`//`)",
            "." => "is `.`",
            ".." => "is `..`",
            _ => continue,
        };
        return Some(format!("`{shown}`: segment {} {why}", i + 1));
    }
    None
}

/// Look a header up case-insensitively in Envoy's header map.
pub fn header<'a>(headers: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .or_else(|| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
subject = [{ metadata = { filter = "envoy.filters.http.jwt_authn", path = ["jwt_payload", "sub"] } }, { header = "x-user" }]
org = [{ context_extension = "warden_org" }, { path_param = "org" }]
app = [{ path_param = "app" }]
upstream_headers = true

[[rule]]
methods = ["GET", "head"]
path = "/orgs/{org}/apps/{app}/models/{id}"
action = "model:read"
resource = "apps/{app}/models/{id}"

[[rule]]
methods = ["GET"]
path = "/orgs/{org}/apps/{app}/**"
action = "app:read"

[[rule]]
path = "/orgs/{org}/members"
action = "member:manage"
"#;

    #[test]
    fn first_matching_rule_wins_and_captures_params() {
        let m = Mapping::parse(SAMPLE).unwrap();
        let r = m.route("GET", "/orgs/acme/apps/web/models/m1?x=1").unwrap();
        assert_eq!(r.rule.action, "model:read");
        assert_eq!(r.params, vec![("org", "acme"), ("app", "web"), ("id", "m1")]);
        let find = |n: &str| r.params.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string());
        assert_eq!(
            r.rule.resource(Some("web"), find).as_deref(),
            Some("apps/web/models/m1")
        );

        let r = m.route("HEAD", "/orgs/acme/apps/web/models/m1").unwrap();
        assert_eq!(r.rule.action, "model:read");

        let r = m.route("GET", "/orgs/acme/apps/web").unwrap();
        assert_eq!(r.rule.action, "app:read", "`**` matches nothing too");
        assert_eq!(
            r.rule.resource(Some("web"), |_| None).as_deref(),
            Some("apps/web")
        );

        let r = m.route("DELETE", "/orgs/acme/members").unwrap();
        assert_eq!(r.rule.action, "member:manage");
        assert_eq!(r.rule.resource(None, |_| None).as_deref(), Some("org"));
    }

    #[test]
    fn unmatched_method_or_path_routes_nowhere() {
        let m = Mapping::parse(SAMPLE).unwrap();
        assert!(m.route("POST", "/orgs/acme/apps/web/models/m1").is_none());
        assert!(m.route("GET", "/orgs/acme").is_none());
        assert!(m.route("GET", "/orgs/acme/members/extra").is_none());
        assert!(
            m.route("GET", "/orgs//apps/web").is_none(),
            "an empty parameter never matches"
        );
        assert!(m.route("GET", "orgs/acme/apps/web").is_none());
    }

    #[test]
    fn mistakes_name_the_rule_and_field() {
        let bad = |text: &str| Mapping::parse(text).unwrap_err();
        let head = "subject = [{ header = \"x-user\" }]\norg = [{ path_param = \"org\" }]\n";
        assert!(
            bad(&format!("{head}[[rule]]\npath = \"orgs\"\naction = \"a:b\"\n")).contains("rule 1: path")
        );
        assert!(
            bad(&format!("{head}[[rule]]\npath = \"/a/**/b\"\naction = \"a:b\"\n"))
                .contains("`**` may only be the last")
        );
        assert!(
            bad(&format!(
                "{head}[[rule]]\npath = \"/a\"\naction = \"a:b\"\nresource = \"apps/{{app\"\n"
            ))
            .contains("rule 1: resource")
        );
        assert!(bad(&format!("{head}[[rule]]\npath = \"/a\"\naction = \"\"\n")).contains("rule 1: action"));
        assert!(
            bad(&format!(
                "{head}[[rule]]\npath = \"/a\"\naction = \"a:b\"\nmethods = [\"G T\"]\n"
            ))
            .contains("methods")
        );
        assert!(bad(head).contains("rule"), "no rules at all");
        assert!(
            bad(&format!(
                "{head}upstream_header = true\n[[rule]]\npath = \"/a\"\naction = \"a:b\"\n"
            ))
            .contains("unknown field")
        );
        assert!(
            bad("org = [{ path_param = \"org\" }]\n[[rule]]\npath = \"/a\"\naction = \"a:b\"\n")
                .contains("subject")
        );
    }

    #[test]
    fn resource_template_needs_its_params() {
        let m = Mapping::parse(SAMPLE).unwrap();
        let r = m.route("GET", "/orgs/acme/apps/web/models/m1").unwrap();
        assert_eq!(r.rule.resource(Some("web"), |_| None), None);
    }

    #[test]
    fn headers_match_case_insensitively() {
        let mut h = HashMap::new();
        h.insert("X-User".to_string(), "alice".to_string());
        assert_eq!(header(&h, "x-user"), Some("alice"));
        assert_eq!(header(&h, "x-other"), None);
    }
}
