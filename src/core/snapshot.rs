//! The core's rooms as plain data, to outlive a restart: what a room is (id, name, host,
//! members, content, privacy), where its playback stands (position at the instant it was
//! saved, playing or not), its chat history, and each member's seat (id, names, identity,
//! resume digest). Commands in flight, held commands and pending plays are not kept: they
//! are about the next second, and the restart takes longer.
//!
//! On restore, every seat waits in grace for its client (shown away, as after a drop), and a
//! room that was playing is read forward by the time the server was down.

use serde::{Deserialize, Serialize};

use super::*;
use room::{ChatEntry, ClockState, Playback};

/// The snapshot format's version; a file of a later version is not read.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Every room, and the seats in them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `SNAPSHOT_VERSION` when written.
    pub version: u32,
    /// Wall clock when written (ms since the Unix epoch).
    pub saved_at: u64,
    /// The core's serial counter (room serials stay unique across restarts, so an invite
    /// for a room that closed before the restart stays refused).
    pub serial: u64,
    /// The rooms.
    pub rooms: Vec<RoomSnap>,
}

/// A room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomSnap {
    /// Wall clock when this room was read (ms); 0: the snapshot's `saved_at`.
    #[serde(default)]
    pub saved_at: u64,
    pub id: String,
    pub serial: u64,
    pub name: String,
    pub media_id: Option<String>,
    pub content_id: Option<String>,
    pub private: bool,
    /// The creator's verified subject.
    #[serde(default)]
    pub owner: Option<String>,
    /// Position when saved, seconds.
    pub position: f64,
    /// Playing when saved.
    pub playing: bool,
    /// Members in join order; exactly one is the host.
    pub members: Vec<SeatSnap>,
    pub chat: Vec<ChatSnap>,
    pub chat_seq: u64,
}

/// A member's seat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeatSnap {
    pub id: String,
    pub name: String,
    pub user_id: String,
    /// A verified identity: (subject, name).
    pub verified: Option<(String, String)>,
    pub follows_schedule: bool,
    pub rejoins_by_naming: bool,
    /// Digest of its resume token (never the token).
    pub resume: Option<String>,
    pub chat_seen: u64,
    pub ready: bool,
    pub host: bool,
}

/// A kept chat message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatSnap {
    pub seq: u64,
    pub seat: String,
    pub user_id: String,
    pub username: String,
    pub text: String,
    pub server_ts: u64,
}

impl Core {
    /// Every room as plain data, read at `now`.
    pub fn snapshot(&self, now: Now) -> Snapshot {
        let rooms = self
            .snapshot_rooms()
            .into_iter()
            .filter_map(|id| self.snapshot_room(id, now))
            .collect();
        Snapshot {
            version: SNAPSHOT_VERSION,
            saved_at: now.wall.0,
            serial: self.serial,
            rooms,
        }
    }

    /// The rooms a snapshot holds, oldest first (a snapshot taken in slices reads each of
    /// them later with `snapshot_room`; one closed meanwhile is skipped).
    pub fn snapshot_rooms(&self) -> Vec<RoomId> {
        let mut rooms: Vec<(u64, RoomId)> =
            self.rooms.iter().map(|(_, r)| (r.serial, r.id)).collect();
        rooms.sort_unstable();
        rooms.into_iter().map(|(_, id)| id).collect()
    }

    /// The serial counter, for a snapshot's header.
    pub fn serial_now(&self) -> u64 {
        self.serial
    }

    /// Changes since the core was made (commands, connections, timers): a snapshot is
    /// worth writing only when this moved.
    pub fn mutations(&self) -> u64 {
        self.mutations
    }

