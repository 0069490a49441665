//! Casbin's built-in matching functions, written to never panic.
//!
//! Patterns are compiled once (per policy row, or per literal) into a [`Pattern`]; the
//! common RESTful shapes of `keyMatch2` (`apps/:id/*`) get a hand-written segment
//! matcher instead of a regex because they sit on the hot path of every check. A
//! pattern that cannot compile is a load-time error; a request value a function cannot
//! take (a non-IP for `ipMatch`) is an evaluation error, which denies with a reason.
//!
//! Semantics follow the reference implementations (pycasbin / Go casbin) where they
//! agree; `regexMatch` searches anywhere in the string like Go casbin (see
//! `policies/README.md` for the contested behaviours and the side Warden takes).

use regex::Regex;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    KeyMatch,
    KeyMatch2,
    KeyMatch3,
    KeyMatch4,
    KeyMatch5,
    KeyGet,
    KeyGet2,
    RegexMatch,
    GlobMatch,
    IpMatch,
}

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "keyMatch" => Func::KeyMatch,
            "keyMatch2" => Func::KeyMatch2,
            "keyMatch3" => Func::KeyMatch3,
            "keyMatch4" => Func::KeyMatch4,
            "keyMatch5" => Func::KeyMatch5,
            "keyGet" => Func::KeyGet,
            "keyGet2" => Func::KeyGet2,
            "regexMatch" => Func::RegexMatch,
            "globMatch" => Func::GlobMatch,
            "ipMatch" => Func::IpMatch,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Func::KeyMatch => "keyMatch",
            Func::KeyMatch2 => "keyMatch2",
            Func::KeyMatch3 => "keyMatch3",
            Func::KeyMatch4 => "keyMatch4",
            Func::KeyMatch5 => "keyMatch5",
            Func::KeyGet => "keyGet",
            Func::KeyGet2 => "keyGet2",
            Func::RegexMatch => "regexMatch",
            Func::GlobMatch => "globMatch",
            Func::IpMatch => "ipMatch",
        }
    }

    pub fn arity(self) -> usize {
        match self {
            Func::KeyGet2 => 3,
            _ => 2,
        }
    }

    /// Which argument is a pattern worth compiling ahead of time.
    pub fn pattern_arg(self) -> Option<usize> {
        Some(1)
    }

    /// Is this a boolean matching function usable for role/domain matching?
    pub fn is_matcher(self) -> bool {
        !matches!(self, Func::KeyGet | Func::KeyGet2)
    }
}

/// One segment of a fast `keyMatch2` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Lit(Box<str>),
    /// `:name` — one or more characters other than `/`.
    Param(Box<str>),
    /// A trailing `.*` (from `/*`): anything but a line break, including nothing.
    Rest,
}

/// A compiled pattern for one function.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// keyMatch: equality, or prefix up to the first `*`.
    Exact(Box<str>),
    Prefix(Box<str>),
    /// keyMatch2 in its common shape, matched without a regex.
    Segments(Box<[Seg]>),
    /// Anything else regex-shaped; `names` are the path variables of keyGet2.
    Regex {
        re: Regex,
        names: Box<[Box<str>]>,
    },
    /// globMatch, translated to a regex (linear time; see [`glob_regex`]). A malformed
    /// glob is kept as its error, returned when a request reaches it, as Go casbin does.
    Glob(Result<Regex, String>),
    Ip(IpPattern),
}

#[derive(Debug, Clone)]
pub enum IpPattern {
    Net {
        addr: IpAddr,
        prefix: u8,
    },
    /// Not a network: compared as a plain string (Casbin's fallback).
    Text(Box<str>),
}

const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn build_regex(src: &str) -> Result<Regex, String> {
    let build = |s: &str| regex::RegexBuilder::new(s).size_limit(REGEX_SIZE_LIMIT).build();
    match build(src) {
        Ok(re) => Ok(re),
        // Python and Go read a `{` that starts no valid repetition as a literal; Rust's
        // regex refuses it. Retry with braces escaped before giving up.
        Err(first) => {
            build(&escape_braces(src)).map_err(|_| format!("invalid regular expression `{src}`: {first}"))
        }
    }
}

