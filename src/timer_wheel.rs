//! A hierarchical timer wheel: a pure data structure with no clock of its own.
//!
//! Time is `Millis`. Six levels of 64 slots each: level 0 slots are 1 ms wide, level `l` slots
//! are 64^l ms wide, so the horizon is 64^6 ms (about 2 years); later deadlines are clamped to
//! it. Each level keeps an occupancy bitmap, so finding the next non-empty slot is a rotate and
//! a `trailing_zeros`, never a scan. An entry sits in the level given by the highest bit in
//! which its deadline differs from the wheel's current time; when a higher-level slot comes due
//! its entries cascade to lower levels (the same scheme as tokio's runtime wheel).
//!
//! There is no cancel: payloads carry generations or epochs and their owner ignores stale ones.
//! `advance(now)` returns every payload due at or before `now`, ordered by deadline and, for
//! equal deadlines, by insertion order. After `advance(now)`, `next_deadline()` is `None` or
//! strictly after `now`.

// Exceptions to the crate's arithmetic and indexing lints, justified: every slot index is
// masked to `SLOTS - 1` and every level index clamped to `LEVELS - 1` before use, shifts are
// below 64, and times are u64 milliseconds since start (overflow after 584 million years);
// the counters count entries that exist.
#![allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use crate::time::Millis;

const LEVELS: usize = 6;
const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
/// The furthest deadline the wheel can represent, relative to its current time.
const HORIZON_MS: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);

#[derive(Debug)]
struct Entry<T> {
    deadline: u64,
    sequence: u64,
    payload: T,
}

#[derive(Debug)]
struct Level<T> {
    occupied: u64,
    slots: Vec<Vec<Entry<T>>>,
}

/// Deadlines in, due payloads out.
#[derive(Debug)]
pub struct TimerWheel<T> {
    /// The wheel's current time: every slot before it has been processed.
    elapsed: u64,
    levels: Vec<Level<T>>,
    /// Entries inserted with a deadline not after `elapsed`.
    expired: Vec<Entry<T>>,
    sequence: u64,
    len: usize,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel at time zero.
    pub fn new() -> TimerWheel<T> {
        let levels = (0..LEVELS)
            .map(|_| Level {
                occupied: 0,
                slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            })
            .collect();
        TimerWheel {
            elapsed: 0,
            levels,
            expired: Vec::new(),
            sequence: 0,
            len: 0,
        }
    }

    /// Releases slot capacity beyond what the held entries need (after a burst of timers;
    /// 384 slots each keep their peak otherwise).
    pub fn compact(&mut self) {
        for level in &mut self.levels {
            for slot in &mut level.slots {
                slot.shrink_to_fit();
            }
        }
        self.expired.shrink_to_fit();
    }

    /// Number of entries held (stale ones included until they fire).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the wheel holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `payload` at `deadline`. A deadline not after the wheel's time fires on the
    /// next `advance`.
    pub fn insert(&mut self, deadline: Millis, payload: T) {
        let sequence = self.sequence;
        self.sequence = self.sequence.saturating_add(1);
        self.len = self.len.saturating_add(1);
        self.place(Entry {
            deadline: deadline.0,
            sequence,
            payload,
        });
    }

    /// The next instant at which `advance` has work: a firing or a cascade. A cascade
    /// instant may fire nothing, which costs one early wake-up, never a late one.
    pub fn next_deadline(&self) -> Option<Millis> {
        if !self.expired.is_empty() {
            // Already due: report the wheel's own time.
            return Some(Millis(self.elapsed));
        }
        self.next_slot().map(|(deadline, _, _)| Millis(deadline))
    }

    /// Moves the wheel to `now` and appends every payload due at or before it to `due`, in
    /// deadline order, ties in insertion order. Time never moves backwards: an earlier `now`
    /// only fires what is already expired.
    pub fn advance(&mut self, now: Millis, due: &mut Vec<T>) {
        let now = now.0.max(self.elapsed);
        let mut fired: Vec<Entry<T>> = std::mem::take(&mut self.expired);
        while let Some((deadline, level, slot)) = self.next_slot() {
            if deadline > now {
                break;
            }
            self.elapsed = deadline;
            let entries = std::mem::take(&mut self.levels[level].slots[slot]);
            self.levels[level].occupied &= !(1u64 << slot);
            for entry in entries {
                if entry.deadline <= self.elapsed {
                    fired.push(entry);
                } else {
                    self.place(entry);
                }
            }
            // Cascading may have put entries into `expired` (deadline == elapsed).
            fired.append(&mut self.expired);
        }
        self.elapsed = now;
        fired.sort_by_key(|entry| (entry.deadline, entry.sequence));
        self.len = self.len.saturating_sub(fired.len());
        due.extend(fired.into_iter().map(|entry| entry.payload));
        debug_assert!(self.next_deadline().is_none_or(|next| next.0 > now));
    }

