//! The WebSocket pumps: reading messages within the turn's budget, pausing a sender past its
//! rate, closing handshakes, and what a read error means.

use super::*;

/// Data frames a second a connection may send per message of its rate: room for a few
/// fragments per message, none for a message fragmented without end.
pub const FRAMES_PER_MESSAGE: u64 = 4;

impl<S: Stream, A: Service> Engine<S, A> {
    /// Reads what this turn's budget allows, then paces data frames: a client that sends
    /// more data frames in a second than `FRAMES_PER_MESSAGE` times the message rate (a
    /// message fragmented without end never counts as a message) is paused like one past
    /// its message rate.
    pub(super) fn drive_open(&mut self, now: Now, id: ConnId) -> bool {
        // A new second starts counting from what was read before this drive.
        if let Some(conn) = self.conn_mut(id) {
            if now.mono.since(conn.frames_since) >= 1_000 {
                if let Phase::Open { ws } = &mut conn.phase {
                    conn.frames_base = ws.get_mut().data_frames();
                }
                conn.frames_since = now.mono;
            }
        }
        let advanced = self.read_messages(now, id);
        let limit =
            u64::from(self.config.core.messages_per_second_max).saturating_mul(FRAMES_PER_MESSAGE);
        let Some(conn) = self.conn_mut(id) else {
            return advanced;
        };
        let Phase::Open { ws } = &mut conn.phase else {
            return advanced;
        };
        if ws.get_mut().data_frames().saturating_sub(conn.frames_base) > limit {
            let until = conn.frames_since.after(1_000);
            self.pause(id, until);
        }
        advanced
    }

    /// Reads up to the per-turn budget of messages and bytes and hands them to the service.
    /// A connection paused (past its rate) is not read until its pause ends.
    fn read_messages(&mut self, now: Now, id: ConnId) -> bool {
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
    pub(super) fn pause(&mut self, id: ConnId, until: Millis) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.paused_until.is_some_and(|p| p >= until) {
            return;
        }
        conn.paused_until = Some(until);
        self.stats.paused = self.stats.paused.saturating_add(1);
        self.wheel.insert(until, (id, ShellTimer::Resume));
    }

    /// After a message larger than the read chunk, tungstenite's input buffer stays at that
    /// size. Once the socket is drained at a frame boundary (tungstenite then holds no input
    /// and no partial message), the protocol state is rebuilt with a fresh small buffer.
    pub(super) fn release_read_buffer(&mut self, id: ConnId) {
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
        self.stats.read_buffers_released = self.stats.read_buffers_released.saturating_add(1);
    }

    pub(super) fn on_message(&mut self, now: Now, id: ConnId, message: Message) {
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
                        conn.phase = Phase::Closing { ws, discard: false };
                    }
                }
                self.wheel.insert(
                    now.mono.after(self.config.net.close_timeout_ms),
                    (id, ShellTimer::Closing),
                );
            }
            // Pings (and unsolicited pongs) share the message rate.
            Message::Ping(_) | Message::Pong(_) => {
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
                    let until = conn.pings_since.after(1_000);
                    self.pause(id, until);
                }
            }
            Message::Frame(_) => {}
        }
    }

    pub(super) fn on_read_error(&mut self, now: Now, id: ConnId, error: WsError) {
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
    pub(super) fn drive_closing(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return false;
        };
        let Phase::Closing { ws, discard } = &mut conn.phase else {
            return false;
        };
        if !ws.can_read() || *discard {
            return self.drive_drain(id);
        }
        let allowed = self.turn_budget(id);
        for _ in 0..allowed {
            let Some(conn) = self.conn_mut(id) else {
                return false;
            };
            let Phase::Closing { ws, .. } = &mut conn.phase else {
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
    pub(super) fn close_with(
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
        let (mut ws, discard) = match std::mem::replace(&mut conn.phase, Phase::Dead(None)) {
            Phase::Open { ws } => (ws, fatal),
            Phase::Closing { ws, discard } => (ws, discard || fatal),
            other => {
                conn.phase = other;
                return;
            }
        };
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
        conn.phase = Phase::Closing { ws, discard };
        self.mark_dirty(id);
        self.wheel.insert(
            now.mono.after(self.config.net.close_timeout_ms),
            (id, ShellTimer::Closing),
        );
    }

    /// Tells the core the connection is gone (once).
    pub(super) fn leave_core(&mut self, now: Now, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.in_core {
            conn.in_core = false;
            self.websockets = self.websockets.saturating_sub(1);
            self.gateway.close(now, id, &mut self.outputs);
            self.apply_outputs(now);
        }
    }

    pub(super) fn kill(&mut self, id: ConnId) {
        self.touched.push(id);
        if let Some(conn) = self.conn_mut(id) {
            conn.die();
        }
    }

    /// A slow consumer: its queue hit the cap. Dropped without a closing handshake (there
    /// is no room for a close frame and the peer is not reading).
    pub(super) fn evict(&mut self, id: ConnId) {
        self.stats.evicted = self.stats.evicted.saturating_add(1);
        log!(
            Warn,
            "event=evicted reason=slow_consumer conn={id} queued_max={}",
            self.config.net.outbox_bytes_max
        );
        self.kill(id);
    }
}
