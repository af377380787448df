//! The `clew` binary: the README's example works as shown, and bad input of every kind gets a
//! clear error naming the file and line/column (or the field), a non-zero exit, and no panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn clew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn no_panic(o: &Output) {
    let t = text(o);
    assert!(!t.contains("panicked"), "the binary panicked:\n{t}");
    assert_ne!(o.status.code(), Some(101), "exit 101 is a panic:\n{t}");
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

const EXAMPLE: [&str; 4] = [
    "--model",
    "fixtures/docs/model.fga",
    "--tuples",
    "fixtures/docs/tuples.yaml",
];

#[test]
fn readme_explain_example_prints_the_path_it_shows() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut args = vec!["explain"];
    args.extend(EXAMPLE);
    args.extend(["user:bob", "viewer", "document:roadmap"]);
    let out = clew(&args);
    no_panic(&out);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Every line of the example output in the README is what the command prints (the model id
    // aside, which is a hash of the model text).
    let section = readme
        .split("<!-- example-explain-output -->")
        .nth(1)
        .expect("README has the example output marker");
    let block = section
        .split("```")
        .nth(1)
        .expect("a code block follows the marker");
    let mut compared = 0;
    for line in block.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        if line.starts_with("allowed:") {
            assert!(stdout.starts_with("allowed: user:bob viewer document:roadmap"));
            continue;
        }
        assert!(
            stdout.contains(line),
            "README line not in output: {line}\noutput:\n{stdout}"
        );
        compared += 1;
    }
    assert!(compared >= 5, "the README example shows the path");
}

/// The README's lookup example: pages are complete, the cursor continues where the first page
/// stopped, and a tampered cursor is refused.
#[test]
fn readme_lookup_example_pages_with_a_cursor() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("<!-- example-lookup-output -->"));
    let run = |extra: &[&str]| {
        let mut a = vec!["lookup"];
        a.extend(EXAMPLE);
        a.extend(["user:anne", "viewer", "document"]);
        a.extend(extra);
        clew(&a)
    };
    let first = run(&["--limit", "1"]);
    no_panic(&first);
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(String::from_utf8_lossy(&first.stdout), "document:roadmap\n");
    let err = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(
        err.starts_with("truncated: 1 of 2 shown; next page: --cursor c1.2."),
        "{err}"
    );
    assert!(readme.contains("truncated: 1 of 2 shown; next page: --cursor c1.2."));
    let cursor = err.trim().rsplit(' ').next().unwrap().to_string();
    // The in-memory example store is rebuilt per command, at the same revision, so the cursor
    // is followed at the revision it was issued for.
    let second = run(&["--limit", "1", "--cursor", &cursor]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "document:handbook\n"
    );
    assert!(String::from_utf8_lossy(&second.stderr).is_empty());
    let bad = run(&["--cursor", &format!("{cursor}0")]);
    no_panic(&bad);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("malformed cursor"), "{}", text(&bad));
    let other = clew(&[
        "lookup", EXAMPLE[0], EXAMPLE[1], EXAMPLE[2], EXAMPLE[3], "user:bob", "viewer", "document",
        "--cursor", &cursor,
    ]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        text(&other).contains("different request"),
        "{}",
        text(&other)
    );
    let all = run(&[]);
    assert_eq!(
        String::from_utf8_lossy(&all.stdout),
        "document:roadmap\ndocument:handbook\n"
    );
}