fn escape_braces(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 4);
    let mut escaped = false;
    for c in src.chars() {
        if !escaped && (c == '{' || c == '}') {
            out.push('\\');
        }
        escaped = !escaped && c == '\\';
        out.push(c);
    }
    out
}

/// Replace `/*` by `/.*` (the first step of keyMatch2..5).
fn star_to_regex(key: &str) -> String {
    key.replace("/*", "/.*")
}

/// keyMatch2's `:name` → `[^/]+` (or a capture group for keyGet2).
fn colon_params(key: &str, capture: bool, names: &mut Vec<Box<str>>) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek().is_some_and(|n| *n != '/') {
            let mut name = String::new();
            while let Some(&n) = chars.peek() {
                if n == '/' {
                    break;
                }
                name.push(n);
                chars.next();
            }
            names.push(name.into());
            out.push_str(if capture { "([^/]+)" } else { "[^/]+" });
        } else {
            out.push(c);
        }
    }
    out
}

/// `{name}` → `[^/]+` (keyMatch3 style): each `{…}` (no `/` inside) is one placeholder,
/// the shortest brace pair first.
fn brace_params(key: &str, lazy: bool, capture: bool, names: &mut Vec<Box<str>>) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    let mut rest = key;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if close > 0 && !after[..close].contains('/') => {
                out.push_str(&rest[..open]);
                names.push(after[..close].into());
                out.push_str(match (capture, lazy) {
                    (true, _) => "([^/]+)",
                    (false, true) => "[^/]+?",
                    (false, false) => "[^/]+",
                });
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `{…}` → `[^/]+` the way Go casbin's keyMatch4/keyMatch5 read it (the regex
/// `\{[^/]+\}`, greedy): a placeholder runs from a `{` to the **last** `}` of its path
/// segment, so `{name}.{ext}` is one placeholder (named `name}.{ext`), not two with a
/// regex `.` between them.
fn greedy_brace_params(key: &str, capture: bool, names: &mut Vec<Box<str>>) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    let mut rest = key;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let segment = &after[..after.find('/').unwrap_or(after.len())];
        match segment.rfind('}') {
            Some(close) if close > 0 => {
                out.push_str(&rest[..open]);
                names.push(after[..close].into());
                out.push_str(if capture { "([^/]+)" } else { "[^/]+" });
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Try the fast segment form of a keyMatch2 pattern: literal text without regex
/// metacharacters, `:param` segments that end at `/` or the end, and an optional
/// trailing `/*`.
fn segments(key: &str) -> Option<Box<[Seg]>> {
    if key == "*" {
        return Some(Box::new([Seg::Rest]));
    }
    let (body, rest) = match key.strip_suffix("/*") {
        Some(b) => (b, true),
        None => (key, false),
    };
    let mut segs = Vec::new();
    let mut lit = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek().is_some_and(|n| *n != '/') {
            let mut name = String::new();
            while let Some(n) = chars.next_if(|n| *n != '/') {
                name.push(n);
            }
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit).into()));
            }
            segs.push(Seg::Param(name.into()));
            continue;
        }
        if ".+*?()[]{}|^$\\".contains(c) {
            return None;
        }
        lit.push(c);
    }
    if rest {
        lit.push('/');
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit.into()));
    }
    if rest {
        segs.push(Seg::Rest);
    }
    Some(segs.into())
}

/// Match `key` against segments; on success, the text captured by the parameter named
/// `var` (or "" when there is none).
fn match_segments<'k>(segs: &[Seg], mut key: &'k str, var: &str) -> Option<&'k str> {
    let mut captured = "";
    for seg in segs {
        match seg {
            Seg::Lit(l) => key = key.strip_prefix(&**l)?,
            Seg::Param(name) => {
                // A param is followed by a literal starting with `/`, by the end, or by
                // `/.*`: consuming up to the next `/` is then the only possible match.
                let end = key.find('/').unwrap_or(key.len());
                if end == 0 {
                    return None;
                }
                if &**name == var {
                    captured = &key[..end];
                }
                key = &key[end..];
            }
            // The regex form's `.*` does not match a line break.
            Seg::Rest => return (!key.contains('\n')).then_some(captured),
        }
    }
    key.is_empty().then_some(captured)
}

