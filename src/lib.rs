//! Tandem: a watch-party session server. One thread, one mio poll loop, every socket in a
//! slab, all room state in a pure core. docs/architecture.md is the long version.
//!
//! ```text
//!   mio Poll ─► net::event_loop (the only code that knows mio: listener, signals, timeouts)
//!                 │
//!                 ▼
//!               net::engine::Engine<S: Read + Write, A: Service>  (HTTP phase, tungstenite
//!                 │    framing, read budgets, pauses, write caps, the shell's deadlines)
//!                 │   net::service: the boundary (Service, Output, ConnInfo, ServiceStats)
//!                 ▼                                        ▲ frames out (shared bytes)
//!               gateway::Gateway: Service  (routes → a dialect per connection; rate gate;
//!                 │    auth step; owp::decode → Command, Event → owp::encode once per dialect)
//!                 ▼   Command → Outcome                    ▲ Event + recipients
//!               core::Core  (seats, sessions, rooms, playback clock, ready barrier, list)
//! ```
//!
//! Layout:
//! - `core`: rooms and protocol rules. No I/O, no clock, no randomness of its own.
//! - `owp`: the OpenWatchParty dialect (decode and encode).
//! - `gateway`: the watch-party service: core + codecs; pure.
//! - `net`: the transport, serving any `Service`: upgrade parsing (`upgrade`), per-address
//!   limits (`addresses`), the engine over any stream (`engine`), the mio loop (`event_loop`).
//! - `timer_wheel`, `time`, `id`, `rng`, `text`, `config`, `log`, `scratch`: small pieces.
//!
//! Invariants (checked by `Core::check_invariants` and the simulation):
//! - every room has exactly one host, and the host is a member; members are seats;
//! - a seat is in at most one room and the room lists it; a session holds one seat;
//! - every session and room stays within its memory bound;
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

pub mod auth;
pub mod config;
pub mod core;
pub mod gateway;
pub mod id;
pub mod log;
pub mod net;
pub mod owp;
pub mod page;
pub mod rng;
pub mod scratch;
pub mod text;
pub mod time;
pub mod timer_wheel;
pub mod v1;
