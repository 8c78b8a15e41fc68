//! Playback transcripts on virtual time: stock relays, scheduled plays and the ready barrier,
//! held commands, joiner positions and the state_update filter, where the point is when the
//! core decides and in which order.
//!
//! The real `Engine` runs over in-memory pipes (the shared driver, tests/driver) with
//! tungstenite clients, and only the test moves the clock. Every instant is exact: a message
//! is stamped with the virtual wall clock of the turn that wrote it, and "nothing arrives" is
//! checked after the clock has passed every deadline that could have sent something.
//! tests/playback.rs keeps a few of these flows end to end over TCP.

mod sim;

use serde_json::{json, Value};
use sim::net::{Peer, SimNet};
use tandem::config::{CoreConfig, NetConfig};
use tandem::net::engine::EngineConfig;

/// A media id (32 hex digits): with one, readiness matters.
const MEDIA: &str = "00112233445566778899aabbccddeeff";
/// How long after a scheduled play's instant a command held for a stock member reaches it
/// (src/core/playback.rs, not exported).
const PLAY_GUARD_MS: u64 = 200;

/// A message as its recipient got it: the virtual wall clock (ms) when it arrived, and the
/// message.
type Received = (u64, Value);

/// The engine, its clients, and what each received since the test last looked.
struct World {
    net: SimNet,
    peers: Vec<Peer>,
    /// Each client's id as the protocol names it (`client_hello`'s `client_id`).
    ids: Vec<String>,
    inbox: Vec<Vec<Received>>,
}

impl World {
    fn new(core: CoreConfig) -> World {
        let config = EngineConfig {
            net: NetConfig::default(),
            core,
            connections_max: 16,
            allowed_origins: None,
            address_limits: Default::default(),
            trusted_proxies: Vec::new(),
        };
        World {
            net: SimNet::new(config),
            peers: Vec::new(),
            ids: Vec::new(),
            inbox: Vec::new(),
        }
    }

    /// The virtual wall clock, in Unix ms.
    fn wall(&self) -> u64 {
        self.net.now.wall.0
    }

    /// A client through the upgrade and greeting; `scheduled`: it declares that it follows
    /// the server's schedule. Returns its index, with nothing in its inbox.
    fn connect(&mut self, scheduled: bool) -> usize {
        let peer = self.net.connect();
        let id = peer.received[0]["payload"]["client_id"]
            .as_str()
            .expect("client_id")
            .to_string();
        self.peers.push(peer);
        self.ids.push(id);
        self.inbox.push(Vec::new());
        let who = self.peers.len() - 1;
        self.peers[who].received.clear();
        if scheduled {
            self.send(who, json!({"type": "auth", "payload": {"scheduled": true}}));
            assert_eq!(self.take(who), [], "auth is not answered");
        }
        who
    }

    /// `who` sends `message` (with `ts` set to now, as the stock client does); the engine
    /// settles and every client reads what it was sent.
    fn send(&mut self, who: usize, mut message: Value) {
        if message.get("ts").is_none() {
            message["ts"] = json!(self.wall());
        }
        self.peers[who].send(&message.to_string());
        self.net.settle();
        self.collect();
    }

    /// Every client reads what is waiting; it arrived now.
    fn collect(&mut self) {
        let now = self.wall();
        for (peer, inbox) in self.peers.iter_mut().zip(&mut self.inbox) {
            peer.pump();
            inbox.extend(peer.received.drain(..).map(|m| (now, m)));
        }
    }

    /// Moves the clock by `ms`, stopping at every engine deadline on the way; what the
    /// clients receive is stamped with the instant of the deadline that sent it.
    fn advance(&mut self, ms: u64) {
        let target = self.net.now.mono + ms;
        for _ in 0..100_000 {
            let now = self.net.now.mono;
            let next = self
                .net
                .engine
                .next_deadline()
                .filter(|&d| d > now && d <= target);
            let at = next.unwrap_or(target);
            self.net.now = self.net.now.plus(at.since(now));
            self.net.settle();
            self.collect();
            if next.is_none() {
                return;
            }
        }
        panic!("more than 100000 deadlines in {ms} ms");
    }

