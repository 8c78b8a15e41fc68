//! The core's vocabulary: commands in, events out. Nothing here knows a wire format; a
//! dialect codec turns its messages into `Command`s and renders `Event`s in its own shape.

use serde_json::value::RawValue;

use crate::id::{ConnId, RoomId, SeatId};
use crate::time::{Millis, UnixMillis};

/// A JSON value carried through unchanged (relayed fields, echoed ping payloads).
#[derive(Debug)]
pub struct Json(pub Box<RawValue>);

impl Json {
    /// A JSON string value.
    pub fn string(text: &str) -> Json {
        Json(to_raw(&text))
    }

    /// A JSON number value (non-finite numbers become 0, which JSON cannot carry).
    pub fn number(value: f64) -> Json {
        Json(to_raw(&if value.is_finite() { value } else { 0.0 }))
    }

    /// An empty JSON object.
    pub fn empty_object() -> Json {
        Json(to_raw(&serde_json::Map::new()))
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }
}

fn to_raw<T: serde::Serialize>(value: &T) -> Box<RawValue> {
    // Serializing a string, a finite f64 or an empty map cannot fail.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

impl Clone for Json {
    fn clone(&self) -> Json {
        Json(self.0.clone())
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.0.get() == other.0.get()
    }
}

/// What a connection declares about itself when it opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The client executes commands at their `target_server_ts` (true), or on receipt (false:
    /// the stock OpenWatchParty client, which only schedules plays).
    pub follows_schedule: bool,
    /// A client in no room that names a room in a message wants to be in it (the stock
    /// OpenWatchParty client after a reconnect: it keeps its room id and sends no join).
    pub rejoins_by_naming: bool,
}

/// A playback command's verb.
#[derive(Clone, Debug, PartialEq)]
pub enum ControlAction {
    /// Start playing.
    Play,
    /// Pause.
    Pause,
    /// Jump to a position.
    Seek,
    /// The host stalled: freeze until the next play or state.
    Buffering,
    /// Any other verb: relayed, and applied to the clock only through its fields.
    Other,
}

impl ControlAction {
    /// Parses the wire verb.
    pub fn parse(text: &str) -> ControlAction {
        match text {
            "play" => ControlAction::Play,
            "pause" => ControlAction::Pause,
            "seek" => ControlAction::Seek,
            "buffering" => ControlAction::Buffering,
            _ => ControlAction::Other,
        }
    }
}

/// `playing` or `paused`, the only play states the room clock accepts from clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayState {
    /// Playing.
    Playing,
    /// Paused.
    Paused,
}

impl PlayState {
    /// Parses the wire value; anything else is not a play state.
    pub fn parse(text: &str) -> Option<PlayState> {
        match text {
            "playing" => Some(PlayState::Playing),
            "paused" => Some(PlayState::Paused),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayState::Playing => "playing",
            PlayState::Paused => "paused",
        }
    }
}

/// The relayable fields of a playback message, exactly as the host sent them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Relay {
    /// `action`, as sent.
    pub action: Option<Json>,
    /// `position`, as sent.
    pub position: Option<Json>,
    /// `play_state`, as sent.
    pub play_state: Option<Json>,
    /// The host's own clock when it sent this (v1 `hostTsMs`): relayed to v1 members, never
    /// used for server arithmetic, not part of the OpenWatchParty shape.
    pub host_ts: Option<u64>,
}

/// A host's `player_event`.
#[derive(Clone, Debug, PartialEq)]
pub struct Control {
    /// The verb.
    pub action: ControlAction,
    /// `position` if it was a valid position (finite, 0..=86 400 s).
    pub position: Option<f64>,
    /// `play_state` if it was `playing` or `paused`.
    pub play_state: Option<PlayState>,
    /// The fields to relay.
    pub relay: Relay,
}