    fn place(&mut self, mut entry: Entry<T>) {
        if entry.deadline <= self.elapsed {
            self.expired.push(entry);
            return;
        }
        entry.deadline = entry.deadline.min(self.elapsed + HORIZON_MS - 1);
        let level = level_for(self.elapsed, entry.deadline);
        let slot = ((entry.deadline >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1);
        self.levels[level].slots[slot].push(entry);
        self.levels[level].occupied |= 1u64 << slot;
    }

    /// The earliest occupied slot over all levels: (processing instant, level, slot).
    fn next_slot(&self) -> Option<(u64, usize, usize)> {
        let mut best: Option<(u64, usize, usize)> = None;
        for (level, state) in self.levels.iter().enumerate() {
            if state.occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let now_slot = ((self.elapsed >> shift) as u32) & (SLOTS as u32 - 1);
            let distance = state.occupied.rotate_right(now_slot).trailing_zeros();
            let slot = (now_slot + distance) as usize % SLOTS;
            let level_start = self.elapsed & !(level_range - 1);
            let mut deadline = level_start + slot as u64 * slot_range;
            if deadline <= self.elapsed {
                // Only the top level wraps: its slot belongs to the next cycle.
                deadline = deadline.saturating_add(level_range);
            }
            if best.is_none_or(|(current, _, _)| deadline < current) {
                best = Some((deadline, level, slot));
            }
        }
        best
    }
}

/// The level at which a deadline lives: the highest 6-bit group in which it differs from
/// the wheel's time.
fn level_for(elapsed: u64, deadline: u64) -> usize {
    let masked = (elapsed ^ deadline) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    ((significant / SLOT_BITS) as usize).min(LEVELS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(wheel: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
        let mut due = Vec::new();
        wheel.advance(Millis(now), &mut due);
        due
    }

    /// An entry fires exactly at its deadline, not a millisecond before.
    #[test]
    fn fires_at_deadline_not_before() {
        for deadline in [1u64, 63, 64, 65, 4_095, 4_096, 300_000, 86_400_000] {
            let mut wheel = TimerWheel::new();
            wheel.insert(Millis(deadline), 1);
            assert!(
                drain(&mut wheel, deadline - 1).is_empty(),
                "early at {deadline}"
            );
            assert!(wheel.next_deadline().is_some_and(|next| next.0 <= deadline));
            assert_eq!(drain(&mut wheel, deadline), vec![1], "late at {deadline}");
            assert!(wheel.is_empty());
            assert_eq!(wheel.next_deadline(), None);
        }
    }

    /// Equal deadlines come out in insertion order; different ones in deadline order, even
    /// when inserted at different levels and times.
    #[test]
    fn order_is_deadline_then_insertion() {
        let mut wheel = TimerWheel::new();
        wheel.insert(Millis(100), 1);
        wheel.insert(Millis(5_000), 2);
        wheel.insert(Millis(100), 3);
        assert!(drain(&mut wheel, 90).is_empty());
        wheel.insert(Millis(100), 4);
        wheel.insert(Millis(95), 5);
        assert_eq!(drain(&mut wheel, 10_000), vec![5, 1, 3, 4, 2]);
    }

    /// A deadline in the past fires on the next advance; time never goes backwards.
    #[test]
    fn past_deadlines_fire_immediately() {
        let mut wheel = TimerWheel::new();
        assert!(drain(&mut wheel, 1_000).is_empty());
        wheel.insert(Millis(10), 7);
        assert_eq!(wheel.next_deadline(), Some(Millis(1_000)));
        assert_eq!(drain(&mut wheel, 500), vec![7]);
    }

    /// After every advance the next deadline is strictly in the future (no busy loop), and
    /// a randomized schedule fires each entry exactly once, on time, compared with a model.
    #[test]
    fn randomized_against_a_sorted_model() {
        let mut rng = crate::rng::Rng::new(7);
        for _round in 0..50 {
            let mut wheel = TimerWheel::new();
            let mut model: Vec<(u64, u32)> = Vec::new();
            let mut now = 0u64;
            for id in 0..400u32 {
                let delay = match rng.below(4) {
                    0 => rng.below(70),
                    1 => rng.below(5_000),
                    2 => rng.below(400_000),
                    _ => 0,
                };
                wheel.insert(Millis(now + delay), id);
                model.push((now + delay, id));
                if rng.below(3) == 0 {
                    now += match rng.below(3) {
                        0 => rng.below(10),
                        1 => rng.below(3_000),
                        _ => wheel.next_deadline().map_or(0, |d| d.0.saturating_sub(now)),
                    };
                    let fired = drain(&mut wheel, now);
                    let mut expected: Vec<(u64, u32)> =
                        model.iter().copied().filter(|(d, _)| *d <= now).collect();
                    expected.sort();
                    model.retain(|(d, _)| *d > now);
                    assert_eq!(
                        fired,
                        expected.iter().map(|(_, id)| *id).collect::<Vec<_>>()
                    );
                    assert!(wheel.next_deadline().is_none_or(|d| d.0 > now));
                    assert_eq!(wheel.len(), model.len());
                }
            }
        }
    }

    /// Deadlines beyond the horizon are clamped, not lost.
    #[test]
    fn far_deadlines_are_clamped() {
        let mut wheel = TimerWheel::new();
        wheel.insert(Millis(u64::MAX / 2), 9);
        assert_eq!(wheel.len(), 1);
        assert_eq!(drain(&mut wheel, HORIZON_MS), vec![9]);
    }
}
