//! Evaluating a compiled policy against one request.
//!
//! The hot path: pick candidate rows from the rule index, evaluate the matcher on each
//! in order, combine effects. Values borrow from the request, the policy and the
//! directory index for the duration of the check; nothing is allocated unless a
//! request value has to be compiled as a pattern (`regexMatch(p.x, r.y)`), which
//! policies rarely do, or a role walk reaches more names than fit inline (past 16 it
//! keeps a hash index so that the walk stays linear).
//!
//! Errors are Casbin's: a function that cannot take a value fails the whole check (a
//! deny with the reason), and the rule index prunes no row whose evaluation Casbin would
//! have reached with an error first (see `compile::build_index`).

use super::compile::{Bucket, CompiledPolicy, DomArg, Effect, Eft, Key1, Row};
use super::expr::{ArithOp, CmpOp, Expr, PatSrc};
use super::funcs::{Func, Pattern};
use super::index::IndexData;
use super::roles::Reach;
use smallvec::SmallVec;

/// One request value: a string, or (ABAC) a JSON value read with attribute access.
#[derive(Debug, Clone, Copy)]
pub enum ReqVal<'a> {
    Str(&'a str),
    Json(&'a serde_json::Value),
}

#[derive(Debug, Clone, Copy)]
enum V<'a> {
    S(&'a str),
    N(f64),
    B(bool),
    J(&'a serde_json::Value),
}

fn from_json(v: &serde_json::Value) -> V<'_> {
    match v {
        serde_json::Value::String(s) => V::S(s),
        serde_json::Value::Number(n) => V::N(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::Bool(b) => V::B(*b),
        other => V::J(other),
    }
}

fn truthy(v: V<'_>) -> bool {
    match v {
        V::S(s) => !s.is_empty(),
        V::N(n) => n != 0.0,
        V::B(b) => b,
        V::J(j) => match j {
            serde_json::Value::Null => false,
            serde_json::Value::Array(a) => !a.is_empty(),
            serde_json::Value::Object(o) => !o.is_empty(),
            _ => true,
        },
    }
}

fn type_name(v: V<'_>) -> &'static str {
    match v {
        V::S(_) => "string",
        V::N(_) => "number",
        V::B(_) => "boolean",
        V::J(_) => "object",
    }
}

/// Strings built during one check (`"app:" + keyGet2(...)`); empty unless a matcher
/// concatenates, so the common path allocates nothing.
pub type Scratch = elsa::FrozenVec<String>;

/// Per-check state: the inputs and memoized role reachability.
pub struct Cx<'a> {
    pub policy: &'a CompiledPolicy,
    pub req: &'a [ReqVal<'a>],
    pub dir: Option<&'a IndexData>,
    scratch: &'a Scratch,
    memo: SmallVec<[(usize, &'a str, &'a str, Reach<'a>); 2]>,
}

impl<'a> Cx<'a> {
    pub fn new(
        policy: &'a CompiledPolicy,
        req: &'a [ReqVal<'a>],
        dir: Option<&'a IndexData>,
        scratch: &'a Scratch,
    ) -> Self {
        Cx {
            policy,
            req,
            dir,
            scratch,
            memo: SmallVec::new(),
        }
    }

    /// Names `from` reaches through role definition `g` in `dom` (memoized per check).
    pub fn reach(&mut self, g: usize, from: &'a str, dom: &'a str) -> Option<&Reach<'a>> {
        let pos = self
            .memo
            .iter()
            .position(|(mg, f, d, _)| *mg == g && *f == from && *d == dom);
        let pos = match pos {
            Some(p) => p,
            None => {
                let def = self.policy.roles.get(g)?;
                let r = def.reach(from, dom, self.dir);
                self.memo.push((g, from, dom, r));
                self.memo.len() - 1
            }
        };
        self.memo.get(pos).map(|m| &m.3)
    }

    pub(crate) fn req_str(&self, idx: usize) -> Option<&'a str> {
        match self.req.get(idx)? {
            ReqVal::Str(s) => Some(s),
            ReqVal::Json(serde_json::Value::String(s)) => Some(s),
            ReqVal::Json(_) => None,
        }
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// The rule that decided, if one did (index into `policy.rows`).
    pub rule: Option<u32>,
}

fn attr<'a>(mut v: V<'a>, path: &[Box<str>], what: &str) -> Result<V<'a>, String> {
    for seg in path {
        match v {
            V::J(serde_json::Value::Object(map)) => match map.get(&**seg) {
                Some(x) => v = from_json(x),
                None => return Err(format!("{what} has no attribute `{seg}`")),
            },
            other => {
                return Err(format!(
                    "{what} is a {}, it has no attribute `{seg}`",
                    type_name(other)
                ));
            }
        }
    }
    Ok(v)
}