impl Pattern {
    /// Does this pattern match only the very text it was compiled from (no wildcard)?
    pub fn is_exact(&self) -> bool {
        match self {
            Pattern::Exact(_) => true,
            Pattern::Segments(segs) => segs.iter().all(|s| matches!(s, Seg::Lit(_))),
            _ => false,
        }
    }

    /// Does this pattern match every string (`*` for keyMatch / keyMatch2)?
    pub fn is_universal(&self) -> bool {
        match self {
            Pattern::Prefix(p) => p.is_empty(),
            Pattern::Segments(segs) => matches!(&**segs, [Seg::Rest]),
            _ => false,
        }
    }

    /// Compile `pattern` as the pattern argument of `func`.
    pub fn compile(func: Func, pattern: &str) -> Result<Pattern, String> {
        match func {
            Func::KeyMatch | Func::KeyGet => Ok(match pattern.find('*') {
                None => Pattern::Exact(pattern.into()),
                Some(i) => Pattern::Prefix(pattern[..i].into()),
            }),
            Func::KeyMatch2 => {
                if let Some(segs) = segments(pattern) {
                    return Ok(Pattern::Segments(segs));
                }
                let mut names = Vec::new();
                let mut src = colon_params(&star_to_regex(pattern), false, &mut names);
                if src == "*" {
                    src = "(.*)".into();
                }
                Ok(Pattern::Regex {
                    re: build_regex(&format!("^{src}$"))?,
                    names: Box::new([]),
                })
            }
            Func::KeyGet2 => {
                if let Some(segs) = segments(pattern) {
                    return Ok(Pattern::Segments(segs));
                }
                let mut names = Vec::new();
                let mut src = colon_params(&star_to_regex(pattern), true, &mut names);
                if src == "*" {
                    src = "(.*)".into();
                }
                Ok(Pattern::Regex {
                    re: build_regex(&format!("^{src}$"))?,
                    names: names.into(),
                })
            }
            Func::KeyMatch3 => {
                let mut names = Vec::new();
                let src = brace_params(&star_to_regex(pattern), true, false, &mut names);
                Ok(Pattern::Regex {
                    re: build_regex(&format!("^{src}$"))?,
                    names: Box::new([]),
                })
            }
            Func::KeyMatch4 => {
                let mut names = Vec::new();
                let src = greedy_brace_params(&star_to_regex(pattern), true, &mut names);
                Ok(Pattern::Regex {
                    re: build_regex(&format!("^{src}$"))?,
                    names: names.into(),
                })
            }
            Func::KeyMatch5 => {
                // Only the request's query string is dropped; the pattern is a regex as
                // written (a `?` in it is a regex `?`), as in Go casbin and pycasbin.
                let mut names = Vec::new();
                let src = greedy_brace_params(&star_to_regex(pattern), false, &mut names);
                Ok(Pattern::Regex {
                    re: build_regex(&format!("^{src}$"))?,
                    names: Box::new([]),
                })
            }
            Func::RegexMatch => Ok(Pattern::Regex {
                re: build_regex(pattern)?,
                names: Box::new([]),
            }),
            Func::GlobMatch => Ok(Pattern::Glob(
                glob_regex(pattern).and_then(|src| build_regex(&src)),
            )),
            Func::IpMatch => Ok(Pattern::Ip(parse_ip_pattern(pattern))),
        }
    }

    /// Does `key` match? Errors only for inputs the function cannot take.
    pub fn matches(&self, func: Func, key: &str) -> Result<bool, String> {
        Ok(match self {
            Pattern::Exact(p) => key == &**p,
            Pattern::Prefix(p) => key.starts_with(&**p),
            Pattern::Segments(segs) => match_segments(segs, key, "").is_some(),
            Pattern::Regex { re, names } => {
                if func == Func::KeyMatch4 {
                    key_match4(re, names, key)
                } else if func == Func::KeyMatch5 {
                    re.is_match(key.split('?').next().unwrap_or(key))
                } else {
                    re.is_match(key)
                }
            }
            Pattern::Glob(re) => re.as_ref().map_err(Clone::clone)?.is_match(key),
            Pattern::Ip(p) => ip_match(key, p)?,
        })
    }

