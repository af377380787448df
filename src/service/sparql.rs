//! SPARQL through the service: queries on the store's latest state, and updates through the
//! single writer, so that an update is one revision and the next decision sees it.

use super::{Clew, ServiceError};
use crate::sparql::{self, Answer, SparqlOptions};

/// What an update did.
pub type SparqlUpdated = super::Applied;

impl Clew {
    /// Evaluates a SPARQL query. Returns the answer and a revision the store was at least at
    /// when it was evaluated (queries read the latest committed state, never an older one).
    pub fn sparql_query(
        &self,
        text: &str,
        options: &SparqlOptions,
    ) -> Result<(Answer, u64), ServiceError> {
        let revision = self.store.revision()?;
        let answer = self.store.sparql_query(text, options)?;
        Ok((answer, revision))
    }

    /// Applies a SPARQL update as one revision, through the single writer. The relationship
    /// tuples it creates must be admitted by the current model, or nothing is applied; the
    /// published state (index, group closures) advances with it before this returns.
    pub fn sparql_update(
        &self,
        text: &str,
        options: &SparqlOptions,
    ) -> Result<SparqlUpdated, ServiceError> {
        let update = sparql::parse_update(text, options)?;
        let _guard = self.lock_writer()?;
        let current = self.state.load_full();
        let out = self.store.sparql_update(
            &update,
            options,
            current.model.as_deref(),
            &current.vocab,
            "sparql",
        )?;
        Ok(self.publish_committed(&current, &out))
    }
}
