//! Playback end to end over real sockets: the flows a stock client sees (a relayed command,
//! a scheduled play reaching every member, joiners of playing and paused rooms, the
//! state_update filter) work over TCP. When the core decides, and in which order, is asserted
//! exactly on virtual time in tests/playback_virtual.rs; here timing is not asserted beyond
//! the server's stamps being Unix milliseconds.

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::{json, Value};

/// A media id (32 hex digits): with one, readiness matters.
const MEDIA: &str = "00112233445566778899aabbccddeeff";

/// A room, its host and guests, every queue read empty.
struct Party {
    host: Client,
    guests: Vec<Client>,
    room: String,
}

/// A host (scheduling or stock) in a room with or without media, and guests (each scheduling
/// or stock) who joined it.
fn party(addr: SocketAddr, host_scheduled: bool, media: bool, guests_scheduled: &[bool]) -> Party {
    party_at(addr, host_scheduled, media, guests_scheduled, 0.0)
}

fn party_at(
    addr: SocketAddr,
    host_scheduled: bool,
    media: bool,
    guests: &[bool],
    start: f64,
) -> Party {
    let mut host = Client::connect(addr);
    if host_scheduled {
        host.declare_scheduled();
    }
    let mut payload = json!({"start_pos": start});
    if media {
        payload["media_id"] = json!(MEDIA);
    }
    let room = host.create_room(payload);
    let mut joined = Vec::new();
    for &scheduled in guests {
        let mut guest = Client::connect(addr);
        if scheduled {
            guest.declare_scheduled();
        }
        guest.join(&room);
        joined.push(guest);
    }
    host.drain();
    for guest in &mut joined {
        guest.drain();
    }
    Party {
        host,
        guests: joined,
        room,
    }
}

/// `guest` sends `ready` and the server has processed it when this returns.
fn ready(guest: &mut Client, room: &str) {
    guest
        .send(json!({"type": "ready", "room": room, "payload": {"room": room, "media_id": MEDIA}}));
    let seen = guest.drain();
    assert!(seen.is_empty(), "ready is not answered: {seen:?}");
}

/// Checks a player_event from `host` in `room`; returns its payload without the target, and
/// the target (which must equal server_ts).
fn control(message: &Value, room: &str, host: &str) -> (Value, u64) {
    assert_eq!(message["type"], "player_event", "{message}");
    assert_eq!(message["room"], room, "{message}");
    assert_eq!(message["client"], host, "{message}");
    let mut payload = message["payload"].clone();
    let target = payload
        .as_object_mut()
        .and_then(|p| p.remove("target_server_ts"))
        .and_then(|t| t.as_u64())
        .unwrap_or_else(|| panic!("integer target_server_ts: {message}"));
    assert_eq!(
        message["server_ts"], target,
        "server_ts == target_server_ts: {message}"
    );
    (payload, target)
}

fn player_event(host: &mut Client, room: &str, payload: Value) {
    host.send(json!({"type": "player_event", "room": room, "payload": payload}));
}

// ----- stock host -----

/// A stock host's play, pause, seek, buffering and play-without-play_state reach a stock
/// guest (and a scheduling one) verbatim, absent fields absent; an ill-typed field (an
/// unknown play_state, a position that is not a number) is dropped from the relay, never
/// passed on. The host gets no echo. Stamps are Unix milliseconds.
#[test]
fn stock_host_commands_are_relayed_verbatim() {
    let addr = start(config());
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, false, true, &[false, true]);
    let payloads = [
        json!({"action": "play", "position": 12.5, "play_state": "playing"}),
        json!({"action": "pause", "position": 20.0, "play_state": "paused"}),
        json!({"action": "seek", "position": 30.25, "play_state": "playing"}),
        json!({"action": "buffering", "position": 31}),
        json!({"action": "play", "position": 31}),
        json!({"action": "seek", "position": -5, "play_state": "bogus"}),
        json!({"action": "pause"}),
        json!({"action": "seek", "position": [[[1]]], "play_state": {"x": 1}}),
    ];
    for sent in payloads {
        player_event(&mut host, &room, sent.clone());
        let mut expected = sent.clone();
        let fields = expected.as_object_mut().expect("an object");
        fields.retain(|key, value| match key.as_str() {
            "position" => value.is_number(),
            "play_state" => value == "paused" || value == "playing",
            _ => true,
        });
        for guest in &mut guests {
            let message = guest.recv();
            let (payload, target) = control(&message, &room, &host.id);
            assert_eq!(payload, expected, "{message}");
            // The server's clock is the Unix clock (loosely: within a minute of this one).
            assert!(target.abs_diff(now_ms()) < 60_000, "{message}");
        }
    }
    for guest in &mut guests {
        guest.expect_quiet();
    }
    host.expect_quiet();
}

