//! The OpenFGA modeling language (DSL, schema 1.1): the module root. It re-exports the AST,
//! defines the error types, and offers the public entry points: [`parse`] (syntax only),
//! [`validate`] (the semantic rules OpenFGA's language package applies), [`parse_and_validate`]
//! (both, with precise error positions), and [`to_dsl`] (a canonical printer whose output parses
//! back to an equal model, spans aside).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod ast;
pub mod compiled;
mod parser;
pub mod plan;
pub mod typesystem;
mod validate;

pub use ast::*;
pub use parser::{MAX_DSL_BYTES, MAX_NESTING_DEPTH};
pub use typesystem::TypeSystem;

use std::fmt;

/// Which stage found an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelErrorKind {
    /// The text is not well-formed DSL (reported by [`parse`]).
    Syntax,
    /// The text is well-formed but the model breaks a rule (reported by [`validate`]).
    Semantic,
}

/// One problem in a model. `line` and `column` are **0-based** (as in OpenFGA's test cases);
/// `Display` prints them 1-based: `line L, column C: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", .line.saturating_add(1), .column.saturating_add(1))]
pub struct ModelError {
    pub kind: ModelErrorKind,
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl ModelError {
    pub(crate) fn syntax(span: Span, message: impl Into<String>) -> Self {
        Self {
            kind: ModelErrorKind::Syntax,
            message: message.into(),
            line: span.line,
            column: span.column,
        }
    }

    pub(crate) fn semantic(span: Span, message: impl Into<String>) -> Self {
        Self {
            kind: ModelErrorKind::Semantic,
            message: message.into(),
            line: span.line,
            column: span.column,
        }
    }
}

/// All the problems found in a model (never empty when returned as an `Err`). `Display` prints
/// one error per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_errors(.errors))]
pub struct ModelErrors {
    pub errors: Vec<ModelError>,
}

fn render_errors(errors: &[ModelError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl From<ModelError> for ModelErrors {
    fn from(error: ModelError) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

/// Parses DSL text into a [`Model`], checking syntax only (plus the few rules OpenFGA enforces
/// while parsing: `extend` only in modules, one `extend` per type). Never panics; rejects input
/// larger than [`MAX_DSL_BYTES`] and parentheses nested deeper than [`MAX_NESTING_DEPTH`].
///
/// A modular file (`module foo`) parses to a model whose `schema_version` is empty; [`validate`]
/// rejects it ("schema version required"), as OpenFGA does for a single module file.
pub fn parse(dsl: &str) -> Result<Model, ModelErrors> {
    parser::parse_with_source_map(dsl).map(|(model, _)| model)
}

/// Checks the semantic rules of a model (undefined types, relations and conditions, tupleset
/// relations that are not direct-only, duplicates, relations that can never resolve, unused
/// conditions, reserved and over-long names, schema version). Positions come from the spans in
/// the model; [`parse_and_validate`] reports more precise positions.
pub fn validate(model: &Model) -> Result<(), ModelErrors> {
    validate::validate_model(model, None)
}

/// [`parse`] then [`validate`]; semantic errors point at the exact token in the source.
pub fn parse_and_validate(dsl: &str) -> Result<Model, ModelErrors> {
    let (model, source_map) = parser::parse_with_source_map(dsl)?;
    validate::validate_model(&model, Some(&source_map))?;
    Ok(model)
}

/// Prints a model as canonical DSL: `model`/`schema` header, then each type (with its relations
/// under `relations`), then each condition, separated by blank lines. For a model that
/// [`parse_and_validate`] accepted, the output is accepted again and parses to an equal model
/// (spans aside).
pub fn to_dsl(model: &Model) -> String {
    let mut out = String::new();
    let schema = if model.schema_version.is_empty() {
        "1.1"
    } else {
        model.schema_version.as_str()
    };
    out.push_str("model\n  schema ");
    out.push_str(schema);
    out.push('\n');
    for type_def in &model.types {
        out.push_str("\ntype ");
        out.push_str(&type_def.name);
        out.push('\n');
        if !type_def.relations.is_empty() {
            out.push_str("  relations\n");
            for relation in &type_def.relations {
                out.push_str("    define ");
                out.push_str(&relation.name);
                out.push_str(": ");
                write_rewrite(&mut out, &relation.rewrite, &relation.directly_related);
                out.push('\n');
            }
        }
    }
    for condition in &model.conditions {
        out.push_str("\ncondition ");
        out.push_str(&condition.name);
        out.push('(');
        let params: Vec<String> = condition
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.param_type))
            .collect();
        out.push_str(&params.join(", "));
        out.push_str(") {\n  ");
        out.push_str(&condition.expression);
        out.push_str("\n}\n");
    }
    out
}

fn write_rewrite(out: &mut String, rewrite: &Rewrite, direct: &[TypeRestriction]) {
    match rewrite {
        Rewrite::This => {
            out.push('[');
            let items: Vec<String> = direct.iter().map(ToString::to_string).collect();
            out.push_str(&items.join(", "));
            out.push(']');
        }
        Rewrite::Computed(name) => out.push_str(name),
        Rewrite::TupleToUserset { tupleset, computed } => {
            out.push_str(computed);
            out.push_str(" from ");
            out.push_str(tupleset);
        }
        Rewrite::Union(children) | Rewrite::Intersection(children) => {
            let op = if matches!(rewrite, Rewrite::Union(_)) {
                " or "
            } else {
                " and "
            };
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    out.push_str(op);
                }
                write_operand(out, child, direct);
            }
        }
        Rewrite::Exclusion { base, subtract } => {
            write_operand(out, base, direct);
            out.push_str(" but not ");
            write_operand(out, subtract, direct);
        }
    }
}

