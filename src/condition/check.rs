//! The model-write-time checks OpenFGA gets from cel-go's type checker, re-done over the cel
//! crate's AST: every identifier is a declared parameter, a comprehension variable or a type
//! name; every function is one of cel-go's standard library (plus OpenFGA's `ipaddress` and
//! `in_cidr`); a call whose argument types are all known matches one of the function's
//! overloads; and the expression's type, where known, is `bool`.
//!
//! Types are inferred bottom-up. `dyn` (an `any` parameter, an element of a `list<any>`, or
//! what the inference cannot tell) matches anything, so the checker only refuses what cel-go
//! certainly refuses; it is lenient elsewhere (e.g. it accepts a `dyn` result, which cel-go's
//! `OutputType() == bool` test refuses, and it treats `null` as comparable to anything).

use std::collections::HashMap;
use std::fmt;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::ParamType;

/// A CEL type as far as the checker tracks it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Duration,
    Timestamp,
    IpAddress,
    Type,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Dyn,
}

impl Ty {
    pub(crate) fn of_param(ty: &ParamType) -> Ty {
        match ty {
            ParamType::Int => Ty::Int,
            ParamType::Uint => Ty::Uint,
            ParamType::Double => Ty::Double,
            ParamType::Bool => Ty::Bool,
            ParamType::String => Ty::String,
            ParamType::Duration => Ty::Duration,
            ParamType::Timestamp => Ty::Timestamp,
            ParamType::IpAddress => Ty::IpAddress,
            ParamType::Any => Ty::Dyn,
            ParamType::List(t) => Ty::List(Box::new(Ty::of_param(t))),
            ParamType::Map(t) => Ty::Map(Box::new(Ty::String), Box::new(Ty::of_param(t))),
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Null => f.write_str("null_type"),
            Ty::Duration => f.write_str("google.protobuf.Duration"),
            Ty::Timestamp => f.write_str("google.protobuf.Timestamp"),
            Ty::IpAddress => f.write_str("IPAddress"),
            Ty::Type => f.write_str("type"),
            Ty::List(t) => write!(f, "list({t})"),
            Ty::Map(k, v) => write!(f, "map({k}, {v})"),
            Ty::Dyn => f.write_str("dyn"),
        }
    }
}

