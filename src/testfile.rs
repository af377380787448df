//! OpenFGA's store-file test format (`fga model test`): a model, tuples and tests with
//! `check`, `list_objects` and `list_users` assertions, run against a fresh in-memory Clew.
//!
//! Every tuple goes through the real write path (validation, store, change log, index); a
//! test's own `tuples` are written on top of the file's for that test only. A test whose
//! `description` carries `expect_error_code=N` (the conformance suite's convention) passes
//! only if each of its requests is rejected with that OpenFGA error code.

use crate::engine::{self, CheckRequest, EngineError, LookupRequest, UserFilter};
use crate::iri::IMPORTED_GRAPH;
use crate::service::{Clew, ServiceError};
use crate::tuple::{ObjectRef, Tuple, TupleSpec, User};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Largest test file accepted.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub model_file: Option<String>,
    #[serde(default)]
    pub tuples: Vec<TupleSpec>,
    #[serde(default)]
    pub tuple_file: Option<String>,
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tuples: Vec<TupleSpec>,
    #[serde(default)]
    pub check: Vec<CheckCase>,
    #[serde(default)]
    pub list_objects: Vec<ListObjectsCase>,
    #[serde(default)]
    pub list_users: Vec<ListUsersCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckCase {
    pub user: String,
    pub object: String,
    #[serde(default)]
    pub context: Map<String, Value>,
    pub assertions: BTreeMap<String, bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListObjectsCase {
    pub user: String,
    #[serde(rename = "type")]
    pub object_type: String,
    #[serde(default)]
    pub context: Map<String, Value>,
    pub assertions: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsersCase {
    pub object: String,
    pub user_filter: Vec<FilterSpec>,
    #[serde(default)]
    pub context: Map<String, Value>,
    pub assertions: BTreeMap<String, UsersAssertion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    #[serde(rename = "type")]
    pub user_type: String,
    #[serde(default)]
    pub relation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersAssertion {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub excluded_users: Vec<String>,
}

/// How the file's top-level tuples are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TupleMode {
    /// Written through the validated write path (the normal case).
    Write,
    /// Imported as pre-existing graph data (tuples from an earlier model version).
    Preexisting,
}

/// The outcome of running one file.
#[derive(Debug, Default)]
pub struct FileReport {
    pub passed: usize,
    pub failed: usize,
    /// One line per failing assertion.
    pub failures: Vec<String>,
    /// Set when the file's tuples (or a test's) were rejected by the write path.
    pub write_error: Option<String>,
    /// (passed, failed) per kind of assertion: check, list_objects, list_users.
    pub by_op: [(usize, usize); 3],
}

impl Op {
    /// Index into [`FileReport::by_op`].
    pub fn index(self) -> usize {
        match self {
            Op::Check => 0,
            Op::ListObjects => 1,
            Op::ListUsers => 2,
        }
    }

    pub const ALL: [Op; 3] = [Op::Check, Op::ListObjects, Op::ListUsers];

    pub fn name(self) -> &'static str {
        match self {
            Op::Check => "check",
            Op::ListObjects => "list_objects",
            Op::ListUsers => "list_users",
        }
    }
}

/// The kind of request an assertion makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Check,
    ListObjects,
    ListUsers,
}

/// Errors that stop a file before any assertion runs.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: invalid model:\n{message}")]
    Model { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Reads and parses a store file (YAML), with line/column on a syntax error.
pub fn read(path: &Path) -> Result<StoreFile, FileError> {
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| FileError::Read {
        path: p.clone(),
        source,
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge { path: p });
    }
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: p.clone(),
        source,
    })?;
    parse(&text).map_err(|message| FileError::Syntax { path: p, message })
}

/// Parses store-file text.
pub fn parse(text: &str) -> Result<StoreFile, String> {
    serde_norway::from_str(text).map_err(|e| match e.location() {
        Some(l) => format!("line {}, column {}: {e}", l.line(), l.column()),
        None => e.to_string(),
    })
}

