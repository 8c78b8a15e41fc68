//! `core_ops`: the input is a program of core operations (quinn's `streams` style): open and
//! close connections (stale ids included), send commands built from bytes and put through
//! `owp::encode_command` and `owp::decode`, send raw text, and move the clock by small or
//! large steps or to `next_deadline()`.
//!
//! After every operation: `check_invariants()`; every event goes to an open connection; an
//! event about a room goes only to a member of that room; after `advance(now)`,
//! `next_deadline()` is later than `now`. At the end, closing every connection and letting
//! every grace run out empties the core and leaves no timer behind.

use tandem::config::CoreConfig;
use tandem::core::types::{
    Capabilities, Command, Control, ControlAction, Credential, DecodeError, ErrorCode, Event,
    Identity, Json, Outbox, Pass, PlayState, Relay, Report, ResumeKey, SignalKind,
};
use tandem::core::Core;
use tandem::id::{ConnId, RoomId};
use tandem::owp;
use tandem::time::Now;

use super::bytes::Bytes;
use super::driver::conn_ids::ConnIds;

const MEDIA_ID: &str = "0123456789abcdef0123456789ABCDEF";

/// Checks every property on one input.
pub fn check(data: &[u8]) {
    let mut input = Bytes::new(data);
    let mut harness = Harness::new(config(input.byte()), u64::from(input.byte()));
    // Bounded by the input: every operation consumes at least one byte.
    while !input.is_empty() {
        harness.step(&mut input);
    }
    harness.wind_down();
}

/// Small limits, so that fuzz inputs reach them (rooms full, rate limited, ready waits).
fn config(byte: u8) -> CoreConfig {
    CoreConfig {
        rooms_max: 1 + (byte & 3) as usize,
        room_members_max: 2 + (byte >> 2 & 3) as usize,
        messages_per_second_max: if byte & 0x10 != 0 { 4 } else { 30 },
        client_logs_per_second_max: 2,
        ready_wait_ms_max: if byte & 0x20 != 0 { 50 } else { 2_000 },
        auth_enabled: byte & 0x40 != 0,
        rooms_per_identity_max: 1 + (byte >> 7) as usize,
        ..CoreConfig::default()
    }
}

struct Harness {
    core: Core,
    now: Now,
    open: Vec<ConnId>,
    stale: Vec<ConnId>,
    ids: ConnIds,
    /// Every room id seen in a `room_state`, including rooms since closed.
    rooms: Vec<String>,
    /// Connections opened so far (each got the resume digest `d<n>`).
    opened: usize,
    out: Outbox,
}

impl Harness {
    fn new(config: CoreConfig, seed: u64) -> Harness {
        Harness {
            core: Core::new(config, seed),
            now: super::driver::origin(),
            open: Vec::new(),
            stale: Vec::new(),
            ids: ConnIds::default(),
            rooms: Vec::new(),
            opened: 0,
            out: Outbox::default(),
        }
    }

    fn step(&mut self, input: &mut Bytes<'_>) {
        match input.byte() % 14 {
            0 | 1 => self.open(input.flag()),
            2 => {
                if let Some(conn) = self.pick_open(input) {
                    self.close(conn);
                }
            }
            3 => {
                // Closing a stale id must not touch the connection now in its slot.
                let conn = self.pick_stale(input);
                self.core.close(self.now, conn, &mut self.out);
            }
            4..=6 => {
                let conn = self.pick_sender(input);
                let command = build_command(input, &self.rooms);
                if input.flag() {
                    self.send_command(conn, &command);
                } else {
                    // As the edge hands it over: credentials and invites already checked.
                    self.core
                        .receive(self.now, conn, Ok(command), &mut self.out);
                }
            }
            7 => {
                let conn = self.pick_sender(input);
                let text = input.text();
                self.core
                    .receive(self.now, conn, owp::decode(&text), &mut self.out);
            }
            8 => {
                let conn = self.pick_sender(input);
                self.core
                    .receive(self.now, conn, Err(DecodeError::Binary), &mut self.out);
            }
            9 => self.advance(u64::from(input.byte())),
            10 => self.advance(u64::from(input.byte()) * 1_000 + u64::from(input.byte())),
            11 => {
                let next = self
                    .core
                    .next_deadline()
                    .map_or(0, |d| d.since(self.now.mono));
                self.advance(next);
            }
            13 => {
                // Releasing table capacity must keep every invariant.
                self.core.compact();
            }
            _ => {
                // A burst of the same command, to reach the rate limit.
                let conn = self.pick_sender(input);
                let command = build_command(input, &self.rooms);
                for _ in 0..input.below(40) {
                    self.send_command(conn, &command);
                    self.verify();
                }
            }
        }
        self.verify();
    }

