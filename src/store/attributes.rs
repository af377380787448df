//! Attributes: literal values on a node (`<document/d1> ex:classification "secret"`,
//! `<user/anne> ex:clearance 3`), read from every data graph and typed by their datatype, so
//! that conditions can use them.

use super::{Store, StoreError, nn};
use crate::iri::{LOG_GRAPH, MODELS_GRAPH, NS};
use crate::tuple::ObjectRef;
use oxigraph::model::{GraphName, Literal, Term};
use serde::Serialize;

const XSD: &str = "http://www.w3.org/2001/XMLSchema#";

/// A literal value, typed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum AttributeValue {
    /// `xsd:integer` and its subtypes, `xsd:decimal`, `xsd:double`, `xsd:float`.
    Number(serde_json::Number),
    Boolean(bool),
    /// `xsd:string`, language-tagged strings (without their tag) and plain literals.
    String(String),
    /// `xsd:dateTime`, `xsd:date`, `xsd:dateTimeStamp`, as written (ISO 8601).
    #[serde(rename = "datetime")]
    DateTime(String),
    /// `xsd:duration`, `xsd:dayTimeDuration`, `xsd:yearMonthDuration`, as written (ISO 8601).
    Duration(String),
    /// Any other datatype, or a lexical form that is not valid for its datatype: the text.
    Other(String),
}

/// One attribute of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribute {
    /// The predicate IRI.
    pub predicate: String,
    /// Its local name (after the last `#` or `/`), for convenience.
    pub name: String,
    pub value: AttributeValue,
    /// The literal's datatype IRI.
    pub datatype: String,
    /// `xml:lang` of a language-tagged string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The graph it was found in (empty for the default graph).
    pub graph: String,
}

/// Types a literal by its datatype.
pub fn typed(l: &Literal) -> AttributeValue {
    let v = l.value();
    let Some(dt) = l.datatype().as_str().strip_prefix(XSD) else {
        return if l.language().is_some() {
            AttributeValue::String(v.to_string())
        } else {
            AttributeValue::Other(v.to_string())
        };
    };
    let other = || AttributeValue::Other(v.to_string());
    match dt {
        "string" | "normalizedString" | "token" => AttributeValue::String(v.to_string()),
        "boolean" => match v.trim() {
            "true" | "1" => AttributeValue::Boolean(true),
            "false" | "0" => AttributeValue::Boolean(false),
            _ => other(),
        },
        "integer" | "int" | "long" | "short" | "byte" | "nonNegativeInteger"
        | "positiveInteger" | "nonPositiveInteger" | "negativeInteger" | "unsignedInt"
        | "unsignedLong" | "unsignedShort" | "unsignedByte" => v
            .trim()
            .trim_start_matches('+')
            .parse::<i64>()
            .map(|n| AttributeValue::Number(n.into()))
            .unwrap_or_else(|_| other()),
        "decimal" | "double" | "float" => v
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(AttributeValue::Number)
            .unwrap_or_else(other),
        "dateTime" | "dateTimeStamp" | "date" => {
            let ok = chrono::DateTime::parse_from_rfc3339(v.trim()).is_ok()
                || chrono::NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                || chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").is_ok();
            if ok {
                AttributeValue::DateTime(v.trim().to_string())
            } else {
                other()
            }
        }
        "duration" | "dayTimeDuration" | "yearMonthDuration" => {
            let t = v.trim();
            let body = t.strip_prefix('-').unwrap_or(t);
            if body.starts_with('P') && body.len() > 1 {
                AttributeValue::Duration(t.to_string())
            } else {
                other()
            }
        }
        _ => other(),
    }
}

fn local_name(iri: &str) -> &str {
    iri.rsplit(['#', '/']).next().unwrap_or(iri)
}

impl Store {
    /// The literal-valued triples on an object's node, in every data graph (not Clew's models
    /// or change log, and not Clew's own `clew:` vocabulary), sorted by predicate.
    /// With bindings, the object's node in its bound IRI space counts as well as Clew's own.
    pub fn attributes(
        &self,
        object: &ObjectRef,
        vocab: &super::Vocabulary,
    ) -> Result<Vec<Attribute>, StoreError> {
        let mut quads = Vec::new();
        for iri in vocab.iris_of(&self.iris, object) {
            let node = nn(&iri)?;
            for q in self
                .db
                .quads_for_pattern(Some(node.as_ref().into()), None, None, None)
            {
                quads.push(q?);
            }
        }
        let mut out = Vec::new();
        for q in quads {
            let graph = match &q.graph_name {
                GraphName::NamedNode(n) => n.as_str().to_string(),
                _ => String::new(),
            };
            if graph == LOG_GRAPH || graph == MODELS_GRAPH || q.predicate.as_str().starts_with(NS) {
                continue;
            }
            let Term::Literal(l) = &q.object else {
                continue;
            };
            out.push(Attribute {
                predicate: q.predicate.as_str().to_string(),
                name: local_name(q.predicate.as_str()).to_string(),
                value: typed(l),
                datatype: l.datatype().as_str().to_string(),
                language: l.language().map(str::to_string),
                graph,
            });
        }
        out.sort_by(|a, b| a.predicate.cmp(&b.predicate).then(a.graph.cmp(&b.graph)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::NamedNode;

    fn lit(v: &str, dt: &str) -> Literal {
        Literal::new_typed_literal(v, NamedNode::new_unchecked(format!("{XSD}{dt}")))
    }

    #[test]
    fn literals_are_typed_by_datatype() {
        assert_eq!(
            typed(&lit("3", "integer")),
            AttributeValue::Number(3.into())
        );
        assert_eq!(typed(&lit("+7", "int")), AttributeValue::Number(7.into()));
        assert_eq!(
            typed(&lit("2.5", "decimal")),
            AttributeValue::Number(serde_json::Number::from_f64(2.5).unwrap_or(0.into()))
        );
        assert_eq!(
            typed(&lit("true", "boolean")),
            AttributeValue::Boolean(true)
        );
        assert_eq!(typed(&lit("0", "boolean")), AttributeValue::Boolean(false));
        assert_eq!(
            typed(&lit("secret", "string")),
            AttributeValue::String("secret".into())
        );
        assert_eq!(
            typed(&Literal::new_simple_literal("plain")),
            AttributeValue::String("plain".into())
        );
        assert_eq!(
            typed(&lit("2027-01-01T00:00:00Z", "dateTime")),
            AttributeValue::DateTime("2027-01-01T00:00:00Z".into())
        );
        assert_eq!(
            typed(&lit("2027-01-01", "date")),
            AttributeValue::DateTime("2027-01-01".into())
        );
        assert_eq!(
            typed(&lit("P30D", "duration")),
            AttributeValue::Duration("P30D".into())
        );
        assert_eq!(
            typed(&lit("PT1H", "dayTimeDuration")),
            AttributeValue::Duration("PT1H".into())
        );
        // Invalid lexical forms are not silently coerced.
        assert_eq!(
            typed(&lit("three", "integer")),
            AttributeValue::Other("three".into())
        );
        assert_eq!(
            typed(&lit("yes", "boolean")),
            AttributeValue::Other("yes".into())
        );
        assert_eq!(
            typed(&lit("soon", "dateTime")),
            AttributeValue::Other("soon".into())
        );
        assert_eq!(
            typed(&lit("30 days", "duration")),
            AttributeValue::Other("30 days".into())
        );
    }
}
