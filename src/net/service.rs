//! The transport's boundary: what the engine asks of the service it carries, and the
//! vocabulary the service answers in. The engine knows WebSockets, not rooms; the service
//! (the watch-party gateway in production, an echo service for conformance) knows messages,
//! not sockets.
//!
//! Every call appends what to do to `out`, in order; the engine carries it out after the
//! call returns.

use std::fmt::Debug;
use std::net::IpAddr;

use tungstenite::{Bytes, Utf8Bytes};

use super::upgrade::Status;
use crate::id::ConnId;
use crate::time::{Millis, Now, UnixMillis};

/// A frame rendered only when it is written, with that instant (a pong's send time is part of
/// the clock-sync sample).
pub trait Deferred: Debug {
    /// The frame's text as sent at `sent`.
    fn render(&self, sent: UnixMillis) -> Utf8Bytes;
}

/// What the engine must do.
#[derive(Debug)]
pub enum Output<D> {
    /// Write this text frame to `conn`.
    Send {
        /// Recipient.
        conn: ConnId,
        /// The frame's text, shared with other recipients.
        text: Utf8Bytes,
    },
    /// Write this text frame to `conn`, superseding the last one sent with the same `key`
    /// if that one has not started to leave (a newer state replaces an older one for a
    /// client that lags).
    SendLatest {
        /// Recipient.
        conn: ConnId,
        /// The frame's text, shared with other recipients.
        text: Utf8Bytes,
        /// What it supersedes (non-zero).
        key: u64,
    },
    /// Write this binary frame to `conn`.
    SendBinary {
        /// Recipient.
        conn: ConnId,
        /// The frame's payload.
        data: Bytes,
    },
    /// Render and write this frame to `conn` at once, stamped with the instant it is written.
    Stamped {
        /// Recipient.
        conn: ConnId,
        /// What to render.
        frame: D,
    },
    /// Stop reading from `conn` until `until` (it sent past its rate: the kernel's buffers
    /// push back on the sender instead of the server reading and discarding).
    Pause {
        /// The connection.
        conn: ConnId,
        /// When reading resumes.
        until: Millis,
    },
    /// Start a closing handshake with `conn` (the service has already forgotten it: `close`
    /// is not called for it).
    Close {
        /// The connection.
        conn: ConnId,
        /// WebSocket close code (RFC 6455 §7.4; 4000–4999 for the application).
        code: u16,
        /// Close reason (at most 123 bytes).
        reason: &'static str,
    },
}

/// What the upgrade request said, handed to the service when the WebSocket opens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address: the peer's, or for a trusted proxy the one its
    /// `X-Forwarded-For` names. `None` for streams without one (simulations).
    pub peer: Option<IpAddr>,
    /// The request path, without query.
    pub path: String,
    /// Subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order.
    pub requested_protocols: Vec<String>,
    /// The subprotocol selected and echoed back, if any.
    pub protocol: Option<&'static str>,
    /// The `Origin` header, if any (already checked against the allow-list).
    pub origin: Option<String>,
    /// The last `X-Forwarded-For` address, whoever sent it (trusted or not).
    pub forwarded_for: Option<IpAddr>,
}

/// A snapshot of the service for `/health` (and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Rooms open.
    pub rooms: usize,
    /// Whether clients must authenticate.
    pub auth_enabled: bool,
}

/// What an engine serves.
pub trait Service {
    /// Frames rendered at write time (`Output::Stamped`).
    type Deferred: Deferred;

    /// Whether a WebSocket may open at `path` offering `protocols`, and which subprotocol is
    /// selected (echoed in the 101). `Err` refuses the upgrade with that status (404 for a
    /// path the service does not serve).
    fn select(&self, path: &str, protocols: &[String]) -> Result<Option<&'static str>, Status>;
    /// A WebSocket opened.
    fn open(
        &mut self,
        now: Now,
        conn: ConnId,
        info: &ConnInfo,
        out: &mut Vec<Output<Self::Deferred>>,
    );
    /// A text message arrived.
    fn text(&mut self, now: Now, conn: ConnId, text: &str, out: &mut Vec<Output<Self::Deferred>>);
    /// A binary message arrived.
    fn binary(
        &mut self,
        now: Now,
        conn: ConnId,
        data: &[u8],
        out: &mut Vec<Output<Self::Deferred>>,
    );
    /// A WebSocket is gone (told once per `open`, unless the service asked for the close).
    fn close(&mut self, now: Now, conn: ConnId, out: &mut Vec<Output<Self::Deferred>>);
    /// Timers due at `now`.
    fn advance(&mut self, now: Now, out: &mut Vec<Output<Self::Deferred>>);
    /// The server is stopping.
    fn shutdown(&mut self, now: Now, out: &mut Vec<Output<Self::Deferred>>);
    /// When `advance` next has work.
    fn next_deadline(&self) -> Option<Millis>;
    /// A snapshot for `/health`.
    fn stats(&self) -> ServiceStats;
    /// Releases capacity left over from connections that are gone.
    fn compact(&mut self) {}
    /// Appends the service's own metrics (Prometheus text) to `out`.
    fn metrics(&self, _out: &mut String) {}
    /// What must outlive a restart, serialized whole (`None`: nothing is kept). Written to
    /// the state file at shutdown, before the connections close.
    fn snapshot(&mut self, _now: Now) -> Option<Vec<u8>> {
        None
    }
    /// Starts a snapshot taken in slices (the loop writes one every few turns while
    /// running): its first bytes go to `buf`. False when there is nothing to write (nothing
    /// is kept, or nothing changed since the last one).
    fn snapshot_start(&mut self, _now: Now, _buf: &mut Vec<u8>) -> bool {
        false
    }
    /// Appends the next slice (about `bytes` bytes, at least one item) to `buf`; true once
    /// the snapshot is complete.
    fn snapshot_next(&mut self, _now: Now, _buf: &mut Vec<u8>, _bytes: usize) -> bool {
        true
    }
}

/// A service without deferred frames.
#[derive(Debug)]
pub enum NoDeferred {}

impl Deferred for NoDeferred {
    fn render(&self, _sent: UnixMillis) -> Utf8Bytes {
        match *self {}
    }
}

/// Writes one Prometheus metric family: its help, type and samples (`labels` without
/// braces; empty for none).
pub fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}
