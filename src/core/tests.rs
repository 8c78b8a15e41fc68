//! Core transcripts: JSON in at a virtual time, JSON out per connection. Driven through the
//! gateway (OpenWatchParty dialect), so these read like the wire.

use serde_json::{json, Value};

use crate::config::CoreConfig;
use crate::gateway::{Dialect, Gateway, Output};
use crate::id::ConnId;
use crate::net::service::Deferred;
use crate::time::{Millis, Now, UnixMillis};

const MEDIA: &str = "0123456789abcdef0123456789abcdef";

struct Harness {
    gateway: Gateway,
    now: Now,
    next: u32,
    inbox: Vec<(ConnId, Value)>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(CoreConfig::default())
    }

    fn with(config: CoreConfig) -> Harness {
        Harness::with_seed(config, 1)
    }

    fn with_seed(config: CoreConfig, seed: u64) -> Harness {
        Harness {
            gateway: Gateway::new(config, seed),
            now: Now {
                mono: Millis(1_000),
                wall: UnixMillis(1_700_000_000_000),
            },
            next: 0,
            inbox: Vec::new(),
        }
    }

    fn collect(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send { conn, text } | Output::SendLatest { conn, text, .. } => self
                    .inbox
                    .push((conn, serde_json::from_str(text.as_str()).expect("JSON"))),
                Output::Stamped { conn, frame } => {
                    let text = frame.render(self.now.wall);
                    self.inbox
                        .push((conn, serde_json::from_str(text.as_str()).expect("JSON")))
                }
                Output::SendBinary { .. } | Output::Close { .. } | Output::Pause { .. } => {}
            }
        }
        self.gateway.core().check_invariants();
    }

    fn connect(&mut self) -> ConnId {
        self.next += 1;
        let conn = ConnId {
            index: self.next,
            generation: 1,
        };
        let mut out = Vec::new();
        self.gateway.open(self.now, conn, Dialect::Owp, &mut out);
        self.collect(out);
        self.take(conn);
        conn
    }

    fn send(&mut self, conn: ConnId, message: Value) {
        let mut out = Vec::new();
        self.gateway
            .text(self.now, conn, &message.to_string(), &mut out);
        self.collect(out);
    }

    fn disconnect(&mut self, conn: ConnId) {
        let mut out = Vec::new();
        self.gateway.close(self.now, conn, &mut out);
        self.collect(out);
    }

    /// Moves virtual time, firing every timer on the way, in order.
    fn wait(&mut self, ms: u64) {
        let target = self.now.mono + ms;
        loop {
            let next = self.gateway.next_deadline().filter(|d| *d <= target);
            let step = next.unwrap_or(target);
            self.now = self.now.plus(step.since(self.now.mono));
            let mut out = Vec::new();
            self.gateway.advance(self.now, &mut out);
            self.collect(out);
            assert!(self
                .gateway
                .next_deadline()
                .is_none_or(|d| d > self.now.mono));
            if next.is_none() {
                return;
            }
        }
    }

    /// Everything sent to `conn` so far, oldest first; clears it.
    fn take(&mut self, conn: ConnId) -> Vec<Value> {
        let (mine, rest) = self.inbox.drain(..).partition(|(c, _)| *c == conn);
        self.inbox = rest;
        mine.into_iter().map(|(_, v)| v).collect()
    }

    fn types(&mut self, conn: ConnId) -> Vec<String> {
        self.take(conn)
            .iter()
            .map(|m| m["type"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    fn create(&mut self, host: ConnId, payload: Value) -> String {
        self.send(
            host,
            json!({"type": "create_room", "room": "", "payload": payload, "ts": 1}),
        );
        let messages = self.take(host);
        let state = messages
            .iter()
            .find(|m| m["type"] == "room_state")
            .expect("room_state");
        state["room"].as_str().expect("room").to_string()
    }

    fn join(&mut self, conn: ConnId, room: &str) -> Vec<Value> {
        self.send(
            conn,
            json!({"type": "join_room", "room": room, "payload": {"user_name": "g"}, "ts": 1}),
        );
        self.take(conn)
    }

    fn scheduled(&mut self, conn: ConnId) {
        self.send(
            conn,
            json!({"type": "auth", "payload": {"scheduled": true}, "ts": 1}),
        );
    }

    fn ms_from_now(&self, wall: &Value) -> i64 {
        wall.as_u64().expect("a timestamp") as i64 - self.now.wall.0 as i64
    }
}

fn play(room: &str, position: f64) -> Value {
    json!({"type": "player_event", "room": room, "ts": 1,
           "payload": {"action": "play", "position": position, "play_state": "playing"}})
}

fn pause(room: &str, position: f64) -> Value {
    json!({"type": "player_event", "room": room, "ts": 1,
           "payload": {"action": "pause", "position": position, "play_state": "paused"}})
}

/// A stock host's play is a fact: relayed at once to the others only, target = server_ts = now.
#[test]
fn stock_host_play_is_relayed_now_to_others() {
    let mut h = Harness::new();
    let (host, guest) = (h.connect(), h.connect());
    let room = h.create(host, json!({"media_id": MEDIA}));
    h.join(guest, &room);
    h.take(host);
    h.send(
        host,
        json!({"type": "player_event", "room": room, "ts": 1,
                        "payload": {"action": "play", "position": 12.5}}),
    );
    assert!(h.take(host).is_empty(), "the host gets no echo");
    let relayed = h.take(guest);
    assert_eq!(relayed.len(), 1);
    let event = &relayed[0];
    assert_eq!(event["payload"]["action"], "play");
    assert_eq!(event["payload"]["position"], 12.5);
    assert!(
        event["payload"].get("play_state").is_none(),
        "absent fields stay absent"
    );
    assert_eq!(event["payload"]["target_server_ts"], event["server_ts"]);
    assert_eq!(h.ms_from_now(&event["server_ts"]), 0);
}

/// A scheduling host with everyone ready: play to all, host included, 1000 ms ahead.
#[test]
fn scheduled_play_all_ready_goes_to_everyone_ahead() {
    let mut h = Harness::new();
    let (host, guest) = (h.connect(), h.connect());
    h.scheduled(host);
    let room = h.create(host, json!({"media_id": MEDIA}));
    h.join(guest, &room);
    h.send(guest, json!({"type": "ready", "room": room, "ts": 1}));
    h.take(host);
    h.send(host, play(&room, 30.0));
    for conn in [host, guest] {
        let messages = h.take(conn);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0]["payload"]["action"], "play");
        assert_eq!(messages[0]["payload"]["position"], 30.0);
        assert_eq!(
            h.ms_from_now(&messages[0]["payload"]["target_server_ts"]),
            1_000
        );
        assert_eq!(
            messages[0]["server_ts"],
            messages[0]["payload"]["target_server_ts"]
        );
    }
}