// ----- scheduling host -----

/// Scheduling host, every stock guest ready: the play reaches all members, the host
/// included, and nothing else follows.
#[test]
fn scheduled_play_reaches_every_member() {
    let mut config = config();
    config.core.play_schedule_ms = 1_000;
    config.core.ready_wait_ms_max = 4_000;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, true, true, &[false, false]);
    for guest in &mut guests {
        ready(guest, &room);
    }
    let host_id = host.id.clone();
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 5.0, "play_state": "playing"}),
    );
    for member in std::iter::once(&mut host).chain(guests.iter_mut()) {
        let message = member.recv();
        let (payload, _) = control(&message, &room, &host_id);
        assert_eq!(
            payload,
            json!({"action": "play", "position": 5.0, "play_state": "playing"})
        );
        member.expect_quiet();
    }
}

// ----- joiners -----

/// A joiner of a playing room gets the room playing, at the clock position minus the 0.3 s
/// lead, then a play at the clock position stamped with the room_state's instant; the host
/// hears of the joiner.
#[test]
fn joiner_of_playing_room_gets_state_then_play() {
    let addr = start(config());
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, false, false, &[false]);
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 100, "play_state": "playing"}),
    );
    control(&guests[0].recv(), &room, &host.id);

    let mut joiner = Client::connect(addr);
    let state = joiner.join(&room);
    assert_eq!(
        state["payload"]["state"]["play_state"], "playing",
        "{state}"
    );
    let position = num(&state["payload"]["state"]["position"]);
    assert!(position >= 100.0 - 0.3, "{state}");
    let state_ts = state["server_ts"].as_u64().expect("server_ts");

    let message = joiner.recv();
    let (payload, target) = control(&message, &room, &host.id);
    assert_eq!(payload["action"], "play", "{message}");
    assert_eq!(payload["play_state"], "playing", "{message}");
    let play_position = num(&payload["position"]);
    assert!(
        (play_position - (position + 0.3)).abs() < 1e-6,
        "{play_position} vs {position} + 0.3"
    );
    assert_eq!(
        target, state_ts,
        "the follow-up play is stamped with the room_state's instant"
    );
    joiner.expect_quiet();
    assert_eq!(host.recv()["type"], "participants_update");
    host.expect_quiet();
}

/// A joiner of a paused room gets the paused position minus 0.3 s (clamped at 0) and no play.
#[test]
fn joiner_of_paused_room_gets_position_minus_lead() {
    let addr = start(config());
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, false, false, &[false]);
    player_event(
        &mut host,
        &room,
        json!({"action": "pause", "position": 50, "play_state": "paused"}),
    );
    guests[0].recv_type("player_event");
    let mut joiner = Client::connect(addr);
    let state = joiner.join(&room);
    assert_eq!(state["payload"]["state"]["play_state"], "paused", "{state}");
    let position = num(&state["payload"]["state"]["position"]);
    assert!((position - 49.7).abs() < 1e-9, "{state}");
    joiner.expect_quiet();

    let Party {
        host: _second_host,
        room,
        ..
    } = party_at(addr, false, false, &[], 0.1);
    let mut joiner = Client::connect(addr);
    let state = joiner.join(&room);
    assert_eq!(
        num(&state["payload"]["state"]["position"]),
        0.0,
        "clamped at 0: {state}"
    );
    assert_eq!(state["payload"]["state"]["play_state"], "paused");
    joiner.expect_quiet();
}

