//! Level 2: the real `Engine` over in-memory pipes, driven like the mio loop drives it, with
//! tungstenite clients on the other ends.
//!
//! `SimNet` replaces `event_loop`: a turn is `begin_turn`, a readiness event for every server
//! end whose edge flag is set (edge-triggered: only when bytes arrived, the window opened or
//! the peer closed), then `end_turn`; reaped sockets are dropped, which the client sees as
//! EOF. `settle` repeats turns while work is carried over or edges are pending, bounded by
//! progress; `advance` moves the virtual clock, stopping at every engine deadline.
//!
//! Assertions are on decoded messages, never bytes: tungstenite's client masks every frame
//! with a random key.

use std::io::{self, Read, Write};

use serde_json::Value;
use tandem::gateway::Gateway;
use tandem::id::ConnId;
use tandem::net::engine::{Engine, EngineConfig};
use tandem::time::{Millis, Now, UnixMillis};
use tungstenite::protocol::Role;
use tungstenite::{Error as WsError, Message, WebSocket};

use super::mem_stream::{self, MemStream};

const WALL_ORIGIN: u64 = 1_700_000_000_000;

/// A fixed client upgrade request (RFC 6455's sample key).
pub const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: localhost:3000\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The engine and the server ends of its pipes.
pub struct SimNet {
    pub engine: Engine<MemStream, Gateway>,
    pub now: Now,
    /// (connection, handle on its server end), in accept order.
    ends: Vec<(ConnId, MemStream)>,
    /// Deliver readiness to the newest connections first (to vary same-turn ordering).
    pub reverse_order: bool,
    /// Sockets the engine gave back for dropping.
    pub reaped: usize,
    turns: u64,
}

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

impl SimNet {
    /// An engine with `config`, at time zero, without a real clock.
    pub fn new(config: EngineConfig) -> SimNet {
        SimNet {
            engine: Gateway::engine(config, 42, None),
            now: Now {
                mono: Millis(0),
                wall: UnixMillis(WALL_ORIGIN),
            },
            ends: Vec::new(),
            reverse_order: false,
            reaped: 0,
            turns: 0,
        }
    }

    /// Accepts a new connection; returns the client end.
    pub fn connect_raw(&mut self) -> (ConnId, MemStream) {
        let (client, server) = mem_stream::pair();
        let handle = server.handle();
        let Ok(id) = self.engine.accept(self.now, server) else {
            panic!("engine refused a socket")
        };
        self.ends.push((id, handle));
        (id, client)
    }

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

    /// The server end of `id`, for knobs.
    pub fn server_end(&self, id: ConnId) -> &MemStream {
        &self
            .ends
            .iter()
            .find(|(c, _)| *c == id)
            .expect("a known connection")
            .1
    }

    /// One loop turn: timers, readiness for every edge, flush and reap.
    pub fn turn(&mut self) {
        self.engine.begin_turn(self.now);
        let order: Vec<usize> = if self.reverse_order {
            (0..self.ends.len()).rev().collect()
        } else {
            (0..self.ends.len()).collect()
        };
        for i in order {
            let (id, end) = &self.ends[i];
            if end.take_edge() {
                self.engine.ready(self.now, *id, true, true);
            }
        }
        let mut reaped = Vec::new();
        self.engine.end_turn(self.now, &mut reaped);
        self.reaped += reaped.len();
        drop(reaped);
        // Compaction between turns (which the event loop does after crowds leave) must be
        // invisible: every scenario here runs with it after every other turn.
        self.turns += 1;
        if self.turns % 2 == 0 {
            self.engine.compact();
        }
        self.engine.service().core().check_invariants();
        assert!(self.engine.websockets() <= self.engine.len());
        // The per-connection memory budget: what any client is owed stays within the cap
        // (plus the control frames allowed past it); the core's share is checked above.
        let cap = self.engine.config().net.outbox_bytes_max + tandem::net::engine::CONTROL_SLACK;
        assert!(
            self.engine.queued_max() <= cap,
            "{} bytes owed to one client, cap {cap}",
            self.engine.queued_max()
        );
    }

    /// Turns until nothing is carried over and no edge is pending; fails on a spin.
    pub fn settle(&mut self) {
        let mut idle = 0;
        for _ in 0..100_000 {
            let before = self.progress();
            self.turn();
            let pending =
                self.engine.has_carry_over() || self.ends.iter().any(|(_, e)| e.has_edge());
            if !pending {
                return;
            }
            idle = if self.progress() == before {
                idle + 1
            } else {
                0
            };
            assert!(
                idle < 64,
                "the engine spun for 64 turns without moving a byte"
            );
        }
        panic!("settle did not settle");
    }

    fn progress(&self) -> (u64, usize) {
        let written = self.ends.iter().map(|(_, e)| e.written_total()).sum();
        let unread = self.ends.iter().map(|(_, e)| e.readable_bytes()).sum();
        (written, unread)
    }

    /// Moves the clock by `delta`, settling at every deadline on the way.
    pub fn advance(&mut self, delta: u64) {
        let target = self.now.mono + delta;
        for _ in 0..100_000 {
            match self.engine.next_deadline() {
                Some(next) if next <= target => {
                    self.now = self.now.plus(next.since(self.now.mono));
                    self.settle();
                    if self.engine.next_deadline() == Some(next) {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.plus(target.since(self.now.mono));
        self.settle();
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
