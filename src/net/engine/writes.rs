//! The write path: what the service asked for, queued per connection and flushed once per
//! turn with one vectored write per connection.

use super::*;

impl<S: Stream, A: Service> Engine<S, A> {
    pub(super) fn apply_outputs(&mut self, now: Now) {
        let mut outputs = std::mem::take(&mut self.outputs);
        for output in outputs.drain(..) {
            match output {
                Output::Send { conn, text } => self.write(conn, &text),
                Output::SendLatest { conn, text, key } => {
                    self.queue_frame(conn, |wire| wire.push_latest(&text, key))
                }
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
                            self.websockets = self.websockets.saturating_sub(1);
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
    pub(super) fn write(&mut self, id: ConnId, text: &tungstenite::Utf8Bytes) {
        self.queue_frame(id, |wire| wire.push_text(text));
    }

    /// Queues a binary frame (the echo service's), with the same cap as text.
    pub(super) fn write_binary(&mut self, id: ConnId, data: &tungstenite::Bytes) {
        self.queue_frame(id, |wire| wire.push_binary(data));
    }

    pub(super) fn queue_frame(&mut self, id: ConnId, push: impl FnOnce(&mut Wire<S>)) {
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
    pub(super) fn flush(&mut self, now: Now, id: ConnId) {
        let stall_ms = self.config.net.write_stall_timeout_ms;
        let cap = self.config.net.outbox_bytes_max;
        self.touched.push(id);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let ws = match &mut conn.phase {
            Phase::Open { ws } | Phase::Closing { ws, .. } => ws,
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
        if ws.get_ref().footprint() > cap.saturating_add(CONTROL_SLACK) {
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

    pub(super) fn flush_dirty(&mut self, now: Now) {
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
