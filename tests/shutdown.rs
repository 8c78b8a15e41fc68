//! SIGTERM against the real binary: members are told, sockets closed with 1001, exit 0.

#![allow(clippy::disallowed_methods)] // Timing the shutdown needs the real clock.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// SIGHUP and SIGUSR1 are logged and ignored. SIGTERM: room members get room_closed "Server
/// shutting down", every WebSocket a close frame 1001, and the process exits 0 within a
/// second.
#[test]
fn sigterm_closes_rooms_and_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("LOG_LEVEL", "info")
        // No state file: rooms die with the process, so a stop closes them (with one, it
        // tells clients to reconnect instead: tests/restart.rs).
        .env("STATE_FILE", "")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tandem");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix("addr="))
                .map(String::from)
        })
        .expect("a startup line with the bound address");
    let addr = addr.parse().expect("an address");
    // SIGHUP and SIGUSR1 are logged and ignored: the server lives on.
    for signal in ["-HUP", "-USR1", "-ALRM", "-PROF"] {
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        assert!(status.expect("kill").success());
        let name = format!("signal=SIG{}", &signal[1..]);
        let logged = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|line| line.contains("event=signal_ignored"))
            .expect("a log line for the ignored signal");
        assert!(logged.contains(&name), "{logged}");
    }
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({}));
    let mut guest = Client::connect(addr);
    guest.join(&room);
    let mut lobby = Client::connect(addr);

    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(status.expect("kill").success());
    for member in [&mut host, &mut guest] {
        let closed = member.recv_type("room_closed");
        assert_eq!(closed["payload"]["reason"], "Server shutting down");
        assert_eq!(closed["room"], room.as_str());
        assert_eq!(member.close_code(), Some(1001));
    }
    assert_eq!(lobby.close_code(), Some(1001));

    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait());
    });
    let exit = receiver
        .recv_timeout(Duration::from_secs(5))
        .expect("exit")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        signalled.elapsed()
    );
}
