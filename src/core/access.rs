//! Who may do what: identities taken on from checked credentials, who may create and join
//! rooms (authentication, invites, private rooms, rooms per identity), and invites made.
//!
//! With authentication on (`auth_enabled`), a seat is authenticated when its identity is
//! `Verified`; a verified seat's name and user id come from its token and nothing a client
//! declares changes them. With it off, every seat is authenticated and names are declared.

use super::*;
use types::Pass;

/// A name declared without a token, with authentication on: marked as a guest's.
fn guest_name(declared: &str) -> String {
    const MARK: &str = " (guest)";
    let kept: String = declared
        .chars()
        .take(text::NAME_CHARS_MAX.saturating_sub(MARK.chars().count()))
        .collect();
    let mut name = String::from(kept.trim_end());
    name.push_str(MARK);
    name
}

impl Core {
    /// Whether `conn`'s seat may act as a known user (always, with authentication off).
    pub(super) fn authenticated(&self, conn: ConnId) -> bool {
        !self.config.auth_enabled || self.verified(conn)
    }

    /// Whether `conn`'s seat has a verified identity.
    pub(super) fn verified(&self, conn: ConnId) -> bool {
        self.seat_of(conn)
            .is_some_and(|s| matches!(s.identity, Identity::Verified { .. }))
    }

    /// Seat `key`'s verified subject, if it has one.
    pub(super) fn subject(&self, key: usize) -> Option<&str> {
        match &self.seats.get(key)?.identity {
            Identity::Verified { subject, .. } => Some(subject),
            Identity::Anonymous => None,
        }
    }

    /// Takes on an identity a checked credential proves: a verified one names the seat
    /// (its token's `name`, sanitized) and fixes its user id (the token's `sub`).
    pub(super) fn take_identity(&mut self, conn: ConnId, identity: Identity) {
        let Some(seat) = self.seat_of_mut(conn) else {
            return;
        };
        seat.identity = match identity {
            Identity::Anonymous => Identity::Anonymous,
            Identity::Verified { subject, name } => {
                // What a token says is bounded like what a client says.
                let name = text::display_name(&name).unwrap_or_else(|| seat.name.clone());
                let subject = text::sanitize_line(&subject, text::NAME_CHARS_MAX);
                seat.name = name.clone();
                seat.user_id = subject.clone();
                Identity::Verified { subject, name }
            }
        };
    }

    /// A credential presented with a request (`auth_token`): an accepted one is taken on,
    /// a refused one answers `auth_failed` and stops the request (false). A seat that was
    /// verified stays so after a bad token.
    pub(super) fn present(
        &mut self,
        conn: ConnId,
        credential: Option<Credential>,
        out: &mut Outbox,
    ) -> bool {
        match credential {
            None => true,
            Some(Credential::Accepted(identity)) if !self.same_subject(conn, &identity) => {
                self.error(conn, None, ErrorCode::AuthFailed, out);
                false
            }
            Some(Credential::Accepted(identity)) => {
                self.take_identity(conn, identity);
                true
            }
            // A token the edge did not check is never taken on trust.
            Some(Credential::Refused | Credential::Token(_)) => {
                self.error(conn, None, ErrorCode::AuthFailed, out);
                false
            }
        }
    }

    /// Whether `identity` may be taken on by `conn`: a connection verified as one subject
    /// stays that subject (a refreshed token of the same user is fine; another user's is
    /// refused, or one connection could host rooms under many identities).
    pub(super) fn same_subject(&self, conn: ConnId, identity: &Identity) -> bool {
        let mine = self.seat_key(conn).and_then(|k| self.subject(k));
        match (mine, identity) {
            (Some(mine), Identity::Verified { subject, .. }) => mine == subject,
            _ => true,
        }
    }

    /// Renames seat `key` as its client asks, unless its name comes from a verified token.
    /// With authentication on, a name without a token is marked `(guest)`, so nobody can
    /// pass for a member who has one.
    pub(super) fn rename(&mut self, key: usize, user_name: Option<&str>) {
        let auth = self.config.auth_enabled;
        let Some(seat) = self.seats.get_mut(key) else {
            return;
        };
        if matches!(seat.identity, Identity::Verified { .. }) {
            return;
        }
        if let Some(name) = user_name.and_then(text::display_name) {
            seat.name = if auth { guest_name(&name) } else { name };
        }
    }