/// A host's `state_update`.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Whether the message had a payload object (one without is never filtered).
    pub has_payload: bool,
    /// `position` as a number, if it was one (for the relay filter).
    pub position_number: Option<f64>,
    /// `position` if valid.
    pub position: Option<f64>,
    /// `play_state` as a string, if it was one (for the relay filter).
    pub play_state_text: Option<String>,
    /// `reported_latency` (ms), if it was a number in 0..=60 000.
    pub latency_ms: Option<u32>,
    /// The fields to relay.
    pub relay: Relay,
}

/// Who a connection is, as the core admits it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Identity {
    /// Nobody vouched for it: its name is whatever it declares.
    #[default]
    Anonymous,
    /// Vouched for by the edge's auth step (a verified token): who, and under which name.
    Verified {
        /// The stable subject (the token's `sub`).
        subject: String,
        /// The display name the token gives.
        name: String,
    },
}

/// A credential as a decoder found it, and what the edge's auth step made of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A token as presented, not yet checked (the core never admits one).
    Token(String),
    /// Checked at the edge: the identity it proves.
    Accepted(Identity),
    /// Checked at the edge: refused.
    Refused,
}

/// An invite as a decoder found it, and what the edge's auth step made of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pass {
    /// A token as presented, not yet checked (the core never admits one).
    Token(String),
    /// Checked at the edge: signed by this server for `room` in its incarnation `serial`,
    /// and not expired.
    Valid {
        /// The room it admits to.
        room: RoomId,
        /// The room's serial when the invite was made (a room since closed and made again
        /// under the same id is another room).
        serial: u64,
    },
    /// Checked at the edge: refused, and why (`invite_invalid`, `invite_expired`).
    Refused(ErrorCode),
}

/// A new connection's resume secret: the token it is told, and the digest the core keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeKey {
    /// Sent once, in the connection's hello.
    pub token: String,
    /// Kept (`auth::resume_digest` of the token).
    pub digest: String,
}

