//! Playback over real sockets: stock relays, scheduled plays and the ready barrier, held
//! commands, joiner positions and the state_update filter.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

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

/// |a - b| <= tolerance, in ms.
fn assert_near(what: &str, value: i64, expected: i64, tolerance: i64) {
    assert!(
        (value - expected).abs() <= tolerance,
        "{what}: {value} ms, expected {expected} ± {tolerance}"
    );
}

// ----- stock host -----

/// A stock host's play reaches every other member (not the host) verbatim, target_server_ts == server_ts ≈ now.
#[test]
fn stock_host_play_is_relayed_at_once() {
    let addr = start(config());
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, false, false, &[false, true]);
    let before = now_ms();
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 12.5, "play_state": "playing"}),
    );
    for guest in &mut guests {
        let message = guest.recv();
        let received = now_ms();
        let (payload, target) = control(&message, &room, &host.id);
        assert_eq!(
            payload,
            json!({"action": "play", "position": 12.5, "play_state": "playing"})
        );
        assert!(
            target + 5 >= before && target <= received + 100,
            "target {target} not now: {message}"
        );
        guest.expect_quiet();
    }
    host.expect_quiet();
}

/// A stock host's pause, seek, buffering and play-without-play_state are relayed verbatim,
/// absent fields absent; an ill-typed field (an unknown play_state, a position that is not a
/// number) is dropped from the relay, never passed on.
#[test]
fn stock_host_commands_are_relayed_verbatim() {
    let addr = start(config());
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, false, true, &[false]);
    let guest = &mut guests[0];
    let payloads = [
        json!({"action": "pause", "position": 20.0, "play_state": "paused"}),
        json!({"action": "seek", "position": 30.25, "play_state": "playing"}),
        json!({"action": "buffering", "position": 31}),
        json!({"action": "play", "position": 31}),
        json!({"action": "seek", "position": -5, "play_state": "bogus"}),
        json!({"action": "pause"}),
        json!({"action": "seek", "position": [[[1]]], "play_state": {"x": 1}}),
    ];
    for sent in payloads {
        let before = now_ms();
        player_event(&mut host, &room, sent.clone());
        let message = guest.recv();
        let (payload, target) = control(&message, &room, &host.id);
        let mut expected = sent.clone();
        let fields = expected.as_object_mut().expect("an object");
        fields.retain(|key, value| match key.as_str() {
            "position" => value.is_number(),
            "play_state" => value == "paused" || value == "playing",
            _ => true,
        });
        assert_eq!(payload, expected, "{message}");
        assert!(
            target + 5 >= before && target <= now_ms() + 100,
            "target not now: {message}"
        );
    }
    guest.expect_quiet();
    host.expect_quiet();
}

// ----- scheduling host -----

/// Scheduling host, everyone ready: the play goes to all members incl. the host, ≈ now + play_schedule_ms.
#[test]
fn scheduled_play_when_all_ready() {
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
        let received = now_ms() as i64;
        let (payload, target) = control(&message, &room, &host_id);
        assert_eq!(
            payload,
            json!({"action": "play", "position": 5.0, "play_state": "playing"})
        );
        assert_near("target - receive", target as i64 - received, 1_000, 300);
        member.expect_quiet();
    }
}

/// One member not ready: no play until it sends `ready`; then the play goes to all right away.
#[test]
fn scheduled_play_waits_for_late_member() {
    let mut config = config();
    config.core.play_schedule_ms = 1_000;
    config.core.ready_wait_ms_max = 4_000;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, true, true, &[false, false]);
    ready(&mut guests[0], &room);
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 7.0, "play_state": "playing"}),
    );
    host.expect_quiet();
    for guest in &mut guests {
        guest.expect_quiet();
    }
    let sent = now_ms() as i64;
    guests[1].send(json!({"type": "ready", "room": room, "payload": {}}));
    let host_id = host.id.clone();
    for member in std::iter::once(&mut host).chain(guests.iter_mut()) {
        let message = member.recv();
        let received = now_ms() as i64;
        let (payload, target) = control(&message, &room, &host_id);
        assert_eq!(
            payload,
            json!({"action": "play", "position": 7.0, "play_state": "playing"})
        );
        assert!(
            received - sent < 500,
            "play {} ms after the last ready",
            received - sent
        );
        assert_near("target - ready", target as i64 - sent, 1_000, 300);
    }
}

