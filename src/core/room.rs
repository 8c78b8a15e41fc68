//! A room: its members, its host and its playback clock.

use std::collections::VecDeque;

use super::types::{ClockReading, ControlAction, ControlMessage, PlayState, Relay};
use crate::id::{RoomId, SeatId};
use crate::time::Millis;

/// The largest position the server accepts from clients, in seconds (24 h, as the original).
pub const POSITION_MAX_SECONDS: f64 = 86_400.0;

/// Whether a client-supplied position may enter the room clock.
pub fn valid_position(position: f64) -> bool {
    position.is_finite() && (0.0..=POSITION_MAX_SECONDS).contains(&position)
}

/// Playback as the room clock tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Playback {
    /// Position advances with time.
    Playing,
    /// Position frozen.
    Paused,
    /// The host stalled: frozen until the next play or state.
    Buffering,
}

/// Position at an instant, and how it moves from there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockState {
    /// Seconds at `at`.
    pub position: f64,
    /// Server instant of `position`.
    pub at: Millis,
    /// Whether the position advances after `at`.
    pub playback: Playback,
}

impl ClockState {
    /// Position at `t`. Before `at` a playing clock reads its starting position.
    pub fn read(&self, t: Millis) -> f64 {
        match self.playback {
            Playback::Playing => self.position + t.since(self.at) as f64 / 1_000.0,
            Playback::Paused | Playback::Buffering => self.position,
        }
    }
}

/// The room clock: the current state and, for a scheduled command, the state it switches to
/// at a future instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoomClock {
    /// In force now.
    pub current: ClockState,
    /// Takes effect at its `at` (always later than when it was set).
    pub next: Option<ClockState>,
}

impl RoomClock {
    /// A paused clock at `position`.
    pub fn paused(position: f64, at: Millis) -> RoomClock {
        RoomClock {
            current: ClockState {
                position,
                at,
                playback: Playback::Paused,
            },
            next: None,
        }
    }

    /// The state in force at `t`.
    pub fn state_at(&self, t: Millis) -> ClockState {
        match self.next {
            Some(next) if t >= next.at => next,
            _ => self.current,
        }
    }

    /// Position and play state at `t`.
    pub fn reading(&self, t: Millis) -> ClockReading {
        let state = self.state_at(t);
        ClockReading {
            position: state.read(t),
            playing: state.playback == Playback::Playing,
        }
    }

    /// Promotes a due scheduled state.
    pub fn settle(&mut self, now: Millis) {
        if let Some(next) = self.next.filter(|next| now >= next.at) {
            self.current = next;
            self.next = None;
        }
    }

    /// Applies a command effective at `at` (now or later). Position: the command's if valid,
    /// else wherever the clock is at that instant.
    pub fn apply_control(
        &mut self,
        now: Millis,
        at: Millis,
        action: &ControlAction,
        position: Option<f64>,
        play_state: Option<PlayState>,
    ) {
        self.settle(now);
        let before = self.state_at(at);
        let position = position.unwrap_or_else(|| before.read(at));
        let mut playback = match play_state {
            Some(PlayState::Playing) => Playback::Playing,
            Some(PlayState::Paused) => Playback::Paused,
            None if before.playback == Playback::Buffering => Playback::Paused,
            None => before.playback,
        };
        playback = match action {
            ControlAction::Play => Playback::Playing,
            ControlAction::Pause => Playback::Paused,
            ControlAction::Buffering => Playback::Buffering,
            ControlAction::Seek | ControlAction::Other => playback,
        };
        let state = ClockState {
            position,
            at,
            playback,
        };
        if at > now {
            self.next = Some(state);
        } else {
            self.current = state;
            self.next = None;
        }
    }

    /// Applies a host report received now. A scheduled change still pending is kept: the
    /// report describes the present, the schedule the future.
    pub fn apply_report(&mut self, now: Millis, position: Option<f64>, state: Option<PlayState>) {
        self.settle(now);
        let position = position.unwrap_or_else(|| self.current.read(now));
        let playback = match state {
            Some(PlayState::Playing) => Playback::Playing,
            Some(PlayState::Paused) => Playback::Paused,
            None => self.current.playback,
        };
        self.current = ClockState {
            position,
            at: now,
            playback,
        };
    }
}

