//! The one in-memory driver, shared by the simulation (tests/sim), the fuzz properties
//! (tests/props, also built by the fuzz/ crate), the hostile-client tests and the playback
//! transcripts on virtual time:
//!
//! - `mem_stream`: an in-memory duplex pipe the real `Engine` and clients run over;
//! - `engine`: `Driver`, the real `Engine<MemStream, Gateway>` driven as the mio loop drives
//!   it, on a virtual clock;
//! - `conn_ids`: fresh connection ids as the engine's slab hands them out, for harnesses
//!   that drive the core or the gateway without an engine;
//! - here: the client side's fixed upgrade request and masked frames.
//!
//! Included by path from every one of those places, so it may only use what all of them
//! have: tandem and the standard library (no tungstenite, no serde_json; the fuzz crate has
//! no tungstenite), and no `unsafe`.

#![allow(dead_code)]

pub mod conn_ids;
pub mod engine;
pub mod mem_stream;

use tandem::time::{Millis, Now, UnixMillis};

/// Wall-clock origin of every virtual clock (any instant works; a real one reads well).
pub const WALL_ORIGIN: u64 = 1_700_000_000_000;

/// Virtual time zero: monotonic 0 ms, wall clock at `WALL_ORIGIN`.
pub fn origin() -> Now {
    Now {
        mono: Millis(0),
        wall: UnixMillis(WALL_ORIGIN),
    }
}

/// A fixed client upgrade request (RFC 6455's sample key).
pub const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: localhost:3000\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A masked client frame: `first` is FIN, RSV and opcode.
pub fn frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}