/// A decoded client request, dialect-free.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Identify this connection (`auth` with auth disabled).
    Identify {
        /// Display name, unsanitized.
        user_name: Option<String>,
        /// Caller-chosen user id.
        user_id: Option<String>,
        /// Declared scheduling capability.
        follows_schedule: Option<bool>,
        /// A credential, if one was presented (checked by the edge before the core sees it).
        credential: Option<Credential>,
    },
    /// Send me the room list.
    ListRooms,
    /// Create a room and host it.
    CreateRoom {
        /// Requested room name, unsanitized.
        name: Option<String>,
        /// Display name, unsanitized.
        user_name: Option<String>,
        /// Initial position (already validated; 0 otherwise).
        start_position: f64,
        /// 32 hex digits, if valid.
        media_id: Option<String>,
        /// What is watched, free-form (`media_url`: a URL, or a local file's name and size),
        /// at most `CONTENT_ID_BYTES_MAX` bytes; the media id stands for it when absent.
        content: Option<String>,
        /// Absent from the room list; joined only by invite.
        private: bool,
        /// A user token presented with the request (`auth_token`).
        credential: Option<Credential>,
    },
    /// Join a room by id.
    JoinRoom {
        /// The room as named by the client.
        room: String,
        /// Display name, unsanitized.
        user_name: Option<String>,
        /// A user token presented with the request (`auth_token`).
        credential: Option<Credential>,
        /// An invite presented with the request (`invite_token`).
        invite: Option<Pass>,
    },
    /// The host asks every member to jump to `position` (`force_resync`).
    ForceResync {
        /// The room named, if any.
        room: Option<String>,
        /// Where, in seconds (valid).
        position: f64,
    },
    /// Take back a seat in grace (`resume {token}`).
    Resume {
        /// The token as presented; the edge replaces it with its digest before the core
        /// sees it (the core compares digests only).
        token: String,
    },
    /// Make an invite to the room the sender hosts.
    CreateInvite {
        /// The room named, if any (else the sender's room).
        room: Option<String>,
        /// Requested lifetime in seconds (default and cap are settings).
        expires_in: Option<u64>,
    },
    /// Leave the current room.
    LeaveRoom,
    /// Enter a room by id, creating it (as its host) if it does not exist.
    Enter {
        /// The room.
        room: RoomId,
        /// The name it was asked for by (its display name if it is created).
        alias: String,
        /// Caller-chosen user id, unsanitized.
        user_id: Option<String>,
        /// Display name, unsanitized.
        user_name: Option<String>,
        /// A user token presented with the request.
        credential: Option<Credential>,
        /// An invite presented with the request.
        invite: Option<Pass>,
    },
    /// I have loaded the media.
    Ready {
        /// The room named, if any.
        room: Option<String>,
    },
    /// A playback command (`player_event`).
    Control {
        /// The room named, if any.
        room: Option<String>,
        /// The command.
        control: Control,
    },
    /// A playback report (`state_update`).
    Report {
        /// The room named, if any.
        room: Option<String>,
        /// The report.
        report: Report,
    },
    /// Clock-sync probe.
    Ping {
        /// The room named, if any.
        room: Option<String>,
        /// The payload to echo.
        echo: Option<Json>,
    },
    /// Chat text.
    Chat {
        /// The room named, if any.
        room: Option<String>,
        /// The text, untrimmed.
        text: String,
    },
    /// A client debug line.
    ClientLog {
        /// Category, unsanitized.
        category: Option<String>,
        /// Text, unsanitized.
        message: Option<String>,
    },
    /// The room's content (the host only).
    SetContent {
        /// The room named.
        room: String,
        /// What is watched: an id or a URL, as the client gives it.
        content_id: String,
    },
    /// The host hands its role to another member (`transfer_host`).
    TransferHost {
        /// The room named, if any.
        room: Option<String>,
        /// The member, by seat id (`client_id`).
        to: String,
    },
    /// A member takes the host role while the host's seat is away (`claim_host`).
    ClaimHost {
        /// The room named, if any.
        room: Option<String>,
    },
    /// A WebRTC signalling message for one other member, relayed as it is.
    Signal {
        /// The room named.
        room: String,
        /// The member it is for, by user id.
        to_user: String,
        /// Which signal.
        kind: SignalKind,
        /// Its body (an SDP or a candidate), opaque.
        body: Json,
    },
}

impl Command {
    /// Every command's name, in `index` order (for metrics).
    pub const NAMES: [&'static str; 20] = [
        "identify",
        "list_rooms",
        "create_room",
        "join_room",
        "leave_room",
        "create_invite",
        "enter",
        "ready",
        "control",
        "report",
        "ping",
        "chat",
        "client_log",
        "set_content",
        "signal",
        "resume",
        "force_resync",
        "transfer_host",
        "claim_host",
        "invalid",
    ];

    /// The place in `NAMES` of messages that did not decode.
    pub const INVALID: usize = 19;

    /// Its place in `NAMES`.
    pub fn index(&self) -> usize {
        match self {
            Command::Identify { .. } => 0,
            Command::ListRooms => 1,
            Command::CreateRoom { .. } => 2,
            Command::JoinRoom { .. } => 3,
            Command::LeaveRoom => 4,
            Command::CreateInvite { .. } => 5,
            Command::Enter { .. } => 6,
            Command::Ready { .. } => 7,
            Command::Control { .. } => 8,
            Command::Report { .. } => 9,
            Command::Ping { .. } => 10,
            Command::Chat { .. } => 11,
            Command::ClientLog { .. } => 12,
            Command::SetContent { .. } => 13,
            Command::Signal { .. } => 14,
            Command::Resume { .. } => 15,
            Command::ForceResync { .. } => 16,
            Command::TransferHost { .. } => 17,
            Command::ClaimHost { .. } => 18,
        }
    }
}

