//! Parties that survive: seats that outlive their connection for a grace period (shown
//! away), host handover, and the re-admission of a reconnected client that names its old
//! room (the stock OpenWatchParty client, which knows nothing of resuming).

use super::*;

impl Core {
    /// `seat`'s connection is gone: if it is in a room, it waits there `resume_grace_ms` for
    /// the connection to come back (a host also starts its room's `host_grace_ms`). False
    /// when it is not kept (no room, grace 0, or a host under `room_close_on_host_leave`).
    pub(super) fn hold_seat(&mut self, seat: usize, out: &mut Outbox) -> bool {
        let grace = self.config.resume_grace_ms;
        let Some(key) = self.seats.get(seat).and_then(|s| s.room) else {
            return false;
        };
        let Some(room) = self.rooms.get(key) else {
            return false;
        };
        let is_host = room.host == seat;
        let chat_seen = room.chat_seq;
        if grace == 0 || (is_host && self.config.room_close_on_host_leave) {
            return false;
        }
        let serial = self.next_serial();
        if let Some(holder) = self.seats.get_mut(seat) {
            holder.conn = None;
            holder.grace = Some(serial);
            holder.chat_seen = chat_seen;
        }
        let now = self.now.mono;
        if let Some(room) = self.rooms.get_mut(key) {
            if is_host {
                room.host_away_since = Some(now);
            }
            if let Some(member) = room.members.iter_mut().find(|m| m.key == seat) {
                member.away = true;
            }
        }
        self.timers
            .insert(now.after(grace), CoreTimer::SeatGrace { seat, serial });
        if is_host {
            let wait = self.config.host_grace_ms.min(grace);
            self.timers
                .insert(now.after(wait), CoreTimer::HostGrace { room: key, serial });
        }
        // Nobody waits for an absent member.
        self.presence_changed(key, out);
        self.check_barrier(key, out);
        true
    }

    /// A seat's grace ended: if it is still away (the same absence), it leaves its room and
    /// is gone.
    pub(super) fn seat_grace_ends(&mut self, seat: usize, serial: u64, out: &mut Outbox) {
        let still_away = self
            .seats
            .get(seat)
            .is_some_and(|s| s.grace == Some(serial) && s.conn.is_none());
        if !still_away {
            return;
        }
        self.leave_seat(seat, out);
        self.remove_seat(seat);
    }

    /// A room's host has been away for `host_grace_ms` (the same absence): the
    /// longest-present member with a connection becomes host. With none, the host stays
    /// host until its seat's grace ends.
    pub(super) fn host_grace_ends(&mut self, key: usize, serial: u64, out: &mut Outbox) {
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let host = room.host;
        let same_absence = self
            .seats
            .get(host)
            .is_some_and(|s| s.grace == Some(serial) && s.conn.is_none());
        if !same_absence {
            return;
        }
        if let Some(next) = self.successor(key, host) {
            self.hand_over(key, next, out);
        }
    }

    /// The member who would host room `key` after `leaving`: the longest present one with a
    /// connection, else the longest present one; with authentication on, members with a
    /// verified identity come before guests admitted by invite.
    pub(super) fn successor(&self, key: usize, leaving: usize) -> Option<usize> {
        let room = self.rooms.get(key)?;
        let auth = self.config.auth_enabled;
        let others = || room.members.iter().filter(|m| m.key != leaving);
        let rank = |m: &&Member| {
            let guest = auth && self.subject(m.key).is_none();
            (guest, m.away)
        };
        // Join order breaks ties: `min_by_key` keeps the first of equals.
        others().min_by_key(rank).map(|m| m.key)
    }