fn write_operand(out: &mut String, rewrite: &Rewrite, direct: &[TypeRestriction]) {
    let grouped = matches!(
        rewrite,
        Rewrite::Union(_) | Rewrite::Intersection(_) | Rewrite::Exclusion { .. }
    );
    if grouped {
        out.push('(');
    }
    write_rewrite(out, rewrite, direct);
    if grouped {
        out.push(')');
    }
}

impl fmt::Display for TypeRestriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.type_name)?;
        match &self.kind {
            RestrictionKind::Direct => {}
            RestrictionKind::Wildcard => f.write_str(":*")?,
            RestrictionKind::Userset(relation) => write!(f, "#{relation}")?,
        }
        if let Some(condition) = &self.condition {
            write!(f, " with {condition}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::Int => f.write_str("int"),
            ParamType::Uint => f.write_str("uint"),
            ParamType::Double => f.write_str("double"),
            ParamType::Bool => f.write_str("bool"),
            ParamType::String => f.write_str("string"),
            ParamType::Duration => f.write_str("duration"),
            ParamType::Timestamp => f.write_str("timestamp"),
            ParamType::IpAddress => f.write_str("ipaddress"),
            ParamType::Any => f.write_str("any"),
            ParamType::List(inner) => write!(f, "list<{inner}>"),
            ParamType::Map(inner) => write!(f, "map<{inner}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, group#member with c] or owner\n    define owner: [user:*]\ncondition c(x: map<int>) {\n  x[\"a\"] > 1\n}\n";

    #[test]
    fn error_display_is_one_based() {
        let err = ModelError::syntax(
            Span {
                line: 0,
                column: 4,
                end_column: 5,
            },
            "boom",
        );
        assert_eq!(err.to_string(), "line 1, column 5: boom");
    }

    #[test]
    fn errors_display_one_line_each() {
        let errs =
            parse_and_validate("model\n  schema 1.1\ntype a\ntype self\ntype this\n").unwrap_err();
        let text = errs.to_string();
        assert_eq!(text.lines().count(), errs.errors.len());
        assert_eq!(errs.errors.len(), 2);
        assert!(text.starts_with("line 4, column 6: "), "{text}");
    }

    #[test]
    fn to_dsl_round_trips() {
        let model = parse_and_validate(SAMPLE).unwrap();
        let printed = to_dsl(&model);
        let again = parse_and_validate(&printed).unwrap();
        assert_eq!(to_dsl(&again), printed);
        assert_eq!(
            model.conditions[0].expression,
            again.conditions[0].expression
        );
        assert_eq!(model.conditions[0].params, again.conditions[0].params);
        assert_eq!(model.types.len(), again.types.len());
    }

    #[test]
    fn to_dsl_parenthesises_nested_operators() {
        let dsl = "model\n  schema 1.1\ntype user\n  relations\n    define a: [user]\n    define b: [user]\n    define c: ([user] or a) and (b but not (a or b))\n";
        let model = parse_and_validate(dsl).unwrap();
        let printed = to_dsl(&model);
        assert!(
            printed.contains("define c: ([user] or a) and (b but not (a or b))"),
            "{printed}"
        );
    }

    #[test]
    fn validate_without_source_map_agrees() {
        let model = parse(SAMPLE).unwrap();
        validate(&model).unwrap();
        let bad = parse("model\n  schema 1.1\ntype user\n  relations\n    define a: b\n").unwrap();
        let errs = validate(&bad).unwrap_err();
        assert_eq!(errs.errors[0].line, 4);
        assert_eq!(errs.errors[0].kind, ModelErrorKind::Semantic);
    }
}