/// Which WebRTC signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalKind {
    /// An offer (SDP).
    Offer,
    /// An answer (SDP).
    Answer,
    /// An ICE candidate.
    Ice,
}

/// Why a message could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, not an object, `type` missing or not a string, or a required field missing.
    Invalid,
    /// A well-formed message of a type this dialect does not know.
    UnknownType,
    /// A binary WebSocket message.
    Binary,
}

/// Why a command was refused. Each has a stable code; a dialect words it (OpenWatchParty with
/// the original's message strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Over the per-connection message budget.
    RateLimited,
    /// Unparseable message.
    InvalidMessage,
    /// Unknown `type`.
    UnknownType,
    /// Binary frames are not part of the protocol.
    BinaryUnsupported,
    /// Join refused: no such room.
    RoomNotFound,
    /// Join refused: the room has its maximum of members.
    RoomFull,
    /// Create refused: the server has its maximum of rooms.
    RoomsLimit,
    /// A playback command from a member who is not the host.
    NotHost,
    /// A command names a room the sender is not a member of.
    NotInRoom,
    /// A credential was refused.
    AuthFailed,
    /// A message for a member who is not in the room.
    PeerNotFound,
    /// A command that needs a room named none (chat, ready, playback).
    RoomRequired,
    /// Chat text empty after trimming.
    ChatEmpty,
    /// Chat text over 500 characters.
    ChatTooLong,
    /// Authentication is on and the request needs an identity.
    AuthRequired,
    /// A private room, joined without an invite.
    InviteRequired,
    /// An invite that is not one of ours (forged, malformed, for another server).
    InviteInvalid,
    /// An invite past its expiry.
    InviteExpired,
    /// An invite for another room.
    InviteRoomMismatch,
    /// A resume token that names no seat waiting in grace.
    ResumeFailed,
    /// A claim of the host role while the host is connected.
    HostPresent,
}

impl ErrorCode {
    /// The stable machine-readable code (`payload.code`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BinaryUnsupported => "unsupported_data",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::RoomsLimit => "rooms_limit",
            ErrorCode::NotHost => "not_host",
            ErrorCode::RoomRequired => "room_required",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::PeerNotFound => "peer_not_found",
            ErrorCode::ChatEmpty => "chat_empty",
            ErrorCode::ChatTooLong => "chat_too_long",
            ErrorCode::AuthRequired => "auth_required",
            ErrorCode::InviteRequired => "invite_required",
            ErrorCode::InviteInvalid => "invite_invalid",
            ErrorCode::InviteExpired => "invite_expired",
            ErrorCode::InviteRoomMismatch => "invite_room_mismatch",
            ErrorCode::ResumeFailed => "resume_failed",
            ErrorCode::HostPresent => "host_present",
        }
    }

    /// Every code, for documentation tests.
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::RateLimited,
        ErrorCode::InvalidMessage,
        ErrorCode::UnknownType,
        ErrorCode::BinaryUnsupported,
        ErrorCode::RoomNotFound,
        ErrorCode::RoomFull,
        ErrorCode::RoomsLimit,
        ErrorCode::NotHost,
        ErrorCode::NotInRoom,
        ErrorCode::AuthFailed,
        ErrorCode::PeerNotFound,
        ErrorCode::RoomRequired,
        ErrorCode::ChatEmpty,
        ErrorCode::ChatTooLong,
        ErrorCode::AuthRequired,
        ErrorCode::InviteRequired,
        ErrorCode::InviteInvalid,
        ErrorCode::InviteExpired,
        ErrorCode::InviteRoomMismatch,
        ErrorCode::ResumeFailed,
        ErrorCode::HostPresent,
    ];
}