#[test]
fn readme_filter_example_counts_unknown_and_denied() {
    let mut a = vec!["filter"];
    a.extend(EXAMPLE);
    a.extend([
        "user:erin",
        "viewer",
        "document",
        "document:roadmap",
        "document:handbook",
        "document:nope",
    ]);
    let out = clew(&a);
    no_panic(&out);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "document:handbook\n");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("1 permitted, 1 denied, 1 unknown, 0 duplicates (strategy Checks: "),
        "{}",
        text(&out)
    );
    // A candidate of another type is an error naming it.
    let mut bad = a.clone();
    bad.push("folder:public");
    let out = clew(&bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("candidate 3 'folder:public'"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_exit_codes_say_the_decision() {
    let mut args = vec!["check"];
    args.extend(EXAMPLE);
    let run = |u: &str, r: &str, o: &str| {
        let mut a = args.clone();
        a.extend([u, r, o]);
        clew(&a)
    };
    assert_eq!(
        run("user:anne", "viewer", "document:roadmap").status.code(),
        Some(0)
    );
    assert_eq!(
        run("user:erin", "viewer", "document:roadmap").status.code(),
        Some(1)
    );
    // A conditional tuple without the context it needs: conditional, never allowed.
    let out = run("user:frank", "viewer", "document:payroll");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("now"),
        "names the missing parameter: {}",
        text(&out)
    );
    let mut a = args.clone();
    a.extend([
        "user:frank",
        "viewer",
        "document:payroll",
        "--context",
        r#"{"now": "2026-01-01T10:00:00Z"}"#,
    ]);
    assert_eq!(clew(&a).status.code(), Some(0));
}

#[test]
fn malformed_models_report_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "model\n  schema 1.1\ntype user\n  relations\n    define viewer: [user] or or\n",
            "line 5",
        ),
        (
            "model\n  schema 1.1\ntype doc\n  relations\n    define viewer: [person]\n",
            "line 5",
        ),
        (
            "model\n  schema 1.1\ntype doc\n  relations\n    define viewer: editor\n",
            "line 5",
        ),
        ("model\n  schema 1.1\ntype doc\ntype doc\n", "line 3"),
        ("type user\n", "line 1"),
        (
            "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define a: [user] or b\n    define b: a\n",
            "cycle",
        ),
        (
            "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define a: [user] or a\n",
            "line 6",
        ),
        ("", "line 1"),
    ];
    for (i, (dsl, want)) in cases.iter().enumerate() {
        let f = write(dir.path(), &format!("m{i}.fga"), dsl);
        let out = clew(&["model", "validate", f.to_str().unwrap()]);
        no_panic(&out);
        let t = text(&out);
        assert!(!out.status.success(), "accepted:\n{dsl}");
        assert!(t.contains(&format!("m{i}.fga")), "names the file: {t}");
        assert!(t.contains(want), "{dsl:?} should report {want}: {t}");
        assert!(t.contains("column"), "{t}");
    }
    let big = write(
        dir.path(),
        "big.fga",
        &format!("model\n  schema 1.1\n{}", "type t\n".repeat(300_000)),
    );
    let out = clew(&["model", "validate", big.to_str().unwrap()]);
    no_panic(&out);
    assert!(!out.status.success());
}

#[test]
fn invalid_ids_and_unknown_names_are_rejected_by_name() {
    let mut base = vec!["check"];
    base.extend(EXAMPLE);
    for (user, relation, object, want) in [
        ("user anne", "viewer", "document:roadmap", "user anne"),
        ("user:anne", "viewer", "document", "document"),
        ("user:anne", "viewer", "spaceship:1", "spaceship"),
        ("user:anne", "pilot", "document:roadmap", "pilot"),
        ("robot:1", "viewer", "document:roadmap", "robot"),
        (
            "group:engineering#boss",
            "viewer",
            "document:roadmap",
            "boss",
        ),
    ] {
        let mut a = base.clone();
        a.extend([user, relation, object]);
        let out = clew(&a);
        no_panic(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{user} {relation} {object}: {}",
            text(&out)
        );
        assert!(
            text(&out).contains(want),
            "should name {want}: {}",
            text(&out)
        );
    }
    let mut a = base.clone();
    a.extend([
        "user:anne",
        "viewer",
        "document:roadmap",
        "--context",
        "{not json",
    ]);
    let out = clew(&a);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--context"));
}