    /// `next` becomes host of room `key`: every member is told (`host_change`) and gets a
    /// fresh room state (the stock client learns it is host only from `room_state`); within
    /// `room_refresh_interval_ms` of the room's last such change, only the new host does.
    pub(super) fn hand_over(&mut self, key: usize, next: usize, out: &mut Outbox) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.host = next;
        // Handovers that come faster than `room_refresh_interval_ms` (a host leaving right
        // after it became host, in a loop) tell everyone `host_change`, and only the new host
        // its fresh `room_state`.
        let now = self.now.mono;
        let interval = self.config.room_refresh_interval_ms;
        let soon = room.refreshed_at.is_some_and(|at| now < at.after(interval));
        room.refreshed_at = Some(now);
        room.host_away_since = match self.seats.get(next).and_then(|s| s.conn) {
            Some(_) => None,
            None => Some(self.now.mono),
        };
        self.counters.handovers = self.counters.handovers.saturating_add(1);
        // A play waiting for members was the old host's: it stands, the new host can
        // change it. Commands held for stock members stay on their way.
        let (id, members): (RoomId, Vec<usize>) =
            (room.id, room.members.iter().map(|m| m.key).collect());
        let next_peer = self.peer(next);
        let index = out.event(Event::HostChange {
            room: id,
            host: next_peer.seat,
            host_user: next_peer.user_id,
        });
        for &member in &members {
            self.send_seat(member, index, out);
        }
        for member in members.into_iter().filter(|&m| !soon || m == next) {
            if let Some((conn, state)) = self.room_state(key, member, false, true) {
                out.unicast(conn, state);
            }
        }
        self.list_changed();
    }

    /// A client in no room names room `key` (a stock client back after a reconnect, which
    /// keeps its old room id): it is admitted again as a member, never as host, when it
    /// could join that room now (not private, authenticated if authentication is on, not
    /// full). True when admitted.
    pub(super) fn readmit(&mut self, conn: ConnId, key: usize, out: &mut Outbox) -> bool {
        let Some(seat) = self.seat_key(conn) else {
            return false;
        };
        if self.seats.get(seat).is_some_and(|s| s.room.is_some()) {
            return false;
        }
        let Some(room) = self.rooms.get(key) else {
            return false;
        };
        if room.private || !self.authenticated(conn) {
            return false;
        }
        // A full room whose members are partly away (after a restart, all are): an away seat
        // gives way; the client naming the room is most likely its owner, back without a
        // resume token.
        if !self.make_room(key, out) {
            return false;
        }
        if let Some(session) = self.session_mut(conn) {
            session.gone_notified.clear();
        }
        self.counters.readmissions = self.counters.readmissions.saturating_add(1);
        self.seat_joins(seat, key, out);
        true
    }
}

impl Core {
    /// The connection holding seat `key`, if any, loses it: its session is dropped and it is
    /// told to close (`Displaced`); the seat is left without a connection for a moment.
    pub(super) fn displace(&mut self, key: usize, out: &mut Outbox) {
        let Some(old) = self.conn_of(key) else {
            return;
        };
        if let Some(slot) = self.sessions.get_mut(old.index as usize) {
            if slot.as_ref().is_some_and(|s| s.conn == old) {
                *slot = None;
                self.session_count = self.session_count.saturating_sub(1);
            }
        }
        if let Some(seat) = self.seats.get_mut(key) {
            seat.conn = None;
        }
        out.unicast(old, Event::Displaced);
    }

    /// Removes seat `key` and its resume digest.
    pub(super) fn remove_seat(&mut self, key: usize) {
        if let Some(seat) = self.seats.try_remove(key) {
            if let Some(digest) = seat.resume {
                if self.resume_index.get(&digest) == Some(&key) {
                    self.resume_index.remove(&digest);
                }
            }
        }
    }

    /// Gives seat `key` the resume digest `digest` (its client's latest token).
    pub(super) fn index_resume(&mut self, key: usize, digest: String) {
        let Some(seat) = self.seats.get_mut(key) else {
            return;
        };
        if let Some(old) = seat.resume.replace(digest.clone()) {
            if self.resume_index.get(&old) == Some(&key) {
                self.resume_index.remove(&old);
            }
        }
        self.resume_index.insert(digest, key);
    }

    /// `resume {token}` (`digest` is the token's digest, made at the edge): the seat it
    /// names, if it is in a room, becomes `conn`'s. Anything else is `resume_failed`, never
    /// someone else's seat. Resuming the seat one holds changes nothing.
    pub(super) fn resume(&mut self, conn: ConnId, digest: &str, out: &mut Outbox) {
        let target = self.resume_index.get(digest).copied();
        let mine = self.seat_key(conn);
        if target.is_some() && target == mine {
            return;
        }
        let resumable = target.filter(|&t| self.seats.get(t).is_some_and(|s| s.room.is_some()));
        let Some(target) = resumable else {
            self.error(conn, None, ErrorCode::ResumeFailed, out);
            return;
        };
        self.counters.resumes = self.counters.resumes.saturating_add(1);
        self.attach(conn, target, out);
    }

    /// With authentication on, a connection in no room that authenticates as the subject
    /// of a seat in grace gets that seat back (the stock client re-sends `auth` on
    /// reconnect and knows nothing of resume tokens). A declared user id never reclaims
    /// anything.
    pub(super) fn reclaim(&mut self, conn: ConnId, out: &mut Outbox) {
        let Some(mine) = self.seat_key(conn) else {
            return;
        };
        if self.seats.get(mine).is_some_and(|s| s.room.is_some()) {
            return;
        }
        let Some(subject) = self.subject(mine).map(str::to_string) else {
            return;
        };
        let waiting = self.seats.iter().find(|(k, s)| {
            *k != mine
                && s.conn.is_none()
                && s.grace.is_some()
                && s.room.is_some()
                && matches!(&s.identity, Identity::Verified { subject: sub, .. } if *sub == subject)
        });
        if let Some((target, _)) = waiting {
            self.counters.reclaims = self.counters.reclaims.saturating_add(1);
            self.attach(conn, target, out);
        }
    }