/// One member late: the play waits for its `ready`, then starts 1000 ms after it.
#[test]
fn scheduled_play_waits_for_the_last_ready() {
    let mut h = Harness::new();
    let (host, guest) = (h.connect(), h.connect());
    h.scheduled(host);
    let room = h.create(host, json!({"media_id": MEDIA}));
    h.join(guest, &room);
    h.take(host);
    h.send(host, play(&room, 5.0));
    assert!(
        h.take(host).is_empty() && h.take(guest).is_empty(),
        "pending, nothing sent"
    );
    h.wait(700);
    assert!(h.take(guest).is_empty());
    h.send(guest, json!({"type": "ready", "room": room, "ts": 1}));
    let event = h.take(guest).pop().expect("the play, released by ready");
    assert_eq!(h.ms_from_now(&event["payload"]["target_server_ts"]), 1_000);
    assert_eq!(h.types(host), vec!["player_event"]);
    h.wait(5_000);
    assert!(h.take(guest).is_empty(), "the deadline timer is stale now");
}

/// One member silent: the play starts at the ready-wait deadline, and that member is not
/// waited for again.
#[test]
fn scheduled_play_released_at_the_deadline() {
    let mut h = Harness::new();
    let (host, guest) = (h.connect(), h.connect());
    h.scheduled(host);
    let room = h.create(host, json!({"media_id": MEDIA}));
    h.join(guest, &room);
    h.take(host);
    h.send(host, play(&room, 5.0));
    h.wait(1_999);
    assert!(h.take(guest).is_empty());
    h.wait(1);
    assert_eq!(h.types(guest), vec!["player_event"]);
    assert_eq!(h.types(host), vec!["player_event"]);
    h.send(host, pause(&room, 7.0));
    h.wait(400);
    h.take(host);
    h.send(host, play(&room, 7.0));
    assert_eq!(
        h.types(host),
        vec!["player_event"],
        "no second wait for the silent member"
    );
}

/// A later command replaces a pending play: it is never delivered after the pause.
#[test]
fn later_command_replaces_pending_play() {
    let mut h = Harness::new();
    let (host, guest) = (h.connect(), h.connect());
    h.scheduled(host);
    let room = h.create(host, json!({"media_id": MEDIA}));
    h.join(guest, &room);
    h.take(host);
    h.send(host, play(&room, 5.0));
    h.send(host, pause(&room, 5.0));
    h.wait(3_000);
    let actions: Vec<Value> = h
        .take(guest)
        .iter()
        .map(|m| m["payload"]["action"].clone())
        .collect();
    assert_eq!(actions, vec![json!("pause")]);
}

