//! Micro benches: plain timing loops (no harness) for the message decoder, the encoder, the
//! room fan-out through the gateway, and the timer wheel. Prints one line per bench and a JSON
//! summary line last. Figures vary with the machine; use them to compare changes. Runs only
//! under `cargo bench` (which passes `--bench`), never as part of `cargo test --all-targets`.

#![allow(clippy::disallowed_methods)] // A bench measures wall time.

use std::hint::black_box;
use std::time::Instant;

use tandem::config::CoreConfig;
use tandem::core::types::{ControlMessage, Event, Relay};
use tandem::gateway::{Dialect, Gateway, Output};
use tandem::id::{ConnId, RoomId, SeatId};
use tandem::time::{Millis, Now, UnixMillis};
use tandem::timer_wheel::TimerWheel;

fn time<F: FnMut() -> u64>(name: &str, iterations: u64, mut f: F) -> f64 {
    // Warm up, then measure.
    for _ in 0..iterations / 10 {
        black_box(f());
    }
    let start = Instant::now();
    let mut sink = 0u64;
    for _ in 0..iterations {
        sink = sink.wrapping_add(f());
    }
    let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
    black_box(sink);
    eprintln!("{name:<28} {ns:>10.1} ns/op  ({iterations} ops)");
    ns
}

fn main() {
    // `cargo bench` runs this with `--bench`; `cargo test --all-targets` (`make test`) runs
    // every bench target too, in a debug build and without it: timing that is noise, skip it.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("micro: nothing to do without --bench (run `cargo bench --bench micro`)");
        return;
    }
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let n = if quick { 20_000 } else { 500_000 };
    let player_event = r#"{"type":"player_event","room":"6f1c2c84-7a8e-4b1c-9d0e-1f2a3b4c5d6e","client":"x","payload":{"action":"play","position":1234.567,"play_state":"playing"},"ts":1732300000000}"#;
    let ping =
        r#"{"type":"ping","room":"","payload":{"client_ts":1732300000000},"ts":1732300000000}"#;
    let decode_player = time("decode player_event", n, || {
        tandem::owp::decode(black_box(player_event)).is_ok() as u64
    });
    let decode_ping = time("decode ping", n, || {
        tandem::owp::decode(black_box(ping)).is_ok() as u64
    });

    let event = Event::Control {
        room: RoomId(uuid::Uuid::from_u128(7)),
        host: SeatId(uuid::Uuid::from_u128(9)),
        host_user: "host".to_string(),
        message: ControlMessage {
            relay: Relay {
                host_ts: None,
                action: Some(tandem::core::types::Json::string("play")),
                position: Some(tandem::core::types::Json::number(1234.567)),
                play_state: Some(tandem::core::types::Json::string("playing")),
            },
            target: UnixMillis(1_732_300_000_000),
        },
    };
    let encode_player = time("encode player_event", n, || {
        tandem::owp::encode(black_box(&event), UnixMillis(1), 300).map_or(0, |e| e.len() as u64)
    });

    let room_id = |id: RoomId| id.to_string();
    let encode_v1 = time("encode playback_state (v1)", n, || {
        tandem::v1::encode(black_box(&event), UnixMillis(1), &room_id).map_or(0, |e| e.len() as u64)
    });

    let fanout = fanout_bench(if quick { 2_000 } else { 50_000 });
    let wheel = wheel_bench(if quick { 20_000 } else { 1_000_000 });
    let snapshot = snapshot_bench(if quick { 100 } else { 1_000 });
    println!(
        "{{\"bench\":\"micro\",\"decode_player_event_ns\":{decode_player:.1},\"decode_ping_ns\":{decode_ping:.1},\
         \"encode_player_event_ns\":{encode_player:.1},\"encode_v1_playback_state_ns\":{encode_v1:.1},\"gateway_relay_per_recipient_ns\":{fanout:.1},\
         \"timer_wheel_insert_fire_ns\":{wheel:.1},{snapshot}}}"
    );
}