/// The OpenFGA error code a failure corresponds to (for `expect_error_code=`).
/// OpenFGA reports an unknown relation on the object of a Check as a plain validation error
/// (2000), but as `relation_not_found` (2022) in ListObjects and ListUsers.
pub fn error_code(op: Op, e: &ServiceError) -> u32 {
    match e {
        ServiceError::Engine(EngineError::UnknownType(_)) => 2021,
        ServiceError::Engine(EngineError::UnknownRelation { .. }) if op == Op::Check => 2000,
        ServiceError::Engine(EngineError::UnknownRelation { .. }) => 2022,
        ServiceError::Engine(EngineError::InvalidUser(_)) => 2000,
        ServiceError::Engine(EngineError::DepthExceeded(_)) => 2002,
        ServiceError::Engine(EngineError::Condition(_)) => 2000,
        ServiceError::Engine(EngineError::ContextualTuple(_)) | ServiceError::TupleRule(_) => 2027,
        ServiceError::Store(_) | ServiceError::Poisoned => 4000,
        _ => 2000,
    }
}

fn expected_error(description: &Option<String>) -> Option<u32> {
    let d = description.as_deref()?;
    let rest = d.split("expect_error_code=").nth(1)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn load_model(file: &StoreFile, dir: &Path, path: &str) -> Result<String, FileError> {
    match (&file.model, &file.model_file) {
        (Some(m), _) => Ok(m.clone()),
        (None, Some(f)) => std::fs::read_to_string(dir.join(f)).map_err(|source| FileError::Read {
            path: format!("{path}: model_file {f}"),
            source,
        }),
        (None, None) => Err(FileError::Invalid {
            path: path.to_string(),
            message: "no 'model' or 'model_file'".into(),
        }),
    }
}

fn parse_tuples(specs: &[TupleSpec], what: &str) -> Result<Vec<Tuple>, String> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| s.to_tuple().map_err(|e| format!("{what}[{i}]: {e}")))
        .collect()
}