fn eq(a: V<'_>, b: V<'_>) -> bool {
    match (a, b) {
        (V::S(x), V::S(y)) => x == y,
        (V::N(x), V::N(y)) => x == y,
        (V::B(x), V::B(y)) => x == y,
        (V::J(x), V::J(y)) => x == y,
        _ => false,
    }
}

fn eval<'a>(e: &'a Expr, cx: &mut Cx<'a>, row: Option<&'a Row>) -> Result<V<'a>, String> {
    Ok(match e {
        Expr::Str(s) => V::S(s),
        Expr::Num(n) => V::N(*n),
        Expr::Bool(b) => V::B(*b),
        Expr::Req { idx, path } => {
            let base = match cx.req.get(*idx) {
                Some(ReqVal::Str(s)) => V::S(s),
                Some(ReqVal::Json(j)) => from_json(j),
                None => return Err(format!("request value {} is missing", idx + 1)),
            };
            if path.is_empty() {
                base
            } else {
                let name = cx.policy.r_tokens.get(*idx).map(String::as_str).unwrap_or("?");
                attr(base, path, &format!("r.{name}"))?
            }
        }
        Expr::Pol { idx, path } => {
            let base = match row {
                Some(r) => V::S(r.values.get(*idx).map(|v| &**v).unwrap_or("")),
                None => V::S(""),
            };
            if path.is_empty() {
                base
            } else {
                attr(base, path, "a policy value")?
            }
        }
        Expr::Not(a) => V::B(!truthy(eval(a, cx, row)?)),
        Expr::Neg(a) => match eval(a, cx, row)? {
            V::N(n) => V::N(-n),
            other => return Err(format!("cannot negate a {}", type_name(other))),
        },
        Expr::And(a, b) => {
            if !truthy(eval(a, cx, row)?) {
                V::B(false)
            } else {
                V::B(truthy(eval(b, cx, row)?))
            }
        }
        Expr::Or(a, b) => {
            if truthy(eval(a, cx, row)?) {
                V::B(true)
            } else {
                V::B(truthy(eval(b, cx, row)?))
            }
        }
        Expr::Cmp(op, a, b) => {
            let (x, y) = (eval(a, cx, row)?, eval(b, cx, row)?);
            V::B(match op {
                CmpOp::Eq => eq(x, y),
                CmpOp::Ne => !eq(x, y),
                _ => {
                    let ord = match (x, y) {
                        (V::N(p), V::N(q)) => p.partial_cmp(&q),
                        (V::S(p), V::S(q)) => Some(p.cmp(q)),
                        _ => {
                            return Err(format!("cannot order a {} and a {}", type_name(x), type_name(y)));
                        }
                    };
                    let Some(ord) = ord else { return Ok(V::B(false)) };
                    match op {
                        CmpOp::Lt => ord.is_lt(),
                        CmpOp::Le => ord.is_le(),
                        CmpOp::Gt => ord.is_gt(),
                        _ => ord.is_ge(),
                    }
                }
            })
        }
        Expr::Arith(op, a, b) => match (eval(a, cx, row)?, eval(b, cx, row)?) {
            (V::N(x), V::N(y)) => V::N(match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => {
                    if y == 0.0 {
                        return Err("division by zero".into());
                    }
                    x / y
                }
                ArithOp::Mod => {
                    if y == 0.0 {
                        return Err("modulo by zero".into());
                    }
                    x % y
                }
            }),
            (V::S(x), V::S(y)) if *op == ArithOp::Add => V::S(cx.scratch.push_get(format!("{x}{y}"))),
            (x, y) => {
                return Err(format!(
                    "arithmetic needs numbers, found {} and {}",
                    type_name(x),
                    type_name(y)
                ));
            }
        },
        Expr::In(a, items) => {
            let x = eval(a, cx, row)?;
            for item in items.iter() {
                if eq(x, eval(item, cx, row)?) {
                    return Ok(V::B(true));
                }
            }
            V::B(false)
        }
        Expr::Call { func, args, pat } => call(*func, args, pat, cx, row)?,
        Expr::Role { g, args } => {
            let a = str_arg(eval(&args[0], cx, row)?, "role name")?;
            if let Expr::Arith(ArithOp::Add, pre, rest) = &args[1]
                && let Expr::Str(prefix) = &**pre
            {
                // `g(a, "app:" + x, d)`: test for the joined name without building it.
                let rest = str_arg(eval(rest, cx, row)?, "role name")?;
                let d = match args.get(2) {
                    Some(x) => str_arg(eval(x, cx, row)?, "domain")?,
                    None => "",
                };
                let (scratch, policy) = (cx.scratch, cx.policy);
                let reach = cx.reach(*g, a, d);
                let hit = reach.is_some_and(|r| {
                    r.nodes.iter().any(|(n, _, _)| {
                        n.len() == prefix.len() + rest.len() && n.starts_with(&**prefix) && n.ends_with(rest)
                    })
                });
                if !hit && let Some(r) = reach {
                    // Rare: a name matched by a reached pattern, or a walk cut at the bound.
                    let joined = scratch.push_get(format!("{prefix}{rest}"));
                    return role_answer(r, joined, *g, a, policy);
                }
                return Ok(V::B(hit));
            }
            let b = str_arg(eval(&args[1], cx, row)?, "role name")?;
            let d = match args.get(2) {
                Some(x) => str_arg(eval(x, cx, row)?, "domain")?,
                None => "",
            };
            let policy = cx.policy;
            match cx.reach(*g, a, d) {
                Some(r) => role_answer(r, b, *g, a, policy)?,
                None => V::B(false),
            }
        }
        Expr::Eval { slot, .. } => {
            let Some(r) = row else {
                return Err("eval() needs policy rules to evaluate".into());
            };
            let Some(rule) = r.evals.get(*slot) else {
                return Err("eval() rule was not compiled".into());
            };
            V::B(truthy(eval(rule, cx, row)?))
        }
    })
}

