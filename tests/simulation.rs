//! Deterministic simulation (STYLE.md §2.11). Level 1 drives the gateway with a seeded
//! workload of many clients and checks a model after every step; level 2 runs the real engine
//! over in-memory pipes with tungstenite clients.
//!
//! `SIM_SEED=n` replays one seed with a readable trace; `SIM_SEEDS` (default 256) and
//! `SIM_STEPS` (default 400) widen the sweep. A failure names its seed and step.

mod sim;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use sim::workload::Sim;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// What one or more runs delivered, for the summary line.
#[derive(Default)]
struct Tally {
    delivered: u64,
    duplicates: u64,
    kinds: BTreeMap<String, u64>,
}

impl Tally {
    fn add(mut self, other: Tally) -> Tally {
        self.delivered += other.delivered;
        self.duplicates += other.duplicates;
        for (kind, count) in other.kinds {
            *self.kinds.entry(kind).or_default() += count;
        }
        self
    }
}

/// Runs one seed for `steps` steps; panics naming the seed and step of the first failure.
fn run_seed(seed: u64, steps: u64, trace: bool) -> Tally {
    let step_reached = Cell::new(0);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed, trace);
        for step in 0..steps {
            step_reached.set(step);
            if trace {
                println!("step {step}");
            }
            if let Err(problem) = sim.step() {
                panic!("{problem}");
            }
        }
        Tally {
            delivered: sim.delivered,
            duplicates: sim.model.rejoin_duplicates,
            kinds: sim.kinds,
        }
    }));
    match result {
        Ok(tally) => tally,
        Err(cause) => {
            let step = step_reached.get();
            let message = cause
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| cause.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "simulation failed: seed={seed} step={step}: {message}\n\
                 replay: SIM_SEED={seed} SIM_STEPS={} cargo test --test simulation core_workload -- --nocapture",
                step + 1
            )
        }
    }
}

/// Compaction (`Gateway::compact`, run after crowds leave) releases capacity only: a workload
/// compacting every few steps sends exactly the frames of the same workload without it.
#[test]
fn compaction_changes_nothing_observable() {
    let steps = env_number("SIM_STEPS").unwrap_or(400);
    for seed in 0..24 {
        let run = |compact_every| {
            let mut sim = Sim::new(seed, false);
            sim.compact_every = compact_every;
            for step in 0..steps {
                if let Err(problem) = sim.step() {
                    panic!("seed={seed} step={step} compact_every={compact_every}: {problem}");
                }
            }
            (sim.delivered, sim.digest)
        };
        let plain = run(0);
        assert!(plain.0 > 0, "seed {seed} delivered nothing");
        for every in [1, 7] {
            assert_eq!(
                run(every),
                plain,
                "seed {seed}: compacting every {every} steps"
            );
        }
    }
}

/// Level 1: 256 seeded workloads (or `SIM_SEED`/`SIM_SEEDS`/`SIM_STEPS`) keep the core's
/// invariants and agree with the client-side model after every step.
#[test]
fn core_workload_keeps_invariants_and_model() {
    let steps = env_number("SIM_STEPS").unwrap_or(400);
    if let Some(seed) = env_number("SIM_SEED") {
        run_seed(seed, steps, true);
        return;
    }
    let seeds = env_number("SIM_SEEDS").unwrap_or(256);
    // Wall time only for the throughput figure; the simulation itself never reads a clock.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    // Two threads: the machines this runs on have two cores.
    let tally = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2u64)
            .map(|worker| {
                scope.spawn(move || {
                    let runs = (worker..seeds)
                        .step_by(2)
                        .map(|seed| run_seed(seed, steps, false));
                    runs.fold(Tally::default(), Tally::add)
                })
            })
            .collect();
        let tallies = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| panic::resume_unwind(e)));
        tallies.fold(Tally::default(), Tally::add)
    });
    let elapsed = started.elapsed().as_secs_f64();
    let total = seeds * steps;
    println!(
        "simulation: {seeds} seeds x {steps} steps = {total} steps, {} messages in {elapsed:.2} s: \
         {:.0} steps/s",
        tally.delivered,
        total as f64 / elapsed
    );
    println!(
        "simulation: commands re-delivered after a re-join (must be 0): {}",
        tally.duplicates
    );
    println!(
        "simulation: delivered by type/error code: {:?}",
        tally.kinds
    );
}

