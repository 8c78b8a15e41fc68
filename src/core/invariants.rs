//! Structural invariants and memory bounds, checked by tests, the simulation and the fuzzers
//! after every step.

use super::*;

impl Core {
    /// Checks every structural invariant; panics with a description if one fails. Called by
    /// tests, the simulation and the fuzzers after every step (and never by the server).
    // A checker: failing loudly is what it is for.
    #[allow(clippy::expect_used)]
    pub fn check_invariants(&self) {
        assert_eq!(
            self.rooms.len(),
            self.room_index.len(),
            "room index out of step"
        );
        for (key, room) in self.rooms.iter() {
            self.check_room(key, room);
        }
        for (key, seat) in self.seats.iter() {
            if let Some(room) = seat.room {
                let room = self
                    .rooms
                    .get(room)
                    .expect("seat in a room that does not exist");
                assert!(room.has(key), "seat thinks it is in a room it is not in");
            }
            if let Some(conn) = seat.conn {
                assert_eq!(
                    self.seat_key(conn),
                    Some(key),
                    "seat held by a connection that holds another"
                );
            }
            // A seat without a connection waits in grace in a room, shown away; one with a
            // connection is not away.
            assert_eq!(
                seat.conn.is_none(),
                seat.grace.is_some(),
                "grace out of step"
            );
            if seat.conn.is_none() {
                assert!(seat.room.is_some(), "a seat in grace outside any room");
            }
            if let Some(member) = seat.room.and_then(|r| self.rooms.get(r)?.member(key)) {
                assert_eq!(member.away, seat.conn.is_none(), "away out of step");
            }
        }
        for (digest, &key) in &self.resume_index {
            let seat = self
                .seats
                .get(key)
                .expect("resume digest of a seat that is gone");
            assert_eq!(
                seat.resume.as_ref(),
                Some(digest),
                "resume index out of step"
            );
        }
        let mut count: usize = 0;
        for (index, slot) in self.sessions.iter().enumerate() {
            let Some(session) = slot else { continue };
            count = count.saturating_add(1);
            assert_eq!(
                session.conn.index as usize, index,
                "session in the wrong slot"
            );
            let seat = self
                .seats
                .get(session.seat)
                .expect("session without a seat");
            assert_eq!(
                seat.conn,
                Some(session.conn),
                "seat held by another connection"
            );
        }
        assert_eq!(count, self.session_count, "session count out of step");
        self.check_memory();
    }

