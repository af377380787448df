//! TEMPORARY shim until conditions land.
use crate::model::ConditionDef;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionOutcome { Met, NotMet, Missing(Vec<String>) }
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("condition error")]
pub struct ConditionError;
pub struct CompiledCondition;
impl CompiledCondition {
    pub fn compile(_def: &ConditionDef) -> Result<Self, ConditionError> { Ok(Self) }
    pub fn evaluate(&self, _t: Option<&serde_json::Map<String, serde_json::Value>>, _c: &serde_json::Map<String, serde_json::Value>) -> Result<ConditionOutcome, ConditionError> { Ok(ConditionOutcome::NotMet) }
}
pub fn validate_tuple_params(_def: &ConditionDef, _p: &serde_json::Map<String, serde_json::Value>) -> Result<(), ConditionError> { Ok(()) }
