//! The core: rooms, membership and playback rules. Pure and deterministic.
//!
//! It performs no I/O, reads no clock and draws no randomness of its own: every call takes
//! `now`, ids come from a PRNG seeded by the caller, and decisions are written into an
//! `Outbox` as dialect-free `Event`s with their recipients. A dialect codec at the edge turns
//! client messages into `Command`s and renders the events.
//!
//! Contract for callers:
//! - `open` a connection before sending it anything, `close` it exactly once.
//! - Call `advance(now)` whenever `next_deadline()` has passed; extra calls are harmless.
//!   After `advance(now)`, `next_deadline()` is `None` or later than `now`.
//! - Within one call, events are appended in the order they must be delivered.

mod playback;
pub mod room;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use slab::Slab;

use crate::config::CoreConfig;
use crate::id::{ConnId, RoomId, SeatId};
use crate::rng::Rng;
use crate::text;
use crate::time::{Millis, Now};
use crate::timer_wheel::TimerWheel;
use room::{Member, RelayFilter, Room, RoomClock};
use types::{
    reason, Capabilities, Command, ControlMessage, CoreTimer, Credential, DecodeError, ErrorCode,
    Event, Identity, Outbox, PlayState, RoomSummary,
};
pub use types::{Listing, Outcome};

/// A fixed-window message budget (the window starts at the first message after the last one
/// ended, as the original's does).
#[derive(Clone, Debug, Default)]
struct Budget {
    window_start: Millis,
    count: u32,
    warned: bool,
}

enum Spend {
    Allow,
    Drop { warn: bool },
}

impl Budget {
    fn spend(&mut self, now: Millis, max: u32) -> Spend {
        if now.since(self.window_start) >= 1_000 {
            *self = Budget {
                window_start: now,
                count: 0,
                warned: false,
            };
        }
        self.count = self.count.saturating_add(1);
        if self.count <= max {
            return Spend::Allow;
        }
        let warn = !self.warned;
        self.warned = true;
        Spend::Drop { warn }
    }
}

/// Which budget a message is spent from, known before it is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A client debug line (its own budget).
    ClientLog,
    /// Anything else.
    Other,
}

/// What the core knows about one open connection.
#[derive(Clone, Debug)]
struct Session {
    conn: ConnId,
    seat: SeatId,
    user_name: String,
    user_id: String,
    /// Slab key of the room this connection is a member of.
    room: Option<usize>,
    caps: Capabilities,
    /// Room-list version this connection last received.
    list_seen: u64,
    /// Room names already answered with `room_closed` (most recent last, bounded), so each
    /// is answered once.
    gone_notified: Vec<u64>,
    messages: Budget,
    client_logs: Budget,
    /// Who it is, as admitted.
    identity: Identity,
}

#[derive(Debug, Default)]
struct ListState {
    version: u64,
    flush_scheduled: bool,
    last_push: Option<Millis>,
    /// Least spacing after the last push, from its size (see `flush_room_list`).
    spacing_ms: u64,
    /// The listing of the latest version computed.
    cache: Option<Arc<Listing>>,
    /// A room list was sent during the current call (`finish` fills it in).
    sent_this_call: bool,
}

/// Counters for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open connections the core knows.
    pub sessions: usize,
    /// Rooms.
    pub rooms: usize,
}

/// All rooms and the sessions in them.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    rng: Rng,
    /// Indexed by `ConnId::index`; the stored `conn` carries the generation.
    sessions: Vec<Option<Session>>,
    session_count: usize,
    rooms: Slab<Room>,
    room_index: BTreeMap<RoomId, usize>,
    timers: TimerWheel<CoreTimer>,
    /// Source of room serials and pending-play epochs.
    serial: u64,
    list: ListState,
    /// Connections sent a room list during the current call.
    list_recipients: Vec<ConnId>,
    /// What became of the command being handled.
    outcome: Outcome,
    now: Now,
}

impl Core {
    /// A core with no rooms. `seed` drives every id it makes.
    pub fn new(config: CoreConfig, seed: u64) -> Core {
        Core {
            config,
            rng: Rng::new(seed),
            sessions: Vec::new(),
            session_count: 0,
            rooms: Slab::new(),
            room_index: BTreeMap::new(),
            timers: TimerWheel::new(),
            serial: 0,
            list: ListState::default(),
            list_recipients: Vec::new(),
            outcome: Outcome::Accepted,
            now: Now::default(),
        }
    }