    /// keyGet / keyGet2: the part of `key` the pattern captures.
    pub fn get<'k>(&self, func: Func, key: &'k str, var: &str) -> &'k str {
        match (func, self) {
            (Func::KeyGet, Pattern::Prefix(p)) if key.len() > p.len() && key.starts_with(&**p) => {
                &key[p.len()..]
            }
            (Func::KeyGet2, Pattern::Segments(segs)) => match_segments(segs, key, var).unwrap_or(""),
            (Func::KeyGet2, Pattern::Regex { re, names }) => {
                let Some(caps) = re.captures(key) else { return "" };
                names
                    .iter()
                    .position(|n| &**n == var)
                    .and_then(|i| caps.get(i + 1))
                    .map(|m| m.as_str())
                    .unwrap_or("")
            }
            _ => "",
        }
    }
}

/// keyMatch4: like keyMatch3, and a name used twice must capture the same value.
fn key_match4(re: &Regex, names: &[Box<str>], key: &str) -> bool {
    let Some(caps) = re.captures(key) else {
        return false;
    };
    for (i, a) in names.iter().enumerate() {
        for (j, b) in names.iter().enumerate().skip(i + 1) {
            if a == b && caps.get(i + 1).map(|m| m.as_str()) != caps.get(j + 1).map(|m| m.as_str()) {
                return false;
            }
        }
    }
    true
}

fn parse_ip_pattern(p: &str) -> IpPattern {
    if let Some((addr, bits)) = p.split_once('/')
        && let (Ok(addr), Ok(prefix)) = (addr.parse::<IpAddr>(), bits.parse::<u8>())
    {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix <= max {
            return IpPattern::Net { addr, prefix };
        }
    }
    match p.parse::<IpAddr>() {
        Ok(addr) => IpPattern::Net {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        },
        Err(_) => IpPattern::Text(p.into()),
    }
}

fn ip_match(key: &str, pat: &IpPattern) -> Result<bool, String> {
    let ip: IpAddr = key
        .parse()
        .map_err(|_| format!("ipMatch: `{key}` is not an IP address"))?;
    Ok(match pat {
        IpPattern::Text(t) => key == &**t,
        IpPattern::Net { addr, prefix } => match (ip, addr) {
            (IpAddr::V4(a), IpAddr::V4(n)) => {
                let mask = if *prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                u32::from(a) & mask == u32::from(*n) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(n)) => {
                let mask = if *prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                u128::from(a) & mask == u128::from(*n) & mask
            }
            _ => false,
        },
    })
}

/// How deep `{…}` alternatives of a glob may nest.
const GLOB_MAX_BRACES: usize = 32;

