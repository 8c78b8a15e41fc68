//! `decode_owp`: see tests/props/decode_owp.rs for the input format and the properties checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/mod.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::decode_owp::check(data));
