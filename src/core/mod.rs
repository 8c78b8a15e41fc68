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

mod access;
mod invariants;
pub(crate) mod listing;
mod membership;
mod playback;
mod presence;
pub mod room;
mod sessions;
pub mod snapshot;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use slab::Slab;

use crate::config::CoreConfig;
use crate::id::{ConnId, RoomId, SeatId};
use crate::rng::IdSource;
use crate::text;
use crate::time::{Millis, Now};
use crate::timer_wheel::TimerWheel;
use listing::ListState;
pub use listing::LISTING_ENVELOPE_BYTES;
use membership::GONE_NOTIFIED_MAX;
use room::{Member, Room};
use sessions::{Budget, Seat, Session};
use types::{
    later, reason, Capabilities, Command, ControlMessage, CoreTimer, Credential, DecodeError,
    ErrorCode, Event, Identity, Json, Outbox, Peer, ResumeKey, RoomSummary, SignalKind,
};
pub use types::{Listing, Outcome};

/// The user id of a seat that declared none: never someone's to take over.
pub const ANONYMOUS_USER_ID: &str = "anonymous";

/// Which budget a message is spent from, known before it is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A client debug line (its own budget).
    ClientLog,
    /// Anything else.
    Other,
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
    /// Seat and room ids (a keyed PRF: unpredictable from other ids).
    rng: IdSource,
    /// Indexed by `ConnId::index`; the stored `conn` carries the generation.
    sessions: Vec<Option<Session>>,
    /// Every seat, held by a connection or not.
    seats: Slab<Seat>,
    session_count: usize,
    rooms: Slab<Room>,
    room_index: BTreeMap<RoomId, usize>,
    /// Resume-token digest → seat key.
    resume_index: BTreeMap<String, usize>,
    timers: TimerWheel<CoreTimer>,
    /// Source of room serials and pending-play epochs.
    serial: u64,
    list: ListState,
    /// Connections sent a room list during the current call.
    list_recipients: Vec<ConnId>,
    /// What became of the command being handled.
    outcome: Outcome,
    /// Calls that may have changed what a snapshot holds.
    mutations: u64,
    /// What metrics show.
    pub(crate) counters: types::Counters,
    /// A test broke an invariant on purpose: the debug self-checks stand down.
    #[cfg(test)]
    faulted: bool,
    now: Now,
}

impl Core {
    /// A core with no rooms. `seed` drives every id it makes.
    pub fn new(config: CoreConfig, seed: u64) -> Core {
        let mut rng = IdSource::new(seed);
        // Serials start at a random point, 2^32 apart at least: an invite names its room's
        // serial, and a room made again under the same id by a later process (a v1 name
        // always maps to the same id) must not take invites meant for the old one.
        let serial = (rng.next_u64() >> 24) << 32;
        Core {
            config,
            rng,
            sessions: Vec::new(),
            seats: Slab::new(),
            session_count: 0,
            rooms: Slab::new(),
            room_index: BTreeMap::new(),
            resume_index: BTreeMap::new(),
            timers: TimerWheel::new(),
            serial,
            list: ListState::default(),
            list_recipients: Vec::new(),
            outcome: Outcome::Accepted,
            mutations: 0,
            counters: types::Counters::default(),
            #[cfg(test)]
            faulted: false,
            now: Now::default(),
        }
    }