    /// One room: indexed, one host among its members, members' seats agree, held commands
    /// in order and for members only.
    #[allow(clippy::expect_used)] // A checker, as above.
    fn check_room(&self, key: usize, room: &Room) {
        assert_eq!(
            self.room_index.get(&room.id),
            Some(&key),
            "room {} not indexed",
            room.id
        );
        let hosts = room.members.iter().filter(|m| m.key == room.host).count();
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
                room.members.iter().take(i).all(|m| m.key != member.key),
                "duplicate member"
            );
            let seat = self.seats.get(member.key).expect("member without a seat");
            assert_eq!(seat.room, Some(key), "member's seat points elsewhere");
            assert_eq!(seat.id, member.seat, "member id differs from its seat's");
        }
        for held in &room.held {
            assert!(
                held.recipients.iter().all(|&k| room.has(k)),
                "a command held for a seat that left"
            );
        }
        if room.pending_play.is_some() {
            assert!(!room.all_ready(), "a pending play with everyone ready");
        }
        for pair in room.held.iter().zip(room.held.iter().skip(1)) {
            assert!(pair.0.due <= pair.1.due, "held commands out of order");
        }
    }

    /// The invariants that concern one connection, cheap enough to check after each of its
    /// messages: its session holds a seat that it holds back, and the seat's room (if any)
    /// exists and lists it. `Err` names what is broken.
    pub fn check_conn(&self, conn: ConnId) -> Result<(), &'static str> {
        let Some(session) = self.session(conn) else {
            return Ok(());
        };
        let seat = self
            .seats
            .get(session.seat)
            .ok_or("session without a seat")?;
        if seat.conn != Some(conn) {
            return Err("seat held by another connection");
        }
        match seat.room {
            None => Ok(()),
            Some(key) => match self.rooms.get(key) {
                None => Err("seat in a room that does not exist"),
                Some(room) if !room.has(session.seat) => Err("seat not among its room's members"),
                Some(_) => Ok(()),
            },
        }
    }

    /// Breaks `conn`'s seat, for the tests of what a broken invariant costs (and stops the
    /// debug builds' own invariant checks, which would stop at it).
    #[cfg(test)]
    pub(crate) fn break_seat(&mut self, conn: ConnId) {
        self.faulted = true;
        if let Some(key) = self.seat_key(conn) {
            self.seats.try_remove(key);
        }
    }

    /// Points `conn`'s session at `victim`'s seat, for the tests of a broken invariant.
    #[cfg(test)]
    pub(crate) fn steal_seat(&mut self, conn: ConnId, victim: ConnId) {
        self.faulted = true;
        let Some(seat) = self.seat_key(victim) else {
            return;
        };
        if let Some(own) = self.seat_key(conn) {
            self.seats.try_remove(own);
        }
        if let Some(session) = self.session_mut(conn) {
            session.seat = seat;
        }
    }

    /// After a broken invariant: `conn` is dropped, and whatever referred to what is gone is
    /// scrubbed (members without a seat, rooms without their host, seats in rooms that do not
    /// exist), so nothing stale reaches anyone else.
    pub fn drop_broken(&mut self, now: Now, conn: ConnId, out: &mut Outbox) {
        self.close(now, conn, out);
        self.begin(now);
        // A session whose seat is gone or held by another is dropped too.
        let seats = &self.seats;
        let mut dropped = 0usize;
        for slot in &mut self.sessions {
            let broken = slot.as_ref().is_some_and(|session| {
                seats
                    .get(session.seat)
                    .is_none_or(|seat| seat.conn != Some(session.conn))
            });
            if broken {
                *slot = None;
                dropped = dropped.saturating_add(1);
            }
        }
        self.session_count = self.session_count.saturating_sub(dropped);
        // A member entry counts only if its seat exists under the same id (a reused key is
        // not the member it was).
        let mut orphaned = Vec::new();
        for (key, room) in self.rooms.iter_mut() {
            room.members
                .retain(|m| seats.get(m.key).is_some_and(|seat| seat.id == m.seat));
            let members: Vec<usize> = room.members.iter().map(|m| m.key).collect();
            for held in &mut room.held {
                held.recipients.retain(|k| members.contains(k));
            }
            if !room.has(room.host) {
                orphaned.push(key);
            }
        }
        for key in orphaned {
            self.close_room(key, reason::HOST_LEFT, None, out);
        }
        let rooms = &self.rooms;
        for (_, seat) in self.seats.iter_mut() {
            if seat.room.is_some_and(|key| !rooms.contains(key)) {
                seat.room = None;
            }
        }
        // Seats in grace whose room is gone end; digests of seats that are gone go too.
        let lost: Vec<usize> = self
            .seats
            .iter()
            .filter(|(_, s)| s.conn.is_none() && s.room.is_none())
            .map(|(k, _)| k)
            .collect();
        for key in lost {
            self.remove_seat(key);
        }
        let seats = &self.seats;
        self.resume_index.retain(|digest, key| {
            seats
                .get(*key)
                .is_some_and(|s| s.resume.as_ref() == Some(digest))
        });
        self.finish(out);
    }

    /// Heap bytes the core holds for one connection (its seat's names and identity, the
    /// room names it remembers).
    pub fn session_bytes(&self, conn: ConnId) -> usize {
        let seat = self.seat_of(conn).map_or(0, |s| {
            let identity = match &s.identity {
                Identity::Anonymous => 0,
                Identity::Verified { subject, name } => {
                    subject.capacity().saturating_add(name.capacity())
                }
            };
            s.name
                .capacity()
                .saturating_add(s.user_id.capacity())
                .saturating_add(identity)
        });
        let session = self.session(conn).map_or(0, |s| {
            s.gone_notified
                .capacity()
                .saturating_mul(std::mem::size_of::<u64>())
        });
        seat.saturating_add(session)
    }

    /// The bound of `session_bytes`: four strings (display name, user id, and a verified
    /// identity's subject and name) of at most `NAME_BYTES_MAX` bytes, in strings that may
    /// have grown to twice that, and the remembered room names.
    pub const SESSION_BYTES_MAX: usize =
        8 * text::NAME_BYTES_MAX + 2 * GONE_NOTIFIED_MAX * std::mem::size_of::<u64>();

    /// Every session and room within its memory bound (README's formula).
    pub(super) fn check_memory(&self) {
        for session in self.sessions.iter().flatten() {
            let bytes = self.session_bytes(session.conn);
            assert!(
                bytes <= Self::SESSION_BYTES_MAX,
                "session {} holds {bytes} bytes",
                session.conn
            );
        }
        let room_max = Room::heap_bytes_max(
            self.config.room_members_max,
            self.config.chat_history_max,
            self.config.chat_history_bytes_max,
        );
        for (_, room) in self.rooms.iter() {
            let bytes = room.heap_bytes();
            assert!(bytes <= room_max, "room {} holds {bytes} bytes", room.id);
        }
    }
}