/// Why a room was closed, as members are told.
pub mod reason {
    /// The host left or disconnected.
    pub const HOST_LEFT: &str = "Host left the room";
    /// The host created another room.
    pub const HOST_NEW_ROOM: &str = "Host started a new room";
    /// The server is stopping.
    pub const SHUTDOWN: &str = "Server shutting down";
    /// A message named a room that does not exist.
    pub const NOT_FOUND: &str = "Room not found";
    /// A message named a room the sender is not in.
    pub const NOT_MEMBER: &str = "You are not in this room";
    /// A join was refused because the room is full.
    pub const FULL: &str = "Room is full";
}

/// A playback command as members receive it.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlMessage {
    /// The fields, as the host sent them or as the server made them.
    pub relay: Relay,
    /// The server instant at which members should execute it.
    pub target: UnixMillis,
}

/// What the room clock says for `room_state`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockReading {
    /// Position in seconds at `server_ts`.
    pub position: f64,
    /// Whether the room is playing (buffering reads as paused).
    pub playing: bool,
}

/// A member as others see it: its seat id, user id and display name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// Seat id (`client_id`).
    pub seat: SeatId,
    /// User id (self-declared, or a verified subject).
    pub user_id: String,
    /// Display name.
    pub name: String,
}

/// A member as its room shows it (`participants`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presence {
    /// Seat id (`client_id`).
    pub seat: SeatId,
    /// Display name.
    pub name: String,
    /// The host.
    pub host: bool,
    /// Its connection is gone; its seat waits in grace.
    pub away: bool,
    /// It said it is buffering.
    pub buffering: bool,
    /// The latency it last reported, in ms.
    pub latency_ms: Option<u32>,
}

/// One entry of the room list.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomSummary {
    /// Room id.
    pub id: RoomId,
    /// Room name.
    pub name: String,
    /// Members, host included.
    pub count: usize,
    /// Media id, 32 hex digits.
    pub media_id: Option<String>,
}

impl RoomSummary {
    /// An upper bound of this entry's size in any dialect's JSON: the fixed fields (a UUID,
    /// a count, a 32-digit media id, keys and punctuation) in 128 bytes, plus the name with
    /// every byte escaped (names carry no control characters, so an escape is 2 bytes).
    pub fn bytes_max(&self) -> usize {
        self.name.len().saturating_mul(2).saturating_add(128)
    }
}

/// The room list as clients see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    /// The room-list version this listing is of.
    pub version: u64,
    /// The entries shown, in order.
    pub rooms: Vec<RoomSummary>,
    /// Rooms that exist (listed or not).
    pub total: usize,
    /// An upper bound of the rendered message's size.
    pub bytes_max: usize,
}