/// Pause before the play's target: the stock guest gets the play at once (it schedules it)
/// and the pause only after the play has started, so it ends paused; a scheduling guest
/// gets both at once with their targets.
#[test]
fn pause_before_target_reaches_stock_guest_after_the_play_starts() {
    let mut h = Harness::new();
    let (host, stock, modern) = (h.connect(), h.connect(), h.connect());
    h.scheduled(host);
    h.scheduled(modern);
    let room = h.create(host, json!({}));
    h.join(stock, &room);
    h.join(modern, &room);
    h.take(host);
    h.take(stock);
    h.send(host, play(&room, 10.0));
    h.wait(100);
    h.send(host, pause(&room, 10.0));
    let stock_now = h.take(stock);
    assert_eq!(stock_now.len(), 1, "only the play so far");
    let play_target = stock_now[0]["payload"]["target_server_ts"]
        .as_u64()
        .unwrap();
    let modern_now = h.take(modern);
    assert_eq!(modern_now.len(), 2);
    assert_eq!(
        h.ms_from_now(&modern_now[1]["payload"]["target_server_ts"]),
        300
    );
    h.wait(1_099);
    assert!(
        h.take(stock).is_empty(),
        "held until after the play started"
    );
    h.wait(1);
    let paused = h.take(stock);
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0]["payload"]["action"], "pause");
    assert!(paused[0]["server_ts"].as_u64().unwrap() > play_target);
    assert_eq!(
        h.ms_from_now(&paused[0]["server_ts"]),
        0,
        "stamped at delivery"
    );
}

/// A joiner of a playing room gets the clock minus the stock lead, then a play to re-base.
#[test]
fn joiner_of_playing_room_gets_clock_and_play() {
    let mut h = Harness::new();
    let (host, guest) = (h.connect(), h.connect());
    let room = h.create(host, json!({}));
    h.send(host, play(&room, 100.0));
    h.wait(5_000);
    h.take(guest);
    let messages = h.join(guest, &room);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["type"], "room_state");
    let position = messages[0]["payload"]["state"]["position"]
        .as_f64()
        .unwrap();
    assert!((position - 104.7).abs() < 1e-9, "{position}");
    assert_eq!(messages[0]["payload"]["state"]["play_state"], "playing");
    assert_eq!(messages[1]["payload"]["action"], "play");
    assert_eq!(messages[1]["payload"]["position"], 105.0);
    assert_eq!(
        messages[1]["payload"]["target_server_ts"],
        messages[1]["server_ts"]
    );
    assert_eq!(h.ms_from_now(&messages[1]["server_ts"]), 0);
}

/// A joiner of a paused room: position minus the lead, clamped at zero, no follow-up.
#[test]
fn joiner_of_paused_room_gets_clamped_position_only() {
    let mut h = Harness::new();
    let (host, guest) = (h.connect(), h.connect());
    let room = h.create(host, json!({"start_pos": 0.1}));
    let messages = h.join(guest, &room);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["payload"]["state"]["position"], 0.0);
    assert_eq!(messages[0]["payload"]["state"]["play_state"], "paused");
}

/// The state_update filter, case by case, against the last relayed state.
#[test]
fn state_update_filter() {
    let mut h = Harness::new();
    let (host, guest) = (h.connect(), h.connect());
    let room = h.create(host, json!({}));
    h.join(guest, &room);
    let state = |position: f64, play_state: &str| {
        json!({"type": "state_update", "room": room, "ts": 1,
               "payload": {"position": position, "play_state": play_state}})
    };
    h.send(host, play(&room, 10.0));
    h.take(guest);
    h.send(host, state(10.0, "playing"));
    h.wait(1_000);
    h.send(host, state(11.0, "playing"));
    assert!(h.take(guest).is_empty(), "inside the 2 s cooldown");
    h.wait(1_000);
    h.send(host, state(12.0, "playing"));
    assert_eq!(
        h.types(guest),
        vec!["state_update"],
        "outside the cooldown, +2 s"
    );
    h.wait(1_000);
    h.send(host, state(13.0, "playing"));
    assert_eq!(
        h.types(guest),
        vec!["state_update"],
        "every second while playing"
    );
    h.wait(600);
    h.send(host, state(13.2, "playing"));
    assert!(h.take(guest).is_empty(), "small forward step");
    h.wait(600);
    h.send(host, state(12.0, "playing"));
    assert!(h.take(guest).is_empty(), "small backward jitter");
    h.wait(600);
    h.send(host, state(9.0, "playing"));
    assert_eq!(h.types(guest), vec!["state_update"], "a real jump back");
    h.wait(100);
    h.send(host, state(20.0, "playing"));
    assert!(
        h.take(guest).is_empty(),
        "under the 500 ms minimum interval"
    );
    h.send(host, state(9.1, "paused"));
    assert_eq!(
        h.types(guest),
        vec!["state_update"],
        "a play-state change always passes"
    );
}

