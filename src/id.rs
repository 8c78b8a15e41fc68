//! Identifiers. `ConnId` names a connection slot with a generation so that a stale event or
//! timer can never reach a connection that later reused the same slab slot. `SeatId` is the
//! random UUID a client sees as its `client_id`; it is never derived from a slot index.

use std::fmt;

const _: () = assert!(usize::BITS == 64, "ConnId packs into a 64-bit mio token");

/// A connection: slab index plus generation. Generation 0 is reserved for fixed tokens (the
/// listener and the signal pipe), so a connection token never equals one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    /// Slot in the connection slab.
    pub index: u32,
    /// Server-wide counter value when the slot was filled; starts at 1.
    pub generation: u32,
}

impl ConnId {
    /// Packs into a token value: generation high, index low.
    pub fn to_token(self) -> usize {
        ((self.generation as usize) << 32) | self.index as usize
    }

    /// Unpacks a token value; `None` for the reserved generation 0.
    pub fn from_token(token: usize) -> Option<ConnId> {
        let generation = (token >> 32) as u32;
        if generation == 0 {
            return None;
        }
        Some(ConnId {
            index: token as u32,
            generation,
        })
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.index, self.generation)
    }
}

/// A seat: what the client knows as `client_id` (and `host_id`, chat `client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeatId(pub uuid::Uuid);

/// A room, as clients name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(pub uuid::Uuid);

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl RoomId {
    /// Parses a room id as a client sends it back; anything else names no room.
    pub fn parse(text: &str) -> Option<RoomId> {
        if text.len() != 36 {
            return None;
        }
        uuid::Uuid::try_parse(text).ok().map(RoomId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token round-trips, and the reserved generation never decodes to a connection.
    #[test]
    fn token_round_trip_and_reserved_generation() {
        let id = ConnId {
            index: 7,
            generation: 3,
        };
        assert_eq!(ConnId::from_token(id.to_token()), Some(id));
        assert_eq!(ConnId::from_token(0), None);
        assert_eq!(ConnId::from_token(1), None);
    }

    /// Only the canonical 36-character form names a room.
    #[test]
    fn room_id_parse_is_strict_about_length() {
        assert!(RoomId::parse("550e8400-e29b-41d4-a716-446655440000").is_some());
        assert!(RoomId::parse("550e8400e29b41d4a716446655440000").is_none());
        assert!(RoomId::parse("").is_none());
    }
}
