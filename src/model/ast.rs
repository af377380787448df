//! The abstract syntax of an OpenFGA schema 1.1 model, as the parser produces it and the
//! validator checks it. Everything downstream (store, index, engine) consumes these types.
//!
//! Invariant (after `validate`): every name a rewrite or type restriction mentions exists, every
//! tupleset relation of a `X from Y` is a direct-only relation, and every condition a type
//! restriction names is declared.

use serde::{Deserialize, Serialize};

/// A position in the DSL source. Lines and columns are **0-based** (as in OpenFGA's
/// language test cases); the CLI prints them 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    /// Column one past the end of the token on `line` (for error highlighting).
    pub end_column: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// `"1.1"` (or `"1.2"` for modular models, if supported).
    pub schema_version: String,
    /// Types in declaration order.
    pub types: Vec<TypeDef>,
    /// Conditions in declaration order.
    pub conditions: Vec<ConditionDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeDef {
    pub name: String,
    /// Relations in declaration order.
    pub relations: Vec<RelationDef>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationDef {
    pub name: String,
    pub rewrite: Rewrite,
    /// The type restrictions of the (single) direct assignment `[...]` in the rewrite; empty when
    /// the rewrite has no `Rewrite::This`.
    pub directly_related: Vec<TypeRestriction>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RestrictionKind {
    /// `user`
    Direct,
    /// `user:*`
    Wildcard,
    /// `group#member`
    Userset(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TypeRestriction {
    pub type_name: String,
    pub kind: RestrictionKind,
    /// `user with cond`
    pub condition: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Rewrite {
    /// The direct assignment `[...]`; its restrictions are in `RelationDef::directly_related`.
    This,
    /// `viewer` — another relation on the same object.
    Computed(String),
    /// `viewer from parent` — `computed` on every object related by `tupleset`.
    TupleToUserset {
        tupleset: String,
        computed: String,
    },
    Union(Vec<Rewrite>),
    Intersection(Vec<Rewrite>),
    /// `base but not subtract`
    Exclusion {
        base: Box<Rewrite>,
        subtract: Box<Rewrite>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParamType {
    Int,
    Uint,
    Double,
    Bool,
    String,
    Duration,
    Timestamp,
    IpAddress,
    Any,
    List(Box<ParamType>),
    Map(Box<ParamType>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionParam {
    pub name: String,
    pub param_type: ParamType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionDef {
    pub name: String,
    pub params: Vec<ConditionParam>,
    /// The CEL body, verbatim, without the surrounding braces (trimmed).
    pub expression: String,
    pub span: Span,
}