    /// One room as plain data, read at `now` (its `saved_at` is `now`, so a room read in a
    /// later slice than another is read forward from its own instant).
    pub fn snapshot_room(&self, id: RoomId, now: Now) -> Option<RoomSnap> {
        let room = self.rooms.get(*self.room_index.get(&id)?)?;
        {
            {
                let clock = room.clock.reading(now.mono);
                Some(RoomSnap {
                    saved_at: now.wall.0,
                    id: room.id.to_string(),
                    serial: room.serial,
                    name: room.name.clone(),
                    media_id: room.media_id.clone(),
                    content_id: room.content_id.clone(),
                    private: room.private,
                    owner: room.owner.clone(),
                    position: clock.position,
                    playing: clock.playing,
                    members: room
                        .members
                        .iter()
                        .filter_map(|m| {
                            let seat = self.seats.get(m.key)?;
                            Some(SeatSnap {
                                id: seat.id.to_string(),
                                name: seat.name.clone(),
                                user_id: seat.user_id.clone(),
                                verified: match &seat.identity {
                                    Identity::Verified { subject, name } => {
                                        Some((subject.clone(), name.clone()))
                                    }
                                    Identity::Anonymous => None,
                                },
                                follows_schedule: seat.caps.follows_schedule,
                                rejoins_by_naming: seat.caps.rejoins_by_naming,
                                resume: seat.resume.clone(),
                                chat_seen: if seat.conn.is_some() {
                                    room.chat_seq
                                } else {
                                    seat.chat_seen
                                },
                                ready: m.ready,
                                host: m.key == room.host,
                            })
                        })
                        .collect(),
                    chat: room
                        .chat
                        .iter()
                        .map(|c| ChatSnap {
                            seq: c.seq,
                            seat: c.seat.to_string(),
                            user_id: c.user_id.clone(),
                            username: c.username.clone(),
                            text: c.text.clone(),
                            server_ts: c.server_ts.0,
                        })
                        .collect(),
                    chat_seq: room.chat_seq,
                })
            }
        }
    }

    /// Brings the rooms of `snapshot` back into an empty core at `now`. Every seat waits in
    /// grace for its client; a room that was playing is read forward by the time since it
    /// was saved. Rooms past `rooms_max`, and rooms that make no sense (a bad id, not exactly
    /// one host, a duplicate id or seat), are skipped. Returns (rooms, seats) restored.
    pub fn restore(&mut self, snapshot: &Snapshot, now: Now) -> (usize, usize) {
        self.begin(now);
        self.serial = self.serial.max(snapshot.serial);
        let mut seats_restored = 0usize;
        // Seat ids already in use (restore runs on a fresh core: none, but stay sure).
        let mut taken: std::collections::BTreeSet<SeatId> =
            self.seats.iter().map(|(_, s)| s.id).collect();
        for snap in &snapshot.rooms {
            if self.rooms.len() >= self.config.rooms_max {
                break;
            }
            let saved_at = if snap.saved_at > 0 {
                snap.saved_at
            } else {
                snapshot.saved_at
            };
            let elapsed = now.wall.0.saturating_sub(saved_at) as f64 / 1_000.0;
            seats_restored =
                seats_restored.saturating_add(self.restore_room(snap, elapsed, &mut taken));
        }
        self.list_changed();
        let mut out = Outbox::default();
        self.finish(&mut out);
        (self.rooms.len(), seats_restored)
    }

