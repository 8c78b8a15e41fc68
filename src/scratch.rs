//! Scratch vectors reused across calls: kept between bursts, released after one.

/// Scratch capacity kept between turns.
pub const SCRATCH_KEPT: usize = 1_024;

/// Releases a scratch vector's excess capacity once a burst is over.
pub fn trim<T>(scratch: &mut Vec<T>) {
    if scratch.is_empty() && scratch.capacity() > 4 * SCRATCH_KEPT {
        scratch.shrink_to(SCRATCH_KEPT);
    }
}