    /// What `who` received since the last look, oldest first.
    fn take(&mut self, who: usize) -> Vec<Received> {
        std::mem::take(&mut self.inbox[who])
    }

    /// Asserts that nobody received anything since the last look.
    fn all_quiet(&mut self, what: &str) {
        for who in 0..self.peers.len() {
            let got = self.take(who);
            assert!(got.is_empty(), "{what}: client {who} got {got:?}");
        }
    }
}

/// A room, its host and guests, every inbox empty.
struct Party {
    world: World,
    host: usize,
    guests: Vec<usize>,
    room: String,
    /// The host's client id.
    host_id: String,
}

/// A host (scheduling or stock) in a room with or without media, and guests (each
/// scheduling or stock) who joined it, all at virtual time zero.
fn party(core: CoreConfig, host_scheduled: bool, media: bool, guests: &[bool]) -> Party {
    party_at(core, host_scheduled, media, guests, 0.0)
}

/// `party`, the room starting at `start` seconds.
fn party_at(
    core: CoreConfig,
    host_scheduled: bool,
    media: bool,
    guests: &[bool],
    start: f64,
) -> Party {
    let mut world = World::new(core);
    let host = world.connect(host_scheduled);
    let mut payload = json!({"start_pos": start});
    if media {
        payload["media_id"] = json!(MEDIA);
    }
    world.send(
        host,
        json!({"type": "create_room", "room": "", "payload": payload}),
    );
    let created = world.take(host);
    let state = created
        .iter()
        .find(|(_, m)| m["type"] == "room_state")
        .unwrap_or_else(|| panic!("no room_state: {created:?}"));
    let room = state.1["room"].as_str().expect("room id").to_string();
    let mut joined = Vec::new();
    for &scheduled in guests {
        let guest = world.connect(scheduled);
        world.send(
            guest,
            json!({"type": "join_room", "room": room, "payload": {"user_name": "guest"}}),
        );
        joined.push(guest);
    }
    for who in 0..world.peers.len() {
        world.take(who);
    }
    let host_id = world.ids[host].clone();
    Party {
        world,
        host,
        guests: joined,
        room,
        host_id,
    }
}

impl Party {
    /// The host sends a player_event with `payload`.
    fn command(&mut self, payload: Value) {
        let message = json!({"type": "player_event", "room": self.room, "payload": payload});
        self.world.send(self.host, message);
    }

    /// `guest` sends `ready` for the room's media; nobody is told anything.
    fn ready(&mut self, guest: usize) {
        let room = self.room.clone();
        self.world.send(
            guest,
            json!({"type": "ready", "room": room, "payload": {"room": room, "media_id": MEDIA}}),
        );
        self.world.all_quiet("ready is not answered");
    }

    /// The host and the guests.
    fn members(&self) -> Vec<usize> {
        std::iter::once(self.host)
            .chain(self.guests.iter().copied())
            .collect()
    }