    fn open(&mut self, follows_schedule: bool) {
        let conn = self.ids.fresh();
        self.open.push(conn);
        self.core.open(
            self.now,
            conn,
            Capabilities {
                follows_schedule,
                rejoins_by_naming: !follows_schedule,
            },
            Some(ResumeKey {
                token: format!("token{}", self.opened),
                digest: format!("d{}", self.opened),
            }),
            &mut self.out,
        );
        self.opened += 1;
        let hello = self
            .out
            .sends
            .first()
            .map(|&(to, i)| (to, &self.out.events[i as usize]));
        assert!(
            matches!(hello, Some((to, Event::Hello { .. })) if to == conn),
            "no hello first"
        );
    }

    fn close(&mut self, conn: ConnId) {
        self.open.retain(|&c| c != conn);
        self.stale.push(conn);
        self.ids.release(conn);
        self.core.close(self.now, conn, &mut self.out);
    }

    fn send_command(&mut self, conn: ConnId, command: &Command) {
        let text = owp::encode_command(command, None, self.now.wall.0);
        self.core
            .receive(self.now, conn, owp::decode(&text), &mut self.out);
    }

    fn advance(&mut self, delta: u64) {
        self.now = self.now.plus(delta);
        self.core.advance(self.now, &mut self.out);
        let next = self.core.next_deadline();
        assert!(
            next.is_none_or(|d| d > self.now.mono),
            "next deadline {next:?} not after {:?}",
            self.now.mono
        );
    }

    fn pick_open(&self, input: &mut Bytes<'_>) -> Option<ConnId> {
        (!self.open.is_empty()).then(|| self.open[input.below(self.open.len())])
    }

    fn pick_stale(&self, input: &mut Bytes<'_>) -> ConnId {
        let never = ConnId {
            index: 1_000 + input.byte() as u32,
            generation: u32::MAX,
        };
        if self.stale.is_empty() {
            return never;
        }
        self.stale[input.below(self.stale.len())]
    }

    /// Usually an open connection, sometimes a closed one (whose messages must be ignored).
    fn pick_sender(&self, input: &mut Bytes<'_>) -> ConnId {
        let byte = input.byte();
        match self.pick_open(input) {
            Some(conn) if byte < 240 => conn,
            _ => self.pick_stale(input),
        }
    }

    /// Checks what the last call produced, then empties the outbox.
    fn verify(&mut self) {
        for &(conn, index) in &self.out.sends {
            assert!(
                self.open.contains(&conn),
                "event for a connection that is not open: {conn}"
            );
            let event = &self.out.events[index as usize];
            if let Event::RoomState { room, .. } = event {
                let id = room.to_string();
                if !self.rooms.contains(&id) {
                    self.rooms.push(id);
                }
            }
            if let Some(room) = room_of_event(event) {
                let member = self.core.room_of(conn);
                assert_eq!(
                    member,
                    Some(room),
                    "{event:?} sent to {conn}, a member of {member:?}"
                );
            }
        }
        self.out.clear();
        self.core.check_invariants();
    }

