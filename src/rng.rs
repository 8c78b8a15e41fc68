//! A tiny seeded PRNG (SplitMix64) for the core: ids come from it so that a simulation run
//! replays byte for byte. The shell seeds it from the OS once at startup.

/// SplitMix64: small, fast, and good enough for unguessable-in-practice ids when seeded from
/// the OS. Not a CSPRNG; ids here are names, not secrets.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random version-4 UUID.
    pub fn uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        self.next_u64().checked_rem(bound).unwrap_or(0)
    }
}

/// Ids nobody can work out from other ids: SipHash-2-4, a keyed pseudo-random function,
/// over a counter, keyed from the seed. (`Rng`'s SplitMix64 runs backwards: one id it made
/// would give away every id before and after it.) Deterministic for a given seed, so the
/// simulation still replays.
#[derive(Clone, Debug)]
pub struct IdSource {
    k0: u64,
    k1: u64,
    count: u64,
}

impl IdSource {
    /// Keys drawn from `seed`.
    pub fn new(seed: u64) -> IdSource {
        let mut keys = Rng::new(seed);
        IdSource {
            k0: keys.next_u64(),
            k1: keys.next_u64(),
            count: 0,
        }
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        use std::hash::Hasher;
        self.count = self.count.wrapping_add(1);
        // SipHash-2-4 is deprecated as a `Hasher` for maps (std prefers a faster one); as a
        // keyed PRF it is exactly what is wanted here.
        #[allow(deprecated)]
        let mut hasher = std::hash::SipHasher::new_with_keys(self.k0, self.k1);
        hasher.write_u64(self.count);
        hasher.finish()
    }

    /// A random version-4 UUID.
    pub fn uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed gives the same ids; uuids are version 4.
    #[test]
    fn seeded_and_version_four() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let id = a.uuid();
        assert_eq!(id, b.uuid());
        assert_eq!(id.get_version_num(), 4);
        assert_ne!(a.uuid(), id);
    }
}
