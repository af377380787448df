//! Tuple writes with preconditions (the API's atomic write).

use super::{Clew, MAX_TUPLES_PER_WRITE, ServiceError};
use crate::iri::TUPLES_GRAPH;
use crate::tuple::{Tuple, TupleKey};

/// A condition on the stored tuples that must hold for a write to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Precondition {
    pub key: TupleKey,
    /// `true`: the tuple must exist; `false`: it must not.
    pub exists: bool,
}

impl Clew {
    /// An atomic write: every precondition is checked and every tuple validated under the
    /// single writer, and either all of `writes` and `deletes` apply as one revision or
    /// nothing does. Returns the new revision.
    pub fn write(
        &self,
        writes: &[Tuple],
        deletes: &[TupleKey],
        preconditions: &[Precondition],
        source: &str,
    ) -> Result<u64, ServiceError> {
        let n = writes.len() + deletes.len();
        if n == 0 {
            return Err(ServiceError::EmptyWrite);
        }
        if n > MAX_TUPLES_PER_WRITE {
            return Err(ServiceError::TooMany(n, MAX_TUPLES_PER_WRITE));
        }
        let _guard = self.lock_writer()?;
        for p in preconditions {
            let found = self.store.find_tuple(&p.key, TUPLES_GRAPH)?.is_some();
            if found != p.exists {
                let want = if p.exists { "exist" } else { "not exist" };
                return Err(ServiceError::PreconditionFailed(format!(
                    "tuple {} must {want}",
                    p.key
                )));
            }
        }
        self.write_locked(writes, deletes, source)
    }
}
