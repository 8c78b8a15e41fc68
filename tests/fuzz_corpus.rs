//! Replays every file of every fuzz/corpus/<target>/ through the fuzz targets' own property
//! functions (tests/props/), so stable `cargo test` exercises what the fuzzers found without
//! nightly or libFuzzer. Also keeps the checked-in seeds equal to tests/props/seeds.rs.

#[path = "props/mod.rs"]
mod props;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs `check` on every file of `dir` (sorted, so failures are reproducible), naming the
/// file that fails.
fn replay(dir: &Path, check: impl Fn(&[u8])) -> usize {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    for file in &files {
        let data = fs::read(file).expect("readable corpus file");
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            panic!("property failed on {}", file.display());
        }
    }
    files.len()
}

/// Every upgrade_request corpus file satisfies the parse properties.
#[test]
fn upgrade_request_corpus() {
    assert!(
        replay(
            &corpus_dir("upgrade_request"),
            props::upgrade_request::check
        ) > 0
    );
}

/// Every decode_owp corpus file decodes without panic and round-trips.
#[test]
fn decode_owp_corpus() {
    assert!(replay(&corpus_dir("decode_owp"), props::decode_owp::check) > 0);
}

/// Every decode_v1 corpus file decodes without panic and round-trips.
#[test]
fn decode_v1_corpus() {
    assert!(replay(&corpus_dir("decode_v1"), props::decode_v1::check) > 0);
}

/// Every conn_bytes corpus file runs through a real engine connection within its bounds.
#[test]
fn conn_bytes_corpus() {
    assert!(replay(&corpus_dir("conn_bytes"), props::conn_bytes::check) > 0);
}

/// Every core_ops corpus program keeps the core's invariants after each operation.
#[test]
fn core_ops_corpus() {
    assert!(replay(&corpus_dir("core_ops"), props::core_ops::check) > 0);
}

/// Every tokens corpus file: no token the reference check refuses is accepted.
#[test]
fn tokens_corpus() {
    assert!(replay(&corpus_dir("tokens"), props::tokens::check) > 0);
    // The seeds reach every verdict, so the property is not vacuous.
    let verdict = |name: &str| {
        let data = fs::read(corpus_dir("tokens").join(name)).expect("seed");
        props::tokens::verdicts(&data)
    };
    assert_eq!(verdict("seed-user-valid"), (true, false));
    assert_eq!(verdict("seed-user-within-leeway"), (true, false));
    assert_eq!(verdict("seed-invite-valid"), (false, true));
    for refused in [
        "seed-user-alg-none",
        "seed-user-hs512",
        "seed-user-expired",
        "seed-user-wrong-key",
        "seed-user-cut",
        "seed-user-oversize",
        "seed-raw",
    ] {
        assert_eq!(verdict(refused), (false, false), "{refused}");
    }
}

/// The checked-in seeds are the ones tests/props/seeds.rs makes (WRITE_SEEDS=1 rewrites them).
#[test]
fn seed_files_match_their_source() {
    let write = std::env::var_os("WRITE_SEEDS").is_some();
    for target in props::seeds::TARGETS {
        let dir = corpus_dir(target);
        for (name, bytes) in props::seeds::seeds(target) {
            let path = dir.join(&name);
            if write {
                fs::create_dir_all(&dir).expect("corpus directory");
                fs::write(&path, &bytes).expect("seed written");
            }
            let on_disk = fs::read(&path).unwrap_or_default();
            assert!(
                on_disk == bytes,
                "{} differs from seeds.rs: run WRITE_SEEDS=1",
                path.display()
            );
        }
    }
}

/// `encode_command` is documented as the inverse of `decode` ("a decoded message re-encodes
/// to text that decodes to the same command"), but it re-serializes relayed raw JSON through
/// `serde_json::Value` (src/owp/encode.rs, the `raw` closure): the text changes (`1e2` →
/// `100.0`, keys sorted), long decimals drift by an ulp, and a raw value `Value` cannot hold
/// (a lone surrogate escape) is dropped. decode_owp checks JSON-value equality meanwhile.
#[test]
fn encode_command_round_trips_byte_for_byte() {
    let room = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let cases = [
        format!(
            r#"{{"type":"player_event","room":"{room}","payload":{{"action":"seek","position":1e2}}}}"#
        ),
        r#"{"type":"ping","payload":{"b":1,"a":2}}"#.to_string(),
        r#"{"type":"ping","payload":{"n":123555555555555555555555555555555555555555555555}}"#
            .to_string(),
        r#"{"type":"ping","payload":{"t":"\udfff"}}"#.to_string(),
    ];
    for text in cases {
        let (command, again) = props::decode_owp::strict_round_trip(&text).expect("decodes");
        assert_eq!(again.as_ref(), Ok(&command), "{text}");
    }
}
