//! An upper bound of an expression's evaluation cost, in the units of cel-go's runtime cost
//! (which OpenFGA limits with `OPENFGA_MAX_CONDITION_EVALUATION_COST`, default 100):
//!
//! | node | cost |
//! |---|---|
//! | literal | 0 |
//! | identifier, field selection | 1 (plus the operand's) |
//! | function or operator call | 1 plus its arguments' (both branches of `&&`, `\|\|`, `?:`) |
//! | `contains`, `startsWith`, `endsWith`, `matches`, `==`, `!=`, `+` | 1 + ⌈(sizes of the operands) / 10⌉ more: they traverse strings and lists |
//! | `x in list` | 1 + the size of the list more |
//! | list literal / map literal | 10 / 30 plus its elements' |
//! | comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) | range + init + *n* × (loop condition + loop step) + result, *n* the size of the range |
//!
//! The size of a parameter is that of its value (elements of a list or map, bytes of a string);
//! of a literal, its own; of `a + b`, the sum; of a `map`/`filter`, its range's; of anything
//! else (an element, a field, a function's result), the largest size of any string, list or map
//! found anywhere in the parameter values or the expression's literals. The bound assumes every
//! iteration runs and no operator short-circuits, so it is never below what evaluation does
//! (barring strings built by concatenation inside a comprehension), and may be above it:
//! `exists` over a long list is refused even when its first element satisfies it.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use serde_json::Value as Json;

/// The sizes the cost depends on.
pub(crate) struct Sizes<'a> {
    /// Each bound parameter and the size of its value.
    pub(crate) params: &'a [(&'a str, u64)],
    /// The size assumed for a value of unknown size.
    pub(crate) fallback: u64,
}

/// The size of a JSON value as bound to a parameter.
pub(crate) fn json_size(v: &Json) -> u64 {
    let len = match v {
        Json::String(s) => s.len(),
        Json::Array(a) => a.len(),
        Json::Object(o) => o.len(),
        _ => 0,
    };
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// The largest size of any string, list or map within `v`, `v` included.
pub(crate) fn json_max_size(v: &Json) -> u64 {
    let inner = match v {
        Json::Array(a) => a.iter().map(json_max_size).max().unwrap_or(0),
        Json::Object(o) => o
            .iter()
            .map(|(k, v)| json_max_size(v).max(u64::try_from(k.len()).unwrap_or(u64::MAX)))
            .max()
            .unwrap_or(0),
        _ => 0,
    };
    inner.max(json_size(v))
}

/// The largest size of a literal string, list or map in `expr`.
pub(crate) fn literal_max_size(expr: &IdedExpr) -> u64 {
    let mut max = 0;
    walk(expr, &mut |e| {
        let size = match e {
            Expr::Literal(LiteralValue::String(s)) => s.inner().len(),
            Expr::Literal(LiteralValue::Bytes(b)) => b.inner().len(),
            Expr::List(l) => l.elements.len(),
            Expr::Map(m) => m.entries.len(),
            _ => 0,
        };
        max = max.max(u64::try_from(size).unwrap_or(u64::MAX));
    });
    max
}

/// Whether the cost of `expr` depends on the sizes of the parameter values.
pub(crate) fn depends_on_sizes(expr: &IdedExpr) -> bool {
    let mut depends = false;
    walk(expr, &mut |e| match e {
        Expr::Comprehension(_) => depends = true,
        Expr::Call(c) if size_dependent(&c.func_name) || c.func_name == "@in" => depends = true,
        _ => {}
    });
    depends
}

fn size_dependent(function: &str) -> bool {
    matches!(
        function,
        "contains" | "startsWith" | "endsWith" | "matches" | "_==_" | "_!=_" | "_+_"
    )
}

/// The sub-expressions of `expr`.
pub(crate) fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Expr::Call(c) => c.target.iter().map(|t| &**t).chain(c.args.iter()).collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m
            .entries
            .iter()
            .flat_map(|e| entry_children(&e.expr))
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .flat_map(|e| entry_children(&e.expr))
            .collect(),
        Expr::Select(s) => vec![&*s.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_children(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
        EntryExpr::StructField(s) => vec![&s.value],
    }
}

/// Calls `f` on every node of `expr`, without recursion.
fn walk(expr: &IdedExpr, f: &mut impl FnMut(&Expr)) {
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        f(&e.expr);
        stack.extend(children(e));
    }
}

