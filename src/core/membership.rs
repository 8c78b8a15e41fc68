//! Rooms and their members: create, join, leave, close, chat, and the answers to commands
//! naming a room the sender is not in.

use super::*;
use room::ChatEntry;
use types::Pass;

/// What a guest (authentication on, no identity) is known by: its declared id, marked.
pub(super) fn guest_id(declared: &str) -> String {
    let mut id = String::from(GUEST_PREFIX);
    id.extend(
        declared
            .chars()
            .take(text::NAME_CHARS_MAX.saturating_sub(6)),
    );
    id
}

/// The mark of a guest's user id; no verified subject starts with it.
pub const GUEST_PREFIX: &str = "guest:";

/// A kept chat message as members receive it.
fn chat_event(room: RoomId, entry: &ChatEntry) -> Event {
    Event::Chat {
        room,
        seat: entry.seat,
        user_id: entry.user_id.clone(),
        username: entry.username.clone(),
        text: entry.text.clone(),
        server_ts: entry.server_ts,
    }
}

/// Room names a connection remembers having been told are gone.
pub(super) const GONE_NOTIFIED_MAX: usize = 8;

pub(super) fn remember_gone(session: &mut Session, name: &str) {
    if session.gone_notified.len() >= GONE_NOTIFIED_MAX {
        session.gone_notified.remove(0);
    }
    session.gone_notified.push(name_hash(name));
}

/// Longest room name answered with a lost-room notice: room ids are 36 characters.
pub(super) const GONE_NAME_BYTES_MAX: usize = 64;

