//! Per-address limits, the /health reserve and the smaller HTTP items, over real sockets.

// The handshake-rate test reads the real clock to know which connections the server saw
// within one second of the first; the retry helper bounds its wait with it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// An upgrade request with extra header lines.
fn upgrade(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Opens a connection, sends `request`, reads the response head; the socket stays open (an
/// upgraded connection is held for as long as the returned stream lives).
fn open(addr: SocketAddr, request: &str) -> (u16, String, TcpStream) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    (status(&head), head, stream)
}

/// Retries `request` until it gets `want` (a slot freed by a close is seen by the server a
/// moment after the client closes), within the test wait.
fn eventually(addr: SocketAddr, request: &str, want: u16) -> TcpStream {
    let start = Instant::now();
    loop {
        let (code, head, stream) = open(addr, request);
        if code == want {
            return stream;
        }
        assert!(start.elapsed() < WAIT, "never got {want}; last: {head}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One address holds at most MAX_CONNECTIONS_PER_IP; the next gets 429 with Retry-After,
/// /health is still answered, and a close frees a slot.
#[test]
fn connections_per_address() {
    let mut config = config();
    config.connections_per_ip_max = 2;
    config.handshakes_per_ip_per_sec = 0;
    let addr = start(config);
    let (a, _, first) = open(addr, &upgrade(""));
    let (b, _, _second) = open(addr, &upgrade(""));
    assert_eq!((a, b), (101, 101));
    let (code, head, _) = open(addr, &upgrade(""));
    assert_eq!(code, 429, "{head}");
    assert!(head.contains("Retry-After: 1"), "{head}");
    assert_eq!(status(&http(addr, b"GET /health HTTP/1.1\r\n\r\n")), 200);
    drop(first);
    let _third = eventually(addr, &upgrade(""), 101);
}

/// More than HANDSHAKES_PER_IP_PER_SEC new connections within a second get 429.
#[test]
fn handshakes_per_address() {
    let mut config = config();
    config.connections_per_ip_max = 0;
    config.handshakes_per_ip_per_sec = 3;
    let addr = start(config);
    let began = Instant::now();
    let mut held = Vec::new();
    let mut refused_in_window = 0;
    for i in 0..8 {
        let (code, head, stream) = open(addr, &upgrade(""));
        held.push(stream);
        if i < 3 {
            assert_eq!(code, 101, "connection {i}: {head}");
        } else if began.elapsed() < Duration::from_millis(1_000) {
            // The server saw this one within a second of the first: over the rate.
            assert_eq!(code, 429, "connection {i}: {head}");
            refused_in_window += 1;
        }
    }
    // On any machine that is not stalled for a second, the check above ran.
    if began.elapsed() < Duration::from_millis(900) {
        assert_eq!(refused_in_window, 5);
    }
}

/// A trusted proxy's connections count under the client its X-Forwarded-For names; anyone
/// else's X-Forwarded-For is ignored.
#[test]
fn forwarded_for_from_trusted_proxies_only() {
    let mut config = config();
    config.connections_per_ip_max = 1;
    config.handshakes_per_ip_per_sec = 0;
    config.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    let addr = start(config);
    let ann = "X-Forwarded-For: 198.51.100.1, 203.0.113.1\r\n";
    let bob = "X-Forwarded-For: 203.0.113.2\r\n";
    let (code, _, _ann) = open(addr, &upgrade(ann));
    assert_eq!(code, 101);
    let (code, head, _) = open(addr, &upgrade(ann));
    assert_eq!(code, 429, "{head}");
    let (code, _, _bob) = open(addr, &upgrade(bob));
    assert_eq!(code, 101);

    let mut config = common::config();
    config.connections_per_ip_max = 1;
    config.handshakes_per_ip_per_sec = 0;
    let addr = start(config);
    let (code, _, _ann) = open(addr, &upgrade(ann));
    assert_eq!(code, 101);
    let (code, head, _) = open(addr, &upgrade(bob));
    assert_eq!(
        code, 429,
        "an untrusted X-Forwarded-For was believed: {head}"
    );
}

/// Every slot taken: /ws gets 503, /health still gets 200.
#[test]
fn health_answered_when_full() {
    let mut config = config();
    config.connections_max = 2;
    let addr = start(config);
    let _a = Client::connect(addr);
    let _b = Client::connect(addr);
    let (code, head, _) = open(addr, &upgrade(""));
    assert_eq!(code, 503, "{head}");
    let response = http(addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(status(&response), 200, "{response}");
    assert!(response.contains("\"connections\":2"), "{response}");
}

/// HEAD /health: the headers, no body; an absolute-form target routes on its path.
#[test]
fn head_and_absolute_form() {
    let addr = start(config());
    let head = http(addr, b"HEAD /health HTTP/1.1\r\n\r\n");
    assert_eq!(status(&head), 200, "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD got a body: {head:?}");
    assert!(head.contains("Content-Length: "));
    let absolute = http(
        addr,
        b"GET http://localhost:3000/health?x=1 HTTP/1.1\r\n\r\n",
    );
    assert_eq!(status(&absolute), 200, "{absolute}");
    let request = upgrade("").replace("GET /ws", "GET http://localhost:3000/ws");
    assert_eq!(open(addr, &request).0, 101);
}

/// An Origin header that is not UTF-8 is refused, even when any origin is allowed.
#[test]
fn non_utf8_origin_is_403() {
    for allowed in [Some(vec!["http://localhost:8096".to_string()]), None] {
        let mut config = config();
        config.allowed_origins = allowed;
        let addr = start(config);
        let mut request = upgrade("Origin: http://localhost:8096\r\n").into_bytes();
        let at = request
            .windows(4)
            .position(|w| w == b"8096")
            .expect("origin");
        request[at] = 0xC0;
        assert_eq!(status(&http(addr, &request)), 403);
    }
}
