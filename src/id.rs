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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// The room a name stands for: a UUID is that room; any other name (1–64 characters of
    /// `[A-Za-z0-9_-]`) stands for a UUID derived from it (FNV-1a, 128 bits, marked version 8),
    /// so a dialect with named rooms and one with UUID rooms can meet in the same room.
    pub fn from_name(name: &str) -> Option<RoomId> {
        if let Some(id) = RoomId::parse(name) {
            return Some(id);
        }
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return None;
        }
        let hash = name
            .bytes()
            .fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d_u128, |h, b| {
                (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b)
            });
        Some(RoomId(
            uuid::Builder::from_custom_bytes(hash.to_be_bytes()).into_uuid(),
        ))
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

#[cfg(test)]
mod name_tests {
    use super::*;

    /// A UUID names itself; other valid names derive a stable UUID; invalid names none.
    #[test]
    fn room_names() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(RoomId::from_name(uuid), RoomId::parse(uuid));
        let a = RoomId::from_name("movie-night").expect("valid");
        assert_eq!(RoomId::from_name("movie-night"), Some(a));
        assert_ne!(RoomId::from_name("movie_night"), Some(a));
        assert_eq!(a.0.get_version_num(), 8);
        for bad in ["", "has space", "é", &"x".repeat(65)] {
            assert_eq!(RoomId::from_name(bad), None, "{bad:?}");
        }
        assert!(RoomId::from_name(&"x".repeat(64)).is_some());
    }
}
