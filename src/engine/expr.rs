//! Matcher expressions: tokenizer, parser and the resolved syntax tree.
//!
//! A matcher such as `g(r.sub, p.sub, r.dom) && keyMatch2(r.obj, p.obj)` is parsed once
//! at load time into an [`Expr`] whose field references are already resolved to
//! positions (`r.obj` → request value 2), whose functions are known built-ins, and whose
//! pattern arguments are marked for pre-compilation. Anything unknown is a load-time
//! error, never a runtime surprise.
//!
//! Depth is bounded: the parser refuses an expression whose tree would be more than
//! [`MAX_DEPTH`] levels high (`nesting deeper than N`), counting parentheses, unary
//! operators, calls, `in` lists and left-leaning arithmetic chains, and it checks its own
//! recursion against the same bound before descending. `&&`/`||` chains of any length
//! are built as balanced trees (height log₂ n; the operators are associative and the
//! evaluation order of the terms is kept), so a 20,000-term chain is 15 levels. Every
//! walker of an [`Expr`] (the evaluator, the rule index, explanations) recurses at most
//! [`MAX_DEPTH`] levels, and an `eval()`'d rule is parsed with the same bound.

use super::funcs::{Func, Pattern};

/// The highest expression tree the parser builds. Real matchers are a few levels high;
/// the bound keeps the recursive parser and evaluator far from the end of a thread's
/// stack (a tokio worker has 2 MiB) on hostile input.
pub const MAX_DEPTH: usize = 64;

/// The parser's error for an expression past [`MAX_DEPTH`].
fn too_deep() -> String {
    format!("nesting deeper than {MAX_DEPTH}")
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// Where a function's pattern argument comes from, decided at load time.
#[derive(Debug, Clone)]
pub enum PatSrc {
    /// A policy field: compiled once per policy row into `row.patterns[site]`.
    Site(usize),
    /// A literal in the matcher: compiled once.
    Lit(Box<Pattern>),
    /// Anything else (a request value): compiled per evaluation.
    Dynamic,
}

/// A resolved matcher expression.
#[derive(Debug, Clone)]
pub enum Expr {
    Str(Box<str>),
    Num(f64),
    Bool(bool),
    /// Request value `idx`, then attribute path (ABAC: `r.sub.Age`).
    Req {
        idx: usize,
        path: Box<[Box<str>]>,
    },
    /// Policy value `idx` of the current row.
    Pol {
        idx: usize,
        path: Box<[Box<str>]>,
    },
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<[Expr]>),
    Call {
        func: Func,
        args: Box<[Expr]>,
        pat: PatSrc,
    },
    /// `g(a, b[, domain])` for role definition number `g`.
    Role {
        g: usize,
        args: Box<[Expr]>,
    },
    /// `eval(p.field)`: the field's text is itself an expression, compiled per row
    /// into `row.evals[slot]`.
    Eval {
        field: usize,
        slot: usize,
    },
}

/// What names mean while parsing.
pub struct Scope<'a> {
    pub r_key: &'a str,
    pub r_tokens: &'a [String],
    pub p_key: &'a str,
    pub p_tokens: &'a [String],
    /// Role definitions: name (`g`, `g2`) and arity (2 or 3).
    pub roles: &'a [(String, usize)],
    /// Whether `eval()` is allowed (not inside an eval'd rule).
    pub allow_eval: bool,
}

/// Side tables filled while parsing: per-row pattern sites and eval slots.
#[derive(Debug, Default, Clone)]
pub struct Sites {
    /// For each pattern site: the policy field it reads and the function that uses it.
    pub patterns: Vec<(usize, Func)>,
    /// For each eval slot: the policy field holding the expression.
    pub evals: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    Dot,
    Op(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text
                .parse::<f64>()
                .map_err(|_| format!("invalid number `{text}`"))?;
            toks.push(Tok::Num(n));
            continue;
        }
        if c == '"' || c == '\'' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err("unterminated string literal".into());
                };
                i += 1;
                if ch == quote {
                    break;
                }
                if ch == '\\' {
                    let Some(&next) = chars.get(i) else {
                        return Err("unterminated string literal".into());
                    };
                    i += 1;
                    s.push(match next {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    s.push(ch);
                }
            }
            toks.push(Tok::Str(s));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = match two.as_str() {
            "&&" => Some("&&"),
            "||" => Some("||"),
            "==" => Some("=="),
            "!=" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(op) = op2 {
            toks.push(Tok::Op(op));
            i += 2;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBrack,
            ']' => Tok::RBrack,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '!' => Tok::Op("!"),
            '<' => Tok::Op("<"),
            '>' => Tok::Op(">"),
            '+' => Tok::Op("+"),
            '-' => Tok::Op("-"),
            '*' => Tok::Op("*"),
            '/' => Tok::Op("/"),
            '%' => Tok::Op("%"),
            other => return Err(format!("unexpected character `{other}`")),
        };
        toks.push(tok);
        i += 1;
    }
    Ok(toks)
}