/// Translate a glob into an anchored regex, with the semantics of Go casbin's `globMatch`
/// (github.com/bmatcuk/doublestar/v4 `Match`):
/// - `*` is any run of characters other than `/`; `?` one character other than `/`;
/// - `**` as a whole path segment is any number of segments: `a/**/b` matches `a/b` and
///   `a/x/y/b`, `a/**` matches `a`, `a/` and everything below, `**/b` any path ending in
///   `/b` or `b` itself; elsewhere (`a**b`) it is a plain `*`;
/// - `[a-z]`, `[!a]`/`[^a]` classes never match `/`; `{x,y}` alternatives; `\` escapes;
/// - a malformed pattern (unclosed `[` or `{`, an empty class, a trailing `\`) is an
///   error, as in Go casbin.
///
/// The result runs on the `regex` crate's automata: linear in the input whatever the
/// pattern (a backtracking glob is exponential on `*a*a*b`-shaped patterns).
fn glob_regex(pattern: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid glob `{pattern}`: {why}");
    let p: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() * 2 + 8);
    out.push_str("(?s)^");
    let mut braces = 0usize;
    let mut i = 0;
    // Is position `k` the start of a `**` segment (`**` up to a `/` or the end)?
    let star_segment = |k: usize| -> Option<usize> {
        let mut j = k;
        while j < p.len() && p[j] == '*' {
            j += 1;
        }
        (j - k >= 2 && (j == p.len() || p[j] == '/')).then_some(j)
    };
    while i < p.len() {
        let c = p[i];
        match c {
            '/' => {
                if let Some(j) = star_segment(i + 1) {
                    if j == p.len() {
                        // `a/**`: `a` itself, or anything below it.
                        out.push_str("(?:/.*)?");
                        i = j;
                    } else if j + 1 == p.len() {
                        // `a/**/`: `a`, `a/`, or any directory below it.
                        out.push_str("(?:/|/.*/)?");
                        i = j + 1;
                    } else {
                        // `a/**/b`: zero or more directories between.
                        out.push_str("/(?:.*/)?");
                        i = j + 1;
                    }
                } else {
                    out.push('/');
                    i += 1;
                }
            }
            '*' => {
                match star_segment(i) {
                    Some(j) if i == 0 && j == p.len() => {
                        out.push_str(".*");
                        i = j;
                    }
                    Some(j) if i == 0 => {
                        // `**/b`: any leading directories.
                        out.push_str("(?:.*/)?");
                        i = j + 1;
                    }
                    _ => {
                        while i < p.len() && p[i] == '*' {
                            i += 1;
                        }
                        out.push_str("[^/]*");
                    }
                }
            }
            '?' => {
                out.push_str("[^/]");
                i += 1;
            }
            '[' => {
                i += 1;
                let negate = matches!(p.get(i), Some('!') | Some('^'));
                if negate {
                    i += 1;
                }
                let mut items = String::new();
                let mut closed = false;
                while let Some(&lo) = p.get(i) {
                    if lo == ']' {
                        closed = true;
                        i += 1;
                        break;
                    }
                    let mut lo = lo;
                    i += 1;
                    if lo == '\\' {
                        lo = *p.get(i).ok_or_else(|| bad("unclosed `[`"))?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|x| *x != ']') {
                        hi = p[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *p.get(i).ok_or_else(|| bad("unclosed `[`"))?;
                            i += 1;
                        }
                    }
                    if hi < lo {
                        return Err(bad(&format!("range `{lo}-{hi}` is out of order")));
                    }
                    items.push_str(&format!("\\x{{{:x}}}-\\x{{{:x}}}", lo as u32, hi as u32));
                }
                if !closed {
                    return Err(bad("unclosed `[`"));
                }
                if items.is_empty() {
                    return Err(bad("empty character class `[]`"));
                }
                out.push_str(if negate { "[[^/]&&[^" } else { "[[^/]&&[" });
                out.push_str(&items);
                out.push_str("]]");
            }
            '{' => {
                braces += 1;
                if braces > GLOB_MAX_BRACES {
                    return Err(bad(&format!("`{{…}}` nested deeper than {GLOB_MAX_BRACES}")));
                }
                out.push_str("(?:");
                i += 1;
            }
            ',' if braces > 0 => {
                out.push('|');
                i += 1;
            }
            '}' if braces > 0 => {
                braces -= 1;
                out.push(')');
                i += 1;
            }
            '\\' => {
                let lit = *p.get(i + 1).ok_or_else(|| bad("trailing `\\`"))?;
                out.push_str(&regex::escape(lit.encode_utf8(&mut [0; 4])));
                i += 2;
            }
            other => {
                out.push_str(&regex::escape(other.encode_utf8(&mut [0; 4])));
                i += 1;
            }
        }
    }
    if braces > 0 {
        return Err(bad("unclosed `{`"));
    }
    out.push('$');
    Ok(out)
}