/// Many lobby clients and many changes in one turn cost one room_list push each.
#[test]
fn room_list_pushes_are_batched() {
    let mut h = Harness::new();
    let lobby: Vec<ConnId> = (0..50).map(|_| h.connect()).collect();
    let hosts: Vec<ConnId> = (0..10).map(|_| h.connect()).collect();
    for &host in &hosts {
        h.create(host, json!({}));
    }
    assert!(h.take(lobby[0]).is_empty(), "not before the flush");
    h.wait(0);
    for &conn in &lobby {
        let lists = h.take(conn);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0]["payload"].as_array().map(Vec::len), Some(10));
    }
    // A host alone in its room that leaves closes it (one that disconnects keeps it for
    // its grace).
    h.send(hosts[0], json!({"type": "leave_room"}));
    h.wait(249);
    assert!(h.take(lobby[0]).is_empty(), "at most one push per interval");
    h.wait(1);
    assert_eq!(
        h.take(lobby[0])[0]["payload"].as_array().map(Vec::len),
        Some(9)
    );
}

/// Rate limit: 30 per second, one error per window; client_log on its own budget.
#[test]
fn rate_limit_and_client_log_budget() {
    let mut h = Harness::new();
    let conn = h.connect();
    for _ in 0..100 {
        h.send(
            conn,
            json!({"type": "client_log", "payload": {"category": "X", "message": "m"}}),
        );
    }
    for _ in 0..40 {
        h.send(conn, json!({"type": "ping", "payload": {"client_ts": 1}}));
    }
    let types = h.types(conn);
    assert_eq!(types.iter().filter(|t| *t == "pong").count(), 30);
    assert_eq!(types.iter().filter(|t| *t == "error").count(), 1);
    h.wait(1_000);
    h.send(conn, json!({"type": "ping", "payload": {"client_ts": 1}}));
    assert_eq!(h.types(conn), vec!["pong"]);
}

/// Ids are UUID v4 strings, never slot numbers; counts are integers.
#[test]
fn ids_are_uuids_and_counts_integers() {
    let mut h = Harness::new();
    let host = h.connect();
    h.send(
        host,
        json!({"type": "create_room", "payload": {"name": "  Movie\u{202e} night  "}}),
    );
    let state = h.take(host).remove(0);
    let host_id = state["payload"]["host_id"].as_str().unwrap();
    let parsed = uuid::Uuid::parse_str(host_id).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(parsed.hyphenated().to_string(), host_id);
    assert_eq!(state["payload"]["name"], "Movie night");
    assert!(state["payload"]["participant_count"].is_u64());
}

/// Past the rate limit, messages are dropped before they are parsed.
#[test]
fn rate_limited_messages_are_not_parsed() {
    let mut h = Harness::new();
    let conn = h.connect();
    let mut out = Vec::new();
    for _ in 0..100 {
        h.gateway.text(h.now, conn, "{\"type\":\"ping\",", &mut out);
    }
    h.collect(out);
    assert_eq!(h.gateway.decoded(), 30);
    let types = h.types(conn);
    assert_eq!(types.iter().filter(|t| *t == "error").count(), 31);
    // A client_log guessed from its text is spent from its own budget; a message that only
    // mentions "client_log" is spent from both and handled once.
    h.wait(1_000);
    h.send(
        conn,
        json!({"type": "chat_message", "payload": {"text": "\"client_log\""}}),
    );
    assert_eq!(h.gateway.decoded(), 31);
    assert_eq!(
        h.types(conn),
        vec!["error"],
        "chat without a room: one error"
    );
}

/// Names are cut in bytes too; lost-room names are remembered in fixed space and a name no
/// room could have is not echoed back; the session stays within its bound throughout
/// (`check_invariants` after every call).
#[test]
fn hostile_names_stay_bounded() {
    let mut h = Harness::with(CoreConfig {
        messages_per_second_max: 1_000,
        ..CoreConfig::default()
    });
    let host = h.connect();
    let wide = "😀".repeat(100);
    let room = h.create(host, json!({"name": wide, "user_name": wide}));
    let list = h.gateway.core().listing();
    assert_eq!(list.rooms[0].name.len(), crate::text::NAME_BYTES_MAX);
    for i in 0..50 {
        let long = format!("{i}{}", "r".repeat(60_000));
        h.send(
            host,
            json!({"type": "ping", "room": long, "payload": {"client_ts": 1}}),
        );
        let name = format!("{i:0>36}");
        h.send(
            host,
            json!({"type": "ping", "room": name, "payload": {"client_ts": 1}}),
        );
    }
    let messages = h.take(host);
    let closed: Vec<&Value> = messages
        .iter()
        .filter(|m| m["type"] == "room_closed")
        .collect();
    assert_eq!(closed.len(), 50, "each short name answered once");
    assert!(closed
        .iter()
        .all(|m| m["room"].as_str().is_some_and(|r| r.len() == 36)));
    assert!(h.gateway.core().session_bytes(host) <= crate::core::Core::SESSION_BYTES_MAX);
    assert_eq!(
        h.gateway.core().room_of(host).map(|r| r.to_string()),
        Some(room)
    );
}