/// One member never ready: the play goes out at about ready_wait_ms_max without it.
#[test]
fn scheduled_play_starts_at_ready_deadline() {
    let mut config = config();
    config.core.play_schedule_ms = 1_000;
    config.core.ready_wait_ms_max = 300;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, true, true, &[false, false]);
    ready(&mut guests[0], &room);
    let sent = now_ms() as i64;
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 2.0, "play_state": "playing"}),
    );
    let host_id = host.id.clone();
    for member in std::iter::once(&mut host).chain(guests.iter_mut()) {
        let message = member.recv();
        let received = now_ms() as i64;
        let (payload, target) = control(&message, &room, &host_id);
        assert_eq!(payload["action"], "play", "{message}");
        assert_eq!(payload["position"], 2.0, "{message}");
        assert!(
            (250..1_000).contains(&(received - sent)),
            "play {} ms after the request",
            received - sent
        );
        assert_near("target - request", target as i64 - sent, 1_300, 300);
    }
}

/// Pause right after a scheduled play: a stock guest gets it only after the play's target
/// (so it ends paused); a scheduling guest gets it at once, ≈ now + control_schedule_ms.
#[test]
fn pause_before_target_is_held_for_stock_guest() {
    let mut config = config();
    config.core.play_schedule_ms = 1_000;
    config.core.control_schedule_ms = 300;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, true, true, &[false, true]);
    for guest in &mut guests {
        ready(guest, &room);
    }
    let host_id = host.id.clone();
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 0.0, "play_state": "playing"}),
    );
    let (_, play_target) = control(&host.recv(), &room, &host_id);
    let sent = now_ms() as i64;
    let pause = json!({"action": "pause", "position": 0.5, "play_state": "paused"});
    player_event(&mut host, &room, pause.clone());

    let (stock, scheduling) = guests.split_at_mut(1);
    let scheduling = &mut scheduling[0];
    assert_eq!(control(&scheduling.recv(), &room, &host_id).1, play_target);
    let message = scheduling.recv();
    let received = now_ms() as i64;
    let (payload, target) = control(&message, &room, &host_id);
    assert_eq!(payload, pause);
    assert!(
        received - sent < 250,
        "scheduling guest got the pause {} ms late",
        received - sent
    );
    assert_near("pause target - request", target as i64 - sent, 300, 150);
    let (payload, _) = control(&host.recv(), &room, &host_id);
    assert_eq!(payload, pause);

    let stock = &mut stock[0];
    assert_eq!(control(&stock.recv(), &room, &host_id).1, play_target);
    let message = stock.recv();
    let received = now_ms();
    let (payload, target) = control(&message, &room, &host_id);
    assert_eq!(payload, pause);
    assert!(
        received >= play_target,
        "stock guest got the pause at {received}, before the play at {play_target}"
    );
    assert!(
        target >= play_target,
        "pause stamped {target} before the play's {play_target}"
    );
    stock.expect_quiet();
    scheduling.expect_quiet();
}

/// The last unready member leaving releases a pending play at once.
#[test]
fn scheduled_play_released_when_unready_member_leaves() {
    let mut config = config();
    config.core.ready_wait_ms_max = 4_000;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, true, true, &[false, false]);
    ready(&mut guests[0], &room);
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 4.0, "play_state": "playing"}),
    );
    host.expect_quiet();
    let sent = now_ms() as i64;
    guests[1].send(json!({"type": "leave_room", "room": room, "payload": {}}));
    let host_id = host.id.clone();
    for member in [&mut host, &mut guests[0]] {
        let left = member.recv();
        assert_eq!(left["type"], "client_left", "{left}");
        let message = member.recv();
        let (payload, _) = control(&message, &room, &host_id);
        assert_eq!(payload["position"], 4.0, "{message}");
        assert!(
            now_ms() as i64 - sent < 500,
            "play not released by the departure"
        );
    }
}

