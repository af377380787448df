#![doc = include_str!("../README.md")]
//!
//! Modules: [`model`] (the OpenFGA language), [`condition`] (CEL conditions), [`tuple`]
//! (relationship tuples), [`iri`] (tuple ↔ RDF mapping), [`store`] (Oxigraph, revisions, change
//! log), [`index`] (snapshots), [`engine`] (check, explain, lists), [`reference`] (the naive
//! oracle), [`service`] (the single writer), [`testfile`] (OpenFGA store-file tests).

pub mod condition;
pub mod engine;
pub mod index;
pub mod iri;
pub mod model;
pub mod reference;
pub mod server;
pub mod service;
pub mod sparql;
pub mod store;
pub mod testfile;
pub mod tuple;

pub use engine::{CheckRequest, CheckResult, Decision, Explanation};
pub use service::{Clew, ServiceError};
pub use tuple::{ObjectRef, Tuple, TupleKey, User};
