//! When to hand memory back to the OS: once departed WebSockets have freed enough, and once
//! their wave is over. Pure: the event loop feeds it the engine's freed-bytes counter and the
//! time, and compacts and releases when it says so.

use crate::time::Millis;

/// A wave of departures is over after this long without one.
pub const QUIET_MS: u64 = 1_000;
/// A release is never put off longer than this after the threshold is crossed, so steady
/// churn still gets one every few seconds (each costs a few milliseconds).
pub const WAIT_MAX_MS: u64 = 5_000;

/// The release schedule.
#[derive(Clone, Debug, Default)]
pub struct ReleasePolicy {
    /// `MEMORY_RELEASE_AFTER_BYTES`; 0 never releases.
    after_bytes: u64,
    /// The counter at the last release.
    released_at: u64,
    /// The counter at the last look.
    seen: u64,
    /// Latest instant for the pending release.
    cap: Option<Millis>,
    /// When the pending release is due.
    due: Option<Millis>,
}

impl ReleasePolicy {
    /// Releases after `after_bytes` freed (0: never).
    pub fn new(after_bytes: u64) -> ReleasePolicy {
        ReleasePolicy {
            after_bytes,
            ..ReleasePolicy::default()
        }
    }

    /// Looks at the freed-bytes counter at `now`; true when a release is due now.
    pub fn tick(&mut self, freed: u64, now: Millis) -> bool {
        if self.after_bytes == 0 {
            return false;
        }
        if freed != self.seen {
            self.seen = freed;
            if freed.saturating_sub(self.released_at) >= self.after_bytes {
                let cap = *self.cap.get_or_insert(now.after(WAIT_MAX_MS));
                self.due = Some(now.after(QUIET_MS).min(cap));
            }
        }
        match self.due {
            Some(due) if now >= due => {
                self.due = None;
                self.cap = None;
                self.released_at = freed;
                true
            }
            _ => false,
        }
    }

    /// When the pending release is due, for the poll timeout.
    pub fn deadline(&self) -> Option<Millis> {
        self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn waits_for_the_threshold_then_for_the_wave_to_end() {
        let mut policy = ReleasePolicy::new(256 * KIB);
        assert!(!policy.tick(100 * KIB, Millis(0)));
        assert_eq!(policy.deadline(), None, "under the threshold");
        assert!(!policy.tick(300 * KIB, Millis(10)));
        assert_eq!(policy.deadline(), Some(Millis(1_010)));
        // Each further departure pushes it back.
        assert!(!policy.tick(400 * KIB, Millis(500)));
        assert_eq!(policy.deadline(), Some(Millis(1_500)));
        assert!(!policy.tick(400 * KIB, Millis(1_499)));
        assert!(policy.tick(400 * KIB, Millis(1_500)));
        assert_eq!(policy.deadline(), None);
        // Nothing more freed: no second release.
        assert!(!policy.tick(400 * KIB, Millis(9_000)));
        // The next wave counts from the last release.
        assert!(!policy.tick(600 * KIB, Millis(9_100)));
        assert_eq!(policy.deadline(), None, "200 KiB since the release");
        assert!(!policy.tick(700 * KIB, Millis(9_200)));
        assert_eq!(policy.deadline(), Some(Millis(10_200)));
    }

    #[test]
    fn steady_churn_is_released_at_most_every_wait_max() {
        let mut policy = ReleasePolicy::new(256 * KIB);
        let mut releases = Vec::new();
        // 100 KiB freed every 100 ms for 20 s: never quiet for a second.
        for step in 1..=200u64 {
            let now = Millis(step * 100);
            if policy.tick(step * 100 * KIB, now) {
                releases.push(now.0);
            }
        }
        assert!(releases.len() >= 3, "{releases:?}");
        for pair in releases.windows(2) {
            assert!(pair[1] - pair[0] >= WAIT_MAX_MS, "{releases:?}");
        }
    }

    #[test]
    fn zero_never_releases() {
        let mut policy = ReleasePolicy::new(0);
        for step in 0..100u64 {
            assert!(!policy.tick(step << 30, Millis(step * 1_000)));
        }
        assert_eq!(policy.deadline(), None);
    }
}