/// Runs one store file.
pub fn run_file(path: &Path, mode: TupleMode) -> Result<FileReport, FileError> {
    let p = path.display().to_string();
    let file = read(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let dsl = load_model(&file, dir, &p)?;
    let mut base_specs = file.tuples.clone();
    if let Some(tf) = &file.tuple_file {
        let text = std::fs::read_to_string(dir.join(tf)).map_err(|source| FileError::Read {
            path: format!("{p}: tuple_file {tf}"),
            source,
        })?;
        let more: Vec<TupleSpec> =
            serde_norway::from_str(&text).map_err(|e| FileError::Syntax {
                path: format!("{p}: tuple_file {tf}"),
                message: e.to_string(),
            })?;
        base_specs.extend(more);
    }
    let mut report = FileReport::default();
    let base = match parse_tuples(&base_specs, "tuples") {
        Ok(t) => t,
        Err(e) => {
            report.write_error = Some(e);
            return Ok(report);
        }
    };
    for test in &file.tests {
        let clew = Clew::memory().map_err(|e| FileError::Invalid {
            path: p.clone(),
            message: e.to_string(),
        })?;
        clew.write_model(&dsl).map_err(|e| FileError::Model {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let loaded = match mode {
            TupleMode::Write => clew.write_tuples_bulk(&base, &[], "test-file").map(|_| ()),
            TupleMode::Preexisting => clew
                .import_tuples(&base, IMPORTED_GRAPH, "test-file")
                .map(|_| ()),
        };
        let own = parse_tuples(&test.tuples, &format!("test '{}' tuples", test.name));
        let written: Result<(), String> = match loaded {
            Err(e) if !e.is_user_error() => {
                return Err(FileError::Invalid {
                    path: p.clone(),
                    message: e.to_string(),
                });
            }
            Err(e) => Err(e.to_string()),
            Ok(()) => match own {
                Err(e) => Err(e),
                Ok(own) if own.is_empty() => Ok(()),
                Ok(own) => match clew.write_tuples_bulk(&own, &[], "test-file") {
                    Ok(_) => Ok(()),
                    Err(e) if !e.is_user_error() => {
                        return Err(FileError::Invalid {
                            path: p.clone(),
                            message: e.to_string(),
                        });
                    }
                    Err(e) => Err(e.to_string()),
                },
            },
        };
        if let Err(e) = written {
            report.write_error = Some(format!("test '{}': write rejected: {e}", test.name));
            return Ok(report);
        }
        run_test(&clew, test, &p, &mut report);
    }
    Ok(report)
}

fn run_test(clew: &Clew, test: &TestCase, path: &str, report: &mut FileReport) {
    let expect = expected_error(&test.description);
    let mut record = |op: Op, what: String, outcome: Result<Result<(), String>, ServiceError>| {
        let failure = match (outcome, expect) {
            (Ok(Ok(())), None) => None,
            (Ok(Err(mismatch)), None) => Some(mismatch),
            (Err(e), None) => Some(format!("unexpected error: {e}")),
            (Ok(_), Some(code)) => Some(format!("expected error {code}, got an answer")),
            (Err(e), Some(code)) => {
                let got = error_code(op, &e);
                (got != code).then(|| format!("expected error {code}, got error {got}: {e}"))
            }
        };
        let slot = report.by_op.get_mut(op.index());
        match failure {
            None => {
                report.passed += 1;
                if let Some(s) = slot {
                    s.0 += 1;
                }
            }
            Some(f) => {
                report.failed += 1;
                if let Some(s) = slot {
                    s.1 += 1;
                }
                report
                    .failures
                    .push(format!("FAIL {path}: test '{}': {what}: {f}", test.name));
            }
        }
    };
    let state = clew.state();
    for c in &test.check {
        for (relation, expected) in &c.assertions {
            let what = format!("check {} {relation} {}", c.user, c.object);
            let outcome = (|| {
                let user = User::parse(&c.user)
                    .map_err(|e| ServiceError::Engine(EngineError::InvalidUser(e.to_string())))?;
                let object = ObjectRef::parse(&c.object).map_err(|e| {
                    ServiceError::Engine(EngineError::ContextualTuple(e.to_string()))
                })?;
                let req = CheckRequest {
                    user: &user,
                    relation,
                    object: &object,
                    context: &c.context,
                    contextual: &[],
                    explain: true,
                    max_depth: engine::DEFAULT_MAX_DEPTH,
                };
                let r = engine::check(state.view()?, &req)?;
                let got = r.decision.allowed()?;
                Ok(if got == *expected {
                    Ok(())
                } else {
                    Err(format!("expected {expected}, got {got}"))
                })
            })();
            record(Op::Check, what, outcome);
        }
    }
    for c in &test.list_objects {
        for (relation, expected) in &c.assertions {
            let what = format!("list_objects {} {relation} {}", c.user, c.object_type);
            let outcome = (|| {
                let user = User::parse(&c.user)
                    .map_err(|e| ServiceError::Engine(EngineError::InvalidUser(e.to_string())))?;
                let req = LookupRequest {
                    user: &user,
                    relation,
                    object_type: &c.object_type,
                    context: &c.context,
                    contextual: &[],
                    max_depth: engine::DEFAULT_MAX_DEPTH,
                };
                let (lookup, _) = clew.reach_in(&state, &req)?;
                lookup.require_decided()?;
                let got: BTreeSet<String> = lookup
                    .objects(&state.index)
                    .into_iter()
                    .map(|o| o.to_string())
                    .collect();
                let want: BTreeSet<String> = expected.iter().cloned().collect();
                Ok(if got == want {
                    Ok(())
                } else {
                    Err(format!("expected {want:?}, got {got:?}"))
                })
            })();
            record(Op::ListObjects, what, outcome);
        }
    }
    for c in &test.list_users {
        for (relation, expected) in &c.assertions {
            let what = format!("list_users {} {relation}", c.object);
            let outcome = (|| {
                let object = ObjectRef::parse(&c.object).map_err(|e| {
                    ServiceError::Engine(EngineError::ContextualTuple(e.to_string()))
                })?;
                let mut got = BTreeSet::new();
                for f in &c.user_filter {
                    let filter = UserFilter {
                        user_type: f.user_type.clone(),
                        relation: f.relation.clone(),
                    };
                    for u in engine::list_users(
                        state.view()?,
                        &object,
                        relation,
                        &filter,
                        &c.context,
                        &[],
                    )? {
                        got.insert(u.to_string());
                    }
                }
                let want: BTreeSet<String> = expected.users.iter().cloned().collect();
                Ok(if got == want {
                    Ok(())
                } else {
                    Err(format!("expected {want:?}, got {got:?}"))
                })
            })();
            record(Op::ListUsers, what, outcome);
        }
    }
}