/// The room list holds at most ROOM_LIST_MAX entries within ROOM_LIST_BYTES_MAX, rooms with
/// more members first, then the newest, and says how many rooms exist.
#[test]
fn room_list_is_capped_and_ordered() {
    let config = CoreConfig {
        room_list_max: 40,
        room_list_bytes_max: 16 << 10,
        ..CoreConfig::default()
    };
    let mut h = Harness::with(config);
    let lobby = h.connect();
    let wide = "😀".repeat(100);
    let mut rooms = Vec::new();
    for _ in 0..60 {
        let host = h.connect();
        rooms.push(h.create(host, json!({"name": wide})));
    }
    let guest = h.connect();
    h.join(guest, &rooms[5]);
    h.wait(10_000);
    h.take(lobby);
    h.send(lobby, json!({"type": "list_rooms"}));
    let list = h.take(lobby).remove(0);
    let text = list.to_string();
    assert!(text.len() <= 16 << 10, "{} bytes", text.len());
    let entries = list["payload"].as_array().expect("entries");
    assert!(
        !entries.is_empty() && entries.len() < 40,
        "{}",
        entries.len()
    );
    assert_eq!(list["total"], 60);
    assert_eq!(entries[0]["id"], rooms[5].as_str(), "most members first");
    assert_eq!(entries[1]["id"], rooms[59].as_str(), "then the newest");
    assert_eq!(entries[2]["id"], rooms[58].as_str());

    // Short names: the entry cap applies.
    let mut h = Harness::with(CoreConfig {
        room_list_max: 40,
        ..CoreConfig::default()
    });
    let lobby = h.connect();
    for _ in 0..60 {
        let host = h.connect();
        h.create(host, json!({"name": "x"}));
    }
    h.send(lobby, json!({"type": "list_rooms"}));
    let list = h.take(lobby).pop().expect("a list");
    assert_eq!(list["payload"].as_array().map(Vec::len), Some(40));
    assert_eq!(list["total"], 60);
}

/// However fast rooms change, the bytes pushed to the lobby stay within
/// LOBBY_PUSH_BYTES_PER_SEC (plus one push).
#[test]
fn lobby_pushes_are_paced_by_bytes() {
    let rate = 64 << 10;
    let mut h = Harness::with(CoreConfig {
        lobby_push_bytes_per_sec: rate,
        messages_per_second_max: 1_000,
        ..CoreConfig::default()
    });
    let lobby: Vec<ConnId> = (0..20).map(|_| h.connect()).collect();
    let wide = "😀".repeat(100);
    for _ in 0..30 {
        let host = h.connect();
        h.create(host, json!({"name": wide}));
    }
    let toggler = h.connect();
    h.wait(5_000);
    for conn in &lobby {
        h.take(*conn);
    }
    let seconds = 20;
    for _ in 0..seconds * 10 {
        h.create(toggler, json!({"name": wide}));
        h.send(toggler, json!({"type": "leave_room"}));
        h.wait(100);
    }
    let mut pushed = 0;
    let mut biggest = 0;
    for conn in &lobby {
        for message in h.take(*conn) {
            let bytes = message.to_string().len() as u64;
            pushed += bytes;
            biggest = biggest.max(bytes);
        }
    }
    assert!(pushed > 0);
    let allowed = rate * seconds + biggest * lobby.len() as u64;
    assert!(
        pushed <= allowed,
        "{pushed} bytes pushed, {allowed} allowed"
    );
}