    /// A connection opened: it gets a seat id, `Hello` and the room list.
    pub fn open(&mut self, now: Now, conn: ConnId, caps: Capabilities, out: &mut Outbox) {
        self.begin(now);
        let index = conn.index as usize;
        if self.sessions.len() <= index {
            self.sessions.resize(index + 1, None);
        }
        debug_assert!(self.sessions[index].is_none(), "conn {conn} opened twice");
        if self.sessions[index].take().is_some() {
            self.session_count -= 1;
        }
        let seat = SeatId(self.rng.uuid());
        self.sessions[index] = Some(Session {
            conn,
            seat,
            user_name: "Anonymous".to_string(),
            user_id: "anonymous".to_string(),
            room: None,
            caps,
            list_seen: 0,
            gone_notified: Vec::new(),
            messages: Budget::default(),
            client_logs: Budget::default(),
            identity: Identity::Anonymous,
        });
        self.session_count += 1;
        out.unicast(conn, Event::Hello { seat });
        self.send_room_list(conn, out);
        self.finish(out);
    }

    /// A message arrived from `conn` (decoded by its dialect, or not): spent from its
    /// budget, then handled.
    pub fn receive(
        &mut self,
        now: Now,
        conn: ConnId,
        message: Result<Command, DecodeError>,
        out: &mut Outbox,
    ) -> Outcome {
        let kind = match message {
            Ok(Command::ClientLog { .. }) => Kind::ClientLog,
            _ => Kind::Other,
        };
        if self.admit(now, conn, kind, out) {
            self.handle(now, conn, message, out)
        } else {
            Outcome::Refused(ErrorCode::RateLimited)
        }
    }

    /// Spends one message of `kind` from `conn`'s budget before it is decoded; false if it
    /// must be dropped unread (the first drop in a window answers `rate_limited`). A dialect
    /// calls this, then decodes and calls `handle`, so a flood past the budget costs no
    /// parsing.
    pub fn admit(&mut self, now: Now, conn: ConnId, kind: Kind, out: &mut Outbox) -> bool {
        self.begin(now);
        let admitted = self.spend(conn, kind, out);
        self.finish(out);
        admitted
    }

    /// When `conn`'s message budget refills, if it sent past it: the shell may stop reading
    /// it until then.
    pub fn over_budget_until(&self, conn: ConnId) -> Option<Millis> {
        let session = self.session(conn)?;
        let budget = &session.messages;
        (budget.count > self.config.messages_per_second_max).then(|| budget.window_start + 1_000)
    }

    /// Handles a message already admitted by `admit`, and says what became of it.
    pub fn handle(
        &mut self,
        now: Now,
        conn: ConnId,
        message: Result<Command, DecodeError>,
        out: &mut Outbox,
    ) -> Outcome {
        self.begin(now);
        if self.session(conn).is_none() {
            self.refuse(ErrorCode::NotInRoom);
        } else {
            match message {
                Ok(command) => self.dispatch(conn, command, out),
                Err(error) => {
                    let code = match error {
                        DecodeError::Invalid => ErrorCode::InvalidMessage,
                        DecodeError::UnknownType => ErrorCode::UnknownType,
                        DecodeError::Binary => ErrorCode::BinaryUnsupported,
                    };
                    self.error(conn, None, code, out);
                }
            }
        }
        let outcome = self.outcome;
        self.finish(out);
        outcome
    }

    /// Releases table capacity left over from a crowd that has gone: trailing session slots,
    /// room slots, timer slots. Observable behaviour is unchanged.
    pub fn compact(&mut self) {
        while matches!(self.sessions.last(), Some(None)) {
            self.sessions.pop();
        }
        self.sessions.shrink_to_fit();
        self.rooms.shrink_to_fit();
        self.timers.compact();
        self.list_recipients.shrink_to_fit();
        for (_, room) in self.rooms.iter_mut() {
            room.compact();
        }
    }

    /// `conn` is gone: it leaves its room (closing it if it hosted it).
    pub fn close(&mut self, now: Now, conn: ConnId, out: &mut Outbox) {
        self.begin(now);
        if self.session(conn).is_some() {
            self.leave_current(conn, out);
            self.sessions[conn.index as usize] = None;
            self.session_count -= 1;
        }
        self.finish(out);
    }