    fn restore_room(
        &mut self,
        snap: &RoomSnap,
        elapsed: f64,
        taken: &mut std::collections::BTreeSet<SeatId>,
    ) -> usize {
        let Some(id) = RoomId::parse(&snap.id) else {
            return 0;
        };
        let hosts = snap.members.iter().filter(|m| m.host).count();
        let mut ids: Vec<&str> = snap.members.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let seat_ids: Option<Vec<SeatId>> = snap
            .members
            .iter()
            .map(|m| uuid::Uuid::try_parse(&m.id).ok().map(SeatId))
            .collect();
        let Some(seat_ids) = seat_ids else {
            return 0;
        };
        if self.room_index.contains_key(&id)
            || hosts != 1
            || ids.len() != snap.members.len()
            || snap.members.len() > self.config.room_members_max
            || seat_ids.iter().any(|s| taken.contains(s))
        {
            return 0;
        }
        taken.extend(seat_ids.iter().copied());
        let now = self.now.mono;
        let position = Some(snap.position)
            .filter(|p| room::valid_position(*p))
            .unwrap_or(0.0);
        let mut keys = Vec::new();
        for (member, seat_id) in snap.members.iter().zip(&seat_ids) {
            let serial = self.next_serial();
            let name = text::display_name(&member.name).unwrap_or_else(|| "Anonymous".into());
            let key = self.seats.insert(Seat {
                id: *seat_id,
                conn: None,
                name,
                user_id: text::sanitize_line(&member.user_id, text::NAME_CHARS_MAX),
                identity: match &member.verified {
                    Some((subject, name)) => Identity::Verified {
                        subject: text::sanitize_line(subject, text::NAME_CHARS_MAX),
                        name: text::display_name(name).unwrap_or_default(),
                    },
                    None => Identity::Anonymous,
                },
                caps: Capabilities {
                    follows_schedule: member.follows_schedule,
                    rejoins_by_naming: member.rejoins_by_naming,
                },
                room: None,
                grace: Some(serial),
                resume: None,
                chat_seen: member.chat_seen,
            });
            if let Some(digest) = member.resume.clone().filter(|d| d.len() <= 64) {
                self.index_resume(key, digest);
            }
            self.timers.insert(
                now.after(self.config.resume_grace_ms),
                CoreTimer::SeatGrace { seat: key, serial },
            );
            keys.push((key, *seat_id, member.ready, member.host, serial));
        }
        let Some(&(host_key, host_id, _, _, host_serial)) = keys.iter().find(|k| k.3) else {
            return 0;
        };
        let name = text::room_name(&snap.name).unwrap_or_else(|| "Room".to_string());
        let media_id = snap
            .media_id
            .clone()
            .filter(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()));
        let host = Member {
            key: host_key,
            seat: host_id,
            ready: true,
            away: true,
            buffering: false,
            latency_ms: None,
        };
        let mut room = Room::new(id, snap.serial, name, host, media_id, position, now);
        room.content_id = snap
            .content_id
            .clone()
            .filter(|c| c.len() <= room::CONTENT_ID_BYTES_MAX);
        room.private = snap.private;
        room.owner = snap
            .owner
            .as_deref()
            .map(|o| text::sanitize_line(o, text::NAME_CHARS_MAX));
        if snap.playing {
            let position = (position + elapsed).min(room::POSITION_MAX_SECONDS);
            room.clock.current = ClockState {
                position,
                at: now,
                playback: Playback::Playing,
            };
        }
        room.members = keys
            .iter()
            .map(|&(key, seat, ready, _, _)| Member {
                key,
                seat,
                ready,
                away: true,
                buffering: false,
                latency_ms: None,
            })
            .collect();
        let keep = self.config.chat_history_max;
        let skip = snap.chat.len().saturating_sub(keep);
        let entries: Vec<ChatEntry> = snap
            .chat
            .iter()
            .skip(skip)
            .filter_map(|c| {
                Some(ChatEntry {
                    seq: c.seq,
                    seat: SeatId(uuid::Uuid::try_parse(&c.seat).ok()?),
                    user_id: text::sanitize_line(&c.user_id, text::NAME_CHARS_MAX),
                    username: text::display_name(&c.username).unwrap_or_default(),
                    text: c.text.chars().take(text::CHAT_CHARS_MAX).collect(),
                    server_ts: crate::time::UnixMillis(c.server_ts),
                })
            })
            .collect();
        for entry in entries {
            room.keep_chat(entry, keep, self.config.chat_history_bytes_max);
        }
        room.chat_seq = snap.chat_seq;
        // Every seat comes back away, the host's too.
        room.host_away_since = Some(now);
        let key = self.rooms.insert(room);
        self.room_index.insert(id, key);
        for &(seat, ..) in &keys {
            if let Some(holder) = self.seats.get_mut(seat) {
                holder.room = Some(key);
            }
        }
        let wait = self.config.host_grace_ms.min(self.config.resume_grace_ms);
        self.timers.insert(
            now.after(wait),
            CoreTimer::HostGrace {
                room: key,
                serial: host_serial,
            },
        );
        keys.len()
    }
}