    /// `conn` takes seat `target` (in a room): its own fresh seat is dropped (its resume
    /// digest, the newest its client holds, moves to `target`), a connection still holding
    /// `target` is displaced, and `conn` gets the seat's id, the room's state and the chat
    /// it missed. The others see the member come back, nothing else.
    fn attach(&mut self, conn: ConnId, target: usize, out: &mut Outbox) {
        let Some(mine) = self.seat_key(conn) else {
            return;
        };
        // The older connection goes first, so nothing said below reaches it; a seat that was
        // still held has seen all the chat.
        let held = self.conn_of(target).is_some();
        self.displace(target, out);
        self.leave_seat(mine, out);
        let fresh = self.seats.get_mut(mine).and_then(|s| s.resume.take());
        self.remove_seat(mine);
        if let Some(digest) = fresh {
            self.index_resume(target, digest);
        }
        if let Some(session) = self.session_mut(conn) {
            session.seat = target;
            session.gone_notified.clear();
        }
        let Some(seat) = self.seats.get_mut(target) else {
            return;
        };
        seat.conn = Some(conn);
        seat.grace = None;
        let (id, key, seen) = (seat.id, seat.room, seat.chat_seen);
        let Some(key) = key else {
            return;
        };
        let seen = if held {
            self.rooms.get(key).map_or(seen, |r| r.chat_seq)
        } else {
            seen
        };
        let mut host = false;
        if let Some(room) = self.rooms.get_mut(key) {
            host = room.host == target;
            if host {
                room.host_away_since = None;
            }
            if let Some(member) = room.members.iter_mut().find(|m| m.key == target) {
                member.away = false;
            }
        }
        out.unicast(
            conn,
            Event::Hello {
                seat: id,
                resume_token: None,
            },
        );
        self.send_room_state(key, target, !host, out);
        self.replay_chat(key, target, seen, out);
        self.presence_changed_except(key, Some(target), out);
    }
}

impl Core {
    /// Room `key`'s members as it shows them, in join order.
    pub(super) fn presence(&self, key: usize) -> Vec<types::Presence> {
        let Some(room) = self.rooms.get(key) else {
            return Vec::new();
        };
        room.members
            .iter()
            .map(|m| types::Presence {
                seat: m.seat,
                name: self
                    .seats
                    .get(m.key)
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                host: m.key == room.host,
                away: m.away,
                buffering: m.buffering,
                latency_ms: m.latency_ms,
            })
            .collect()
    }

    /// Tells every member of room `key` its members' presence (someone went away, came
    /// back, started or stopped buffering).
    pub(super) fn presence_changed(&mut self, key: usize, out: &mut Outbox) {
        self.presence_changed_except(key, None, out);
    }

    /// `presence_changed`, not told to `except` (who was just told the room's state). At
    /// most one update per `presence_interval_ms` per room: a change sooner is told when
    /// the interval is over, with whatever else changed meanwhile.
    pub(super) fn presence_changed_except(
        &mut self,
        key: usize,
        except: Option<usize>,
        out: &mut Outbox,
    ) {
        let (now, interval) = (self.now.mono, self.config.presence_interval_ms);
        let serial = self.rooms.get(key).map_or(0, |r| r.serial);
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        if let Some(at) = room.presence_at.filter(|at| now.since(*at) < interval) {
            if !room.presence_pending {
                room.presence_pending = true;
                self.timers.insert(
                    at.after(interval),
                    CoreTimer::PresenceDue { room: key, serial },
                );
            }
            return;
        }
        room.presence_at = Some(now);
        room.presence_pending = false;
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let (id, count) = (room.id, room.members.len());
        let members: Vec<usize> = room.members.iter().map(|m| m.key).collect();
        let index = out.event(Event::Presence {
            room: id,
            count,
            presence: self.presence(key),
        });
        for member in members.into_iter().filter(|&m| Some(m) != except) {
            self.send_seat(member, index, out);
        }
    }