/// Every refusal has its code in the core's outcome; what the stock client sees is unchanged.
#[test]
fn every_refusal_has_an_outcome() {
    use crate::core::types::ErrorCode as E;
    use crate::core::Outcome::{self, Accepted, Refused};
    let mut h = Harness::with(CoreConfig {
        rooms_max: 2,
        room_members_max: 2,
        ..CoreConfig::default()
    });
    let host = h.connect();
    let guest = h.connect();
    let third = h.connect();
    let room = h.create(host, json!({}));
    h.join(guest, &room);
    let outcome = |h: &mut Harness, conn: ConnId, text: String| -> Outcome {
        let mut out = Vec::new();
        let outcome = h.gateway.text(h.now, conn, &text, &mut out);
        h.collect(out);
        h.take(conn);
        outcome
    };
    let gone = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let play = |room: &str| {
        json!({"type": "player_event", "room": room, "payload": {"action": "play"}}).to_string()
    };
    let cases: Vec<(ConnId, String, Outcome)> = vec![
        (host, "not json".into(), Refused(E::InvalidMessage)),
        (
            host,
            json!({"type": "dance"}).to_string(),
            Refused(E::UnknownType),
        ),
        (
            third,
            json!({"type": "join_room", "room": gone}).to_string(),
            Refused(E::RoomNotFound),
        ),
        (
            third,
            json!({"type": "join_room", "room": room}).to_string(),
            Refused(E::RoomFull),
        ),
        (guest, play(&room), Refused(E::NotHost)),
        (third, play(&room), Refused(E::NotInRoom)),
        (host, play(gone), Refused(E::RoomNotFound)),
        (
            host,
            json!({"type": "player_event", "payload": {"action": "play"}}).to_string(),
            Refused(E::RoomRequired),
        ),
        (
            guest,
            json!({"type": "ready"}).to_string(),
            Refused(E::RoomRequired),
        ),
        (
            guest,
            json!({"type": "chat_message", "payload": {"text": "x"}}).to_string(),
            Refused(E::RoomRequired),
        ),
        (
            guest,
            json!({"type": "chat_message", "room": room, "payload": {"text": " "}}).to_string(),
            Refused(E::ChatEmpty),
        ),
        (
            guest,
            json!({"type": "chat_message", "room": room, "payload": {"text": "x".repeat(501)}})
                .to_string(),
            Refused(E::ChatTooLong),
        ),
        (
            guest,
            json!({"type": "ping", "room": gone, "payload": {}}).to_string(),
            Accepted,
        ),
        (host, play(&room), Accepted),
        (third, json!({"type": "list_rooms"}).to_string(), Accepted),
    ];
    for (conn, text, expected) in cases {
        assert_eq!(outcome(&mut h, conn, text.clone()), expected, "{text}");
    }
    let other = h.connect();
    h.create(third, json!({}));
    let create = json!({"type": "create_room", "payload": {}}).to_string();
    assert_eq!(outcome(&mut h, other, create), Refused(E::RoomsLimit));
    let mut out = Vec::new();
    assert_eq!(
        h.gateway.binary(h.now, other, &mut out),
        Refused(E::BinaryUnsupported)
    );
    for _ in 0..40 {
        h.gateway.text(h.now, other, "{}", &mut out);
    }
    let ping = json!({"type": "ping"}).to_string();
    assert_eq!(outcome(&mut h, other, ping), Refused(E::RateLimited));
}

/// A list the connection already has is sent again at most once per LIST_REPEAT_MS; a changed
/// list is sent at once.
#[test]
fn repeated_list_rooms_is_paced() {
    let mut h = Harness::new();
    let conn = h.connect();
    let host = h.connect();
    let list = json!({"type": "list_rooms"});
    h.send(conn, list.clone());
    assert_eq!(h.types(conn), vec!["room_list"]);
    for _ in 0..20 {
        h.send(conn, list.clone());
    }
    assert!(h.types(conn).is_empty(), "the same list again and again");
    h.wait(crate::core::listing::LIST_REPEAT_MS);
    h.send(conn, list.clone());
    assert_eq!(
        h.types(conn),
        vec!["room_list"],
        "once the spacing has passed"
    );
    h.create(host, json!({}));
    h.send(conn, list.clone());
    assert_eq!(h.types(conn), vec!["room_list"], "a changed list at once");
}

/// A pause is asked for only while the sender's window lasts: a later client_log (which does
/// not open a new window) does not pause it again.
#[test]
fn pause_only_within_the_window() {
    let mut h = Harness::new();
    let conn = h.connect();
    let pauses = |out: &Vec<Output>| {
        out.iter()
            .filter(|o| matches!(o, Output::Pause { .. }))
            .count()
    };
    let mut out = Vec::new();
    for _ in 0..31 {
        h.gateway
            .text(h.now, conn, r#"{"type":"ping","payload":{}}"#, &mut out);
    }
    assert_eq!(pauses(&out), 1, "paused once past the budget");
    h.collect(out);
    h.wait(1_500);
    let mut out = Vec::new();
    let log = r#"{"type":"client_log","payload":{"category":"x","message":"y"}}"#;
    h.gateway.text(h.now, conn, log, &mut out);
    assert_eq!(pauses(&out), 0, "the window is over");
    h.collect(out);
}

// ----- parties that survive: grace, handover, re-admission -----

/// Host drop: the room waits HOST_GRACE_MS with the host away (nobody is told it left);
/// then the longest-present connected member becomes host: `host_change` and a fresh
/// `room_state` (host_id = it) to every member; the old seat leaves at RESUME_GRACE_MS.
#[test]
fn host_drop_hands_over_after_host_grace() {
    let mut h = Harness::new();
    let host = h.connect();
    let room = h.create(host, json!({}));
    let (first, second) = (h.connect(), h.connect());
    h.join(first, &room);
    h.join(second, &room);
    h.take(first);
    h.disconnect(host);
    let told = h.take(first);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["type"], "participants_update");
    assert_eq!(
        told[0]["payload"]["participants"][0]["away"], true,
        "the host is away"
    );
    assert_eq!(told[0]["payload"]["participant_count"], 3);
    h.wait(29_999);
    assert!(
        h.take(first).is_empty(),
        "nothing more before the host grace ends"
    );
    h.wait(1);
    let first_id = h.gateway.core().seat(first).expect("seat").to_string();
    let told = h.take(first);
    let kinds: Vec<&str> = told.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["host_change", "room_state"], "{told:?}");
    assert_eq!(told[0]["payload"]["host_id"], first_id.as_str());
    assert_eq!(told[1]["payload"]["host_id"], first_id.as_str());
    let told = h.take(second);
    assert_eq!(told[1]["payload"]["host_id"], first_id.as_str());
    h.wait(60_000);
    let left = h.take(first);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["type"], "client_left");
    assert_eq!(left[0]["payload"]["participant_count"], 2);
}