    fn wind_down(&mut self) {
        for conn in self.open.clone() {
            self.close(conn);
            self.verify();
        }
        // Seats wait in grace for their connections; once every grace is over, nothing is
        // left.
        assert_eq!(
            self.core.stats().sessions,
            0,
            "a session outlived its connection"
        );
        self.advance(400_000_000);
        let stats = self.core.stats();
        assert_eq!(
            (stats.sessions, stats.rooms),
            (0, 0),
            "closing everything left state behind"
        );
        assert_eq!(
            self.core.next_deadline(),
            None,
            "a timer outlived every connection"
        );
        assert!(self.out.sends.is_empty(), "events with nobody connected");
    }
}

/// The room an event is about, for events that only members may receive.
fn room_of_event(event: &Event) -> Option<RoomId> {
    match event {
        Event::RoomState { room, .. }
        | Event::Participants { room, .. }
        | Event::Control { room, .. }
        | Event::State { room, .. }
        | Event::ClientLeft { room, .. }
        | Event::Chat { room, .. } => Some(*room),
        _ => None,
    }
}

/// A command as a client could send it, from the input.
pub fn build_command(input: &mut Bytes<'_>, rooms: &[String]) -> Command {
    let room = |input: &mut Bytes<'_>| -> Option<String> {
        match input.below(rooms.len() + 3) {
            0 => None,
            1 => Some("not-a-room".to_string()),
            2 => Some("0f8fad5b-d9cb-469f-a165-70867728950e".to_string()),
            i => Some(rooms[i - 3].clone()),
        }
    };
    let maybe_text = |input: &mut Bytes<'_>| input.flag().then(|| input.text());
    match input.below(15) {
        0 => Command::Identify {
            user_name: maybe_text(input),
            user_id: maybe_text(input),
            follows_schedule: input.pick(&[None, Some(true), Some(false)]),
            credential: credential(input),
        },
        1 => Command::ListRooms,
        2 => Command::CreateRoom {
            name: maybe_text(input),
            user_name: maybe_text(input),
            start_position: input.pick(&[0.0, 12.5, 86_400.0]),
            media_id: input.flag().then(|| MEDIA_ID.to_string()),
            content: input.flag().then(|| "file:clip.webm#1024".to_string()),
            private: input.flag(),
            credential: credential(input),
        },
        3 => Command::JoinRoom {
            room: room(input).unwrap_or_default(),
            user_name: maybe_text(input),
            credential: credential(input),
            invite: invite(input, rooms),
        },
        4 if input.flag() => Command::Resume {
            // A digest some connection was given (its seat may be in grace, held, or gone).
            token: format!("d{}", input.below(16)),
        },
        4 if input.flag() => Command::CreateInvite {
            room: room(input),
            expires_in: input.pick(&[None, Some(1), Some(u64::MAX)]),
        },
        4 => Command::LeaveRoom,
        5 => Command::Ready { room: room(input) },
        6 | 7 => Command::Control {
            room: room(input),
            control: build_control(input),
        },
        8 => Command::Report {
            room: room(input),
            report: build_report(input),
        },
        9 => Command::Ping {
            room: room(input),
            echo: input.flag().then(Json::empty_object),
        },
        10 => {
            let text = input.pick(&["hi".to_string(), " ".to_string(), "x".repeat(501)]);
            let text = if input.flag() { input.text() } else { text };
            Command::Chat {
                room: room(input),
                text,
            }
        }
        11 => Command::ClientLog {
            category: maybe_text(input),
            message: maybe_text(input),
        },
        // The second dialect's commands: enter (create or join, maybe taking a seat over by
        // user id), content, signals.
        12 => {
            let alias = match room(input) {
                Some(id) if input.flag() => id,
                _ => input.pick(&["party".to_string(), "den".to_string()]),
            };
            let id = RoomId::from_name(&alias)
                .unwrap_or_else(|| RoomId::from_name("party").expect("a valid name"));
            Command::Enter {
                room: id,
                alias,
                user_id: Some(input.pick(&["u1".to_string(), "u2".to_string()])),
                user_name: maybe_text(input),
                credential: credential(input),
                invite: invite(input, rooms),
            }
        }
        13 if input.flag() => Command::ForceResync {
            room: room(input),
            position: input.pick(&[0.0, 42.5]),
        },
        13 if input.flag() => Command::ClaimHost { room: room(input) },
        13 if input.flag() => Command::TransferHost {
            room: room(input),
            to: input.pick(&[
                "0f8fad5b-d9cb-469f-a165-70867728950e".to_string(),
                "x".to_string(),
            ]),
        },
        13 => Command::SetContent {
            room: room(input).unwrap_or_default(),
            content_id: input.pick(&[MEDIA_ID.to_string(), "https://lan/x".to_string()]),
        },
        _ => Command::Signal {
            room: room(input).unwrap_or_default(),
            to_user: input.pick(&["u1".to_string(), "u2".to_string(), "anonymous".to_string()]),
            kind: input.pick(&[SignalKind::Offer, SignalKind::Answer, SignalKind::Ice]),
            body: Json::string("sdp"),
        },
    }
}