/// `g(a, b)` over the names `a` reaches: true when `b` is among them; an error when it is
/// not but the walk stopped at the depth bound (the answer is unknown, so the check
/// denies with the reason instead of guessing).
fn role_answer<'a>(
    r: &Reach<'_>,
    b: &str,
    g: usize,
    a: &str,
    policy: &CompiledPolicy,
) -> Result<V<'a>, String> {
    if r.contains(b) {
        return Ok(V::B(true));
    }
    match r.truncated {
        Some(max) => Err(depth_error(policy, g, a, max)),
        None => Ok(V::B(false)),
    }
}

fn depth_error(policy: &CompiledPolicy, g: usize, from: &str, max: usize) -> String {
    let name = policy.roles.get(g).map(|r| r.name.as_str()).unwrap_or("g");
    format!(
        "role hierarchy `{name}` from `{from}` is deeper than {max} links (max_role_depth in engine.toml)"
    )
}

fn str_arg<'a>(v: V<'a>, what: &str) -> Result<&'a str, String> {
    match v {
        V::S(s) => Ok(s),
        other => Err(format!("{what} must be a string, found a {}", type_name(other))),
    }
}

fn call<'a>(
    func: Func,
    args: &'a [Expr],
    pat: &'a PatSrc,
    cx: &mut Cx<'a>,
    row: Option<&'a Row>,
) -> Result<V<'a>, String> {
    let key = str_arg(eval(&args[0], cx, row)?, "a matching function's first argument")?;
    let owned;
    let pattern: &Pattern = match pat {
        PatSrc::Site(s) => match row.and_then(|r| r.patterns.get(*s)) {
            Some(p) => p,
            None => {
                // No policy rows: the field is empty.
                owned = Pattern::compile(func, "")?;
                &owned
            }
        },
        PatSrc::Lit(p) => p,
        PatSrc::Dynamic => {
            let text = str_arg(eval(&args[1], cx, row)?, "a matching function's second argument")?;
            owned = Pattern::compile(func, text)?;
            &owned
        }
    };
    match func {
        Func::KeyGet => Ok(V::S(pattern.get(func, key, ""))),
        Func::KeyGet2 => {
            let var = str_arg(eval(&args[2], cx, row)?, "keyGet2's path variable")?;
            Ok(V::S(pattern.get(func, key, var)))
        }
        _ => Ok(V::B(pattern.matches(func, key)?)),
    }
}