/// The state file for `rooms` rooms of 5 members, each with a full chat history (50
/// messages of 100 characters): its size, and the time to serialize it, write it (temporary
/// file, fsync, rename) and load it into a fresh gateway.
fn snapshot_bench(rooms: u32) -> String {
    let config = CoreConfig {
        messages_per_second_max: u32::MAX,
        rooms_max: 100_000,
        ..CoreConfig::default()
    };
    let mut gateway = Gateway::new(config.clone(), 1);
    gateway.keep_rooms(true);
    let now = Now {
        mono: Millis(1),
        wall: UnixMillis(1_700_000_000_000),
    };
    let mut out: Vec<Output> = Vec::new();
    let mut index = 0u32;
    let mut conn = || {
        index += 1;
        ConnId {
            index,
            generation: 1,
        }
    };
    let text = "x".repeat(100);
    for _ in 0..rooms {
        let host = conn();
        gateway.open(now, host, Dialect::Owp, &mut out);
        gateway.text(
            now,
            host,
            r#"{"type":"create_room","payload":{"name":"Film"}}"#,
            &mut out,
        );
        let room = gateway.core().room_of(host).expect("room").to_string();
        for _ in 0..4 {
            let guest = conn();
            gateway.open(now, guest, Dialect::Owp, &mut out);
            gateway.text(
                now,
                guest,
                &format!(r#"{{"type":"join_room","room":"{room}"}}"#),
                &mut out,
            );
        }
        let chat =
            format!(r#"{{"type":"chat_message","room":"{room}","payload":{{"text":"{text}"}}}}"#);
        for _ in 0..50 {
            gateway.text(now, host, &chat, &mut out);
        }
        out.clear();
    }
    let start = Instant::now();
    let whole = gateway.snapshot_bytes(now);
    let serialize_ms = start.elapsed().as_secs_f64() * 1_000.0;
    // As the loop takes it while running: 256 KiB slices, then 1 MiB writes, then the
    // fsync and rename; the longest of them is the longest the loop stalls.
    use tandem::net::service::Service;
    let mut bytes = Vec::new();
    assert!(gateway.snapshot_start(now, &mut bytes));
    let mut longest_slice_ms: f64 = 0.0;
    loop {
        let start = Instant::now();
        let done = gateway.snapshot_next(now, &mut bytes, 256 << 10);
        longest_slice_ms = longest_slice_ms.max(start.elapsed().as_secs_f64() * 1_000.0);
        if done {
            break;
        }
    }
    let dir = std::env::temp_dir().join(format!("tandem-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("state.json");
    let start = Instant::now();
    let mut file = tandem::net::state_file::open_temporary(&path).expect("open");
    let mut longest_write_ms: f64 = 0.0;
    for chunk in bytes.chunks(1 << 20) {
        let start = Instant::now();
        std::io::Write::write_all(&mut file, chunk).expect("write");
        longest_write_ms = longest_write_ms.max(start.elapsed().as_secs_f64() * 1_000.0);
    }
    let sync = Instant::now();
    tandem::net::state_file::commit(&path, file).expect("commit");
    let sync_ms = sync.elapsed().as_secs_f64() * 1_000.0;
    let write_ms = start.elapsed().as_secs_f64() * 1_000.0;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("sliced JSON"),
        serde_json::from_slice::<serde_json::Value>(&whole).expect("whole JSON"),
        "slices make the same file"
    );
    let mut fresh = Gateway::new(config, 2);
    let start = Instant::now();
    let restored = fresh.restore_bytes(&bytes, now).expect("restore");
    let load_ms = start.elapsed().as_secs_f64() * 1_000.0;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "state file, {rooms} rooms       {} bytes; whole: serialize {serialize_ms:.1} ms, write+fsync {write_ms:.1} ms; \
         in slices: longest serialize slice {longest_slice_ms:.2} ms, longest 1 MiB write {longest_write_ms:.2} ms, fsync+rename {sync_ms:.1} ms; \
         load {load_ms:.1} ms ({} rooms, {} seats)",
        bytes.len(),
        restored.0,
        restored.1
    );
    format!(
        "\"state_rooms\":{rooms},\"state_bytes\":{},\"state_serialize_ms\":{serialize_ms:.1},\"state_write_ms\":{write_ms:.1},\
         \"state_longest_slice_ms\":{longest_slice_ms:.2},\"state_longest_write_ms\":{longest_write_ms:.2},\"state_sync_ms\":{sync_ms:.1},\"state_load_ms\":{load_ms:.1}",
        bytes.len()
    )
}

/// A stock host relaying a player_event to 9 guests through the gateway (decode, core,
/// render once, 9 shared sends): time per recipient.
fn fanout_bench(iterations: u64) -> f64 {
    let mut gateway = Gateway::new(
        CoreConfig {
            messages_per_second_max: u32::MAX,
            ..CoreConfig::default()
        },
        1,
    );
    let mut now = Now {
        mono: Millis(1),
        wall: UnixMillis(1_700_000_000_000),
    };
    let mut out: Vec<Output> = Vec::new();
    let conns: Vec<ConnId> = (1..=10)
        .map(|index| ConnId {
            index,
            generation: 1,
        })
        .collect();
    for &conn in &conns {
        gateway.open(now, conn, Dialect::Owp, &mut out);
    }
    gateway.text(
        now,
        conns[0],
        r#"{"type":"create_room","payload":{}}"#,
        &mut out,
    );
    let room = gateway.core().room_of(conns[0]).expect("room").to_string();
    for &conn in &conns[1..] {
        gateway.text(
            now,
            conn,
            &format!(r#"{{"type":"join_room","room":"{room}"}}"#),
            &mut out,
        );
    }
    let message = format!(
        r#"{{"type":"player_event","room":"{room}","payload":{{"action":"play","position":12.5,"play_state":"playing"}}}}"#
    );
    let per_call = time("gateway relay to 9 guests", iterations, || {
        out.clear();
        now = now.plus(1);
        gateway.text(now, conns[0], &message, &mut out);
        out.len() as u64
    });
    per_call / 9.0
}

/// Insert a timer 0–5 s ahead and fire what is due, one ms per step.
fn wheel_bench(iterations: u64) -> f64 {
    let mut wheel = TimerWheel::new();
    let mut due = Vec::new();
    let mut now = 0u64;
    let mut state = 1u64;
    time("timer wheel insert+advance", iterations, || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        wheel.insert(Millis(now + (state >> 33) % 5_000), now);
        now += 1;
        due.clear();
        wheel.advance(Millis(now), &mut due);
        due.len() as u64
    })
}