    /// Whether `conn` may create a room: authenticated, and (verified) hosting fewer than
    /// `rooms_per_identity_max` rooms besides the one it hosts now (which a new room
    /// replaces). Refusals are answered.
    pub(super) fn may_create(&mut self, conn: ConnId, out: &mut Outbox) -> bool {
        if !self.authenticated(conn) {
            self.error(conn, None, ErrorCode::AuthRequired, out);
            return false;
        }
        let Some(mine) = self.seat_key(conn) else {
            return false;
        };
        let Some(subject) = self.subject(mine) else {
            return true;
        };
        let hosted = self
            .rooms
            .iter()
            .filter(|(_, room)| room.host != mine && self.subject(room.host) == Some(subject))
            .count();
        if hosted >= self.config.rooms_per_identity_max {
            self.error(conn, None, ErrorCode::RoomsLimit, out);
            return false;
        }
        true
    }

    /// Whether `conn` may join room `key` (of which it is not a member): a valid invite for
    /// this room admits anyone; without one, a private room admits only its host's
    /// identity, and with authentication on only an authenticated seat may join. A presented
    /// invite that fails is refused with its code even when the seat could join without it.
    pub(super) fn may_join(
        &mut self,
        conn: ConnId,
        key: usize,
        invite: Option<Pass>,
        out: &mut Outbox,
    ) -> bool {
        let Some(room) = self.rooms.get(key) else {
            return false;
        };
        let (id, serial, private, host) = (room.id, room.serial, room.private, room.host);
        let refusal = match invite {
            Some(Pass::Valid { room, .. }) if room != id => Some(ErrorCode::InviteRoomMismatch),
            // The room it was made for closed; this one only shares its id.
            Some(Pass::Valid { serial: made, .. }) if made != serial => {
                Some(ErrorCode::RoomNotFound)
            }
            Some(Pass::Valid { .. }) => None,
            Some(Pass::Refused(code)) => Some(code),
            Some(Pass::Token(_)) => Some(ErrorCode::InviteInvalid),
            None => {
                let mine = self.seat_key(conn).and_then(|k| self.subject(k));
                let owner = self.rooms.get(key).and_then(|r| r.owner.as_deref());
                let hosts_it = mine.is_some() && (mine == self.subject(host) || mine == owner);
                if private && !hosts_it {
                    Some(ErrorCode::InviteRequired)
                } else if !self.authenticated(conn) {
                    Some(ErrorCode::AuthRequired)
                } else {
                    None
                }
            }
        };
        match refusal {
            Some(code) => {
                self.error(conn, Some(id), code, out);
                false
            }
            None => true,
        }
    }

    /// `create_invite`: the host of the room named (else of its room) gets an invite valid
    /// for `expires_in` seconds (default and cap are settings).
    pub(super) fn create_invite(
        &mut self,
        conn: ConnId,
        name: Option<&str>,
        expires_in: Option<u64>,
        out: &mut Outbox,
    ) {
        let current = self
            .seat_of(conn)
            .and_then(|s| s.room)
            .and_then(|key| self.rooms.get(key))
            .map(|room| room.id.to_string());
        let Some(name) = name.map(str::to_string).or(current) else {
            self.error(conn, None, ErrorCode::NotInRoom, out);
            return;
        };
        let Some(key) = self.host_room(conn, Some(&name), out) else {
            return;
        };
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let ttl = expires_in
            .filter(|&s| s > 0)
            .unwrap_or(self.config.invite_ttl_default_s)
            .min(self.config.invite_ttl_max_s);
        let expires_at = (self.now.wall.0 / 1_000)
            .saturating_add(ttl)
            .saturating_mul(1_000);
        self.counters.invites = self.counters.invites.saturating_add(1);
        let event = Event::Invite {
            room: room.id,
            serial: room.serial,
            expires_at: crate::time::UnixMillis(expires_at),
        };
        out.unicast(conn, event);
    }
}
