//! Graceful shutdown. SIGTERM arrives while clients stream writes, a change stream is open,
//! and one request is in flight with half its body sent:
//!
//! * the in-flight request still completes (its second half is sent after the signal) and is
//!   acknowledged;
//! * no client gets a 5xx: each request is answered in full or refused at the transport;
//! * the open change stream ends, so it cannot hold the process up;
//! * the process exits 0 within a few seconds;
//! * (on-disk store) a restart finds every acknowledged write, every batch whole, and the
//!   revision counter equal to the number of applied writes.
//!
//! And a SIGTERM sent the moment the address is printed is handled (exit 0), not fatal.

use crate::harness::{
    Expected, MODEL, Op, Res, Rng, Server, Sse, WriterLog, batch_tuples, read_response,
    spawn_writer,
};
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const EXIT_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() -> Res {
    let mut rng = Rng::from_env("shutdown");
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let mut server = if cfg!(feature = "rocksdb") {
        Server::on_disk(&data, &[])?
    } else {
        Server::start(&["--memory"])?
    };
    let model = server.write_model(MODEL)?;

    // An open change stream, read to its end.
    let mut sse = Sse::open(&server, &format!("/v1/watch?since={model}"), None)?;
    let watcher = std::thread::spawn(move || -> Res<usize> {
        let mut n = 0;
        while sse.next_event()?.is_some() {
            n += 1;
        }
        Ok(n)
    });
    // Clients streaming writes until the server goes away.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            spawn_writer(
                server.base.clone(),
                format!("t{t}"),
                Vec::new(),
                rng.next_u64(),
                stop.clone(),
            )
        })
        .collect();
    // A request in flight: headers and half the body now, the rest after the signal.
    let body = json!({ "writes": batch_tuples("inflight") }).to_string();
    let (first, second) = body.split_at(body.len() / 2);
    let mut tcp = TcpStream::connect(server.addr)?;
    write!(
        tcp,
        "POST /v1/tuples/write HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{first}",
        server.addr,
        body.len()
    )?;
    tcp.flush()?;
    std::thread::sleep(Duration::from_millis(rng.range(150, 400)));

    server.terminate()?;
    let signalled = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    tcp.write_all(second.as_bytes())?;
    let (status, _, v) = read_response(&mut tcp)?;
    assert_eq!(status, 200, "the in-flight write after SIGTERM: {v}");
    let inflight = v["revision"].as_u64().ok_or("no revision")?;

    let exit = server.wait_exit(EXIT_WITHIN);
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit {exit:?} within {EXIT_WITHIN:?} of SIGTERM; stderr:\n{}",
        server.stderr()
    );
    eprintln!("shutdown: exited {:?} after SIGTERM", signalled.elapsed());
    let events = watcher
        .join()
        .map_err(|_| "the watcher panicked")?
        .map_err(|e| format!("the change stream did not end cleanly: {e}"))?;
    assert!(events > 0, "the change stream saw no writes");
    let mut logs: Vec<WriterLog> = writers
        .into_iter()
        .map(|w| w.join().map_err(|_| "a writer panicked"))
        .collect::<Result<_, _>>()?;
    for log in &logs {
        assert!(
            log.bad_answer.is_none(),
            "a client got {:?} during shutdown",
            log.bad_answer
        );
    }
    let acked = logs
        .iter()
        .flat_map(|l| &l.ops)
        .filter(|o| o.acked.is_some())
        .count();
    assert!(acked > 0, "no write was acknowledged before the signal");
    logs.push(WriterLog {
        ops: vec![Op {
            add: "inflight".into(),
            delete: None,
            acked: Some(inflight),
        }],
        bad_answer: None,
    });

    if cfg!(feature = "rocksdb") {
        let server = Server::on_disk(&data, &[])?;
        let stored = crate::harness::stored_batches(&server)?;
        let mut expected = Expected {
            revision: model,
            ..Expected::default()
        };
        expected.apply(&logs, &stored)?;
        expected.verify(&server, &stored)?;
        assert!(stored.contains_key("inflight"));
        let (s, ready) = server.get("/readyz")?;
        assert_eq!(s, 200, "{ready}");
        assert_eq!(ready["stored_revision"], ready["revision"], "{ready}");
    }
    Ok(())
}

#[test]
fn sigterm_as_soon_as_the_address_is_printed_is_a_clean_exit() -> Res {
    for _ in 0..3 {
        let mut server = Server::start(&["--memory"])?;
        server.stop(EXIT_WITHIN)?;
    }
    Ok(())
}