    /// A connection opened: it gets a seat id, `Hello` (with `resume`'s token, whose digest
    /// the seat keeps) and the room list.
    pub fn open(
        &mut self,
        now: Now,
        conn: ConnId,
        caps: Capabilities,
        resume: Option<ResumeKey>,
        out: &mut Outbox,
    ) {
        self.begin(now);
        let index = conn.index as usize;
        if self.sessions.len() <= index {
            self.sessions.resize(index.saturating_add(1), None);
        }
        let Some(slot) = self.sessions.get_mut(index) else {
            return;
        };
        debug_assert!(slot.is_none(), "conn {conn} opened twice");
        if let Some(stale) = slot.take() {
            self.session_count = self.session_count.saturating_sub(1);
            self.remove_seat(stale.seat);
        }
        let id = SeatId(self.rng.uuid());
        let seat = self.seats.insert(Seat {
            id,
            conn: Some(conn),
            name: "Anonymous".to_string(),
            user_id: ANONYMOUS_USER_ID.to_string(),
            identity: Identity::Anonymous,
            caps,
            room: None,
            grace: None,
            resume: None,
            chat_seen: 0,
        });
        let token = resume.map(|key| {
            self.index_resume(seat, key.digest);
            key.token
        });
        if let Some(slot) = self.sessions.get_mut(index) {
            *slot = Some(Session {
                conn,
                seat,
                list_seen: 0,
                list_sent_at: None,
                gone_notified: Vec::new(),
                left: Vec::new(),
                messages: Budget::default(),
                client_logs: Budget::default(),
            });
        }
        self.session_count = self.session_count.saturating_add(1);
        out.unicast(
            conn,
            Event::Hello {
                seat: id,
                resume_token: token,
            },
        );
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
                Ok(command) => {
                    bump(&mut self.counters.commands, command.index());
                    self.dispatch(conn, command, out)
                }
                Err(error) => {
                    bump(&mut self.counters.commands, Command::INVALID);
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
        self.seats.shrink_to_fit();
        self.rooms.shrink_to_fit();
        self.timers.compact();
        self.list_recipients.shrink_to_fit();
        for (_, room) in self.rooms.iter_mut() {
            room.compact();
        }
    }

    /// `conn` is gone. A seat in a room waits `resume_grace_ms` for it to come back (shown
    /// away); any other seat ends with it.
    pub fn close(&mut self, now: Now, conn: ConnId, out: &mut Outbox) {
        self.begin(now);
        if let Some(key) = self.seat_key(conn) {
            // Only a seat it holds: a broken state must not take another connection's seat
            // with it.
            if self.seats.get(key).is_some_and(|s| s.conn == Some(conn))
                && !self.hold_seat(key, out)
            {
                self.leave_current(conn, out);
                self.remove_seat(key);
            }
            if let Some(slot) = self.sessions.get_mut(conn.index as usize) {
                *slot = None;
            }
            self.session_count = self.session_count.saturating_sub(1);
        }
        self.finish(out);
    }

    /// Fires every timer due at `now`.
    pub fn advance(&mut self, now: Now, out: &mut Outbox) {
        self.begin(now);
        let mut due = Vec::new();
        // A timer may set another due now (a seat's grace ends, its room is handed over,
        // the room list is due): those fire in the same call, in further passes. Each
        // pass's timers are set by the previous one, and none sets one more than two deep.
        for _ in 0..4 {
            due.clear();
            self.timers.advance(self.now.mono, &mut due);
            if due.is_empty() {
                break;
            }
            self.fire(std::mem::take(&mut due), out);
        }
        self.finish(out);
        debug_assert!(self.next_deadline().is_none_or(|next| next > now.mono));
    }

    fn fire(&mut self, due: Vec<CoreTimer>, out: &mut Outbox) {
        for timer in due {
            match timer {
                CoreTimer::RoomListFlush => self.flush_room_list(out),
                CoreTimer::ReadyDeadline { room, epoch } => self.ready_deadline(room, epoch, out),
                CoreTimer::HeldDue { room, serial } => self.deliver_held(room, serial, out),
                CoreTimer::SeatGrace { seat, serial } => self.seat_grace_ends(seat, serial, out),
                CoreTimer::HostGrace { room, serial } => self.host_grace_ends(room, serial, out),
                CoreTimer::PresenceDue { room, serial } => self.presence_due(room, serial, out),
            }
        }
    }

    /// The server is stopping. If its rooms are kept (`restart`: they are saved and come
    /// back), every connection is only told to reconnect (`Restart`): no room closes, so
    /// clients keep their room and are re-admitted after the restart. Otherwise every member
    /// is told its room is closing.
    pub fn shutdown(&mut self, now: Now, restart: bool, out: &mut Outbox) {
        self.begin(now);
        if restart {
            for session in self.sessions.iter().flatten() {
                out.unicast(session.conn, Event::Restart);
            }
        } else {
            // Closed for real, so the disconnects that follow tell nobody anything more.
            let keys: Vec<usize> = self.room_index.values().copied().collect();
            for key in keys {
                self.close_room(key, reason::SHUTDOWN, None, out);
            }
        }
        self.finish(out);
    }

    /// The earliest instant `advance` has work.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.next_deadline()
    }