/// An argument pattern of an overload: a type, or one built from the type parameters `A`, `B`.
#[derive(Clone, Copy)]
enum P {
    C(&'static Ty),
    A,
    ListA,
    MapAB,
}

/// A result of an overload.
#[derive(Clone, Copy)]
enum R {
    C(&'static Ty),
    A,
    B,
    ListA,
}

/// One overload: receiver-style or global, its argument patterns, its result.
type Overload = (bool, &'static [P], R);

const BOOL: P = P::C(&Ty::Bool);
const INT: P = P::C(&Ty::Int);
const UINT: P = P::C(&Ty::Uint);
const DOUBLE: P = P::C(&Ty::Double);
const STRING: P = P::C(&Ty::String);
const BYTES: P = P::C(&Ty::Bytes);
const DURATION: P = P::C(&Ty::Duration);
const TIMESTAMP: P = P::C(&Ty::Timestamp);
const IPADDRESS: P = P::C(&Ty::IpAddress);

const R_BOOL: R = R::C(&Ty::Bool);
const R_INT: R = R::C(&Ty::Int);
const R_UINT: R = R::C(&Ty::Uint);
const R_DOUBLE: R = R::C(&Ty::Double);
const R_STRING: R = R::C(&Ty::String);
const R_BYTES: R = R::C(&Ty::Bytes);
const R_DURATION: R = R::C(&Ty::Duration);
const R_TIMESTAMP: R = R::C(&Ty::Timestamp);

/// The overloads cel-go's standard library (and OpenFGA's ipaddress library) declares for
/// `function`; `None` if it declares no such function.
fn overloads(function: &str) -> Option<&'static [Overload]> {
    const COMPARE: &[Overload] = &[
        (false, &[BOOL, BOOL], R_BOOL),
        (false, &[INT, INT], R_BOOL),
        (false, &[INT, UINT], R_BOOL),
        (false, &[INT, DOUBLE], R_BOOL),
        (false, &[UINT, INT], R_BOOL),
        (false, &[UINT, UINT], R_BOOL),
        (false, &[UINT, DOUBLE], R_BOOL),
        (false, &[DOUBLE, INT], R_BOOL),
        (false, &[DOUBLE, UINT], R_BOOL),
        (false, &[DOUBLE, DOUBLE], R_BOOL),
        (false, &[STRING, STRING], R_BOOL),
        (false, &[BYTES, BYTES], R_BOOL),
        (false, &[TIMESTAMP, TIMESTAMP], R_BOOL),
        (false, &[DURATION, DURATION], R_BOOL),
    ];
    const MUL_DIV: &[Overload] = &[
        (false, &[INT, INT], R_INT),
        (false, &[UINT, UINT], R_UINT),
        (false, &[DOUBLE, DOUBLE], R_DOUBLE),
    ];
    const TIME_PARTS: &[Overload] = &[
        (true, &[TIMESTAMP], R_INT),
        (true, &[TIMESTAMP, STRING], R_INT),
    ];
    const CLOCK_PARTS: &[Overload] = &[
        (true, &[TIMESTAMP], R_INT),
        (true, &[TIMESTAMP, STRING], R_INT),
        (true, &[DURATION], R_INT),
    ];
    const SIZE: &[Overload] = &[
        (false, &[STRING], R_INT),
        (false, &[BYTES], R_INT),
        (false, &[P::ListA], R_INT),
        (false, &[P::MapAB], R_INT),
        (true, &[STRING], R_INT),
        (true, &[BYTES], R_INT),
        (true, &[P::ListA], R_INT),
        (true, &[P::MapAB], R_INT),
    ];
    const STRING_TEST: &[Overload] = &[(true, &[STRING, STRING], R_BOOL)];
    Some(match function {
        "_==_" | "_!=_" => &[(false, &[P::A, P::A], R_BOOL)],
        "_<_" | "_<=_" | "_>_" | "_>=_" => COMPARE,
        "_&&_" | "_||_" => &[(false, &[BOOL, BOOL], R_BOOL)],
        "!_" | "@not_strictly_false" => &[(false, &[BOOL], R_BOOL)],
        "-_" => &[(false, &[INT], R_INT), (false, &[DOUBLE], R_DOUBLE)],
        "_?_:_" => &[(false, &[BOOL, P::A, P::A], R::A)],
        "_+_" => &[
            (false, &[INT, INT], R_INT),
            (false, &[UINT, UINT], R_UINT),
            (false, &[DOUBLE, DOUBLE], R_DOUBLE),
            (false, &[STRING, STRING], R_STRING),
            (false, &[BYTES, BYTES], R_BYTES),
            (false, &[P::ListA, P::ListA], R::ListA),
            (false, &[TIMESTAMP, DURATION], R_TIMESTAMP),
            (false, &[DURATION, TIMESTAMP], R_TIMESTAMP),
            (false, &[DURATION, DURATION], R_DURATION),
        ],
        "_-_" => &[
            (false, &[INT, INT], R_INT),
            (false, &[UINT, UINT], R_UINT),
            (false, &[DOUBLE, DOUBLE], R_DOUBLE),
            (false, &[TIMESTAMP, TIMESTAMP], R_DURATION),
            (false, &[TIMESTAMP, DURATION], R_TIMESTAMP),
            (false, &[DURATION, DURATION], R_DURATION),
        ],
        "_*_" | "_/_" => MUL_DIV,
        "_%_" => &[(false, &[INT, INT], R_INT), (false, &[UINT, UINT], R_UINT)],
        "_[_]" => &[
            (false, &[P::ListA, INT], R::A),
            (false, &[P::MapAB, P::A], R::B),
        ],
        "@in" => &[
            (false, &[P::A, P::ListA], R_BOOL),
            (false, &[P::A, P::MapAB], R_BOOL),
        ],
        "size" => SIZE,
        "contains" | "startsWith" | "endsWith" => STRING_TEST,
        "matches" => &[
            (false, &[STRING, STRING], R_BOOL),
            (true, &[STRING, STRING], R_BOOL),
        ],
        "int" => &[
            (false, &[INT], R_INT),
            (false, &[UINT], R_INT),
            (false, &[DOUBLE], R_INT),
            (false, &[STRING], R_INT),
            (false, &[TIMESTAMP], R_INT),
            (false, &[DURATION], R_INT),
        ],
        "uint" => &[
            (false, &[INT], R_UINT),
            (false, &[UINT], R_UINT),
            (false, &[DOUBLE], R_UINT),
            (false, &[STRING], R_UINT),
        ],
        "double" => &[
            (false, &[INT], R_DOUBLE),
            (false, &[UINT], R_DOUBLE),
            (false, &[DOUBLE], R_DOUBLE),
            (false, &[STRING], R_DOUBLE),
        ],
        "string" => &[
            (false, &[INT], R_STRING),
            (false, &[UINT], R_STRING),
            (false, &[DOUBLE], R_STRING),
            (false, &[BOOL], R_STRING),
            (false, &[BYTES], R_STRING),
            (false, &[STRING], R_STRING),
            (false, &[TIMESTAMP], R_STRING),
            (false, &[DURATION], R_STRING),
        ],
        "bytes" => &[(false, &[BYTES], R_BYTES), (false, &[STRING], R_BYTES)],
        "bool" => &[(false, &[BOOL], R_BOOL), (false, &[STRING], R_BOOL)],
        "duration" => &[
            (false, &[STRING], R_DURATION),
            (false, &[INT], R_DURATION),
            (false, &[DURATION], R_DURATION),
        ],
        "timestamp" => &[
            (false, &[STRING], R_TIMESTAMP),
            (false, &[INT], R_TIMESTAMP),
            (false, &[TIMESTAMP], R_TIMESTAMP),
        ],
        "dyn" => &[(false, &[P::A], R::C(&Ty::Dyn))],
        "type" => &[(false, &[P::A], R::C(&Ty::Type))],
        "getFullYear" | "getMonth" | "getDayOfYear" | "getDayOfMonth" | "getDate"
        | "getDayOfWeek" => TIME_PARTS,
        "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds" => CLOCK_PARTS,
        "in_cidr" => &[(true, &[IPADDRESS, STRING], R_BOOL)],
        "ipaddress" => &[(false, &[STRING], R::C(&Ty::IpAddress))],
        _ => return None,
    })
}

/// The identifiers that name types (`type(x) == int`).
const TYPE_NAMES: &[&str] = &[
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "google.protobuf.Duration",
    "google.protobuf.Timestamp",
];

/// `a` and `b` as one type, if they can be one: equal, or either `dyn` (or `null`).
fn unify(a: &Ty, b: &Ty) -> Option<Ty> {
    match (a, b) {
        (Ty::Dyn, t) | (t, Ty::Dyn) => Some(t.clone()),
        (Ty::Null, t) | (t, Ty::Null) => Some(t.clone()),
        (Ty::List(x), Ty::List(y)) => Some(Ty::List(Box::new(unify(x, y)?))),
        (Ty::Map(k1, v1), Ty::Map(k2, v2)) => {
            Some(Ty::Map(Box::new(unify(k1, k2)?), Box::new(unify(v1, v2)?)))
        }
        (x, y) if x == y => Some(x.clone()),
        _ => None,
    }
}

/// The type of a literal list's or map's elements: their common type, else `dyn`.
fn join(types: impl IntoIterator<Item = Ty>) -> Ty {
    let mut joined: Option<Ty> = None;
    for t in types {
        joined = Some(match joined {
            None => t,
            Some(j) => unify(&j, &t).unwrap_or(Ty::Dyn),
        });
    }
    joined.unwrap_or(Ty::Dyn)
}

/// Binds pattern `p` to `actual`, updating the type parameters; `false` if it cannot match.
fn bind(p: P, actual: &Ty, a: &mut Ty, b: &mut Ty) -> bool {
    let bind_param = |param: &mut Ty, t: &Ty| match unify(param, t) {
        Some(u) => {
            *param = u;
            true
        }
        None => false,
    };
    match p {
        P::C(t) => unify(t, actual).is_some(),
        P::A => bind_param(a, actual),
        P::ListA => match actual {
            Ty::List(e) => bind_param(a, e),
            Ty::Dyn => true,
            _ => false,
        },
        P::MapAB => match actual {
            Ty::Map(k, v) => bind_param(a, k) && bind_param(b, v),
            Ty::Dyn => true,
            _ => false,
        },
    }
}

/// The result type of `function` applied to `args` (the receiver first for a member call), or
/// cel-go's complaint.
fn call_type(function: &str, member: bool, args: &[Ty]) -> Result<Ty, String> {
    let candidates = overloads(function)
        .ok_or_else(|| format!("undeclared reference to '{function}' (in container '')"))?;
    let mut result: Option<Ty> = None;
    let mut matched = false;
    for (is_member, params, ret) in candidates {
        if *is_member != member || params.len() != args.len() {
            continue;
        }
        let (mut a, mut b) = (Ty::Dyn, Ty::Dyn);
        if !params
            .iter()
            .zip(args)
            .all(|(p, t)| bind(*p, t, &mut a, &mut b))
        {
            continue;
        }
        let ty = match ret {
            R::C(t) => (*t).clone(),
            R::A => a,
            R::B => b,
            R::ListA => Ty::List(Box::new(a)),
        };
        // Several overloads match only where an argument is `dyn`: keep what they agree on.
        result = Some(match (matched, result) {
            (false, _) | (true, None) => ty,
            (true, Some(r)) if r == ty => r,
            (true, Some(_)) => Ty::Dyn,
        });
        matched = true;
    }
    result.ok_or_else(|| {
        let list = |ts: &[Ty]| ts.iter().map(Ty::to_string).collect::<Vec<_>>().join(", ");
        let applied = match args.split_first() {
            Some((receiver, rest)) if member => format!("{receiver}.({})", list(rest)),
            _ => format!("({})", list(args)),
        };
        format!("found no matching overload for '{function}' applied to '{applied}'")
    })
}

/// The checker: the declared parameters' types, and the comprehension variables in scope.
pub(crate) struct Checker<'a> {
    params: &'a HashMap<String, Ty>,
    scopes: Vec<(String, Ty)>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(params: &'a HashMap<String, Ty>) -> Self {
        Self {
            params,
            scopes: Vec::new(),
        }
    }

