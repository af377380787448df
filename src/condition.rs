//! Evaluation of OpenFGA conditions — CEL expressions over typed parameters — as OpenFGA
//! (`internal/condition`) evaluates them, on the `cel` crate. [`CompiledCondition::compile`]
//! parses a [`ConditionDef`] once and re-does the model-write-time checks OpenFGA gets from
//! cel-go's type checker (undeclared identifiers or functions, argument types no overload takes,
//! a result that is known not to be a `bool`); [`CompiledCondition::evaluate`] binds the
//! parameter values of a tuple and of a request and evaluates, in microseconds; and
//! [`validate_tuple_params`] is the tuple-write check.
//!
//! **Context merge.** The request's context and the tuple's condition context are merged with
//! the **tuple's value winning** on a key both have: OpenFGA's `EvaluateTupleCondition` passes
//! `[request context, tuple context]` to `EvaluableCondition.Evaluate`, where "the overlapping key
//! for the last most context wins". Only declared parameters are taken; other keys are ignored
//! (at evaluation; [`validate_tuple_params`] refuses them on a tuple). Values are converted to the
//! declared types as OpenFGA's `types` package converts them (see `convert`), a value that does not
//! convert being a [`ConditionError::InvalidParameter`] naming the parameter.
//!
//! **Missing parameters.** OpenFGA evaluates with cel-go's partial evaluation, then lists as
//! missing *every declared parameter absent from the merged context*, and its check
//! (`EvaluateTupleCondition`) turns a non-empty list into an error — even when the expression's
//! value did not depend on them: `x < 100 || y < 50` with only `x: 10` fails with "missing
//! context parameters" (OpenFGA's own test `abac#16/check[3]`, in the conformance suite). So
//! [`evaluate`](CompiledCondition::evaluate) returns [`ConditionOutcome::Missing`] with the
//! absent declared parameters, in declaration order, whenever there is one, without evaluating;
//! it never turns an absent parameter into `Met` or `NotMet`. A value that does not convert is
//! reported before missing ones, as in OpenFGA.
//!
//! **Cost.** OpenFGA limits a condition's evaluation cost (`OPENFGA_MAX_CONDITION_EVALUATION_COST`,
//! default [`DEFAULT_MAX_COST`] = 100) with cel-go's cost tracking, which the `cel` crate lacks.
//! Before evaluating, an upper bound of the cost is computed from the expression and the sizes of
//! the bound values (see `cost`: calls and identifiers 1, literals 0, string and list operations
//! by size, comprehensions multiplied by their range's size), and an evaluation whose bound
//! exceeds the limit is refused with [`ConditionError::CostExceeded`]. The limit is set with
//! [`CompiledCondition::with_max_cost`].
//!
//! **Types.** `ipaddress` values are OpenFGA's `IPAddress` CEL type with `.in_cidr(string)`;
//! timestamps are kept in UTC; durations are Go duration strings; `any` values are JSON with
//! numbers as doubles (see `convert`). A result other than a `bool` and a runtime error
//! (division by zero, no such key, no matching overload) are [`ConditionError`]s naming the
//! condition.
//!
//! **Limits.** The parser recurses deeply on nested input, so `compile` parses on a thread of its
//! own with a 64 MiB stack, and refuses expressions longer than [`MAX_EXPRESSION_LEN`] or nested
//! deeper than [`MAX_EXPRESSION_DEPTH`], which keeps evaluation (recursive too) safe on any
//! thread.

use crate::model::{ConditionDef, ParamType};

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::types::CelBool;
use cel::parser::Expression;
use cel::{Context, Env, Value};
use serde_json::{Map, Value as Json};

mod check;
mod convert;
mod cost;
mod ipaddress;
#[cfg(test)]
mod tests;

/// OpenFGA's default `OPENFGA_MAX_CONDITION_EVALUATION_COST`.
pub const DEFAULT_MAX_COST: u64 = 100;

/// The longest expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 16 * 1024;

/// The deepest expression tree accepted (`a + b + c` is 3 deep, a leaf 1). The interpreter
/// recurses once per level: 48 levels stay within a 2 MiB thread stack even in a debug build.
/// `&&` and `||` chains are parsed into balanced trees, so they hardly count.
pub const MAX_EXPRESSION_DEPTH: usize = 48;

