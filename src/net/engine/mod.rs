//! The engine: every connection's transport, over any `Read + Write` stream, feeding the
//! gateway. It knows nothing of mio: the event loop hands it sockets and readiness, the
//! simulation hands it in-memory pipes. It owns the shell's timer wheel (handshake, idle,
//! closing and drain deadlines).
//!
//! A turn, as driven by the caller: `begin_turn(now)` fires due timers and re-drives
//! connections that hit their read budget last turn; `ready(now, id, ..)` for each readiness
//! event; `accept(now, stream)` for new sockets; `end_turn(now)` flushes every connection
//! written to during the turn (one write syscall per recipient per turn, whatever the number
//! of messages) and removes dead connections, returning their sockets for deregistration.
//!
//! Writable invariant (edge-triggered readiness): anything queued during a turn is flushed
//! before the turn ends, because the writable edge may already have been consumed.

use std::io;

use slab::Slab;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

use std::net::IpAddr;

use super::addresses::{self, Addresses, Admission, Limits};
use super::conn::{AfterResponse, Conn, Phase};
use super::service::{ConnInfo, Deferred, Output, Service};
use super::stream::Stream;
use super::upgrade::{self, Route, Status};
use super::wire::Wire;
use crate::config::{CoreConfig, NetConfig};
use crate::id::ConnId;
use crate::log;
use crate::scratch::trim;
use crate::time::{Clock, Millis, Now};
use crate::timer_wheel::TimerWheel;
use deadlines::ShellTimer;

mod deadlines;
mod http;
mod metrics;
mod pumps;
mod writes;

/// Connections accepted beyond `connections_max` only to be answered 503.
const REFUSAL_SLOTS: usize = 64;
/// What control frames may add past the outbox cap: the pongs that may wait unsent, a close
/// frame and an idle ping (payloads of at most 125 bytes), each with its queue entry.
pub const CONTROL_SLACK: usize =
    (super::wire::PONGS_WAITING_MAX + 2) * (2 + 125 + super::wire::CHUNK_BYTES);
/// Bytes discarded per drive of a draining connection.
const DRAIN_BYTES_MAX: usize = 64 << 10;

/// What the engine needs to know.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Transport limits.
    pub net: NetConfig,
    /// Core rules.
    pub core: CoreConfig,
    /// Open connections allowed.
    pub connections_max: usize,
    /// Origin allow-list; `None` allows any.
    pub allowed_origins: Option<Vec<String>>,
    /// Per-address limits.
    pub address_limits: Limits,
    /// Peers whose `X-Forwarded-For` names the client to count.
    pub trusted_proxies: Vec<IpAddr>,
}

/// Counters for logs and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Connections accepted.
    pub accepted: u64,
    /// WebSocket connections opened.
    pub opened: u64,
    /// Slow consumers evicted.
    pub evicted: u64,
    /// Connections closed for idleness.
    pub idled_out: u64,
    /// Memory freed by WebSockets that are gone (bytes queued for them plus a fixed estimate
    /// each): the event loop compacts and returns memory when this has grown.
    pub freed_bytes: u64,
    /// Read buffers that grew for a large message and were released.
    pub read_buffers_released: u64,
    /// Connections refused (429) or dropped for their address's limits.
    pub address_refusals: u64,
    /// Times a connection was paused for sending past its rate.
    pub paused: u64,
    /// HTTP requests refused, by status (`Status::ALL` order).
    pub refused: [u64; 10],
    /// Socket bytes read and written by connections that are gone.
    pub bytes_in_closed: u64,
    pub bytes_out_closed: u64,
    /// Loop turns by duration (`TURN_BUCKETS_US`, then +Inf), and their sum.
    pub turns: [u64; 13],
    pub turn_us_sum: u64,
}

/// Upper bounds of the turn-duration histogram, in microseconds.
pub const TURN_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