    fn lookup(&self, name: &str) -> Option<Ty> {
        if let Some((_, t)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return Some(t.clone());
        }
        if let Some(t) = self.params.get(name) {
            return Some(t.clone());
        }
        TYPE_NAMES.contains(&name).then_some(Ty::Type)
    }

    /// The type of `expr`, or the first error found in it.
    pub(crate) fn check(&mut self, expr: &IdedExpr) -> Result<Ty, String> {
        match &expr.expr {
            Expr::Unspecified => Err("unspecified expression".to_owned()),
            Expr::Literal(l) => Ok(match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            }),
            Expr::Ident(name) => self
                .lookup(name)
                .ok_or_else(|| format!("undeclared reference to '{name}' (in container '')")),
            Expr::Select(select) => {
                if let Some(name) = qualified_name(expr)
                    && let Some(t) = self.lookup(&name)
                    && !select.test
                {
                    return Ok(t);
                }
                let operand = self.check(&select.operand)?;
                let field_type = match operand {
                    Ty::Map(_, v) => *v,
                    Ty::Dyn => Ty::Dyn,
                    other => {
                        return Err(format!("type '{other}' does not support field selection"));
                    }
                };
                Ok(if select.test { Ty::Bool } else { field_type })
            }
            Expr::Call(call) => {
                let mut args = Vec::with_capacity(call.args.len() + 1);
                if let Some(target) = &call.target {
                    args.push(self.check(target)?);
                }
                for a in &call.args {
                    args.push(self.check(a)?);
                }
                call_type(&call.func_name, call.target.is_some(), &args)
            }
            Expr::List(list) => {
                if !list.optional_indices.is_empty() {
                    return Err("optional list elements are not supported".to_owned());
                }
                let mut types = Vec::with_capacity(list.elements.len());
                for e in &list.elements {
                    types.push(self.check(e)?);
                }
                Ok(Ty::List(Box::new(join(types))))
            }
            Expr::Map(map) => {
                let (mut keys, mut values) = (Vec::new(), Vec::new());
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) if !e.optional => {
                            keys.push(self.check(&e.key)?);
                            values.push(self.check(&e.value)?);
                        }
                        _ => return Err("unsupported map entry".to_owned()),
                    }
                }
                Ok(Ty::Map(Box::new(join(keys)), Box::new(join(values))))
            }
            Expr::Struct(s) => Err(format!(
                "undeclared reference to '{}' (in container '')",
                s.type_name
            )),
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range)?;
                let (var1, var2) = match (&range, &c.iter_var2) {
                    (Ty::List(e), None) => ((**e).clone(), None),
                    (Ty::List(e), Some(_)) => (Ty::Int, Some((**e).clone())),
                    (Ty::Map(k, _), None) => ((**k).clone(), None),
                    (Ty::Map(k, v), Some(_)) => ((**k).clone(), Some((**v).clone())),
                    (Ty::Dyn, v2) => (Ty::Dyn, v2.as_ref().map(|_| Ty::Dyn)),
                    (other, _) => {
                        return Err(format!(
                            "expression of type '{other}' cannot be range of a comprehension \
                             (must be list, map, or dynamic)"
                        ));
                    }
                };
                let init = self.check(&c.accu_init)?;
                let depth = self.scopes.len();
                self.scopes.push((c.accu_var.clone(), init.clone()));
                self.scopes.push((c.iter_var.clone(), var1));
                if let (Some(name), Some(t)) = (&c.iter_var2, var2) {
                    self.scopes.push((name.clone(), t));
                }
                let body = self
                    .check(&c.loop_cond)
                    .and_then(|_| self.check(&c.loop_step));
                self.scopes.truncate(depth);
                let step = body?;
                // `map` starts from `[]`: its step tells the element type.
                let accu = unify(&init, &step).unwrap_or(Ty::Dyn);
                self.scopes.push((c.accu_var.clone(), accu));
                let result = self.check(&c.result);
                self.scopes.truncate(depth);
                result
            }
        }
    }
}

/// `a.b.c` as one name, if `expr` is a chain of field selections on an identifier.
fn qualified_name(expr: &IdedExpr) -> Option<String> {
    match &expr.expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Select(s) if !s.test => {
            qualified_name(&s.operand).map(|prefix| format!("{prefix}.{}", s.field))
        }
        _ => None,
    }
}