    /// A room's clock now, as `room_state` would report it.
    pub fn clock_of(&self, room: RoomId) -> Option<types::ClockReading> {
        let room = self.rooms.get(*self.room_index.get(&room)?)?;
        Some(room.clock.reading(self.now.mono))
    }

    /// Rooms that may exist at once.
    pub fn rooms_max(&self) -> usize {
        self.config.rooms_max
    }

    /// Whether clients must authenticate (never, in this version).
    pub fn auth_enabled(&self) -> bool {
        self.config.auth_enabled
    }

    /// The current room list version (changes whenever the list's content does).
    pub fn list_version(&self) -> u64 {
        self.list.version
    }

    /// The seat id of a connection.
    pub fn seat(&self, conn: ConnId) -> Option<SeatId> {
        self.seat_of(conn).map(|s| s.id)
    }

    /// The room a connection is in, by id.
    pub fn room_of(&self, conn: ConnId) -> Option<RoomId> {
        let key = self.seat_of(conn)?.room?;
        self.rooms.get(key).map(|room| room.id)
    }

    /// The connections holding a room's member seats, in join order (for tests and checks).
    pub fn members(&self, room: RoomId) -> Vec<ConnId> {
        let Some(room) = self.room_index.get(&room).and_then(|&k| self.rooms.get(k)) else {
            return Vec::new();
        };
        room.members
            .iter()
            .filter_map(|m| self.conn_of(m.key))
            .collect()
    }

    /// The connection holding a room's host seat.
    pub fn host(&self, room: RoomId) -> Option<ConnId> {
        let room = self.rooms.get(*self.room_index.get(&room)?)?;
        self.conn_of(room.host)
    }

    /// What metrics show.
    pub fn counters(&self) -> &types::Counters {
        &self.counters
    }

