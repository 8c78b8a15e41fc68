//! Deterministic simulation (STYLE.md §2.11).
//!
//! - `workload` + `model`: level 1, a seeded workload of many clients driving the `Gateway`
//!   over virtual time, checked after every step against the core's invariants and a model
//!   built only from what each client received.
//! - `net` + `mem_stream`: level 2, the real `Engine` over in-memory pipes, with tungstenite
//!   clients, controlled chunking, write windows and edge-triggered readiness.

#![allow(dead_code)]

pub mod mem_stream;
pub mod model;
pub mod net;
pub mod workload;
