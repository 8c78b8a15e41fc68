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
        if grace == 0 || (is_host && self.config.room_close_on_host_leave) {
            return false;
        }
        let serial = self.next_serial();
        if let Some(holder) = self.seats.get_mut(seat) {
            holder.conn = None;
            holder.grace = Some(serial);
        }
        if let Some(member) = self
            .rooms
            .get_mut(key)
            .and_then(|room| room.members.iter_mut().find(|m| m.key == seat))
        {
            member.away = true;
        }
        let now = self.now.mono;
        self.timers
            .insert(now.after(grace), CoreTimer::SeatGrace { seat, serial });
        if is_host {
            let wait = self.config.host_grace_ms.min(grace);
            self.timers
                .insert(now.after(wait), CoreTimer::HostGrace { room: key, serial });
        }
        // Nobody waits for an absent member.
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
        self.seats.try_remove(seat);
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
    /// connection, else the longest present one.
    pub(super) fn successor(&self, key: usize, leaving: usize) -> Option<usize> {
        let room = self.rooms.get(key)?;
        let others = || room.members.iter().filter(|m| m.key != leaving);
        others()
            .find(|m| !m.away)
            .or_else(|| others().next())
            .map(|m| m.key)
    }

    /// `next` becomes host of room `key`: every member is told (`host_change`) and gets a
    /// fresh room state (the stock client learns it is host only from `room_state`).
    pub(super) fn hand_over(&mut self, key: usize, next: usize, out: &mut Outbox) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.host = next;
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
        for member in members {
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
        let allowed = !room.private
            && self.authenticated(conn)
            && room.members.len() < self.config.room_members_max;
        if !allowed {
            return false;
        }
        if let Some(session) = self.session_mut(conn) {
            session.gone_notified.clear();
        }
        self.seat_joins(seat, key, out);
        true
    }
}
