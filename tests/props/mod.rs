//! Properties shared by the cargo-fuzz targets (fuzz/fuzz_targets/*.rs) and the stable corpus
//! replay (tests/fuzz_corpus.rs): each `check` takes the raw fuzz input and panics if a
//! property fails, so a corpus file that passes under `cargo test` passes under libFuzzer.
//!
//! Included by path from both places, so it may only use what both have: tandem, tungstenite
//! and serde_json, and no `unsafe` (the package forbids it in tests).

#![allow(dead_code)]

pub mod bytes;
pub mod conn_bytes;
pub mod core_ops;
pub mod decode_owp;
pub mod seeds;
pub mod upgrade_request;

#[path = "../sim/mem_stream.rs"]
pub mod mem_stream;
