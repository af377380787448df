//! The server's SPARQL query workers (on-disk store): a runaway query costs one worker process,
//! stopped by its memory budget or its time limit, while the server keeps answering; normal
//! queries see every acknowledged update.
#![cfg(feature = "rocksdb")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.strip_prefix("clew listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn sparql(s: &Server, field: &str, text: &str) -> (u16, String) {
    let mut resp = agent()
        .post(format!("{}/sparql", s.url))
        .send_form([(field, text)])
        .unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap(),
    )
}

fn post(s: &Server, path: &str, body: Value) -> Value {
    let mut resp = agent()
        .post(format!("{}{path}", s.url))
        .send_json(&body)
        .unwrap();
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
}

const RUNAWAY: &str = "SELECT * { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l } ORDER BY ?a ?d ?g ?j";

#[test]
fn a_runaway_query_costs_a_worker_not_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        &[
            "--demo",
            "--sparql-timeout-ms",
            "3000",
            "--sparql-memory-mb",
            "1024",
        ],
    );
    // Answers and updates work through workers, and each query sees the last update.
    for i in 0..3 {
        let insert = format!(
            "INSERT DATA {{ <https://clew.dev/id/group/platform> <https://clew.dev/rel/member> <https://clew.dev/id/user/w{i}> }}"
        );
        let (status, text) = sparql(&s, "update", &insert);
        assert_eq!(status, 200, "{text}");
        let ask = format!(
            "ASK {{ <https://clew.dev/id/group/platform> <https://clew.dev/rel/member> <https://clew.dev/id/user/w{i}> }}"
        );
        let (status, text) = sparql(&s, "query", &ask);
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains("true"),
            "query {i} did not see its update: {text}"
        );
    }
    // Two runaway queries at once: each is stopped (memory budget or time limit) with a named
    // error, and decisions keep being answered meanwhile.
    let started = Instant::now();
    let runaways: Vec<_> = (0..2)
        .map(|_| {
            let url = s.url.clone();
            std::thread::spawn(move || {
                let mut resp = agent()
                    .post(format!("{url}/sparql"))
                    .send_form([("query", RUNAWAY)])
                    .unwrap();
                (
                    resp.status().as_u16(),
                    resp.body_mut().read_to_string().unwrap(),
                )
            })
        })
        .collect();
    let mut checks = 0;
    while !runaways.iter().all(|h| h.is_finished()) {
        let v = post(
            &s,
            "/v1/check",
            json!({"user": "user:w0", "relation": "member", "object": "group:platform"}),
        );
        assert_eq!(v["allowed"], true, "{v}");
        checks += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "runaway queries not stopped"
        );
    }
    for h in runaways {
        let (status, text) = h.join().unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(
            (status == 422 && v["code"] == "sparql_memory_limit")
                || (status == 503 && v["code"] == "sparql_timeout"),
            "{status} {text}"
        );
    }
    assert!(checks > 0);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let (status, text) = sparql(&s, "query", "ASK {}");
    assert_eq!((status, text.contains("true")), (200, true), "{text}");
}
