//! Out of descriptors: the server stops accepting, retries from a timer without spinning,
//! and serves again once descriptors free up.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::*;

/// With a descriptor limit of 40 and more clients than that, accept errors pause accepting
/// (one warning per retry, not a busy loop); after clients leave, new ones are served.
#[test]
fn descriptor_exhaustion_pauses_and_recovers() {
    let mut child = Command::new("prlimit")
        .args(["--nofile=40:40", env!("CARGO_BIN_EXE_tandem")])
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("LOG_LEVEL", "info")
        .env("MAX_CONNECTIONS", "200")
        .env("STATE_FILE", "")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tandem under prlimit");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (lines, receive) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next_matching = |needle: &str| -> String {
        loop {
            let line = receive.recv_timeout(WAIT).expect("a log line in time");
            if line.contains(needle) {
                return line;
            }
        }
    };
    let listening = next_matching("event=listening");
    let addr: std::net::SocketAddr = listening
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("addr="))
        .and_then(|a| a.parse().ok())
        .expect("the bound address");

    let mut clients: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(addr).expect("connect (queued in the backlog)"))
        .collect();
    next_matching("event=accept_paused");
    clients.truncate(20);
    let response = http(addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(status(&response), 200, "{response}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().expect("exit").success());
    // Everything the server logged while paused: a warning per retry interval (100 ms), not
    // a busy loop's thousands.
    let paused = receive
        .try_iter()
        .filter(|line| line.contains("event=accept_paused"))
        .count();
    assert!(paused < 200, "{paused} pause warnings: accepting spins");
    drop(clients);
}
