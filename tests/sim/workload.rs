//! Level 1: a seeded workload of many clients driving the `Gateway` (core and both codecs)
//! over virtual time. About a third of the clients speak StreamSync v1 and share rooms with
//! OpenWatchParty clients (joining them by UUID, or creating named rooms the others join by
//! UUID), as members or hosts; their frames are read through `v1_as_owp` so that the same
//! model checks what they believe. Each step draws a weighted action; after it, every frame the gateway emitted
//! is parsed as its recipient would and fed to the model, then the model is compared with the
//! core (`Model::check_step`). The clock only moves through `advance_to`, which stops at every
//! deadline on the way, as the event loop's poll timeout does.

use serde_json::{json, Value};
use tandem::config::CoreConfig;
use tandem::gateway::{Dialect, Gateway, Output};
use tandem::id::ConnId;
use tandem::rng::Rng;
use tandem::time::{Millis, Now};

use super::driver::conn_ids::ConnIds;
use super::model::{Check, Model, PendingPlay, View};

const CLIENTS_MAX: usize = 12;
const MEDIA_ID: &str = "00112233445566778899aabbccddeeff";
/// Markers are positions; positions above 86 400 s are invalid.
const MARKER_MAX: u64 = 86_000;

/// The configuration simulated: production rules, fewer rooms and members to reach limits.
pub fn config() -> CoreConfig {
    CoreConfig {
        rooms_max: 6,
        room_members_max: 5,
        ..CoreConfig::default()
    }
}

/// A client as the workload sees it.
#[derive(Debug)]
struct Client {
    conn: ConnId,
    /// Speaks StreamSync v1 (else OpenWatchParty).
    v1: bool,
    /// Declared `scheduled: true` in an admitted `auth`.
    scheduled: bool,
    /// Replica of the core's per-connection budgets: whether a message is admitted.
    messages: Budget,
    logs: Budget,
}

/// The core's fixed-window rate limit, replicated to know which messages took effect.
#[derive(Debug, Default)]
struct Budget {
    window_start: u64,
    count: u32,
}

impl Budget {
    fn spend(&mut self, now: u64, max: u32) -> bool {
        if now.saturating_sub(self.window_start) >= 1_000 {
            *self = Budget {
                window_start: now,
                count: 0,
            };
        }
        self.count = self.count.saturating_add(1);
        self.count <= max
    }
}

/// One seeded run.
pub struct Sim {
    pub gateway: Gateway,
    pub model: Model,
    config: CoreConfig,
    rng: Rng,
    now: Now,
    clients: Vec<Client>,
    ids: ConnIds,
    /// Next host-command marker per room.
    markers: std::collections::BTreeMap<String, u64>,
    outputs: Vec<Output>,
    pub trace: bool,
    /// Whether clients may change capability inside a room (off with `SIM_NO_CAPS_SWITCH`).
    pub caps_switch: bool,
    /// Messages delivered (for the throughput figure).
    pub delivered: u64,
    /// Messages delivered per type, and error codes, to see what a sweep exercised.
    pub kinds: std::collections::BTreeMap<String, u64>,
    /// Every delivery (recipient and bytes) folded into one number: two runs with the same
    /// digest sent the same frames to the same connections in the same order.
    pub digest: u64,
    /// Compacts the gateway's tables every this many steps (0: never); compaction must not
    /// change anything observable.
    pub compact_every: u64,
    steps: u64,
}

impl Sim {
    /// A run of `seed`; `trace` prints every action and delivery.
    pub fn new(seed: u64, trace: bool) -> Sim {
        let config = config();
        Sim {
            gateway: Gateway::new(config.clone(), seed),
            model: Model::default(),
            config,
            rng: Rng::new(seed ^ 0x5EED),
            now: super::driver::origin(),
            clients: Vec::new(),
            ids: ConnIds::default(),
            markers: Default::default(),
            outputs: Vec::new(),
            trace,
            caps_switch: std::env::var_os("SIM_NO_CAPS_SWITCH").is_none(),
            delivered: 0,
            kinds: Default::default(),
            digest: 0xCBF2_9CE4_8422_2325,
            compact_every: 0,
            steps: 0,
        }
    }