#[test]
fn malformed_tuple_and_test_files_report_where() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = write(
        dir.path(),
        "t.yaml",
        "- {user: user:a, relation: viewer, object: document:1}\n- {user: [\n",
    );
    let out = clew(&[
        "check",
        "--model",
        "fixtures/docs/model.fga",
        "--tuples",
        bad_yaml.to_str().unwrap(),
        "user:a",
        "viewer",
        "document:1",
    ]);
    no_panic(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("t.yaml") && text(&out).contains("line"),
        "{}",
        text(&out)
    );
    let bad_field = write(
        dir.path(),
        "f.yaml",
        "- {user: user:a, relation: viewer, objekt: document:1}\n",
    );
    let out = clew(&[
        "check",
        "--model",
        "fixtures/docs/model.fga",
        "--tuples",
        bad_field.to_str().unwrap(),
        "user:a",
        "viewer",
        "document:1",
    ]);
    assert!(text(&out).contains("objekt"), "{}", text(&out));
    let bad_id = write(
        dir.path(),
        "i.jsonl",
        "{\"user\":\"user:a\",\"relation\":\"viewer\",\"object\":\"document:1\"}\n{\"user\":\"user:a b\",\"relation\":\"viewer\",\"object\":\"document:1\"}\n",
    );
    let out = clew(&[
        "check",
        "--model",
        "fixtures/docs/model.fga",
        "--tuples",
        bad_id.to_str().unwrap(),
        "user:a",
        "viewer",
        "document:1",
    ]);
    assert!(
        text(&out).contains("tuple 2") && text(&out).contains("user:a b"),
        "{}",
        text(&out)
    );
    let bad_test = write(
        dir.path(),
        "x.fga.yaml",
        "name: x\nmodel: |\n  model\n    schema 1.1\n  type user\ntests:\n  - name: a\n    check: 7\n",
    );
    let out = clew(&["test", bad_test.to_str().unwrap()]);
    no_panic(&out);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("x.fga.yaml") && text(&out).contains("line 8"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("0 passed, 1 failed"), "{}", text(&out));
}

#[test]
fn cyclic_tuples_terminate_and_deny() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(
        dir.path(),
        "m.fga",
        "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, group#member]\n",
    );
    let tuples = write(
        dir.path(),
        "t.yaml",
        "- {user: 'group:b#member', relation: member, object: 'group:a'}\n- {user: 'group:c#member', relation: member, object: 'group:b'}\n- {user: 'group:a#member', relation: member, object: 'group:c'}\n- {user: 'user:z', relation: member, object: 'group:c'}\n",
    );
    let args = |u: &'static str| {
        vec![
            "check",
            "--model",
            model.to_str().unwrap(),
            "--tuples",
            tuples.to_str().unwrap(),
            u,
            "member",
            "group:a",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let run = |u: &'static str| {
        let a = args(u);
        clew(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_eq!(run("user:z").status.code(), Some(0));
    let out = run("user:y");
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// Needs the on-disk store.
#[cfg(feature = "rocksdb")]
#[test]
fn the_store_commands_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let out = clew(&[
        "load",
        "--store",
        s,
        "--model",
        "fixtures/docs/model.fga",
        "--tuples",
        "fixtures/docs/tuples.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("revision 2"), "{}", text(&out));
    let out = clew(&[
        "explain",
        "--store",
        s,
        "user:bob",
        "viewer",
        "document:roadmap",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "allowed");
    assert_eq!(v["revision"], 2);
    assert!(v["explanation"]["path"].as_array().unwrap().len() >= 4);
    let out = clew(&["lookup", "--store", s, "user:bob", "viewer", "document"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "document:handbook\ndocument:roadmap\n"
    );
    let out = clew(&[
        "check",
        "--store",
        dir.path().join("missing").to_str().unwrap(),
        "user:bob",
        "viewer",
        "document:roadmap",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // A rejected load changes nothing.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "- {user: 'user:x', relation: viewer, object: 'document:1'}\n- {user: 'user:x', relation: nope, object: 'document:1'}\n",
    );
    let out = clew(&["load", "--store", s, "--tuples", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nope"), "{}", text(&out));
    let out = clew(&[
        "check",
        "--store",
        s,
        "user:x",
        "viewer",
        "document:1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "denied");
    assert_eq!(v["revision"], 2);
}
