//! Connection ids for harnesses that drive the core or the gateway without an engine, made
//! as the engine's slab makes them: the slot freed last is reused first, and every id gets a
//! new generation, so a stale id never names the connection now in its slot.

use tandem::id::ConnId;

/// The id allocator.
#[derive(Debug, Default)]
pub struct ConnIds {
    /// Slots ever handed out.
    slots: u32,
    /// Freed slot indices, reused last-freed first (as slab does).
    free: Vec<u32>,
    /// The last generation handed out.
    generation: u32,
}

impl ConnIds {
    /// A fresh id: a freed slot if there is one, a new slot otherwise; a new generation.
    pub fn fresh(&mut self) -> ConnId {
        self.generation += 1;
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots += 1;
            self.slots - 1
        });
        ConnId {
            index,
            generation: self.generation,
        }
    }

    /// `conn` is closed: its slot may be reused (with a new generation).
    pub fn release(&mut self, conn: ConnId) {
        self.free.push(conn.index);
    }
}
