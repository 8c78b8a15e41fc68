//! `tokens`: see tests/props/tokens.rs for the properties checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/mod.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::tokens::check(data));