/// A later command replaces a pending play: the pause goes out, the play never does.
#[test]
fn later_command_replaces_pending_play() {
    let mut config = config();
    config.core.ready_wait_ms_max = 300;
    config.core.control_schedule_ms = 300;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, true, true, &[false, false]);
    ready(&mut guests[0], &room);
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 4.0, "play_state": "playing"}),
    );
    let pause = json!({"action": "pause", "position": 4.0, "play_state": "paused"});
    player_event(&mut host, &room, pause.clone());
    let host_id = host.id.clone();
    assert_eq!(control(&host.recv(), &room, &host_id).0, pause);
    for guest in &mut guests {
        assert_eq!(control(&guest.recv(), &room, &host_id).0, pause);
    }
    // Past the ready-wait deadline of the replaced play: nothing more.
    host.expect_silence(Duration::from_millis(400));
    for guest in &mut guests {
        guest.expect_quiet();
    }
}

/// A member that let the ready-wait deadline pass is not waited for again.
#[test]
fn deadline_member_is_not_waited_for_again() {
    let mut config = config();
    config.core.ready_wait_ms_max = 300;
    config.core.play_schedule_ms = 1_000;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, true, true, &[true, true]);
    ready(&mut guests[0], &room);
    let host_id = host.id.clone();
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 1.0, "play_state": "playing"}),
    );
    control(&host.recv(), &room, &host_id);
    player_event(
        &mut host,
        &room,
        json!({"action": "pause", "position": 1.5, "play_state": "paused"}),
    );
    assert_eq!(control(&host.recv(), &room, &host_id).0["action"], "pause");
    let sent = now_ms() as i64;
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 1.5, "play_state": "playing"}),
    );
    let (payload, target) = control(&host.recv(), &room, &host_id);
    let received = now_ms() as i64;
    assert_eq!(payload["action"], "play");
    assert!(
        received - sent < 250,
        "second play waited {} ms",
        received - sent
    );
    assert_near("target - request", target as i64 - sent, 1_000, 300);
}

// ----- joiners -----

/// A joiner of a playing room gets the clock position minus 0.3 s, playing, then a play at the clock position.
#[test]
fn joiner_of_playing_room_lands_on_the_clock() {
    let addr = start(config());
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, false, false, &[false]);
    let played_at = now_ms() as i64;
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 100, "play_state": "playing"}),
    );
    let (_, play_ts) = control(&guests[0].recv(), &room, &host.id);
    // Let the clock run (and check nothing else is sent meanwhile).
    guests[0].expect_silence(Duration::from_millis(400));

    let mut joiner = Client::connect(addr);
    let state = joiner.join(&room);
    let received = now_ms() as i64;
    assert_eq!(
        state["payload"]["state"]["play_state"], "playing",
        "{state}"
    );
    let position = num(&state["payload"]["state"]["position"]);
    let state_ts = state["server_ts"].as_u64().expect("server_ts");
    let by_server = 100.0 + (state_ts - play_ts) as f64 / 1_000.0 - 0.3;
    assert!(
        (position - by_server).abs() <= 0.05,
        "position {position}, server clock says {by_server}"
    );
    let by_wall = 100.0 + (received - played_at) as f64 / 1_000.0 - 0.3;
    assert!(
        (position - by_wall).abs() <= 0.2,
        "position {position}, wall clock says {by_wall}"
    );
    assert!(position >= 100.0, "the clock ran for 400 ms: {position}");

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

