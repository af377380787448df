//! Startup as a user sees it. `clew serve --demo` on an empty store loads the demo graph and
//! prints its address and a banner of example requests; every example request in the banner
//! works as printed and gives the demo's answers; stdout carries nothing but the startup line
//! and the banner (logs go to stderr). A second start with `--demo` on the same (on-disk) store
//! neither fails nor loads the demo again: same revision, same tuples, one model version, and
//! the write made through the banner's example is still there.

use crate::harness::{Res, Server};
use serde_json::Value;
use std::time::Duration;

/// The banner's `curl -s URL … -d 'BODY'` examples: (URL, JSON body).
fn examples(stdout: &str) -> Res<Vec<(String, Value)>> {
    let mut out = Vec::new();
    let mut lines = stdout.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("curl -s http") else {
            continue;
        };
        if !line.ends_with('\\') {
            continue;
        }
        let url = format!("http{}", rest.split_whitespace().next().unwrap_or(""));
        let data = lines.next().unwrap_or("");
        let body = data
            .strip_prefix("-d '")
            .and_then(|d| d.strip_suffix('\''))
            .ok_or_else(|| format!("example {url} without a body: {data}"))?;
        out.push((url, serde_json::from_str(body)?));
    }
    Ok(out)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Stdout is the startup line, then (with `--demo`) the banner; nothing else.
fn only_banner(stdout: &str, revision: u64) -> Res {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or("");
    if !(first.starts_with("clew listening on http://")
        && first.ends_with(&format!("revision {revision})")))
    {
        return Err(format!("startup line '{first}', expected revision {revision}").into());
    }
    for l in lines {
        let t = l.trim_start();
        let banner = l.is_empty() || l == "Try:" || t.starts_with("curl ") || t.starts_with("-d ");
        if !banner {
            return Err(format!("stdout has a line that is not the banner: '{l}'").into());
        }
    }
    Ok(())
}

/// Runs every example of the banner and checks the demo's answers.
fn run_examples(server: &Server) -> Res<usize> {
    // The banner is printed right after the startup line; give the pipe a moment.
    let mut stdout = server.stdout();
    for _ in 0..100 {
        if stdout.contains("/metrics") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        stdout = server.stdout();
    }
    only_banner(&stdout, 2)?;
    let examples = examples(&stdout)?;
    for (url, body) in &examples {
        if !url.starts_with(&server.base) {
            return Err(format!("example {url} is not on {}", server.base).into());
        }
        let path = &url[server.base.len()..];
        let v = server.ok(path, body)?;
        match path {
            "/v1/check" => {
                assert_eq!(v["allowed"], true, "{v}");
                assert!(v["explanation"]["path"].is_array(), "{v}");
            }
            "/v1/lookup" => {
                let objects = strings(&v["objects"]);
                assert!(objects.contains(&"document:access-review-findings"), "{v}");
                assert!(objects.contains(&"document:security-audit-log-faq"), "{v}");
            }
            "/v1/subjects" => {
                let subjects = strings(&v["subjects"]);
                assert!(subjects.contains(&"user:walt"), "{v}");
                assert!(!subjects.contains(&"user:tara"), "tara is embargoed: {v}");
            }
            "/v1/tuples/write" => assert_eq!(v["revision"], 3, "{v}"),
            "/access/v1/evaluation" => {
                assert_eq!(v["decision"], false, "quinn is embargoed: {v}")
            }
            other => return Err(format!("the banner has an untested example {other}").into()),
        }
    }
    Ok(examples.len())
}

#[test]
fn demo_banner_works_and_stdout_is_only_the_banner() -> Res {
    let mut server = Server::start(&["--memory", "--demo"])?;
    let n = run_examples(&server)?;
    assert_eq!(n, 5, "the banner's POST examples");
    server.stop(Duration::from_secs(5))?;
    Ok(())
}

#[cfg(feature = "rocksdb")]
#[test]
fn a_second_demo_start_on_the_same_store_loads_nothing() -> Res {
    use serde_json::json;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let mut server = Server::on_disk(&data, &["--demo"])?;
    run_examples(&server)?;
    let tuples = server.read_all(&json!({}), 1000)?;
    let (_, models) = server.get("/v1/model/versions")?;
    server.stop(Duration::from_secs(5))?;

    let mut again = Server::on_disk(&data, &["--demo"])?;
    let first = again.stdout();
    let first = first.lines().next().unwrap_or("");
    assert!(first.ends_with("revision 3)"), "startup line: {first}");
    assert_eq!(again.revision()?, 3);
    assert_eq!(again.read_all(&json!({}), 1000)?, tuples);
    let (_, models_again) = again.get("/v1/model/versions")?;
    assert_eq!(models_again["versions"], models["versions"]);
    assert_eq!(models["versions"].as_array().map(Vec::len), Some(1));
    // The banner's write survived, and decisions work on the reopened store.
    assert!(again.allowed("user:zoe", "can_invoke", "tool:pager")?);
    assert!(again.allowed("user:dan", "reader", "dataset:gl-journal")?);
    assert!(!again.allowed("user:quinn", "reader", "dataset:sales-pipeline")?);
    again.stop(Duration::from_secs(5))?;
    Ok(())
}
