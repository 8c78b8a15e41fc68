//! `conn_bytes`: one connection of a real `Engine<MemStream, Gateway>` fed arbitrary bytes in
//! arbitrary chunks, with the clock, the server's write window and read chunking also
//! chosen by the input.
//!
//! Input: a flags byte (bit 0: start with a valid upgrade request; bit 1: the client does
//! not read; bits 2-3: write window; bits 4-5: read chunk), then operations, one byte each:
//! `00-BF` a chunk of 1-64 input bytes; `C0-CF` move the clock; `D0-DF` change a knob, drain,
//! stall or poke; `E0-EF` a chunk of up to 4 KiB; `F0-FE` a canned masked frame (text, ping,
//! close, fragments, an oversized header, a stock client message); `FF` half-close.
//!
//! Properties: no panic; at most one connection and one WebSocket; core invariants and the
//! outbox cap (bytes queued for the client) after every turn; the server's bytes start as an
//! HTTP response; output is bounded by a multiple of the input (no amplification loop); no
//! turn spins (64 turns in a row without a byte read or written); and after the client
//! half-closes and the clock passes every deadline, the connection is gone.
//!
//! The engine runs on the shared in-memory driver (tests/driver), as the simulation's does.

use std::io::Write;

use tandem::config::{CoreConfig, NetConfig};
use tandem::net::engine::EngineConfig;

use super::bytes::Bytes;
use super::driver::engine::Driver;
use super::driver::{frame, mem_stream, UPGRADE};
use super::mem_stream::{Knobs, MemStream};

const WINDOWS: [usize; 4] = [1 << 18, 16, 700, 1 << 12];
const CHUNKS: [usize; 4] = [1 << 12, 1, 7, 300];

/// The engine configuration used here: production limits, a few connections.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        net: NetConfig::default(),
        core: CoreConfig::default(),
        connections_max: 4,
        allowed_origins: None,
        address_limits: Default::default(),
        trusted_proxies: Vec::new(),
    }
}

/// Checks every property on one input.
pub fn check(data: &[u8]) {
    // Evictions and refusals are expected here; their warnings would drown the fuzzer's output.
    tandem::log::set_level(tandem::log::Level::Error);
    let mut input = Bytes::new(data);
    let mut rig = Rig::new(input.byte());
    while !input.is_empty() {
        rig.op(&mut input);
        rig.turn();
        rig.verify();
    }
    rig.finish();
    rig.verify();
}

struct Rig {
    driver: Driver,
    client: MemStream,
    /// Handle on the server end (knobs, byte counts).
    server: MemStream,
    id: tandem::id::ConnId,
    reading: bool,
    /// The first bytes the server wrote, for the HTTP check.
    head: Vec<u8>,
    /// Bytes the server wrote that the client has read.
    read_total: usize,
}

impl Rig {
    fn new(flags: u8) -> Rig {
        let mut driver = Driver::with_seed(engine_config(), 7);
        let (mut client, server) = mem_stream::pair();
        let handle = server.handle();
        handle.set_knobs(Knobs {
            window: WINDOWS[(flags >> 2 & 3) as usize],
            read_chunk: CHUNKS[(flags >> 4 & 3) as usize],
            ..Knobs::default()
        });
        let id = driver.accept(server);
        if flags & 1 != 0 {
            let _ = client.write_all(UPGRADE);
        }
        Rig {
            driver,
            client,
            server: handle,
            id,
            reading: flags & 2 == 0,
            head: Vec::new(),
            read_total: 0,
        }
    }