    /// `who`'s one message since the last look, a player_event from the host: (instant it
    /// arrived, payload without the target, target).
    fn one_control(&mut self, who: usize) -> (u64, Value, u64) {
        let got = self.world.take(who);
        assert_eq!(
            got.len(),
            1,
            "client {who}: one message expected, got {got:?}"
        );
        let (at, message) = &got[0];
        let (payload, target) = control(message, &self.room, &self.host_id);
        (*at, payload, target)
    }
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

fn num(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

// ----- stock host -----

/// A stock host's play reaches every other member (not the host) verbatim, in the turn that
/// read it, with target_server_ts == server_ts == the server's clock at receipt; nothing
/// follows.
#[test]
fn stock_host_play_is_relayed_at_once() {
    let mut p = party(CoreConfig::default(), false, false, &[false, true]);
    p.world.advance(1_234);
    let sent = p.world.wall();
    let play = json!({"action": "play", "position": 12.5, "play_state": "playing"});
    p.command(play.clone());
    for guest in p.guests.clone() {
        let (at, payload, target) = p.one_control(guest);
        assert_eq!(payload, play);
        assert_eq!(at, sent, "relayed in the turn that read it");
        assert_eq!(target, sent, "target_server_ts is the clock at receipt");
    }
    p.world.advance(5_000);
    p.world.all_quiet("after the relay");
}

/// A stock host's pause, seek, buffering and play-without-play_state, each sent at its own
/// instant, are relayed at once and stamped with that instant; absent fields stay absent, an
/// ill-typed field (an unknown play_state, a position that is not a number) is dropped from
/// the relay.
#[test]
fn stock_host_commands_are_stamped_at_receipt() {
    let mut p = party(CoreConfig::default(), false, true, &[false]);
    let guest = p.guests[0];
    let payloads = [
        json!({"action": "pause", "position": 20.0, "play_state": "paused"}),
        json!({"action": "seek", "position": 30.25, "play_state": "playing"}),
        json!({"action": "buffering", "position": 31}),
        json!({"action": "play", "position": 31}),
        json!({"action": "seek", "position": -5, "play_state": "bogus"}),
        json!({"action": "pause"}),
        json!({"action": "seek", "position": [[[1]]], "play_state": {"x": 1}}),
    ];
    for (i, sent) in payloads.into_iter().enumerate() {
        p.world.advance(100 + i as u64);
        let at_send = p.world.wall();
        p.command(sent.clone());
        let (at, payload, target) = p.one_control(guest);
        let mut expected = sent.clone();
        let fields = expected.as_object_mut().expect("an object");
        fields.retain(|key, value| match key.as_str() {
            "position" => value.is_number(),
            "play_state" => value == "paused" || value == "playing",
            _ => true,
        });
        assert_eq!(payload, expected, "{sent}");
        assert_eq!((at, target), (at_send, at_send), "{sent}");
        p.world.all_quiet("one relay per command");
    }
}

// ----- scheduling host -----

/// Scheduling host, everyone ready: the play goes at once to all members, host included,
/// targeted exactly play_schedule_ms ahead; nothing follows.
#[test]
fn scheduled_play_when_all_ready() {
    let core = CoreConfig {
        play_schedule_ms: 1_000,
        ready_wait_ms_max: 4_000,
        ..CoreConfig::default()
    };
    let mut p = party(core, true, true, &[false, false]);
    for guest in p.guests.clone() {
        p.ready(guest);
    }
    p.world.advance(777);
    let sent = p.world.wall();
    let play = json!({"action": "play", "position": 5.0, "play_state": "playing"});
    p.command(play.clone());
    for member in p.members() {
        let (at, payload, target) = p.one_control(member);
        assert_eq!(payload, play);
        assert_eq!(at, sent, "client {member} got the play at once");
        assert_eq!(target, sent + 1_000, "play_schedule_ms ahead");
    }
    p.world.advance(5_000);
    p.world.all_quiet("after the play");
}

/// One member not ready: no play, to anyone, until it sends `ready` (the ready-wait deadline
/// is not reached); then the play goes to all in that turn, targeted play_schedule_ms after
/// the last ready.
#[test]
fn scheduled_play_waits_for_late_member() {
    let core = CoreConfig {
        play_schedule_ms: 1_000,
        ready_wait_ms_max: 4_000,
        ..CoreConfig::default()
    };
    let mut p = party(core, true, true, &[false, false]);
    let (early, late) = (p.guests[0], p.guests[1]);
    p.ready(early);
    let play = json!({"action": "play", "position": 7.0, "play_state": "playing"});
    p.command(play.clone());
    p.world.advance(3_999);
    p.world
        .all_quiet("a play waiting for a member, short of the deadline");
    let room = p.room.clone();
    let sent = p.world.wall();
    p.world
        .send(late, json!({"type": "ready", "room": room, "payload": {}}));
    for member in p.members() {
        let (at, payload, target) = p.one_control(member);
        assert_eq!(payload, play);
        assert_eq!(at, sent, "client {member}: released by the last ready");
        assert_eq!(target, sent + 1_000, "play_schedule_ms after the ready");
    }
    p.world.advance(5_000);
    p.world.all_quiet("after the play");
}

/// One member never ready: the play goes out to all exactly ready_wait_ms_max after the
/// request, without it, targeted play_schedule_ms after that.
#[test]
fn scheduled_play_starts_at_ready_deadline() {
    let core = CoreConfig {
        play_schedule_ms: 1_000,
        ready_wait_ms_max: 300,
        ..CoreConfig::default()
    };
    let mut p = party(core, true, true, &[false, false]);
    p.ready(p.guests[0]);
    let sent = p.world.wall();
    p.command(json!({"action": "play", "position": 2.0, "play_state": "playing"}));
    p.world.advance(299);
    p.world.all_quiet("before the ready-wait deadline");
    p.world.advance(1);
    for member in p.members() {
        let (at, payload, target) = p.one_control(member);
        assert_eq!(payload["action"], "play", "{payload}");
        assert_eq!(payload["position"], 2.0, "{payload}");
        assert_eq!(at, sent + 300, "client {member}: at the deadline");
        assert_eq!(target, sent + 1_300, "play_schedule_ms after the deadline");
    }
    p.world.advance(5_000);
    p.world.all_quiet("after the play");
}

/// Pause shortly after a scheduled play, before its target: a scheduling guest (and the
/// host) get it at once, targeted control_schedule_ms ahead; a stock guest gets it only
/// PLAY_GUARD_MS after the play's target (so its own timer has started the play and the
/// pause wins: it ends paused), stamped with that instant.
#[test]
fn pause_before_target_is_held_for_stock_guest() {
    let core = CoreConfig {
        play_schedule_ms: 1_000,
        control_schedule_ms: 300,
        ..CoreConfig::default()
    };
    let mut p = party(core, true, true, &[false, true]);
    let (stock, scheduling) = (p.guests[0], p.guests[1]);
    for guest in p.guests.clone() {
        p.ready(guest);
    }
    let played = p.world.wall();
    p.command(json!({"action": "play", "position": 0.0, "play_state": "playing"}));
    let play_target = played + 1_000;
    for member in p.members() {
        let (at, _, target) = p.one_control(member);
        assert_eq!((at, target), (played, play_target), "client {member}");
    }
    p.world.advance(100);
    let sent = p.world.wall();
    let pause = json!({"action": "pause", "position": 0.5, "play_state": "paused"});
    p.command(pause.clone());
    for member in [p.host, scheduling] {
        let (at, payload, target) = p.one_control(member);
        assert_eq!(payload, pause);
        assert_eq!(at, sent, "client {member} got the pause at once");
        assert_eq!(target, sent + 300, "control_schedule_ms ahead");
    }
    assert_eq!(p.world.take(stock), [], "held while the play is ahead");
    let released = play_target + PLAY_GUARD_MS;
    p.world.advance(released - sent - 1);
    p.world.all_quiet("up to the play's target and its guard");
    p.world.advance(1);
    let (at, payload, target) = p.one_control(stock);
    assert_eq!(payload, pause);
    assert_eq!(
        at, released,
        "released PLAY_GUARD_MS after the play's target"
    );
    assert_eq!(target, released, "stamped with its delivery");
    p.world.advance(5_000);
    p.world.all_quiet("after the pause");
}

/// The last unready member leaving releases a pending play in that turn: the others get
/// `client_left`, then the play, targeted play_schedule_ms after the departure.
#[test]
fn scheduled_play_released_when_unready_member_leaves() {
    let core = CoreConfig {
        ready_wait_ms_max: 4_000,
        ..CoreConfig::default()
    };
    let mut p = party(core, true, true, &[false, false]);
    let (staying, leaving) = (p.guests[0], p.guests[1]);
    p.ready(staying);
    p.command(json!({"action": "play", "position": 4.0, "play_state": "playing"}));
    p.world.advance(500);
    p.world.all_quiet("the play waits for the unready member");
    let room = p.room.clone();
    let sent = p.world.wall();
    p.world.send(
        leaving,
        json!({"type": "leave_room", "room": room, "payload": {}}),
    );
    for member in [p.host, staying] {
        let got = p.world.take(member);
        let types: Vec<&Value> = got.iter().map(|(_, m)| &m["type"]).collect();
        assert_eq!(types, ["client_left", "player_event"], "client {member}");
        assert!(got.iter().all(|(at, _)| *at == sent), "{got:?}");
        let (payload, target) = control(&got[1].1, &p.room, &p.host_id);
        assert_eq!(payload["position"], 4.0, "{payload}");
        assert_eq!(target, sent + 1_000, "play_schedule_ms after the departure");
    }
    let gone = p.world.take(leaving);
    assert!(
        gone.iter().all(|(_, m)| m["type"] != "player_event"),
        "the member who left gets no play: {gone:?}"
    );
    p.world.advance(5_000);
    p.world.all_quiet("after the play");
}

/// A later command replaces a pending play: the pause goes out (to the scheduling host at
/// once, to the stock guests at its instant, control_schedule_ms later, stamped with it), the
/// play never does, not even past its ready-wait deadline.
#[test]
fn later_command_replaces_pending_play() {
    let core = CoreConfig {
        ready_wait_ms_max: 300,
        control_schedule_ms: 300,
        ..CoreConfig::default()
    };
    let mut p = party(core, true, true, &[false, false]);
    p.ready(p.guests[0]);
    p.command(json!({"action": "play", "position": 4.0, "play_state": "playing"}));
    p.world.advance(100);
    p.world.all_quiet("the play waits");
    let sent = p.world.wall();
    let pause = json!({"action": "pause", "position": 4.0, "play_state": "paused"});
    p.command(pause.clone());
    let (at, payload, target) = p.one_control(p.host);
    assert_eq!(payload, pause);
    assert_eq!((at, target), (sent, sent + 300), "the host schedules it");
    p.world.advance(299);
    p.world
        .all_quiet("stock guests get the pause at its instant");
    p.world.advance(1);
    for guest in p.guests.clone() {
        let (at, payload, target) = p.one_control(guest);
        assert_eq!(payload, pause);
        assert_eq!((at, target), (sent + 300, sent + 300), "client {guest}");
    }
    // Well past the ready-wait deadline of the replaced play: nothing more.
    p.world.advance(5_000);
    p.world.all_quiet("past the replaced play's deadline");
}

/// A member that let the ready-wait deadline pass is not waited for again: the host's
/// second play goes out in the turn that read it.
#[test]
fn deadline_member_is_not_waited_for_again() {
    let core = CoreConfig {
        ready_wait_ms_max: 300,
        play_schedule_ms: 1_000,
        ..CoreConfig::default()
    };
    let mut p = party(core, true, true, &[true, true]);
    let (ready, never) = (p.guests[0], p.guests[1]);
    p.ready(ready);
    let first = p.world.wall();
    p.command(json!({"action": "play", "position": 1.0, "play_state": "playing"}));
    p.world.advance(299);
    p.world.all_quiet("before the deadline");
    p.world.advance(1);
    for member in p.members() {
        let (at, _, target) = p.one_control(member);
        assert_eq!(
            (at, target),
            (first + 300, first + 1_300),
            "client {member}"
        );
    }
    p.world.advance(50);
    let paused = p.world.wall();
    p.command(json!({"action": "pause", "position": 1.5, "play_state": "paused"}));
    for member in p.members() {
        let (at, payload, target) = p.one_control(member);
        assert_eq!(payload["action"], "pause", "{payload}");
        assert_eq!((at, target), (paused, paused + 300), "client {member}");
    }
    p.world.advance(50);
    let sent = p.world.wall();
    p.command(json!({"action": "play", "position": 1.5, "play_state": "playing"}));
    for member in [p.host, ready, never] {
        let (at, payload, target) = p.one_control(member);
        assert_eq!(payload["action"], "play", "{payload}");
        assert_eq!(at, sent, "client {member}: not waited for");
        assert_eq!(target, sent + 1_000, "play_schedule_ms ahead");
    }
    p.world.advance(5_000);
    p.world.all_quiet("after the second play");
}

// ----- joiners -----

/// A joiner of a playing room gets the clock position minus sync_lead (0.3 s), playing,
/// stamped now, then a play at the clock position with the room_state's instant as target;
/// the members get participants_update only.
#[test]
fn joiner_of_playing_room_lands_on_the_clock() {
    let mut p = party(CoreConfig::default(), false, false, &[false]);
    let played = p.world.wall();
    p.command(json!({"action": "play", "position": 100, "play_state": "playing"}));
    let (_, _, play_ts) = p.one_control(p.guests[0]);
    assert_eq!(play_ts, played);
    // Let the clock run; nothing is sent meanwhile.
    p.world.advance(400);
    p.world.all_quiet("while the clock runs");

    let joiner = p.world.connect(false);
    let joined = p.world.wall();
    let room = p.room.clone();
    p.world.send(
        joiner,
        json!({"type": "join_room", "room": room, "payload": {"user_name": "guest"}}),
    );
    let got = p.world.take(joiner);
    assert_eq!(got.len(), 2, "room_state, then the play: {got:?}");
    let (at, state) = &got[0];
    assert_eq!(state["type"], "room_state", "{state}");
    assert_eq!(*at, joined);
    assert_eq!(state["server_ts"], joined, "{state}");
    assert_eq!(
        state["payload"]["state"]["play_state"], "playing",
        "{state}"
    );
    let position = num(&state["payload"]["state"]["position"]);
    assert!(
        (position - (100.0 + 0.4 - 0.3)).abs() < 1e-9,
        "position {position}: 100 s + 400 ms of clock - 300 ms lead"
    );

    let (at, message) = &got[1];
    assert_eq!(*at, joined);
    let (payload, target) = control(message, &p.room, &p.host_id);
    assert_eq!(payload["action"], "play", "{message}");
    assert_eq!(payload["play_state"], "playing", "{message}");
    let play_position = num(&payload["position"]);
    assert!(
        (play_position - (position + 0.3)).abs() < 1e-6,
        "{play_position} vs {position} + 0.3"
    );
    assert_eq!(
        target, joined,
        "the follow-up play is stamped with the room_state's instant"
    );
    for member in [p.host, p.guests[0]] {
        let got = p.world.take(member);
        let types: Vec<&Value> = got.iter().map(|(_, m)| &m["type"]).collect();
        assert_eq!(
            types,
            ["participants_update", "client_joined"],
            "client {member}"
        );
    }
    p.world.advance(5_000);
    p.world.all_quiet("after the join");
}

/// A joiner before a scheduled play's instant gets the room as it is now, then that play
/// (same target) in the same turn.
#[test]
fn joiner_gets_scheduled_play_in_flight() {
    let core = CoreConfig {
        play_schedule_ms: 1_000,
        ..CoreConfig::default()
    };
    let mut p = party(core, true, false, &[]);
    let played = p.world.wall();
    let play = json!({"action": "play", "position": 3.0, "play_state": "playing"});
    p.command(play.clone());
    let (_, _, play_target) = p.one_control(p.host);
    assert_eq!(play_target, played + 1_000);
    p.world.advance(999);
    let joiner = p.world.connect(false);
    let joined = p.world.wall();
    assert!(joined < play_target, "joined before the play's instant");
    let room = p.room.clone();
    p.world.send(
        joiner,
        json!({"type": "join_room", "room": room, "payload": {"user_name": "guest"}}),
    );
    let got = p.world.take(joiner);
    assert_eq!(got.len(), 2, "room_state, then the play: {got:?}");
    assert!(got.iter().all(|(at, _)| *at == joined), "{got:?}");
    let state = &got[0].1;
    assert_eq!(state["type"], "room_state", "{state}");
    assert_eq!(
        state["payload"]["state"],
        json!({"position": 0.0, "play_state": "paused"}),
        "{state}"
    );
    let (payload, target) = control(&got[1].1, &p.room, &p.host_id);
    assert_eq!(payload, play);
    assert_eq!(target, play_target);
    let host_got = p.world.take(p.host);
    let types: Vec<&Value> = host_got.iter().map(|(_, m)| &m["type"]).collect();
    assert_eq!(types, ["participants_update", "client_joined"]);
    p.world.advance(5_000);
    p.world.all_quiet("after the join");
}

// ----- the state_update filter -----

impl Party {
    /// The host sends a state_update (`payload` None: no payload at all).
    fn report(&mut self, payload: Option<Value>) {
        let mut message = json!({"type": "state_update", "room": self.room});
        if let Some(payload) = payload {
            message["payload"] = payload;
        }
        self.world.send(self.host, message);
    }

    /// The last state_update reached the guest, now, with exactly `payload`, stamped now.
    fn expect_relay(&mut self, payload: Value) {
        let guest = self.guests[0];
        let got = self.world.take(guest);
        assert_eq!(got.len(), 1, "expected the relay of {payload}, got {got:?}");
        let (at, message) = &got[0];
        assert_eq!(message["type"], "state_update", "{message}");
        assert_eq!(message["room"], self.room.as_str());
        assert_eq!(message["client"], self.host_id.as_str());
        assert_eq!(message["payload"], payload, "{message}");
        assert_eq!(*at, self.world.wall());
        assert_eq!(message["server_ts"], self.world.wall(), "{message}");
        self.world.all_quiet("one relay");
    }

    /// The last state_update was dropped: nobody got anything.
    fn expect_dropped(&mut self, what: &str) {
        self.world
            .all_quiet(&format!("{what} should have been dropped"));
    }
}

/// Within command_cooldown_ms of a player_event a state_update is dropped (up to the last
/// millisecond); from then on, relayed.
#[test]
fn state_update_cooldown_after_player_event() {
    let core = CoreConfig {
        command_cooldown_ms: 400,
        state_update_interval_ms: 0,
        ..CoreConfig::default()
    };
    let mut p = party(core, false, false, &[false]);
    p.command(json!({"action": "play", "position": 10.0, "play_state": "playing"}));
    p.one_control(p.guests[0]);
    let update = json!({"position": 11.0, "play_state": "playing"});
    p.report(Some(update.clone()));
    p.expect_dropped("an update at the command's instant");
    p.world.advance(399);
    p.report(Some(update.clone()));
    p.expect_dropped("an update 399 ms after the command");
    p.world.advance(1);
    p.report(Some(update.clone()));
    p.expect_relay(update);
}

/// Updates closer than state_update_interval_ms to the last relayed state (or to the room's
/// creation) are dropped unless the play_state changes.
#[test]
fn state_update_min_interval() {
    let core = CoreConfig {
        command_cooldown_ms: 0,
        state_update_interval_ms: 800,
        ..CoreConfig::default()
    };
    let mut p = party_at(core, false, false, &[false], 10.0);
    let paused_15 = json!({"position": 15.0, "play_state": "paused"});
    p.report(Some(paused_15.clone()));
    p.expect_dropped("an update right after the room was made");
    p.world.advance(799);
    p.report(Some(paused_15.clone()));
    p.expect_dropped("an update 799 ms after the room was made");
    p.world.advance(1);
    p.report(Some(paused_15.clone()));
    p.expect_relay(paused_15);
    p.world.advance(799);
    p.report(Some(json!({"position": 20.0, "play_state": "paused"})));
    p.expect_dropped("an update 799 ms after a relayed one");
    p.report(Some(json!({"position": 20.0, "play_state": "playing"})));
    p.expect_relay(json!({"position": 20.0, "play_state": "playing"}));
}