/// The depth of the tree of `expr` (1 for a leaf), without recursion.
pub(crate) fn depth(expr: &IdedExpr) -> usize {
    let mut max = 0;
    let mut stack = vec![(expr, 1)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        stack.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    max
}

/// The estimator: sizes of the parameters and of the comprehension variables in scope.
pub(crate) struct Estimator<'a> {
    sizes: Sizes<'a>,
    scopes: Vec<(&'a str, u64)>,
}

impl<'a> Estimator<'a> {
    pub(crate) fn new(sizes: Sizes<'a>) -> Self {
        Self {
            sizes,
            scopes: Vec::new(),
        }
    }

    /// An upper bound of the size of the value of `expr`.
    fn size(&self, expr: &IdedExpr) -> u64 {
        match &expr.expr {
            Expr::Literal(LiteralValue::String(s)) => len(s.inner().len()),
            Expr::Literal(LiteralValue::Bytes(b)) => len(b.inner().len()),
            Expr::Literal(_) => 0,
            Expr::List(l) => len(l.elements.len()),
            Expr::Map(m) => len(m.entries.len()),
            Expr::Ident(name) => self
                .scopes
                .iter()
                .rev()
                .chain(self.sizes.params.iter())
                .find(|(n, _)| n == name)
                .map_or(self.sizes.fallback, |(_, s)| *s),
            Expr::Call(c) if c.func_name == "_+_" && c.args.len() == 2 => c
                .args
                .iter()
                .fold(0u64, |acc, a| acc.saturating_add(self.size(a))),
            Expr::Call(c) if c.func_name == "_?_:_" && c.args.len() == 3 => {
                c.args[1..].iter().map(|a| self.size(a)).max().unwrap_or(0)
            }
            Expr::Comprehension(c) => self.size(&c.iter_range),
            _ => self.sizes.fallback,
        }
    }

    /// An upper bound of the cost of evaluating `expr`.
    pub(crate) fn cost(&mut self, expr: &'a IdedExpr) -> u64 {
        match &expr.expr {
            Expr::Literal(_) | Expr::Unspecified => 0,
            Expr::Ident(_) => 1,
            Expr::Select(s) => self.cost(&s.operand).saturating_add(1),
            Expr::List(l) => l
                .elements
                .iter()
                .fold(10u64, |acc, e| acc.saturating_add(self.cost(e))),
            Expr::Map(m) => {
                let mut total = 30u64;
                for entry in &m.entries {
                    total = total.saturating_add(self.entry_cost(&entry.expr));
                }
                total
            }
            Expr::Struct(s) => {
                let mut total = 40u64;
                for entry in &s.entries {
                    total = total.saturating_add(self.entry_cost(&entry.expr));
                }
                total
            }
            Expr::Call(c) => {
                let mut total = 1u64;
                if let Some(t) = &c.target {
                    total = total.saturating_add(self.cost(t));
                }
                for a in &c.args {
                    total = total.saturating_add(self.cost(a));
                }
                let operand_sizes = || {
                    c.target
                        .iter()
                        .map(|t| &**t)
                        .chain(c.args.iter())
                        .fold(0u64, |acc, a| acc.saturating_add(self.size(a)))
                };
                if size_dependent(&c.func_name) {
                    total = total.saturating_add(operand_sizes().div_ceil(10));
                } else if c.func_name == "@in"
                    && let Some(container) = c.args.get(1)
                {
                    total = total.saturating_add(self.size(container));
                }
                total
            }
            Expr::Comprehension(c) => {
                let n = self.size(&c.iter_range);
                let outer = self
                    .cost(&c.iter_range)
                    .saturating_add(self.cost(&c.accu_init));
                let depth = self.scopes.len();
                self.scopes.push((c.accu_var.as_str(), n));
                self.scopes.push((c.iter_var.as_str(), self.sizes.fallback));
                if let Some(v2) = &c.iter_var2 {
                    self.scopes.push((v2.as_str(), self.sizes.fallback));
                }
                let per_iteration = self
                    .cost(&c.loop_cond)
                    .saturating_add(self.cost(&c.loop_step));
                self.scopes.truncate(depth);
                self.scopes.push((c.accu_var.as_str(), n));
                let result = self.cost(&c.result);
                self.scopes.truncate(depth);
                outer
                    .saturating_add(n.saturating_mul(per_iteration))
                    .saturating_add(result)
            }
        }
    }

    fn entry_cost(&mut self, entry: &'a EntryExpr) -> u64 {
        match entry {
            EntryExpr::MapEntry(e) => self.cost(&e.key).saturating_add(self.cost(&e.value)),
            EntryExpr::StructField(s) => self.cost(&s.value),
        }
    }
}

fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
