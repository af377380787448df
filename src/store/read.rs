//! Reads of the store that the API serves directly: tuples by pattern and model versions.

use super::{Store, StoreError, clew, graph, meta, nn, own};
use crate::iri::{MODELS_GRAPH, TUPLES_GRAPH};
use crate::tuple::{Tuple, User};
use oxigraph::model::vocab::rdf;
use oxigraph::model::{NamedNode, NamedOrBlankNode, Term};

/// Which tuples to read. Every part is optional; `object_type` alone selects a type.
#[derive(Debug, Clone, Default)]
pub struct TuplePattern {
    /// An object `type:id`, or only its type when `object_id` is `None`.
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub relation: Option<String>,
    pub user: Option<User>,
}

impl TuplePattern {
    fn matches(&self, t: &Tuple) -> bool {
        self.object_type
            .as_ref()
            .is_none_or(|ty| *ty == t.object.object_type)
            && self.object_id.as_ref().is_none_or(|id| *id == t.object.id)
            && self.relation.as_ref().is_none_or(|r| *r == t.relation)
            && self.user.as_ref().is_none_or(|u| *u == t.user)
    }
}

/// One stored model version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelVersion {
    pub id: String,
    /// The revision the version was first written at.
    pub created_at_revision: u64,
    pub current: bool,
}

impl Store {
    /// Tuples of the tuple graph (those written through the API) matching `pattern`, in key
    /// order (`object#relation@user`). The store answers at its latest state.
    pub fn read_tuples(&self, pattern: &TuplePattern) -> Result<Vec<Tuple>, StoreError> {
        let g = graph(TUPLES_GRAPH);
        let subject = match (&pattern.object_type, &pattern.object_id) {
            (Some(t), Some(id)) => Some(own(self
                .iris
                .object(&crate::tuple::ObjectRef::new(t.clone(), id.clone())))),
            _ => None,
        };
        let predicate = pattern
            .relation
            .as_ref()
            .map(|r| own(self.iris.relation(r)));
        let object = pattern
            .user
            .as_ref()
            .map(|u| Term::NamedNode(own(self.iris.user(u))));
        let mut out = Vec::new();
        for q in self.db.quads_for_pattern(
            subject.as_ref().map(|s| s.as_ref().into()),
            predicate.as_ref().map(NamedNode::as_ref),
            object.as_ref().map(Term::as_ref),
            Some(g.as_ref()),
        ) {
            if let Some(t) = self.plain_tuple(&q?)
                && pattern.matches(&t)
            {
                out.push(t);
            }
        }
        // Conditional tuples are reified nodes; find them by the part the pattern binds.
        let (p, o) = match (&subject, &object) {
            (Some(s), _) => (clew("object"), Some(Term::NamedNode(s.clone()))),
            (None, Some(u)) => (clew("user"), Some(u.clone())),
            (None, None) => (rdf::TYPE.into_owned(), None),
        };
        let o = o.unwrap_or_else(|| Term::NamedNode(clew("ConditionalTuple")));
        for q in
            self.db
                .quads_for_pattern(None, Some(p.as_ref()), Some(o.as_ref()), Some(g.as_ref()))
        {
            let q = q?;
            let NamedOrBlankNode::NamedNode(node) = &q.subject else {
                continue;
            };
            if let Some(t) = self.conditional_tuple(node.as_ref(), g.as_ref())?
                && pattern.matches(&t)
            {
                out.push(t);
            }
        }
        out.sort_by_cached_key(|t| t.key().to_string());
        out.dedup_by(|a, b| a.key() == b.key());
        Ok(out)
    }

    /// Every model version, oldest first.
    pub fn model_versions(&self) -> Result<Vec<ModelVersion>, StoreError> {
        let g = graph(MODELS_GRAPH);
        let mut current = None;
        for q in self.db.quads_for_pattern(
            Some(meta().as_ref().into()),
            Some(clew("currentModel").as_ref()),
            None,
            Some(g.as_ref()),
        ) {
            if let Term::NamedNode(n) = q?.object {
                current = Some(n);
            }
        }
        let mut out = Vec::new();
        for q in
            self.db
                .quads_for_pattern(None, Some(clew("modelId").as_ref()), None, Some(g.as_ref()))
        {
            let q = q?;
            let (NamedOrBlankNode::NamedNode(node), Term::Literal(id)) = (&q.subject, &q.object)
            else {
                continue;
            };
            let mut created = 0;
            for c in self.db.quads_for_pattern(
                Some(node.as_ref().into()),
                Some(clew("createdAtRevision").as_ref()),
                None,
                Some(g.as_ref()),
            ) {
                if let Term::Literal(l) = c?.object {
                    created = l.value().parse().unwrap_or(0);
                }
            }
            out.push(ModelVersion {
                id: id.value().to_string(),
                created_at_revision: created,
                current: current.as_ref() == Some(node),
            });
        }
        out.sort_by(|a, b| (a.created_at_revision, &a.id).cmp(&(b.created_at_revision, &b.id)));
        Ok(out)
    }

    /// The DSL of a model version, if it is stored.
    pub fn model_dsl(&self, id: &str) -> Result<Option<String>, StoreError> {
        let g = graph(MODELS_GRAPH);
        let node = nn(&format!("https://clew.dev/model/{id}"))?;
        for q in self.db.quads_for_pattern(
            Some(node.as_ref().into()),
            Some(clew("dsl").as_ref()),
            None,
            Some(g.as_ref()),
        ) {
            if let Term::Literal(l) = q?.object {
                return Ok(Some(l.value().to_string()));
            }
        }
        Ok(None)
    }
}
