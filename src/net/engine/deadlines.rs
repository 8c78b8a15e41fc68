//! The shell's deadlines on its timer wheel: handshake, idle (and its keep-alive ping),
//! closing, and the end of a pause.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ShellTimer {
    Handshake,
    Idle,
    Closing,
    /// A pause (`pause`) is over.
    Resume,
}

impl<S: Stream, A: Service> Engine<S, A> {
    pub(super) fn timer(&mut self, now: Now, id: ConnId, timer: ShellTimer) {
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
                    bytes: bytes.into(),
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
                    self.stats.idled_out = self.stats.idled_out.saturating_add(1);
                    log!(Debug, "event=idle_timeout conn={id}");
                    self.close_with(now, id, CloseCode::Away, "Idle timeout", false);
                    return;
                }
                let next = if silent >= idle_ms / 2 {
                    if let Phase::Open { ws } = &mut conn.phase {
                        let _ = ws.write(Message::Ping(Default::default()));
                        if ws.get_mut().footprint() > cap.saturating_add(CONTROL_SLACK) {
                            conn.die();
                        }
                    }
                    self.mark_dirty(id);
                    conn_heard(self, id).after(idle_ms)
                } else {
                    conn_heard(self, id).after(idle_ms / 2)
                };
                self.wheel.insert(next, (id, ShellTimer::Idle));
            }
            _ => {}
        }
    }
}

pub(super) fn conn_heard<S: Stream, A: Service>(engine: &mut Engine<S, A>, id: ConnId) -> Millis {
    engine.conn_mut(id).map_or(Millis(0), |c| c.heard_at)
}
