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
    println!(
        "{{\"bench\":\"micro\",\"decode_player_event_ns\":{decode_player:.1},\"decode_ping_ns\":{decode_ping:.1},\
         \"encode_player_event_ns\":{encode_player:.1},\"encode_v1_playback_state_ns\":{encode_v1:.1},\"gateway_relay_per_recipient_ns\":{fanout:.1},\
         \"timer_wheel_insert_fire_ns\":{wheel:.1}}}"
    );
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