/// The stack of the thread that parses and checks an expression: the parser recurses deeply.
const COMPILE_STACK: usize = 64 << 20;

/// The CEL environment every condition shares: cel-go's standard library and OpenFGA's
/// `ipaddress` library, without optional values (which cel-go enables only on request).
static ENV: LazyLock<Result<Arc<Env>, String>> = LazyLock::new(|| {
    let mut env = Env::stdlib().with_optional_support(false);
    ipaddress::register(&mut env).map_err(|e| e.to_string())?;
    register_duration_conversions(&mut env).map_err(|e| e.to_string())?;
    Ok(Arc::new(env))
});

/// cel-go's `duration(int)` and `int(duration)` (nanoseconds), which the `cel` crate lacks.
fn register_duration_conversions(env: &mut Env) -> Result<(), cel::DeclarationError> {
    use cel::ExecutionError;
    use cel::common::types::{CelDuration, CelInt, DURATION_TYPE, INT_TYPE};
    use cel::common::value::CowVal;

    fn int_to_duration<'b, 'v>(
        args: Vec<CowVal<'b, 'v>>,
    ) -> Result<CowVal<'b, 'v>, ExecutionError> {
        let nanos = args
            .first()
            .and_then(|a| a.downcast_ref::<CelInt>())
            .ok_or_else(|| ExecutionError::function_error("duration", "expected an int"))?;
        Ok(CowVal::owned(CelDuration::from(
            chrono::Duration::nanoseconds(*nanos.inner()),
        )))
    }
    fn duration_to_int<'b, 'v>(
        args: Vec<CowVal<'b, 'v>>,
    ) -> Result<CowVal<'b, 'v>, ExecutionError> {
        let duration = args
            .first()
            .and_then(|a| a.downcast_ref::<CelDuration>())
            .ok_or_else(|| ExecutionError::function_error("int", "expected a duration"))?;
        let nanos = duration
            .inner()
            .num_nanoseconds()
            .ok_or_else(|| ExecutionError::function_error("int", "integer overflow"))?;
        Ok(CowVal::owned(CelInt::from(nanos)))
    }
    env.add_overload(
        "duration",
        "int_to_duration",
        vec![INT_TYPE],
        int_to_duration,
    )?;
    env.add_overload(
        "int",
        "duration_to_int",
        vec![DURATION_TYPE],
        duration_to_int,
    )
}

/// Why a condition could not be compiled, a parameter value not accepted, or an evaluation not
/// completed. Every message names the condition, and the parameter where one is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The expression does not parse, or fails the model-write-time checks.
    #[error("failed to compile condition '{condition}': {message}")]
    Compile { condition: String, message: String },
    /// A parameter's value does not convert to its declared type.
    #[error(
        "parameter type error on condition '{condition}' - failed to convert context parameter \
         '{parameter}': {reason}"
    )]
    InvalidParameter {
        condition: String,
        parameter: String,
        reason: String,
    },
    /// A tuple's condition context has a key that is no declared parameter.
    #[error(
        "invalid context on condition '{condition}' - found invalid context parameter: {parameter}"
    )]
    UndeclaredParameter {
        condition: String,
        parameter: String,
    },
    /// Context was given for a condition that declares no parameters.
    #[error(
        "parameter type error on condition '{condition}' - no parameters defined for the condition"
    )]
    NoParameters { condition: String },
    /// The evaluation's estimated cost exceeds the limit.
    #[error(
        "condition '{condition}': evaluation cost (at most {estimate}) exceeds the limit of {limit}"
    )]
    CostExceeded {
        condition: String,
        estimate: u64,
        limit: u64,
    },
    /// Evaluation failed: division by zero, no such key, no matching overload, ...
    #[error("failed to evaluate condition '{condition}': {message}")]
    Evaluation { condition: String, message: String },
    /// The expression evaluated to something other than a `bool`.
    #[error(
        "condition '{condition}': expected a bool condition expression output, but got '{found}'"
    )]
    NonBool { condition: String, found: String },
}

impl ConditionError {
    /// The name of the condition the error is about.
    pub fn condition(&self) -> &str {
        match self {
            ConditionError::Compile { condition, .. }
            | ConditionError::InvalidParameter { condition, .. }
            | ConditionError::UndeclaredParameter { condition, .. }
            | ConditionError::NoParameters { condition }
            | ConditionError::CostExceeded { condition, .. }
            | ConditionError::Evaluation { condition, .. }
            | ConditionError::NonBool { condition, .. } => condition,
        }
    }
}

