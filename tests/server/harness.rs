//! Spawning `clew serve` and talking to it: a [`Server`] guard that owns the child process
//! (killed on drop, so a failed test leaves nothing running), a small JSON client over `ureq`,
//! a Server-Sent Events reader, and a seeded random number generator whose seed is printed.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T = ()> = Result<T, Error>;

/// Longest wait for the startup line.
const STARTUP: Duration = Duration::from_secs(30);

/// The model most tests use: direct grants, grants through a group, and `batch` objects the
/// durability tests write three members at a time.
pub const MODEL: &str = "model
  schema 1.1
type user
type group
  relations
    define member: [user]
type doc
  relations
    define viewer: [user, group#member]
type batch
  relations
    define member: [user]
";

/// A running `clew serve`. Dropping it kills the process (SIGKILL) and waits for it.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub base: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    pub agent: ureq::Agent,
}

/// An agent that reports every status as a response (not an error) and never hangs long.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent()
}

fn drain(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
    addr: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let prefix = "clew listening on http://";
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            // Recorded before the address is announced, so whoever gets the address also
            // finds the startup line in the output.
            if let Ok(mut s) = into.lock() {
                s.push_str(&line);
                s.push('\n');
            }
            if let (Some(tx), Some(rest)) = (&addr, line.strip_prefix(prefix)) {
                let a = rest.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(a);
            }
        }
    });
}

