//! Properties shared by the cargo-fuzz targets (fuzz/fuzz_targets/*.rs) and the stable corpus
//! replay (tests/fuzz_corpus.rs): each `check` takes the raw fuzz input and panics if a
//! property fails, so a corpus file that passes under `cargo test` passes under libFuzzer.
//!
//! Included by path from both places, so it may only use what both have: tandem and
//! serde_json (the fuzz crate has no tungstenite), and no `unsafe` (the package forbids it in
//! tests). The in-memory driver (pipes, the engine loop, connection ids) is the one the
//! simulation uses, tests/driver.

#![allow(dead_code)]

pub mod bytes;
pub mod conn_bytes;
pub mod core_ops;
pub mod decode_owp;
pub mod decode_v1;
pub mod seeds;
pub mod tokens;
pub mod upgrade_request;

#[path = "../driver/mod.rs"]
pub mod driver;

pub use driver::mem_stream;