/// Does the matcher hold for `row`? `indexed`: the row came through the rule index, so
/// only the residual (non-indexed) conjuncts are left to evaluate.
fn matches<'a>(cx: &mut Cx<'a>, row: Option<&'a Row>, indexed: bool) -> Result<bool, String> {
    let policy = cx.policy;
    let expr = if indexed {
        &policy.index.residual
    } else {
        &policy.matcher
    };
    Ok(truthy(eval(expr, cx, row)?))
}

/// Does `e` (one part of the matcher) hold for `row`? For near-miss explanations.
pub(crate) fn holds<'a>(e: &'a Expr, cx: &mut Cx<'a>, row: &'a Row) -> Result<bool, String> {
    Ok(truthy(eval(e, cx, Some(row))?))
}

/// Candidate rows for this request, in evaluation order; `None` means "all rows" (no
/// index, or a request value that is not a string: such a request is evaluated on every
/// row, so that any error it causes shows as it would without the index).
fn candidates<'a>(cx: &mut Cx<'a>) -> Result<Option<SmallVec<[u32; 32]>>, String> {
    let policy = cx.policy;
    let Some((_, k1)) = policy.index.key1.as_ref() else {
        return Ok(None);
    };
    if cx
        .req
        .iter()
        .any(|v| matches!(v, ReqVal::Json(j) if !j.is_string()))
    {
        return Ok(None);
    }
    Ok(candidates_indexed(cx, k1))
}

fn candidates_indexed<'a>(cx: &mut Cx<'a>, k1: &'a Key1) -> Option<SmallVec<[u32; 32]>> {
    let policy = cx.policy;
    let mut out: SmallVec<[u32; 32]> = SmallVec::new();
    let mut lists = 0usize;
    let k2 = policy.index.key2.as_ref();
    let k2vals: SmallVec<[&str; 2]> = match k2 {
        Some(k) => {
            let mut v = SmallVec::new();
            v.push(cx.req_str(k.req)?);
            if let Some(alt) = &k.alt {
                v.push(&**alt);
            }
            v
        }
        None => SmallVec::new(),
    };
    let mut take = |b: &Bucket, out: &mut SmallVec<[u32; 32]>| {
        if k2.is_some() {
            for v in &k2vals {
                if let Some(l) = b.by2.get(*v) {
                    out.extend_from_slice(l);
                    lists += 1;
                }
            }
        } else {
            out.extend_from_slice(&b.all);
            lists += 1;
        }
    };
    match k1 {
        Key1::Eq { req } => {
            let v = cx.req_str(*req)?;
            if let Some(b) = policy.index.buckets.get(v) {
                take(b, &mut out);
            }
        }
        Key1::Role { g, req, dom } => {
            let from = cx.req_str(*req)?;
            let d: &str = match dom {
                DomArg::None => "",
                DomArg::Req(i) => cx.req_str(*i)?,
                DomArg::Lit(s) => s,
            };
            let reach = cx.reach(*g, from, d)?;
            for (name, _, _) in &reach.nodes {
                if let Some(b) = policy.index.buckets.get(*name) {
                    take(b, &mut out);
                }
            }
            if reach.truncated.is_some() {
                // The walk stopped at the depth bound, so the candidates may be incomplete:
                // evaluate every row, where `g()` answers or reports the bound.
                return None;
            }
        }
    }
    if lists > 1 {
        out.sort_unstable();
        out.dedup();
    }
    Some(out)
}

