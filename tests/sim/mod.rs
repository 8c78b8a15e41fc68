//! Deterministic simulation (STYLE.md §2.11).
//!
//! - `workload` + `model`: level 1, a seeded workload of many clients driving the `Gateway`
//!   over virtual time, checked after every step against the core's invariants and a model
//!   built only from what each client received.
//! - `net`: level 2, the real `Engine` over in-memory pipes (the shared `driver`, also used by
//!   the fuzz properties in tests/props), with tungstenite clients, controlled chunking, write
//!   windows and edge-triggered readiness.

#![allow(dead_code)]

#[path = "../driver/mod.rs"]
pub mod driver;
pub mod model;
pub mod net;
pub mod workload;

pub use driver::mem_stream;
