//! Connections and seats as the core knows them.
//!
//! A seat is a place in the server: an id the others see (`client_id`), a name, an identity,
//! a room. A connection holds at most one seat; a room's members are seats. Today every seat
//! is made when its connection opens and ends when it closes, but nothing else in the core
//! assumes a seat has a connection: events for a seat without one are simply not sent.
//! A session is the connection's own state: its seat, its message budgets, what it was told.

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

/// A seat: who sits there and where.
#[derive(Clone, Debug)]
pub(super) struct Seat {
    /// Its public id (`client_id`).
    pub(super) id: SeatId,
    /// The connection holding it, if any.
    pub(super) conn: Option<ConnId>,
    /// Display name.
    pub(super) name: String,
    /// Caller-chosen user id (self-declared, never trusted).
    pub(super) user_id: String,
    /// Who it is, as admitted.
    pub(super) identity: Identity,
    /// What its client declared it can do.
    pub(super) caps: Capabilities,
    /// Slab key of the room it is a member of.
    pub(super) room: Option<usize>,
    /// Its connection went away and it waits for it to come back: the serial of that
    /// absence (timers carry it, so a stale one finds a different serial or none).
    pub(super) grace: Option<u64>,
    /// Digest of the token that resumes it (the latest one its client was given).
    pub(super) resume: Option<String>,
    /// Its room's chat count when it went away (what it missed is after).
    pub(super) chat_seen: u64,
}

/// What the core knows about one open connection.
#[derive(Clone, Debug)]
pub(super) struct Session {
    pub(super) conn: ConnId,
    /// The seat it holds (a key in the seat table).
    pub(super) seat: usize,
    /// Room-list version this connection last received.
    pub(super) list_seen: u64,
    /// When it last asked for the list and was answered (never: `None`).
    pub(super) list_sent_at: Option<Millis>,
    /// Room names already answered with `room_closed` (most recent last, bounded), so each
    /// is answered once.
    pub(super) gone_notified: Vec<u64>,
    /// Rooms it left on purpose (most recent last, bounded): a late message naming one does
    /// not bring it back, whatever it joined since.
    pub(super) left: Vec<u64>,
    pub(super) messages: Budget,
    pub(super) client_logs: Budget,
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

    /// The key of the seat `conn` holds.
    pub(super) fn seat_key(&self, conn: ConnId) -> Option<usize> {
        self.session(conn).map(|s| s.seat)
    }

    /// The seat `conn` holds.
    pub(super) fn seat_of(&self, conn: ConnId) -> Option<&Seat> {
        self.seats.get(self.seat_key(conn)?)
    }

    /// The seat `conn` holds, to change it.
    pub(super) fn seat_of_mut(&mut self, conn: ConnId) -> Option<&mut Seat> {
        let key = self.seat_key(conn)?;
        self.seats.get_mut(key)
    }

    /// The connection holding seat `key`, if any.
    pub(super) fn conn_of(&self, key: usize) -> Option<ConnId> {
        self.seats.get(key).and_then(|s| s.conn)
    }

    /// Queues event `index` for seat `key`'s connection; a seat without one is skipped.
    pub(super) fn send_seat(&self, key: usize, index: u32, out: &mut Outbox) {
        if let Some(conn) = self.conn_of(key) {
            out.send(conn, index);
        }
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
        let Some(key) = self.seat_key(conn) else {
            return;
        };
        // With authentication on, who a connection is comes from its token only (the
        // original ignores a declared name then, too).
        if !self.config.auth_enabled {
            self.rename(key, user_name.as_deref());
            if let (Some(id), Some(seat)) = (user_id, self.seats.get_mut(key)) {
                seat.user_id = text::sanitize_line(&id, text::NAME_CHARS_MAX);
            }
        }
        if let (Some(follows), Some(seat)) = (follows_schedule, self.seats.get_mut(key)) {
            seat.caps.follows_schedule = follows;
        }
        match credential {
            None => {}
            Some(Credential::Accepted(identity)) if !self.same_subject(conn, &identity) => {
                self.error(conn, None, ErrorCode::AuthFailed, out);
            }
            Some(Credential::Accepted(identity)) => {
                let verified = matches!(identity, Identity::Verified { .. });
                self.take_identity(conn, identity);
                if verified {
                    self.reclaim(conn, out);
                }
                if let Some(seat) = self.seat_of(conn) {
                    let (id, user_name) = (seat.id, seat.name.clone());
                    out.unicast(
                        conn,
                        Event::AuthSuccess {
                            seat: id,
                            user_name,
                        },
                    );
                }
            }
            // A token the edge did not check is never taken on trust.
            Some(Credential::Refused | Credential::Token(_)) => {
                self.error(conn, None, ErrorCode::AuthFailed, out);
            }
        }
    }

    /// When `conn`'s message budget refills, if it sent past it: the shell may stop reading
    /// it until then.
    pub fn over_budget_until(&self, now: Now, conn: ConnId) -> Option<Millis> {
        let session = self.session(conn)?;
        let budget = &session.messages;
        let until = budget.window_start.after(1_000);
        (budget.count > self.config.messages_per_second_max && now.mono < until).then_some(until)
    }
}