/// Parse and resolve a matcher (or an `eval()`'d rule).
pub fn parse(src: &str, scope: &Scope<'_>, sites: &mut Sites) -> Result<Expr, String> {
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        scope,
        sites,
        nest: 0,
    };
    let (e, _) = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "unexpected `{}` after the end of the expression",
            p.describe()
        ));
    }
    Ok(e)
}

struct Parser<'s, 'a> {
    toks: Vec<Tok>,
    pos: usize,
    scope: &'s Scope<'a>,
    sites: &'s mut Sites,
    /// How many nested sub-expressions (parentheses, arguments, unary operands) the parser
    /// is inside: checked before each descent so that the parser's own recursion stays
    /// bounded.
    nest: usize,
}

/// A parsed sub-expression and the height of its tree (a leaf is 1).
type Parsed = (Expr, usize);

/// Height of a node over children of the given heights, refused past [`MAX_DEPTH`].
fn height(children: impl IntoIterator<Item = usize>) -> Result<usize, String> {
    let h = 1 + children.into_iter().max().unwrap_or(0);
    if h > MAX_DEPTH { Err(too_deep()) } else { Ok(h) }
}

/// Join the terms of an `&&`/`||` chain as a balanced tree, keeping their order.
fn balanced(mut terms: Vec<Parsed>, join: fn(Box<Expr>, Box<Expr>) -> Expr) -> Result<Parsed, String> {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some((a, ha)) = it.next() {
            match it.next() {
                Some((b, hb)) => next.push((join(Box::new(a), Box::new(b)), height([ha, hb])?)),
                None => next.push((a, ha)),
            }
        }
        terms = next;
    }
    terms.pop().ok_or_else(|| "empty expression".to_string())
}