/// A credential as the edge might hand it over (or an unchecked token, never admitted).
fn credential(input: &mut Bytes<'_>) -> Option<Credential> {
    match input.below(5) {
        0 | 1 => None,
        2 => Some(Credential::Token("t".into())),
        3 => Some(Credential::Refused),
        _ => Some(Credential::Accepted(Identity::Verified {
            subject: input.pick(&["u1".to_string(), "u2".to_string()]),
            name: if input.flag() {
                input.text()
            } else {
                String::new()
            },
        })),
    }
}

/// An invite as the edge might hand it over: for a room seen (right or wrong serial), or
/// refused.
fn invite(input: &mut Bytes<'_>, rooms: &[String]) -> Option<Pass> {
    match input.below(4) {
        0 | 1 => None,
        2 => Some(Pass::Refused(
            input.pick(&[ErrorCode::InviteInvalid, ErrorCode::InviteExpired]),
        )),
        _ => {
            let room = (!rooms.is_empty())
                .then(|| rooms[input.below(rooms.len())].as_str())
                .and_then(RoomId::parse)?;
            Some(Pass::Valid {
                room,
                serial: u64::from(input.byte() & 7),
            })
        }
    }
}

const POSITIONS: [Option<f64>; 6] = [
    None,
    Some(0.0),
    Some(12.5),
    Some(86_400.0),
    Some(-1.0),
    Some(1e9),
];

fn build_control(input: &mut Bytes<'_>) -> Control {
    let action = input.pick(&["play", "pause", "seek", "buffering", "stop"]);
    let position = input.pick(&POSITIONS);
    let play_state = input.pick(&[None, Some("playing"), Some("paused"), Some("bogus")]);
    Control {
        action: ControlAction::parse(action),
        position: position.filter(|p| tandem::core::room::valid_position(*p)),
        play_state: play_state.and_then(PlayState::parse),
        relay: Relay {
            host_ts: input.flag().then_some(1_700_000_000_000),
            action: Some(Json::string(action)),
            position: position.map(Json::number),
            play_state: play_state.map(Json::string),
        },
    }
}

fn build_report(input: &mut Bytes<'_>) -> Report {
    let position = input.pick(&POSITIONS);
    let play_state = input.pick(&[None, Some("playing"), Some("paused"), Some("buffering")]);
    Report {
        has_payload: input.byte() < 230,
        position_number: position,
        position: position.filter(|p| tandem::core::room::valid_position(*p)),
        play_state_text: play_state.map(String::from),
        latency_ms: input.pick(&[None, Some(0), Some(120)]),
        relay: Relay {
            host_ts: None,
            action: None,
            position: position.map(Json::number),
            play_state: play_state.map(Json::string),
        },
    }
}
