//! Time as data: the two clocks Tandem uses, as plain integers.
//!
//! `Millis` is monotonic milliseconds since the server started; every deadline, cooldown and
//! room clock uses it. `UnixMillis` is wall-clock milliseconds since the Unix epoch; it is only
//! ever written into `ts`/`server_ts` fields for clients. The two are never subtracted from
//! each other. `Now` carries one reading of both, taken by the shell and passed into the pure
//! layers, which never read a clock themselves.

use std::ops::{Add, Sub};

/// Monotonic milliseconds since the server started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

/// Wall-clock milliseconds since the Unix epoch, as sent to clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub u64);

/// One reading of both clocks, taken together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: for deadlines and room clocks.
    pub mono: Millis,
    /// Wall time: for `server_ts` and friends.
    pub wall: UnixMillis,
}

impl Now {
    /// The wall-clock instant that corresponds to the monotonic instant `at`, using this
    /// reading's pairing of the two clocks.
    pub fn wall_at(self, at: Millis) -> UnixMillis {
        if at >= self.mono {
            UnixMillis(self.wall.0.saturating_add(at.since(self.mono)))
        } else {
            UnixMillis(self.wall.0.saturating_sub(self.mono.since(at)))
        }
    }

    /// Both clocks moved forward by `ms`.
    pub fn plus(self, ms: u64) -> Now {
        Now {
            mono: self.mono.after(ms),
            wall: UnixMillis(self.wall.0.saturating_add(ms)),
        }
    }
}

impl Millis {
    /// `ms` milliseconds later (saturating: never wraps).
    pub fn after(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<u64> for Millis {
    type Output = Millis;
    fn add(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

impl Sub<u64> for Millis {
    type Output = Millis;
    fn sub(self, ms: u64) -> Millis {
        Millis(self.0.saturating_sub(ms))
    }
}

/// The real clocks, read in exactly one place (the shell calls this once per turn, and once
/// more when it stamps a pong's send instant).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    /// A clock whose monotonic zero is now.
    #[allow(clippy::disallowed_methods)] // The one sanctioned clock read.
    pub fn start() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }

    /// Reads both clocks.
    #[allow(clippy::disallowed_methods)] // The one sanctioned clock read.
    pub fn now(&self) -> Now {
        let mono = Millis(self.start.elapsed().as_millis() as u64);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Now {
            mono,
            wall: UnixMillis(wall),
        }
    }

    /// Microseconds since the clock started (turn durations for metrics).
    #[allow(clippy::disallowed_methods)] // The one sanctioned clock read.
    pub fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// The `Instant` of a monotonic deadline, so the poll timeout can be computed precisely.
    pub fn instant_of(&self, at: Millis) -> std::time::Instant {
        self.start
            .checked_add(std::time::Duration::from_millis(at.0))
            .unwrap_or(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wall_at maps monotonic instants either side of the reading onto the wall clock.
    #[test]
    fn wall_at_maps_both_directions() {
        let now = Now {
            mono: Millis(1_000),
            wall: UnixMillis(50_000),
        };
        assert_eq!(now.wall_at(Millis(1_300)), UnixMillis(50_300));
        assert_eq!(now.wall_at(Millis(400)), UnixMillis(49_400));
        assert_eq!(Millis(5).since(Millis(9)), 0);
    }
}