impl Parser<'_, '_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "end of expression".into(),
            Some(Tok::Ident(s)) => s.clone(),
            Some(Tok::Str(s)) => format!("\"{s}\""),
            Some(Tok::Num(n)) => n.to_string(),
            Some(Tok::Op(o)) => (*o).into(),
            Some(Tok::LParen) => "(".into(),
            Some(Tok::RParen) => ")".into(),
            Some(Tok::LBrack) => "[".into(),
            Some(Tok::RBrack) => "]".into(),
            Some(Tok::Comma) => ",".into(),
            Some(Tok::Dot) => ".".into(),
        }
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let hit = match self.peek() {
            Some(Tok::Op(o)) => *o == op,
            Some(Tok::Ident(w)) => matches!((op, w.as_str()), ("&&", "and") | ("||", "or") | ("!", "not")),
            _ => false,
        };
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), String> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{what}`, found `{}`", self.describe()))
        }
    }

    /// Enter a nested sub-expression (refused past [`MAX_DEPTH`]); pair with `leave`.
    fn enter(&mut self) -> Result<(), String> {
        self.nest += 1;
        if self.nest > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nest -= 1;
    }

    /// A whole sub-expression (the matcher, a parenthesized group, an argument).
    fn or(&mut self) -> Result<Parsed, String> {
        self.enter()?;
        let out = self.or_chain();
        self.leave();
        out
    }

    fn or_chain(&mut self) -> Result<Parsed, String> {
        let mut terms = vec![self.and()?];
        while self.eat_op("||") {
            terms.push(self.and()?);
        }
        balanced(terms, Expr::Or)
    }

    fn and(&mut self) -> Result<Parsed, String> {
        let mut terms = vec![self.not()?];
        while self.eat_op("&&") {
            terms.push(self.not()?);
        }
        balanced(terms, Expr::And)
    }

    fn not(&mut self) -> Result<Parsed, String> {
        if self.eat_op("!") {
            self.enter()?;
            let inner = self.not();
            self.leave();
            let (e, h) = inner?;
            return Ok((Expr::Not(Box::new(e)), height([h])?));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Parsed, String> {
        let (left, hl) = self.add()?;
        let op = match self.peek() {
            Some(Tok::Op("==")) => Some(CmpOp::Eq),
            Some(Tok::Op("!=")) => Some(CmpOp::Ne),
            Some(Tok::Op("<")) => Some(CmpOp::Lt),
            Some(Tok::Op("<=")) => Some(CmpOp::Le),
            Some(Tok::Op(">")) => Some(CmpOp::Gt),
            Some(Tok::Op(">=")) => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let (right, hr) = self.add()?;
            return Ok((Expr::Cmp(op, Box::new(left), Box::new(right)), height([hl, hr])?));
        }
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == "in") {
            self.pos += 1;
            let close = match self.peek() {
                Some(Tok::LParen) => Tok::RParen,
                Some(Tok::LBrack) => Tok::RBrack,
                _ => {
                    return Err(format!(
                        "expected `(` or `[` after `in`, found `{}`",
                        self.describe()
                    ));
                }
            };
            self.pos += 1;
            let mut items = Vec::new();
            let mut h = hl;
            if self.peek() != Some(&close) {
                loop {
                    let (item, hi) = self.or()?;
                    h = h.max(hi);
                    items.push(item);
                    if self.peek() == Some(&Tok::Comma) {
                        self.pos += 1;
                        if self.peek() == Some(&close) {
                            break;
                        }
                        continue;
                    }
                    break;
                }
            }
            let closing = if close == Tok::RParen { ")" } else { "]" };
            self.expect(close, closing)?;
            return Ok((Expr::In(Box::new(left), items.into()), height([h])?));
        }
        Ok((left, hl))
    }

    /// Arithmetic chains lean left (`a - b + c` is `(a - b) + c`): each operator adds a
    /// level, counted against [`MAX_DEPTH`].
    fn add(&mut self) -> Result<Parsed, String> {
        let (mut left, mut h) = self.mul()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("+")) => ArithOp::Add,
                Some(Tok::Op("-")) => ArithOp::Sub,
                _ => return Ok((left, h)),
            };
            self.pos += 1;
            let (right, hr) = self.mul()?;
            h = height([h, hr])?;
            left = Expr::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn mul(&mut self) -> Result<Parsed, String> {
        let (mut left, mut h) = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("*")) => ArithOp::Mul,
                Some(Tok::Op("/")) => ArithOp::Div,
                Some(Tok::Op("%")) => ArithOp::Mod,
                _ => return Ok((left, h)),
            };
            self.pos += 1;
            let (right, hr) = self.unary()?;
            h = height([h, hr])?;
            left = Expr::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Parsed, String> {
        let neg = self.peek() == Some(&Tok::Op("-"));
        if neg {
            self.pos += 1;
        }
        if neg || self.eat_op("!") {
            self.enter()?;
            let inner = self.unary();
            self.leave();
            let (e, h) = inner?;
            let e = if neg {
                Expr::Neg(Box::new(e))
            } else {
                Expr::Not(Box::new(e))
            };
            return Ok((e, height([h])?));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Parsed, String> {
        let Some(tok) = self.peek().cloned() else {
            return Err("unexpected end of expression".into());
        };
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok((Expr::Str(s.into()), 1)),
            Tok::Num(n) => Ok((Expr::Num(n), 1)),
            Tok::LParen => {
                // Parentheses add no node, but they nest the parser: `or` counts them.
                let e = self.or()?;
                self.expect(Tok::RParen, ")")?;
                Ok(e)
            }
            Tok::Ident(name) => {
                if self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let mut args = Vec::new();
                    let mut h = 0;
                    if self.peek() != Some(&Tok::RParen) {
                        loop {
                            let (arg, ha) = self.or()?;
                            h = h.max(ha);
                            args.push(arg);
                            if self.peek() == Some(&Tok::Comma) {
                                self.pos += 1;
                                continue;
                            }
                            break;
                        }
                    }
                    self.expect(Tok::RParen, ")")?;
                    let h = height([h])?;
                    return Ok((self.call(&name, args)?, h));
                }
                let mut path = vec![name];
                while self.peek() == Some(&Tok::Dot) {
                    self.pos += 1;
                    match self.peek().cloned() {
                        Some(Tok::Ident(seg)) => {
                            self.pos += 1;
                            path.push(seg);
                        }
                        _ => return Err(format!("expected a name after `.`, found `{}`", self.describe())),
                    }
                }
                Ok((self.reference(path)?, 1))
            }
            other => {
                self.pos -= 1;
                let _ = other;
                Err(format!("unexpected `{}`", self.describe()))
            }
        }
    }

    fn reference(&mut self, path: Vec<String>) -> Result<Expr, String> {
        let s = self.scope;
        if path.len() == 1 {
            match path[0].as_str() {
                "true" | "True" => return Ok(Expr::Bool(true)),
                "false" | "False" => return Ok(Expr::Bool(false)),
                _ => {}
            }
            // The escaped spelling `r_sub` / `p_eft`.
            for (key, tokens, is_req) in [(s.r_key, s.r_tokens, true), (s.p_key, s.p_tokens, false)] {
                if let Some(rest) = path[0].strip_prefix(key).and_then(|r| r.strip_prefix('_'))
                    && let Some(idx) = tokens.iter().position(|t| t == rest)
                {
                    return Ok(field(is_req, idx, Vec::new()));
                }
            }
            return Err(format!("unknown name `{}`", path[0]));
        }
        let head = path[0].as_str();
        let (tokens, is_req) = if head == s.r_key {
            (s.r_tokens, true)
        } else if head == s.p_key {
            (s.p_tokens, false)
        } else {
            return Err(format!(
                "unknown name `{}` (expected `{}.…` or `{}.…`)",
                path.join("."),
                s.r_key,
                s.p_key
            ));
        };
        let Some(idx) = tokens.iter().position(|t| *t == path[1]) else {
            return Err(format!(
                "`{}` has no field `{}` (fields: {})",
                head,
                path[1],
                tokens.join(", ")
            ));
        };
        Ok(field(is_req, idx, path[2..].to_vec()))
    }

    fn call(&mut self, name: &str, args: Vec<Expr>) -> Result<Expr, String> {
        if let Some(g) = self.scope.roles.iter().position(|(n, _)| n == name) {
            let arity = self.scope.roles[g].1;
            if args.len() != arity && !(arity > 2 && args.len() == 2) {
                return Err(format!("`{name}` takes {arity} arguments, found {}", args.len()));
            }
            return Ok(Expr::Role { g, args: args.into() });
        }
        if name == "eval" {
            if !self.scope.allow_eval {
                return Err("`eval` cannot be nested inside an evaluated rule".into());
            }
            let [Expr::Pol { idx, path }] = args.as_slice() else {
                return Err("`eval` takes one policy field, e.g. `eval(p.sub_rule)`".into());
            };
            if !path.is_empty() {
                return Err("`eval` takes a policy field without attributes".into());
            }
            let slot = self.sites.evals.len();
            self.sites.evals.push(*idx);
            return Ok(Expr::Eval { field: *idx, slot });
        }
        let Some(func) = Func::from_name(name) else {
            return Err(format!("unknown function `{name}`"));
        };
        if args.len() != func.arity() {
            return Err(format!(
                "`{name}` takes {} arguments, found {}",
                func.arity(),
                args.len()
            ));
        }
        let pat = match func.pattern_arg().and_then(|i| args.get(i)) {
            Some(Expr::Pol { idx, path }) if path.is_empty() => {
                let site = self.sites.patterns.len();
                self.sites.patterns.push((*idx, func));
                PatSrc::Site(site)
            }
            Some(Expr::Str(lit)) => PatSrc::Lit(Box::new(
                Pattern::compile(func, lit).map_err(|e| format!("in `{name}`: {e}"))?,
            )),
            _ => PatSrc::Dynamic,
        };
        Ok(Expr::Call {
            func,
            args: args.into(),
            pat,
        })
    }
}

fn field(is_req: bool, idx: usize, path: Vec<String>) -> Expr {
    let path: Box<[Box<str>]> = path.into_iter().map(Into::into).collect();
    if is_req {
        Expr::Req { idx, path }
    } else {
        Expr::Pol { idx, path }
    }
}

impl Expr {
    /// Top-level conjuncts (`a && b && c` → [a, b, c]).
    pub fn conjuncts(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        fn walk<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
            if let Expr::And(a, b) = e {
                walk(a, out);
                walk(b, out);
            } else {
                out.push(e);
            }
        }
        walk(self, &mut out);
        out
    }

    /// Does the expression read any policy field?
    pub fn reads_policy(&self) -> bool {
        match self {
            Expr::Pol { .. } | Expr::Eval { .. } => true,
            Expr::Str(_) | Expr::Num(_) | Expr::Bool(_) | Expr::Req { .. } => false,
            Expr::Not(a) | Expr::Neg(a) => a.reads_policy(),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::Arith(_, a, b) => {
                a.reads_policy() || b.reads_policy()
            }
            Expr::In(a, items) => a.reads_policy() || items.iter().any(Expr::reads_policy),
            Expr::Call { args, .. } | Expr::Role { args, .. } => args.iter().any(Expr::reads_policy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_parse(src: &str) -> Result<Expr, String> {
        let r = vec!["sub".to_string(), "obj".into(), "act".into()];
        let p = vec!["sub".to_string(), "obj".into(), "act".into()];
        let roles = vec![("g".to_string(), 2)];
        let scope = Scope {
            r_key: "r",
            r_tokens: &r,
            p_key: "p",
            p_tokens: &p,
            roles: &roles,
            allow_eval: true,
        };
        parse(src, &scope, &mut Sites::default())
    }

    #[test]
    fn resolves_fields_functions_and_in() {
        let e = scope_parse("g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) || r.obj in ('a', \"b\")").unwrap();
        assert!(matches!(e, Expr::Or(..)));
        assert!(scope_parse("r.sub.Age > 18 && r_sub == 'x'").is_ok());
    }

    #[test]
    fn rejects_unknowns_with_reasons() {
        assert!(
            scope_parse("foo(r.sub)")
                .unwrap_err()
                .contains("unknown function `foo`")
        );
        assert!(
            scope_parse("r.nope == p.sub")
                .unwrap_err()
                .contains("no field `nope`")
        );
        assert!(scope_parse("g(r.sub)").unwrap_err().contains("takes 2 arguments"));
        assert!(scope_parse("r.sub == ").is_err());
        assert!(
            scope_parse("(r.sub == p.sub")
                .unwrap_err()
                .contains("expected `)`")
        );
        assert!(scope_parse("r.sub == 'x").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep =
            |open: &str, close: &str| format!("{}r.sub == p.sub{}", open.repeat(2000), close.repeat(2000));
        for src in [
            deep("(", ")"),
            deep("!", ""),
            deep("-", ""),
            format!(
                "{}r.sub{} == p.sub",
                "keyGet(".repeat(2000),
                ", p.obj)".repeat(2000)
            ),
            format!("r.sub in ({}'x'{})", "r.obj in (".repeat(2000), ")".repeat(2000)),
            format!("r.sub == p.sub {}", "+ r.obj ".repeat(2000)),
        ] {
            let err = scope_parse(&src).unwrap_err();
            assert_eq!(err, format!("nesting deeper than {MAX_DEPTH}"), "{}", &src[..40]);
        }
    }

    #[test]
    fn long_and_or_chains_are_balanced_trees() {
        let chain = vec!["r.sub == p.sub"; 20_000].join(" && ");
        let e = scope_parse(&chain).unwrap();
        fn height(e: &Expr) -> usize {
            match e {
                Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) => 1 + height(a).max(height(b)),
                _ => 1,
            }
        }
        assert!(height(&e) <= 17, "height {}", height(&e));
        assert_eq!(e.conjuncts().len(), 20_000);
        let chain = vec!["r.sub == p.sub"; 20_000].join(" || ");
        assert!(scope_parse(&chain).is_ok());
        // Nesting just under the bound still parses.
        let ok = format!(
            "{}r.sub == p.sub{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert!(scope_parse(&ok).is_ok());
    }

    #[test]
    fn string_literals_are_not_rewritten() {
        let e = scope_parse("r.sub == \"a.p.p.l.e\"").unwrap();
        let Expr::Cmp(_, _, rhs) = e else { panic!() };
        assert!(matches!(*rhs, Expr::Str(ref s) if &**s == "a.p.p.l.e"));
    }
}
