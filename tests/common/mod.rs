//! Shared helpers for the loopback tests: an in-process server on 127.0.0.1:0 and a blocking
//! WebSocket client with bounded reads. Every wait is on an event (a message or a socket
//! state), bounded by a read timeout, never a sleep.

#![allow(dead_code)]
// Tests measure wall-clock time like a browser's Date.now(); the clock rule is for src/.
#![allow(clippy::disallowed_methods, clippy::field_reassign_with_default)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use tandem::config::Config;
use tandem::gateway::Gateway;
use tungstenite::{Message, WebSocket};

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A test configuration: loopback, port 0, any origin unless set, quick deadlines.
pub fn config() -> Config {
    let mut config = Config::default();
    config.host = "127.0.0.1".parse().unwrap();
    config.port = 0;
    config.connections_max = 200;
    config.log_level = tandem::log::Level::Error;
    config
}

/// Starts a server in a background thread; returns its address.
pub fn start(config: Config) -> SocketAddr {
    let server = Gateway::server(&config, 42, None).expect("bind 127.0.0.1:0");
    let addr = server.local_addr();
    std::thread::spawn(move || server.run());
    addr
}

/// A blocking WebSocket client.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
    pub id: String,
    /// Also return `client_joined` notices (most tests follow `participants_update`, which
    /// comes with each of them, and skip these; tests/survive.rs reads them).
    pub see_joins: bool,
}

