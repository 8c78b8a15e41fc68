//! Restarts with real processes: SIGTERM then start again, kill -9 then start again, and
//! state files that cannot be used. Each test has its own state file in a temporary
//! directory; every wait is on a message, a process exit or a file's content, bounded.

mod common;

use std::io::{BufRead, BufReader, Lines};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use common::*;
use serde_json::{json, Value};

struct Server {
    child: Child,
    addr: SocketAddr,
    /// Log lines up to the startup line (the state is loaded before it).
    early: Vec<String>,
    log: Lines<BufReader<ChildStderr>>,
}

impl Server {
    fn start(state: &Path, extra: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
        command
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("LOG_LEVEL", "info")
            .env("ALLOWED_ORIGINS", "*")
            .env("STATE_FILE", state)
            .env("SNAPSHOT_INTERVAL_MS", "0");
        for (key, value) in extra {
            command.env(key, value);
        }
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn tandem");
        let mut log = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut early = Vec::new();
        let addr = log
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let addr = line
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("addr="))
                    .map(String::from);
                early.push(line);
                addr
            })
            .expect("a startup line with the bound address")
            .parse()
            .expect("an address");
        Server {
            child,
            addr,
            early,
            log,
        }
    }

    /// The first log line containing `what`.
    fn logged(&mut self, what: &str) -> String {
        if let Some(line) = self.early.iter().find(|l| l.contains(what)) {
            return line.clone();
        }
        self.log
            .by_ref()
            .map_while(Result::ok)
            .find(|line| line.contains(what))
            .unwrap_or_else(|| panic!("no log line with {what}"))
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

fn state_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-restart-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("state dir");
    dir
}

