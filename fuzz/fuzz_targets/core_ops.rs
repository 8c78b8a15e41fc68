//! `core_ops`: see tests/props/core_ops.rs for the input format and the properties checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/mod.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::core_ops::check(data));