    /// Seats in rooms (members), and of them those waiting in grace.
    pub fn members_and_away(&self) -> (usize, usize) {
        self.rooms
            .iter()
            .fold((0, 0), |(members, away), (_, room)| {
                let gone = room.members.iter().filter(|m| m.away).count();
                (
                    members.saturating_add(room.members.len()),
                    away.saturating_add(gone),
                )
            })
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            sessions: self.session_count,
            rooms: self.rooms.len(),
        }
    }

    // ----- per-call bookkeeping -----

    fn begin(&mut self, now: Now) {
        debug_assert!(self.list_recipients.is_empty());
        self.mutations = self.mutations.wrapping_add(1);
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
                if let Event::RoomList {
                    listing: slot,
                    withheld: false,
                } = event
                {
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
        #[cfg(all(debug_assertions, test))]
        let checked = !self.faulted;
        #[cfg(all(debug_assertions, not(test)))]
        let checked = true;
        #[cfg(debug_assertions)]
        if checked && self.session_count < 64 {
            self.check_invariants();
        }
    }

    fn next_serial(&mut self) -> u64 {
        self.serial = self.serial.saturating_add(1);
        self.serial
    }

    // ----- admission: rate limits -----

    fn dispatch(&mut self, conn: ConnId, command: Command, out: &mut Outbox) {
        match command {
            Command::Identify {
                user_name,
                user_id,
                follows_schedule,
                credential,
            } => self.identify(conn, user_name, user_id, follows_schedule, credential, out),
            Command::ListRooms => self.list_rooms(conn, out),
            Command::CreateRoom {
                name,
                user_name,
                start_position,
                media_id,
                content,
                private,
                credential,
            } => {
                if self.present(conn, credential, out) && self.may_create(conn, out) {
                    let media = (media_id, content);
                    self.create_room(conn, name, user_name, start_position, media, out);
                    self.set_private(conn, private);
                }
            }
            Command::JoinRoom {
                room,
                user_name,
                credential,
                invite,
            } => {
                if self.present(conn, credential, out) {
                    self.join_room(conn, &room, user_name, invite, out);
                }
            }
            Command::Enter {
                room,
                alias,
                user_id,
                user_name,
                credential,
                invite,
            } => {
                if self.present(conn, credential, out) {
                    self.enter(conn, room, alias, user_id, user_name, invite, out);
                }
            }
            Command::Resume { token } => self.resume(conn, &token, out),
            Command::CreateInvite { room, expires_in } => {
                self.create_invite(conn, room.as_deref(), expires_in, out)
            }
            Command::LeaveRoom => {
                let left = self
                    .seat_of(conn)
                    .and_then(|s| s.room)
                    .and_then(|key| self.rooms.get(key))
                    .map(|room| room.id.to_string());
                self.leave_current(conn, out);
                // Left on purpose: a message still naming the room does not bring it back.
                if let (Some(name), Some(session)) = (left, self.session_mut(conn)) {
                    membership::remember_gone(session, &name);
                    if session.left.len() >= GONE_NOTIFIED_MAX {
                        session.left.remove(0);
                    }
                    session.left.push(membership::name_hash(&name));
                }
                self.send_room_list(conn, out);
            }
            Command::Ready { room } => self.ready(conn, room.as_deref(), out),
            Command::Control { room, control } => {
                let buffering = match control.action {
                    types::ControlAction::Buffering => Some(true),
                    types::ControlAction::Play | types::ControlAction::Pause => Some(false),
                    _ => None,
                };
                // One lookup of the room for both what the member says of itself and what
                // the host commands.
                let Some(key) = self.named_room(conn, room.as_deref(), out) else {
                    return;
                };
                if self.member_says(conn, key, buffering, None, out) {
                    return;
                }
                if let Some(key) = self.hosted(conn, key, out) {
                    self.control(key, control, out);
                }
            }
            Command::Report { room, report } => {
                let buffering = report.play_state_text.as_deref().map(|s| s == "buffering");
                let Some(key) = self.named_room(conn, room.as_deref(), out) else {
                    return;
                };
                if self.member_says(conn, key, buffering, report.latency_ms, out) {
                    return;
                }
                if let Some(key) = self.hosted(conn, key, out) {
                    self.report(key, report, out);
                }
            }
            Command::ForceResync { room, position } => {
                self.force_resync(conn, room.as_deref(), position, out)
            }
            Command::Ping { room, echo } => {
                let seat = self
                    .seat_of(conn)
                    .map_or(SeatId(uuid::Uuid::nil()), |s| s.id);
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
            Command::TransferHost { room, to } => {
                self.transfer_host(conn, room.as_deref(), &to, out)
            }
            Command::ClaimHost { room } => self.claim_host(conn, room.as_deref(), out),
            Command::SetContent { room, content_id } => {
                self.set_content(conn, &room, content_id, out)
            }
            Command::Signal {
                room,
                to_user,
                kind,
                body,
            } => self.signal(conn, &room, &to_user, kind, body, out),
            Command::ClientLog { category, message } => {
                let category = category.unwrap_or_else(|| "LOG".to_string());
                let message = message.unwrap_or_default();
                out.unicast(conn, Event::ClientLog { category, message });
            }
        }
    }

    // ----- identity and rooms -----

    // ----- membership checks -----

    // ----- the room list -----
}

/// Adds one to `counts[index]`.
pub(crate) fn bump(counts: &mut [u64], index: usize) {
    if let Some(count) = counts.get_mut(index) {
        *count = count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests;
