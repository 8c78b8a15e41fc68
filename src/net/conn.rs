//! One connection's transport state, generic over any `Read + Write` stream. Private to the
//! engine: only it reads or changes a connection.

use tungstenite::WebSocket;

use super::service::ConnInfo;
use super::upgrade::Status;
use super::wire::Wire;
use std::net::IpAddr;

use crate::id::ConnId;
use crate::time::Millis;

/// What a WebSocket holds besides its queue, roughly (tungstenite's state and read chunk, the
/// slot, the core's session), counted in `Conn::freed_bytes` when it is dropped.
const WEBSOCKET_FOOTPRINT_BYTES: usize = 2 << 10;

/// Where a connection is in its life.
#[derive(Debug)]
pub(super) enum Phase<S> {
    /// Reading the HTTP request head (bounded buffer).
    Request {
        /// The socket.
        stream: S,
        /// Bytes read so far.
        head: Vec<u8>,
    },
    /// Writing an HTTP response; then upgrade or drain.
    Respond {
        /// The socket.
        stream: S,
        /// The whole response (the party page's is shared, never copied).
        bytes: std::borrow::Cow<'static, [u8]>,
        /// How much of it is written.
        written: usize,
        /// What follows.
        then: AfterResponse,
    },
    /// After a refusal: read and discard until EOF or a short deadline, so closing with
    /// unread bytes does not reset the connection before the client reads the response.
    Drain {
        /// The socket.
        stream: S,
    },
    /// A WebSocket; the core knows this connection.
    Open {
        /// tungstenite's protocol state over the socket.
        ws: Box<WebSocket<Wire<S>>>,
    },
    /// A close frame was sent or received; waiting for the closing handshake to finish.
    Closing {
        /// tungstenite's protocol state over the socket.
        ws: Box<WebSocket<Wire<S>>>,
        /// After a fatal read error the input is mid-frame: it is discarded raw, not parsed.
        discard: bool,
    },
    /// To be removed at the end of the turn; the socket is kept so the event loop can
    /// deregister it.
    Dead(Option<S>),
}

/// What happens after an HTTP response is written.
#[derive(Debug)]
pub(super) enum AfterResponse {
    /// Become a WebSocket; bytes already read past the request head are its first input.
    Upgrade {
        /// Bytes after the head.
        leftover: Vec<u8>,
        /// What the request said, for the service.
        info: Box<ConnInfo>,
    },
    /// Drain and close.
    Close,
}

/// A connection slot.
#[derive(Debug)]
pub(super) struct Conn<S> {
    /// This slot's id (index plus generation).
    pub(super) id: ConnId,
    /// Transport phase.
    pub(super) phase: Phase<S>,
    /// Sticky OS readiness: set by events, cleared only by `WouldBlock`.
    pub(super) readable: bool,
    /// Sticky OS readiness: set by events, cleared only by `WouldBlock`.
    pub(super) writable: bool,
    /// Last instant anything arrived (for the idle timeout).
    pub(super) heard_at: Millis,
    /// The core was told this connection opened and not yet that it closed.
    pub(super) in_core: bool,
    /// Accepted only to be refused with this status (over a limit); `/health` is answered
    /// all the same.
    pub(super) refusal: Option<Status>,
    /// The client address this connection is counted under (see `addresses`).
    pub(super) address: Option<IpAddr>,
    /// Came from a trusted proxy: counted under the address its request names.
    pub(super) proxied: bool,
    /// The client's address (the one a trusted proxy names, once known).
    pub(super) peer: Option<IpAddr>,
    /// Already in the engine's carry-over list.
    pub(super) carried: bool,
    /// The turn whose read budget this connection is spending.
    pub(super) budget_turn: u64,
    /// Messages it may still be read this turn.
    pub(super) messages_left: usize,
    /// Not read until then (it sent past its rate).
    pub(super) paused_until: Option<Millis>,
    /// WebSocket pings in the current second, and when that second began.
    pub(super) pings: u32,
    /// Start of the current ping-counting second.
    pub(super) pings_since: Millis,
    /// Start of the current frame-counting second, and the data frames seen before it.
    pub(super) frames_since: Millis,
    /// Data frames the connection had sent when the current second began.
    pub(super) frames_base: u64,
    /// Already on this turn's flush list.
    pub(super) dirty: bool,
    /// Since when the socket has taken none of the bytes owed to it.
    pub(super) stalled_since: Option<Millis>,
    /// Memory given up when the WebSocket was dropped: what was still queued plus its
    /// footprint (0 for connections that never became WebSockets).
    pub(super) freed_bytes: usize,
}

impl<S> Conn<S> {
    /// A fresh connection reading its request.
    pub(super) fn new(id: ConnId, stream: S, now: Millis, refusal: Option<Status>) -> Conn<S> {
        Conn {
            id,
            phase: Phase::Request {
                stream,
                head: Vec::new(),
            },
            readable: true,
            writable: true,
            heard_at: now,
            in_core: false,
            refusal,
            address: None,
            proxied: false,
            peer: None,
            carried: false,
            budget_turn: u64::MAX,
            messages_left: 0,
            paused_until: None,
            pings: 0,
            pings_since: now,
            frames_since: now,
            frames_base: 0,
            dirty: false,
            stalled_since: None,
            freed_bytes: 0,
        }
    }

    /// The socket, whatever the phase (`None` once dead).
    pub(super) fn stream_mut(&mut self) -> Option<&mut S> {
        match &mut self.phase {
            Phase::Request { stream, .. }
            | Phase::Respond { stream, .. }
            | Phase::Drain { stream } => Some(stream),
            Phase::Open { ws } | Phase::Closing { ws, .. } => Some(ws.get_mut().get_mut()),
            Phase::Dead(stream) => stream.as_mut(),
        }
    }

    /// Marks the connection dead, keeping its socket for deregistration.
    pub(super) fn die(&mut self) {
        let stream = self.take_stream();
        self.phase = Phase::Dead(stream);
    }

    /// Drops a WebSocket's state, counting what it held; returns its socket.
    pub(super) fn drop_websocket(&mut self, ws: WebSocket<Wire<S>>) -> S {
        self.freed_bytes = self.freed_bytes.saturating_add(
            ws.get_ref()
                .queued()
                .saturating_add(WEBSOCKET_FOOTPRINT_BYTES),
        );
        ws.into_inner().into_inner()
    }

    /// Takes the socket out, leaving the connection dead.
    pub(super) fn take_stream(&mut self) -> Option<S> {
        match std::mem::replace(&mut self.phase, Phase::Dead(None)) {
            Phase::Request { stream, .. }
            | Phase::Respond { stream, .. }
            | Phase::Drain { stream } => Some(stream),
            Phase::Open { ws } | Phase::Closing { ws, .. } => Some(self.drop_websocket(*ws)),
            Phase::Dead(stream) => stream,
        }
    }
}