/// A name as remembered (FNV-1a): a fixed 8 bytes whatever the client sent. A collision can
/// only cost the sender a notice.
pub(super) fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Core {
    pub(super) fn create_room(
        &mut self,
        conn: ConnId,
        name: Option<String>,
        user_name: Option<String>,
        start_position: f64,
        media: (Option<String>, Option<String>),
        out: &mut Outbox,
    ) {
        self.create_room_as(conn, None, name, user_name, start_position, media, out);
    }

    /// Creates a room hosted by `conn`'s seat, with `id` if given (else a random one).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_room_as(
        &mut self,
        conn: ConnId,
        id: Option<RoomId>,
        name: Option<String>,
        user_name: Option<String>,
        start_position: f64,
        (media_id, content): (Option<String>, Option<String>),
        out: &mut Outbox,
    ) {
        let Some(seat) = self.seat_key(conn) else {
            return;
        };
        let current = self.seats.get(seat).and_then(|s| s.room);
        let hosts_current = current
            .and_then(|key| self.rooms.get(key))
            .is_some_and(|room| room.host == seat);
        let others = self.rooms.len().saturating_sub(usize::from(hosts_current));
        if others >= self.config.rooms_max && !self.make_way_for_a_room(out) {
            // Refused before anything changes: the sender keeps its room.
            self.error(conn, None, ErrorCode::RoomsLimit, out);
            return;
        }
        if let Some(key) = current {
            if hosts_current && self.config.room_close_on_host_leave {
                self.close_room(key, reason::HOST_NEW_ROOM, None, out);
            } else {
                // A host's old room goes on under another member.
                self.leave_seat(seat, out);
            }
        }
        self.rename(seat, user_name.as_deref());
        let Some(holder) = self.seats.get(seat) else {
            return;
        };
        let seat_id = holder.id;
        let room_name = name
            .as_deref()
            .and_then(text::room_name)
            .unwrap_or_else(|| format!("Room de {}", holder.name));
        let serial = self.next_serial();
        let id = match id {
            Some(id) => id,
            // Ids are unpredictable and 122 bits wide; one in use (a named v1 room's, say)
            // is still never taken: draw again.
            None => {
                let mut id = RoomId(self.rng.uuid());
                while self.room_index.contains_key(&id) {
                    id = RoomId(self.rng.uuid());
                }
                id
            }
        };
        if self.room_index.contains_key(&id) {
            // A named room that exists is joined, never made twice (callers check; this
            // keeps the index whole whatever they do).
            self.refuse(ErrorCode::RoomsLimit);
            return;
        }
        let now = self.now.mono;
        let start = Some(start_position)
            .filter(|p| room::valid_position(*p))
            .unwrap_or(0.0);
        let host = Member {
            key: seat,
            seat: seat_id,
            ready: true,
            away: false,
            buffering: false,
            latency_ms: None,
        };
        let key = self
            .rooms
            .insert(Room::new(id, serial, room_name, host, media_id, start, now));
        let owner = self.subject(seat).map(str::to_string);
        if let Some(room) = self.rooms.get_mut(key) {
            room.owner = owner;
            if let Some(content) = content.filter(|c| room::valid_content(c)) {
                room.content_id = Some(content);
            }
        }
        self.room_index.insert(id, key);
        if let Some(holder) = self.seats.get_mut(seat) {
            holder.room = Some(key);
        }
        if let Some(session) = self.session_mut(conn) {
            session.gone_notified.clear();
        }
        self.send_room_state(key, seat, false, out);
        self.list_changed();
    }

    pub(super) fn join_room(
        &mut self,
        conn: ConnId,
        name: &str,
        user_name: Option<String>,
        invite: Option<Pass>,
        out: &mut Outbox,
    ) {
        let Some(seat) = self.seat_key(conn) else {
            return;
        };
        if !self.authenticated(conn) && invite.is_none() {
            // Nothing about which rooms exist for a connection that may not join any.
            self.error(conn, None, ErrorCode::AuthRequired, out);
            return;
        }
        let Some(key) = RoomId::parse(name).and_then(|id| self.room_index.get(&id).copied()) else {
            self.error(conn, None, ErrorCode::RoomNotFound, out);
            self.notify_gone(conn, name, reason::NOT_FOUND, out);
            return;
        };
        let current = self.seats.get(seat).and_then(|s| s.room);
        if current == Some(key) {
            // Re-joining the room you are in: a fresh room_state, ready flag kept.
            self.rename(seat, user_name.as_deref());
            let joiner = self.rooms.get(key).is_some_and(|room| room.host != seat);
            // Commands still ahead are already on their way to this member.
            self.send_room_state(key, seat, joiner, out);
            return;
        }
        if !self.may_join(conn, key, invite, out) {
            return;
        }
        // Joined again on purpose: naming it later is fine.
        if let Some(session) = self.session_mut(conn) {
            let hash = name_hash(name);
            session.left.retain(|&h| h != hash);
        }
        self.rename(seat, user_name.as_deref());
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let id = room.id;
        if !self.make_room(key, out) {
            self.error(conn, Some(id), ErrorCode::RoomFull, out);
            self.notify_gone(conn, name, reason::FULL, out);
            return;
        }
        if current.is_some() {
            self.leave_seat(seat, out);
        }
        if let Some(session) = self.session_mut(conn) {
            session.gone_notified.clear();
        }
        self.seat_joins(seat, key, out);
    }

    /// Marks the room `conn` just created private (absent from the room list).
    pub(super) fn set_private(&mut self, conn: ConnId, private: bool) {
        if !private || self.outcome != Outcome::Accepted {
            return;
        }
        let Some(seat) = self.seat_key(conn) else {
            return;
        };
        let key = self.seats.get(seat).and_then(|s| s.room);
        if let Some(room) = key.and_then(|key| self.rooms.get_mut(key)) {
            if room.host == seat {
                room.private = true;
                self.list_changed();
            }
        }
    }

    /// Seat `seat` becomes a member of room `key`: the others learn the new count, the
    /// joiner gets the room's state and the commands still ahead.
    pub(super) fn seat_joins(&mut self, seat: usize, key: usize, out: &mut Outbox) {
        let Some(holder) = self.seats.get_mut(seat) else {
            return;
        };
        holder.room = Some(key);
        let seat_id = holder.id;
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.members.push(Member {
            key: seat,
            seat: seat_id,
            ready: false,
            away: false,
            buffering: false,
            latency_ms: None,
        });
        let count = room.members.len();
        let room_id = room.id;
        let joined = self.peer(seat);
        let name = joined.name.clone();
        // The whole list goes with at most `join_lists_per_second` joins per room per second;
        // joins past that carry the count, and the list follows with the room's next presence
        // update (someone joining and leaving in a loop cannot make every member receive the
        // whole list each time).
        let now = self.now.mono;
        let listed = self.rooms.get_mut(key).is_some_and(|room| {
            let (start, count) = room.join_lists;
            let (start, count) = if now.since(start) >= 1_000 {
                (now, 0)
            } else {
                (start, count)
            };
            let listed = count < self.config.join_lists_per_second;
            room.join_lists = (start, count.saturating_add(u32::from(listed)));
            listed
        });
        let presence = listed.then(|| self.presence(key));
        if !listed {
            self.presence_later(key);
        }
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let index = out.event(Event::Participants {
            room: room_id,
            count,
            joined,
            presence,
        });
        let hello = out.event(Event::ClientJoined {
            room: room_id,
            seat: seat_id,
            name,
        });
        let others: Vec<usize> = room
            .members
            .iter()
            .map(|m| m.key)
            .filter(|&k| k != seat)
            .collect();
        for other in others {
            self.send_seat(other, index, out);
            self.send_seat(other, hello, out);
        }
        self.send_room_state(key, seat, true, out);
        self.replay_in_flight(key, seat, out);
        self.replay_chat(key, seat, 0, out);
        self.list_changed();
    }

    /// Takes `conn`'s seat out of its room, if any.
    pub(super) fn leave_current(&mut self, conn: ConnId, out: &mut Outbox) {
        if let Some(seat) = self.seat_key(conn) {
            self.leave_seat(seat, out);
        }
    }

    /// Takes seat `seat` out of its room, if any. A host's departure closes the room.
    pub(super) fn leave_seat(&mut self, seat: usize, out: &mut Outbox) {
        let Some(key) = self.seats.get_mut(seat).and_then(|s| s.room.take()) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        let successor = (room.host == seat && !self.config.room_close_on_host_leave)
            .then(|| self.successor(key, seat))
            .flatten();
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        if room.host == seat && successor.is_none() {
            // The original's rule, or nobody left to host: put the host back so close_room
            // sees a whole room, then close without telling the host (it left on its own).
            if let Some(holder) = self.seats.get_mut(seat) {
                holder.room = Some(key);
            }
            self.close_room(key, reason::HOST_LEFT, Some(seat), out);
            return;
        }
        if let Some(next) = successor {
            // Handed over before the leave is told, so the room always has a host.
            room.host = next;
        }
        room.members.retain(|m| m.key != seat);
        // Commands held for this membership die with it; a later join replays what is
        // still ahead.
        for held in &mut room.held {
            held.recipients.retain(|&k| k != seat);
        }
        let (id, count) = (room.id, room.members.len());
        let rest: Vec<usize> = room.members.iter().map(|m| m.key).collect();
        let leaver = self.peer(seat);
        let index = out.event(Event::ClientLeft {
            room: id,
            seat: leaver.seat,
            count,
            user_id: leaver.user_id,
            name: leaver.name,
        });
        for other in rest {
            self.send_seat(other, index, out);
        }
        if let Some(next) = successor {
            self.hand_over(key, next, out);
        }
        self.check_barrier(key, out);
        self.list_changed();
    }

    /// Removes a room; every member but `quiet` is told why and gets the room list.
    pub(super) fn close_room(
        &mut self,
        key: usize,
        why: &'static str,
        quiet: Option<usize>,
        out: &mut Outbox,
    ) {
        let Some(room) = self.rooms.try_remove(key) else {
            return;
        };
        // Only this room's entry (ids are unique, but the index must never lose another).
        if self.room_index.get(&room.id) == Some(&key) {
            self.room_index.remove(&room.id);
        }
        let index = out.event(Event::RoomClosed {
            room: room.id.to_string(),
            reason: why,
        });
        let name = room.id.to_string();
        for member in &room.members {
            if let Some(holder) = self.seats.get_mut(member.key) {
                holder.room = None;
            }
            let Some(conn) = self.conn_of(member.key) else {
                continue;
            };
            if let Some(session) = self.session_mut(conn) {
                // Messages already in flight that name the room need no second notice.
                remember_gone(session, &name);
            }
            if Some(member.key) != quiet {
                out.send(conn, index);
                self.send_room_list(conn, out);
            }
        }
        self.list_changed();
    }

    pub(super) fn ready(&mut self, conn: ConnId, name: Option<&str>, out: &mut Outbox) {
        let Some(name) = name else {
            self.refuse(ErrorCode::RoomRequired);
            return;
        };
        let Some(key) = self.member_room(conn, name, out) else {
            return;
        };
        let Some(seat) = self.seat_key(conn) else {
            return;
        };
        if let Some(member) = self
            .rooms
            .get_mut(key)
            .and_then(|room| room.members.iter_mut().find(|m| m.key == seat))
        {
            member.ready = true;
        }
        self.check_barrier(key, out);
    }

    pub(super) fn chat(&mut self, conn: ConnId, name: Option<&str>, raw: &str, out: &mut Outbox) {
        let Some(name) = name else {
            self.error(conn, None, ErrorCode::RoomRequired, out);
            return;
        };
        // Control characters (but newlines) and format characters (bidi overrides,
        // zero-width) are not chat: they go, as from names.
        let cleaned: String = raw
            .chars()
            .filter(|&c| (!c.is_control() || c == '\n') && !text::is_format(c))
            .collect();
        let text = cleaned.trim();
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
        let (Some(seat), Some(room)) = (self.seat_of(conn), self.rooms.get(key)) else {
            return;
        };
        let entry = ChatEntry {
            seq: room.chat_seq.saturating_add(1),
            seat: seat.id,
            user_id: seat.user_id.clone(),
            username: seat.name.clone(),
            text: text.to_string(),
            server_ts: self.now.wall,
        };
        let index = out.event(chat_event(room.id, &entry));
        for member in &room.members {
            self.send_seat(member.key, index, out);
        }
        let (keep, bytes) = (
            self.config.chat_history_max,
            self.config.chat_history_bytes_max,
        );
        if let Some(room) = self.rooms.get_mut(key) {
            room.chat_seq = entry.seq;
            room.keep_chat(entry, keep, bytes);
        }
    }

    /// Replays room `key`'s kept chat after `seen` to seat `seat` (with the original
    /// `server_ts`).
    pub(super) fn replay_chat(&self, key: usize, seat: usize, seen: u64, out: &mut Outbox) {
        let (Some(conn), Some(room)) = (self.conn_of(seat), self.rooms.get(key)) else {
            return;
        };
        for entry in room.chat.iter().filter(|c| c.seq > seen) {
            out.unicast(conn, chat_event(room.id, entry));
        }
    }

    /// The room `conn` names, if its seat is a member; otherwise tells it once that the
    /// room is gone for it. An empty name is no room and is not answered.
    pub(super) fn member_room(
        &mut self,
        conn: ConnId,
        name: &str,
        out: &mut Outbox,
    ) -> Option<usize> {
        let key = RoomId::parse(name).and_then(|id| self.room_index.get(&id).copied());
        let seat = self.seat_key(conn);
        let hash = name_hash(name);
        let rejoins = self.seat_of(conn).is_some_and(|s| s.caps.rejoins_by_naming)
            && self
                .session(conn)
                .is_some_and(|s| !s.gone_notified.contains(&hash) && !s.left.contains(&hash));
        match key {
            Some(key) if seat.is_some_and(|s| self.rooms.get(key).is_some_and(|r| r.has(s))) => {
                Some(key)
            }
            // Authentication on and no identity: the same answer whether the room exists.
            _ if !self.authenticated(conn) => {
                self.refuse(ErrorCode::NotInRoom);
                None
            }
            // A stock client back after a reconnect names the room it was in: it is let
            // back in (as a member) when it could join it now.
            Some(key) if rejoins && self.readmit(conn, key, out) => Some(key),
            Some(_) => {
                // The room exists: never a lost-room notice (any room_closed ends the party
                // for a stock client for good).
                self.refuse(ErrorCode::NotInRoom);
                None
            }
            None => {
                self.refuse(ErrorCode::RoomNotFound);
                self.notify_gone(conn, name, reason::NOT_FOUND, out);
                None
            }
        }
    }

    /// The room `conn` names and is a member of (`room_required` without a name).
    pub(super) fn named_room(
        &mut self,
        conn: ConnId,
        name: Option<&str>,
        out: &mut Outbox,
    ) -> Option<usize> {
        let Some(name) = name else {
            self.refuse(ErrorCode::RoomRequired);
            return None;
        };
        self.member_room(conn, name, out)
    }

    /// The room `conn` hosts and names; a member who is not the host gets `not_host`.
    pub(super) fn host_room(
        &mut self,
        conn: ConnId,
        name: Option<&str>,
        out: &mut Outbox,
    ) -> Option<usize> {
        let key = self.named_room(conn, name, out)?;
        self.hosted(conn, key, out)
    }

    /// Room `key` if `conn` hosts it (it is a member); otherwise `not_host`.
    pub(super) fn hosted(&mut self, conn: ConnId, key: usize, out: &mut Outbox) -> Option<usize> {
        let room = self.rooms.get(key)?;
        if Some(room.host) != self.seat_key(conn) {
            let id = room.id;
            self.error(conn, Some(id), ErrorCode::NotHost, out);
            return None;
        }
        Some(key)
    }

    pub(super) fn notify_gone(
        &mut self,
        conn: ConnId,
        name: &str,
        why: &'static str,
        out: &mut Outbox,
    ) {
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

    /// The room the sender is in, when it is the one named (or none is named). Never lets
    /// anyone in: unlike the messages a stock client sends after a reconnect, these are only
    /// for members. Otherwise refused `not_in_room`, silently.
    fn seated_room(&mut self, conn: ConnId, name: Option<&str>) -> Option<usize> {
        let key = self.seat_of(conn).and_then(|s| s.room);
        let room = key.and_then(|key| self.rooms.get(key));
        let named = |room: &Room| name.is_none_or(|n| RoomId::parse(n) == Some(room.id));
        if room.is_some_and(named) {
            return key;
        }
        self.refuse(ErrorCode::NotInRoom);
        None
    }

    /// Whether room `key` may be changed for everyone now (content, handover): at most one
    /// such change per `room_refresh_interval_ms`, each sending every member a `room_state`.
    /// Refused `rate_limited` otherwise.
    fn may_refresh(&mut self, conn: ConnId, key: usize, out: &mut Outbox) -> bool {
        let (now, interval) = (self.now.mono, self.config.room_refresh_interval_ms);
        let Some(room) = self.rooms.get(key) else {
            return false;
        };
        let soon = room.refreshed_at.is_some_and(|at| now < at.after(interval));
        if soon {
            let id = room.id;
            self.error(conn, Some(id), ErrorCode::RateLimited, out);
        }
        !soon
    }

    /// The host hands the room to another member of it who is connected, by seat id
    /// (`transfer_host`).
    pub(super) fn transfer_host(
        &mut self,
        conn: ConnId,
        name: Option<&str>,
        to: &str,
        out: &mut Outbox,
    ) {
        let Some(key) = self.seated_room(conn, name) else {
            return;
        };
        let Some(key) = self.hosted(conn, key, out) else {
            return;
        };
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let target = room.members.iter().find(|m| {
            m.key != room.host
                && !m.away
                && self
                    .seats
                    .get(m.key)
                    .is_some_and(|s| s.id.to_string().eq_ignore_ascii_case(to))
        });
        let Some(next) = target.map(|m| m.key) else {
            let id = room.id;
            self.error(conn, Some(id), ErrorCode::PeerNotFound, out);
            return;
        };
        if self.may_refresh(conn, key, out) {
            self.hand_over(key, next, out);
        }
    }

    /// A member takes the host role once the host's connection has been gone for
    /// `host_claim_after_ms` (`claim_host`), rather than waiting for the host's grace to
    /// end. Refused `host_present` while the host is connected or only just gone; the host's
    /// own claim changes nothing.
    pub(super) fn claim_host(&mut self, conn: ConnId, name: Option<&str>, out: &mut Outbox) {
        let Some(key) = self.seated_room(conn, name) else {
            return;
        };
        let (Some(seat), Some(room)) = (self.seat_key(conn), self.rooms.get(key)) else {
            return;
        };
        if room.host == seat {
            return;
        }
        let now = self.now.mono;
        let gone_long_enough = self.conn_of(room.host).is_none()
            && room
                .host_away_since
                .is_some_and(|since| now >= since.after(self.config.host_claim_after_ms));
        // With authentication on, a guest admitted by invite does not take over while the
        // room has another member with an identity, away or not (the handover's own order).
        let guest_behind_members = self.config.auth_enabled
            && self.subject(seat).is_none()
            && room
                .members
                .iter()
                .any(|m| m.key != seat && m.key != room.host && self.subject(m.key).is_some());
        if !gone_long_enough || guest_behind_members {
            let id = room.id;
            self.error(conn, Some(id), ErrorCode::HostPresent, out);
            return;
        }
        if self.may_refresh(conn, key, out) {
            self.hand_over(key, seat, out);
        }
    }

    /// The host sets what the room watches: every member is told (v1: `watch/content`;
    /// OpenWatchParty members get a fresh `room_state`, whose `media_id` is the content id
    /// when it is 32 hex digits, else null).
    pub(super) fn set_content(
        &mut self,
        conn: ConnId,
        name: &str,
        content_id: String,
        out: &mut Outbox,
    ) {
        let Some(key) = self.host_room(conn, Some(name), out) else {
            return;
        };
        // The same rule for every dialect (the OpenWatchParty decoder checks it first).
        if !room::valid_content(&content_id) {
            let id = self.rooms.get(key).map(|r| r.id);
            self.error(conn, id, ErrorCode::InvalidMessage, out);
            return;
        }
        // Nothing changes: nobody is told again.
        if self
            .rooms
            .get(key)
            .is_some_and(|r| r.content_id.as_ref() == Some(&content_id))
        {
            return;
        }
        if !self.may_refresh(conn, key, out) {
            return;
        }
        let media_id = (content_id.len() == 32
            && content_id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| content_id.clone());
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.content_id = Some(content_id);
        room.media_id = media_id;
        room.refreshed_at = Some(self.now.mono);
        let members: Vec<usize> = room.members.iter().map(|m| m.key).collect();
        let (room_id, content_id, host) = (
            room.id,
            room.content_id.clone().unwrap_or_default(),
            room.host,
        );
        let host_user = self.peer(host).user_id;
        for &seat in &members {
            if let Some((conn, state)) = self.room_state(key, seat, false, true) {
                out.unicast(conn, state);
            }
        }
        let index = out.event(Event::Content {
            room: room_id,
            content_id,
            from_user: host_user,
        });
        for seat in members {
            self.send_seat(seat, index, out);
        }
        self.list_changed();
    }

    /// A WebRTC signal for one other member of the sender's room, by user id.
    pub(super) fn signal(
        &mut self,
        conn: ConnId,
        name: &str,
        to_user: &str,
        kind: SignalKind,
        body: Json,
        out: &mut Outbox,
    ) {
        let Some(key) = self.member_room(conn, name, out) else {
            return;
        };
        let (Some(sender), Some(room)) = (self.seat_key(conn), self.rooms.get(key)) else {
            return;
        };
        let target = room
            .members
            .iter()
            .map(|m| m.key)
            .find(|&k| k != sender && self.seats.get(k).is_some_and(|s| s.user_id == to_user));
        let Some(target) = target else {
            self.error(conn, Some(room.id), ErrorCode::PeerNotFound, out);
            return;
        };
        let index = out.event(Event::Signal {
            room: room.id,
            from_user: self.peer(sender).user_id,
            kind,
            body,
        });
        self.send_seat(target, index, out);
    }

    /// Seat `seat` as others see it.
    pub(super) fn peer(&self, seat: usize) -> Peer {
        self.seats.get(seat).map_or_else(Peer::default, |s| Peer {
            seat: s.id,
            user_id: s.user_id.clone(),
            name: s.name.clone(),
        })
    }

    /// `Enter`: sets the seat's user id and name, then joins the room, or creates it with
    /// this id (the caller becomes its host) if it does not exist. A verified seat's user id
    /// is its token's subject: entering under another is refused (`auth_failed`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enter(
        &mut self,
        conn: ConnId,
        room: RoomId,
        alias: String,
        user_id: Option<String>,
        user_name: Option<String>,
        invite: Option<Pass>,
        out: &mut Outbox,
    ) {
        let Some(mine) = self.seat_key(conn) else {
            return;
        };
        let user_id = user_id
            .as_deref()
            .map(|id| text::sanitize_line(id, text::NAME_CHARS_MAX))
            .filter(|id| !id.is_empty());
        // In a room, a connection keeps the user id the others know it by: entering that
        // room again under another (someone else's seat, say) is refused.
        let current = self.seats.get(mine).and_then(|s| s.room);
        let here = current.and_then(|key| self.rooms.get(key)).map(|r| r.id) == Some(room);
        let renamed = user_id
            .as_deref()
            .is_some_and(|id| self.seats.get(mine).is_some_and(|s| s.user_id != id));
        if here && renamed {
            self.error(conn, None, ErrorCode::InvalidMessage, out);
            return;
        }
        // With authentication on and no identity, nothing is said about rooms or members
        // before an invite is checked (no oracle for who or what exists).
        if !self.authenticated(conn) && invite.is_none() {
            self.error(conn, None, ErrorCode::AuthRequired, out);
            return;
        }
        let previous = self.seats.get(mine).map(|s| s.user_id.clone());
        if let Some(subject) = self.subject(mine) {
            if user_id.as_deref().is_some_and(|id| id != subject) {
                self.error(conn, None, ErrorCode::AuthFailed, out);
                return;
            }
        } else if let Some(id) = user_id {
            // A guest (authentication on, no identity) is marked as one: its user id can
            // never be a verified user's.
            let id = if self.config.auth_enabled {
                guest_id(&id)
            } else {
                id
            };
            if let Some(seat) = self.seats.get_mut(mine) {
                seat.user_id = id;
            }
        }
        if let Some(&key) = self.room_index.get(&room) {
            // A private room is entered by invite (or by its owner), take-over included.
            let private = self.rooms.get(key).is_some_and(|r| r.private);
            if private && !self.may_join(conn, key, invite.clone(), out) {
                self.restore_user_id(mine, previous);
                return;
            }
            if self.take_over(conn, key, user_name.as_deref(), out) {
                return;
            }
            if self.user_id_taken(mine, key) {
                // Another identity sits there under this user id: not this one's to use.
                self.error(conn, None, ErrorCode::AuthFailed, out);
                self.restore_user_id(mine, previous);
                return;
            }
            self.join_room(conn, &room.to_string(), user_name, invite, out);
        } else if self.may_create(conn, out) {
            self.create_room_as(
                conn,
                Some(room),
                Some(alias),
                user_name,
                0.0,
                (None, None),
                out,
            );
        }
        if self.outcome != Outcome::Accepted {
            self.restore_user_id(mine, previous);
        }
    }

    /// A refused `Enter` leaves the user id the others know the seat by as it was.
    fn restore_user_id(&mut self, seat: usize, previous: Option<String>) {
        if let (Some(previous), Some(holder)) = (previous, self.seats.get_mut(seat)) {
            if holder.room.is_some() {
                holder.user_id = previous;
            }
        }
    }

    /// Whether another member of room `key` has seat `mine`'s user id.
    fn user_id_taken(&self, mine: usize, key: usize) -> bool {
        let Some(user_id) = self.seats.get(mine).map(|s| &s.user_id) else {
            return false;
        };
        self.rooms.get(key).is_some_and(|room| {
            room.members.iter().any(|m| {
                m.key != mine
                    && self
                        .seats
                        .get(m.key)
                        .is_some_and(|s| &s.user_id == user_id && s.user_id != ANONYMOUS_USER_ID)
            })
        })
    }

    /// A second connection entering a room under the user id of a member held by another
    /// connection takes that seat over: same seat id, same place, same host role. The older
    /// connection is dropped from the core and told to close (`Displaced`); the members see
    /// nothing change. False when there is no such member.
    fn take_over(
        &mut self,
        conn: ConnId,
        key: usize,
        user_name: Option<&str>,
        out: &mut Outbox,
    ) -> bool {
        let Some(mine) = self.seat_key(conn) else {
            return false;
        };
        let user_id = self.peer(mine).user_id;
        let Some(room) = self.rooms.get(key) else {
            return false;
        };
        // With authentication on, only the same verified subject takes a seat over; with it
        // off, user ids are declared and the same one suffices.
        let mine_subject = self.subject(mine);
        let same = |k: usize| match (self.config.auth_enabled, mine_subject) {
            (false, _) => true,
            (true, Some(subject)) => self.subject(k) == Some(subject),
            (true, None) => false,
        };
        let taken = room.members.iter().map(|m| m.key).find(|&k| {
            k != mine
                && same(k)
                && self.seats.get(k).is_some_and(|s| {
                    s.user_id == user_id && s.user_id != ANONYMOUS_USER_ID && s.conn.is_some()
                })
        });
        let Some(seat) = taken else {
            return false;
        };
        // The older connection goes first, so nothing said below reaches it.
        self.displace(seat, out);
        // Leave whatever room this connection was in, drop its own fresh seat, and hold
        // the member's instead, with this connection's resume token (the older one's no
        // longer resumes it).
        self.leave_seat(mine, out);
        let fresh = self.seats.get_mut(mine).and_then(|s| s.resume.take());
        self.remove_seat(mine);
        if let Some(digest) = fresh {
            self.index_resume(seat, digest);
        }
        if let Some(session) = self.session_mut(conn) {
            session.seat = seat;
            session.gone_notified.clear();
        }
        if let Some(holder) = self.seats.get_mut(seat) {
            holder.conn = Some(conn);
        }
        self.rename(seat, user_name);
        let joiner = self.rooms.get(key).is_some_and(|r| r.host != seat);
        self.send_room_state(key, seat, joiner, out);
        true
    }

    /// Records that the command being handled is refused (the first reason stands).
    pub(super) fn refuse(&mut self, code: ErrorCode) {
        if self.outcome == Outcome::Accepted {
            self.outcome = Outcome::Refused(code);
        }
    }

    pub(super) fn error(
        &mut self,
        conn: ConnId,
        room: Option<RoomId>,
        code: ErrorCode,
        out: &mut Outbox,
    ) {
        self.refuse(code);
        if let Some(seat) = self.seat_of(conn) {
            out.unicast(
                conn,
                Event::Error {
                    seat: seat.id,
                    room,
                    code,
                },
            );
        }
    }

    /// `room_state` for seat `seat` of room `key`, and the connection holding the seat.
    pub(super) fn room_state(
        &self,
        key: usize,
        seat: usize,
        joiner: bool,
        refresh: bool,
    ) -> Option<(ConnId, Event)> {
        let (conn, holder, room) = (
            self.conn_of(seat)?,
            self.seats.get(seat)?,
            self.rooms.get(key)?,
        );
        let peers = room
            .members
            .iter()
            .filter(|m| m.key != seat)
            .map(|m| self.peer(m.key))
            .collect();
        let event = Event::RoomState {
            room: room.id,
            seat: holder.id,
            name: room.name.clone(),
            host: room.host_seat(),
            clock: room.clock.reading(self.now.mono),
            participants: room.members.len(),
            media_id: room.media_id.clone(),
            content: room
                .content_id
                .clone()
                .filter(|c| room.media_id.as_ref() != Some(c)),
            server_ts: self.now.wall,
            // A client that executes schedules is told the exact clock; the stock client
            // adds its own lead, so its position has it taken off.
            joiner: joiner && !holder.caps.follows_schedule,
            refresh,
            you: self.peer(seat),
            peers,
            presence: self.presence(key),
        };
        Some((conn, event))
    }

    /// Tells seat `seat` (if a connection holds it) the state of room `key` and its content;
    /// a joiner of a playing room is also told to play from the clock's position now.
    pub(super) fn send_room_state(
        &mut self,
        key: usize,
        seat: usize,
        joiner: bool,
        out: &mut Outbox,
    ) {
        let Some((conn, state)) = self.room_state(key, seat, joiner, false) else {
            return;
        };
        out.unicast(conn, state);
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let clock = room.clock.reading(self.now.mono);
        if let Some(content_id) = room.content_id.clone() {
            out.unicast(
                conn,
                Event::Content {
                    room: room.id,
                    content_id,
                    from_user: self.peer(room.host).user_id,
                },
            );
        }
        // It lands on the host instead of waiting for the next command.
        if joiner && clock.playing {
            out.unicast(
                conn,
                Event::Control {
                    room: room.id,
                    host: room.host_seat(),
                    host_user: self.peer(room.host).user_id,
                    message: ControlMessage {
                        relay: Room::play_relay(clock.position),
                        target: self.now.wall,
                    },
                },
            );
        }
    }
}
