//! `upgrade_request`: see tests/props/upgrade_request.rs for the input format and the properties checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/mod.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::upgrade_request::check(data));