// ----- level 2: the real engine over in-memory pipes -----

use serde_json::json;
use sim::mem_stream::Knobs;
use sim::net::{read_head, Ending, Peer, SimNet};
use tandem::config::{CoreConfig, NetConfig};
use tandem::net::engine::EngineConfig;
use tungstenite::Message;

/// Transport scenarios: a member whose connection ends leaves at once (no seat grace), so
/// that `client_left` tells when the server noticed. Grace is tested in tests/survive.rs.
fn net_config() -> EngineConfig {
    EngineConfig {
        net: NetConfig::default(),
        core: CoreConfig {
            resume_grace_ms: 0,
            ..CoreConfig::default()
        },
        connections_max: 16,
        allowed_origins: None,
        address_limits: Default::default(),
        trusted_proxies: Vec::new(),
    }
}

/// The level-2 network: compaction after every other turn (which must be invisible), so
/// that every scenario here also runs with it.
fn sim_net() -> SimNet {
    let mut net = SimNet::new(net_config());
    net.compact_every = 2;
    net
}

/// A host and `members` joined to its room; returns them and the room id.
fn room_with(net: &mut SimNet, members: usize) -> (Peer, Vec<Peer>, String) {
    let mut host = net.connect();
    host.send(r#"{"type":"create_room","payload":{"name":"movie night"}}"#);
    net.settle();
    host.pump();
    let room = host.of_type("room_state")[0]["room"]
        .as_str()
        .expect("room id")
        .to_string();
    let mut peers = Vec::new();
    for _ in 0..members {
        let mut peer = net.connect();
        peer.send(&json!({"type": "join_room", "room": room}).to_string());
        net.settle();
        peer.pump();
        assert_eq!(peer.of_type("room_state").len(), 1, "joined");
        peers.push(peer);
    }
    host.pump();
    (host, peers, room)
}

fn chat(room: &str, text: &str) -> String {
    json!({"type": "chat_message", "room": room, "payload": {"text": text}}).to_string()
}

/// A chat message whose text frame is exactly `len` bytes long.
fn chat_of_len(len: usize) -> String {
    let empty = chat("not-a-room", "");
    let text = chat("not-a-room", &"x".repeat(len - empty.len()));
    assert_eq!(text.len(), len);
    text
}

fn chat_texts(peer: &Peer) -> Vec<String> {
    let chats = peer.of_type("chat_message");
    chats
        .iter()
        .map(|m| {
            m["payload"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// A member that stops reading is evicted once its queue passes the outbox cap; the host
/// and the other member keep every message, in order, and go on talking.
#[test]
fn slow_reader_is_evicted_and_others_are_unaffected() {
    let mut net = sim_net();
    let (mut host, mut members, room) = room_with(&mut net, 2);
    let (mut slow, mut fast) = (members.remove(1), members.remove(0));
    let window = 64 << 10;
    let knobs = net.server_end(slow.id).knobs();
    net.server_end(slow.id).set_knobs(Knobs { window, ..knobs });
    let text = |i: usize| format!("n{i:05} {}", "x".repeat(440));
    let mut sent = 0;
    // 25 chats a second stays under the rate limit; bounded at two virtual minutes.
    for _ in 0..120 {
        for _ in 0..25 {
            host.send(&chat(&room, &text(sent)));
            sent += 1;
        }
        net.settle();
        host.pump();
        fast.pump();
        if net.engine.stats().evicted > 0 {
            break;
        }
        net.advance(1_000);
    }
    assert_eq!(
        net.engine.stats().evicted,
        1,
        "the slow reader was never evicted"
    );
    let to_slow: usize = fast
        .of_type("chat_message")
        .iter()
        .map(|m| m.to_string().len() + 4)
        .sum();
    let outbox = NetConfig::default().outbox_bytes_max;
    assert!(
        to_slow >= outbox,
        "evicted after only {to_slow} bytes (cap {outbox})"
    );
    assert!(
        to_slow <= outbox + window + 2 * 25 * 600,
        "evicted late: {to_slow} bytes"
    );
    assert_eq!(
        chat_texts(&fast),
        (0..sent).map(text).collect::<Vec<_>>(),
        "fast member lost chats"
    );
    slow.pump();
    assert!(
        matches!(slow.ending, Ending::Dropped(_)),
        "evicted without a close: {:?}",
        slow.ending
    );
    host.send(&chat(&room, "still here"));
    net.settle();
    fast.pump();
    host.pump();
    assert_eq!(
        chat_texts(&fast).last().map(String::as_str),
        Some("still here")
    );
    assert_eq!(host.of_type("client_left").len(), 1);
    assert_eq!(net.engine.websockets(), 2);
}

/// A member that lags (its socket takes almost nothing) is not owed a backlog of host
/// states: each relayed `state_update` still unsent is superseded by the next one, while
/// chat and commands all arrive, in order. When it catches up it gets the newest state.
#[test]
fn lagging_member_gets_the_latest_state_not_a_backlog() {
    let mut net = sim_net();
    let (mut host, mut members, room) = room_with(&mut net, 1);
    let mut lagging = members.remove(0);
    let knobs = net.server_end(lagging.id).knobs();
    net.server_end(lagging.id).set_knobs(Knobs {
        window: 200,
        ..knobs
    });
    for i in 0..20u32 {
        let state = if i % 2 == 0 { "playing" } else { "paused" };
        let update = json!({"type": "state_update", "room": room,
                            "payload": {"position": 100 + i, "play_state": state}});
        host.send(&update.to_string());
        if i % 5 == 0 {
            host.send(&chat(&room, &format!("chat {i}")));
        }
        net.settle();
        net.advance(600);
    }
    net.server_end(lagging.id).set_knobs(knobs);
    net.settle();
    lagging.pump();
    let states = lagging.of_type("state_update");
    assert!(
        (1..=3).contains(&states.len()),
        "{} state_updates: a backlog",
        states.len()
    );
    assert_eq!(
        states.last().map(|m| m["payload"]["position"].clone()),
        Some(json!(119)),
        "the newest state"
    );
    assert_eq!(
        chat_texts(&lagging),
        ["chat 0", "chat 5", "chat 10", "chat 15"],
        "chat is never dropped"
    );
}

/// A message of exactly 64 KiB is read (and refused by the protocol); 64 KiB + 1 closes the
/// connection with 1009, and the other client is unaffected.
#[test]
fn message_over_64_kib_closes_with_1009() {
    let mut net = sim_net();
    let mut big = net.connect();
    let mut other = net.connect();
    big.send(&chat_of_len(64 << 10));
    net.settle();
    big.pump();
    assert_eq!(
        big.received.last().map(|m| m["payload"]["code"].clone()),
        Some(json!("chat_too_long"))
    );
    assert_eq!(big.ending, Ending::Open);
    big.send(&chat_of_len((64 << 10) + 1));
    net.settle();
    big.pump();
    assert_eq!(big.close_code, Some(1009));
    net.settle();
    big.pump();
    net.advance(NetConfig::default().close_timeout_ms);
    assert_eq!(net.engine.len(), 1, "the closed connection is gone");
    other.send(r#"{"type":"list_rooms"}"#);
    net.settle();
    other.pump();
    assert_eq!(
        other.received.last().map(|m| m["type"].clone()),
        Some(json!("room_list"))
    );
}

/// Half a request and then silence: nothing until the handshake deadline, then 408 and a
/// half-close; the connection is gone once the client goes.
#[test]
fn half_handshake_then_silence_gets_408_at_the_deadline() {
    let mut net = sim_net();
    let (_, mut client) = net.connect_raw();
    std::io::Write::write_all(&mut client, b"GET /ws HTTP/1.1\r\nHost: x\r\n").expect("written");
    net.settle();
    let deadline = NetConfig::default().handshake_timeout_ms;
    net.advance(deadline - 1);
    assert_eq!(client.readable_bytes(), 0, "answered before the deadline");
    net.advance(1);
    let head = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert!(
        client.peer_finished(),
        "the server half-closed after the refusal"
    );
    drop(client);
    net.settle();
    assert!(net.engine.is_empty());
}

/// A close started by the client: the room hears `client_left`, the client sees the echo and
/// the end of the stream, and the server reaps the connection.
#[test]
fn close_started_by_the_client_completes() {
    let mut net = sim_net();
    let (mut host, mut members, _room) = room_with(&mut net, 1);
    let mut member = members.remove(0);
    let _ = member.ws.close(None);
    let _ = member.ws.flush();
    net.settle();
    member.pump();
    host.pump();
    assert_eq!(host.of_type("client_left").len(), 1);
    net.settle();
    member.pump();
    assert_eq!(
        member.close_code,
        Some(1005),
        "the echo of a close without a code"
    );
    assert_eq!(member.ending, Ending::Closed);
    assert_eq!(net.engine.len(), 1);
    assert!(member.end.peer_dropped(), "the server let go of the socket");
}

/// A close started by the server: shutdown tells members the room is closing, then closes
/// every WebSocket with 1001; the clients' replies complete the handshakes.
#[test]
fn close_started_by_the_server_completes() {
    let mut net = sim_net();
    let (mut host, mut members, _room) = room_with(&mut net, 1);
    net.engine.shutdown(net.now);
    net.settle();
    for peer in [&mut host, &mut members[0]] {
        peer.pump();
        assert_eq!(peer.close_code, Some(1001));
    }
    let notices = members[0].of_type("room_closed");
    assert_eq!(notices[0]["payload"]["reason"], "Server shutting down");
    net.settle();
    host.pump();
    members[0].pump();
    assert!(
        net.engine.is_empty(),
        "every connection finished its closing handshake"
    );
    assert_eq!(
        (&host.ending, &members[0].ending),
        (&Ending::Closed, &Ending::Closed)
    );
}

/// Idleness: a client that answers the server's ping stays; a silent one gets 1001 after
/// the idle timeout, and its reply completes the closing handshake.
#[test]
fn idle_client_is_closed_and_a_responsive_one_stays() {
    let mut net = sim_net();
    let mut lively = net.connect();
    let mut silent = net.connect();
    let idle = NetConfig::default().idle_timeout_ms;
    // One-second steps: the silent client must read the close before the close timeout.
    for _ in 0..(idle / 1_000 + 5) {
        net.advance(1_000);
        lively.pump();
        if net.engine.stats().idled_out > 0 {
            break;
        }
    }
    assert!(net.now.mono.0 >= idle, "closed before the idle timeout");
    silent.pump();
    assert_eq!(silent.close_code, Some(1001));
    net.settle();
    silent.pump();
    assert_eq!(
        (silent.ending.clone(), lively.ending.clone()),
        (Ending::Closed, Ending::Open)
    );
    assert_eq!((net.engine.len(), net.engine.stats().idled_out), (1, 1));
}

/// A flood of pings, read or not: at most one pong per ping, no eviction, no growth in what
/// the server writes, pings read no faster than the message rate (the connection is paused
/// for the rest of a second past it), and the connection still answers afterwards.
#[test]
fn ping_flood_is_answered_within_bounds() {
    let mut net = sim_net();
    let mut peer = net.connect();
    let rate = net_config().core.messages_per_second_max as u64;
    let pings = 200u32;
    for reading in [true, false] {
        let knobs = net.server_end(peer.id).knobs();
        let window = if reading { knobs.window } else { 1 << 10 };
        net.server_end(peer.id).set_knobs(Knobs { window, ..knobs });
        let before = (net.server_end(peer.id).written_total(), peer.pongs);
        let paused = net.engine.stats().paused;
        for i in 0..pings {
            let _ = peer.ws.write(Message::Ping(vec![i as u8; 100].into()));
        }
        let _ = peer.ws.flush();
        // Ten seconds (under the write-stall deadline of a client that is not reading): at
        // the rate, every ping is read within them.
        for _ in 0..10 {
            net.advance(1_000);
            if reading {
                peer.pump();
            }
        }
        net.settle();
        peer.pump();
        let pongs = peer.pongs - before.1;
        let written = net.server_end(peer.id).written_total() - before.0;
        assert!(
            (1..=pings as usize).contains(&pongs),
            "{pongs} pongs for {pings} pings"
        );
        assert!(
            written <= u64::from(pings) * 102 + 1_024,
            "{written} bytes for {pings} pings"
        );
        let pauses = net.engine.stats().paused - paused;
        assert!(
            pauses >= u64::from(pings) / (rate + 1),
            "{pauses} pauses for {pings} pings at {rate} a second"
        );
        assert_eq!(
            (peer.ending.clone(), net.engine.stats().evicted),
            (Ending::Open, 0)
        );
        net.server_end(peer.id).set_knobs(knobs);
    }
    peer.send(r#"{"type":"list_rooms"}"#);
    net.settle();
    peer.pump();
    assert_eq!(
        peer.received.last().map(|m| m["type"].clone()),
        Some(json!("room_list"))
    );
}

/// A broadcast in the same turn as a member's close, for both closes (the member's own, and
/// a 1009 from the server) and both readiness orders: the others get the message, nobody
/// else is dropped, and the closing member ends cleanly.
#[test]
fn broadcast_while_a_member_is_closing() {
    for reverse in [false, true] {
        let mut net = sim_net();
        net.reverse_order = reverse;
        let (mut host, mut members, room) = room_with(&mut net, 3);
        let mut leaving = members.remove(2);
        let _ = leaving.ws.close(None);
        let _ = leaving.ws.flush();
        host.send(&chat(&room, "during a close"));
        net.settle();
        let mut too_big = members.remove(1);
        too_big.send(&chat_of_len((64 << 10) + 1));
        host.send(&chat(&room, "during a 1009"));
        net.settle();
        for peer in [&mut host, &mut members[0], &mut leaving, &mut too_big] {
            peer.pump();
        }
        net.advance(NetConfig::default().close_timeout_ms);
        leaving.pump();
        assert_eq!(
            chat_texts(&members[0]),
            ["during a close", "during a 1009"],
            "reverse={reverse}"
        );
        assert_eq!(leaving.ending, Ending::Closed, "reverse={reverse}");
        assert_eq!(too_big.close_code, Some(1009), "reverse={reverse}");
        assert_eq!(
            (host.ending.clone(), members[0].ending.clone()),
            (Ending::Open, Ending::Open)
        );
        assert_eq!(
            (net.engine.websockets(), net.engine.len()),
            (2, 2),
            "reverse={reverse}"
        );
        assert_eq!(host.of_type("client_left").len(), 2);
    }
}

// ----- bugs the simulation found once: minimal reproductions, kept as regression tests -----

use tandem::gateway::{Dialect, Gateway, Output};
use tandem::id::ConnId;
use tandem::time::{Millis, Now, UnixMillis};

/// A gateway with connections `0..n`, recording what each received.
struct Bench {
    gateway: Gateway,
    now: Now,
    received: Vec<(ConnId, serde_json::Value)>,
}

impl Bench {
    fn new(clients: u32) -> Bench {
        let now = Now {
            mono: Millis(0),
            wall: UnixMillis(1_700_000_000_000),
        };
        let mut bench = Bench {
            gateway: Gateway::new(CoreConfig::default(), 9),
            now,
            received: Vec::new(),
        };
        for index in 0..clients {
            let mut out = Vec::new();
            bench.gateway.open(
                now,
                ConnId {
                    index,
                    generation: 1,
                },
                Dialect::Owp,
                &mut out,
            );
            bench.collect(out);
        }
        bench
    }

    fn conn(index: u32) -> ConnId {
        ConnId {
            index,
            generation: 1,
        }
    }

    fn send(&mut self, index: u32, text: &str) {
        let mut out = Vec::new();
        self.gateway
            .text(self.now, Bench::conn(index), text, &mut out);
        self.collect(out);
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.plus(ms);
        let mut out = Vec::new();
        self.gateway.advance(self.now, &mut out);
        self.collect(out);
    }

    fn collect(&mut self, out: Vec<Output>) {
        for output in out {
            if let Output::Send { conn, text } | Output::SendLatest { conn, text, .. } = output {
                self.received
                    .push((conn, serde_json::from_str(text.as_str()).expect("JSON")));
            }
        }
    }

    /// A scheduling host (0) with a room; `members` stock clients joined.
    fn room(members: u32) -> (Bench, String) {
        let mut bench = Bench::new(members + 1);
        bench.send(0, r#"{"type":"auth","payload":{"scheduled":true}}"#);
        bench.send(0, r#"{"type":"create_room","payload":{"name":"r"}}"#);
        let room = bench.received.last().expect("room_state").1["room"]
            .as_str()
            .expect("id")
            .to_string();
        for index in 1..=members {
            bench.send(
                index,
                &json!({"type": "join_room", "room": room}).to_string(),
            );
        }
        (bench, room)
    }

    /// Positions of the player_events `index` received, in order.
    fn commands(&self, index: u32) -> Vec<f64> {
        let conn = Bench::conn(index);
        let events = self
            .received
            .iter()
            .filter(|(c, m)| *c == conn && m["type"] == "player_event");
        events
            .filter_map(|(_, m)| m["payload"]["position"].as_f64())
            .collect()
    }
}

fn player_event(room: &str, action: &str, position: u32) -> String {
    json!({"type": "player_event", "room": room, "payload": {"action": action, "position": position}})
        .to_string()
}

/// Re-joining the room you are in while a command is held for you delivers it twice: the
/// held copy and the in-flight replay (src/core/mod.rs `join_room` re-join branch calls
/// `replay_in_flight`, src/core/playback.rs, without regard to what is held for the member).
#[test]
fn rejoin_does_not_duplicate_a_held_command() {
    let (mut bench, room) = Bench::room(1);
    bench.send(0, &player_event(&room, "pause", 7));
    bench.send(1, &json!({"type": "join_room", "room": room}).to_string());
    bench.advance(1_000);
    assert_eq!(
        bench.commands(1),
        [7.0],
        "the stock member got the pause once"
    );
}

/// Leaving and re-joining before a held command is due delivers the copy held for the
/// earlier membership as well as the replay (src/core/playback.rs `deliver_held` checks only
/// `room.has(conn)`, not the membership the command was held for).
#[test]
fn leave_and_rejoin_does_not_deliver_the_old_membership_s_command() {
    let (mut bench, room) = Bench::room(1);
    bench.send(0, &player_event(&room, "pause", 7));
    bench.send(1, r#"{"type":"leave_room"}"#);
    bench.advance(100);
    bench.send(1, &json!({"type": "join_room", "room": room}).to_string());
    bench.advance(1_000);
    assert_eq!(bench.commands(1), [7.0]);
}

/// A stock member that declares `scheduled: true` while a command is held for it gets the
/// next command at once and the held one after it (src/core/playback.rs `deliver` sends to a
/// scheduling member without looking at the held queue; `identify` changes capabilities
/// with commands still held).
#[test]
fn capability_switch_keeps_command_order() {
    let (mut bench, room) = Bench::room(1);
    bench.send(0, &player_event(&room, "pause", 7));
    bench.send(1, r#"{"type":"auth","payload":{"scheduled":true}}"#);
    bench.send(0, &player_event(&room, "seek", 8));
    bench.advance(1_000);
    assert_eq!(bench.commands(1), [7.0, 8.0]);
}

/// Shutdown tells a member its room is closing, then closing the host's WebSocket closes the
/// room again: the member gets two `room_closed` (src/net/engine.rs `shutdown` closes
/// connections after `Core::shutdown`, which leaves the rooms in place).
#[test]
fn shutdown_notifies_each_member_once() {
    let mut net = sim_net();
    let (_host, mut members, _room) = room_with(&mut net, 1);
    net.engine.shutdown(net.now);
    net.settle();
    members[0].pump();
    assert_eq!(members[0].of_type("room_closed").len(), 1);
}

/// `Engine::end_turn` is documented to hand back reaped sockets for deregistration, but a
/// connection's stream is dropped when its phase becomes `Dead`, so `take_stream` finds none
/// (src/net/engine.rs `end_turn`, src/net/conn.rs `take_stream`).
#[test]
fn end_turn_returns_reaped_sockets() {
    let mut net = sim_net();
    let mut peer = net.connect();
    let _ = peer.ws.close(None);
    let _ = peer.ws.flush();
    net.settle();
    peer.pump();
    net.settle();
    assert_eq!((net.engine.len(), net.reaped), (0, 1));
}