impl Server {
    /// `clew serve --listen 127.0.0.1:0 ARGS…`, once it has printed its address.
    pub fn start(args: &[&str]) -> Res<Server> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clew"));
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        // The caller's CLEW_* settings must not leak into the test.
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("CLEW_")) {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn()?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            drain(out, stdout.clone(), Some(tx));
        }
        if let Some(err) = child.stderr.take() {
            drain(err, stderr.clone(), None);
        }
        let mut server = Server {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            stdout,
            stderr,
            agent: agent(Duration::from_secs(20)),
        };
        let addr = match rx.recv_timeout(STARTUP) {
            Ok(a) => a,
            Err(_) => {
                let status = server.wait_exit(Duration::from_millis(200));
                return Err(format!(
                    "no startup line (exit {status:?})\nstdout:\n{}\nstderr:\n{}",
                    server.stdout(),
                    server.stderr()
                )
                .into());
            }
        };
        server.addr = addr.parse()?;
        server.base = format!("http://{addr}");
        Ok(server)
    }

    /// A server on `dir` (the on-disk store) with `extra` flags.
    pub fn on_disk(dir: &Path, extra: &[&str]) -> Res<Server> {
        let d = dir.to_str().ok_or("data dir is not UTF-8")?;
        let mut args = vec!["--data-dir", d];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn pid(&self) -> Res<u32> {
        Ok(self.child.as_ref().ok_or("the server has exited")?.id())
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) -> Res {
        if let Some(mut c) = self.child.take() {
            let killed = c.kill();
            c.wait()?;
            killed?;
        }
        Ok(())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> Res {
        let pid = self.pid()?.to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !status.success() {
            return Err(format!("kill -TERM {pid}: {status}").into());
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.child.as_mut()?;
            match c.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return None,
            }
        }
    }

    /// SIGTERM, then require a clean exit (status 0) within `limit`.
    pub fn stop(&mut self, limit: Duration) -> Res {
        self.terminate()?;
        match self.wait_exit(limit) {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(format!("exited with {s}; stderr:\n{}", self.stderr()).into()),
            None => Err(format!("still running {limit:?} after SIGTERM").into()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn post(&self, path: &str, body: &Value) -> Res<(u16, Value)> {
        reply(self.agent.post(self.url(path)).send_json(body)?)
    }

    pub fn get(&self, path: &str) -> Res<(u16, Value)> {
        reply(self.agent.get(self.url(path)).call()?)
    }

    /// POST that must succeed.
    pub fn ok(&self, path: &str, body: &Value) -> Res<Value> {
        match self.post(path, body)? {
            (200, v) => Ok(v),
            (s, v) => Err(format!("POST {path} {body}: {s} {v}").into()),
        }
    }

    pub fn revision(&self) -> Res<u64> {
        match self.get("/v1/revision")? {
            (200, v) => v["revision"]
                .as_u64()
                .ok_or_else(|| format!("no revision in {v}").into()),
            (s, v) => Err(format!("GET /v1/revision: {s} {v}").into()),
        }
    }

    pub fn write_model(&self, dsl: &str) -> Res<u64> {
        let v = self.ok("/v1/model", &json!({ "dsl": dsl }))?;
        v["revision"]
            .as_u64()
            .ok_or_else(|| format!("no revision in {v}").into())
    }

    /// A tuple write that must succeed; its revision.
    pub fn write(&self, body: &Value) -> Res<u64> {
        let v = self.ok("/v1/tuples/write", body)?;
        v["revision"]
            .as_u64()
            .ok_or_else(|| format!("no revision in {v}").into())
    }

    pub fn allowed(&self, user: &str, relation: &str, object: &str) -> Res<bool> {
        let v = self.ok(
            "/v1/check",
            &json!({"user": user, "relation": relation, "object": object}),
        )?;
        v["allowed"]
            .as_bool()
            .ok_or_else(|| format!("no decision in {v}").into())
    }

    /// Every stored tuple matching `pattern` (a `/v1/tuples/read` body), following cursors.
    pub fn read_all(&self, pattern: &Value, page_size: usize) -> Res<Vec<Value>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut body = pattern.clone();
            body["page_size"] = json!(page_size);
            if let Some(c) = &cursor {
                body["cursor"] = json!(c);
            }
            let v = self.ok("/v1/tuples/read", &body)?;
            out.extend(v["tuples"].as_array().ok_or("no tuples")?.iter().cloned());
            match v["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(out),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.kill();
        // Captured by the test harness: shown only when the test fails.
        let err = self.stderr();
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        if !tail.is_empty() {
            eprintln!("--- clew serve {} stderr (last lines) ---", self.base);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Status and body (JSON, or the text as a JSON string when it is not JSON).
pub fn reply(mut r: ureq::http::Response<ureq::Body>) -> Res<(u16, Value)> {
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string()?;
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, v))
}

/// Response headers: (lower-cased name, value).
pub type Headers = Vec<(String, String)>;

/// Reads one HTTP/1.1 response from a raw connection: status, headers (names lower-cased),
/// and the `content-length` body as JSON.
pub fn read_response(tcp: &mut std::net::TcpStream) -> Res<(u16, Headers, Value)> {
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.lines();
            let status: u16 = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .ok_or("no status line")?
                .parse()?;
            let headers: Headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .ok_or_else(|| format!("no content-length in {head}"))?
                .1
                .parse()?;
            if buf.len() >= end + 4 + length {
                let body = &buf[end + 4..end + 4 + length];
                return Ok((status, headers, serde_json::from_slice(body)?));
            }
        }
        let n = tcp.read(&mut chunk)?;
        if n == 0 {
            return Err(format!(
                "connection closed mid-response: {}",
                String::from_utf8_lossy(&buf)
            )
            .into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Reads a `text/event-stream` body event by event.
pub struct Sse {
    lines: std::io::Lines<BufReader<ureq::BodyReader<'static>>>,
}

impl Sse {
    /// Opens `GET path` as a stream, with `Last-Event-ID` when given.
    pub fn open(server: &Server, path: &str, last_event_id: Option<u64>) -> Res<Sse> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_per_read(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        let mut req = agent.get(server.url(path));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.call()?;
        let status = resp.status().as_u16();
        if status != 200 {
            let (_, v) = reply(resp)?;
            return Err(format!("GET {path}: {status} {v}").into());
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !ct.starts_with("text/event-stream") {
            return Err(format!("GET {path}: content-type {ct}").into());
        }
        Ok(Sse {
            lines: BufReader::new(resp.into_body().into_reader()).lines(),
        })
    }

    /// The next event (comments and keep-alives skipped); `None` when the stream ends.
    pub fn next_event(&mut self) -> Res<Option<Event>> {
        let mut e = Event::default();
        let mut any = false;
        for line in self.lines.by_ref() {
            let line = line?;
            if line.is_empty() {
                if any {
                    return Ok(Some(e));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "id" => e.id = Some(value.to_string()),
                "event" => e.event = value.to_string(),
                "data" => {
                    if !e.data.is_empty() {
                        e.data.push('\n');
                    }
                    e.data.push_str(value);
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

/// SplitMix64: tiny, seeded, good enough to pick delays and operations reproducibly.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `CLEW_TEST_SEED` if set, else from the clock; the seed is printed so a
    /// failure can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("CLEW_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x5eed)
            });
        eprintln!("{test}: seed {seed} (rerun with CLEW_TEST_SEED={seed})");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }
}

/// The three tuples of batch `id`: users a, b and c are members of `batch:ID`.
pub fn batch_tuples(id: &str) -> Vec<Value> {
    ["a", "b", "c"]
        .iter()
        .map(|u| json!({"user": format!("user:{u}"), "relation": "member", "object": format!("batch:{id}")}))
        .collect()
}

/// Stored batches: batch id → its members, from every `batch` tuple in the store.
pub fn stored_batches(
    server: &Server,
) -> Res<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>> {
    let mut out = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for t in server.read_all(&json!({"object": "batch:"}), 1000)? {
        let object = t["object"].as_str().ok_or("tuple without object")?;
        let id = object.strip_prefix("batch:").ok_or("not a batch")?;
        let user = t["user"].as_str().ok_or("tuple without user")?;
        out.entry(id.to_string())
            .or_default()
            .insert(user.to_string());
    }
    Ok(out)
}

/// Checks every stored batch is whole: exactly users a, b and c.
pub fn batches_whole(
    batches: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Res {
    for (id, users) in batches {
        let names: Vec<&str> = users.iter().map(String::as_str).collect();
        if names != ["user:a", "user:b", "user:c"] {
            return Err(format!("batch {id} is partly stored: {names:?}").into());
        }
    }
    Ok(())
}

/// One atomic write of a batch writer: add batch `add`, and (a "move") delete batch `delete`
/// in the same request.
#[derive(Debug, Clone)]
pub struct Op {
    pub add: String,
    pub delete: Option<String>,
    /// The revision the server acknowledged; `None` if no acknowledgement arrived.
    pub acked: Option<u64>,
}

/// What a batch writer did: its operations in order (only the last may be unacknowledged)
/// and, if the server ever answered with something other than 200, what it said.
#[derive(Debug, Default)]
pub struct WriterLog {
    pub ops: Vec<Op>,
    pub bad_answer: Option<String>,
}

/// Streams batch writes (ids `PREFIX n0`, `PREFIX n1`, …) to `base` until a request fails
/// at the transport level (the server is gone) or `stop` is set. Every third write, when the
/// writer owns a batch, is a move: it deletes an owned batch in the same request.
pub fn spawn_writer(
    base: String,
    prefix: String,
    mut owned: Vec<String>,
    seed: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<WriterLog> {
    std::thread::spawn(move || {
        let agent = agent(Duration::from_secs(10));
        let mut rng = Rng(seed);
        let mut log = WriterLog::default();
        let mut n = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let add = format!("{prefix}n{n}");
            n += 1;
            let delete = (!owned.is_empty() && rng.range(0, 3) == 0).then(|| owned.remove(0));
            let mut body = json!({ "writes": batch_tuples(&add) });
            if let Some(d) = &delete {
                body["deletes"] = json!(batch_tuples(d));
            }
            let mut op = Op {
                add,
                delete,
                acked: None,
            };
            let answer = agent
                .post(format!("{base}/v1/tuples/write"))
                .send_json(&body)
                .map_err(Error::from)
                .and_then(reply);
            match answer {
                Ok((200, v)) => match v["revision"].as_u64() {
                    Some(r) => {
                        op.acked = Some(r);
                        owned.push(op.add.clone());
                        log.ops.push(op);
                    }
                    None => {
                        log.bad_answer = Some(format!("200 without a revision: {v}"));
                        log.ops.push(op);
                        break;
                    }
                },
                Ok((status, v)) => {
                    log.bad_answer = Some(format!("{status} {v}"));
                    log.ops.push(op);
                    break;
                }
                // The server is gone (killed or shut down): this write's fate is unknown.
                Err(_) => {
                    log.ops.push(op);
                    break;
                }
            }
        }
        log
    })
}

/// What the store must hold, built from the writers' logs.
#[derive(Debug, Default)]
pub struct Expected {
    /// Batches that must be stored (and no others).
    pub present: std::collections::BTreeSet<String>,
    /// The revision the store must be at: one per applied write.
    pub revision: u64,
    /// Batches that were stored and then deleted.
    pub gone: Vec<String>,
}

impl Expected {
    /// Folds the writers' logs into the expectation. An acknowledged write must have been
    /// applied; an unacknowledged one may or may not have been, but wholly: `stored` (what
    /// the restarted server holds) decides which, and anything in between is an error.
    /// Returns how many writes were unacknowledged, and how many of those were applied.
    pub fn apply(
        &mut self,
        logs: &[WriterLog],
        stored: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    ) -> Res<(usize, usize)> {
        let (mut unknown, mut landed) = (0, 0);
        for log in logs {
            if let Some(bad) = &log.bad_answer {
                return Err(format!("the server answered a valid write with {bad}").into());
            }
            for (i, op) in log.ops.iter().enumerate() {
                let applied = match op.acked {
                    Some(_) => true,
                    None => {
                        if i + 1 != log.ops.len() {
                            return Err(format!("unacknowledged write {op:?} is not last").into());
                        }
                        unknown += 1;
                        let added = stored.contains_key(&op.add);
                        let deleted = op.delete.as_ref().map(|d| !stored.contains_key(d));
                        match (added, deleted) {
                            (true, None | Some(true)) => {
                                landed += 1;
                                true
                            }
                            (false, None | Some(false)) => false,
                            _ => {
                                return Err(format!(
                                    "unacknowledged write {op:?} is half applied: added {added}, deleted {deleted:?}"
                                )
                                .into());
                            }
                        }
                    }
                };
                if applied {
                    if let Some(d) = &op.delete {
                        if !self.present.remove(d) {
                            return Err(format!("{op:?} deleted a batch not known present").into());
                        }
                        self.gone.push(d.clone());
                    }
                    self.present.insert(op.add.clone());
                    self.revision += 1;
                }
            }
        }
        Ok((unknown, landed))
    }

    /// Checks the restarted server against the expectation: exactly the expected batches,
    /// each whole, at exactly the expected revision, and checks agree with the stored tuples.
    pub fn verify(
        &self,
        server: &Server,
        stored: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    ) -> Res {
        batches_whole(stored)?;
        let keys: std::collections::BTreeSet<String> = stored.keys().cloned().collect();
        if keys != self.present {
            let lost: Vec<_> = self.present.difference(&keys).collect();
            let extra: Vec<_> = keys.difference(&self.present).collect();
            return Err(
                format!("stored batches differ: lost {lost:?}, unexpected {extra:?}").into(),
            );
        }
        let revision = server.revision()?;
        if revision != self.revision {
            return Err(format!(
                "revision {revision} after restart; {} writes were applied",
                self.revision
            )
            .into());
        }
        // The decision index is rebuilt from the store: it agrees with what was read.
        for id in self.present.iter().rev().take(3) {
            if !server.allowed("user:b", "member", &format!("batch:{id}"))? {
                return Err(format!("batch {id} is stored but a check denies it").into());
            }
        }
        for id in self.gone.iter().rev().take(3) {
            if server.allowed("user:b", "member", &format!("batch:{id}"))? {
                return Err(format!("batch {id} was deleted but a check allows it").into());
            }
        }
        Ok(())
    }
}
