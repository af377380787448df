//! What a request may ask for before anything runs: `SERVICE` (federated query) and `LOAD`
//! are refused unless the server enables them, wherever they appear — in a query, in an
//! update's `WHERE`, or inside `EXISTS`.

use super::SparqlError;
use spargebra::algebra::{Expression, GraphPattern, OrderExpression};
use spargebra::{GraphUpdateOperation, Query, Update};

/// Refuses a query that uses `SERVICE` when federation is not allowed.
pub fn check_query(query: &Query, allow_service: bool) -> Result<(), SparqlError> {
    let pattern = match query {
        Query::Select { pattern, .. }
        | Query::Construct { pattern, .. }
        | Query::Describe { pattern, .. }
        | Query::Ask { pattern, .. } => pattern,
    };
    if !allow_service && let Some(name) = find_service(pattern) {
        return Err(refused_service(&name));
    }
    Ok(())
}

/// Refuses an update that uses `LOAD` or `SERVICE` when they are not allowed.
pub fn check_update(
    update: &Update,
    allow_service: bool,
    allow_load: bool,
) -> Result<(), SparqlError> {
    for op in &update.operations {
        match op {
            GraphUpdateOperation::Load { source, .. } if !allow_load => {
                return Err(SparqlError::Refused(format!(
                    "LOAD <{}> is disabled on this server (start it with --sparql-allow-load to enable it)",
                    source.as_str()
                )));
            }
            GraphUpdateOperation::DeleteInsert { pattern, .. } if !allow_service => {
                if let Some(name) = find_service(pattern) {
                    return Err(refused_service(&name));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn refused_service(name: &str) -> SparqlError {
    SparqlError::Refused(format!(
        "SERVICE {name} is disabled on this server: federated queries are refused unless it is started with --sparql-allow-service"
    ))
}

/// The name of the first `SERVICE` in a pattern, if any.
fn find_service(p: &GraphPattern) -> Option<String> {
    match p {
        GraphPattern::Service { name, .. } => Some(name.to_string()),
        GraphPattern::Bgp { .. } | GraphPattern::Path { .. } | GraphPattern::Values { .. } => None,
        GraphPattern::Join { left, right }
        | GraphPattern::Lateral { left, right }
        | GraphPattern::Union { left, right }
        | GraphPattern::Minus { left, right } => find_service(left).or_else(|| find_service(right)),
        GraphPattern::LeftJoin {
            left,
            right,
            expression,
        } => find_service(left)
            .or_else(|| find_service(right))
            .or_else(|| expression.as_ref().and_then(find_in_expression)),
        GraphPattern::Filter { expr, inner } => {
            find_in_expression(expr).or_else(|| find_service(inner))
        }
        GraphPattern::Extend {
            inner, expression, ..
        } => find_in_expression(expression).or_else(|| find_service(inner)),
        GraphPattern::OrderBy { inner, expression } => expression
            .iter()
            .find_map(|o| match o {
                OrderExpression::Asc(e) | OrderExpression::Desc(e) => find_in_expression(e),
            })
            .or_else(|| find_service(inner)),
        GraphPattern::Graph { inner, .. }
        | GraphPattern::Project { inner, .. }
        | GraphPattern::Distinct { inner }
        | GraphPattern::Reduced { inner }
        | GraphPattern::Slice { inner, .. }
        | GraphPattern::Group { inner, .. } => find_service(inner),
    }
}

fn find_in_expression(e: &Expression) -> Option<String> {
    match e {
        Expression::Exists(p) => find_service(p),
        Expression::NamedNode(_)
        | Expression::Literal(_)
        | Expression::Variable(_)
        | Expression::Bound(_) => None,
        Expression::Or(a, b)
        | Expression::And(a, b)
        | Expression::Equal(a, b)
        | Expression::SameTerm(a, b)
        | Expression::Greater(a, b)
        | Expression::GreaterOrEqual(a, b)
        | Expression::Less(a, b)
        | Expression::LessOrEqual(a, b)
        | Expression::Add(a, b)
        | Expression::Subtract(a, b)
        | Expression::Multiply(a, b)
        | Expression::Divide(a, b) => find_in_expression(a).or_else(|| find_in_expression(b)),
        Expression::UnaryPlus(a) | Expression::UnaryMinus(a) | Expression::Not(a) => {
            find_in_expression(a)
        }
        Expression::If(a, b, c) => find_in_expression(a)
            .or_else(|| find_in_expression(b))
            .or_else(|| find_in_expression(c)),
        Expression::In(a, list) => {
            find_in_expression(a).or_else(|| list.iter().find_map(find_in_expression))
        }
        Expression::Coalesce(list) | Expression::FunctionCall(_, list) => {
            list.iter().find_map(find_in_expression)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Result<Query, Box<dyn std::error::Error>> {
        Ok(spargebra::SparqlParser::new().parse_query(q)?)
    }

    #[test]
    fn service_is_found_wherever_it_hides() -> Result<(), Box<dyn std::error::Error>> {
        for q in [
            "SELECT * { SERVICE <http://x/> { ?s ?p ?o } }",
            "SELECT * { ?a ?b ?c OPTIONAL { SERVICE <http://x/> { ?s ?p ?o } } }",
            "SELECT * { ?a ?b ?c FILTER EXISTS { SERVICE <http://x/> { ?s ?p ?o } } }",
            "SELECT * { { SELECT ?s { SERVICE SILENT <http://x/> { ?s ?p ?o } } LIMIT 1 } }",
            "ASK { ?a ?b ?c MINUS { SERVICE <http://x/> { ?a ?p ?o } } }",
            "SELECT * { ?a ?b ?c BIND(IF(EXISTS { SERVICE <http://x/> {} }, 1, 2) AS ?d) }",
        ] {
            let parsed = query(q)?;
            let err = check_query(&parsed, false).err().ok_or(q)?;
            assert!(
                err.to_string().contains("SERVICE <http://x/>"),
                "{q}: {err}"
            );
            assert!(check_query(&parsed, true).is_ok());
        }
        assert!(check_query(&query("SELECT * { ?s ?p ?o }")?, false).is_ok());
        Ok(())
    }

    #[test]
    fn load_and_service_in_updates_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let p = |u: &str| spargebra::SparqlParser::new().parse_update(u);
        let load = p("LOAD <http://example.org/data.ttl>")?;
        assert!(check_update(&load, false, false).is_err());
        assert!(check_update(&load, false, true).is_ok());
        let svc = p("INSERT { ?s ?p ?o } WHERE { SERVICE <http://x/> { ?s ?p ?o } }")?;
        assert!(check_update(&svc, false, false).is_err());
        assert!(check_update(&svc, true, false).is_ok());
        let plain = p("INSERT DATA { <http://a> <http://b> <http://c> }")?;
        assert!(check_update(&plain, false, false).is_ok());
        Ok(())
    }
}