    /// One weighted action, then every check.
    pub fn step(&mut self) -> Check {
        let roll = self.rng.below(100);
        match roll {
            0..=7 => self.connect(),
            8..=11 => self.disconnect(),
            12..=17 => {
                let delta = self.rng.below(300);
                self.advance_by(delta)
            }
            18..=21 => {
                let next = self
                    .gateway
                    .next_deadline()
                    .map_or(0, |d| d.since(self.now.mono));
                self.advance_by(next)
            }
            22..=23 => {
                let delta = 1_000 + self.rng.below(4_000);
                self.advance_by(delta)
            }
            24 => self.burst(),
            _ => self.client_action(),
        }?;
        self.steps += 1;
        if self.compact_every > 0 && self.steps % self.compact_every == 0 {
            self.note(format_args!("compact"));
            self.gateway.compact();
        }
        let (now, interval) = (self.now.mono.0, self.config.room_list_interval_ms);
        self.model.check_step(self.gateway.core(), now, interval)
    }

    fn connect(&mut self) -> Check {
        if self.clients.len() >= CLIENTS_MAX {
            return Ok(());
        }
        let conn = self.ids.fresh();
        let v1 = self.rng.below(3) == 0;
        self.clients.push(Client {
            conn,
            v1,
            scheduled: false,
            messages: Budget::default(),
            logs: Budget::default(),
        });
        self.model.views.insert(
            conn,
            View {
                v1,
                ..View::default()
            },
        );
        self.note(format_args!(
            "{conn} connects{}",
            if v1 { " (v1)" } else { "" }
        ));
        let dialect = if v1 { Dialect::V1 } else { Dialect::Owp };
        self.gateway
            .open(self.now, conn, dialect, &mut self.outputs);
        self.deliver()
    }

    fn disconnect(&mut self) -> Check {
        if self.clients.is_empty() {
            return Ok(());
        }
        let client = self
            .clients
            .remove(self.rng.below(self.clients.len() as u64) as usize);
        self.model.views.remove(&client.conn);
        self.ids.release(client.conn);
        self.note(format_args!("{} disconnects", client.conn));
        self.gateway.close(self.now, client.conn, &mut self.outputs);
        self.deliver()?;
        self.model.forget_closed_rooms(self.gateway.core());
        Ok(())
    }

    /// Moves the clock forward, stopping at every deadline on the way.
    fn advance_by(&mut self, delta: u64) -> Check {
        let target = self.now.mono + delta;
        self.note(format_args!("advance {delta} ms to {}", target.0));
        // Bounded: each pass moves the clock to a later deadline or stops.
        for _ in 0..100_000 {
            let Some(next) = self.gateway.next_deadline().filter(|&d| d <= target) else {
                break;
            };
            self.advance_to(next.max(self.now.mono))?;
        }
        self.advance_to(target)
    }

    fn advance_to(&mut self, at: Millis) -> Check {
        self.now = self.now.plus(at.since(self.now.mono));
        self.gateway.advance(self.now, &mut self.outputs);
        self.deliver()?;
        match self.gateway.next_deadline() {
            Some(next) if next <= self.now.mono => Err(format!(
                "next deadline {next:?} not after {:?}",
                self.now.mono
            )),
            _ => Ok(()),
        }
    }

    /// One client sends a burst of list requests and pings, past the rate limit.
    fn burst(&mut self) -> Check {
        if self.clients.is_empty() {
            return Ok(());
        }
        let who = self.rng.below(self.clients.len() as u64) as usize;
        for i in 0..35 {
            let message = if i % 2 == 0 {
                json!({"type": "list_rooms"})
            } else {
                json!({"type": "ping", "payload": {"client_ts": i}})
            };
            self.send(who, &message.to_string())?;
        }
        Ok(())
    }