fn effect_is(policy: &CompiledPolicy, effect: Effect) -> bool {
    policy.effect == effect
}

/// Decide one request.
pub fn decide<'a>(cx: &mut Cx<'a>) -> Result<Outcome, String> {
    let policy = cx.policy;
    if cx.req.len() != policy.r_tokens.len() {
        return Err(format!(
            "request has {} values, the model's request definition has {} ({})",
            cx.req.len(),
            policy.r_tokens.len(),
            policy.r_tokens.join(", ")
        ));
    }
    if policy.rows.is_empty() {
        // Casbin evaluates the matcher once with empty policy values; a match counts as an
        // allow, and with no rule there is no deny, so deny-override allows either way.
        let matched = matches(cx, None, false)?;
        return Ok(Outcome {
            allowed: matched || effect_is(policy, Effect::DenyOverride),
            rule: None,
        });
    }
    let effect = policy.effect;
    let mut first_allow: Option<u32> = None;
    let mut first_deny: Option<u32> = None;
    let mut visit = |cx: &mut Cx<'a>, i: u32, indexed: bool| -> Result<bool, String> {
        let row = &policy.rows[i as usize];
        if !matches(cx, Some(row), indexed)? {
            return Ok(false);
        }
        match row.eft {
            Eft::Allow => {
                first_allow.get_or_insert(i);
                Ok(matches!(
                    effect,
                    Effect::AllowOverride | Effect::Priority | Effect::SubjectPriority
                ))
            }
            Eft::Deny => {
                first_deny.get_or_insert(i);
                // Under allow-override a deny rule decides nothing: keep looking for an allow.
                Ok(effect != Effect::AllowOverride)
            }
            // Neither allows nor denies (Casbin's indeterminate effect).
            Eft::Indeterminate => Ok(false),
        }
    };
    let list = candidates(cx)?;
    match list {
        Some(list) => {
            for i in list {
                if visit(cx, i, true)? {
                    break;
                }
            }
        }
        None => {
            for i in 0..policy.rows.len() as u32 {
                if visit(cx, i, false)? {
                    break;
                }
            }
        }
    }
    Ok(match effect {
        Effect::AllowOverride => Outcome {
            allowed: first_allow.is_some(),
            rule: first_allow,
        },
        Effect::DenyOverride => Outcome {
            allowed: first_deny.is_none(),
            rule: first_deny,
        },
        Effect::AllowAndDeny => match first_deny {
            Some(d) => Outcome {
                allowed: false,
                rule: Some(d),
            },
            None => Outcome {
                allowed: first_allow.is_some(),
                rule: first_allow,
            },
        },
        Effect::Priority | Effect::SubjectPriority => match (first_allow, first_deny) {
            (Some(a), Some(d)) if d < a => Outcome {
                allowed: false,
                rule: Some(d),
            },
            (Some(a), _) => Outcome {
                allowed: true,
                rule: Some(a),
            },
            (None, d) => Outcome {
                allowed: false,
                rule: d,
            },
        },
    })
}
