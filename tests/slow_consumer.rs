//! A client that stops reading is evicted at the outbox cap; the room goes on.

mod common;

use std::io::{Read, Write};

use common::*;
use serde_json::json;

fn health_connections(addr: std::net::SocketAddr) -> u64 {
    let response = http(addr, b"GET /health HTTP/1.1\r\n\r\n");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("{}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    json["connections"].as_u64().unwrap_or(0)
}

/// A member that never reads is disconnected once it is owed more than OUTBOX_BYTES_MAX;
/// the host and a reading guest keep receiving every message.
#[test]
fn non_reader_is_evicted_at_the_outbox_cap() {
    let mut config = config();
    config.net.outbox_bytes_max = 128 << 10;
    config.net.write_stall_timeout_ms = 3_600_000;
    evicted_while_room_goes_on(config);
}

/// A member that takes no bytes for WRITE_STALL_TIMEOUT_MS is disconnected even under the cap.
#[test]
fn non_reader_is_evicted_after_the_stall_timeout() {
    let mut config = config();
    config.net.outbox_bytes_max = 64 << 20;
    config.net.write_stall_timeout_ms = 200;
    evicted_while_room_goes_on(config);
}

fn evicted_while_room_goes_on(mut config: tandem::config::Config) {
    config.core.messages_per_second_max = 100_000;
    config.net.socket_send_buffer_bytes = 4 << 10;
    let addr = start(config);
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({}));
    let mut guest = Client::connect(addr);
    guest.join(&room);

    // The non-reader: a raw socket with a tiny receive buffer that joins and then never reads.
    let mut slow = raw_websocket(addr);
    let join = json!({"type": "join_room", "room": room, "payload": {}}).to_string();
    slow.write_all(&masked_text_frame(join.as_bytes())).unwrap();
    host.recv_type("participants_update");
    host.recv_type("participants_update");
    assert_eq!(health_connections(addr), 3);

    let text = "x".repeat(400);
    let mut evicted = false;
    for round in 0..200 {
        for _ in 0..50 {
            host.send(json!({"type": "chat_message", "room": room, "payload": {"text": text}}));
        }
        for _ in 0..50 {
            assert_eq!(
                guest.recv_type("chat_message")["payload"]["text"],
                text.as_str()
            );
            assert_eq!(
                host.recv_type("chat_message")["payload"]["text"],
                text.as_str()
            );
        }
        if health_connections(addr) == 2 {
            evicted = true;
            assert!(round > 0, "evicted before it was owed anything");
            break;
        }
    }
    assert!(evicted, "the non-reader was never evicted");
    // Its socket ends: draining what the kernel holds reaches EOF or a reset.
    slow.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = [0u8; 65_536];
    let mut total = 0;
    while let Ok(n) = slow.read(&mut sink) {
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(total < 2 << 20, "far more than the caps allow: {total}");
}

/// A raw socket with a 4 KiB receive buffer that has sent a WebSocket upgrade request and
/// reads nothing unless the test does.
fn raw_websocket(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4 << 10).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
    stream
}

/// A client frame: text, final, masked with a fixed key.
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// A client that floods pings and reads nothing is owed a few pongs (at most 16 wait unsent):
/// when it finally reads, it gets those, not one per ping; the room next door never notices.
#[test]
fn ping_flood_gets_coalesced_pongs() {
    let mut config = config();
    // The host chats once per burst, faster than the default 30 a second.
    config.core.messages_per_second_max = 1_000;
    config.net.socket_send_buffer_bytes = 4 << 10;
    let addr = start(config);
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({}));
    let mut guest = Client::connect(addr);
    guest.join(&room);

    let mut flooder = raw_websocket(addr);
    let key = [9u8, 8, 7, 6];
    let mut ping = vec![0x89, 0x80 | 125];
    ping.extend_from_slice(&key);
    ping.extend((0..125).map(|i| b'p' ^ key[i % 4]));
    let mut burst = Vec::new();
    for _ in 0..1_000 {
        burst.extend_from_slice(&ping);
    }
    let mut sent = 0;
    for _ in 0..40 {
        flooder.write_all(&burst).unwrap();
        sent += burst.len();
        host.send(json!({"type": "chat_message", "room": room, "payload": {"text": "hi"}}));
        assert_eq!(guest.recv_type("chat_message")["payload"]["text"], "hi");
        host.recv_type("chat_message");
    }
    // Now read: what arrives is the upgrade, a greeting and a few pongs.
    flooder
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut sink = [0u8; 65_536];
    let mut received = 0;
    while let Ok(n) = flooder.read(&mut sink) {
        if n == 0 {
            break;
        }
        received += n;
    }
    assert!(
        received < sent / 20,
        "{received} bytes of replies to {sent} bytes of pings"
    );
    assert_eq!(health_connections(addr), 3, "nobody was evicted");
}