/// Something the core wants a connection to be told. Sent to recipients listed in the
/// outbox; a dialect renders each event once and shares the bytes among its recipients.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// First message on a connection: its seat id, and the secret that resumes the seat
    /// (`None` when a seat is resumed: the token of this connection's first hello stays
    /// the one to use).
    Hello {
        seat: SeatId,
        resume_token: Option<String>,
    },
    /// The room list (filled in at the end of the core call that sent it, so it is the
    /// state after the call; shared by every recipient).
    RoomList {
        listing: std::sync::Arc<Listing>,
        /// The recipient may not see rooms (authentication is on and it has none): the
        /// listing stays empty.
        withheld: bool,
    },
    /// You are in this room now (created, joined or re-joined).
    RoomState {
        /// The room.
        room: RoomId,
        /// The recipient.
        seat: SeatId,
        /// Room name.
        name: String,
        /// The host's seat.
        host: SeatId,
        /// The clock at `server_ts`.
        clock: ClockReading,
        /// Members, host included.
        participants: usize,
        /// Media id.
        media_id: Option<String>,
        /// The room's content id, when it has one that is not its media id.
        content: Option<String>,
        /// The instant the clock was read.
        server_ts: UnixMillis,
        /// The recipient joined (true) or created (false) the room.
        joiner: bool,
        /// A refresh after the room changed (its content), not an entry.
        refresh: bool,
        /// The recipient, as the others see it.
        you: Peer,
        /// The other members, in join order.
        peers: Vec<Peer>,
        /// Every member, in join order.
        presence: Vec<Presence>,
    },
    /// Member count changed because someone joined.
    Participants {
        room: RoomId,
        count: usize,
        /// Who joined.
        joined: Peer,
        /// Every member, in join order; `None` for a join soon after the last list (the
        /// list follows as a `Presence` when the room's presence interval is over).
        presence: Option<Vec<Presence>>,
    },
    /// Someone joined (`client_joined {name}`, to the others).
    ClientJoined {
        room: RoomId,
        seat: SeatId,
        name: String,
    },
    /// A member's presence changed (away, back, buffering): every member, in join order.
    Presence {
        room: RoomId,
        count: usize,
        presence: Vec<Presence>,
    },
    /// The host asks every member to jump to a position at an instant.
    ForceResync {
        room: RoomId,
        host: SeatId,
        position: f64,
        target: UnixMillis,
    },
    /// A playback command from the host (or the server, for a scheduled play).
    Control {
        room: RoomId,
        host: SeatId,
        /// The host's user id.
        host_user: String,
        message: ControlMessage,
    },
    /// A playback report from the host.
    State {
        room: RoomId,
        host: SeatId,
        /// The host's user id.
        host_user: String,
        relay: Relay,
        server_ts: UnixMillis,
    },
    /// A member left; `count` remain.
    ClientLeft {
        room: RoomId,
        seat: SeatId,
        count: usize,
        /// Its user id.
        user_id: String,
        /// Its display name.
        name: String,
    },
    /// The room is gone for you (`room` as the recipient named it).
    RoomClosed { room: String, reason: &'static str },
    /// Chat text from `seat`.
    Chat {
        room: RoomId,
        seat: SeatId,
        /// The sender's user id.
        user_id: String,
        username: String,
        text: String,
        server_ts: UnixMillis,
    },
    /// Something the recipient sent was refused.
    Error {
        seat: SeatId,
        room: Option<RoomId>,
        code: ErrorCode,
    },
    /// A token was accepted.
    AuthSuccess { seat: SeatId, user_name: String },
    /// An invite the host asked for: the edge signs it when it renders this.
    Invite {
        room: RoomId,
        /// The room's serial, which the invite carries.
        serial: u64,
        /// When it expires.
        expires_at: UnixMillis,
    },
    /// Reply to a ping; the send instant is stamped when it is written.
    Pong {
        seat: SeatId,
        room: Option<String>,
        echo: Option<Json>,
        received: UnixMillis,
    },
    /// Another connection took this connection's seat over: it is closed.
    Displaced,
    /// The room has a new host (sent to every member, followed by a fresh room state).
    HostChange {
        room: RoomId,
        host: SeatId,
        /// The new host's user id.
        host_user: String,
    },
    /// The server is restarting and keeps the rooms: close the connection (1012) without
    /// telling anyone a room closed.
    Restart,
    /// The room's content changed (or is told to a joiner).
    Content {
        room: RoomId,
        content_id: String,
        from_user: String,
    },
    /// A WebRTC signal from `from_user`, for the recipient only.
    Signal {
        room: RoomId,
        from_user: String,
        kind: SignalKind,
        body: Json,
    },
    /// A client debug line for the server log (not sent to anyone).
    ClientLog { category: String, message: String },
}

impl Event {
    /// Every event's name, in `index` order (for metrics).
    pub const NAMES: [&'static str; 23] = [
        "hello",
        "room_list",
        "room_state",
        "participants",
        "client_joined",
        "presence",
        "force_resync",
        "control",
        "state",
        "client_left",
        "room_closed",
        "chat",
        "error",
        "auth_success",
        "invite",
        "pong",
        "displaced",
        "host_change",
        "restart",
        "content",
        "signal",
        "client_log",
        "other",
    ];

