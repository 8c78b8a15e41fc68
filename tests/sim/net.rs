//! Level 2: the real `Engine` over in-memory pipes (the shared `Driver` of tests/driver),
//! with tungstenite clients on the other ends.
//!
//! `SimNet` is the driver: a turn is `begin_turn`, a readiness event for every server end
//! whose edge flag is set, then `end_turn`; `settle` repeats turns while work is carried over
//! or edges are pending, bounded by progress; `advance` moves the virtual clock, stopping at
//! every engine deadline. Here: `connect`, a tungstenite client through the upgrade.
//!
//! Assertions are on decoded messages, never bytes: tungstenite's client masks every frame
//! with a random key.

use std::io::{self, Read, Write};

use serde_json::Value;
use tandem::id::ConnId;
use tungstenite::protocol::Role;
use tungstenite::{Error as WsError, Message, WebSocket};

use super::driver::engine::Driver;
use super::driver::UPGRADE;
use super::mem_stream::MemStream;

/// The simulated network: the shared driver.
pub type SimNet = Driver;

/// How a client's connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// Still open.
    Open,
    /// The server sent a close frame with this code.
    CloseFrame(u16),
    /// tungstenite finished the closing handshake.
    Closed,
    /// The stream ended without a closing handshake (or another transport error).
    Dropped(String),
}

/// A tungstenite client over one pipe end.
pub struct Peer {
    pub id: ConnId,
    pub ws: WebSocket<MemStream>,
    /// Handle on the client end (knobs, byte counts).
    pub end: MemStream,
    /// Text messages received, parsed.
    pub received: Vec<Value>,
    pub pongs: usize,
    pub ending: Ending,
    /// The first close frame's code, kept when the handshake later completes.
    pub close_code: Option<u16>,
}

impl Driver {
    /// A client through the upgrade, with `client_hello` and the first `room_list` read.
    pub fn connect(&mut self) -> Peer {
        let (id, mut client) = self.connect_raw();
        client
            .write_all(UPGRADE)
            .expect("the request fits the window");
        self.settle();
        let response = read_head(&mut client);
        assert!(
            response.starts_with("HTTP/1.1 101 "),
            "upgrade refused: {response}"
        );
        let end = client.handle();
        let ws = WebSocket::from_raw_socket(client, Role::Client, None);
        let mut peer = Peer {
            id,
            ws,
            end,
            received: Vec::new(),
            pongs: 0,
            ending: Ending::Open,
            close_code: None,
        };
        peer.pump();
        let kinds: Vec<&str> = peer
            .received
            .iter()
            .map(|m| m["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["client_hello", "room_list"], "greeting");
        peer
    }
}

impl Peer {
    /// Sends a text message (queued by tungstenite if the window is full).
    pub fn send(&mut self, text: &str) {
        match self.ws.send(Message::text(text.to_string())) {
            Ok(()) => {}
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("client send failed: {e}"),
        }
    }

    /// Reads every message available now.
    pub fn pump(&mut self) {
        for _ in 0..1_000_000 {
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    let value = serde_json::from_str(text.as_str()).expect("server sends JSON");
                    self.received.push(value);
                }
                Ok(Message::Pong(_)) => self.pongs += 1,
                Ok(Message::Close(frame)) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    self.close_code.get_or_insert(code);
                    self.ending = Ending::CloseFrame(code);
                }
                Ok(_) => {}
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => {
                    self.ending = Ending::Closed;
                    return;
                }
                Err(e) => {
                    self.ending = Ending::Dropped(e.to_string());
                    return;
                }
            }
        }
        panic!("a million messages in one pump");
    }

    /// Messages of `kind` received so far.
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.received.iter().filter(|m| m["type"] == kind).collect()
    }
}

/// Reads an HTTP response head byte by byte, so no WebSocket byte is consumed with it.
pub fn read_head(stream: &mut MemStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