    /// Fires every timer due at `now`.
    pub fn advance(&mut self, now: Now, out: &mut Outbox) {
        self.begin(now);
        let mut due = Vec::new();
        self.timers.advance(now.mono, &mut due);
        for timer in due {
            match timer {
                CoreTimer::RoomListFlush => self.flush_room_list(out),
                CoreTimer::ReadyDeadline { room, epoch } => self.ready_deadline(room, epoch, out),
                CoreTimer::HeldDue { room, serial } => self.deliver_held(room, serial, out),
            }
        }
        self.finish(out);
        debug_assert!(self.next_deadline().is_none_or(|next| next > now.mono));
    }

    /// The server is stopping: every member is told its room is closing.
    pub fn shutdown(&mut self, now: Now, out: &mut Outbox) {
        self.begin(now);
        // Closed for real, so the disconnects that follow tell nobody anything more.
        let keys: Vec<usize> = self.room_index.values().copied().collect();
        for key in keys {
            self.close_room(key, reason::SHUTDOWN, None, out);
        }
        self.finish(out);
    }

    /// The earliest instant `advance` has work.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.next_deadline()
    }

    /// Whether clients must authenticate (never, in this version).
    pub fn auth_enabled(&self) -> bool {
        self.config.auth_enabled
    }

    /// The current room list version (changes whenever the list's content does).
    pub fn list_version(&self) -> u64 {
        self.list.version
    }

    /// Every room, in creation order (for tests and checks; clients get `listing`).
    pub fn room_list(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<(u64, RoomSummary)> = self
            .rooms
            .iter()
            .map(|(_, room)| (room.serial, summary(room)))
            .collect();
        rooms.sort_by_key(|(serial, _)| *serial);
        rooms.into_iter().map(|(_, summary)| summary).collect()
    }

    /// The room list as clients get it: rooms with more members first, then the newest, at
    /// most `room_list_max` entries whose size (`RoomSummary::bytes_max`) adds up to at most
    /// `room_list_bytes_max`, with the number of rooms that exist.
    pub fn listing(&self) -> Listing {
        let mut order: Vec<(usize, u64, usize)> = self
            .rooms
            .iter()
            .map(|(key, room)| (room.members.len(), room.serial, key))
            .collect();
        order.sort_unstable_by_key(|&(members, serial, _)| std::cmp::Reverse((members, serial)));
        let mut listing = Listing {
            version: self.list.version,
            rooms: Vec::new(),
            total: self.rooms.len(),
            bytes_max: LISTING_ENVELOPE_BYTES,
        };
        for (_, _, key) in order.into_iter().take(self.config.room_list_max) {
            let Some(room) = self.rooms.get(key) else {
                continue;
            };
            let entry = summary(room);
            let bytes = listing.bytes_max.saturating_add(entry.bytes_max());
            if bytes > self.config.room_list_bytes_max {
                break;
            }
            listing.bytes_max = bytes;
            listing.rooms.push(entry);
        }
        listing
    }

    /// The seat id of a connection.
    pub fn seat(&self, conn: ConnId) -> Option<SeatId> {
        self.session(conn).map(|s| s.seat)
    }

    /// The room a connection is in, by id.
    pub fn room_of(&self, conn: ConnId) -> Option<RoomId> {
        self.session(conn)
            .and_then(|s| s.room)
            .map(|key| self.rooms[key].id)
    }

    /// The members of a room (host first is not guaranteed; join order), for tests and checks.
    pub fn members(&self, room: RoomId) -> Vec<ConnId> {
        self.room_index
            .get(&room)
            .map(|&key| self.rooms[key].members.iter().map(|m| m.conn).collect())
            .unwrap_or_default()
    }

    /// The host of a room.
    pub fn host(&self, room: RoomId) -> Option<ConnId> {
        self.room_index.get(&room).map(|&key| self.rooms[key].host)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            sessions: self.session_count,
            rooms: self.rooms.len(),
        }
    }

    /// Checks every structural invariant; panics with a description if one fails. Called by
    /// tests, the simulation and the fuzzers after every step.
    pub fn check_invariants(&self) {
        assert_eq!(
            self.rooms.len(),
            self.room_index.len(),
            "room index out of step"
        );
        for (key, room) in self.rooms.iter() {
            assert_eq!(
                self.room_index.get(&room.id),
                Some(&key),
                "room {} not indexed",
                room.id
            );
            let hosts = room.members.iter().filter(|m| m.conn == room.host).count();
            assert_eq!(
                hosts, 1,
                "room {} must have its host among its members once",
                room.id
            );
            assert!(
                room.members.len() <= self.config.room_members_max,
                "room over capacity"
            );
            for (i, member) in room.members.iter().enumerate() {
                assert!(
                    room.members[..i].iter().all(|m| m.conn != member.conn),
                    "duplicate member"
                );
                let session = self.session(member.conn).expect("member without a session");
                assert_eq!(session.room, Some(key), "member's session points elsewhere");
                assert_eq!(
                    session.seat, member.seat,
                    "member seat differs from session"
                );
            }
            if room.pending_play.is_some() {
                assert!(!room.all_ready(), "a pending play with everyone ready");
            }
            for pair in room.held.iter().zip(room.held.iter().skip(1)) {
                assert!(pair.0.due <= pair.1.due, "held commands out of order");
            }
        }
        let mut count = 0;
        for (index, slot) in self.sessions.iter().enumerate() {
            let Some(session) = slot else { continue };
            count += 1;
            assert_eq!(
                session.conn.index as usize, index,
                "session in the wrong slot"
            );
            if let Some(key) = session.room {
                let room = self
                    .rooms
                    .get(key)
                    .expect("session in a room that does not exist");
                assert!(
                    room.has(session.conn),
                    "session thinks it is in a room it is not in"
                );
            }
        }
        assert_eq!(count, self.session_count, "session count out of step");
        self.check_memory();
    }

    /// Heap bytes the core holds for one connection (names, remembered room names).
    pub fn session_bytes(&self, conn: ConnId) -> usize {
        self.session(conn).map_or(0, |s| {
            s.user_name.capacity()
                + s.user_id.capacity()
                + s.gone_notified.capacity() * std::mem::size_of::<u64>()
        })
    }

    /// The bound of `session_bytes`: two names of at most `NAME_BYTES_MAX` bytes, in strings
    /// that may have grown to twice that, and the remembered room names.
    pub const SESSION_BYTES_MAX: usize =
        4 * text::NAME_BYTES_MAX + 2 * GONE_NOTIFIED_MAX * std::mem::size_of::<u64>();

    /// Every session and room within its memory bound (README's formula).
    fn check_memory(&self) {
        for session in self.sessions.iter().flatten() {
            let bytes = self.session_bytes(session.conn);
            assert!(
                bytes <= Self::SESSION_BYTES_MAX,
                "session {} holds {bytes} bytes",
                session.conn
            );
        }
        let room_max = Room::heap_bytes_max(self.config.room_members_max);
        for (_, room) in self.rooms.iter() {
            let bytes = room.heap_bytes();
            assert!(bytes <= room_max, "room {} holds {bytes} bytes", room.id);
        }
    }

    // ----- per-call bookkeeping -----

    fn begin(&mut self, now: Now) {
        debug_assert!(self.list_recipients.is_empty());
        self.outcome = Outcome::Accepted;
        // Monotonic time never goes backwards, even if a caller's does.
        self.now = Now {
            mono: now.mono.max(self.now.mono),
            wall: now.wall,
        };
    }

    fn finish(&mut self, out: &mut Outbox) {
        // Every room list sent during this call shows the state after it.
        if std::mem::take(&mut self.list.sent_this_call) {
            let listing = self.current_listing();
            for event in &mut out.events {
                if let Event::RoomList { listing: slot } = event {
                    *slot = listing.clone();
                }
            }
        }
        let version = self.list.version;
        for conn in std::mem::take(&mut self.list_recipients) {
            if let Some(session) = self.session_mut(conn) {
                session.list_seen = version;
            }
        }
        #[cfg(debug_assertions)]
        if self.session_count < 64 {
            self.check_invariants();
        }
    }

    fn session(&self, conn: ConnId) -> Option<&Session> {
        self.sessions
            .get(conn.index as usize)?
            .as_ref()
            .filter(|s| s.conn == conn)
    }

    fn session_mut(&mut self, conn: ConnId) -> Option<&mut Session> {
        self.sessions
            .get_mut(conn.index as usize)?
            .as_mut()
            .filter(|s| s.conn == conn)
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    // ----- admission: rate limits -----

    /// Spends the message from the right budget; false if it must be dropped.
    fn spend(&mut self, conn: ConnId, kind: Kind, out: &mut Outbox) -> bool {
        let now = self.now.mono;
        let (messages_max, logs_max) = (
            self.config.messages_per_second_max,
            self.config.client_logs_per_second_max,
        );
        let Some(session) = self.session_mut(conn) else {
            return false;
        };
        // client_log has its own budget: the stock client flushes up to 100 of them on
        // connect, and they must not starve the messages that matter. Over it, they are
        // dropped silently (they are diagnostics).
        if kind == Kind::ClientLog {
            return matches!(session.client_logs.spend(now, logs_max), Spend::Allow);
        }
        match session.messages.spend(now, messages_max) {
            Spend::Allow => true,
            Spend::Drop { warn } => {
                if warn {
                    self.error(conn, None, ErrorCode::RateLimited, out);
                }
                false
            }
        }
    }

    fn dispatch(&mut self, conn: ConnId, command: Command, out: &mut Outbox) {
        match command {
            Command::Identify {
                user_name,
                user_id,
                follows_schedule,
                credential,
            } => self.identify(conn, user_name, user_id, follows_schedule, credential, out),
            Command::ListRooms => self.send_room_list(conn, out),
            Command::CreateRoom {
                name,
                user_name,
                start_position,
                media_id,
            } => self.create_room(conn, name, user_name, start_position, media_id, out),
            Command::JoinRoom { room, user_name } => self.join_room(conn, &room, user_name, out),
            Command::LeaveRoom => {
                self.leave_current(conn, out);
                self.send_room_list(conn, out);
            }
            Command::Ready { room } => self.ready(conn, room.as_deref(), out),
            Command::Control { room, control } => {
                if let Some(key) = self.host_room(conn, room.as_deref(), out) {
                    self.control(key, control, out);
                }
            }
            Command::Report { room, report } => {
                if let Some(key) = self.host_room(conn, room.as_deref(), out) {
                    self.report(key, report, out);
                }
            }
            Command::Ping { room, echo } => {
                let seat = self
                    .session(conn)
                    .map_or(SeatId(uuid::Uuid::nil()), |s| s.seat);
                out.unicast(
                    conn,
                    Event::Pong {
                        seat,
                        room: room.clone(),
                        echo,
                        received: self.now.wall,
                    },
                );
                // The pong is the answer: a lost-room notice does not refuse the ping.
                if let Some(name) = room.as_deref() {
                    let _ = self.member_room(conn, name, out);
                    self.outcome = Outcome::Accepted;
                }
            }
            Command::Chat { room, text } => self.chat(conn, room.as_deref(), &text, out),
            Command::ClientLog { category, message } => {
                let category = category.unwrap_or_else(|| "LOG".to_string());
                let message = message.unwrap_or_default();
                out.unicast(conn, Event::ClientLog { category, message });
            }
        }
    }

    // ----- identity and rooms -----

    fn identify(
        &mut self,
        conn: ConnId,
        user_name: Option<String>,
        user_id: Option<String>,
        follows_schedule: Option<bool>,
        credential: Option<Credential>,
        out: &mut Outbox,
    ) {
        let Some(session) = self.session_mut(conn) else {
            return;
        };
        if let Some(name) = user_name.as_deref().and_then(text::display_name) {
            session.user_name = name;
        }
        if let Some(id) = user_id {
            session.user_id = text::sanitize_line(&id, text::NAME_CHARS_MAX);
        }
        if let Some(follows) = follows_schedule {
            session.caps.follows_schedule = follows;
        }
        match credential {
            None => {}
            Some(Credential::Accepted(identity)) => {
                if let Identity::Verified { name, .. } = &identity {
                    if let Some(name) = text::display_name(name) {
                        session.user_name = name;
                    }
                }
                session.identity = identity;
                let (seat, user_name) = (session.seat, session.user_name.clone());
                out.unicast(conn, Event::AuthSuccess { seat, user_name });
            }
            // A token the edge did not check is never taken on trust.
            Some(Credential::Refused | Credential::Token(_)) => {
                self.error(conn, None, ErrorCode::AuthFailed, out);
            }
        }
    }

    fn create_room(
        &mut self,
        conn: ConnId,
        name: Option<String>,
        user_name: Option<String>,
        start_position: f64,
        media_id: Option<String>,
        out: &mut Outbox,
    ) {
        let current = self.session(conn).and_then(|s| s.room);
        let hosts_current = current.is_some_and(|key| self.rooms[key].host == conn);
        if self.rooms.len() - usize::from(hosts_current) >= self.config.rooms_max {
            // Refused before anything changes: the sender keeps its room.
            self.error(conn, None, ErrorCode::RoomsLimit, out);
            return;
        }
        if let Some(key) = self.session(conn).and_then(|s| s.room) {
            if self.rooms[key].host == conn {
                self.close_room(key, reason::HOST_NEW_ROOM, None, out);
            } else {
                self.leave_current(conn, out);
            }
        }
        let Some(session) = self.session_mut(conn) else {
            return;
        };
        if let Some(user_name) = user_name.as_deref().and_then(text::display_name) {
            session.user_name = user_name;
        }
        let seat = session.seat;
        let room_name = name
            .as_deref()
            .and_then(text::room_name)
            .unwrap_or_else(|| format!("Room de {}", session.user_name));
        let serial = self.next_serial();
        let id = RoomId(self.rng.uuid());
        let now = self.now.mono;
        let start = if room::valid_position(start_position) {
            start_position
        } else {
            0.0
        };
        let key = self.rooms.insert(Room {
            id,
            serial,
            name: room_name,
            host: conn,
            media_id,
            members: vec![Member {
                conn,
                seat,
                ready: true,
            }],
            clock: RoomClock::paused(start, now),
            filter: RelayFilter {
                position: start,
                play_state: PlayState::Paused,
                last_state_at: now,
                last_command_at: None,
            },
            pending_play: None,
            held: Default::default(),
            stock_play_at: Millis(0),
            in_flight: Vec::new(),
        });
        self.room_index.insert(id, key);
        if let Some(session) = self.session_mut(conn) {
            session.room = Some(key);
            session.gone_notified.clear();
        }
        self.send_room_state(key, conn, false, out);
        self.list_changed();
    }

    fn join_room(&mut self, conn: ConnId, name: &str, user_name: Option<String>, out: &mut Outbox) {
        let Some(key) = RoomId::parse(name).and_then(|id| self.room_index.get(&id).copied()) else {
            self.error(conn, None, ErrorCode::RoomNotFound, out);
            self.notify_gone(conn, name, reason::NOT_FOUND, out);
            return;
        };
        if let Some(user_name) = user_name.as_deref().and_then(text::display_name) {
            if let Some(session) = self.session_mut(conn) {
                session.user_name = user_name;
            }
        }
        let current = self.session(conn).and_then(|s| s.room);
        if current == Some(key) {
            // Re-joining the room you are in: a fresh room_state, ready flag kept.
            let joiner = self.rooms[key].host != conn;
            // Commands still ahead are already on their way to this member.
            self.send_room_state(key, conn, joiner, out);
            return;
        }
        if self.rooms[key].members.len() >= self.config.room_members_max {
            let id = self.rooms[key].id;
            self.error(conn, Some(id), ErrorCode::RoomFull, out);
            self.notify_gone(conn, name, reason::FULL, out);
            return;
        }
        if current.is_some() {
            self.leave_current(conn, out);
        }
        let Some(session) = self.session_mut(conn) else {
            return;
        };
        session.room = Some(key);
        session.gone_notified.clear();
        let seat = session.seat;
        let room = &mut self.rooms[key];
        room.members.push(Member {
            conn,
            seat,
            ready: false,
        });
        let count = room.members.len();
        let index = out.event(Event::Participants {
            room: room.id,
            count,
        });
        for member in room.members.iter().filter(|m| m.conn != conn) {
            out.send(member.conn, index);
        }
        self.send_room_state(key, conn, true, out);
        self.replay_in_flight(key, conn, out);
        self.list_changed();
    }

    /// Takes `conn` out of its room, if any. A host's departure closes the room.
    fn leave_current(&mut self, conn: ConnId, out: &mut Outbox) {
        let Some(key) = self.session_mut(conn).and_then(|s| s.room.take()) else {
            return;
        };
        let room = &mut self.rooms[key];
        if room.host == conn {
            // Put the host back so close_room sees a whole room, then close without telling
            // the host (it left on its own).
            if let Some(session) = self.session_mut(conn) {
                session.room = Some(key);
            }
            self.close_room(key, reason::HOST_LEFT, Some(conn), out);
            return;
        }
        room.members.retain(|m| m.conn != conn);
        // Commands held for this membership die with it; a later join replays what is
        // still ahead.
        for held in &mut room.held {
            held.recipients.retain(|&c| c != conn);
        }
        let (id, count) = (room.id, room.members.len());
        let seat = self
            .session(conn)
            .map_or(SeatId(uuid::Uuid::nil()), |s| s.seat);
        let index = out.event(Event::ClientLeft {
            room: id,
            seat,
            count,
        });
        for member in &self.rooms[key].members {
            out.send(member.conn, index);
        }
        self.check_barrier(key, out);
        self.list_changed();
    }

    /// Removes a room; every member but `quiet` is told why and gets the room list.
    fn close_room(
        &mut self,
        key: usize,
        why: &'static str,
        quiet: Option<ConnId>,
        out: &mut Outbox,
    ) {
        let room = self.rooms.remove(key);
        self.room_index.remove(&room.id);
        let index = out.event(Event::RoomClosed {
            room: room.id.to_string(),
            reason: why,
        });
        let name = room.id.to_string();
        for member in &room.members {
            if let Some(session) = self.session_mut(member.conn) {
                session.room = None;
                // Messages already in flight that name the room need no second notice.
                remember_gone(session, &name);
            }
            if Some(member.conn) != quiet {
                out.send(member.conn, index);
                self.send_room_list(member.conn, out);
            }
        }
        self.list_changed();
    }

    fn ready(&mut self, conn: ConnId, name: Option<&str>, out: &mut Outbox) {
        let Some(name) = name else {
            self.refuse(ErrorCode::RoomRequired);
            return;
        };
        let Some(key) = self.member_room(conn, name, out) else {
            return;
        };
        let room = &mut self.rooms[key];
        if let Some(member) = room.members.iter_mut().find(|m| m.conn == conn) {
            member.ready = true;
        }
        self.check_barrier(key, out);
    }

    fn chat(&mut self, conn: ConnId, name: Option<&str>, raw: &str, out: &mut Outbox) {
        let Some(name) = name else {
            self.error(conn, None, ErrorCode::RoomRequired, out);
            return;
        };
        let text = raw.trim();
        if text.is_empty() {
            self.error(conn, None, ErrorCode::ChatEmpty, out);
            return;
        }
        if text.chars().count() > text::CHAT_CHARS_MAX {
            self.error(conn, None, ErrorCode::ChatTooLong, out);
            return;
        }
        let Some(key) = self.member_room(conn, name, out) else {
            return;
        };
        let Some(session) = self.session(conn) else {
            return;
        };
        let room = &self.rooms[key];
        let index = out.event(Event::Chat {
            room: room.id,
            seat: session.seat,
            username: session.user_name.clone(),
            text: text.to_string(),
            server_ts: self.now.wall,
        });
        for member in &room.members {
            out.send(member.conn, index);
        }
    }

    // ----- membership checks -----

    /// The room `conn` names, if it is a member; otherwise tells it once that the room is
    /// gone for it. An empty name is no room and is not answered.
    fn member_room(&mut self, conn: ConnId, name: &str, out: &mut Outbox) -> Option<usize> {
        let key = RoomId::parse(name).and_then(|id| self.room_index.get(&id).copied());
        match key {
            Some(key) if self.rooms[key].has(conn) => Some(key),
            Some(_) => {
                self.refuse(ErrorCode::NotInRoom);
                self.notify_gone(conn, name, reason::NOT_MEMBER, out);
                None
            }
            None => {
                self.refuse(ErrorCode::RoomNotFound);
                self.notify_gone(conn, name, reason::NOT_FOUND, out);
                None
            }
        }
    }

    /// The room `conn` hosts and names; a member who is not the host gets `not_host`.
    fn host_room(&mut self, conn: ConnId, name: Option<&str>, out: &mut Outbox) -> Option<usize> {
        let Some(name) = name else {
            self.refuse(ErrorCode::RoomRequired);
            return None;
        };
        let key = self.member_room(conn, name, out)?;
        if self.rooms[key].host != conn {
            let id = self.rooms[key].id;
            self.error(conn, Some(id), ErrorCode::NotHost, out);
            return None;
        }
        Some(key)
    }

    fn notify_gone(&mut self, conn: ConnId, name: &str, why: &'static str, out: &mut Outbox) {
        let Some(session) = self.session_mut(conn) else {
            return;
        };
        // A name no room could have is not answered (and never echoed back at length).
        if name.len() > GONE_NAME_BYTES_MAX {
            return;
        }
        let hash = name_hash(name);
        if session.gone_notified.contains(&hash) {
            return;
        }
        remember_gone(session, name);
        out.unicast(
            conn,
            Event::RoomClosed {
                room: name.to_string(),
                reason: why,
            },
        );
    }

    /// Records that the command being handled is refused (the first reason stands).
    fn refuse(&mut self, code: ErrorCode) {
        if self.outcome == Outcome::Accepted {
            self.outcome = Outcome::Refused(code);
        }
    }

    fn error(&mut self, conn: ConnId, room: Option<RoomId>, code: ErrorCode, out: &mut Outbox) {
        self.refuse(code);
        if let Some(session) = self.session(conn) {
            out.unicast(
                conn,
                Event::Error {
                    seat: session.seat,
                    room,
                    code,
                },
            );
        }
    }

    // ----- the room list -----

    fn send_room_list(&mut self, conn: ConnId, out: &mut Outbox) {
        // The listing is filled in by `finish`, from the state at the end of the call.
        out.unicast(
            conn,
            Event::RoomList {
                listing: Arc::default(),
            },
        );
        self.list_recipients.push(conn);
        self.list.sent_this_call = true;
    }

    /// The listing at the current version, computed once per version.
    fn current_listing(&mut self) -> Arc<Listing> {
        match &self.list.cache {
            Some(listing) if listing.version == self.list.version => listing.clone(),
            _ => {
                let listing = Arc::new(self.listing());
                self.list.cache = Some(listing.clone());
                listing
            }
        }
    }

    fn list_changed(&mut self) {
        self.list.version += 1;
        if self.list.flush_scheduled {
            return;
        }
        let spacing = self.config.room_list_interval_ms.max(self.list.spacing_ms);
        let earliest = self.list.last_push.map_or(Millis(0), |t| t + spacing);
        self.timers
            .insert(earliest.max(self.now.mono), CoreTimer::RoomListFlush);
        self.list.flush_scheduled = true;
    }

    /// Pushes the list to every lobby connection whose copy is out of date: at most once per
    /// interval, however many changes happened, so mass disconnects cost O(N), not O(N²).
    /// The next push waits long enough for this one to stay within
    /// `lobby_push_bytes_per_sec` (bytes pushed to the whole lobby), whatever the churn.
    fn flush_room_list(&mut self, out: &mut Outbox) {
        self.list.flush_scheduled = false;
        self.list.last_push = Some(self.now.mono);
        let version = self.list.version;
        let mut index = None;
        let mut recipients: u64 = 0;
        for session in self.sessions.iter_mut().flatten() {
            if session.room.is_some() || session.list_seen >= version {
                continue;
            }
            let event = *index.get_or_insert_with(|| {
                out.event(Event::RoomList {
                    listing: Arc::default(),
                })
            });
            out.send(session.conn, event);
            session.list_seen = version;
            recipients += 1;
        }
        self.list.spacing_ms = 0;
        if recipients > 0 {
            self.list.sent_this_call = true;
            let bytes = recipients.saturating_mul(self.current_listing().bytes_max as u64);
            let rate = self.config.lobby_push_bytes_per_sec.max(1);
            self.list.spacing_ms = bytes.saturating_mul(1_000) / rate;
        }
    }

    fn send_room_state(&mut self, key: usize, conn: ConnId, joiner: bool, out: &mut Outbox) {
        let Some(seat) = self.session(conn).map(|s| s.seat) else {
            return;
        };
        let room = &self.rooms[key];
        let clock = room.clock.reading(self.now.mono);
        out.unicast(
            conn,
            Event::RoomState {
                room: room.id,
                seat,
                name: room.name.clone(),
                host: room.host_seat(),
                clock,
                participants: room.members.len(),
                media_id: room.media_id.clone(),
                server_ts: self.now.wall,
                joiner,
            },
        );
        // A joiner of a playing room is told to play from the clock's position now: it lands
        // on the host instead of waiting for the next command.
        if joiner && clock.playing {
            out.unicast(
                conn,
                Event::Control {
                    room: room.id,
                    host: room.host_seat(),
                    message: ControlMessage {
                        relay: Room::play_relay(clock.position),
                        target: self.now.wall,
                    },
                },
            );
        }
    }
}

/// A room's list entry.
fn summary(room: &Room) -> RoomSummary {
    RoomSummary {
        id: room.id,
        name: room.name.clone(),
        count: room.members.len(),
        media_id: room.media_id.clone(),
    }
}

/// What a `room_list` message holds besides its entries, at most (type, total, timestamps).
pub const LISTING_ENVELOPE_BYTES: usize = 128;

/// Room names a connection remembers having been told are gone.
const GONE_NOTIFIED_MAX: usize = 8;

fn remember_gone(session: &mut Session, name: &str) {
    if session.gone_notified.len() >= GONE_NOTIFIED_MAX {
        session.gone_notified.remove(0);
    }
    session.gone_notified.push(name_hash(name));
}

/// Longest room name answered with a lost-room notice: room ids are 36 characters.
const GONE_NAME_BYTES_MAX: usize = 64;

/// A name as remembered (FNV-1a): a fixed 8 bytes whatever the client sent. A collision can
/// only cost the sender a notice.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
