//! `clew-bench`: runs a bench workload (the format of `shared/bench/gen_workload.py`: model,
//! tuples, checks, lookups, filters, who-can-read queries) on an in-memory Clew, times every
//! phase, writes the answers in the peer harness's formats and compares them with the
//! workload's `answers_ref/`.
//!
//! Everything runs in-process and sequentially on one thread. Each timed phase is run twice:
//! a *cold* pass (the first time each request is seen; the reachability cache holds nothing
//! for its subject yet) and a *warm* pass (the same requests again). Which answers came from
//! the cache is counted and reported; nothing is presented as cold that was not.
//!
//! The run fails (exit status 1) when an answer disagrees with `answers_ref/` or a write is
//! not visible to the next read, unless `--allow-mismatch` is given.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::{Parser, Subcommand};
use clew::engine::{
    self, CheckRequest, DEFAULT_MAX_DEPTH, Decision, LookupRequest, Strategy, UserFilter,
};
use clew::index::{Change, Snapshot, TupleChange};
use clew::iri::TUPLES_GRAPH;
use clew::service::Clew;
use clew::service::bulk::{Consistency, FilterRequest, PageRequest};
use clew::tuple::{ObjectRef, Tuple, TupleSpec, User};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(
    name = "clew-bench",
    about = "Run a bench workload on an in-memory Clew and compare with answers_ref/"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the workload, time every phase, write and compare answers.
    Run(RunArgs),
    /// (Used by `run`, in a fresh process:) resident memory of the index alone, built from
    /// the workload's tuples. Prints one JSON object.
    IndexMemory {
        #[arg(long)]
        workload: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Workload directory (model.fga, tuples.jsonl, checks.jsonl, ..., answers_ref/).
    #[arg(long)]
    workload: PathBuf,
    /// Resolution depth limit of every request (25: OpenFGA's default; SpiceDB's dispatch
    /// depth is 50).
    #[arg(long, default_value_t = DEFAULT_MAX_DEPTH)]
    max_depth: u32,
    /// Where the answers go (default WORKLOAD/answers_clew).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Results JSON (default OUT/results_clew.json).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Phases to run after the load (comma-separated; they run in the order
    /// check,batch,filter,lookup,subjects,write).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "check,batch,filter,lookup,subjects,write"
    )]
    phases: Vec<String>,
    /// Single-tuple grant/revoke rounds in the write phase.
    #[arg(long, default_value_t = 500)]
    writes: usize,
    /// Grant/revoke rounds of one and the same tuple (does toggling a tuple slow writes down?).
    #[arg(long, default_value_t = 2000)]
    toggles: usize,
    /// Skip deriving the exclusions of wildcard who-can-read answers by checks.
    #[arg(long)]
    no_exclusions: bool,
    /// Skip the index-only memory measurement (a child process that rebuilds the index).
    #[arg(long)]
    no_index_memory: bool,
    /// Exit 0 even when answers disagree with answers_ref/.
    #[arg(long)]
    allow_mismatch: bool,
}

#[derive(Deserialize)]
struct CheckQ {
    id: u64,
    user: String,
    relation: String,
    object: String,
}

#[derive(Deserialize)]
struct LookupQ {
    id: u64,
    user: String,
    relation: String,
    #[serde(rename = "type")]
    object_type: String,
    expected_count: Option<u64>,
}

#[derive(Deserialize)]
struct FilterQ {
    id: u64,
    user: String,
    relation: String,
    objects: Vec<String>,
}

#[derive(Deserialize)]
struct SubjectsQ {
    id: u64,
    object: String,
    relation: String,
    user_type: String,
}

/// One check pass: (answers, per-check seconds, cache hits, nodes visited per check).
type CheckPass = (Vec<Result<Value, String>>, Vec<f64>, usize, Vec<u32>);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Run(args) => run(&args),
        Command::IndexMemory { workload } => index_memory(&workload).map(|()| true),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("clew-bench: {e}");
            ExitCode::from(2)
        }
    }
}

// ------------------------------------------------------------------------------------------
// statistics

