//! Structural invariants and memory bounds, checked by tests, the simulation and the fuzzers
//! after every step.

use super::*;

impl Core {
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
    pub(super) fn check_memory(&self) {
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
}