/// What the `state_update` relay filter compares against: the last relayed state, exactly as
/// the original's `room.state` (not the extrapolated clock).
#[derive(Clone, Debug, PartialEq)]
pub struct RelayFilter {
    /// Last relayed position.
    pub position: f64,
    /// Last relayed play state (`playing`/`paused`).
    pub play_state: PlayState,
    /// When the last state was relayed (room creation at first).
    pub last_state_at: Millis,
    /// When the last player_event was relayed.
    pub last_command_at: Option<Millis>,
}

/// One member's place in a room: a seat, whether or not a connection holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The seat (its key in the core's seat table).
    pub key: usize,
    /// The seat's public id (`client_id`).
    pub seat: SeatId,
    /// Sent `ready`, or was not waited for at a deadline.
    pub ready: bool,
    /// Its connection is gone and its seat waits in grace: shown away, never waited for.
    pub away: bool,
    /// It said it is buffering: a pending play waits for it (up to the ready-wait).
    pub buffering: bool,
    /// The latency it last reported, in ms.
    pub latency_ms: Option<u32>,
}

/// A play the host asked for while members were still loading.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingPlay {
    /// Position to start from, if the host gave a valid one.
    pub position: Option<f64>,
    /// Distinguishes this pending play from later ones (timer epochs).
    pub epoch: u64,
    /// When the ready-wait expires.
    pub deadline: Millis,
}

/// A command held back for members that execute on receipt, until its instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    /// When to deliver (never earlier than the entry before it).
    pub due: Millis,
    /// What to deliver.
    pub message: ControlMessage,
    /// Who gets it (seats still members then).
    pub recipients: Vec<usize>,
    /// A play keeps its start instant; other commands are stamped when delivered.
    pub play: bool,
    /// The instant the command takes effect.
    pub at: Millis,
}

/// A room.
#[derive(Clone, Debug)]
pub struct Room {
    /// Public id.
    pub id: RoomId,
    /// Unique for the server's lifetime; tells timers for a reused slab slot apart.
    pub serial: u64,
    /// Display name.
    pub name: String,
    /// The host's seat (always a member).
    pub host: usize,
    /// Media id (32 hex digits).
    pub media_id: Option<String>,
    /// What is watched, as a dialect with free-form content ids named it (or the media id).
    pub content_id: Option<String>,
    /// Members in join order, host included.
    pub members: Vec<Member>,
    /// Playback clock.
    pub clock: RoomClock,
    /// state_update relay filter.
    pub filter: RelayFilter,
    /// A play waiting for ready members.
    pub pending_play: Option<PendingPlay>,
    /// Commands held for members that execute on receipt.
    pub held: VecDeque<Held>,
    /// The latest start instant of a play sent to members that execute on receipt: a later
    /// pause must not reach them before it, since they cannot cancel a scheduled play.
    pub stock_play_at: Millis,
    /// Commands whose instant is still ahead, replayed to joiners: (instant, message).
    pub in_flight: Vec<(Millis, ControlMessage, ControlAction)>,
    /// Absent from the room list, joined only by invite (or by its host's or owner's
    /// identity).
    pub private: bool,
    /// The verified subject of the member who created it, if any: it may always come back
    /// to its private room, whoever hosts it now.
    pub owner: Option<String>,
    /// The last chat messages, oldest first (at most `chat_history_max`), replayed to
    /// joiners and to members coming back from grace.
    pub chat: VecDeque<ChatEntry>,
    /// Chat messages ever sent in the room (the last one's `seq`).
    pub chat_seq: u64,
    /// Heap bytes of `chat`'s texts and names.
    pub chat_bytes: usize,
    /// When presence was last told to the members, and whether a change waits to be.
    pub presence_at: Option<Millis>,
    pub presence_pending: bool,
    /// When the host last changed the room for everyone (content, handover).
    pub refreshed_at: Option<Millis>,
    /// Since when the host's connection has been gone (`None` while it is connected).
    pub host_away_since: Option<Millis>,
    /// Joins that carried the whole member list in the current one-second window: (its
    /// start, how many).
    pub join_lists: (Millis, u32),
}

/// A chat message as kept by its room.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatEntry {
    /// Its number in the room (from 1).
    pub seq: u64,
    /// The sender's seat id.
    pub seat: SeatId,
    /// The sender's user id.
    pub user_id: String,
    /// The sender's name then.
    pub username: String,
    /// The text.
    pub text: String,
    /// When the server received it.
    pub server_ts: crate::time::UnixMillis,
}

