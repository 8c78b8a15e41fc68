//! `conn_bytes`: see tests/props/conn_bytes.rs for the input format and the properties.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/mod.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::conn_bytes::check(data));
