//! The HTTP phase: reading a request head, answering it (an upgrade, /health, a refusal),
//! and draining what a refused client still sends.

use super::*;

impl<S: Stream, A: Service> Engine<S, A> {
    /// Reads the request head; once it is complete, decides the answer and moves to
    /// `Respond`. False while the head is incomplete.
    pub(super) fn drive_request(&mut self, now: Now, id: ConnId) -> bool {
        let Some((len, route)) = self.read_head(id) else {
            return false;
        };
        let leftover = match self.conns.get(id.index as usize).map(|c| &c.phase) {
            Some(Phase::Request { head, .. }) => head.get(len..).unwrap_or_default().to_vec(),
            _ => return false,
        };
        self.attribute(now, id, &route);
        let (bytes, then) = self.answer(id, route, leftover);
        let Some(conn) = self.conns.get_mut(id.index as usize) else {
            return false;
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

    /// Reads what the socket has into the bounded head buffer and parses it: the head's
    /// length and route once complete.
    fn read_head(&mut self, id: ConnId) -> Option<(usize, Route)> {
        let head_max = self.config.net.request_head_bytes_max;
        let conn = self.conns.get_mut(id.index as usize)?;
        let Phase::Request { stream, head } = &mut conn.phase else {
            return None;
        };
        while conn.readable && head.len() < head_max {
            let room = head_max.saturating_sub(head.len()).min(self.scratch.len());
            let buf = self.scratch.get_mut(..room)?;
            match stream.read(buf) {
                Ok(0) => {
                    conn.die();
                    return None;
                }
                Ok(n) => head.extend_from_slice(buf.get(..n)?),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    conn.die();
                    return None;
                }
            }
        }
        let origins = self.config.allowed_origins.as_deref();
        let service = &self.gateway;
        let serves = |path: &str| service.select(path, &[]).is_ok();
        upgrade::parse_request(head, head_max, origins, &serves)
    }

    /// The response to a complete request, and what follows it.
    fn answer(
        &mut self,
        id: ConnId,
        route: Route,
        leftover: Vec<u8>,
    ) -> (std::borrow::Cow<'static, [u8]>, AfterResponse) {
        if let Route::Page { head, etag_matches } = route {
            let refusal = self.conns.get(id.index as usize).and_then(|c| c.refusal);
            if self.config.net.party_page && refusal.is_none() {
                let page = crate::page::response(head, etag_matches);
                return (page.into(), AfterResponse::Close);
            }
            let status = refusal.unwrap_or(Status::NotFound);
            self.count_refusal(status);
            return (upgrade::refusal(status).into(), AfterResponse::Close);
        }
        let (bytes, then) = self.answer_vec(id, route, leftover);
        (bytes.into(), then)
    }

    /// Every other response, made for this request.
    fn answer_vec(
        &mut self,
        id: ConnId,
        route: Route,
        leftover: Vec<u8>,
    ) -> (Vec<u8>, AfterResponse) {
        let refusal = self.conns.get(id.index as usize).and_then(|c| c.refusal);
        let peer = self.conns.get(id.index as usize).and_then(|c| c.peer);
        match route {
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
            // Answered whatever the limits too, with the token it may need.
            Route::Metrics { head, bearer, .. } => {
                let expected = self.config.net.metrics_token.as_ref();
                let allowed = expected.is_none_or(|token| {
                    bearer.as_deref().map(str::as_bytes) == Some(token.0.as_slice())
                });
                if !allowed {
                    self.count_refusal(Status::Unauthorized);
                    return (upgrade::refusal(Status::Unauthorized), AfterResponse::Close);
                }
                let body = self.metrics_text();
                (upgrade::metrics(&body, head), AfterResponse::Close)
            }
            _ if refusal.is_some() => {
                let status = refusal.unwrap_or(Status::Unavailable);
                self.count_refusal(status);
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
                        peer,
                        path,
                        requested_protocols: protocols,
                        protocol,
                        origin,
                        forwarded_for,
                    };
                    let upgrade = AfterResponse::Upgrade {
                        leftover,
                        info: Box::new(info),
                    };
                    (upgrade::switching_protocols(&key, protocol), upgrade)
                }
                Err(status) => {
                    self.count_refusal(status);
                    (upgrade::refusal(status), AfterResponse::Close)
                }
            },
            Route::Page { .. } | Route::Refuse(_) => {
                let status = match route {
                    Route::Refuse(status) => status,
                    _ => Status::NotFound,
                };
                self.count_refusal(status);
                log!(
                    Debug,
                    "event=http_refused conn={id} status={}",
                    status.line().0
                );
                (upgrade::refusal(status), AfterResponse::Close)
            }
        }
    }

    /// A trusted proxy's connection is counted under the client its request names.
    pub(super) fn attribute(&mut self, now: Now, id: ConnId, route: &Route) {
        let forwarded = match route {
            Route::WebSocket { forwarded_for, .. }
            | Route::Health { forwarded_for, .. }
            | Route::Metrics { forwarded_for, .. } => *forwarded_for,
            Route::Page { .. } | Route::Refuse(_) => None,
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

    pub(super) fn drive_respond(&mut self, now: Now, id: ConnId) -> bool {
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
            match stream.write(bytes.get(*written..).unwrap_or_default()) {
                Ok(0) => {
                    conn.die();
                    return false;
                }
                Ok(n) => *written = written.saturating_add(n),
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
                let deadline = now.mono.after(self.config.net.close_timeout_ms);
                self.wheel.insert(deadline, (id, ShellTimer::Closing));
            }
            AfterResponse::Upgrade { leftover, info } => {
                let config = Some(self.ws_config);
                let mut wire = Wire::new(stream);
                wire.reset_large(self.config.net.read_buffer_bytes);
                wire.note_read(&leftover);
                let ws = WebSocket::from_partially_read(wire, leftover, Role::Server, config);
                conn.phase = Phase::Open { ws: Box::new(ws) };
                conn.in_core = true;
                conn.heard_at = now.mono;
                // Bytes that arrived with the request are in tungstenite's buffer now.
                conn.readable = true;
                self.websockets = self.websockets.saturating_add(1);
                self.stats.opened = self.stats.opened.saturating_add(1);
                log!(Debug, "event=opened conn={id}");
                let deadline = now.mono.after(self.config.net.idle_timeout_ms / 2);
                self.wheel.insert(deadline, (id, ShellTimer::Idle));
                self.gateway.open(now, id, &info, &mut self.outputs);
                self.apply_outputs(now);
            }
        }
        true
    }

    /// Reads and discards until EOF; the peer has our response (or close frame).
    pub(super) fn drive_drain(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(id.index as usize).filter(|c| c.id == id) else {
            return false;
        };
        let stream = match &mut conn.phase {
            Phase::Drain { stream } => stream,
            Phase::Closing { ws, .. } => ws.get_mut().get_mut(),
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

    pub(super) fn address_refused(&mut self, address: IpAddr, first: bool) {
        self.stats.address_refusals = self.stats.address_refusals.saturating_add(1);
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
}