    /// Its place in `NAMES`.
    pub fn index(&self) -> usize {
        match self {
            Event::Hello { .. } => 0,
            Event::RoomList { .. } => 1,
            Event::RoomState { .. } => 2,
            Event::Participants { .. } => 3,
            Event::ClientJoined { .. } => 4,
            Event::Presence { .. } => 5,
            Event::ForceResync { .. } => 6,
            Event::Control { .. } => 7,
            Event::State { .. } => 8,
            Event::ClientLeft { .. } => 9,
            Event::RoomClosed { .. } => 10,
            Event::Chat { .. } => 11,
            Event::Error { .. } => 12,
            Event::AuthSuccess { .. } => 13,
            Event::Invite { .. } => 14,
            Event::Pong { .. } => 15,
            Event::Displaced => 16,
            Event::HostChange { .. } => 17,
            Event::Restart => 18,
            Event::Content { .. } => 19,
            Event::Signal { .. } => 20,
            Event::ClientLog { .. } => 21,
        }
    }
}

impl ErrorCode {
    /// Its place in `ALL`.
    pub fn index(self) -> usize {
        ErrorCode::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// What the core counts, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Commands handled, by `Command::NAMES`.
    pub commands: [u64; 20],
    /// Seats taken back with a resume token.
    pub resumes: u64,
    /// Seats taken back by authenticating as their subject.
    pub reclaims: u64,
    /// Stock clients let back into the room they named.
    pub readmissions: u64,
    /// Host handovers.
    pub handovers: u64,
    /// Pending plays released because everyone was ready, and at the ready-wait deadline.
    pub plays_released_ready: u64,
    pub plays_released_deadline: u64,
    /// Invites made.
    pub invites: u64,
}

/// What became of one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (possibly with nothing to tell anyone).
    Accepted,
    /// Refused; the sender may have been told (OpenWatchParty: an `error` or a `room_closed`).
    Refused(ErrorCode),
}

/// Where the core writes its decisions during one call.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Events made during the call.
    pub events: Vec<Event>,
    /// (recipient, index into `events`), in the order they must be sent.
    pub sends: Vec<(ConnId, u32)>,
}

impl Outbox {
    /// Releases capacity beyond what is held.
    pub fn compact(&mut self) {
        self.events.shrink_to_fit();
        self.sends.shrink_to_fit();
    }

    /// Adds an event and returns its index.
    pub fn event(&mut self, event: Event) -> u32 {
        self.events.push(event);
        u32::try_from(self.events.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Queues event `index` for `conn`.
    pub fn send(&mut self, conn: ConnId, index: u32) {
        self.sends.push((conn, index));
    }

    /// Adds an event for one recipient.
    pub fn unicast(&mut self, conn: ConnId, event: Event) {
        let index = self.event(event);
        self.send(conn, index);
    }

    /// Empties the outbox, keeping its allocations.
    pub fn clear(&mut self) {
        self.events.clear();
        self.sends.clear();
    }
}

/// Timers the core sets, as data. Stale ones (a room since closed or moved on) are ignored
/// when they fire, by comparing the serial or epoch they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreTimer {
    /// Push the room list to lobby connections that have an old one.
    RoomListFlush,
    /// A pending play's ready-wait expired.
    ReadyDeadline { room: usize, epoch: u64 },
    /// Held commands for members that execute on receipt are due.
    HeldDue { room: usize, serial: u64 },
    /// A seat's grace ends: if its connection has not come back, it leaves its room.
    SeatGrace { seat: usize, serial: u64 },
    /// A room's host has been away for `host_grace_ms`: another member becomes host.
    HostGrace { room: usize, serial: u64 },
    /// A room's presence change waited for its interval: tell it now.
    PresenceDue { room: usize, serial: u64 },
}

/// Helper for code that wants an instant as both clocks.
pub fn later(now: crate::time::Now, ms: u64) -> (Millis, UnixMillis) {
    let then = now.plus(ms);
    (then.mono, then.wall)
}
