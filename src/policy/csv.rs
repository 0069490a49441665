//! `policy.csv`: Casbin policy lines (`p, alice, data1, read`).
//!
//! A line is split on commas that are outside brackets, parentheses and double quotes
//! (ABAC rules such as `r.sub.Age > 18` and quoted values keep their commas); cells are
//! trimmed and unquoted. `#` comment lines and blank lines are skipped.

use super::PolicyError;

/// One policy line: its type (`p`, `g`, `g2`, …), its values and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub ptype: String,
    pub values: Vec<String>,
    pub line: u32,
    /// The line as written (trimmed), for explanations.
    pub text: String,
}

pub fn parse(file: &str, text: &str) -> Result<Vec<Rule>, Vec<PolicyError>> {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lineno = (i + 1) as u32;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match split_line(line) {
            Ok(mut cells) => {
                let ptype = cells.remove(0);
                if ptype.is_empty() {
                    errors.push(PolicyError {
                        file: file.into(),
                        line: lineno,
                        reason: "missing policy type (p, g, …) at the start of the line".into(),
                    });
                    continue;
                }
                rules.push(Rule {
                    ptype,
                    values: cells,
                    line: lineno,
                    text: line.to_string(),
                });
            }
            Err(reason) => errors.push(PolicyError {
                file: file.into(),
                line: lineno,
                reason,
            }),
        }
    }
    if errors.is_empty() { Ok(rules) } else { Err(errors) }
}

fn split_line(line: &str) -> Result<Vec<String>, String> {
    let mut cells = vec![String::new()];
    let mut depth: Vec<char> = Vec::new();
    let mut in_quotes = false;
    let mut quoted = vec![false];
    for c in line.chars() {
        let cur = cells.last_mut().ok_or("internal: no cell")?;
        if in_quotes {
            if c == '"' {
                in_quotes = false;
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' if depth.is_empty() && cur.trim().is_empty() => {
                cur.clear();
                in_quotes = true;
                if let Some(q) = quoted.last_mut() {
                    *q = true;
                }
            }
            '(' | '[' => {
                depth.push(c);
                cur.push(c);
            }
            ')' | ']' => {
                let open = if c == ')' { '(' } else { '[' };
                if depth.pop() != Some(open) {
                    return Err(format!("unbalanced `{c}`"));
                }
                cur.push(c);
            }
            ',' if depth.is_empty() => {
                cells.push(String::new());
                quoted.push(false);
            }
            _ => cur.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated double quote".into());
    }
    if let Some(open) = depth.last() {
        return Err(format!("unclosed `{open}`"));
    }
    Ok(cells
        .into_iter()
        .zip(quoted)
        .map(|(c, q)| if q { c } else { c.trim().to_string() })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_trims_and_skips_comments() {
        let rules = parse("p.csv", "# c\n\np, alice, data1, read\ng,bob,admin\n").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].values, vec!["alice", "data1", "read"]);
        assert_eq!(rules[0].line, 3);
        assert_eq!(rules[1].ptype, "g");
    }

    #[test]
    fn keeps_commas_inside_brackets_and_quotes() {
        let rules = parse("p.csv", "p, r.sub.Age in (1, 2), \"a, b\", x\n").unwrap();
        assert_eq!(rules[0].values, vec!["r.sub.Age in (1, 2)", "a, b", "x"]);
    }

    #[test]
    fn reports_unbalanced_lines() {
        let errs = parse("p.csv", "p, (a, b\n").unwrap_err();
        assert_eq!(errs[0].to_string(), "p.csv:1: unclosed `(`");
    }
}