impl Client {
    /// Connects to /ws and reads `client_hello` and the first `room_list`.
    pub fn connect(addr: SocketAddr) -> Client {
        let mut client = Client::connect_raw(addr, "/ws", &[]);
        let hello = client.recv();
        assert_eq!(hello["type"], "client_hello", "{hello}");
        client.id = hello["payload"]["client_id"]
            .as_str()
            .expect("client_id")
            .to_string();
        let list = client.recv();
        assert_eq!(list["type"], "room_list", "{list}");
        client
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}{path}"
        ))
        .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let (ws, _) = tungstenite::client(request, stream).expect("handshake");
        Client {
            ws,
            id: String::new(),
            see_joins: false,
        }
    }

    /// Sends a JSON message with `ts` added.
    pub fn send(&mut self, mut message: Value) {
        if message.get("ts").is_none() {
            message["ts"] = json!(now_ms());
        }
        self.ws
            .send(Message::text(message.to_string()))
            .expect("send");
    }

    /// Sends raw text.
    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).expect("send");
    }

    /// The next text message as JSON (pings are answered by tungstenite; `client_joined`
    /// is skipped unless `see_joins`).
    pub fn recv(&mut self) -> Value {
        loop {
            match self.ws.read().expect("a message within the wait") {
                Message::Text(text) => {
                    let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    if message["type"] == "client_joined" && !self.see_joins {
                        continue;
                    }
                    return message;
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Messages until one of `kind`, which is returned; others are skipped.
    pub fn recv_type(&mut self, kind: &str) -> Value {
        for _ in 0..1_000 {
            let message = self.recv();
            if message["type"] == kind {
                return message;
            }
        }
        panic!("no {kind} in 1000 messages");
    }

    /// Reads until the server closes; returns the close code.
    pub fn close_code(&mut self) -> Option<u16> {
        for _ in 0..10_000 {
            match self.ws.read() {
                Ok(Message::Close(frame)) => {
                    // Complete the closing handshake as a browser would: send the reply.
                    let _ = self.ws.flush();
                    return frame.map(|f| u16::from(f.code));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Asserts nothing arrives before a `ping` round trip completes (the server handles a
    /// connection's messages in order, so anything pending would come before the pong).
    pub fn expect_quiet(&mut self) {
        self.send(json!({"type": "ping", "payload": {"client_ts": 1}}));
        let next = self.recv();
        assert_eq!(
            next["type"], "pong",
            "expected nothing before the pong, got {next}"
        );
    }

    /// Creates a room; returns its id (after reading the room_state).
    pub fn create_room(&mut self, payload: Value) -> String {
        self.send(json!({"type": "create_room", "room": "", "payload": payload}));
        let state = self.recv_type("room_state");
        state["room"].as_str().expect("room id").to_string()
    }

    /// Joins a room; returns the room_state.
    pub fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join_room", "room": room, "payload": {"user_name": "guest"}}));
        self.recv_type("room_state")
    }
}

/// A host in a room it created and a guest who joined it (the host has read the join).
pub fn host_and_guest(addr: SocketAddr) -> (Client, Client, String) {
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({"name": "Film"}));
    let mut guest = Client::connect(addr);
    guest.join(&room);
    assert_eq!(host.recv()["type"], "participants_update");
    (host, guest, room)
}

/// Wall clock in ms (what a browser's Date.now() is).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sends raw bytes and reads the whole HTTP response (until the server closes).
pub fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// The status code of an HTTP response.
pub fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

// ----- helpers for the protocol and playback tests -----

impl Client {
    /// The next text message as its raw text (pings are answered by tungstenite).
    pub fn recv_text(&mut self) -> String {
        loop {
            match self.ws.read().expect("a message within the wait") {
                Message::Text(text) => return text.as_str().to_string(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next text message if one arrives within `wait`; `None` if none does. A bounded
    /// read that also answers the server's pings, never a sleep.
    pub fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = now_ms() + wait.as_millis() as u64;
        let result = loop {
            let left = deadline.saturating_sub(now_ms());
            if left == 0 {
                break None;
            }
            let left = Duration::from_millis(left);
            self.ws.get_mut().set_read_timeout(Some(left)).unwrap();
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    break Some(serde_json::from_str(text.as_str()).expect("JSON"))
                }
                Ok(Message::Close(frame)) => panic!("closed: {frame:?}"),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break None
                }
                Err(e) => panic!("read failed: {e}"),
            }
        };
        self.ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
        result
    }

    /// Asserts that nothing arrives for `wait` (used where only elapsed time can show an
    /// absence, e.g. to let a server window pass while checking it stays silent).
    pub fn expect_silence(&mut self, wait: Duration) {
        if let Some(message) = self.recv_within(wait) {
            panic!("expected silence for {wait:?}, got {message}");
        }
    }

    /// Sends a ping with a unique marker and returns every message that came before its
    /// pong (everything the server had queued for this connection until then).
    pub fn drain(&mut self) -> Vec<Value> {
        static MARKER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let marker = MARKER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send(json!({"type": "ping", "payload": {"client_ts": 1, "marker": marker}}));
        let mut before = Vec::new();
        for _ in 0..1_000 {
            let message = self.recv();
            if message["type"] == "pong" && message["payload"]["marker"] == marker {
                return before;
            }
            before.push(message);
        }
        panic!("no pong for marker {marker} in 1000 messages");
    }

    /// Joins a room under `name`; returns the room_state.
    pub fn join_as(&mut self, room: &str, name: &str) -> Value {
        self.send(json!({"type": "join_room", "room": room, "payload": {"user_name": name}}));
        self.recv_type("room_state")
    }

    /// Sends `auth` with `scheduled: true` (a client that follows the server's schedule).
    pub fn declare_scheduled(&mut self) {
        self.send(json!({"type": "auth", "payload": {"scheduled": true}}));
    }
}

/// Asserts `id` is a lower-case hyphenated UUID v4 (RFC 4122 variant).
pub fn assert_uuid_v4(id: &str) {
    let bytes = id.as_bytes();
    assert_eq!(bytes.len(), 36, "not a hyphenated UUID: {id:?}");
    for (i, &b) in bytes.iter().enumerate() {
        if [8, 13, 18, 23].contains(&i) {
            assert_eq!(b, b'-', "not a hyphenated UUID: {id:?}");
        } else {
            assert!(
                b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
                "not lower-case hex: {id:?}"
            );
        }
    }
    assert_eq!(bytes[14], b'4', "not version 4: {id:?}");
    assert!(
        b"89ab".contains(&bytes[19]),
        "not the RFC 4122 variant: {id:?}"
    );
}

/// Asserts `message` is an `error` with this message text and code.
pub fn assert_error(message: &Value, text: &str, code: &str) {
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["payload"]["message"], text, "{message}");
    assert_eq!(message["payload"]["code"], code, "{message}");
}

/// A JSON number as f64 (panics with the message otherwise).
pub fn num(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}