/// Nearest-rank percentile, as the peers' `common.pct` computes it (Python rounds half to
/// even).
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let n = sorted.len() as f64;
    let k = ((p / 100.0 * n + 0.5).round_ties_even() as i64 - 1).clamp(0, sorted.len() as i64 - 1);
    sorted[k as usize]
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// The peers' `lat_summary`: microseconds, from per-request durations in seconds.
fn lat_summary(seconds: &[f64]) -> Value {
    if seconds.is_empty() {
        return json!({"n": 0});
    }
    let mut us: Vec<f64> = seconds.iter().map(|s| s * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let total: f64 = seconds.iter().sum();
    json!({
        "n": us.len(),
        "p50_us": round(pct(&us, 50.0), 2),
        "p95_us": round(pct(&us, 95.0), 2),
        "p99_us": round(pct(&us, 99.0), 2),
        "max_us": round(us[us.len() - 1], 1),
        "mean_us": round(us.iter().sum::<f64>() / us.len() as f64, 2),
        "total_s": round(total, 4),
        "per_s": if total > 0.0 { round(us.len() as f64 / total, 1) } else { 0.0 },
    })
}

/// Milliseconds summary (lookups).
fn ms_summary(seconds: &[f64]) -> Value {
    if seconds.is_empty() {
        return json!({"n": 0});
    }
    let mut ms: Vec<f64> = seconds.iter().map(|s| s * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    json!({
        "n": ms.len(),
        "p50_ms": round(pct(&ms, 50.0), 3),
        "p95_ms": round(pct(&ms, 95.0), 3),
        "max_ms": round(ms[ms.len() - 1], 3),
        "mean_ms": round(ms.iter().sum::<f64>() / ms.len() as f64, 3),
        "total_s": round(seconds.iter().sum::<f64>(), 4),
    })
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ------------------------------------------------------------------------------------------
// files and machine

fn load_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Res<Vec<T>> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

fn write_jsonl(path: &Path, rows: &[Value]) -> Res<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in rows {
        serde_json::to_writer(&mut f, r)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

/// Parses tuples.jsonl into tuples.
fn read_tuples(path: &Path) -> Res<Vec<Tuple>> {
    let specs: Vec<TupleSpec> = load_jsonl(path)?;
    let mut out = Vec::with_capacity(specs.len());
    for s in &specs {
        out.push(s.to_tuple()?);
    }
    Ok(out)
}

/// A field of /proc/self/status in bytes (`VmRSS`, `VmHWM`).
fn proc_status_bytes(field: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            return kb * 1024;
        }
    }
    0
}

fn rss() -> u64 {
    proc_status_bytes("VmRSS")
}

/// Involuntary context switches of this process so far (how often another process preempted
/// it: on a shared machine, the cause of most multi-millisecond outliers).
fn preemptions() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// How many durations exceed `limit` seconds.
fn over(seconds: &[f64], limit: f64) -> usize {
    seconds.iter().filter(|s| **s > limit).count()
}

fn machine_info() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let mem_kb: f64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({
        "platform": format!("Linux-{kernel}-{}", std::env::consts::ARCH),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "mem_gib": round(mem_kb / 1024.0 / 1024.0, 1),
        "rustc": rustc,
        "profile": if cfg!(debug_assertions) { "debug (numbers not representative)" } else { "release" },
        "when": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Cost of one `Instant::now()` pair, in nanoseconds (the floor under every timing).
fn clock_overhead_ns() -> f64 {
    let n = 100_000;
    let t = Instant::now();
    let mut acc = Duration::ZERO;
    for _ in 0..n {
        let a = Instant::now();
        acc += a.elapsed();
    }
    std::hint::black_box(acc);
    secs(t.elapsed()) * 1e9 / f64::from(n)
}

// ------------------------------------------------------------------------------------------
// index memory (child process)

fn index_memory(workload: &Path) -> Res<()> {
    let tuples = read_tuples(&workload.join("tuples.jsonl"))?;
    let graph: Arc<str> = Arc::from(TUPLES_GRAPH);
    let changes: Vec<TupleChange> = tuples
        .into_iter()
        .map(|tuple| TupleChange {
            change: Change::Add,
            tuple,
            graph: graph.clone(),
        })
        .collect();
    let n = changes.len() as u64;
    let before = rss();
    let t = Instant::now();
    // Built on a thread of its own: glibc gives it its own malloc arena, so the memory the JSON
    // parse freed in the main arena is not reused for the index (which would hide the index
    // from the RSS delta: it is now smaller than that freed memory).
    let snap = std::thread::scope(|s| {
        s.spawn(|| Snapshot::empty(0).apply(1, &changes, TUPLES_GRAPH))
            .join()
    })
    .map_err(|_| "the index build panicked")?;
    let build_s = secs(t.elapsed());
    let after = rss();
    let estimate = snap.edge_bytes_estimate();
    let delta = after.saturating_sub(before);
    println!(
        "{}",
        json!({
            "tuples": n,
            "index_build_s": round(build_s, 3),
            "rss_before_bytes": before,
            "rss_after_bytes": after,
            "rss_delta_bytes": delta,
            "rss_bytes_per_tuple": round(delta as f64 / n.max(1) as f64, 1),
            "edge_bytes_estimate": estimate,
            "estimate_bytes_per_tuple": round(estimate as f64 / n.max(1) as f64, 1),
            "interner_bytes_estimate": snap.interner_bytes_estimate(),
            "estimate_with_interner_bytes_per_tuple": round(
                (estimate + snap.interner_bytes_estimate()) as f64 / n.max(1) as f64,
                1
            ),
            "objects": snap.object_count(),
        })
    );
    std::hint::black_box(&snap);
    Ok(())
}

// ------------------------------------------------------------------------------------------
// the run

/// The answer of one check, in the harness format's value (`true`, `false`, `"conditional"`),
/// or the error text.
fn check_answer(r: &Result<Decision, String>) -> Result<Value, String> {
    match r {
        Ok(Decision::Allowed) => Ok(Value::Bool(true)),
        Ok(Decision::Denied) => Ok(Value::Bool(false)),
        Ok(Decision::Conditional { .. }) => Ok(Value::String("conditional".into())),
        Err(e) => Err(e.clone()),
    }
}

fn answer_row(id: u64, r: &Result<Value, String>) -> Value {
    match r {
        Ok(v) => json!({"id": id, "allowed": v}),
        Err(e) => json!({"id": id, "error": e}),
    }
}

fn type_rel(object: &ObjectRef, relation: &str) -> String {
    format!("{}#{relation}", object.object_type)
}

struct Parsed {
    user: User,
    relation: String,
    object: ObjectRef,
}

struct Ctx<'a> {
    clew: &'a Clew,
    args: &'a RunArgs,
    context: Map<String, Value>,
    res: Map<String, Value>,
    timings: Map<String, Value>,
    notes: Vec<String>,
    failures: Vec<String>,
    /// Every concrete user of type `user` named by a tuple (the universe for exclusions).
    users: Vec<User>,
    /// Every document named by a tuple.
    documents: Vec<ObjectRef>,
    check_answers: Vec<Value>,
    lookup_answers: Vec<Value>,
    filter_answers: Vec<Value>,
    subject_answers: Vec<Value>,
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[clew-bench] {}", msg.as_ref());
}

fn run(args: &RunArgs) -> Res<bool> {
    let wall = Instant::now();
    let w = &args.workload;
    let out = args.out.clone().unwrap_or_else(|| w.join("answers_clew"));
    std::fs::create_dir_all(&out)?;
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(w.join("meta.json"))?)?;
    let mut res = Map::new();
    res.insert(
        "engine".into(),
        json!(format!(
            "clew {} (in-memory store, in-process, one thread)",
            env!("CARGO_PKG_VERSION")
        )),
    );
    res.insert(
        "workload".into(),
        json!({
            "dir": w.display().to_string(),
            "seed": meta.get("seed"),
            "scale": meta.get("scale"),
            "shape": meta.get("shape"),
            "entities": meta.get("entities"),
            "tuples": meta.get("tuples"),
        }),
    );
    res.insert("machine".into(), machine_info());
    res.insert("max_depth".into(), json!(args.max_depth));
    res.insert("loadavg_start".into(), json!(loadavg()));
    let overhead = clock_overhead_ns();
    res.insert("clock_overhead_ns".into(), json!(round(overhead, 1)));
    log(format!(
        "workload {} (max depth {}), clock overhead {overhead:.0} ns",
        w.display(),
        args.max_depth
    ));

    // ---------------------------------------------------------------- load
    let rss0 = rss();
    let t = Instant::now();
    let tuples = read_tuples(&w.join("tuples.jsonl"))?;
    let parse_s = secs(t.elapsed());
    let rss_parsed = rss();
    let mut users = BTreeSet::new();
    let mut documents = BTreeSet::new();
    for tp in &tuples {
        if let User::Object(o) = &tp.user
            && o.object_type == "user"
        {
            users.insert(o.clone());
        }
        if tp.object.object_type == "document" {
            documents.insert(tp.object.clone());
        }
    }
    let dsl = std::fs::read_to_string(w.join("model.fga"))?;
    let clew = Clew::memory()?;
    clew.write_model(&dsl)?;
    let rss_before_load = rss();
    let t = Instant::now();
    let revision = clew.write_tuples_bulk(&tuples, &[], "clew-bench")?;
    let load_s = secs(t.elapsed());
    let rss_loaded = rss();
    let n_tuples = tuples.len() as u64;
    drop(tuples);
    let state = clew.state();
    let estimate = state.index.edge_bytes_estimate();
    let load_delta = rss_loaded.saturating_sub(rss_before_load);
    let per = |b: u64| round(b as f64 / n_tuples.max(1) as f64, 1);
    res.insert(
        "load".into(),
        json!({
            "tuples": n_tuples,
            "index_tuples": state.index.tuple_count(),
            "revision": revision,
            "parse_s": round(parse_s, 3),
            "write_tuples_bulk_s": round(load_s, 3),
            "total_s": round(parse_s + load_s, 3),
            "tuples_per_s": round(n_tuples as f64 / load_s, 0),
            "tuples_per_s_incl_parse": round(n_tuples as f64 / (parse_s + load_s), 0),
            "what": "write_tuples_bulk: validation against the model, Oxigraph in-memory store commit (quads + change log), index build, publish",
        }),
    );
    log(format!(
        "loaded {n_tuples} tuples: parse {parse_s:.2}s, write_tuples_bulk {load_s:.2}s ({:.0} tuples/s)",
        n_tuples as f64 / load_s
    ));
    let mut memory = json!({
        "edge_bytes_estimate": estimate,
        "estimate_bytes_per_tuple": per(estimate),
        "rss_start_bytes": rss0,
        "rss_parsed_tuples_bytes": rss_parsed,
        "rss_delta_store_and_index_bytes": load_delta,
        "rss_store_and_index_bytes_per_tuple": per(load_delta),
        "note": "edge_bytes_estimate: Snapshot::edge_bytes_estimate (edges, reverse edges, bitmaps; not interned strings). rss_delta_store_and_index: VmRSS around write_tuples_bulk (Oxigraph in-memory store + change log + index). index_only: VmRSS around Snapshot::apply of every tuple, in a fresh process, built on its own thread (its own malloc arena); interner_bytes_estimate: the object strings, their offsets and hash table, and the name interner.",
    });
    if !args.no_index_memory {
        match index_memory_child(w) {
            Ok(v) => {
                memory["index_only"] = v;
            }
            Err(e) => memory["index_only_error"] = json!(e.to_string()),
        }
    }
    log(format!(
        "memory: estimate {} B/tuple (edges) + interner = {} B/tuple, store+index RSS {} B/tuple, index-only RSS {} B/tuple ({} with a fixed mmap threshold; build {} s)",
        memory["estimate_bytes_per_tuple"],
        memory["index_only"]["estimate_with_interner_bytes_per_tuple"],
        memory["rss_store_and_index_bytes_per_tuple"],
        memory["index_only"]["rss_bytes_per_tuple"],
        memory["index_only"]["rss_bytes_per_tuple_fixed_mmap_threshold"],
        memory["index_only"]["index_build_s"]
    ));
    res.insert("memory".into(), memory);
    drop(state);

    let mut cx = Ctx {
        clew: &clew,
        args,
        context: Map::new(),
        res,
        timings: Map::new(),
        notes: Vec::new(),
        failures: Vec::new(),
        users: users.into_iter().map(User::Object).collect(),
        documents: documents.into_iter().collect(),
        check_answers: Vec::new(),
        lookup_answers: Vec::new(),
        filter_answers: Vec::new(),
        subject_answers: Vec::new(),
    };
    let phases: HashSet<&str> = args.phases.iter().map(String::as_str).collect();
    let checks: Vec<CheckQ> = load_jsonl(&w.join("checks.jsonl"))?;
    let parsed = parse_checks(&checks)?;
    if phases.contains("check") {
        phase_checks(&mut cx, &checks, &parsed)?;
    }
    if phases.contains("batch") {
        phase_batch(&mut cx, &checks, &parsed)?;
    }
    // Filters before lookups: a lookup caches its subject's bitmap, and a filter for the same
    // subject would then not be cold.
    if phases.contains("filter") {
        phase_filters(&mut cx, &load_jsonl(&w.join("filters.jsonl"))?)?;
    }
    if phases.contains("lookup") {
        phase_lookups(&mut cx, &load_jsonl(&w.join("lookups.jsonl"))?)?;
        phase_cached_checks(&mut cx, &load_jsonl(&w.join("lookups.jsonl"))?)?;
    }
    if phases.contains("subjects") {
        phase_subjects(&mut cx, &load_jsonl(&w.join("subjects.jsonl"))?)?;
    }
    if phases.contains("write") {
        let lookups: Vec<LookupQ> = load_jsonl(&w.join("lookups.jsonl"))?;
        phase_writes(&mut cx, &checks, &parsed, &lookups)?;
    }

    // ---------------------------------------------------------------- answers and agreement
    let mut agreement = Map::new();
    let mut all_agree = true;
    let ref_dir = w.join("answers_ref");
    for (name, rows) in [
        ("checks", &cx.check_answers),
        ("lookups", &cx.lookup_answers),
        ("filters", &cx.filter_answers),
        ("subjects", &cx.subject_answers),
    ] {
        if rows.is_empty() {
            continue;
        }
        write_jsonl(&out.join(format!("{name}.jsonl")), rows)?;
        let ref_path = ref_dir.join(format!("{name}.jsonl"));
        if !ref_path.exists() {
            cx.notes
                .push(format!("no {} to compare with", ref_path.display()));
            continue;
        }
        let theirs: Vec<Value> = load_jsonl(&ref_path)?;
        let requests = request_texts(w, name)?;
        let a = compare(name, rows, &theirs, &requests);
        let differ = a["differ"].as_u64().unwrap_or(0) + a["missing"].as_u64().unwrap_or(0);
        if differ > 0 {
            all_agree = false;
        }
        log(format!(
            "agreement {name}: {}/{} ({} differ, {} unanswered){}",
            a["agree"],
            a["compared"],
            a["differ"],
            a["missing"],
            a.get("partial")
                .map(|p| format!("; {}", p.as_str().unwrap_or("")))
                .unwrap_or_default()
        ));
        if let Some(list) = a["first_disagreements"].as_array() {
            for d in list.iter().take(5) {
                log(format!("  disagreement: {d}"));
            }
        }
        agreement.insert(name.into(), a);
    }
    if let Some(ex) = cx
        .res
        .get("subjects")
        .and_then(|s| s.get("excluded_by_checks"))
        && ex["differ"].as_u64().unwrap_or(0) > 0
    {
        all_agree = false;
    }
    cx.res.insert(
        "agreement_with_answers_ref".into(),
        Value::Object(agreement),
    );
    cx.res.insert("failures".into(), json!(cx.failures));
    cx.res.insert("notes".into(), json!(cx.notes));
    cx.res.insert("loadavg_end".into(), json!(loadavg()));
    cx.res
        .insert("peak_rss_bytes".into(), json!(proc_status_bytes("VmHWM")));
    cx.res
        .insert("wall_s".into(), json!(round(secs(wall.elapsed()), 1)));
    let results = args
        .results
        .clone()
        .unwrap_or_else(|| out.join("results_clew.json"));
    std::fs::write(&results, serde_json::to_string_pretty(&cx.res)?)?;
    std::fs::write(
        out.join("timings.json"),
        serde_json::to_string(&cx.timings)?,
    )?;
    log(format!(
        "wrote {} and answers in {}",
        results.display(),
        out.display()
    ));
    for f in &cx.failures {
        log(format!("FAILURE: {f}"));
    }
    let ok = (all_agree || args.allow_mismatch) && cx.failures.is_empty();
    if !all_agree {
        log(if args.allow_mismatch {
            "answers disagree with answers_ref/ (--allow-mismatch: exit 0)"
        } else {
            "answers disagree with answers_ref/"
        });
    }
    Ok(ok)
}

/// The index-only memory, measured in a fresh process, twice: with glibc's default malloc
/// settings, and with its mmap threshold fixed at the default 128 KiB (no dynamic raise), so that
/// the build's large temporary arrays go back to the system when freed instead of staying as
/// free heap in the RSS (`rss_bytes_per_tuple_fixed_mmap_threshold`).
fn index_memory_child(w: &Path) -> Res<Value> {
    let mut v = index_memory_run(w, None)?;
    if let Ok(fixed) = index_memory_run(w, Some(("MALLOC_MMAP_THRESHOLD_", "131072"))) {
        v["rss_bytes_per_tuple_fixed_mmap_threshold"] = fixed["rss_bytes_per_tuple"].clone();
    }
    Ok(v)
}

fn index_memory_run(w: &Path, env: Option<(&str, &str)>) -> Res<Value> {
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("index-memory").arg("--workload").arg(w);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "index-memory child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn parse_checks(checks: &[CheckQ]) -> Res<Vec<Parsed>> {
    checks
        .iter()
        .map(|c| {
            Ok(Parsed {
                user: User::parse(&c.user)?,
                relation: c.relation.clone(),
                object: ObjectRef::parse(&c.object)?,
            })
        })
        .collect()
}

impl Ctx<'_> {
    fn req<'r>(&'r self, p: &'r Parsed) -> CheckRequest<'r> {
        CheckRequest {
            user: &p.user,
            relation: &p.relation,
            object: &p.object,
            context: &self.context,
            contextual: &[],
            explain: false,
            max_depth: self.args.max_depth,
        }
    }

    /// One sequential pass over the checks: (answers, per-check seconds, cache hits,
    /// `object#relation` nodes each check visited).
    fn check_pass(&self, parsed: &[Parsed]) -> CheckPass {
        let mut answers = Vec::with_capacity(parsed.len());
        let mut lat = Vec::with_capacity(parsed.len());
        let mut visited = Vec::with_capacity(parsed.len());
        let mut hits = 0;
        for p in parsed {
            let req = self.req(p);
            let t = Instant::now();
            let r = self.clew.check(&req);
            let dt = t.elapsed();
            lat.push(secs(dt));
            let r = r.map(|(c, _)| {
                hits += usize::from(c.cache_hit);
                visited.push(c.visited);
                c.decision
            });
            answers.push(check_answer(&r.map_err(|e| e.to_string())));
        }
        (answers, lat, hits, visited)
    }
}

fn phase_checks(cx: &mut Ctx<'_>, checks: &[CheckQ], parsed: &[Parsed]) -> Res<()> {
    let mut passes = Vec::new();
    let mut first: Option<Vec<Result<Value, String>>> = None;
    let mut per_rel: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut per_rel_warm: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (pass, label) in ["cold", "warm"].iter().enumerate() {
        let pre = preemptions();
        let t = Instant::now();
        let (answers, lat, hits, mut visited) = cx.check_pass(parsed);
        let wall_s = secs(t.elapsed());
        let mut s = lat_summary(&lat);
        let total_visited: u64 = visited.iter().map(|v| u64::from(*v)).sum();
        visited.sort_unstable();
        s["visited_nodes"] = json!({
            "what": "object#relation nodes each check evaluated top-down (CheckResult::visited)",
            "p50": visited.get(visited.len() / 2),
            "p95": visited.get(visited.len() * 95 / 100),
            "max": visited.last(),
            "mean": round(total_visited as f64 / visited.len().max(1) as f64, 1),
            "ns_per_node": round(lat.iter().sum::<f64>() * 1e9 / total_visited.max(1) as f64, 1),
        });
        s["preemptions"] = json!(preemptions() - pre);
        s["over_1ms"] = json!(over(&lat, 1e-3));
        s["wall_s"] = json!(round(wall_s, 4));
        s["per_s_wall"] = json!(round(lat.len() as f64 / wall_s, 1));
        s["cache_hits"] = json!(hits);
        s["errors"] = json!(answers.iter().filter(|a| a.is_err()).count());
        log(format!(
            "check {label}: n {} p50 {}µs p95 {}µs p99 {}µs, {} checks/s, cache hits {hits}; nodes visited p50 {} mean {}, {} ns/node",
            s["n"],
            s["p50_us"],
            s["p95_us"],
            s["p99_us"],
            s["per_s"],
            s["visited_nodes"]["p50"],
            s["visited_nodes"]["mean"],
            s["visited_nodes"]["ns_per_node"]
        ));
        for (c, l) in parsed.iter().zip(&lat) {
            let m = if pass == 0 {
                &mut per_rel
            } else {
                &mut per_rel_warm
            };
            m.entry(type_rel(&c.object, &c.relation))
                .or_default()
                .push(*l);
        }
        cx.timings.insert(
            format!("check_{label}_us"),
            json!(lat.iter().map(|s| round(s * 1e6, 3)).collect::<Vec<_>>()),
        );
        passes.push((label.to_string(), s));
        match &first {
            None => first = Some(answers),
            Some(f) => {
                if f != &answers {
                    cx.failures
                        .push("the warm check pass answered differently from the cold one".into());
                }
            }
        }
    }
    let answers = first.unwrap_or_default();
    let allowed = answers
        .iter()
        .filter(|a| matches!(a, Ok(Value::Bool(true))))
        .count();
    let mut errors: Vec<String> = answers.iter().filter_map(|a| a.clone().err()).collect();
    errors.sort();
    errors.dedup();
    let mut v = json!({
        "what": "Clew::check, sequential, one thread; cold: first pass (empty reachability cache; check itself never fills it), warm: the same 20k checks again",
        "allowed_rate": round(allowed as f64 / answers.len().max(1) as f64, 4),
        "error_examples": errors.into_iter().take(3).collect::<Vec<_>>(),
    });
    for (label, s) in passes {
        v[label] = s;
    }
    v["by_relation_cold"] = json!(
        per_rel
            .iter()
            .map(|(k, l)| (k.clone(), lat_summary(l)))
            .collect::<Map<_, _>>()
    );
    v["by_relation_warm"] = json!(
        per_rel_warm
            .iter()
            .map(|(k, l)| (k.clone(), lat_summary(l)))
            .collect::<Map<_, _>>()
    );
    cx.res.insert("check".into(), v);
    cx.check_answers = checks
        .iter()
        .zip(&answers)
        .map(|(c, a)| answer_row(c.id, a))
        .collect();
    Ok(())
}

fn phase_batch(cx: &mut Ctx<'_>, checks: &[CheckQ], parsed: &[Parsed]) -> Res<()> {
    let seq: HashMap<u64, Value> = cx
        .check_answers
        .iter()
        .filter_map(|r| Some((r["id"].as_u64()?, r.get("allowed")?.clone())))
        .collect();
    let mut out = json!({
        "what": "Clew::batch_check, 100 checks per call, in file order",
        "batch": 100,
    });
    for label in ["first", "second"] {
        let mut lat = Vec::new();
        let mut mismatch = 0;
        let mut errors = 0;
        let mut hits = 0;
        let mut n = 0;
        for (cs, ps) in checks.chunks(100).zip(parsed.chunks(100)) {
            let reqs: Vec<CheckRequest<'_>> = ps.iter().map(|p| cx.req(p)).collect();
            let t = Instant::now();
            let r = cx.clew.batch_check(&reqs, Consistency::Latest)?;
            lat.push(secs(t.elapsed()));
            for (c, item) in cs.iter().zip(&r.items) {
                n += 1;
                let got = match &item.result {
                    Ok(c) => {
                        hits += usize::from(c.cache_hit);
                        check_answer(&Ok(c.decision.clone()))
                    }
                    Err(e) => Err(e.clone()),
                };
                match got {
                    Ok(v) => {
                        if seq.get(&c.id).is_some_and(|s| *s != v) {
                            mismatch += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
        }
        let total: f64 = lat.iter().sum();
        let mut ms: Vec<f64> = lat.iter().map(|s| s * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        log(format!(
            "batch_check {label} pass: {:.0} checks/s, batch p50 {:.3} ms, mismatches vs sequential {mismatch}",
            n as f64 / total,
            pct(&ms, 50.0)
        ));
        if mismatch > 0 {
            cx.failures.push(format!(
                "batch_check ({label} pass) differs from sequential checks on {mismatch} checks"
            ));
        }
        out[label] = json!({
            "batches": lat.len(),
            "checks": n,
            "checks_per_s": round(n as f64 / total, 1),
            "batch_p50_ms": round(pct(&ms, 50.0), 4),
            "batch_p95_ms": round(pct(&ms, 95.0), 4),
            "total_s": round(total, 4),
            "mismatch_vs_sequential": mismatch,
            "errors": errors,
            "answered_from_bitmaps": hits,
        });
    }
    cx.res.insert("check_bulk".into(), out);
    Ok(())
}

fn strategy_name(s: Strategy) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{s:?}"))
}

fn phase_lookups(cx: &mut Ctx<'_>, lookups: &[LookupQ]) -> Res<()> {
    let users: Vec<User> = lookups
        .iter()
        .map(|q| User::parse(&q.user))
        .collect::<Result<_, _>>()?;
    let mut out = json!({
        "what": "Clew::lookup, complete answer in one page (objects materialised as ObjectRef); cold: first request for the subject (bottom-up bitmap evaluation, result cached), warm: the same request again (cached bitmap, materialisation only)",
        "requests": lookups.len(),
    });
    let heaviest = lookups
        .iter()
        .enumerate()
        .max_by_key(|(_, q)| q.expected_count.unwrap_or(0))
        .map(|(i, _)| i);
    let mut answers: Vec<Value> = Vec::new();
    for label in ["cold", "warm"] {
        let mut lat = Vec::new();
        let mut strategies: BTreeMap<String, usize> = BTreeMap::new();
        let mut hits = 0;
        let mut per_id = Map::new();
        let mut rows = Vec::new();
        let mut counts = Vec::new();
        let mut node_evals = 0u64;
        let mut checks = 0u64;
        let pre = preemptions();
        for (q, user) in lookups.iter().zip(&users) {
            let req = LookupRequest {
                user,
                relation: &q.relation,
                object_type: &q.object_type,
                context: &cx.context,
                contextual: &[],
                max_depth: cx.args.max_depth,
            };
            let t = Instant::now();
            let r = cx.clew.lookup(
                &req,
                &PageRequest {
                    limit: None,
                    cursor: None,
                },
                Consistency::Latest,
            );
            let dt = secs(t.elapsed());
            per_id.insert(q.id.to_string(), json!(round(dt * 1e3, 4)));
            match r {
                Ok(page) => {
                    lat.push(dt);
                    hits += usize::from(page.cache_hit);
                    *strategies
                        .entry(strategy_name(page.stats.strategy))
                        .or_default() += 1;
                    node_evals += u64::from(page.stats.node_evaluations);
                    checks += u64::from(page.stats.checks);
                    if page.truncated {
                        cx.failures.push(format!(
                            "lookup {} came back truncated without a limit",
                            q.id
                        ));
                    }
                    let mut objs: Vec<String> =
                        page.objects.iter().map(|o| o.to_string()).collect();
                    objs.sort();
                    objs.dedup();
                    counts.push(objs.len());
                    rows.push(json!({
                        "id": q.id, "count": objs.len(), "objects": objs,
                        "ms": round(dt * 1e3, 4),
                        "strategy": strategy_name(page.stats.strategy),
                        "rounds": page.stats.rounds,
                        "node_evaluations": page.stats.node_evaluations,
                        "checks": page.stats.checks,
                        "cache_hit": page.cache_hit,
                    }));
                }
                Err(e) => rows.push(json!({"id": q.id, "error": e.to_string()})),
            }
        }
        let mut s = ms_summary(&lat);
        s["preemptions"] = json!(preemptions() - pre);
        let total_results: usize = counts.iter().sum();
        s["results_total"] = json!(total_results);
        s["results_max"] = json!(counts.iter().max());
        s["us_per_result"] = json!(round(
            lat.iter().sum::<f64>() * 1e6 / total_results.max(1) as f64,
            3
        ));
        s["strategies"] = json!(strategies);
        s["cache_hits"] = json!(hits);
        s["node_evaluations"] = json!(node_evals);
        s["verification_checks"] = json!(checks);
        if let Some(h) = heaviest {
            let q = &lookups[h];
            s["heaviest"] = json!({
                "id": q.id, "user": q.user, "count": counts.get(h),
                "ms": per_id.get(&q.id.to_string()),
                "strategy": rows.get(h).and_then(|r| r.get("strategy")),
            });
        }
        log(format!(
            "lookup {label}: p50 {} ms p95 {} ms max {} ms; heaviest ({} objects) {} ms; strategies {}",
            s["p50_ms"],
            s["p95_ms"],
            s["max_ms"],
            s["heaviest"]["count"],
            s["heaviest"]["ms"],
            s["strategies"]
        ));
        cx.timings
            .insert(format!("lookup_{label}_ms"), Value::Object(per_id));
        out[label] = s;
        if label == "cold" {
            answers = rows;
        } else {
            let a: Vec<&Value> = answers.iter().map(|r| &r["objects"]).collect();
            let b: Vec<&Value> = rows.iter().map(|r| &r["objects"]).collect();
            if a != b {
                cx.failures
                    .push("warm lookups answered differently from cold ones".into());
            }
        }
    }
    // Where the time goes for the heaviest lookup: evaluation vs materialising the objects.
    if let Some(h) = heaviest {
        let q = &lookups[h];
        let state = cx.clew.state();
        let view = state.view()?;
        let req = LookupRequest {
            user: &users[h],
            relation: &q.relation,
            object_type: &q.object_type,
            context: &cx.context,
            contextual: &[],
            max_depth: cx.args.max_depth,
        };
        let mut eval = Vec::new();
        let mut mat = Vec::new();
        let mut strs = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let l = engine::lookup(view, &req)?;
            eval.push(secs(t.elapsed()) * 1e3);
            let t = Instant::now();
            let objs = l.objects(&state.index);
            mat.push(secs(t.elapsed()) * 1e3);
            std::hint::black_box(&objs);
            let t = Instant::now();
            let snap = l.snapshot(&state.index);
            let v: Vec<&str> = l.allowed.iter().map(|o| snap.object_str(o)).collect();
            strs.push(secs(t.elapsed()) * 1e3);
            std::hint::black_box(&v);
        }
        let med = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            round(v[v.len() / 2], 4)
        };
        out["heaviest_breakdown"] = json!({
            "id": q.id,
            "what": "median of 5: engine::lookup (bottom-up evaluation, no service cache), Lookup::objects (ids → ObjectRef), ids → &str only",
            "engine_lookup_ms": med(eval),
            "materialise_objectrefs_ms": med(mat),
            "resolve_strs_ms": med(strs),
        });
        log(format!(
            "lookup heaviest breakdown: {}",
            out["heaviest_breakdown"]
        ));
    }
    cx.res.insert("lookup".into(), out);
    cx.lookup_answers = answers
        .into_iter()
        .map(|mut r| {
            if let Some(m) = r.as_object_mut() {
                for k in [
                    "ms",
                    "strategy",
                    "rounds",
                    "node_evaluations",
                    "checks",
                    "cache_hit",
                ] {
                    m.remove(k);
                }
            }
            r
        })
        .collect();
    Ok(())
}

fn phase_filters(cx: &mut Ctx<'_>, filters: &[FilterQ]) -> Res<()> {
    let users: Vec<User> = filters
        .iter()
        .map(|q| User::parse(&q.user))
        .collect::<Result<_, _>>()?;
    let mut out = json!({
        "what": "Clew::filter of each request's candidates (the planner chooses: per-candidate checks or one bitmap evaluation); cold: first request for the subject, warm: the same again",
        "requests": filters.len(),
        "candidates": filters.first().map(|f| f.objects.len()),
    });
    let mut answers = Vec::new();
    for label in ["cold", "warm"] {
        let mut lat = Vec::new();
        let mut strategies: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_strategy: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut hits = 0;
        let mut per_id = Map::new();
        let mut rows = Vec::new();
        let pre = preemptions();
        for (q, user) in filters.iter().zip(&users) {
            let req = FilterRequest {
                user,
                relation: &q.relation,
                object_type: "document",
                candidates: &q.objects,
                context: &cx.context,
                contextual: &[],
                max_depth: cx.args.max_depth,
                explain: false,
                strategy: None,
            };
            let t = Instant::now();
            let r = cx.clew.filter(&req, Consistency::Latest);
            let dt = secs(t.elapsed());
            per_id.insert(q.id.to_string(), json!(round(dt * 1e6, 2)));
            match r {
                Ok(f) => {
                    lat.push(dt);
                    hits += usize::from(f.cache_hit);
                    let st = strategy_name(f.plan.strategy);
                    *strategies.entry(st.clone()).or_default() += 1;
                    by_strategy.entry(st).or_default().push(dt);
                    if !f.conditional.is_empty() {
                        cx.notes.push(format!(
                            "filter {} left {} candidates conditional",
                            q.id,
                            f.conditional.len()
                        ));
                    }
                    let mut allowed: Vec<String> = f
                        .allowed
                        .into_iter()
                        .map(|i| i.object.to_string())
                        .collect();
                    allowed.sort();
                    rows.push(json!({"id": q.id, "count": allowed.len(), "allowed": allowed}));
                }
                Err(e) => rows.push(json!({"id": q.id, "error": e.to_string()})),
            }
        }
        let mut s = lat_summary(&lat);
        s["preemptions"] = json!(preemptions() - pre);
        s["strategies"] = json!(strategies);
        s["by_strategy"] = json!(
            by_strategy
                .iter()
                .map(|(k, l)| (k.clone(), lat_summary(l)))
                .collect::<Map<_, _>>()
        );
        s["cache_hits"] = json!(hits);
        s["candidates_per_s"] = json!(round(
            filters.iter().map(|f| f.objects.len()).sum::<usize>() as f64
                / lat.iter().sum::<f64>().max(1e-12),
            0
        ));
        log(format!(
            "filter {label}: p50 {} µs p95 {} µs max {} µs; strategies {}",
            s["p50_us"], s["p95_us"], s["max_us"], s["strategies"]
        ));
        cx.timings
            .insert(format!("filter_{label}_us"), Value::Object(per_id));
        out[label] = s;
        if label == "cold" {
            answers = rows;
        } else if answers != rows {
            cx.failures
                .push("warm filters answered differently from cold ones".into());
        }
    }
    cx.res.insert("filter".into(), out);
    cx.filter_answers = answers;
    Ok(())
}

/// Checks whose subject has a cached result bitmap (the lookup subjects, right after their
/// lookups): the service answers them by one membership test. Half the objects are in the
/// subject's lookup answer, half are not; every answer must agree with the lookup.
fn phase_cached_checks(cx: &mut Ctx<'_>, lookups: &[LookupQ]) -> Res<()> {
    let per_subject = 50;
    let answers: HashMap<u64, HashSet<String>> = cx
        .lookup_answers
        .iter()
        .filter_map(|r| {
            let objs = r["objects"].as_array()?;
            Some((
                r["id"].as_u64()?,
                objs.iter()
                    .filter_map(|o| o.as_str().map(String::from))
                    .collect(),
            ))
        })
        .collect();
    let mut reqs: Vec<(Parsed, bool)> = Vec::new();
    for (i, q) in lookups.iter().enumerate() {
        let Some(allowed) = answers.get(&q.id) else {
            continue;
        };
        let user = User::parse(&q.user)?;
        let mut yes: Vec<&String> = allowed.iter().collect();
        yes.sort();
        let step = (yes.len() / per_subject).max(1);
        for o in yes.iter().step_by(step).take(per_subject) {
            reqs.push((
                Parsed {
                    user: user.clone(),
                    relation: q.relation.clone(),
                    object: ObjectRef::parse(o)?,
                },
                true,
            ));
        }
        let start = (i * 7919) % cx.documents.len().max(1);
        for d in cx
            .documents
            .iter()
            .skip(start)
            .filter(|d| !allowed.contains(&d.to_string()))
            .take(per_subject)
        {
            reqs.push((
                Parsed {
                    user: user.clone(),
                    relation: q.relation.clone(),
                    object: d.clone(),
                },
                false,
            ));
        }
    }
    let mut lat = Vec::with_capacity(reqs.len());
    let mut hits = 0;
    let mut wrong = Vec::new();
    for (p, want) in &reqs {
        let req = cx.req(p);
        let t = Instant::now();
        let r = cx.clew.check(&req);
        lat.push(secs(t.elapsed()));
        match r {
            Ok((c, _)) => {
                hits += usize::from(c.cache_hit);
                if (c.decision == Decision::Allowed) != *want {
                    wrong.push(format!(
                        "check {}#{}@{} = {:?}, but lookup says {want}",
                        p.object, p.relation, p.user, c.decision
                    ));
                }
            }
            Err(e) => wrong.push(format!("check {}#{}@{}: {e}", p.object, p.relation, p.user)),
        }
    }
    let mut s = lat_summary(&lat);
    s["what"] = json!(
        "Clew::check for the lookup subjects right after their lookups (a cached result bitmap answers by membership): 50 objects of each subject's lookup answer and 50 documents outside it"
    );
    s["cache_hits"] = json!(hits);
    s["inconsistent_with_lookup"] = json!(wrong.len());
    log(format!(
        "check, subject's bitmap cached: n {} p50 {}µs p95 {}µs p99 {}µs, cache hits {hits}, inconsistent with lookup {}",
        s["n"],
        s["p50_us"],
        s["p95_us"],
        s["p99_us"],
        wrong.len()
    ));
    for w in wrong.iter().take(5) {
        cx.failures.push(w.clone());
    }
    cx.res.insert("check_cached_subject".into(), s);
    Ok(())
}

fn phase_subjects(cx: &mut Ctx<'_>, subjects: &[SubjectsQ]) -> Res<()> {
    let state = cx.clew.state();
    let view = state.view()?;
    let mut lat = Vec::new();
    let mut rows = Vec::new();
    let mut per_id = Map::new();
    let mut wildcards = 0;
    let mut concrete = Vec::new();
    let mut excl_lat = Vec::new();
    for q in subjects {
        let object = ObjectRef::parse(&q.object)?;
        let filter = UserFilter {
            user_type: q.user_type.clone(),
            relation: None,
        };
        let t = Instant::now();
        let r = engine::list_users(view, &object, &q.relation, &filter, &cx.context, &[]);
        let dt = secs(t.elapsed());
        per_id.insert(q.id.to_string(), json!(round(dt * 1e3, 4)));
        match r {
            Ok(list) => {
                lat.push(dt);
                let wildcard = list
                    .iter()
                    .any(|u| matches!(u, User::Wildcard(t) if *t == q.user_type));
                let mut users: Vec<String> = list
                    .iter()
                    .filter(|u| matches!(u, User::Object(o) if o.object_type == q.user_type))
                    .map(|u| u.to_string())
                    .collect();
                users.sort();
                users.dedup();
                concrete.push(users.len());
                let mut row = if wildcard {
                    wildcards += 1;
                    json!({"id": q.id, "wildcard": true, "excluded": Value::Null,
                           "excluded_note": "list_users does not compute excluded users"})
                } else {
                    json!({"id": q.id, "wildcard": false, "users": users})
                };
                if wildcard && !cx.args.no_exclusions {
                    // Not engine functionality: the bench derives the exclusions by checking
                    // every user the tuples name (a user named nowhere reads by the wildcard).
                    let t = Instant::now();
                    let mut excluded = Vec::new();
                    for u in &cx.users {
                        let req = CheckRequest {
                            user: u,
                            relation: &q.relation,
                            object: &object,
                            context: &cx.context,
                            contextual: &[],
                            explain: false,
                            max_depth: cx.args.max_depth,
                        };
                        match cx.clew.check(&req) {
                            Ok((c, _)) if c.decision == Decision::Allowed => {}
                            _ => excluded.push(u.to_string()),
                        }
                    }
                    excl_lat.push(secs(t.elapsed()));
                    excluded.sort();
                    row["excluded_by_checks"] = json!(excluded);
                }
                rows.push(row);
            }
            Err(e) => rows.push(json!({"id": q.id, "error": e.to_string()})),
        }
    }
    let mut s = ms_summary(&lat);
    s["what"] = json!(
        "engine::list_users (document#read, user type 'user'): candidates from positive paths, each confirmed by check; excluded users of a wildcard answer are not computed by it"
    );
    s["with_wildcard"] = json!(wildcards);
    concrete.sort_unstable();
    s["concrete_users_median"] = json!(concrete.get(concrete.len() / 2));
    s["concrete_users_max"] = json!(concrete.last());
    // Exclusions derived by the bench: compared here, since answers_ref/ holds them.
    if !excl_lat.is_empty() {
        let theirs: Vec<Value> =
            load_jsonl(&cx.args.workload.join("answers_ref/subjects.jsonl")).unwrap_or_default();
        let t: HashMap<u64, &Value> = theirs
            .iter()
            .filter_map(|r| Some((r["id"].as_u64()?, r)))
            .collect();
        let (mut agree, mut compared, mut differ) = (0, 0, Vec::new());
        for r in &rows {
            let (Some(id), Some(mine)) = (r["id"].as_u64(), r.get("excluded_by_checks")) else {
                continue;
            };
            let Some(o) = t.get(&id) else { continue };
            if o["wildcard"] != Value::Bool(true) {
                continue;
            }
            compared += 1;
            if *mine == o["excluded"] {
                agree += 1;
            } else {
                differ.push(json!({"id": id, "expected": o["excluded"], "actual": mine}));
            }
        }
        log(format!(
            "subjects: exclusions derived by checks agree {agree}/{compared}"
        ));
        s["excluded_by_checks"] = json!({
            "what": "bench-side: for each wildcard answer, check(u, read, object) for every user named by a tuple; the denied ones are the exclusions (not an engine API)",
            "universe": cx.users.len(),
            "queries": excl_lat.len(),
            "ms_per_query_median": ms_summary(&excl_lat)["p50_ms"],
            "agree": agree, "compared": compared, "differ": differ.len(),
            "first_disagreements": differ.into_iter().take(5).collect::<Vec<_>>(),
        });
    }
    log(format!(
        "subjects: p50 {} ms p95 {} ms max {} ms ({} with wildcard)",
        s["p50_ms"], s["p95_ms"], s["max_ms"], wildcards
    ));
    cx.timings
        .insert("subjects_ms".into(), Value::Object(per_id));
    cx.res.insert("subjects".into(), s);
    cx.subject_answers = rows;
    Ok(())
}

/// Single-tuple write → next read: grant `document#viewer@user` on pairs the checks found
/// denied, check that the next read sees it, then revoke and check again.
fn phase_writes(
    cx: &mut Ctx<'_>,
    checks: &[CheckQ],
    parsed: &[Parsed],
    lookups: &[LookupQ],
) -> Res<()> {
    let denied: HashSet<u64> = cx
        .check_answers
        .iter()
        .filter(|r| r.get("allowed") == Some(&Value::Bool(false)))
        .filter_map(|r| r["id"].as_u64())
        .collect();
    let mut seen = HashSet::new();
    let pairs: Vec<&Parsed> = checks
        .iter()
        .zip(parsed)
        .filter(|(c, p)| {
            p.relation == "read"
                && p.object.object_type == "document"
                && matches!(p.user, User::Object(_))
                && (denied.is_empty() || denied.contains(&c.id))
                && seen.insert((c.user.clone(), c.object.clone()))
        })
        .map(|(_, p)| p)
        .take(cx.args.writes)
        .collect();
    let mut grant = (Vec::new(), Vec::new(), Vec::new());
    let mut revoke = (Vec::new(), Vec::new(), Vec::new());
    let mut skipped = 0;
    let mut failures = Vec::new();
    let pre = preemptions();
    for p in &pairs {
        let tuple = Tuple {
            user: p.user.clone(),
            relation: "viewer".into(),
            object: p.object.clone(),
            condition: None,
        };
        let req = cx.req(p);
        // Only pairs that are denied now (the checks phase may not have run).
        if !matches!(cx.clew.check(&req), Ok((c, _)) if c.decision == Decision::Denied) {
            skipped += 1;
            continue;
        }
        for (writes, deletes, want, acc) in [
            (
                std::slice::from_ref(&tuple),
                Vec::new(),
                Decision::Allowed,
                &mut grant,
            ),
            (&[][..], vec![tuple.key()], Decision::Denied, &mut revoke),
        ] {
            let t0 = Instant::now();
            let rev = cx.clew.write_tuples(writes, &deletes, "clew-bench")?;
            let t1 = Instant::now();
            let r = cx.clew.check(&req);
            let t2 = Instant::now();
            match r {
                Ok((c, read_rev)) if c.decision == want && read_rev >= rev => {}
                other => failures.push(format!(
                    "write {} {tuple} (revision {rev}) not visible to the next check: {:?}",
                    if want == Decision::Allowed {
                        "grant"
                    } else {
                        "revoke"
                    },
                    other.map(|(c, r)| (c.decision, r))
                )),
            }
            acc.0.push(secs(t1 - t0));
            acc.1.push(secs(t2 - t1));
            acc.2.push(secs(t2 - t0));
        }
    }
    cx.failures.extend(failures);
    let preempted = preemptions() - pre;
    let summarize = |(w, r, total): &(Vec<f64>, Vec<f64>, Vec<f64>)| {
        json!({"write_then_check": lat_summary(total), "write": lat_summary(w), "check": lat_summary(r),
               "over_1ms": over(total, 1e-3),
               "first_100_write_p50_us": lat_summary(&w[..w.len().min(100)])["p50_us"],
               "last_100_write_p50_us": lat_summary(&w[w.len().saturating_sub(100)..])["p50_us"]})
    };
    for (name, acc) in [("grant", &grant), ("revoke", &revoke)] {
        cx.timings.insert(
            format!("write_{name}_then_check_us"),
            json!(acc.2.iter().map(|s| round(s * 1e6, 2)).collect::<Vec<_>>()),
        );
    }
    let mut out = json!({
        "what": "Clew::write_tuples of one tuple (grant document#viewer@user on a pair the checks found denied; then revoke it), then Clew::check of that pair at the latest revision must see it; write_then_check is the time from the write call to the read's answer",
        "rounds": grant.0.len(),
        "skipped_not_denied": skipped,
        "tuples_in_store": cx.clew.state().index.tuple_count(),
        "preemptions": preempted,
        "grant": summarize(&grant),
        "revoke": summarize(&revoke),
    });
    log(format!(
        "write→check visible: grant p50 {}µs p99 {}µs; revoke p50 {}µs p99 {}µs ({} rounds; over 1 ms: {} grants, {} revokes; {preempted} preemptions)",
        out["grant"]["write_then_check"]["p50_us"],
        out["grant"]["write_then_check"]["p99_us"],
        out["revoke"]["write_then_check"]["p50_us"],
        out["revoke"]["write_then_check"]["p99_us"],
        grant.0.len(),
        out["grant"]["over_1ms"],
        out["revoke"]["over_1ms"],
    ));

    // Subjects with a cached lookup bitmap: the next lookup must see the write.
    let mut lk = (Vec::new(), Vec::new());
    for q in lookups.iter().rev().take(10) {
        let user = User::parse(&q.user)?;
        let req = LookupRequest {
            user: &user,
            relation: &q.relation,
            object_type: &q.object_type,
            context: &cx.context,
            contextual: &[],
            max_depth: cx.args.max_depth,
        };
        let page = PageRequest::default();
        let before = cx.clew.lookup(&req, &page, Consistency::Latest)?;
        let have: HashSet<String> = before.objects.iter().map(|o| o.to_string()).collect();
        let Some(doc) = cx
            .documents
            .iter()
            .find(|d| !have.contains(&d.to_string()))
            .cloned()
        else {
            continue;
        };
        let tuple = Tuple {
            user: user.clone(),
            relation: "viewer".into(),
            object: doc.clone(),
            condition: None,
        };
        for (grant, acc) in [(true, &mut lk.0), (false, &mut lk.1)] {
            let t0 = Instant::now();
            if grant {
                cx.clew
                    .write_tuples(std::slice::from_ref(&tuple), &[], "clew-bench")?;
            } else {
                cx.clew.write_tuples(&[], &[tuple.key()], "clew-bench")?;
            }
            let after = cx.clew.lookup(&req, &page, Consistency::Latest)?;
            let dt = secs(t0.elapsed());
            if after.objects.iter().any(|o| *o == *doc.to_string()) != grant {
                cx.failures.push(format!(
                    "write {} {tuple} not visible to the next lookup (cached subject)",
                    if grant { "grant" } else { "revoke" }
                ));
            }
            acc.push(dt);
        }
    }
    // One tuple granted and revoked over and over (what a criterion loop does).
    if let Some(p) = pairs.first().filter(|_| cx.args.toggles >= 200) {
        let tuple = Tuple {
            user: p.user.clone(),
            relation: "viewer".into(),
            object: p.object.clone(),
            condition: None,
        };
        let req = cx.req(p);
        let mut lat = Vec::with_capacity(cx.args.toggles);
        let mut wrong = 0;
        for _ in 0..cx.args.toggles {
            let t = Instant::now();
            cx.clew
                .write_tuples(std::slice::from_ref(&tuple), &[], "clew-bench")?;
            let a = cx.clew.check(&req)?.0.decision;
            cx.clew.write_tuples(&[], &[tuple.key()], "clew-bench")?;
            let d = cx.clew.check(&req)?.0.decision;
            lat.push(secs(t.elapsed()));
            wrong += usize::from(a != Decision::Allowed || d != Decision::Denied);
        }
        let n = lat.len();
        out["same_tuple_toggled"] = json!({
            "what": "one tuple granted, checked, revoked, checked, repeatedly; per round (2 writes + 2 checks)",
            "tuple": tuple.to_string(),
            "rounds": n,
            "first_100": lat_summary(&lat[..100]),
            "last_100": lat_summary(&lat[n - 100..]),
            "wrong_answers": wrong,
        });
        log(format!(
            "same tuple toggled {n}×: round p50 first 100 {} µs, last 100 {} µs",
            out["same_tuple_toggled"]["first_100"]["p50_us"],
            out["same_tuple_toggled"]["last_100"]["p50_us"]
        ));
        if wrong > 0 {
            cx.failures.push(format!(
                "toggling {tuple}: {wrong} rounds where the next check did not see the write"
            ));
        }
    }
    out["lookup_after_write"] = json!({
        "what": "the 10 heaviest lookup subjects (cached bitmaps): grant one new document, then Clew::lookup must list it; revoke, then it must not (the write invalidates the subject's cached bitmap, so this lookup is re-evaluated)",
        "grant_then_lookup_ms": ms_summary(&lk.0),
        "revoke_then_lookup_ms": ms_summary(&lk.1),
    });
    cx.res.insert("write".into(), out);
    Ok(())
}

// ------------------------------------------------------------------------------------------
// agreement

/// The request text of each id (for reporting disagreements).
fn request_texts(w: &Path, name: &str) -> Res<HashMap<u64, Value>> {
    let rows: Vec<Value> = load_jsonl(&w.join(format!("{name}.jsonl")))?;
    Ok(rows
        .into_iter()
        .filter_map(|mut r| {
            let id = r["id"].as_u64()?;
            if let Some(m) = r.as_object_mut()
                && let Some(Value::Array(objs)) = m.remove("objects")
            {
                m.insert("candidates".into(), json!(objs.len()));
            }
            Some((id, r))
        })
        .collect())
}

fn list_diff(mine: &Value, theirs: &Value) -> Value {
    let a: BTreeSet<&str> = mine
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let b: BTreeSet<&str> = theirs
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let missing: Vec<&&str> = b.difference(&a).collect();
    let extra: Vec<&&str> = a.difference(&b).collect();
    json!({
        "expected_count": b.len(), "actual_count": a.len(),
        "missing": missing.len(), "extra": extra.len(),
        "first_missing": missing.into_iter().take(5).collect::<Vec<_>>(),
        "first_extra": extra.into_iter().take(5).collect::<Vec<_>>(),
    })
}

/// Compares answer rows by id. For subjects, a wildcard answer's exclusions are not compared
/// (the engine does not compute them; see `excluded_by_checks`).
fn compare(name: &str, mine: &[Value], theirs: &[Value], requests: &HashMap<u64, Value>) -> Value {
    let t: HashMap<u64, &Value> = theirs
        .iter()
        .filter_map(|r| Some((r["id"].as_u64()?, r)))
        .collect();
    let (mut agree, mut compared, mut missing) = (0u64, 0u64, 0u64);
    let mut differ = Vec::new();
    let mut partial = 0u64;
    for r in mine {
        let Some(id) = r["id"].as_u64() else { continue };
        let Some(o) = t.get(&id) else { continue };
        compared += 1;
        let request = requests.get(&id).cloned().unwrap_or(Value::Null);
        if let Some(e) = r.get("error") {
            missing += 1;
            differ.push(json!({"id": id, "request": request, "expected": expected_text(name, o), "actual_error": e}));
            continue;
        }
        let (same, detail) = match name {
            "checks" => (
                r["allowed"] == o["allowed"],
                json!({"expected": o["allowed"], "actual": r["allowed"]}),
            ),
            "lookups" => (
                r["objects"] == o["objects"],
                list_diff(&r["objects"], &o["objects"]),
            ),
            "filters" => (
                r["allowed"] == o["allowed"],
                list_diff(&r["allowed"], &o["allowed"]),
            ),
            _ => {
                if r["wildcard"] != o["wildcard"] {
                    (
                        false,
                        json!({"expected": expected_text(name, o), "actual_wildcard": r["wildcard"],
                               "actual_users": r["users"].as_array().map(Vec::len)}),
                    )
                } else if r["wildcard"] == Value::Bool(true) {
                    partial += 1;
                    (true, Value::Null)
                } else {
                    (
                        r["users"] == o["users"],
                        list_diff(&r["users"], &o["users"]),
                    )
                }
            }
        };
        if same {
            agree += 1;
        } else {
            let mut d = json!({"id": id, "request": request});
            if let (Some(m), Some(dm)) = (d.as_object_mut(), detail.as_object()) {
                for (k, v) in dm {
                    m.insert(k.clone(), v.clone());
                }
            }
            differ.push(d);
        }
    }
    let n_differ = differ.len() as u64 - missing;
    let mut v = json!({
        "agree": agree,
        "compared": compared,
        "expected_rows": theirs.len(),
        "differ": n_differ,
        "missing": missing,
        "differ_ids": differ.iter().filter_map(|d| d["id"].as_u64()).take(50).collect::<Vec<_>>(),
        "first_disagreements": differ.into_iter().take(10).collect::<Vec<_>>(),
    });
    if name == "subjects" && partial > 0 {
        v["partial"] = json!(format!(
            "{partial} wildcard answers compared on the wildcard flag only (excluded users not computed by list_users)"
        ));
    }
    v
}

fn expected_text(name: &str, o: &Value) -> Value {
    match name {
        "checks" => o["allowed"].clone(),
        "lookups" | "filters" => json!({"count": o["count"]}),
        _ => json!({
            "wildcard": o["wildcard"],
            "users": o["users"].as_array().map(Vec::len),
            "excluded": o["excluded"].as_array().map(Vec::len),
        }),
    }
}