/// The transport of every connection, and the service behind it.
#[derive(Debug)]
pub struct Engine<S, A: Service> {
    config: EngineConfig,
    ws_config: WebSocketConfig,
    conns: Slab<Conn<S>>,
    generation: u32,
    gateway: A,
    wheel: TimerWheel<(ConnId, ShellTimer)>,
    outputs: Vec<Output<A::Deferred>>,
    dirty: Vec<ConnId>,
    carry: Vec<ConnId>,
    /// Turns begun: a connection's read budget is per turn, however often it is driven.
    turn: u64,
    /// When the current turn began (µs on the clock), for the turn histogram.
    turn_began_us: u64,
    /// Connections driven, flushed or timed this turn: the only ones that can have died, so
    /// reaping never scans the whole slab.
    touched: Vec<ConnId>,
    clock: Option<Clock>,
    addresses: Addresses,
    websockets: usize,
    stats: EngineStats,
    scratch: Vec<u8>,
}

impl<S: Stream, A: Service> Engine<S, A> {
    /// An engine with no connections serving `service`.
    pub fn with_service(config: EngineConfig, service: A, clock: Option<Clock>) -> Engine<S, A> {
        let net = &config.net;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(net.read_buffer_bytes)
            // tungstenite only writes its own control frames, straight into the Wire queue.
            .write_buffer_size(0)
            .max_write_buffer_size(net.outbox_bytes_max)
            .max_message_size(Some(net.message_bytes_max))
            .max_frame_size(Some(net.message_bytes_max))
            .accept_unmasked_frames(false);
        let address_limits = config.address_limits;
        Engine {
            gateway: service,
            conns: Slab::with_capacity(config.connections_max.min(1 << 16)),
            config,
            ws_config,
            generation: 0,
            wheel: TimerWheel::new(),
            outputs: Vec::new(),
            dirty: Vec::new(),
            carry: Vec::new(),
            turn: 0,
            turn_began_us: 0,
            touched: Vec::new(),
            clock,
            addresses: Addresses::new(address_limits),
            websockets: 0,
            stats: EngineStats::default(),
            scratch: vec![0; 4_096],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The service, for inspection.
    pub fn service(&self) -> &A {
        &self.gateway
    }

    /// The service, to change it (the loop asks it for its snapshot).
    pub fn service_mut(&mut self) -> &mut A {
        &mut self.gateway
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Socket bytes (read, written) so far, gone connections included.
    pub fn bytes(&self) -> (u64, u64) {
        self.conns.iter().fold(
            (self.stats.bytes_in_closed, self.stats.bytes_out_closed),
            |(r, w), (_, conn)| {
                let (read, written) = wire_totals(conn);
                (r.saturating_add(read), w.saturating_add(written))
            },
        )
    }

    /// Connection slots in use (any phase).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// The largest outbox footprint of any one connection (frame bytes plus per-frame
    /// cost), for tests and fuzzing.
    pub fn queued_max(&self) -> usize {
        let queued = |conn: &Conn<S>| match &conn.phase {
            Phase::Open { ws } | Phase::Closing { ws, .. } => ws.get_ref().footprint(),
            _ => 0,
        };
        self.conns
            .iter()
            .map(|(_, conn)| queued(conn))
            .max()
            .unwrap_or(0)
    }

    /// Whether there are no connections.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Open WebSocket connections.
    pub fn websockets(&self) -> usize {
        self.websockets
    }

    /// Whether another socket can be taken (possibly only to be refused with 503).
    pub fn can_accept(&self) -> bool {
        self.conns.len() < self.config.connections_max.saturating_add(REFUSAL_SLOTS)
    }

    /// Takes a new socket from an unknown peer (simulations, tests): no address limits.
    pub fn accept(&mut self, now: Now, stream: S) -> Result<ConnId, S> {
        self.accept_from(now, stream, None)
    }

    /// Takes a new socket from `peer`. Over the connection limit, or over its address's
    /// limits, it is still read, then answered 503 or 429 (`/health` is answered all the
    /// same). Returns the socket back if not even that is possible.
    pub fn accept_from(&mut self, now: Now, stream: S, peer: Option<IpAddr>) -> Result<ConnId, S> {
        if !self.can_accept() {
            return Err(stream);
        }
        let proxied = peer.is_some_and(|p| self.config.trusted_proxies.contains(&p));
        let address = peer.filter(|_| !proxied).map(addresses::key);
        let mut refusal = None;
        if let Some(address) = address {
            match self.addresses.arrive(now.mono, address) {
                Admission::Admit => {}
                Admission::Refuse { first } => {
                    self.address_refused(address, first);
                    refusal = Some(Status::TooManyRequests);
                }
                Admission::Drop => {
                    self.stats.address_refusals = self.stats.address_refusals.saturating_add(1);
                    return Err(stream);
                }
            }
        }
        if self.conns.len() >= self.config.connections_max {
            refusal = Some(Status::Unavailable);
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            index: entry.key() as u32,
            generation: self.generation,
        };
        let mut conn = Conn::new(id, stream, now.mono, refusal);
        conn.address = address;
        conn.peer = peer.filter(|_| !proxied);
        conn.proxied = proxied;
        entry.insert(conn);
        self.wheel.insert(
            now.mono.after(self.config.net.handshake_timeout_ms),
            (id, ShellTimer::Handshake),
        );
        self.stats.accepted = self.stats.accepted.saturating_add(1);
        if refusal == Some(Status::Unavailable) {
            log!(
                Warn,
                "event=refused reason=connection_limit conn={id} limit={}",
                self.config.connections_max
            );
        }
        Ok(id)
    }

    /// Readiness reported for `id`; stale ids are ignored.
    pub fn ready(&mut self, now: Now, id: ConnId, readable: bool, writable: bool) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.readable |= readable;
        conn.writable |= writable;
        if writable {
            self.mark_dirty(id);
        }
        self.drive(now, id);
    }

    /// Fires due timers and re-drives connections carried over from the last turn.
    pub fn begin_turn(&mut self, now: Now) {
        self.turn = self.turn.wrapping_add(1);
        self.turn_began_us = self.clock.as_ref().map_or(0, Clock::micros);
        self.addresses.sweep(now.mono);
        self.gateway.advance(now, &mut self.outputs);
        self.apply_outputs(now);
        let mut due = Vec::new();
        self.wheel.advance(now.mono, &mut due);
        for (id, timer) in due {
            self.timer(now, id, timer);
        }
        for id in std::mem::take(&mut self.carry) {
            if let Some(conn) = self.conn_mut(id) {
                conn.carried = false;
            }
            self.drive(now, id);
        }
    }

    /// Flushes what the turn queued and removes dead connections; their sockets are appended
    /// to `reaped` for the caller to deregister and drop.
    pub fn end_turn(&mut self, now: Now, reaped: &mut Vec<S>) {
        // Bounded: each pass removes at least one connection or stops.
        for _ in 0..=self.conns.len() {
            self.flush_dirty(now);
            let mut removed = false;
            for id in std::mem::take(&mut self.touched) {
                let Some(conn) = self.conn_mut(id) else {
                    continue;
                };
                if !matches!(conn.phase, Phase::Dead(_)) {
                    continue;
                }
                let mut conn = self.conns.remove(id.index as usize);
                let (read, written) = wire_totals(&conn);
                self.stats.bytes_in_closed = self.stats.bytes_in_closed.saturating_add(read);
                self.stats.bytes_out_closed = self.stats.bytes_out_closed.saturating_add(written);
                self.stats.freed_bytes = self
                    .stats
                    .freed_bytes
                    .saturating_add(conn.freed_bytes as u64);
                if let Some(address) = conn.address {
                    self.addresses.leave(address);
                }
                if conn.in_core {
                    self.websockets = self.websockets.saturating_sub(1);
                    self.gateway.close(now, conn.id, &mut self.outputs);
                }
                log!(Debug, "event=closed conn={}", conn.id);
                reaped.extend(conn.take_stream());
                removed = true;
            }
            if !removed {
                break;
            }
            self.apply_outputs(now);
        }
        self.touched.clear();
        if let Some(clock) = &self.clock {
            let took = clock.micros().saturating_sub(self.turn_began_us);
            let bucket = TURN_BUCKETS_US
                .iter()
                .position(|&b| took <= b)
                .unwrap_or(TURN_BUCKETS_US.len());
            if let Some(count) = self.stats.turns.get_mut(bucket) {
                *count = count.saturating_add(1);
            }
            self.stats.turn_us_sum = self.stats.turn_us_sum.saturating_add(took);
        }
        // A burst (a mass broadcast, a mass disconnect) must not pin its peak memory.
        trim(&mut self.outputs);
        trim(&mut self.dirty);
        trim(&mut self.touched);
    }

    /// Releases table capacity left over from connections that are gone: the connection
    /// slab past its last occupied slot, the timer slots, the scratch vectors and the
    /// service's own tables. Call between turns, after many connections have closed.
    pub fn compact(&mut self) {
        self.conns.shrink_to_fit();
        self.wheel.compact();
        self.outputs.shrink_to_fit();
        self.dirty.shrink_to_fit();
        self.carry.shrink_to_fit();
        self.touched.shrink_to_fit();
        self.addresses.compact();
        self.gateway.compact();
    }

    /// When the engine next has timed work; `Some(now)`-ish when work is carried over.
    pub fn next_deadline(&self) -> Option<Millis> {
        let (a, b) = (self.gateway.next_deadline(), self.wheel.next_deadline());
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether some connection hit its read budget and must be driven next turn.
    pub fn has_carry_over(&self) -> bool {
        !self.carry.is_empty()
    }

    /// Tells room members the server is stopping, then starts a closing handshake (1001)
    /// with every WebSocket. Other connections are dropped.
    pub fn shutdown(&mut self, now: Now) {
        self.gateway.shutdown(now, &mut self.outputs);
        self.apply_outputs(now);
        let ids: Vec<ConnId> = self.conns.iter().map(|(_, c)| c.id).collect();
        for id in ids {
            let Some(conn) = self.conn_mut(id) else {
                continue;
            };
            if matches!(conn.phase, Phase::Open { .. }) {
                self.close_with(now, id, CloseCode::Away, "Server shutting down", false);
            } else if !matches!(conn.phase, Phase::Closing { .. }) {
                conn.die();
                self.touched.push(id);
            }
        }
    }

    /// The socket of a live connection (for registration).
    pub fn stream_mut(&mut self, id: ConnId) -> Option<&mut S> {
        self.conn_mut(id)?.stream_mut()
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn<S>> {
        self.conns.get_mut(id.index as usize).filter(|c| c.id == id)
    }

    /// Drives `id` again next turn (once, however often it is asked).
    fn carry(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id) {
            if !conn.carried {
                conn.carried = true;
                self.carry.push(id);
            }
        }
    }

    /// Starts `id`'s read budget for this turn, unless it was already started: bytes and
    /// messages are per turn, not per drive. Returns the messages left.
    fn turn_budget(&mut self, id: ConnId) -> usize {
        let (turn, bytes, messages) = (
            self.turn,
            self.config.net.read_bytes_per_turn_max,
            self.config.net.messages_per_turn_max,
        );
        let Some(conn) = self.conn_mut(id) else {
            return 0;
        };
        if conn.budget_turn != turn {
            conn.budget_turn = turn;
            conn.messages_left = messages;
            if let Phase::Open { ws } | Phase::Closing { ws, .. } = &mut conn.phase {
                ws.get_mut().set_read_budget(bytes);
            }
        }
        conn.messages_left
    }

    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    // ----- driving one connection -----

    /// Advances `id` as far as its readiness allows. Each phase step either makes progress
    /// towards the next phase or stops; the bound covers the longest chain
    /// (request → respond → open → read).
    fn drive(&mut self, now: Now, id: ConnId) {
        self.touched.push(id);
        for _ in 0..4 {
            let Some(conn) = self.conn_mut(id) else {
                return;
            };
            let advanced = match conn.phase {
                Phase::Request { .. } => self.drive_request(now, id),
                Phase::Respond { .. } => self.drive_respond(now, id),
                Phase::Drain { .. } => self.drive_drain(id),
                Phase::Open { .. } => self.drive_open(now, id),
                Phase::Closing { .. } => self.drive_closing(id),
                Phase::Dead(_) => false,
            };
            if !advanced {
                return;
            }
        }
    }

    // ----- timers -----

    // ----- the write path -----
}

/// A connection's socket byte counts (0 before its WebSocket exists).
fn wire_totals<S>(conn: &Conn<S>) -> (u64, u64) {
    match &conn.phase {
        Phase::Open { ws } | Phase::Closing { ws, .. } => {
            let wire = ws.get_ref();
            (wire.read_total, wire.written_total)
        }
        _ => (0, 0),
    }
}