/// Host leave_room hands over at once; the room closes only when its last member is gone.
#[test]
fn host_leave_hands_over_at_once() {
    let mut h = Harness::new();
    let host = h.connect();
    let room = h.create(host, json!({}));
    let guest = h.connect();
    h.join(guest, &room);
    h.send(host, json!({"type": "leave_room"}));
    let guest_id = h.gateway.core().seat(guest).expect("seat").to_string();
    let kinds = h.types(guest);
    assert_eq!(kinds, ["client_left", "host_change", "room_state"]);
    let id = crate::id::RoomId::parse(&room).expect("id");
    assert_eq!(h.gateway.core().host(id), Some(guest));
    h.send(guest, json!({"type": "leave_room"}));
    assert_eq!(
        h.gateway.core().host(id),
        None,
        "closed with its last member"
    );
    let _ = guest_id;
}

/// ROOM_CLOSE_ON_HOST_LEAVE=true: the original's rule.
#[test]
fn classic_host_leave_closes() {
    let mut h = Harness::with(CoreConfig {
        room_close_on_host_leave: true,
        ..CoreConfig::default()
    });
    let host = h.connect();
    let room = h.create(host, json!({}));
    let guest = h.connect();
    h.join(guest, &room);
    h.disconnect(host);
    let told = h.take(guest);
    assert_eq!(told[0]["type"], "room_closed");
    assert_eq!(told[0]["payload"]["reason"], "Host left the room");
}

/// A member in grace does not hold up a play waiting for ready members; a member that
/// drops and a reconnected stock client naming the room in a ping is let back in as a
/// member (not host); one naming it after leaving on purpose is not.
#[test]
fn away_members_and_readmission() {
    let mut h = Harness::new();
    let host = h.connect();
    h.scheduled(host);
    let room = h.create(host, json!({"media_id": MEDIA}));
    let (loading, dropped) = (h.connect(), h.connect());
    h.join(loading, &room);
    h.join(dropped, &room);
    h.send(loading, json!({"type": "ready", "room": room}));
    h.take(host);
    h.send(
        host,
        json!({"type": "player_event", "room": room, "payload": {"action": "play", "position": 5}}),
    );
    assert!(
        !h.types(loading).contains(&"player_event".to_string()),
        "waits for `dropped`"
    );
    h.disconnect(dropped);
    assert!(
        h.types(loading).contains(&"player_event".to_string()),
        "an away member is not waited for"
    );

    let back = h.connect();
    h.send(
        back,
        json!({"type": "ping", "room": room, "payload": {"client_ts": 1}}),
    );
    let told = h.take(back);
    let state = told
        .iter()
        .find(|m| m["type"] == "room_state")
        .expect("re-admitted");
    let host_id = h.gateway.core().seat(host).expect("seat").to_string();
    assert_eq!(state["payload"]["host_id"], host_id.as_str());
    assert!(told.iter().all(|m| m["type"] != "room_closed"));

    h.send(loading, json!({"type": "leave_room"}));
    h.take(loading);
    h.send(
        loading,
        json!({"type": "ping", "room": room, "payload": {"client_ts": 1}}),
    );
    let types = h.types(loading);
    assert_eq!(types, ["pong"], "left on purpose: not brought back");
}

/// Room serials start at a random point per process (2^32 apart at least), so an invite
/// for a room of an earlier process never matches a room made again under the same id.
#[test]
fn serials_differ_between_processes() {
    let first = |seed| {
        let mut h = Harness::with_seed(CoreConfig::default(), seed);
        let host = h.connect();
        h.create(host, json!({}));
        let now = h.now;
        h.gateway.core().snapshot(now).rooms[0].serial
    };
    let (a, b) = (first(1), first(2));
    assert!(a.abs_diff(b) >= 1 << 32, "{a} {b}");
}

