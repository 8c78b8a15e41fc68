//! Tandem: a watch-party session server. One thread, one mio poll loop, every socket in a
//! slab, all room state in a pure core.
//!
//! ```text
//!   mio Poll ─► net::event_loop (the only file that knows mio: listener, signals, poll timeout)
//!                 │
//!                 ▼
//!               net::Engine<S: Read + Write>  (HTTP upgrade, tungstenite framing, write caps,
//!                 │                            handshake/idle/close deadlines on a timer wheel)
//!                 │   text frames in                       ▲ frames out (shared bytes)
//!                 ▼                                        │
//!               gateway::Gateway  (dialect codecs: owp::decode → Command, Event → owp::encode)
//!                 │   Command                              ▲ Event + recipients
//!                 ▼                                        │
//!               core::Core  (rooms, membership, playback clock, ready barrier, room timers)
//! ```
//!
//! Layout:
//! - `core`: rooms and protocol rules. No I/O, no clock, no randomness of its own.
//! - `owp`: the OpenWatchParty dialect (decode and encode).
//! - `gateway`: core + codecs; pure.
//! - `net`: upgrade parsing (`upgrade`), connections (`conn`), the engine over any stream
//!   (`engine`), and the mio loop (`event_loop`).
//! - `timer_wheel`, `time`, `id`, `rng`, `text`, `config`, `log`: small pieces.
//!
//! Invariants (checked by `Core::check_invariants` and the simulation):
//! - every room has exactly one host, and the host is a member;
//! - a connection is in at most one room, and its session agrees with the room;
//! - after `advance(now)`, the next deadline is `None` or later than `now`;
//! - a stale id (a closed connection, a removed room) never reaches a live one: connections
//!   carry generations, rooms serials, pending plays epochs.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::arithmetic_side_effects
    )
)]

pub mod config;
pub mod core;
pub mod gateway;
pub mod id;
pub mod log;
pub mod net;
pub mod owp;
pub mod rng;
pub mod scratch;
pub mod text;
pub mod time;
pub mod timer_wheel;
