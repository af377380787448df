//! The `clew` command line: argument parsing and output only; everything else is the library.

use clap::{Args, Parser, Subcommand};
use clew::engine::{self, CheckRequest, Decision, LookupRequest, UserFilter};
use clew::iri::{IMPORTED_GRAPH, TUPLES_GRAPH};
use clew::service::bulk::{Consistency, FilterRequest, PageRequest};
use clew::service::{Clew, ExportFormat, ServiceError, TupleFormat, parse_tuples};
use clew::store::{ImportError, RdfFormat, RdfSource};
use clew::testfile::{self, TupleMode};
use clew::tuple::{ObjectRef, Tuple, TupleSpec, User};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "clew",
    version,
    about = "Clew: a knowledge-graph authorization engine (OpenFGA models over RDF)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API, the SPARQL endpoint and AuthZEN over an on-disk (or in-memory) store.
    Serve(clew::server::ServeArgs),
    /// (internal) Evaluate one SPARQL query read from stdin on a store opened read-only; the
    /// server runs each query this way, under a memory budget and a time limit.
    #[command(hide = true)]
    SparqlWorker(clew::server::sparql::WorkerArgs),
    /// Load a model and/or tuple files into a store directory (one revision each).
    Load {
        /// Store directory (created if missing).
        #[arg(long, default_value = "./clew-data")]
        store: PathBuf,
        /// Model file (OpenFGA DSL).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Tuple files (.yaml/.yml list, .json list, or .jsonl one per line).
        #[arg(long)]
        tuples: Vec<PathBuf>,
    },
    /// Import RDF files (.ttl .nt .nq .trig .rdf/.owl/.xml) and tuple files (.jsonl .json
    /// .yaml/.yml) into a store: every file is parsed first, then all of them are one revision,
    /// validated against the model, or nothing is stored.
    Import(ImportArgs),
    /// Export the data graphs (nquads, trig; one graph: turtle, ntriples, rdfxml) or the
    /// relationship tuples (jsonl, json, yaml).
    Export {
        /// Store directory.
        #[arg(long, default_value = "./clew-data")]
        store: PathBuf,
        /// nquads, trig, turtle, ntriples, rdfxml, jsonl, json or yaml.
        #[arg(long, default_value = "nquads")]
        format: String,
        /// Only these graphs (repeatable; default: every graph except Clew's log and models).
        #[arg(long)]
        graph: Vec<String>,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Decide a check: USER RELATION OBJECT.
    Check(CheckArgs),
    /// Decide a check and print why: the path of tuples and rules, or the branches tried.
    Explain(CheckArgs),
    /// Every object of a type the user has the relation on: USER RELATION TYPE.
    Lookup {
        #[command(flatten)]
        source: Source,
        user: String,
        relation: String,
        object_type: String,
        #[arg(long)]
        context: Option<String>,
        /// Most objects per page (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// Continue from a cursor printed by an earlier page.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON (objects, truncated, cursor, revision, stats).
        #[arg(long)]
        json: bool,
    },
    /// The permitted subset of candidate objects: USER RELATION TYPE CANDIDATE... (or --file).
    Filter {
        #[command(flatten)]
        source: Source,
        user: String,
        relation: String,
        object_type: String,
        /// Candidate objects `type:id`.
        candidates: Vec<String>,
        /// Read candidates from a file, one per line.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        context: Option<String>,
        /// Attach an explanation to each permitted object.
        #[arg(long)]
        explain: bool,
        /// Print JSON (with the planner's choice).
        #[arg(long)]
        json: bool,
    },
    /// Many checks in one call, from a JSON-lines file of {"user","relation","object","context"?}.
    BatchCheck {
        #[command(flatten)]
        source: Source,
        file: PathBuf,
    },
    /// The userset tree of OBJECT RELATION (one level, as OpenFGA's Expand).
    Expand {
        #[command(flatten)]
        source: Source,
        object: String,
        relation: String,
    },
    /// Who has the relation on an object: OBJECT RELATION USER_TYPE[#relation].
    Subjects {
        #[command(flatten)]
        source: Source,
        object: String,
        relation: String,
        filter: String,
        #[arg(long)]
        context: Option<String>,
    },
    /// Run OpenFGA store-file tests (`*.fga.yaml`).
    Test {
        files: Vec<PathBuf>,
        /// Load each file's top-level tuples as pre-existing graph data (unvalidated), as tuples
        /// left from an earlier model version.
        #[arg(long)]
        preexisting: bool,
        /// Pass only if loading the tuples is rejected (OpenFGA's invalid-write cases).
        #[arg(long)]
        expect_write_error: bool,
        /// Print only the summary line (and failures).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Model commands.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Parse and validate a model file; errors carry line and column.
    Validate { file: PathBuf },
}

#[derive(Args)]
struct Source {
    /// Read from this store directory.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Or: load this model into a temporary in-memory store…
    #[arg(long, conflicts_with = "store")]
    model: Option<PathBuf>,
    /// …with these tuple files.
    #[arg(long, conflicts_with = "store")]
    tuples: Vec<PathBuf>,
}

#[derive(Args)]
struct ImportArgs {
    /// Store directory (created if missing).
    #[arg(long, default_value = "./clew-data")]
    store: PathBuf,
    /// The files, imported together as one revision.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Graph for the triples of RDF files and the default graph of N-Quads/TriG (default
    /// https://clew.dev/graph/imported), and for tuple files (default: the tuple graph).
    #[arg(long)]
    graph: Option<String>,
    /// Put every quad of N-Quads/TriG files into --graph, also those in named graphs.
    #[arg(long, requires = "graph")]
    force_graph: bool,
    /// The format of every file (turtle, ntriples, nquads, trig, rdfxml, jsonl, json, yaml);
    /// default: from each file's extension.
    #[arg(long)]
    format: Option<String>,
    /// Base IRI for relative IRIs in RDF files.
    #[arg(long)]
    base: Option<String>,
    /// Clear the graphs the files write to first, so they hold exactly the files' data.
    #[arg(long)]
    replace: bool,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    source: Source,
    user: String,
    relation: String,
    object: String,
    /// Request context for conditions, as a JSON object.
    #[arg(long)]
    context: Option<String>,
    /// Contextual tuples file (same formats as tuple files).
    #[arg(long)]
    contextual_tuples: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One line of a `batch-check` file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine {
    user: String,
    relation: String,
    object: String,
    #[serde(default)]
    context: Map<String, Value>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

type Res<T> = Result<T, String>;

fn run(cli: Cli) -> Res<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            clew::server::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::SparqlWorker(args) => Ok(clew::server::sparql::worker(&args)),
        Command::Load {
            store,
            model,
            tuples,
        } => {
            let clew = Clew::open(&store).map_err(|e| format!("{}: {e}", store.display()))?;
            if let Some(m) = model {
                let dsl = read_text(&m)?;
                let (id, rev) = clew
                    .write_model(&dsl)
                    .map_err(|e| format!("{}: {e}", m.display()))?;
                println!("model {id} written at revision {rev}");
            }
            for f in tuples {
                let ts = read_tuples(&f)?;
                let rev = clew
                    .write_tuples_bulk(&ts, &[], &format!("load {}", f.display()))
                    .map_err(|e| format!("{}: {e}", f.display()))?;
                println!(
                    "{} tuples from {} written at revision {rev}",
                    ts.len(),
                    f.display()
                );
            }
            clew.store().flush().map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => import(&args),
        Command::Export {
            store,
            format,
            graph,
            output,
        } => {
            let format = ExportFormat::from_name(&format).ok_or_else(|| {
                format!(
                    "--format {format}: expected nquads, trig, turtle, ntriples, rdfxml, jsonl, json or yaml"
                )
            })?;
            if !store.exists() {
                return Err(format!("{}: no such store directory", store.display()));
            }
            let clew = Clew::open(&store).map_err(|e| format!("{}: {e}", store.display()))?;
            let graphs = (!graph.is_empty()).then_some(graph.as_slice());
            let (bytes, _) = clew.export(format, graphs).map_err(|e| e.to_string())?;
            match output {
                Some(p) => {
                    std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?
                }
                None => std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| e.to_string())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => check(args, false),
        Command::Explain(args) => check(args, true),
        Command::Lookup {
            source,
            user,
            relation,
            object_type,
            context,
            limit,
            cursor,
            json,
        } => {
            let clew = open_source(&source)?;
            let user = User::parse(&user).map_err(|e| e.to_string())?;
            let context = parse_context(context.as_deref())?;
            let req = LookupRequest {
                user: &user,
                relation: &relation,
                object_type: &object_type,
                context: &context,
                contextual: &[],
                max_depth: engine::DEFAULT_MAX_DEPTH,
            };
            let page = clew
                .lookup(&req, &PageRequest { limit, cursor }, Consistency::Latest)
                .map_err(|e| e.to_string())?;
            if json {
                let mut out = serde_json::to_value(&page).map_err(|e| e.to_string())?;
                out["conditional"] = json!(
                    page.conditional
                        .iter()
                        .map(|(o, m)| json!({"object": o.to_string(), "missing": m}))
                        .collect::<Vec<_>>()
                );
                out["objects"] = json!(
                    page.objects
                        .iter()
                        .map(|o| o.to_string())
                        .collect::<Vec<_>>()
                );
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
                );
            } else {
                for o in &page.objects {
                    println!("{o}");
                }
                for (o, m) in &page.conditional {
                    println!("{o}  (conditional: missing {})", m.join(", "));
                }
                if let Some(c) = &page.cursor {
                    eprintln!(
                        "truncated: {} of {} shown; next page: --cursor {c}",
                        page.objects.len(),
                        page.total
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Subjects {
            source,
            object,
            relation,
            filter,
            context,
        } => {
            let clew = open_source(&source)?;
            let object = ObjectRef::parse(&object).map_err(|e| e.to_string())?;
            let context = parse_context(context.as_deref())?;
            let filter = match filter.split_once('#') {
                Some((t, r)) => UserFilter {
                    user_type: t.to_string(),
                    relation: Some(r.to_string()),
                },
                None => UserFilter {
                    user_type: filter,
                    relation: None,
                },
            };
            let state = clew.state();
            let view = state.view().map_err(|e| e.to_string())?;
            let answer = engine::subjects(view, &object, &relation, &filter, &context, &[])
                .map_err(|e| e.to_string())?;
            for u in &answer.users {
                println!("{u}");
            }
            for u in &answer.excluded {
                println!("except {u}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Filter {
            source,
            user,
            relation,
            object_type,
            mut candidates,
            file,
            context,
            explain,
            json,
        } => {
            let clew = open_source(&source)?;
            let user = User::parse(&user).map_err(|e| e.to_string())?;
            let context = parse_context(context.as_deref())?;
            if let Some(f) = file {
                let text = read_text(&f)?;
                candidates.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
            let req = FilterRequest {
                user: &user,
                relation: &relation,
                object_type: &object_type,
                candidates: &candidates,
                context: &context,
                contextual: &[],
                max_depth: engine::DEFAULT_MAX_DEPTH,
                explain,
                strategy: None,
            };
            let out = clew
                .filter(&req, Consistency::Latest)
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
                );
            } else {
                for item in &out.allowed {
                    println!("{}", item.object);
                }
                eprintln!(
                    "{} permitted, {} denied, {} unknown, {} duplicates (strategy {:?}: {}; revision {})",
                    out.allowed.len(),
                    out.denied,
                    out.unknown,
                    out.duplicates,
                    out.plan.strategy,
                    out.plan.reason,
                    out.revision
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::BatchCheck { source, file } => {
            let clew = open_source(&source)?;
            let text = read_text(&file)?;
            let mut items = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let item: BatchLine = serde_json::from_str(line).map_err(|e| {
                    format!(
                        "{}: line {}, column {}: {e}",
                        file.display(),
                        i + 1,
                        e.column()
                    )
                })?;
                let user = User::parse(&item.user)
                    .map_err(|e| format!("{}: line {}: {e}", file.display(), i + 1))?;
                let object = ObjectRef::parse(&item.object)
                    .map_err(|e| format!("{}: line {}: {e}", file.display(), i + 1))?;
                items.push((user, item.relation, object, item.context));
            }
            let reqs: Vec<CheckRequest<'_>> = items
                .iter()
                .map(|(user, relation, object, context)| CheckRequest {
                    user,
                    relation,
                    object,
                    context,
                    contextual: &[],
                    explain: false,
                    max_depth: engine::DEFAULT_MAX_DEPTH,
                })
                .collect();
            let out = clew
                .batch_check(&reqs, Consistency::Latest)
                .map_err(|e| e.to_string())?;
            for ((user, relation, object, _), item) in items.iter().zip(&out.items) {
                let answer = match &item.result {
                    Ok(r) => match &r.decision {
                        Decision::Allowed => json!("allowed"),
                        Decision::Denied => json!("denied"),
                        Decision::Conditional { missing } => {
                            json!({"conditional": missing})
                        }
                    },
                    Err(e) => json!({"error": e}),
                };
                println!(
                    "{}",
                    json!({"user": user.to_string(), "relation": relation, "object": object.to_string(), "decision": answer, "revision": out.revision})
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Expand {
            source,
            object,
            relation,
        } => {
            let clew = open_source(&source)?;
            let object = ObjectRef::parse(&object).map_err(|e| e.to_string())?;
            let state = clew.state();
            let view = state.view().map_err(|e| e.to_string())?;
            let tree = clew::engine::expand::expand(view, &object, &relation)
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&tree).map_err(|e| e.to_string())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            files,
            preexisting,
            expect_write_error,
            quiet,
        } => run_tests(&files, preexisting, expect_write_error, quiet),
        Command::Model {
            command: ModelCommand::Validate { file },
        } => {
            let dsl = read_text(&file)?;
            match clew::model::typesystem::TypeSystem::from_dsl(&dsl) {
                Ok(ts) => {
                    println!(
                        "{}: valid (id {}, {} types, {} conditions)",
                        file.display(),
                        ts.id,
                        ts.model.types.len(),
                        ts.model.conditions.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    for line in e.to_string().lines() {
                        eprintln!("{}: {line}", file.display());
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// `clew import`: parses every file, then imports them all as one revision. A syntax error
/// prints `FILE:LINE:COLUMN: message`; any rejection exits 1 with the store unchanged.
fn import(args: &ImportArgs) -> Res<ExitCode> {
    let clew = Clew::open(&args.store).map_err(|e| format!("{}: {e}", args.store.display()))?;
    let forced = match &args.format {
        Some(f) => Some(ExportFormat::from_name(f).ok_or_else(|| {
            format!(
                "--format {f}: expected turtle, ntriples, nquads, trig, rdfxml, jsonl, json or yaml"
            )
        })?),
        None => None,
    };
    let mut docs = Vec::with_capacity(args.files.len());
    let mut names = Vec::with_capacity(args.files.len());
    for f in &args.files {
        let p = f.display();
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
        let format = forced
            .or_else(|| RdfFormat::from_extension(ext).map(ExportFormat::Rdf))
            .or_else(|| TupleFormat::from_extension(ext).map(ExportFormat::Tuples))
            .ok_or_else(|| format!("{p}: unknown file type '.{ext}'; give --format"))?;
        let bytes = std::fs::read(f).map_err(|e| format!("{p}: {e}"))?;
        let parsed = match format {
            ExportFormat::Rdf(format) => clew
                .parse_rdf(
                    &bytes,
                    &RdfSource {
                        format,
                        graph: args.graph.as_deref().unwrap_or(IMPORTED_GRAPH),
                        force_graph: args.force_graph,
                        base_iri: args.base.as_deref(),
                    },
                )
                .map_err(|e| service_error(f, &e)),
            ExportFormat::Tuples(format) => std::str::from_utf8(&bytes)
                .map_err(|e| format!("{p}: not UTF-8: {e}"))
                .and_then(|text| parse_tuples(text, format).map_err(|e| import_error(f, &e)))
                .and_then(|tuples| {
                    let graph = args.graph.as_deref().unwrap_or(TUPLES_GRAPH);
                    clew.tuple_document(&tuples, graph)
                        .map_err(|e| service_error(f, &e))
                }),
        };
        match parsed {
            Ok(doc) => docs.push(doc),
            Err(message) => {
                eprintln!("{message}");
                return Ok(ExitCode::from(1));
            }
        }
        names.push(
            f.file_name()
                .map_or_else(|| p.to_string(), |n| n.to_string_lossy().into_owned()),
        );
    }
    let source = format!("import:{}", names.join(","));
    match clew.import_documents(&docs, args.replace, &source) {
        Ok(out) if out.changed => println!(
            "{} file(s) imported at revision {}: {} quads added, {} removed, {} tuples changed",
            docs.len(),
            out.revision,
            out.quads_added,
            out.quads_removed,
            out.tuples_changed
        ),
        Ok(out) => println!("nothing changed (revision {})", out.revision),
        Err(e) if e.is_user_error() => {
            eprintln!("error: import rejected, nothing stored: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.to_string()),
    }
    clew.store().flush().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn service_error(file: &Path, e: &ServiceError) -> String {
    match e {
        ServiceError::Import(i) => import_error(file, i),
        other => format!("{}: {other}", file.display()),
    }
}

/// `FILE:LINE:COLUMN: message` for a located syntax error, else `FILE: message`.
fn import_error(file: &Path, e: &ImportError) -> String {
    match e {
        ImportError::Syntax {
            location: Some(l),
            message,
        } => format!("{}:{}:{}: {message}", file.display(), l.line, l.column),
        other => format!("{}: {other}", file.display()),
    }
}

fn run_tests(
    files: &[PathBuf],
    preexisting: bool,
    expect_write_error: bool,
    quiet: bool,
) -> Res<ExitCode> {
    let mode = if preexisting {
        TupleMode::Preexisting
    } else {
        TupleMode::Write
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut by_op = [(0usize, 0usize); 3];
    for f in files {
        match testfile::run_file(f, mode) {
            Ok(report) => {
                if expect_write_error {
                    match report.write_error {
                        Some(e) => {
                            passed += 1;
                            if !quiet {
                                println!("ok {}: rejected: {e}", f.display());
                            }
                        }
                        None => {
                            failed += 1;
                            println!(
                                "FAIL {}: the tuples were accepted; expected a write error",
                                f.display()
                            );
                        }
                    }
                    continue;
                }
                if let Some(e) = &report.write_error {
                    failed += 1;
                    println!("FAIL {}: {e}", f.display());
                }
                for line in &report.failures {
                    println!("{line}");
                }
                passed += report.passed;
                failed += report.failed;
                for (acc, r) in by_op.iter_mut().zip(report.by_op) {
                    acc.0 += r.0;
                    acc.1 += r.1;
                }
                if !quiet && report.failed == 0 && report.write_error.is_none() {
                    println!("ok {} ({} assertions)", f.display(), report.passed);
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {e}");
            }
        }
    }
    let kinds: Vec<String> = testfile::Op::ALL
        .iter()
        .zip(by_op)
        .map(|(op, (p, f))| format!("{} {p}/{}", op.name(), p + f))
        .collect();
    println!("{passed} passed, {failed} failed ({})", kinds.join(", "));
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn check(args: CheckArgs, explain: bool) -> Res<ExitCode> {
    let clew = open_source(&args.source)?;
    let user = User::parse(&args.user).map_err(|e| e.to_string())?;
    let object = ObjectRef::parse(&args.object).map_err(|e| e.to_string())?;
    let context = parse_context(args.context.as_deref())?;
    let contextual = match &args.contextual_tuples {
        Some(f) => read_tuples(f)?,
        None => Vec::new(),
    };
    let req = CheckRequest {
        user: &user,
        relation: &args.relation,
        object: &object,
        context: &context,
        contextual: &contextual,
        explain,
        max_depth: engine::DEFAULT_MAX_DEPTH,
    };
    let (result, revision) = clew.check(&req).map_err(|e| e.to_string())?;
    let state = clew.state();
    let model_id = state
        .model
        .as_ref()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let (word, code) = match &result.decision {
        Decision::Allowed => ("allowed", 0),
        Decision::Denied => ("denied", 1),
        Decision::Conditional { .. } => ("conditional", 3),
    };
    if args.json {
        let mut out = json!({
            "decision": word,
            "revision": revision,
            "model_id": model_id,
            "visited": result.visited,
        });
        if let Decision::Conditional { missing } = &result.decision {
            out["missing_context"] = json!(missing);
        }
        if let Some(e) = &result.explanation {
            out["explanation"] = serde_json::to_value(e).map_err(|e| e.to_string())?;
        }
        if let Some(d) = &result.deny_trace {
            out["why_not"] = serde_json::to_value(d).map_err(|e| e.to_string())?;
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "{word}: {} {} {} (revision {revision}, model {model_id})",
            args.user, args.relation, args.object
        );
        if let Decision::Conditional { missing } = &result.decision {
            println!("  missing context: {}", missing.join(", "));
        }
        if let Some(e) = &result.explanation {
            println!("because:");
            for (i, s) in e.path.iter().enumerate() {
                match (&s.tuple, &s.triple) {
                    (Some(t), Some(tr)) => println!(
                        "  {}. {}  [{}]\n     triple <{}> <{}> <{}> in <{}>",
                        i + 1,
                        t,
                        s.rule,
                        tr.subject,
                        tr.predicate,
                        tr.object,
                        tr.graph.as_deref().unwrap_or("default")
                    ),
                    (Some(t), None) => println!("  {}. {}  [{}] (contextual)", i + 1, t, s.rule),
                    _ => println!("  {}. {}  [{}]", i + 1, s.at, s.rule),
                }
                if let Some(c) = &s.condition {
                    println!("     condition {c} met");
                }
            }
        }
        if let Some(d) = &result.deny_trace {
            println!("tried:");
            for t in &d.tried {
                println!("  {}  [{}]: {}", t.at, t.rule, t.missing);
            }
            if d.truncated {
                println!("  … (trace truncated)");
            }
        }
    }
    Ok(ExitCode::from(code))
}

fn open_source(source: &Source) -> Res<Clew> {
    if let Some(dir) = &source.store {
        if !dir.exists() {
            return Err(format!(
                "{}: no such store directory (create it with `clew load`)",
                dir.display()
            ));
        }
        return Clew::open(dir).map_err(|e| format!("{}: {e}", dir.display()));
    }
    let Some(model) = &source.model else {
        return Err("give --store DIR, or --model FILE [--tuples FILE…]".into());
    };
    let clew = Clew::memory().map_err(|e| e.to_string())?;
    let dsl = read_text(model)?;
    clew.write_model(&dsl)
        .map_err(|e| format!("{}: {e}", model.display()))?;
    for f in &source.tuples {
        let ts = read_tuples(f)?;
        clew.write_tuples_bulk(&ts, &[], "cli")
            .map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(clew)
}

fn read_text(path: &Path) -> Res<String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > 64 * 1024 * 1024 {
        return Err(format!("{}: larger than 64 MiB", path.display()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a tuple file: a YAML or JSON list, or JSON lines (`.jsonl`).
fn read_tuples(path: &Path) -> Res<Vec<Tuple>> {
    let text = read_text(path)?;
    let p = path.display();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let specs: Vec<TupleSpec> = match ext {
        "jsonl" | "ndjson" => {
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                out.push(
                    serde_json::from_str(line)
                        .map_err(|e| format!("{p}: line {}, column {}: {e}", i + 1, e.column()))?,
                );
            }
            out
        }
        "json" => serde_json::from_str(&text)
            .map_err(|e| format!("{p}: line {}, column {}: {e}", e.line(), e.column()))?,
        _ => serde_norway::from_str(&text).map_err(|e| match e.location() {
            Some(l) => format!("{p}: line {}, column {}: {e}", l.line(), l.column()),
            None => format!("{p}: {e}"),
        })?,
    };
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.to_tuple()
                .map_err(|e| format!("{p}: tuple {}: {e}", i + 1))
        })
        .collect()
}

fn parse_context(text: Option<&str>) -> Res<Map<String, Value>> {
    match text {
        None => Ok(Map::new()),
        Some(t) => match serde_json::from_str(t) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("--context must be a JSON object".into()),
            Err(e) => Err(format!("--context: column {}: {e}", e.column())),
        },
    }
}
