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
use super::conn::{AfterResponse, Conn, Phase, Stream};
use super::service::{ConnInfo, Deferred, Output, Service};
use super::upgrade::{self, Route, Status};
use super::wire::Wire;
use crate::config::{CoreConfig, NetConfig};
use crate::id::ConnId;
use crate::log;
use crate::scratch::trim;
use crate::time::{Clock, Millis, Now};
use crate::timer_wheel::TimerWheel;

/// Connections accepted beyond `connections_max` only to be answered 503.
const REFUSAL_SLOTS: usize = 64;
/// What control frames may add past the outbox cap: a coalesced pong, a close frame and an
/// idle ping (payloads of at most 125 bytes), each with its queue entry.
pub const CONTROL_SLACK: usize = 3 * (2 + 125 + super::wire::CHUNK_BYTES);
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShellTimer {
    Handshake,
    Idle,
    Closing,
    /// A pause (`pause`) is over.
    Resume,
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
}

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

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Connection slots in use (any phase).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// The largest outbox footprint of any one connection (frame bytes plus per-frame
    /// cost), for tests and fuzzing.
    pub fn queued_max(&self) -> usize {
        let queued = |conn: &Conn<S>| match &conn.phase {
            Phase::Open { ws } | Phase::Closing { ws } => ws.get_ref().footprint(),
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
        self.conns.len() < self.config.connections_max + REFUSAL_SLOTS
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
                    self.stats.address_refusals += 1;
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
            now.mono + self.config.net.handshake_timeout_ms,
            (id, ShellTimer::Handshake),
        );
        self.stats.accepted += 1;
        if refusal == Some(Status::Unavailable) {
            log!(
                Warn,
                "event=refused reason=connection_limit conn={id} limit={}",
                self.config.connections_max
            );
        }
        Ok(id)
    }

    fn address_refused(&mut self, address: IpAddr, first: bool) {
        self.stats.address_refusals += 1;
        if first {
            log!(
                Warn,
                "event=refused reason=address_limit address={address} connections={} \
                 limit={} handshakes_per_sec={}",
                self.addresses.connections(address),
                self.config.address_limits.connections,
                self.config.address_limits.handshakes_per_sec
            );
        }
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
                self.stats.freed_bytes += conn.freed_bytes as u64;
                if let Some(address) = conn.address {
                    self.addresses.leave(address);
                }
                if conn.in_core {
                    self.websockets -= 1;
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
            if let Phase::Open { ws } | Phase::Closing { ws } = &mut conn.phase {
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

    fn drive_request(&mut self, now: Now, id: ConnId) -> bool {
        let head_max = self.config.net.request_head_bytes_max;
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return false;
        };
        let Phase::Request { stream, head } = &mut conn.phase else {
            return false;
        };
        while conn.readable && head.len() < head_max {
            let room = (head_max - head.len()).min(self.scratch.len());
            match stream.read(&mut self.scratch[..room]) {
                Ok(0) => {
                    conn.die();
                    return false;
                }
                Ok(n) => head.extend_from_slice(&self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    conn.die();
                    return false;
                }
            }
        }
        let origins = self.config.allowed_origins.as_deref();
        let service = &self.gateway;
        let serves = |path: &str| service.select(path, &[]).is_ok();
        let Some((len, route)) = upgrade::parse_request(head, head_max, origins, &serves) else {
            return false;
        };
        let leftover = head.get(len..).unwrap_or_default().to_vec();
        self.attribute(now, id, &route);
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return false;
        };
        let (bytes, then) = match route {
            // Answered whatever the limits: a health check must not restart a full server.
            Route::Health { origin, head, .. } => {
                let stats = self.gateway.stats();
                let body = upgrade::health(
                    origin.as_deref(),
                    head,
                    stats.auth_enabled,
                    self.websockets,
                    stats.rooms,
                );
                (body, AfterResponse::Close)
            }
            _ if conn.refusal.is_some() => {
                let status = conn.refusal.unwrap_or(Status::Unavailable);
                (upgrade::refusal(status), AfterResponse::Close)
            }
            Route::WebSocket {
                key,
                path,
                protocols,
                origin,
                forwarded_for,
            } => match self.gateway.select(&path, &protocols) {
                Ok(protocol) => {
                    let info = ConnInfo {
                        peer: conn.peer,
                        path,
                        requested_protocols: protocols,
                        protocol,
                        origin,
                        forwarded_for,
                    };
                    (
                        upgrade::switching_protocols(&key, protocol),
                        AfterResponse::Upgrade {
                            leftover,
                            info: Box::new(info),
                        },
                    )
                }
                Err(status) => (upgrade::refusal(status), AfterResponse::Close),
            },
            Route::Refuse(status) => {
                log!(
                    Debug,
                    "event=http_refused conn={id} status={}",
                    status.line().0
                );
                (upgrade::refusal(status), AfterResponse::Close)
            }
        };
        let Phase::Request { stream, .. } = std::mem::replace(&mut conn.phase, Phase::Dead(None))
        else {
            return false;
        };
        conn.phase = Phase::Respond {
            stream,
            bytes,
            written: 0,
            then,
        };
        true
    }

    /// A trusted proxy's connection is counted under the client its request names.
    fn attribute(&mut self, now: Now, id: ConnId, route: &Route) {
        let forwarded = match route {
            Route::WebSocket { forwarded_for, .. } | Route::Health { forwarded_for, .. } => {
                *forwarded_for
            }
            Route::Refuse(_) => None,
        };
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return;
        };
        let Some(client) = forwarded.filter(|_| conn.proxied && conn.address.is_none()) else {
            return;
        };
        conn.peer = Some(client);
        let address = addresses::key(client);
        let admission = self.addresses.arrive(now.mono, address);
        if admission != Admission::Drop {
            conn.address = Some(address);
        }
        if admission != Admission::Admit {
            conn.refusal = conn.refusal.or(Some(Status::TooManyRequests));
            let first = matches!(admission, Admission::Refuse { first: true });
            self.address_refused(address, first);
        }
    }

    fn drive_respond(&mut self, now: Now, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(id.index as usize).filter(|c| c.id == id) else {
            return false;
        };
        let Phase::Respond {
            stream,
            bytes,
            written,
            ..
        } = &mut conn.phase
        else {
            return false;
        };
        while *written < bytes.len() {
            match stream.write(&bytes[*written..]) {
                Ok(0) => {
                    conn.die();
                    return false;
                }
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.writable = false;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    conn.die();
                    return false;
                }
            }
        }
        let _ = stream.flush();
        let Phase::Respond { stream, then, .. } =
            std::mem::replace(&mut conn.phase, Phase::Dead(None))
        else {
            return false;
        };
        match then {
            AfterResponse::Close => {
                let mut stream = stream;
                stream.close_write();
                conn.phase = Phase::Drain { stream };
                let deadline = now.mono + self.config.net.close_timeout_ms;
                self.wheel.insert(deadline, (id, ShellTimer::Closing));
            }
            AfterResponse::Upgrade { leftover, info } => {
                let config = Some(self.ws_config);
                let mut wire = Wire::new(stream);
                wire.reset_large(self.config.net.read_buffer_bytes);
                let ws = WebSocket::from_partially_read(wire, leftover, Role::Server, config);
                conn.phase = Phase::Open { ws: Box::new(ws) };
                conn.in_core = true;
                conn.heard_at = now.mono;
                // Bytes that arrived with the request are in tungstenite's buffer now.
                conn.readable = true;
                self.websockets += 1;
                self.stats.opened += 1;
                log!(Debug, "event=opened conn={id}");
                let deadline = now.mono + self.config.net.idle_timeout_ms / 2;
                self.wheel.insert(deadline, (id, ShellTimer::Idle));
                self.gateway.open(now, id, &info, &mut self.outputs);
                self.apply_outputs(now);
            }
        }
        true
    }

    /// Reads and discards until EOF; the peer has our response (or close frame).
    fn drive_drain(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(id.index as usize).filter(|c| c.id == id) else {
            return false;
        };
        let stream = match &mut conn.phase {
            Phase::Drain { stream } => stream,
            Phase::Closing { ws } => ws.get_mut().get_mut(),
            _ => return false,
        };
        let mut budget = DRAIN_BYTES_MAX;
        while conn.readable && budget > 0 {
            match stream.read(&mut self.scratch) {
                Ok(0) => {
                    conn.die();
                    return false;
                }
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    conn.die();
                    return false;
                }
            }
        }
        if conn.readable {
            self.carry(id);
        }
        false
    }

    /// Reads up to the per-turn budget of messages and bytes and hands them to the service.
    /// A connection paused (past its rate) is not read until its pause ends.
    fn drive_open(&mut self, now: Now, id: ConnId) -> bool {
        if self
            .conn_mut(id)
            .and_then(|c| c.paused_until)
            .is_some_and(|until| now.mono < until)
        {
            return false;
        }
        let allowed = self.turn_budget(id);
        for _ in 0..allowed {
            let Some(conn) = self.conn_mut(id) else {
                return false;
            };
            let Phase::Open { ws } = &mut conn.phase else {
                return true;
            };
            let result = ws.read();
            let Some(conn) = self.conn_mut(id) else {
                return false;
            };
            match result {
                Ok(message) => {
                    conn.heard_at = now.mono;
                    conn.messages_left = conn.messages_left.saturating_sub(1);
                    // Reading may queue an automatic pong or close reply: flush this turn.
                    self.mark_dirty(id);
                    self.on_message(now, id, message);
                    if self.conn_mut(id).is_some_and(|c| c.paused_until.is_some()) {
                        return false;
                    }
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    let Phase::Open { ws } = &mut conn.phase else {
                        return false;
                    };
                    if ws.get_mut().take_starved() {
                        // The byte budget, not the socket: come back next turn.
                        break;
                    }
                    conn.readable = false;
                    self.release_read_buffer(id);
                    return false;
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.on_read_error(now, id, error);
                    return false;
                }
            }
        }
        // Budget spent: let others have their turn, come back next turn.
        self.carry(id);
        false
    }

    /// Stops reading `id` until `until`: the kernel's buffers fill and the sender waits,
    /// instead of the server reading and discarding what it sends past its rate.
    fn pause(&mut self, id: ConnId, until: Millis) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.paused_until.is_some_and(|p| p >= until) {
            return;
        }
        conn.paused_until = Some(until);
        self.stats.paused += 1;
        self.wheel.insert(until, (id, ShellTimer::Resume));
    }

    /// After a message larger than the read chunk, tungstenite's input buffer stays at that
    /// size. Once the socket is drained at a frame boundary (tungstenite then holds no input
    /// and no partial message), the protocol state is rebuilt with a fresh small buffer.
    fn release_read_buffer(&mut self, id: ConnId) {
        let config = self.ws_config;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Phase::Open { ws } = &mut conn.phase else {
            return;
        };
        let wire = ws.get_mut();
        if !wire.saw_large() || !wire.at_rest() {
            return;
        }
        // Any automatic reply still inside tungstenite goes to the queue first.
        if ws.flush().is_err() {
            return;
        }
        let Phase::Open { ws } = std::mem::replace(&mut conn.phase, Phase::Dead(None)) else {
            return;
        };
        let mut wire = ws.into_inner();
        wire.reset_large(config.read_buffer_size);
        let fresh = WebSocket::from_raw_socket(wire, Role::Server, Some(config));
        conn.phase = Phase::Open {
            ws: Box::new(fresh),
        };
        self.stats.read_buffers_released += 1;
    }

    fn on_message(&mut self, now: Now, id: ConnId, message: Message) {
        match message {
            Message::Text(text) => {
                self.gateway.text(now, id, text.as_str(), &mut self.outputs);
                self.apply_outputs(now);
            }
            Message::Binary(data) => {
                self.gateway.binary(now, id, &data, &mut self.outputs);
                self.apply_outputs(now);
            }
            Message::Close(_) => {
                // tungstenite queued the echo; the flush this turn completes the handshake.
                self.leave_core(now, id);
                if let Some(conn) = self.conn_mut(id) {
                    if let Phase::Open { .. } = conn.phase {
                        let Phase::Open { ws } =
                            std::mem::replace(&mut conn.phase, Phase::Dead(None))
                        else {
                            return;
                        };
                        conn.phase = Phase::Closing { ws };
                    }
                }
                self.wheel.insert(
                    now.mono + self.config.net.close_timeout_ms,
                    (id, ShellTimer::Closing),
                );
            }
            Message::Ping(_) => {
                // Pings share the message rate: past it, the connection is not read for the
                // rest of its second (its pongs are coalesced anyway).
                let rate = self.config.core.messages_per_second_max;
                let Some(conn) = self.conn_mut(id) else {
                    return;
                };
                if now.mono.since(conn.pings_since) >= 1_000 {
                    conn.pings_since = now.mono;
                    conn.pings = 0;
                }
                conn.pings = conn.pings.saturating_add(1);
                if conn.pings > rate {
                    let until = conn.pings_since + 1_000;
                    self.pause(id, until);
                }
            }
            Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    fn on_read_error(&mut self, now: Now, id: ConnId, error: WsError) {
        use tungstenite::error::ProtocolError;
        match error {
            WsError::Capacity(_) => {
                log!(Debug, "event=message_too_large conn={id}");
                self.close_with(now, id, CloseCode::Size, "Message too large", true);
            }
            WsError::Utf8(_) => self.close_with(now, id, CloseCode::Invalid, "Invalid UTF-8", true),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
            | WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Io(_) => self.kill(id),
            WsError::WriteBufferFull(_) => self.evict(id),
            WsError::Protocol(_) => {
                self.close_with(now, id, CloseCode::Protocol, "Protocol error", true)
            }
            _ => self.kill(id),
        }
    }

    /// After a closing handshake started: keep reading until tungstenite reports the end, or
    /// (after a fatal read error, when the stream is mid-frame) discard raw bytes until EOF.
    fn drive_closing(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return false;
        };
        let Phase::Closing { ws } = &mut conn.phase else {
            return false;
        };
        if !ws.can_read() || ws.get_config().max_frame_size == Some(0) {
            return self.drive_drain(id);
        }
        let allowed = self.turn_budget(id);
        for _ in 0..allowed {
            let Some(conn) = self.conn_mut(id) else {
                return false;
            };
            let Phase::Closing { ws } = &mut conn.phase else {
                return false;
            };
            match ws.read() {
                Ok(_) => conn.messages_left = conn.messages_left.saturating_sub(1),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    if ws.get_mut().take_starved() {
                        break;
                    }
                    conn.readable = false;
                    self.mark_dirty(id);
                    return false;
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    conn.die();
                    return false;
                }
            }
        }
        self.carry(id);
        false
    }

    /// Starts a closing handshake with `code`. `fatal`: the read side is unusable (mid-frame
    /// after a limit), so later input is discarded raw instead of parsed.
    fn close_with(
        &mut self,
        now: Now,
        id: ConnId,
        code: CloseCode,
        reason: &'static str,
        fatal: bool,
    ) {
        self.leave_core(now, id);
        self.touched.push(id);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let ws = match std::mem::replace(&mut conn.phase, Phase::Dead(None)) {
            Phase::Open { ws } | Phase::Closing { ws } => ws,
            other => {
                conn.phase = other;
                return;
            }
        };
        let mut ws = ws;
        if fatal {
            // Marks the read side as unusable for drive_closing (a zero frame limit is never
            // configured otherwise).
            ws.set_config(|c| c.max_frame_size = Some(0));
        }
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if ws.close(Some(frame)).is_err() {
            let stream = conn.drop_websocket(*ws);
            conn.phase = Phase::Dead(Some(stream));
            return;
        }
        match ws.get_mut().send() {
            // The close frame is out; after a fatal error nothing more will be read or
            // written, so half-close and let the peer finish.
            Ok(()) if fatal => ws.get_mut().get_mut().close_write(),
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.writable = false,
            Err(_) => {
                let stream = conn.drop_websocket(*ws);
                conn.phase = Phase::Dead(Some(stream));
                return;
            }
        }
        conn.phase = Phase::Closing { ws };
        self.mark_dirty(id);
        self.wheel.insert(
            now.mono + self.config.net.close_timeout_ms,
            (id, ShellTimer::Closing),
        );
    }

    /// Tells the core the connection is gone (once).
    fn leave_core(&mut self, now: Now, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.in_core {
            conn.in_core = false;
            self.websockets -= 1;
            self.gateway.close(now, id, &mut self.outputs);
            self.apply_outputs(now);
        }
    }

    fn kill(&mut self, id: ConnId) {
        self.touched.push(id);
        if let Some(conn) = self.conn_mut(id) {
            conn.die();
        }
    }

    /// A slow consumer: its queue hit the cap. Dropped without a closing handshake (there
    /// is no room for a close frame and the peer is not reading).
    fn evict(&mut self, id: ConnId) {
        self.stats.evicted += 1;
        log!(
            Warn,
            "event=evicted reason=slow_consumer conn={id} queued_max={}",
            self.config.net.outbox_bytes_max
        );
        self.kill(id);
    }

    // ----- timers -----

    fn timer(&mut self, now: Now, id: ConnId, timer: ShellTimer) {
        self.touched.push(id);
        let idle_ms = self.config.net.idle_timeout_ms;
        let cap = self.config.net.outbox_bytes_max;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match (timer, &conn.phase) {
            (ShellTimer::Handshake, Phase::Request { .. }) => {
                let Phase::Request { stream, .. } =
                    std::mem::replace(&mut conn.phase, Phase::Dead(None))
                else {
                    return;
                };
                let bytes = upgrade::refusal(Status::RequestTimeout);
                conn.phase = Phase::Respond {
                    stream,
                    bytes,
                    written: 0,
                    then: AfterResponse::Close,
                };
                conn.writable = true;
                self.drive(now, id);
            }
            (ShellTimer::Handshake, Phase::Respond { .. }) => conn.die(),
            (ShellTimer::Resume, _) if conn.paused_until.is_some_and(|until| now.mono >= until) => {
                conn.paused_until = None;
                self.drive(now, id);
            }
            (ShellTimer::Closing, Phase::Closing { .. } | Phase::Drain { .. }) => conn.die(),
            (ShellTimer::Idle, Phase::Open { .. }) => {
                let silent = now.mono.since(conn.heard_at);
                if silent >= idle_ms {
                    self.stats.idled_out += 1;
                    log!(Debug, "event=idle_timeout conn={id}");
                    self.close_with(now, id, CloseCode::Away, "Idle timeout", false);
                    return;
                }
                let next = if silent >= idle_ms / 2 {
                    if let Phase::Open { ws } = &mut conn.phase {
                        let _ = ws.write(Message::Ping(Default::default()));
                        if ws.get_mut().footprint() > cap + CONTROL_SLACK {
                            conn.die();
                        }
                    }
                    self.mark_dirty(id);
                    conn_heard(self, id) + idle_ms
                } else {
                    conn_heard(self, id) + idle_ms / 2
                };
                self.wheel.insert(next, (id, ShellTimer::Idle));
            }
            _ => {}
        }
    }

    // ----- the write path -----

    fn apply_outputs(&mut self, now: Now) {
        let mut outputs = std::mem::take(&mut self.outputs);
        for output in outputs.drain(..) {
            match output {
                Output::Send { conn, text } => self.write(conn, &text),
                Output::SendBinary { conn, data } => self.write_binary(conn, &data),
                Output::Stamped { conn, frame } => {
                    let sent = self.clock.as_ref().map_or(now.wall, |c| c.now().wall);
                    self.write(conn, &frame.render(sent));
                    // Out at once: the send instant is part of the clock sync.
                    self.flush(now, conn);
                }
                Output::Pause { conn, until } => self.pause(conn, until),
                Output::Close { conn, code, reason } => {
                    // The service has let go of it already: it is not told again.
                    if let Some(c) = self.conn_mut(conn) {
                        if c.in_core {
                            c.in_core = false;
                            self.websockets -= 1;
                        }
                    }
                    self.close_with(now, conn, CloseCode::from(code), reason, false);
                }
            }
        }
        // Keep the allocation; outputs produced while applying are preserved.
        outputs.append(&mut self.outputs);
        self.outputs = outputs;
    }

    /// Queues a text frame; a client owed more than the outbox cap is evicted.
    fn write(&mut self, id: ConnId, text: &tungstenite::Utf8Bytes) {
        self.queue_frame(id, |wire| wire.push_text(text));
    }

    /// Queues a binary frame (the echo service's), with the same cap as text.
    fn write_binary(&mut self, id: ConnId, data: &tungstenite::Bytes) {
        self.queue_frame(id, |wire| wire.push_binary(data));
    }

    fn queue_frame(&mut self, id: ConnId, push: impl FnOnce(&mut Wire<S>)) {
        let cap = self.config.net.outbox_bytes_max;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Phase::Open { ws } = &mut conn.phase else {
            return;
        };
        if !ws.can_write() {
            return;
        }
        let wire = ws.get_mut();
        push(wire);
        if wire.footprint() > cap {
            self.evict(id);
        } else {
            self.mark_dirty(id);
        }
    }

    /// Moves tungstenite's pending control frames into the queue and writes the queue.
    fn flush(&mut self, now: Now, id: ConnId) {
        let stall_ms = self.config.net.write_stall_timeout_ms;
        let cap = self.config.net.outbox_bytes_max;
        self.touched.push(id);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let ws = match &mut conn.phase {
            Phase::Open { ws } | Phase::Closing { ws } => ws,
            _ => return,
        };
        // ConnectionClosed: the closing handshake is complete once the queue is written.
        let finished = match ws.flush() {
            Ok(()) => false,
            Err(WsError::ConnectionClosed) => true,
            Err(_) => {
                conn.die();
                return;
            }
        };
        let owed = ws.get_mut().queued();
        let sent = ws.get_mut().send();
        if ws.get_ref().footprint() > cap + CONTROL_SLACK {
            // Only control frames (a pong, a close, a ping) may sit past the cap.
            self.evict(id);
            return;
        }
        match sent {
            Ok(()) if finished => conn.die(),
            Ok(()) => conn.stalled_since = None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.writable = false;
                // A client that takes no bytes at all for a while is not coming back.
                let progressed = ws.get_mut().queued() < owed;
                let since = match conn.stalled_since {
                    Some(since) if !progressed => since,
                    _ => now.mono,
                };
                conn.stalled_since = Some(since);
                if now.mono.since(since) >= stall_ms {
                    self.evict(id);
                }
            }
            Err(_) => conn.die(),
        }
    }

    fn flush_dirty(&mut self, now: Now) {
        for id in std::mem::take(&mut self.dirty) {
            let Some(conn) = self.conn_mut(id) else {
                continue;
            };
            conn.dirty = false;
            if matches!(conn.phase, Phase::Respond { .. }) {
                continue;
            }
            self.flush(now, id);
        }
    }
}

fn conn_heard<S: Stream, A: Service>(engine: &mut Engine<S, A>, id: ConnId) -> Millis {
    engine.conn_mut(id).map_or(Millis(0), |c| c.heard_at)
}