    /// The room's members are told its presence (the whole list) one presence interval from
    /// now, or from its last update if that is sooner, unless an update is already due.
    pub(super) fn presence_later(&mut self, key: usize) {
        let (now, interval) = (self.now.mono, self.config.presence_interval_ms);
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        if room.presence_pending {
            return;
        }
        let at = match room.presence_at {
            Some(at) if now.since(at) < interval => at.after(interval),
            _ => now.after(interval),
        };
        room.presence_pending = true;
        let serial = room.serial;
        self.timers
            .insert(at, CoreTimer::PresenceDue { room: key, serial });
    }

    /// A room's delayed presence update is due (if the room is still the one it was for).
    pub(super) fn presence_due(&mut self, key: usize, serial: u64, out: &mut Outbox) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        if room.serial != serial || !room.presence_pending {
            return;
        }
        room.presence_at = None;
        self.presence_changed(key, out);
    }

    /// What a member says about itself in a playback message (`play_state: buffering`, an
    /// `action: buffering`, a play state that ends it, `reported_latency`), in the room
    /// `name` it is a member of. A change of buffering is told to every member and may
    /// release a pending play. True when the sender is not the host and said something about
    /// itself (its message is then answered by nothing else).
    pub(super) fn member_says(
        &mut self,
        conn: ConnId,
        key: usize,
        buffering: Option<bool>,
        latency_ms: Option<u32>,
        out: &mut Outbox,
    ) -> bool {
        let Some(seat) = self.seat_key(conn) else {
            return false;
        };
        let Some(room) = self.rooms.get_mut(key) else {
            return false;
        };
        let is_host = room.host == seat;
        let Some(member) = room.members.iter_mut().find(|m| m.key == seat) else {
            return false;
        };
        if let Some(latency) = latency_ms {
            member.latency_ms = Some(latency);
        }
        // The host's buffering is the room's: it freezes the clock (playback), not a mark.
        let buffering = buffering.filter(|_| !is_host);
        let changed = buffering.is_some_and(|b| b != member.buffering);
        if let Some(b) = buffering {
            member.buffering = b;
        }
        if changed {
            self.presence_changed(key, out);
            self.check_barrier(key, out);
        }
        // A member's own news: a latency, a stall, or the end of its stall.
        let said = latency_ms.is_some() || buffering == Some(true) || changed;
        !is_host && said
    }

    /// The host's `force_resync {target_position}`: every member (host included) is told
    /// to be at `position` at an instant `control_schedule_ms` ahead, and the room clock
    /// jumps there then.
    pub(super) fn force_resync(
        &mut self,
        conn: ConnId,
        name: Option<&str>,
        position: f64,
        out: &mut Outbox,
    ) {
        let Some(key) = self.host_room(conn, name, out) else {
            return;
        };
        let lead = self.config.control_schedule_ms;
        let (at, target) = later(self.now, lead);
        let now = self.now.mono;
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.clock
            .apply_control(now, at, &types::ControlAction::Seek, Some(position), None);
        let (id, host) = (room.id, room.host_seat());
        let members: Vec<usize> = room.members.iter().map(|m| m.key).collect();
        let index = out.event(Event::ForceResync {
            room: id,
            host,
            position,
            target,
        });
        for member in members {
            self.send_seat(member, index, out);
        }
    }
}

impl Core {
    /// Whether room `key` has a place for one more member; a full room makes one by letting
    /// its first away seat other than the host's go (seats waiting in grace must not keep
    /// the living out).
    pub(super) fn make_room(&mut self, key: usize, out: &mut Outbox) -> bool {
        let Some(room) = self.rooms.get(key) else {
            return false;
        };
        if room.members.len() < self.config.room_members_max {
            return true;
        }
        let host = room.host;
        let Some(away) = room
            .members
            .iter()
            .find(|m| m.away && m.key != host)
            .map(|m| m.key)
        else {
            return false;
        };
        self.leave_seat(away, out);
        self.remove_seat(away);
        true
    }

    /// At `rooms_max`, a room whose members are all away (nobody is connected to it) is
    /// closed to make way for a new one, the longest-standing first. False if there is none.
    pub(super) fn make_way_for_a_room(&mut self, out: &mut Outbox) -> bool {
        let idle = self
            .rooms
            .iter()
            .filter(|(_, room)| room.members.iter().all(|m| m.away))
            .min_by_key(|(_, room)| room.serial)
            .map(|(key, _)| key);
        let Some(key) = idle else {
            return false;
        };
        self.close_room(key, reason::HOST_LEFT, None, out);
        let seats: Vec<usize> = self
            .seats
            .iter()
            .filter(|(_, s)| s.conn.is_none() && s.room.is_none())
            .map(|(k, _)| k)
            .collect();
        for seat in seats {
            self.remove_seat(seat);
        }
        true
    }
}