    /// A message from a random client: what a stock or scheduling client would send, or junk.
    fn client_action(&mut self) -> Check {
        if self.clients.is_empty() {
            return self.connect();
        }
        let who = self.pick_actor();
        let conn = self.clients[who].conn;
        let room = self.model.views[&conn].room.clone();
        let is_host = room
            .as_deref()
            .is_some_and(|r| self.host_of(r) == Some(conn));
        if self.clients[who].v1 {
            return self.v1_action(who, room, is_host);
        }
        let roll = self.rng.below(100);
        match roll {
            0..=5 => self.identify(who),
            6..=12 => {
                let media = self.rng.below(3) > 0;
                let name = format!("room {}", self.rng.below(100));
                let mut payload = json!({"name": name, "start_pos": self.rng.below(100)});
                if media {
                    payload["media_id"] = json!(MEDIA_ID);
                }
                self.send(
                    who,
                    &json!({"type": "create_room", "payload": payload}).to_string(),
                )
                .map(|_| ())
            }
            13..=22 => self.join(who, room.as_deref()),
            23..=26 => self.send(who, r#"{"type":"leave_room"}"#).map(|_| ()),
            27..=34 => {
                let name = if self.rng.below(8) == 0 {
                    Some("0f8fad5b-d9cb-469f-a165-70867728950e".into())
                } else {
                    room
                };
                self.send(who, &json!({"type": "ready", "room": name}).to_string())
                    .map(|_| ())
            }
            35..=59 if is_host => self.host_command(who, &room.unwrap_or_default()),
            35..=59 => self.player_event_from_member(who, room),
            60..=67 => self.state_update(who, room),
            68..=75 => self.chat(who, room),
            76..=79 => self
                .send(
                    who,
                    &json!({"type": "ping", "room": room, "payload": {"client_ts": 5}}).to_string(),
                )
                .map(|_| ()),
            80..=82 => self.send(who, r#"{"type":"list_rooms"}"#).map(|_| ()),
            83..=85 => self
                .send(
                    who,
                    r#"{"type":"client_log","payload":{"category":"SYNC","message":"drift"}}"#,
                )
                .map(|_| ()),
            _ => self.junk(who),
        }
    }

    /// What a v1 client sends: join (a room that exists, by UUID, or a named one, created if
    /// need be, sometimes under a user id another member holds: a seat take-over), leave,
    /// chat, playback state (a host's carries a fresh marker), content, signals, junk.
    fn v1_action(&mut self, who: usize, room: Option<String>, is_host: bool) -> Check {
        let request = |kind: &str, payload: Value| {
            json!({"v": 1, "type": kind, "requestId": "r", "payload": payload}).to_string()
        };
        let room_id = room.clone().unwrap_or_else(|| "party".to_string());
        match self.rng.below(100) {
            0..=24 => {
                let rooms: Vec<String> = self
                    .gateway
                    .core()
                    .room_list()
                    .iter()
                    .map(|r| r.id.to_string())
                    .collect();
                let target = match self.rng.below(4) {
                    0 => ["party", "den"][self.rng.below(2) as usize].to_string(),
                    _ if !rooms.is_empty() => {
                        rooms[self.rng.below(rooms.len() as u64) as usize].clone()
                    }
                    _ => "party".to_string(),
                };
                let user = format!("u{}", self.rng.below(6));
                let payload = json!({"roomId": target,
                                     "client": {"userId": user, "displayName": user}});
                self.send(who, &request("room/join", payload)).map(|_| ())
            }
            25..=31 => self
                .send(who, &request("room/leave", json!({"roomId": room_id})))
                .map(|_| ()),
            32..=41 => {
                let text = format!("hi {}", self.rng.below(1_000));
                let payload = json!({"roomId": room_id, "text": text});
                self.send(who, &request("chat/send", payload)).map(|_| ())
            }
            42..=76 if is_host => {
                let next = self.markers.entry(room_id.clone()).or_insert(1);
                let marker = *next;
                if marker > MARKER_MAX {
                    return Ok(());
                }
                *next += 1;
                let playing = self.rng.below(3) > 0;
                let payload = json!({"roomId": room_id,
                                     "state": {"playing": playing, "positionSec": marker,
                                               "hostTsMs": 1_700_000_000_000u64}});
                // A state that agrees with the room clock becomes a report and carries no
                // command to anyone; one that does not is a command with this marker.
                if self.admit(who, false) {
                    self.model.host_command(&room_id, marker);
                }
                self.deliver_text(who, &request("watch/playback_state", payload))
            }
            42..=76 => {
                let payload = json!({"roomId": room_id,
                                     "state": {"playing": true, "positionSec": 1}});
                self.send(who, &request("watch/playback_state", payload))
                    .map(|_| ())
            }
            77..=84 => {
                let content = [MEDIA_ID, "https://lan/film.mkv"][self.rng.below(2) as usize];
                let payload = json!({"roomId": room_id, "contentId": content});
                self.send(who, &request("watch/set_content", payload))
                    .map(|_| ())
            }
            85..=92 => {
                let to = format!("u{}", self.rng.below(6));
                let payload = json!({"roomId": room_id, "toUserId": to, "sdp": "v=0"});
                self.send(who, &request("webrtc/offer", payload))
                    .map(|_| ())
            }
            _ => {
                let junk = [
                    r#"{"v":2,"type":"room/join","payload":{}}"#,
                    r#"{"v":1,"type":"teleport","requestId":"x","payload":{}}"#,
                    "not json",
                ];
                let pick = self.rng.below(3) as usize;
                self.send(who, junk[pick]).map(|_| ())
            }
        }
    }

    /// A random client; a third of the time a host, so that rooms see playback commands.
    fn pick_actor(&mut self) -> usize {
        let any = self.rng.below(self.clients.len() as u64) as usize;
        if self.rng.below(3) > 0 {
            return any;
        }
        let hosts: Vec<usize> = (0..self.clients.len())
            .filter(|&i| {
                let conn = self.clients[i].conn;
                let room = self.model.views[&conn].room.as_deref();
                room.is_some_and(|r| self.host_of(r) == Some(conn))
            })
            .collect();
        if hosts.is_empty() {
            return any;
        }
        hosts[self.rng.below(hosts.len() as u64) as usize]
    }

    /// `auth`. Clients may declare or change their capability anywhere, in a room too
    /// (`SIM_NO_CAPS_SWITCH=1` keeps them to the lobby).
    fn identify(&mut self, who: usize) -> Check {
        let mut scheduled = [Some(true), Some(false), None][self.rng.below(3) as usize];
        let in_room = self.model.views[&self.clients[who].conn].room.is_some();
        if in_room && !self.caps_switch {
            scheduled = None;
        }
        let mut payload = json!({"user_name": format!("user{}", self.rng.below(50))});
        if let Some(scheduled) = scheduled {
            payload["scheduled"] = json!(scheduled);
        }
        if self.rng.below(2) == 0 {
            payload["token"] = json!("t");
        }
        let admitted = self.send(
            who,
            &json!({"type": "auth", "payload": payload}).to_string(),
        )?;
        let conn = self.clients[who].conn;
        if let (true, Some(scheduled)) = (admitted, scheduled) {
            if self.clients[who].scheduled != scheduled {
                // A host changing capability changes who gets a pending play first; stop
                // tracking its plays rather than model that.
                if let Some(room) = self.model.views[&conn].room.clone() {
                    self.model.pending.remove(&room);
                }
            }
            self.clients[who].scheduled = scheduled;
        }
        Ok(())
    }

    fn join(&mut self, who: usize, current: Option<&str>) -> Check {
        let rooms: Vec<String> = self
            .gateway
            .core()
            .room_list()
            .iter()
            .map(|r| r.id.to_string())
            .collect();
        let target = match self.rng.below(10) {
            0 => "0f8fad5b-d9cb-469f-a165-70867728950e".to_string(),
            1 if current.is_some() => current.unwrap_or_default().to_string(),
            _ if !rooms.is_empty() => rooms[self.rng.below(rooms.len() as u64) as usize].clone(),
            _ => "no-such-room".to_string(),
        };
        let message =
            json!({"type": "join_room", "room": target, "payload": {"user_name": "joiner"}});
        self.send(who, &message.to_string()).map(|_| ())
    }

    /// The host's play, pause, seek or buffering, carrying a fresh marker as its position.
    fn host_command(&mut self, who: usize, room: &str) -> Check {
        let action = ["play", "play", "pause", "seek", "buffering"][self.rng.below(5) as usize];
        let next = self.markers.entry(room.to_string()).or_insert(1);
        let marker = *next;
        if marker > MARKER_MAX {
            return Ok(());
        }
        *next += 1;
        let mut payload = json!({"action": action, "position": marker});
        if self.rng.below(3) == 0 {
            payload["play_state"] = json!(if action == "play" {
                "playing"
            } else {
                "paused"
            });
        }
        let message = json!({"type": "player_event", "room": room, "payload": payload});
        let scheduled = self.clients[who].scheduled;
        if !self.admit(who, false) {
            return self.deliver_text(who, &message.to_string());
        }
        self.model.host_command(room, marker);
        if scheduled && action == "play" {
            let deadline = self.now.mono.0 + self.config.ready_wait_ms_max;
            self.model
                .pending
                .entry(room.to_string())
                .or_default()
                .push(PendingPlay { marker, deadline });
        }
        self.deliver_text(who, &message.to_string())
    }

    fn player_event_from_member(&mut self, who: usize, room: Option<String>) -> Check {
        let message = json!({"type": "player_event", "room": room, "payload": {"action": "pause", "position": 1}});
        self.send(who, &message.to_string()).map(|_| ())
    }

    fn state_update(&mut self, who: usize, room: Option<String>) -> Check {
        let state = if self.rng.below(2) == 0 {
            "playing"
        } else {
            "paused"
        };
        let position = self.rng.below(5_000) as f64 / 10.0;
        let payload = json!({"position": position, "play_state": state});
        let message = json!({"type": "state_update", "room": room, "payload": payload});
        self.send(who, &message.to_string()).map(|_| ())
    }

    fn chat(&mut self, who: usize, room: Option<String>) -> Check {
        let text = match self.rng.below(10) {
            0 => "   ".to_string(),
            1 => "x".repeat(501),
            2 => "y".repeat(4_000),
            _ => format!("hello {}", self.rng.below(1_000)),
        };
        let room = if self.rng.below(10) == 0 { None } else { room };
        self.send(
            who,
            &json!({"type": "chat_message", "room": room, "payload": {"text": text}}).to_string(),
        )
        .map(|_| ())
    }

    /// Malformed, unknown, binary and oversize messages.
    fn junk(&mut self, who: usize) -> Check {
        let conn = self.clients[who].conn;
        match self.rng.below(6) {
            0 => self.send(who, "not json at all").map(|_| ()),
            1 => self
                .send(who, r#"{"type":"teleport","payload":{}}"#)
                .map(|_| ()),
            2 => self.send(who, r#"{"type":"join_room"}"#).map(|_| ()),
            3 => self
                .send(
                    who,
                    &format!(
                        r#"{{"type":"auth","payload":{{"user_name":"{}"}}}}"#,
                        "n".repeat(3_000)
                    ),
                )
                .map(|_| ()),
            4 => self.send(who, &"[".repeat(200)).map(|_| ()),
            _ => {
                self.admit(who, false);
                self.note(format_args!("{conn} sends binary"));
                self.gateway.binary(self.now, conn, &mut self.outputs);
                self.deliver()
            }
        }
    }

    /// Sends text from client `who`; returns whether the core admitted it.
    fn send(&mut self, who: usize, text: &str) -> Result<bool, String> {
        let is_log = text.contains(r#""type":"client_log""#);
        let admitted = self.admit(who, is_log);
        self.deliver_text(who, text)?;
        Ok(admitted)
    }

    fn admit(&mut self, who: usize, is_log: bool) -> bool {
        let now = self.now.mono.0;
        let client = &mut self.clients[who];
        if is_log {
            client
                .logs
                .spend(now, self.config.client_logs_per_second_max)
        } else {
            client
                .messages
                .spend(now, self.config.messages_per_second_max)
        }
    }

    /// Hands `text` to the gateway as `who`'s message and delivers what comes out. A client
    /// that left its room silently (leave, or a refused create) is told nothing: its view
    /// follows the core's answer.
    fn deliver_text(&mut self, who: usize, text: &str) -> Check {
        let conn = self.clients[who].conn;
        self.note(format_args!("{conn} sends {}", abbreviate(text)));
        self.gateway.text(self.now, conn, text, &mut self.outputs);
        self.deliver()?;
        if text.contains("\"leave_room\"")
            || text.contains("\"create_room\"")
            || text.contains("\"room/leave\"")
        {
            let actual = self.gateway.core().room_of(conn).map(|r| r.to_string());
            let view = self.model.views.get_mut(&conn).ok_or("sender closed")?;
            if actual.is_none() {
                view.room = None;
            }
        }
        self.model.forget_closed_rooms(self.gateway.core());
        Ok(())
    }

    /// Parses every frame the last call produced and feeds it to its recipient's view.
    fn deliver(&mut self) -> Check {
        let now = self.now.mono.0;
        let mut displaced = Vec::new();
        for output in std::mem::take(&mut self.outputs) {
            let (conn, text) = match output {
                Output::Send { conn, text } | Output::SendLatest { conn, text, .. } => (conn, text),
                // A seat taken over: the engine would close the older connection.
                Output::Close { conn, .. } => {
                    displaced.push(conn);
                    continue;
                }
                _ => continue,
            };
            self.delivered += 1;
            self.digest = fnv1a(self.digest, &conn.index.to_le_bytes());
            self.digest = fnv1a(self.digest, text.as_str().as_bytes());
            let message: Value =
                serde_json::from_str(text.as_str()).map_err(|e| format!("{e}: {text}"))?;
            let v1 = self.clients.iter().any(|c| c.conn == conn && c.v1);
            let message = if v1 {
                match v1_as_owp(&message) {
                    Some(message) => message,
                    None => continue,
                }
            } else {
                message
            };
            let kind = match message["payload"]["code"].as_str() {
                Some(code) => code.to_string(),
                None => message["type"].as_str().unwrap_or("?").to_string(),
            };
            *self.kinds.entry(kind).or_default() += 1;
            if self.trace {
                println!("    -> {conn} {}", abbreviate(text.as_str()));
            }
            if !self.model.views.contains_key(&conn) {
                return Err(format!("{conn} got {message} after it was closed"));
            }
            self.model
                .receive(conn, &message, self.gateway.core(), now)?;
        }
        for conn in displaced {
            self.note(format_args!("{conn} is closed (seat taken over)"));
            self.clients.retain(|c| c.conn != conn);
            self.model.views.remove(&conn);
            self.ids.release(conn);
            self.gateway.close(self.now, conn, &mut self.outputs);
            if self
                .outputs
                .iter()
                .any(|o| matches!(o, Output::Send { .. } | Output::SendLatest { .. }))
            {
                return Err(format!("closing displaced {conn} told someone something"));
            }
            self.outputs.clear();
        }
        Ok(())
    }

    fn host_of(&self, room: &str) -> Option<ConnId> {
        tandem::id::RoomId::parse(room).and_then(|id| self.gateway.core().host(id))
    }

    fn note(&self, what: std::fmt::Arguments<'_>) {
        if self.trace {
            println!("  t={} {what}", self.now.mono.0);
        }
    }
}

/// A v1 frame as the model reads it: the OpenWatchParty message it stands for (rooms named
/// by UUID), or `None` for what the model does not track (hello, acks, errors, invites).
/// Playback states are checked for their room only: v1 does not tell a command from a
/// report, so their markers are checked on the OpenWatchParty side.
fn v1_as_owp(message: &Value) -> Option<Value> {
    let room = message["payload"]["roomId"].as_str().map(|name| {
        tandem::id::RoomId::from_name(name).map_or_else(|| name.to_string(), |id| id.to_string())
    });
    let kind = match message["type"].as_str()? {
        "room/joined" => {
            return Some(json!({"type": "room_state", "room": room,
                               "payload": {"host_id": null, "state": {"play_state": "paused"}}}))
        }
        "room/closed" => "room_closed",
        "room/peer_joined" => "participants_update",
        "room/peer_left" => "client_left",
        "chat/message" | "watch/content" | "watch/playback_state" | "webrtc/offer" => {
            "chat_message"
        }
        _ => return None,
    };
    Some(json!({"type": kind, "room": room}))
}

fn abbreviate(text: &str) -> String {
    if text.len() <= 160 {
        return text.to_string();
    }
    let cut = (0..=160)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    hash
}