// ----- the state_update filter -----

/// Sends a state_update from the host (`payload` None: no payload at all).
fn report(host: &mut Client, room: &str, payload: Option<Value>) {
    let mut message = json!({"type": "state_update", "room": room});
    if let Some(payload) = payload {
        message["payload"] = payload;
    }
    host.send(message);
}

/// Asserts the guest's next message is a relayed state_update with exactly `payload`.
fn expect_relay(guest: &mut Client, room: &str, host: &str, payload: Value) {
    let message = guest.recv();
    assert_eq!(
        message["type"], "state_update",
        "expected the relay of {payload}, got {message}"
    );
    assert_eq!(message["room"], room);
    assert_eq!(message["client"], host);
    assert_eq!(message["payload"], payload, "{message}");
    assert!(message["server_ts"].is_u64(), "{message}");
}

/// Asserts the last state_update was dropped: a chat the host sends next is the guest's next message.
fn expect_dropped(host: &mut Client, guest: &mut Client, room: &str, what: &str) {
    let text = format!("marker after {what}");
    host.send(json!({"type": "chat_message", "room": room, "payload": {"text": text}}));
    let next = guest.recv();
    assert_eq!(
        next["type"], "chat_message",
        "{what} should have been dropped, got {next}"
    );
    assert_eq!(next["payload"]["text"], text.as_str());
    assert_eq!(host.recv()["type"], "chat_message");
}

/// The position filter: +1.0 relayed, +0.2 dropped, state change passes, −1.0 and −2.0 dropped,
/// −3.0, −0.25 and +0.5 relayed, a heartbeat dropped, no payload and play_state-only relayed.
#[test]
fn state_update_position_filter() {
    let mut config = config();
    config.core.command_cooldown_ms = 0;
    config.core.state_update_interval_ms = 0;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party_at(addr, false, false, &[false], 10.0);
    let (guest, host_id) = (&mut guests[0], host.id.clone());
    let steps: [(Option<Value>, bool); 11] = [
        (
            Some(json!({"position": 11.0, "play_state": "paused"})),
            true,
        ),
        (
            Some(json!({"position": 11.2, "play_state": "paused"})),
            false,
        ),
        (
            Some(json!({"position": 11.0, "play_state": "playing"})),
            true,
        ),
        (
            Some(json!({"position": 10.0, "play_state": "playing"})),
            false,
        ),
        (
            Some(json!({"position": 9.0, "play_state": "playing"})),
            false,
        ),
        (
            Some(json!({"position": 8.0, "play_state": "playing"})),
            true,
        ),
        (
            Some(json!({"position": 7.75, "play_state": "playing"})),
            true,
        ),
        (
            Some(json!({"position": 8.25, "play_state": "playing"})),
            true,
        ),
        (Some(json!({"position": 8.25})), false),
        (None, true),
        (Some(json!({"play_state": "paused"})), true),
    ];
    for (payload, relayed) in steps {
        report(&mut host, &room, payload.clone());
        let what = format!("{payload:?}");
        if relayed {
            expect_relay(guest, &room, &host_id, payload.unwrap_or_else(|| json!({})));
        } else {
            expect_dropped(&mut host, guest, &room, &what);
        }
    }
    host.expect_quiet();
}

/// The defaults the filter tests shorten are the original's: 2000 ms cooldown, 500 ms interval.
#[test]
fn filter_defaults() {
    let core = tandem::config::CoreConfig::default();
    assert_eq!(
        (core.command_cooldown_ms, core.state_update_interval_ms),
        (2_000, 500)
    );
    assert_eq!(
        (
            core.play_schedule_ms,
            core.control_schedule_ms,
            core.sync_lead_ms
        ),
        (1_000, 300, 300)
    );
}