/// The outcome of evaluating a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionOutcome {
    Met,
    NotMet,
    /// The named declared parameters were needed but absent.
    Missing(Vec<String>),
}

/// A condition parsed and checked once, to be evaluated many times (it is `Send + Sync`).
pub struct CompiledCondition {
    name: String,
    /// The declared parameters, in declaration order.
    params: Vec<(String, ParamType)>,
    expression: Expression,
    source: String,
    env: Arc<Env>,
    max_cost: u64,
    /// The cost bound when it does not depend on the values' sizes.
    static_cost: Option<u64>,
    /// The largest literal string, list or map of the expression.
    literal_max_size: u64,
}

impl fmt::Debug for CompiledCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledCondition")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("expression", &self.source)
            .field("max_cost", &self.max_cost)
            .finish_non_exhaustive()
    }
}

impl CompiledCondition {
    /// Parses the CEL body; errors (with a message naming the condition) if it does not parse,
    /// or (as OpenFGA does at model-write time) if it references identifiers that are not
    /// declared parameters, calls a function cel-go does not declare or with arguments no
    /// overload takes, or is statically known not to produce a bool. The cost limit is
    /// [`DEFAULT_MAX_COST`].
    pub fn compile(def: &ConditionDef) -> Result<Self, ConditionError> {
        if def.expression.len() > MAX_EXPRESSION_LEN {
            return Err(ConditionError::Compile {
                condition: def.name.clone(),
                message: format!("the expression is longer than {MAX_EXPRESSION_LEN} bytes"),
            });
        }
        // The parser recurses deeply on nested input: give it a stack of its own.
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("condition-compile".to_owned())
                .stack_size(COMPILE_STACK)
                .spawn_scoped(scope, || Self::compile_here(def));
            match spawned {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Err(ConditionError::Compile {
                        condition: def.name.clone(),
                        message: "the CEL parser failed on the expression".to_owned(),
                    })
                }),
                Err(_) => Self::compile_here(def),
            }
        })
    }

    fn compile_here(def: &ConditionDef) -> Result<Self, ConditionError> {
        let compile_error = |message: String| ConditionError::Compile {
            condition: def.name.clone(),
            message,
        };
        let env = ENV.as_ref().map_err(|e| compile_error(e.clone()))?;
        let mut param_types = HashMap::with_capacity(def.params.len());
        for p in &def.params {
            if param_types
                .insert(p.name.clone(), check::Ty::of_param(&p.param_type))
                .is_some()
            {
                return Err(compile_error(format!(
                    "parameter '{}' is declared more than once",
                    p.name
                )));
            }
        }
        let expression = env
            .parser()
            .parse(&def.expression)
            .map_err(|e| compile_error(e.to_string()))?;
        let depth = cost::depth(&expression);
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(compile_error(format!(
                "the expression is nested {depth} deep, deeper than {MAX_EXPRESSION_DEPTH}"
            )));
        }
        let ty = check::Checker::new(&param_types)
            .check(&expression)
            .map_err(compile_error)?;
        if !matches!(ty, check::Ty::Bool | check::Ty::Dyn) {
            return Err(compile_error(format!(
                "expected a bool condition expression output, but got '{ty}'"
            )));
        }
        let static_cost = (!cost::depends_on_sizes(&expression)).then(|| {
            cost::Estimator::new(cost::Sizes {
                params: &[],
                fallback: 0,
            })
            .cost(&expression)
        });
        let literal_max_size = cost::literal_max_size(&expression);
        Ok(Self {
            name: def.name.clone(),
            params: def
                .params
                .iter()
                .map(|p| (p.name.clone(), p.param_type.clone()))
                .collect(),
            expression,
            source: def.expression.clone(),
            env: Arc::clone(env),
            max_cost: DEFAULT_MAX_COST,
            static_cost,
            literal_max_size,
        })
    }

    /// The same condition with evaluations limited to cost `max_cost` (see the module doc).
    #[must_use]
    pub fn with_max_cost(mut self, max_cost: u64) -> Self {
        self.max_cost = max_cost;
        self
    }

    /// The cost limit of evaluations.
    pub fn max_cost(&self) -> u64 {
        self.max_cost
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `tuple_params`: the condition context stored on the relationship tuple (may be None);
    /// `request_context`: the context of the check request. They are merged as OpenFGA merges
    /// them, the tuple's value winning on a key both have; only declared parameters are taken.
    /// [`ConditionOutcome::Missing`] lists the declared parameters absent from both (see the
    /// module doc).
    pub fn evaluate(
        &self,
        tuple_params: Option<&Map<String, Json>>,
        request_context: &Map<String, Json>,
    ) -> Result<ConditionOutcome, ConditionError> {
        if self.params.is_empty()
            && (tuple_params.is_some_and(|t| !t.is_empty()) || !request_context.is_empty())
        {
            return Err(ConditionError::NoParameters {
                condition: self.name.clone(),
            });
        }
        let mut context = Context::with_env(Arc::clone(&self.env));
        let mut missing = Vec::new();
        let mut values = Vec::with_capacity(self.params.len());
        for (name, ty) in &self.params {
            let value = tuple_params
                .and_then(|t| t.get(name))
                .or_else(|| request_context.get(name));
            match value {
                None => missing.push(name.clone()),
                Some(json) => {
                    let val = convert::to_cel(ty, json).map_err(|reason| {
                        ConditionError::InvalidParameter {
                            condition: self.name.clone(),
                            parameter: name.clone(),
                            reason,
                        }
                    })?;
                    context.add_variable_as_val(name.as_str(), val);
                    values.push((name.as_str(), json));
                }
            }
        }
        if !missing.is_empty() {
            return Ok(ConditionOutcome::Missing(missing));
        }
        let estimate = self.estimate_cost(&values);
        if estimate > self.max_cost {
            return Err(ConditionError::CostExceeded {
                condition: self.name.clone(),
                estimate,
                limit: self.max_cost,
            });
        }
        let result = Value::resolve_val(&self.expression, &context).map_err(|e| {
            ConditionError::Evaluation {
                condition: self.name.clone(),
                message: e.to_string(),
            }
        })?;
        match result.downcast_ref::<CelBool>() {
            Some(b) if *b.inner() => Ok(ConditionOutcome::Met),
            Some(_) => Ok(ConditionOutcome::NotMet),
            None => Err(ConditionError::NonBool {
                condition: self.name.clone(),
                found: result.get_type().name().to_owned(),
            }),
        }
    }

    /// The cost bound of evaluating with the parameters bound to `values`.
    fn estimate_cost(&self, values: &[(&str, &Json)]) -> u64 {
        if let Some(cost) = self.static_cost {
            return cost;
        }
        let sizes: Vec<(&str, u64)> = values
            .iter()
            .map(|(name, json)| (*name, cost::json_size(json)))
            .collect();
        let fallback = values
            .iter()
            .map(|(_, json)| cost::json_max_size(json))
            .fold(self.literal_max_size, u64::max);
        cost::Estimator::new(cost::Sizes {
            params: &sizes,
            fallback,
        })
        .cost(&self.expression)
    }
}

/// Validates the parameter values given on a tuple at write time, as OpenFGA does: a value that
/// does not convert to its parameter's declared type is an [`ConditionError::InvalidParameter`],
/// a key that is no declared parameter an [`ConditionError::UndeclaredParameter`], and any
/// context for a condition without parameters [`ConditionError::NoParameters`].
pub fn validate_tuple_params(
    def: &ConditionDef,
    params: &Map<String, Json>,
) -> Result<(), ConditionError> {
    if params.is_empty() {
        return Ok(());
    }
    if def.params.is_empty() {
        return Err(ConditionError::NoParameters {
            condition: def.name.clone(),
        });
    }
    for p in &def.params {
        if let Some(value) = params.get(&p.name) {
            convert::to_cel(&p.param_type, value).map_err(|reason| {
                ConditionError::InvalidParameter {
                    condition: def.name.clone(),
                    parameter: p.name.clone(),
                    reason,
                }
            })?;
        }
    }
    if let Some(key) = params
        .keys()
        .find(|k| !def.params.iter().any(|p| &p.name == *k))
    {
        return Err(ConditionError::UndeclaredParameter {
            condition: def.name.clone(),
            parameter: key.clone(),
        });
    }
    Ok(())
}
