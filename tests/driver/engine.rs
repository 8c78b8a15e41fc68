//! `Driver`: the real `Engine` over in-memory pipes, driven as the mio event loop drives it,
//! on a virtual clock. Level 2 of the simulation, the `conn_bytes` fuzz property, the
//! hostile-client tests and the playback transcripts all run on it.
//!
//! It replaces `event_loop`: a turn is `begin_turn`, a readiness event for every server end
//! whose edge flag is set (edge-triggered: only when bytes arrived, the window opened or the
//! peer closed), then `end_turn`; reaped sockets are dropped, which the client sees as EOF.
//! After every turn the core's invariants and the per-connection memory budget are checked.
//! `settle` repeats turns while work is carried over or an edge is pending, and fails on a
//! spin (turns that move no byte); `advance` moves the virtual clock, stopping and settling
//! at every engine deadline on the way, as the loop's poll timeout does. The `_with`
//! variants run a client hook after every turn (a client that reads as the server writes).

use tandem::gateway::Gateway;
use tandem::id::ConnId;
use tandem::net::engine::{Engine, EngineConfig, CONTROL_SLACK};
use tandem::time::Now;

use super::mem_stream::{self, MemStream};

/// Turns one `settle` may take. A safety bound only: a one-byte window moves one byte a
/// turn, so long transfers take many turns; a spin is caught by the progress check.
const TURNS_MAX: usize = 1_000_000;
/// Turns in a row without a byte read or written that count as a spin.
const IDLE_TURNS_MAX: u32 = 64;

/// The engine, its virtual clock and the server ends of its pipes.
pub struct Driver {
    pub engine: Engine<MemStream, Gateway>,
    pub now: Now,
    /// (connection, handle on its server end), in accept order; kept after the connection
    /// is reaped (a readiness event for a stale id must be ignored).
    ends: Vec<(ConnId, MemStream)>,
    /// Deliver readiness to the newest connections first (to vary same-turn ordering).
    pub reverse_order: bool,
    /// Compacts the engine after every this many turns (0: never). Compaction between turns
    /// (which the event loop does after crowds leave) must be invisible.
    pub compact_every: u64,
    /// Sockets the engine gave back for dropping.
    pub reaped: usize,
    turns: u64,
}

impl Driver {
    /// An engine with `config`, at virtual time zero, without a real clock (frames are
    /// stamped with the virtual wall clock); the core seed 42.
    pub fn new(config: EngineConfig) -> Driver {
        Driver::with_seed(config, 42)
    }

    /// An engine with `config` and this core seed, at virtual time zero.
    pub fn with_seed(config: EngineConfig, seed: u64) -> Driver {
        Driver {
            engine: Gateway::engine(config, seed, None),
            now: super::origin(),
            ends: Vec::new(),
            reverse_order: false,
            compact_every: 0,
            reaped: 0,
            turns: 0,
        }
    }

    /// Hands `server`, one end of a pipe, to the engine as an accepted socket and keeps a
    /// handle on it; panics if the engine refuses it.
    pub fn accept(&mut self, server: MemStream) -> ConnId {
        let handle = server.handle();
        let Ok(id) = self.engine.accept(self.now, server) else {
            panic!("the engine refused a socket")
        };
        self.ends.push((id, handle));
        id
    }

    /// A new pipe whose server end the engine accepted; returns the client end.
    pub fn connect_raw(&mut self) -> (ConnId, MemStream) {
        let (client, server) = mem_stream::pair();
        let id = self.accept(server);
        (id, client)
    }

    /// A handle on the server end of `id`, for knobs and byte counts.
    pub fn server_end(&self, id: ConnId) -> &MemStream {
        &self
            .ends
            .iter()
            .find(|(c, _)| *c == id)
            .expect("a known connection")
            .1
    }

    /// One loop turn: timers, readiness for every edge, flush and reap; then the checks.
    pub fn turn(&mut self) {
        self.engine.begin_turn(self.now);
        let order: Vec<usize> = if self.reverse_order {
            (0..self.ends.len()).rev().collect()
        } else {
            (0..self.ends.len()).collect()
        };
        for i in order {
            let (id, end) = &self.ends[i];
            if end.take_edge() {
                self.engine.ready(self.now, *id, true, true);
            }
        }
        let mut reaped = Vec::new();
        self.engine.end_turn(self.now, &mut reaped);
        self.reaped += reaped.len();
        drop(reaped);
        self.turns += 1;
        if self.compact_every > 0 && self.turns % self.compact_every == 0 {
            self.engine.compact();
        }
        self.check();
    }

    /// What must hold between any two turns: the core's invariants, no more WebSockets than
    /// connections, and the per-connection memory budget (what any client is owed stays
    /// within the outbox cap plus the control frames allowed past it).
    pub fn check(&self) {
        self.engine.service().core().check_invariants();
        assert!(self.engine.websockets() <= self.engine.len());
        let cap = self.engine.config().net.outbox_bytes_max + CONTROL_SLACK;
        assert!(
            self.engine.queued_max() <= cap,
            "{} bytes owed to one client, cap {cap}",
            self.engine.queued_max()
        );
    }

    /// Turns until nothing is carried over and no edge is pending; fails on a spin.
    pub fn settle(&mut self) {
        self.settle_with(|| {});
    }

    /// `settle`, running `after_turn` after every turn (the client side's reads, which open
    /// the server's window and so may make another turn necessary).
    pub fn settle_with(&mut self, mut after_turn: impl FnMut()) {
        let mut idle = 0;
        for _ in 0..TURNS_MAX {
            let before = self.progress();
            self.turn();
            after_turn();
            if !self.pending() {
                return;
            }
            idle = if self.progress() == before {
                idle + 1
            } else {
                0
            };
            assert!(
                idle < IDLE_TURNS_MAX,
                "the engine spun for {IDLE_TURNS_MAX} turns without moving a byte"
            );
        }
        panic!("settle did not settle in {TURNS_MAX} turns");
    }

    /// Whether the loop would run another turn at once: work carried over or an edge.
    pub fn pending(&self) -> bool {
        self.engine.has_carry_over() || self.ends.iter().any(|(_, e)| e.has_edge())
    }

    /// (bytes the server ends ever wrote, bytes waiting for them to read): a turn that
    /// changes neither moved nothing.
    fn progress(&self) -> (u64, usize) {
        let written = self.ends.iter().map(|(_, e)| e.written_total()).sum();
        let unread = self.ends.iter().map(|(_, e)| e.readable_bytes()).sum();
        (written, unread)
    }

    /// Moves the clock by `delta`, settling at every deadline on the way and at the end.
    pub fn advance(&mut self, delta: u64) {
        self.advance_with(delta, || {});
    }

    /// `advance`, running `after_turn` after every turn.
    pub fn advance_with(&mut self, delta: u64, mut after_turn: impl FnMut()) {
        let target = self.now.mono + delta;
        // Bounded: each pass moves the clock to a later deadline or stops.
        for _ in 0..100_000 {
            match self.engine.next_deadline() {
                Some(next) if next <= target && next > self.now.mono => {
                    self.now = self.now.plus(next.since(self.now.mono));
                    self.settle_with(&mut after_turn);
                }
                _ => break,
            }
        }
        self.now = self.now.plus(target.since(self.now.mono));
        self.settle_with(&mut after_turn);
    }
}