/// Connects; returns the client and its resume token.
fn connect(addr: SocketAddr) -> (Client, String) {
    let mut client = Client::connect_raw(addr, "/ws", &[]);
    let hello = client.recv();
    client.id = hello["payload"]["client_id"]
        .as_str()
        .expect("id")
        .to_string();
    let token = hello["payload"]["resume_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(client.recv()["type"], "room_list");
    (client, token)
}

fn resume(client: &mut Client, token: &str) -> Vec<Value> {
    client.send(json!({"type": "resume", "payload": {"token": token}}));
    client.drain()
}

/// SIGTERM: every client gets close 1012 and no `room_closed`; the state file is written
/// (mode 0600). After a restart, the host resumes: same room, still host, the position moved
/// on while it was down (the room was playing), the chat history intact. A guest that
/// behaves as the stock client (no token) names its room in a ping and is let back in.
#[test]
fn sigterm_restart_resume() {
    let dir = state_dir("sigterm");
    let state = dir.join("state.json");
    let server = Server::start(&state, &[]);
    let (mut host, token) = connect(server.addr);
    let room = host.create_room(json!({"name": "Film"}));
    let mut guest = Client::connect(server.addr);
    guest.join(&room);
    host.recv_type("participants_update");
    host.send(
        json!({"type": "chat_message", "room": room, "payload": {"text": "before the restart"}}),
    );
    let sent = host.recv_type("chat_message");
    host.send(json!({"type": "player_event", "room": room, "payload": {"action": "play", "position": 100.0}}));
    guest.recv_type("player_event");

    server.signal("-TERM");
    for client in [&mut host, &mut guest] {
        let mut codes = Vec::new();
        for _ in 0..100 {
            match client.ws.read() {
                Ok(tungstenite::Message::Text(text)) => {
                    assert!(!text.contains("room_closed"), "{text}");
                }
                Ok(tungstenite::Message::Close(frame)) => {
                    codes.push(frame.map(|f| u16::from(f.code)));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert_eq!(codes, [Some(1012)]);
    }
    assert!(server.wait().success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state)
            .expect("state file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let saved = std::fs::read_to_string(&state).expect("state");
    assert!(!saved.contains(&token), "the token itself is never saved");

    let mut server = Server::start(&state, &[]);
    assert!(server
        .logged("event=state_restored")
        .contains("rooms=1 seats=2"));
    let (mut back, _) = connect(server.addr);
    let got = resume(&mut back, &token);
    let kinds: Vec<&str> = got.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["client_hello", "room_state"], "{got:?}");
    assert_eq!(got[0]["payload"]["client_id"], host.id.as_str());
    let state_msg = &got[1];
    assert_eq!(state_msg["room"], room.as_str());
    assert_eq!(state_msg["payload"]["host_id"], host.id.as_str());
    assert_eq!(state_msg["payload"]["state"]["play_state"], "playing");
    let position = num(&state_msg["payload"]["state"]["position"]);
    assert!(position > 100.0, "extrapolated: {position}");
    // The chat before the restart is kept (with its original server_ts) for joiners.
    let mut guest = Client::connect(server.addr);
    guest.send(json!({"type": "ping", "room": room, "payload": {"client_ts": 1}}));
    let got = guest.drain();
    assert!(got.iter().all(|m| m["type"] != "room_closed"), "{got:?}");
    assert!(got.iter().any(|m| m["type"] == "room_state"), "{got:?}");
    let chat = got
        .iter()
        .find(|m| m["type"] == "chat_message")
        .expect("history");
    assert_eq!(chat["payload"]["text"], "before the restart");
    assert_eq!(chat["server_ts"], sent["server_ts"]);
    server.signal("-TERM");
    assert!(server.wait().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// kill -9: the rooms come back as of the last periodic snapshot.
#[test]
fn kill_9_restart() {
    let dir = state_dir("kill9");
    let state = dir.join("state.json");
    let mut server = Server::start(
        &state,
        &[("SNAPSHOT_INTERVAL_MS", "50"), ("LOG_LEVEL", "debug")],
    );
    let (mut host, token) = connect(server.addr);
    let room = host.create_room(json!({}));
    // Wait for a snapshot that has the room: each save is logged, then the file is read.
    let mut saved = false;
    for _ in 0..500 {
        server.logged("event=state_saved");
        if std::fs::read_to_string(&state).is_ok_and(|s| s.contains(&room)) {
            saved = true;
            break;
        }
    }
    assert!(saved, "a snapshot with the room");
    server.signal("-KILL");
    let _ = server.wait();

    let server = Server::start(&state, &[]);
    let (mut back, _) = connect(server.addr);
    let got = resume(&mut back, &token);
    let state_msg = got
        .iter()
        .find(|m| m["type"] == "room_state")
        .expect("room_state");
    assert_eq!(state_msg["room"], room.as_str());
    assert_eq!(state_msg["payload"]["host_id"], host.id.as_str());
    server.signal("-KILL");
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A corrupt, truncated or future-version state file never stops the server: it says why,
/// keeps the file aside and starts empty.
#[test]
fn unusable_state_files() {
    let dir = state_dir("corrupt");
    let valid = {
        let state = dir.join("valid.json");
        let server = Server::start(&state, &[]);
        let (mut host, _) = connect(server.addr);
        host.create_room(json!({}));
        server.signal("-TERM");
        assert!(server.wait().success());
        std::fs::read(&state).expect("a state file")
    };
    let future = String::from_utf8(valid.clone()).expect("UTF-8").replacen(
        "\"version\":1",
        "\"version\":99",
        1,
    );
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage", b"\x00\xffnot json".to_vec()),
        ("truncated", valid[..valid.len() / 2].to_vec()),
        ("future", future.into_bytes()),
        ("wrong shape", b"{\"core\":[]}".to_vec()),
    ];
    for (name, bytes) in cases {
        let state = dir.join(format!("{}.json", name.replace(' ', "-")));
        std::fs::write(&state, &bytes).expect("write");
        let mut server = Server::start(&state, &[]);
        let line = server.logged("event=state_unusable");
        assert!(line.contains("kept_as="), "{name}: {line}");
        assert!(!state.exists(), "{name}: set aside");
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .map_while(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{}.json.bad-", name.replace(' ', "-")))
            })
            .collect();
        assert_eq!(aside.len(), 1, "{name}");
        assert_eq!(
            std::fs::read(aside[0].path()).expect("kept"),
            bytes,
            "{name}: intact"
        );
        // Running, and empty.
        let mut client = Client::connect(server.addr);
        client.send(json!({"type": "list_rooms"}));
        assert_eq!(
            client.recv_type("room_list")["payload"],
            json!([]),
            "{name}"
        );
        server.signal("-KILL");
        let _ = server.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
