//! The room list: what the lobby sees, in which order, how big, and how often it is pushed.

use super::*;

#[derive(Debug, Default)]
pub(super) struct ListState {
    pub(super) version: u64,
    pub(super) flush_scheduled: bool,
    pub(super) last_push: Option<Millis>,
    /// Least spacing after the last push, from its size (see `flush_room_list`).
    pub(super) spacing_ms: u64,
    /// The listing of the latest version computed.
    pub(super) cache: Option<Arc<Listing>>,
    /// A room list was sent during the current call (`finish` fills it in).
    pub(super) sent_this_call: bool,
}

/// A room's list entry.
pub(super) fn summary(room: &Room) -> RoomSummary {
    RoomSummary {
        id: room.id,
        name: room.name.clone(),
        count: room.members.len(),
        media_id: room.media_id.clone(),
    }
}

/// Least spacing of `list_rooms` answers that repeat a list the connection already has.
pub const LIST_REPEAT_MS: u64 = 5_000;

/// What a `room_list` message holds besides its entries, at most (type, total, timestamps).
pub const LISTING_ENVELOPE_BYTES: usize = 128;

impl Core {
    /// Every room, in creation order (for tests and checks; clients get `listing`).
    pub fn room_list(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<(u64, RoomSummary)> = self
            .rooms
            .iter()
            .map(|(_, room)| (room.serial, summary(room)))
            .collect();
        rooms.sort_by_key(|(serial, _)| *serial);
        rooms.into_iter().map(|(_, summary)| summary).collect()
    }

    /// The room list as clients get it: public rooms (a private one is never listed nor
    /// counted), those with more members first, then the newest, at
    /// most `room_list_max` entries whose size (`RoomSummary::bytes_max`) adds up to at most
    /// `room_list_bytes_max`, with the number of rooms that exist.
    pub fn listing(&self) -> Listing {
        let mut order: Vec<(usize, u64, usize)> = self
            .rooms
            .iter()
            .filter(|(_, room)| !room.private)
            .map(|(key, room)| (room.members.len(), room.serial, key))
            .collect();
        order.sort_unstable_by_key(|&(members, serial, _)| std::cmp::Reverse((members, serial)));
        let mut listing = Listing {
            version: self.list.version,
            rooms: Vec::new(),
            total: order.len(),
            bytes_max: LISTING_ENVELOPE_BYTES,
        };
        for (_, _, key) in order.into_iter().take(self.config.room_list_max) {
            let Some(room) = self.rooms.get(key) else {
                continue;
            };
            let entry = summary(room);
            let bytes = listing.bytes_max.saturating_add(entry.bytes_max());
            if bytes > self.config.room_list_bytes_max {
                break;
            }
            listing.bytes_max = bytes;
            listing.rooms.push(entry);
        }
        listing
    }

    /// A client's `list_rooms`: answered with the list, except that a list the connection
    /// already has (same version) is sent again at most once per `LIST_REPEAT_MS`: a small
    /// request cannot buy a large reply over and over.
    pub(super) fn list_rooms(&mut self, conn: ConnId, out: &mut Outbox) {
        let (now, version) = (self.now.mono, self.list.version);
        let Some(session) = self.session_mut(conn) else {
            return;
        };
        let current = session.list_seen >= version;
        let recent = session
            .list_sent_at
            .is_some_and(|at| now.since(at) < LIST_REPEAT_MS);
        if current && recent {
            return;
        }
        session.list_sent_at = Some(now);
        self.send_room_list(conn, out);
    }

    pub(super) fn send_room_list(&mut self, conn: ConnId, out: &mut Outbox) {
        // With authentication on, a connection without an identity sees no rooms: names and
        // media ids are for those who may join.
        let withheld = !self.authenticated(conn);
        // The listing is filled in by `finish`, from the state at the end of the call.
        out.unicast(
            conn,
            Event::RoomList {
                listing: Arc::default(),
                withheld,
            },
        );
        self.list_recipients.push(conn);
        self.list.sent_this_call = true;
    }

    /// The listing at the current version, computed once per version.
    pub(super) fn current_listing(&mut self) -> Arc<Listing> {
        match &self.list.cache {
            Some(listing) if listing.version == self.list.version => listing.clone(),
            _ => {
                let listing = Arc::new(self.listing());
                self.list.cache = Some(listing.clone());
                listing
            }
        }
    }

    pub(super) fn list_changed(&mut self) {
        self.list.version = self.list.version.saturating_add(1);
        // Nobody to push to (a connection that opens later gets the list at once).
        if self.list.flush_scheduled || self.session_count == 0 {
            return;
        }
        let spacing = self.config.room_list_interval_ms.max(self.list.spacing_ms);
        let earliest = self.list.last_push.map_or(Millis(0), |t| t.after(spacing));
        self.timers
            .insert(earliest.max(self.now.mono), CoreTimer::RoomListFlush);
        self.list.flush_scheduled = true;
    }

    /// Pushes the list to every lobby connection whose copy is out of date: at most once per
    /// interval, however many changes happened, so mass disconnects cost O(N), not O(N²).
    /// The next push waits long enough for this one to stay within
    /// `lobby_push_bytes_per_sec` (bytes pushed to the whole lobby), whatever the churn.
    pub(super) fn flush_room_list(&mut self, out: &mut Outbox) {
        self.list.flush_scheduled = false;
        self.list.last_push = Some(self.now.mono);
        let version = self.list.version;
        let mut index = None;
        let mut recipients: u64 = 0;
        let seats = &self.seats;
        let auth = self.config.auth_enabled;
        for session in self.sessions.iter_mut().flatten() {
            let seat = seats.get(session.seat);
            let in_room = seat.is_some_and(|s| s.room.is_some());
            // A connection that may not see rooms has nothing new to be told.
            let withheld =
                auth && !seat.is_some_and(|s| matches!(s.identity, Identity::Verified { .. }));
            if in_room || withheld || session.list_seen >= version {
                continue;
            }
            let event = *index.get_or_insert_with(|| {
                out.event(Event::RoomList {
                    listing: Arc::default(),
                    withheld: false,
                })
            });
            out.send(session.conn, event);
            session.list_seen = version;
            recipients = recipients.saturating_add(1);
        }
        self.list.spacing_ms = 0;
        if recipients > 0 {
            self.list.sent_this_call = true;
            let bytes = recipients.saturating_mul(self.current_listing().bytes_max as u64);
            let rate = self.config.lobby_push_bytes_per_sec.max(1);
            self.list.spacing_ms = bytes.saturating_mul(1_000).checked_div(rate).unwrap_or(0);
        }
    }
}