/// Does `s` match the glob `pattern` (Go casbin's `globMatch`; see [`glob_regex`])?
pub fn glob_match(s: &str, pattern: &str) -> Result<bool, String> {
    Ok(build_regex(&glob_regex(pattern)?)?.is_match(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(func: Func, key: &str, pat: &str) -> bool {
        Pattern::compile(func, pat).unwrap().matches(func, key).unwrap()
    }

    #[test]
    fn key_match_is_a_prefix_up_to_the_star() {
        assert!(m(Func::KeyMatch, "/foo/bar", "/foo/*"));
        assert!(m(Func::KeyMatch, "/foo", "/foo*"));
        assert!(!m(Func::KeyMatch, "/fo", "/foo*"));
        assert!(m(Func::KeyMatch, "abc", "abc"));
    }

    #[test]
    fn key_match2_fast_path_agrees_with_the_regex_form() {
        let cases = [
            ("apps/app1", "apps/:app_id"),
            ("apps/app1/x", "apps/:app_id"),
            ("apps/app1/x", "apps/:app_id/*"),
            ("apps/app1/", "apps/:app_id/*"),
            ("apps/app1", "apps/:app_id/*"),
            ("apps/*", "apps/:id"),
            ("apps", "apps/*"),
            ("apps/", "apps/*"),
            ("anything/at/all", "*"),
            ("/book/1", "/book/:id"),
            ("/book/", "/book/:id"),
            ("org/settings", "org/settings"),
            ("a/b/c", "a/:x/c"),
            ("a//c", "a/:x/c"),
            ("apps/a\nb", "apps/*"),
            ("apps/a\nb", "apps/:id"),
            ("x\n", "*"),
        ];
        for (key, pat) in cases {
            let fast = Pattern::compile(Func::KeyMatch2, pat).unwrap();
            assert!(
                matches!(fast, Pattern::Segments(_)),
                "{pat} should take the fast path"
            );
            let mut names = Vec::new();
            let mut src = colon_params(&star_to_regex(pat), false, &mut names);
            if src == "*" {
                src = "(.*)".into();
            }
            let slow = Regex::new(&format!("^{src}$")).unwrap();
            assert_eq!(
                fast.matches(Func::KeyMatch2, key).unwrap(),
                slow.is_match(key),
                "{key} ~ {pat}"
            );
        }
    }

    #[test]
    fn key_match2_with_braces_does_not_panic_and_treats_them_literally() {
        assert!(m(Func::KeyMatch2, "/book2/{id}", "/book2/{id}"));
        assert!(!m(Func::KeyMatch2, "/book2/1", "/book2/{id}"));
    }

    #[test]
    fn key_get2_extracts_path_variables() {
        let p = Pattern::compile(Func::KeyGet2, "apps/:app/*").unwrap();
        assert_eq!(p.get(Func::KeyGet2, "apps/web/models/1", "app"), "web");
        assert_eq!(p.get(Func::KeyGet2, "teams/web", "app"), "");
        assert!(matches!(p, Pattern::Segments(_)));
        let slow = Pattern::compile(Func::KeyGet2, "apps/:app/(x)").unwrap();
        assert_eq!(slow.get(Func::KeyGet2, "apps/web/x", "app"), "web");
    }

    #[test]
    fn glob_follows_go_casbin_doublestar() {
        assert!(m(Func::GlobMatch, "/foo/bar", "/foo/*"));
        assert!(!m(Func::GlobMatch, "/foo/a/b", "/foo/*"));
        assert!(m(Func::GlobMatch, "/foobar", "/foo*"));
        assert!(m(Func::GlobMatch, "/a/foo/b", "/*/foo/*"));
        assert!(!m(Func::GlobMatch, "/foo", "*"));
        assert!(m(Func::GlobMatch, "b", "[a-c]"));
        assert!(!m(Func::GlobMatch, "b", "[!a-c]"));
        assert!(!m(Func::GlobMatch, "/", "[!a-c]"));
        assert!(m(Func::GlobMatch, "a\nb", "a*b"));
        // `**` as a whole segment crosses `/` (the contested side: Go casbin's).
        assert!(m(Func::GlobMatch, "/a/x/y/b", "/a/**/b"));
        assert!(m(Func::GlobMatch, "/a/b", "/a/**/b"));
        assert!(m(Func::GlobMatch, "/a", "/a/**"));
        assert!(m(Func::GlobMatch, "/a/x/y", "/a/**"));
        assert!(m(Func::GlobMatch, "x/y/b", "**/b"));
        assert!(m(Func::GlobMatch, "anything/at/all", "**"));
        assert!(!m(Func::GlobMatch, "/a/x/y.log", "/a/**.log"));
        assert!(m(Func::GlobMatch, "/a/xy.log", "/a/**.log"));
        assert!(m(Func::GlobMatch, "/a/b.txt", "/a/*.{txt,md}"));
        assert!(!m(Func::GlobMatch, "/a/b.rs", "/a/*.{txt,md}"));
        assert!(m(Func::GlobMatch, "a*b", "a\\*b"));
        assert!(!m(Func::GlobMatch, "axb", "a\\*b"));
    }

    #[test]
    fn malformed_glob_is_an_error_when_reached() {
        for bad in ["[a-c", "[]", "{a,b", "a\\", "[c-a]"] {
            let p = Pattern::compile(Func::GlobMatch, bad).unwrap();
            assert!(p.matches(Func::GlobMatch, "b").is_err(), "{bad}");
        }
    }

    #[test]
    fn glob_is_linear_on_backtracking_shapes() {
        // Exponential for a backtracking matcher; these return at once.
        let long = "-".repeat(1024);
        assert!(!m(Func::GlobMatch, &long, "*-*-*-*.log"));
        let a = "a".repeat(4096);
        assert!(!m(Func::GlobMatch, &a, "*a*a*b"));
    }

    #[test]
    fn key_match5_reads_the_pattern_as_written() {
        // Only the request's query is dropped; the pattern's `?` is a regex `?`.
        assert!(!m(Func::KeyMatch5, "/res/a", "/res/a?x=1"));
        assert!(!m(Func::KeyMatch5, "/res/a?x=1", "/res/a?x=1"));
        assert!(m(Func::KeyMatch5, "/res/ax=1", "/res/a?x=1"));
        assert!(m(Func::KeyMatch5, "/res/a?q=1", "/res/{id}"));
    }

    #[test]
    fn key_match4_and_5_read_two_braces_in_a_segment_as_one_placeholder() {
        for f in [Func::KeyMatch4, Func::KeyMatch5] {
            assert!(!m(f, "/files/a/b", "/files/{name}.{ext}"), "{f:?}");
            assert!(m(f, "/files/ab", "/files/{name}.{ext}"), "{f:?}");
            assert!(m(f, "/files/readme", "/files/{name}-{ext}"), "{f:?}");
            assert!(m(f, "/p/1/c/2", "/p/{id}/c/{x}"), "{f:?}");
        }
        assert!(!m(Func::KeyMatch4, "/p/1/c/2", "/p/{id}/c/{id}"));
        assert!(m(Func::KeyMatch4, "/p/1/c/1", "/p/{id}/c/{id}"));
    }

    #[test]
    fn key_match2_star_does_not_match_a_line_break() {
        assert!(!m(Func::KeyMatch2, "/res/a\nb", "/res/*"));
        assert!(!m(Func::KeyMatch2, "a\nb", "*"));
        assert!(m(Func::KeyMatch2, "/res/a/b", "/res/*"));
        // The regex form agrees.
        assert!(!m(Func::KeyMatch2, "/res/x/a\nb", "/res/:id/(.*)"));
    }

    #[test]
    fn ip_match_handles_cidr_plain_and_bad_input() {
        assert!(m(Func::IpMatch, "192.168.2.123", "192.168.2.0/24"));
        assert!(!m(Func::IpMatch, "192.168.3.1", "192.168.2.0/24"));
        assert!(m(Func::IpMatch, "10.0.0.1", "10.0.0.1"));
        let p = Pattern::compile(Func::IpMatch, "10.0.0.0/16").unwrap();
        assert!(p.matches(Func::IpMatch, "not-an-ip").is_err());
    }

    #[test]
    fn invalid_regex_is_an_error_not_a_panic() {
        assert!(Pattern::compile(Func::RegexMatch, "(unclosed").is_err());
        assert!(Pattern::compile(Func::RegexMatch, "[z-a]").is_err());
    }
}
