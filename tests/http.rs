//! HTTP side over real sockets: routes, refusals, Origin rules, limits.

mod common;

use common::*;

/// /health answers JSON with status and auth mode.
#[test]
fn health_is_json() {
    let addr = start(config());
    let response = http(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&response), 200, "{response}");
    assert!(response.contains("Content-Type: application/json"));
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["auth_enabled"], false);
}

/// Unknown paths are 404; /ws without upgrade headers is 426; a bad key is 400.
#[test]
fn refusals_are_real_responses() {
    let addr = start(config());
    assert_eq!(status(&http(addr, b"GET /nope HTTP/1.1\r\n\r\n")), 404);
    assert_eq!(
        status(&http(addr, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")),
        426
    );
    let bad_key = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: nope\r\n\r\n";
    assert_eq!(status(&http(addr, bad_key)), 400);
    assert_eq!(status(&http(addr, b"not http at all\r\n\r\n")), 400);
}

/// A request head over 8 KiB is 431.
#[test]
fn oversized_head_is_431() {
    let addr = start(config());
    let request = format!("GET /ws HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(9_000));
    assert_eq!(status(&http(addr, request.as_bytes())), 431);
}

/// No complete request within the handshake deadline: 408, then close.
#[test]
fn slow_request_is_408() {
    let mut config = config();
    config.net.handshake_timeout_ms = 200;
    let addr = start(config);
    let response = http(addr, b"GET /ws HTTP/1.1\r\nHost: x\r\n");
    assert_eq!(status(&response), 408, "{response}");
}

/// Over MAX_CONNECTIONS, a new connection gets 503.
#[test]
fn full_server_is_503() {
    let mut config = config();
    config.connections_max = 2;
    let addr = start(config);
    let _a = Client::connect(addr);
    let _b = Client::connect(addr);
    let response = http(addr, b"GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(status(&response), 503, "{response}");
}

/// Origin: listed is accepted, absent is accepted, other is 403; `*` allows any.
#[test]
fn origin_allow_list() {
    let mut config = config();
    config.allowed_origins = Some(vec!["http://localhost:8096".into()]);
    let addr = start(config);
    let upgrade = |origin: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
        )
    };
    let first_line = |response: String| response.lines().next().unwrap_or("").to_string();
    let ok = first_line(http_head(
        addr,
        upgrade("Origin: http://localhost:8096\r\n").as_bytes(),
    ));
    assert!(ok.contains("101"), "{ok}");
    assert!(first_line(http_head(addr, upgrade("").as_bytes())).contains("101"));
    assert_eq!(
        status(&http(
            addr,
            upgrade("Origin: http://evil.example\r\n").as_bytes()
        )),
        403
    );

    let mut any = common::config();
    any.allowed_origins = None;
    let addr = start(any);
    let ok = first_line(http_head(
        addr,
        upgrade("Origin: http://evil.example\r\n").as_bytes(),
    ));
    assert!(ok.contains("101"), "{ok}");
}

/// Reads only the response head (an upgraded connection stays open).
fn http_head(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A subprotocol offered on /ws is not selected: the 101 carries no Sec-WebSocket-Protocol
/// (OpenWatchParty defines none), and the connection speaks OpenWatchParty.
#[test]
fn unknown_subprotocol_is_not_echoed() {
    let addr = start(config());
    let request = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: chat, superchat\r\n\r\n";
    let head = http_head(addr, request.as_bytes());
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    let mut client = Client::connect_raw(addr, "/ws/anything", &[]);
    assert_eq!(client.recv()["type"], "client_hello");
}