/// A joiner before a scheduled play's instant gets the room as it is now, then that play (same target).
#[test]
fn joiner_gets_scheduled_play_in_flight() {
    let mut config = config();
    config.core.play_schedule_ms = 1_000;
    let addr = start(config);
    let Party { mut host, room, .. } = party(addr, true, false, &[]);
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 3.0, "play_state": "playing"}),
    );
    let (_, play_target) = control(&host.recv(), &room, &host.id);
    let mut joiner = Client::connect(addr);
    let state = joiner.join(&room);
    assert!(now_ms() < play_target, "joined before the play's instant");
    assert_eq!(
        state["payload"]["state"],
        json!({"position": 0.0, "play_state": "paused"}),
        "{state}"
    );
    let message = joiner.recv();
    let (payload, target) = control(&message, &room, &host.id);
    assert_eq!(
        payload,
        json!({"action": "play", "position": 3.0, "play_state": "playing"})
    );
    assert_eq!(target, play_target);
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
    let before = now_ms();
    let message = guest.recv();
    assert_eq!(
        message["type"], "state_update",
        "expected the relay of {payload}, got {message}"
    );
    assert_eq!(message["room"], room);
    assert_eq!(message["client"], host);
    assert_eq!(message["payload"], payload, "{message}");
    let server_ts = message["server_ts"].as_u64().expect("server_ts");
    assert!(
        server_ts <= now_ms() + 100 && server_ts + 1_000 >= before,
        "{message}"
    );
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

/// Within command_cooldown_ms of a player_event a state_update is dropped; after it, relayed.
#[test]
fn state_update_cooldown_after_player_event() {
    let mut config = config();
    config.core.command_cooldown_ms = 400;
    config.core.state_update_interval_ms = 0;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party(addr, false, false, &[false]);
    let (guest, host_id) = (&mut guests[0], host.id.clone());
    player_event(
        &mut host,
        &room,
        json!({"action": "play", "position": 10.0, "play_state": "playing"}),
    );
    guest.recv_type("player_event");
    report(
        &mut host,
        &room,
        Some(json!({"position": 11.0, "play_state": "playing"})),
    );
    expect_dropped(&mut host, guest, &room, "an update inside the cooldown");
    guest.expect_silence(Duration::from_millis(450));
    report(
        &mut host,
        &room,
        Some(json!({"position": 11.0, "play_state": "playing"})),
    );
    expect_relay(
        guest,
        &room,
        &host_id,
        json!({"position": 11.0, "play_state": "playing"}),
    );
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

/// Updates closer than state_update_interval_ms to the last relayed state are dropped unless the play_state changes.
#[test]
fn state_update_min_interval() {
    let mut config = config();
    config.core.command_cooldown_ms = 0;
    config.core.state_update_interval_ms = 800;
    let addr = start(config);
    let Party {
        mut host,
        mut guests,
        room,
    } = party_at(addr, false, false, &[false], 10.0);
    let (guest, host_id) = (&mut guests[0], host.id.clone());
    report(
        &mut host,
        &room,
        Some(json!({"position": 15.0, "play_state": "paused"})),
    );
    expect_dropped(
        &mut host,
        guest,
        &room,
        "an update right after the room was made",
    );
    guest.expect_silence(Duration::from_millis(850));
    report(
        &mut host,
        &room,
        Some(json!({"position": 15.0, "play_state": "paused"})),
    );
    expect_relay(
        guest,
        &room,
        &host_id,
        json!({"position": 15.0, "play_state": "paused"}),
    );
    report(
        &mut host,
        &room,
        Some(json!({"position": 20.0, "play_state": "paused"})),
    );
    expect_dropped(
        &mut host,
        guest,
        &room,
        "an update right after a relayed one",
    );
    report(
        &mut host,
        &room,
        Some(json!({"position": 20.0, "play_state": "playing"})),
    );
    expect_relay(
        guest,
        &room,
        &host_id,
        json!({"position": 20.0, "play_state": "playing"}),
    );
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