/// A full room whose members are partly away still lets a reconnected stock client back
/// in: an away seat (never the host's) yields its place.
#[test]
fn full_room_readmission_takes_an_away_seat() {
    let mut h = Harness::with(CoreConfig {
        room_members_max: 3,
        ..CoreConfig::default()
    });
    let host = h.connect();
    let room = h.create(host, json!({}));
    let (a, b) = (h.connect(), h.connect());
    h.join(a, &room);
    h.join(b, &room);
    h.disconnect(b);
    h.take(host);
    let back = h.connect();
    h.send(
        back,
        json!({"type": "ping", "room": room, "payload": {"client_ts": 1}}),
    );
    let got = h.types(back);
    assert!(got.contains(&"room_state".to_string()), "{got:?}");
    let told = h.types(host);
    assert!(told.contains(&"client_left".to_string()), "{told:?}");
    let id = crate::id::RoomId::parse(&room).expect("id");
    assert_eq!(h.gateway.core().members(id).len(), 3);
}

/// Found by an attack run: rooms nobody is connected to make way for new ones at
/// ROOMS_MAX, and seats in grace make way for joiners in a full room.
#[test]
fn away_rooms_and_seats_make_way() {
    let mut h = Harness::with(CoreConfig {
        rooms_max: 2,
        room_members_max: 2,
        ..CoreConfig::default()
    });
    let (a, b) = (h.connect(), h.connect());
    let room_a = h.create(a, json!({}));
    h.create(b, json!({}));
    h.disconnect(a);
    h.disconnect(b);
    let c = h.connect();
    let created = h.create(c, json!({}));
    assert_ne!(created, room_a);
    let old = crate::id::RoomId::parse(&room_a).expect("id");
    assert_eq!(
        h.gateway.core().clock_of(old),
        None,
        "the oldest idle room made way"
    );
    // A full room (host + one away guest) takes a new member in the away one's place.
    let guest = h.connect();
    h.join(guest, &created);
    h.disconnect(guest);
    let late = h.connect();
    let got = h.join(late, &created);
    assert!(got.iter().any(|m| m["type"] == "room_state"), "{got:?}");
}

/// Found by an attack run: presence updates are spaced per room, so a member toggling its
/// buffering state cannot make every member receive a message per toggle.
#[test]
fn presence_updates_are_spaced() {
    let mut h = Harness::new();
    let host = h.connect();
    let room = h.create(host, json!({}));
    let guest = h.connect();
    h.join(guest, &room);
    h.take(host);
    for i in 0..20 {
        let state = if i % 2 == 0 { "buffering" } else { "paused" };
        h.send(
            guest,
            json!({"type": "state_update", "room": room, "payload": {"play_state": state}}),
        );
    }
    let updates = |h: &mut Harness| {
        h.take(host)
            .into_iter()
            .filter(|m| m["type"] == "participants_update")
            .collect::<Vec<_>>()
    };
    assert_eq!(updates(&mut h).len(), 1, "one at once");
    h.wait(500);
    let later = updates(&mut h);
    assert_eq!(later.len(), 1, "the rest together, one interval later");
    assert_eq!(
        later[0]["payload"]["participants"][1]["buffering"], false,
        "the latest state"
    );
}

/// Found by an attack run: a room's chat history is bounded in bytes too, and chat text
/// loses control and format characters (but not newlines).
#[test]
fn chat_history_bytes_and_cleaning() {
    let mut h = Harness::with(CoreConfig {
        chat_history_bytes_max: 4_096,
        ..CoreConfig::default()
    });
    let host = h.connect();
    let room = h.create(host, json!({}));
    for _ in 0..20 {
        h.send(
            host,
            json!({"type": "chat_message", "room": room, "payload": {"text": "é".repeat(500)}}),
        );
    }
    h.send(
        host,
        json!({"type": "chat_message", "room": room,
                        "payload": {"text": "a\u{0}b\u{1b}c\u{202e}d\nе"}}),
    );
    let guest = h.connect();
    let got = h.join(guest, &room);
    let chats: Vec<&Value> = got.iter().filter(|m| m["type"] == "chat_message").collect();
    assert!(chats.len() < 5, "{} kept", chats.len());
    assert_eq!(chats.last().unwrap()["payload"]["text"], "abcd\nе");
}

/// Found by an attack run: a room left on purpose stays left through later joins: a late
/// message naming it does not bring the client back.
#[test]
fn left_on_purpose_stays_left() {
    let mut h = Harness::new();
    let (a, b) = (h.connect(), h.connect());
    let room_a = h.create(a, json!({}));
    let room_b = h.create(b, json!({}));
    let client = h.connect();
    h.join(client, &room_a);
    h.send(client, json!({"type": "leave_room"}));
    h.join(client, &room_b);
    h.send(client, json!({"type": "leave_room"}));
    h.take(client);
    h.send(
        client,
        json!({"type": "ping", "room": room_a, "payload": {"client_ts": 1}}),
    );
    assert_eq!(h.types(client), ["pong"]);
    // Joining it again on purpose is fine, and so is naming it after.
    h.join(client, &room_a);
    let id = crate::id::RoomId::parse(&room_a).expect("id");
    assert_eq!(h.gateway.core().room_of(client), Some(id));
}