    fn op(&mut self, input: &mut Bytes<'_>) {
        let op = input.byte();
        match op {
            0x00..=0xBF => self.send(input.take((op & 63) as usize + 1)),
            0xC0..=0xCF => self.advance(u64::from(op & 15) * 500 + 1),
            0xD0..=0xD7 => {
                let window = [0, 1, 16, 128, 1 << 10, 1 << 12, 1 << 16, 1 << 18][(op & 7) as usize];
                self.server.set_knobs(Knobs {
                    window,
                    ..self.server.knobs()
                });
            }
            0xD8..=0xDB => {
                let read_chunk = CHUNKS[(op & 3) as usize];
                self.server.set_knobs(Knobs {
                    read_chunk,
                    ..self.server.knobs()
                });
            }
            0xDC => self.read(),
            0xDD => self.reading = !self.reading,
            0xDE => self.server.stall_reads(u32::from(input.byte() & 3)),
            0xDF => self
                .driver
                .engine
                .ready(self.driver.now, self.id, true, true),
            0xE0..=0xEF => {
                let len = (usize::from(op & 15) << 8 | usize::from(input.byte())) + 1;
                self.send(input.take(len));
            }
            0xF0..=0xFE => {
                let frame = canned_frame(op - 0xF0, input);
                self.send(&frame);
            }
            0xFF => tandem::net::stream::Stream::close_write(&mut self.client),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        // After a half-close writes fail, as they would on a socket: the bytes are lost.
        let _ = self.client.write_all(bytes);
    }

    /// One event-loop turn, plus the turns the loop runs while work is carried over or the
    /// client's reads (after every turn, if it reads) opened the window.
    fn turn(&mut self) {
        let (client, head, read_total) = (&self.client, &mut self.head, &mut self.read_total);
        let reading = self.reading;
        self.driver.settle_with(|| {
            if reading {
                read(client, head, read_total);
            }
        });
    }

    fn read(&mut self) {
        read(&self.client, &mut self.head, &mut self.read_total);
    }

    /// Moves the clock to `now + delta`, stopping at every deadline on the way, as the event
    /// loop's poll timeout does.
    fn advance(&mut self, delta: u64) {
        let (client, head, read_total) = (&self.client, &mut self.head, &mut self.read_total);
        let reading = self.reading;
        self.driver.advance_with(delta, || {
            if reading {
                read(client, head, read_total);
            }
        });
    }

    fn verify(&self) {
        let engine = &self.driver.engine;
        assert!(
            engine.len() <= 1,
            "{} connections from one socket",
            engine.len()
        );
        assert!(engine.websockets() <= 1);
        self.driver.check();
        if !self.head.is_empty() {
            let expected = &b"HTTP/1.1 "[..self.head.len().min(9)];
            assert_eq!(
                &self.head[..expected.len()],
                expected,
                "the server did not answer HTTP first"
            );
        }
        let written = self.server.written_total() as usize;
        let sent = self.client.handle().written_total() as usize;
        // A reply per message (an error reply is ~150 bytes for a 6-byte empty frame), pongs,
        // the greeting and idle pings: generous, but linear in what the client sent (canned
        // frames make the client send more than the fuzz input holds).
        let bound = (16 << 10) + 32 * sent;
        assert!(
            written <= bound,
            "wrote {written} bytes for {sent} received"
        );
        // What the client is owed (frame bytes plus the cost of each queued frame) never
        // exceeds the outbox cap plus the control frames allowed past it (beyond, the
        // connection is evicted): `Driver::check`, above and after every turn.
    }

    /// The client reads everything, half-closes, and the clock passes every deadline: the
    /// connection must be gone.
    fn finish(&mut self) {
        self.reading = true;
        self.server.set_knobs(Knobs {
            window: 1 << 18,
            ..self.server.knobs()
        });
        tandem::net::stream::Stream::close_write(&mut self.client);
        self.turn();
        self.advance(200_000);
        assert!(
            self.driver.engine.is_empty(),
            "the connection outlived EOF and every deadline"
        );
        assert_eq!(self.driver.engine.service().core().stats().sessions, 0);
    }
}

/// Stock client messages, for canned frames.
pub const STOCK_MESSAGES: [&str; 8] = [
    r#"{"type":"list_rooms","ts":1}"#,
    r#"{"type":"auth","payload":{"user_name":"Ann","scheduled":true},"ts":1}"#,
    r#"{"type":"create_room","payload":{"name":"Movie","start_pos":3,"media_id":"0123456789abcdef0123456789abcdef"},"ts":1}"#,
    r#"{"type":"player_event","room":"x","payload":{"action":"play","position":3.5},"ts":1}"#,
    r#"{"type":"state_update","payload":{"position":4,"play_state":"playing"},"ts":1}"#,
    r#"{"type":"ping","payload":{"client_ts":123},"ts":1}"#,
    r#"{"type":"chat_message","payload":{"text":"hello"},"ts":1}"#,
    r#"{"type":"leave_room","ts":1}"#,
];

fn canned_frame(kind: u8, input: &mut Bytes<'_>) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    match kind {
        0 => frame(0x81, input.slice(), mask),
        1 => frame(0x89, input.slice(), mask),
        2 => frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e'], mask),
        3 => frame(0x82, input.slice(), mask),
        4 => frame(0x01, input.slice(), mask),
        5 => frame(0x80, input.slice(), mask),
        6 => oversized_header(mask),
        7 => frame(0x8A, input.slice(), mask),
        8 => frame(0x81, b"", mask),
        _ => {
            let message = STOCK_MESSAGES[input.below(STOCK_MESSAGES.len())];
            frame(0x81, message.as_bytes(), mask)
        }
    }
}

/// The header of a text frame one byte over the 64 KiB limit, and a little of its payload.
fn oversized_header(mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![0x81, 0x80 | 127];
    out.extend_from_slice(&((64u64 << 10) + 1).to_be_bytes());
    out.extend_from_slice(&mask);
    out.extend_from_slice(&[b'x' ^ mask[0]; 64]);
    out
}

/// The client reads everything waiting; the first bytes are kept for the HTTP check.
fn read(client: &MemStream, head: &mut Vec<u8>, read_total: &mut usize) {
    let bytes = client.handle().drain();
    *read_total += bytes.len();
    let room = 16usize.saturating_sub(head.len());
    head.extend_from_slice(&bytes[..room.min(bytes.len())]);
}
