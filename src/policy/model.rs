//! `model.conf`: Casbin's INI-like model format.
//!
//! Sections `[request_definition]`, `[policy_definition]`, `[role_definition]`,
//! `[policy_effect]`, `[matchers]`; `key = value` lines; `#`/`;` comment lines; a
//! trailing `\` continues a value on the next line. Every key keeps the line it was
//! declared on so that later errors (an unknown function in a matcher, say) point at
//! the right place.

use super::PolicyError;

/// One `key = value` entry and where it was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: u32,
}

/// The parsed model, section by section, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelText {
    pub file: String,
    pub request: Vec<Entry>,
    pub policy: Vec<Entry>,
    pub roles: Vec<Entry>,
    pub effect: Vec<Entry>,
    pub matchers: Vec<Entry>,
}

impl ModelText {
    pub fn find<'a>(entries: &'a [Entry], key: &str) -> Option<&'a Entry> {
        entries.iter().find(|e| e.key == key)
    }
}

/// Parse model text. Errors name the file and line.
pub fn parse(file: &str, text: &str) -> Result<ModelText, Vec<PolicyError>> {
    let mut model = ModelText {
        file: file.to_string(),
        ..Default::default()
    };
    let mut errors = Vec::new();
    let err = |line: u32, reason: String| PolicyError {
        file: file.to_string(),
        line,
        reason,
    };
    let mut section: Option<String> = None;
    // A value being continued with a trailing backslash: (key, value so far, first line).
    let mut pending: Option<(String, String, u32)> = None;

    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        let lineno = (i + 1) as u32;
        let line = raw.trim();
        if let Some((key, mut value, first)) = pending.take() {
            let (part, more) = split_continuation(line);
            if !value.is_empty() && !part.is_empty() {
                value.push(' ');
            }
            value.push_str(part);
            if more {
                pending = Some((key, value, first));
            } else if let Some(sec) = &section {
                push_entry(
                    &mut model,
                    sec,
                    Entry {
                        key,
                        value,
                        line: first,
                    },
                );
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            if !line.ends_with(']') {
                errors.push(err(lineno, format!("unterminated section header `{line}`")));
                continue;
            }
            let name = line[1..line.len() - 1].trim().to_string();
            match name.as_str() {
                "request_definition" | "policy_definition" | "role_definition" | "policy_effect"
                | "matchers" => section = Some(name),
                other => {
                    errors.push(err(
                        lineno,
                        format!(
                            "unknown section `[{other}]` (expected request_definition, policy_definition, \
                             role_definition, policy_effect or matchers)"
                        ),
                    ));
                    section = None;
                }
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            errors.push(err(lineno, format!("expected `key = value`, found `{line}`")));
            continue;
        };
        let key = key.trim().to_string();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errors.push(err(lineno, format!("invalid key `{key}`")));
            continue;
        }
        let Some(sec) = section.clone() else {
            errors.push(err(lineno, format!("`{key}` is outside any known section")));
            continue;
        };
        let (part, more) = split_continuation(value.trim());
        if more {
            pending = Some((key, part.to_string(), lineno));
            continue;
        }
        let entries = section_entries(&mut model, &sec);
        if entries.iter().any(|e| e.key == key) {
            errors.push(err(lineno, format!("`{key}` is defined twice in [{sec}]")));
            continue;
        }
        push_entry(
            &mut model,
            &sec,
            Entry {
                key,
                value: part.to_string(),
                line: lineno,
            },
        );
    }
    if let Some((key, _, first)) = pending {
        errors.push(err(
            first,
            format!("`{key}` ends with a line continuation `\\` but the file ends"),
        ));
    }
    if errors.is_empty() { Ok(model) } else { Err(errors) }
}

fn split_continuation(line: &str) -> (&str, bool) {
    match line.strip_suffix('\\') {
        Some(rest) => (rest.trim(), true),
        None => (line, false),
    }
}

fn section_entries<'a>(model: &'a mut ModelText, section: &str) -> &'a mut Vec<Entry> {
    match section {
        "request_definition" => &mut model.request,
        "policy_definition" => &mut model.policy,
        "role_definition" => &mut model.roles,
        "policy_effect" => &mut model.effect,
        _ => &mut model.matchers,
    }
}

fn push_entry(model: &mut ModelText, section: &str, entry: Entry) {
    section_entries(model, section).push(entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_continuations() {
        let text = "[request_definition]\nr = sub, obj, act\n\n# c\n[policy_definition]\np = sub, obj, act\n\
                    [matchers]\nm = r.sub == p.sub \\\n  && r.obj == p.obj\n[policy_effect]\ne = some(where (p.eft == allow))\n";
        let m = parse("model.conf", text).unwrap();
        assert_eq!(m.request[0].value, "sub, obj, act");
        assert_eq!(m.matchers[0].value, "r.sub == p.sub && r.obj == p.obj");
        assert_eq!(m.matchers[0].line, 8);
        assert_eq!(m.effect[0].line, 11);
    }

    #[test]
    fn reports_unknown_section_and_bad_lines_with_line_numbers() {
        let errs = parse("m.conf", "[nope]\nx = 1\n[matchers]\nwhat\n").unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(text[0].starts_with("m.conf:1: unknown section"), "{text:?}");
        assert!(
            text.iter()
                .any(|t| t.starts_with("m.conf:4: expected `key = value`")),
            "{text:?}"
        );
    }

    #[test]
    fn dangling_continuation_is_an_error() {
        let errs = parse("m.conf", "[matchers]\nm = a \\\n").unwrap_err();
        assert!(errs[0].reason.contains("continuation"));
    }
}
