//! What shipping needs from the binary itself: `tandem healthcheck` for container health
//! checks without a shell or curl.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn healthcheck(port: u16) -> Option<i32> {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("healthcheck")
        .env_clear()
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .stderr(Stdio::null())
        .status()
        .expect("run tandem healthcheck")
        .code()
}

/// 0 against a running server, 1 against something that is not one (a listener that
/// hangs up at once).
#[test]
fn healthcheck_exit_codes() {
    let addr = start(config());
    assert_eq!(healthcheck(addr.port()), Some(0));
    let impostor = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = impostor.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in impostor.incoming() {
            drop(stream);
        }
    });
    assert_eq!(healthcheck(port), Some(1));
}

/// `/metrics` in Prometheus text: every line parses, and the counters move with traffic.
fn scrape(
    addr: std::net::SocketAddr,
    token: Option<&str>,
) -> (u16, std::collections::BTreeMap<String, f64>) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let response = http(
        addr,
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes(),
    );
    let code = status(&response);
    if code != 200 {
        return (code, Default::default());
    }
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let mut samples = std::collections::BTreeMap::new();
    for line in body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value {line:?}"));
        let name = key.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name {line:?}"
        );
        samples.insert(key.to_string(), value);
    }
    (code, samples)
}

#[test]
fn metrics_move_with_traffic() {
    let addr = start(config());
    let (code, before) = scrape(addr, None);
    assert_eq!(code, 200);
    let mut host = Client::connect(addr);
    let room = host.create_room(serde_json::json!({}));
    host.send(serde_json::json!({"type": "chat_message", "room": room, "payload": {"text": "hi"}}));
    host.recv_type("chat_message");
    host.send_text("not json");
    host.recv_type("error");
    let (_, after) = scrape(addr, None);
    let moved = |key: &str| {
        after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
    };
    assert_eq!(after["tandem_rooms"], 1.0);
    assert_eq!(after["tandem_members"], 1.0);
    assert_eq!(moved("tandem_messages_in_total{type=\"chat\"}"), 1.0);
    assert_eq!(moved("tandem_messages_in_total{type=\"create_room\"}"), 1.0);
    assert_eq!(moved("tandem_messages_out_total{type=\"chat\"}"), 1.0);
    assert_eq!(
        moved("tandem_errors_sent_total{code=\"invalid_message\"}"),
        1.0
    );
    assert_eq!(moved("tandem_websockets_opened_total"), 1.0);
    assert!(moved("tandem_bytes_in_total") > 0.0);
    assert!(moved("tandem_bytes_out_total") > 0.0);
    assert!(moved("tandem_turn_duration_seconds_count") > 0.0);
    assert_eq!(
        after["tandem_turn_duration_seconds_count"],
        after["tandem_turn_duration_seconds_bucket{le=\"+Inf\"}"]
    );
    // A 404 is counted by status.
    let response = http(addr, b"GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(status(&response), 404);
    let (_, last) = scrape(addr, None);
    assert_eq!(
        last["tandem_http_refused_total{status=\"404\"}"]
            - after["tandem_http_refused_total{status=\"404\"}"],
        1.0
    );
}

/// With METRICS_TOKEN set, /metrics needs it.
#[test]
fn metrics_token() {
    let mut config = config();
    config.net.metrics_token = Some(tandem::auth::Secret(b"s3cret".to_vec()));
    let addr = start(config);
    assert_eq!(scrape(addr, None).0, 401);
    assert_eq!(scrape(addr, Some("wrong")).0, 401);
    let (code, samples) = scrape(addr, Some("s3cret"));
    assert_eq!(code, 200);
    assert!(samples.contains_key("tandem_rooms"));
}

/// LOG_FORMAT=json: every line the binary writes is one JSON object.
#[test]
fn json_log_lines() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env_clear()
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("STATE_FILE", "")
        .env("LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tandem");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let listening = value["event"] == "listening";
        seen.push(value);
        if listening {
            break;
        }
    }
    let listening = seen.last().expect("a line");
    assert_eq!(listening["level"], "info");
    assert!(listening["addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    let _ = child.kill();
    let _ = child.wait();
}