/// Most bytes one kept chat message holds on the heap: its text (500 characters of up to 4
/// bytes), the sender's name and user id.
pub const CHAT_ENTRY_BYTES_MAX: usize =
    4 * crate::text::CHAT_CHARS_MAX + 2 * crate::text::NAME_BYTES_MAX;

/// Heap bytes of one relayed field set.
fn relay_bytes(relay: &Relay) -> usize {
    [&relay.action, &relay.position, &relay.play_state]
        .into_iter()
        .flatten()
        .map(|json| json.text().len())
        .sum()
}

/// Longest content id kept.
pub const CONTENT_ID_BYTES_MAX: usize = 512;

/// A content id a room may hold: 1 to `CONTENT_ID_BYTES_MAX` bytes, no control or format
/// characters (bidi overrides, zero-width: a file name shown to members cannot be disguised).
pub fn valid_content(content: &str) -> bool {
    !content.is_empty()
        && content.len() <= CONTENT_ID_BYTES_MAX
        && !content
            .chars()
            .any(|c| c.is_control() || crate::text::is_format(c))
}

/// The most heap a relayed field set holds: three type-checked values (see `owp::decode`).
pub const RELAY_BYTES_MAX: usize = 3 * 40;

impl Room {
    /// A room hosted by `host`, its only member, paused at `start` (seconds) at `now`.
    pub fn new(
        id: RoomId,
        serial: u64,
        name: String,
        host: Member,
        media_id: Option<String>,
        start: f64,
        now: Millis,
    ) -> Room {
        Room {
            id,
            serial,
            name,
            host: host.key,
            content_id: media_id.clone(),
            media_id,
            members: vec![host],
            clock: RoomClock::paused(start, now),
            filter: RelayFilter {
                position: start,
                play_state: PlayState::Paused,
                last_state_at: now,
                last_command_at: None,
            },
            pending_play: None,
            held: VecDeque::new(),
            stock_play_at: Millis(0),
            in_flight: Vec::new(),
            private: false,
            owner: None,
            chat: VecDeque::new(),
            chat_seq: 0,
            chat_bytes: 0,
            presence_at: None,
            presence_pending: false,
            refreshed_at: None,
            host_away_since: None,
            join_lists: (Millis(0), 0),
        }
    }

