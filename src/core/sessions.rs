//! Connections as the core knows them: their sessions, message budgets and identity.

use super::*;

/// A fixed-window message budget (the window starts at the first message after the last one
/// ended, as the original's does).
#[derive(Clone, Debug, Default)]
pub(super) struct Budget {
    pub(super) window_start: Millis,
    pub(super) count: u32,
    pub(super) warned: bool,
}

pub(super) enum Spend {
    Allow,
    Drop { warn: bool },
}

impl Budget {
    pub(super) fn spend(&mut self, now: Millis, max: u32) -> Spend {
        if now.since(self.window_start) >= 1_000 {
            *self = Budget {
                window_start: now,
                count: 0,
                warned: false,
            };
        }
        self.count = self.count.saturating_add(1);
        if self.count <= max {
            return Spend::Allow;
        }
        let warn = !self.warned;
        self.warned = true;
        Spend::Drop { warn }
    }
}

/// What the core knows about one open connection.
#[derive(Clone, Debug)]
pub(super) struct Session {
    pub(super) conn: ConnId,
    pub(super) seat: SeatId,
    pub(super) user_name: String,
    pub(super) user_id: String,
    /// Slab key of the room this connection is a member of.
    pub(super) room: Option<usize>,
    pub(super) caps: Capabilities,
    /// Room-list version this connection last received.
    pub(super) list_seen: u64,
    /// Room names already answered with `room_closed` (most recent last, bounded), so each
    /// is answered once.
    pub(super) gone_notified: Vec<u64>,
    pub(super) messages: Budget,
    pub(super) client_logs: Budget,
    /// Who it is, as admitted.
    pub(super) identity: Identity,
}

impl Core {
    pub(super) fn session(&self, conn: ConnId) -> Option<&Session> {
        self.sessions
            .get(conn.index as usize)?
            .as_ref()
            .filter(|s| s.conn == conn)
    }

    pub(super) fn session_mut(&mut self, conn: ConnId) -> Option<&mut Session> {
        self.sessions
            .get_mut(conn.index as usize)?
            .as_mut()
            .filter(|s| s.conn == conn)
    }

    /// Spends the message from the right budget; false if it must be dropped.
    pub(super) fn spend(&mut self, conn: ConnId, kind: Kind, out: &mut Outbox) -> bool {
        let now = self.now.mono;
        let (messages_max, logs_max) = (
            self.config.messages_per_second_max,
            self.config.client_logs_per_second_max,
        );
        let Some(session) = self.session_mut(conn) else {
            return false;
        };
        // client_log has its own budget: the stock client flushes up to 100 of them on
        // connect, and they must not starve the messages that matter. Over it, they are
        // dropped silently (they are diagnostics).
        if kind == Kind::ClientLog {
            return matches!(session.client_logs.spend(now, logs_max), Spend::Allow);
        }
        match session.messages.spend(now, messages_max) {
            Spend::Allow => true,
            Spend::Drop { warn } => {
                if warn {
                    self.error(conn, None, ErrorCode::RateLimited, out);
                }
                false
            }
        }
    }

    pub(super) fn identify(
        &mut self,
        conn: ConnId,
        user_name: Option<String>,
        user_id: Option<String>,
        follows_schedule: Option<bool>,
        credential: Option<Credential>,
        out: &mut Outbox,
    ) {
        let Some(session) = self.session_mut(conn) else {
            return;
        };
        if let Some(name) = user_name.as_deref().and_then(text::display_name) {
            session.user_name = name;
        }
        if let Some(id) = user_id {
            session.user_id = text::sanitize_line(&id, text::NAME_CHARS_MAX);
        }
        if let Some(follows) = follows_schedule {
            session.caps.follows_schedule = follows;
        }
        match credential {
            None => {}
            Some(Credential::Accepted(identity)) => {
                if let Identity::Verified { name, .. } = &identity {
                    if let Some(name) = text::display_name(name) {
                        session.user_name = name;
                    }
                }
                session.identity = identity;
                let (seat, user_name) = (session.seat, session.user_name.clone());
                out.unicast(conn, Event::AuthSuccess { seat, user_name });
            }
            // A token the edge did not check is never taken on trust.
            Some(Credential::Refused | Credential::Token(_)) => {
                self.error(conn, None, ErrorCode::AuthFailed, out);
            }
        }
    }

    /// When `conn`'s message budget refills, if it sent past it: the shell may stop reading
    /// it until then.
    pub fn over_budget_until(&self, conn: ConnId) -> Option<Millis> {
        let session = self.session(conn)?;
        let budget = &session.messages;
        (budget.count > self.config.messages_per_second_max).then(|| budget.window_start + 1_000)
    }
}