    /// Heap bytes the room holds (its share of every member's memory budget).
    // Sums of the capacities of allocations that exist cannot overflow a usize.
    #[allow(clippy::arithmetic_side_effects)]
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let held: usize = self
            .held
            .iter()
            .map(|h| h.recipients.capacity() * size_of::<usize>() + relay_bytes(&h.message.relay))
            .sum();
        let in_flight: usize = self
            .in_flight
            .iter()
            .map(|(_, message, _)| relay_bytes(&message.relay))
            .sum();
        self.name.capacity()
            + self.owner.as_ref().map_or(0, String::capacity)
            + self.media_id.as_ref().map_or(0, String::capacity)
            + self.content_id.as_ref().map_or(0, String::capacity)
            + self.members.capacity() * size_of::<Member>()
            + self.held.capacity() * size_of::<Held>()
            + held
            + self.in_flight.capacity() * size_of::<(Millis, ControlMessage, ControlAction)>()
            + in_flight
            + self.chat.capacity() * size_of::<ChatEntry>()
            + self
                .chat
                .iter()
                .map(|c| c.user_id.capacity() + c.username.capacity() + c.text.capacity())
                .sum::<usize>()
    }

    /// The bound `heap_bytes` stays within, for rooms of at most `members_max` members.
    // Small constants times a member limit that itself bounds an allocation.
    #[allow(clippy::arithmetic_side_effects)]
    pub fn heap_bytes_max(members_max: usize, chat_max: usize, chat_bytes_max: usize) -> usize {
        use std::mem::size_of;
        let held = super::playback::HELD_MAX;
        let in_flight = super::playback::IN_FLIGHT_MAX;
        4 * crate::text::NAME_BYTES_MAX
            + 64
            + 2 * CONTENT_ID_BYTES_MAX
            + 2 * members_max * size_of::<Member>()
            + 2 * held * size_of::<Held>()
            + held * (2 * members_max * size_of::<usize>() + RELAY_BYTES_MAX)
            + 2 * in_flight
                * (size_of::<(Millis, ControlMessage, ControlAction)>() + RELAY_BYTES_MAX)
            + 2 * chat_max * size_of::<ChatEntry>()
            + chat_bytes_max.min(chat_max * CHAT_ENTRY_BYTES_MAX)
            + CHAT_ENTRY_BYTES_MAX
    }

    /// Keeps `entry` as the newest chat message: older ones go until at most `keep`
    /// messages and `bytes_max` bytes remain (one message alone is always kept).
    pub fn keep_chat(&mut self, entry: ChatEntry, keep: usize, bytes_max: usize) {
        let size = |c: &ChatEntry| {
            c.text
                .capacity()
                .saturating_add(c.username.capacity())
                .saturating_add(c.user_id.capacity())
        };
        if keep == 0 {
            return;
        }
        self.chat_bytes = self.chat_bytes.saturating_add(size(&entry));
        self.chat.push_back(entry);
        while self.chat.len() > keep || (self.chat_bytes > bytes_max && self.chat.len() > 1) {
            if let Some(old) = self.chat.pop_front() {
                self.chat_bytes = self.chat_bytes.saturating_sub(size(&old));
            }
        }
    }

    /// Releases capacity left by members and commands that are gone.
    pub fn compact(&mut self) {
        self.members.shrink_to_fit();
        self.held.shrink_to_fit();
        self.in_flight.shrink_to_fit();
        self.chat.shrink_to_fit();
    }

    /// The member entry of seat `key`.
    pub fn member(&self, key: usize) -> Option<&Member> {
        self.members.iter().find(|m| m.key == key)
    }

    /// Whether seat `key` is a member.
    pub fn has(&self, key: usize) -> bool {
        self.member(key).is_some()
    }

    /// The host's seat id.
    pub fn host_seat(&self) -> SeatId {
        self.member(self.host)
            .map_or(SeatId(uuid::Uuid::nil()), |m| m.seat)
    }

    /// Whether every member counts as ready: present members are not buffering and, in a
    /// room with media, have loaded it (away members are never waited for).
    pub fn all_ready(&self) -> bool {
        let media = self.media_id.is_some();
        self.members
            .iter()
            .all(|m| m.away || (!m.buffering && (m.ready || !media)))
    }

    /// The relay fields of a play the server makes itself.
    pub fn play_relay(position: f64) -> Relay {
        use super::types::Json;
        Relay {
            host_ts: None,
            action: Some(Json::string("play")),
            position: Some(Json::number(position)),
            play_state: Some(Json::string("playing")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A playing clock advances; paused and buffering clocks hold.
    #[test]
    fn clock_reads() {
        let mut clock = RoomClock::paused(10.0, Millis(0));
        assert_eq!(clock.reading(Millis(5_000)).position, 10.0);
        clock.apply_control(
            Millis(1_000),
            Millis(1_000),
            &ControlAction::Play,
            Some(20.0),
            None,
        );
        assert_eq!(clock.reading(Millis(3_500)).position, 22.5);
        clock.apply_control(
            Millis(4_000),
            Millis(4_000),
            &ControlAction::Buffering,
            None,
            None,
        );
        assert_eq!(clock.reading(Millis(9_000)).position, 23.0);
        assert!(!clock.reading(Millis(9_000)).playing);
    }

    /// A scheduled play leaves the clock paused until its instant, then plays from there;
    /// a report in between keeps the schedule.
    #[test]
    fn scheduled_change_takes_effect_at_its_instant() {
        let mut clock = RoomClock::paused(5.0, Millis(0));
        clock.apply_control(
            Millis(100),
            Millis(1_100),
            &ControlAction::Play,
            Some(5.0),
            None,
        );
        assert_eq!(
            clock.reading(Millis(1_000)),
            ClockReading {
                position: 5.0,
                playing: false
            }
        );
        clock.apply_report(Millis(600), Some(5.0), Some(PlayState::Paused));
        assert_eq!(
            clock.reading(Millis(2_100)),
            ClockReading {
                position: 6.0,
                playing: true
            }
        );
        clock.settle(Millis(2_100));
        assert!(clock.next.is_none());
    }

    /// Positions outside 0..=86 400 s or non-finite never enter the clock.
    #[test]
    fn position_validity() {
        assert!(valid_position(0.0) && valid_position(86_400.0));
        assert!(!valid_position(-0.1) && !valid_position(86_400.1) && !valid_position(f64::NAN));
    }
}
