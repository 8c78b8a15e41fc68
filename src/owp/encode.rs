//! Server → client: core `Event`s in OpenWatchParty's JSON shapes (reference §3, §7.5).
//!
//! Every message carries `ts` (server wall clock at rendering) and `server_ts`. Ids are
//! lower-case hyphenated UUIDs, counts JSON integers, `media_id` 32 hex digits or null: the
//! stock client interpolates these into HTML and URLs.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::core::types::{Command, Credential, ErrorCode, Event, Json, Pass, Relay};
use crate::core::Listing;
use crate::id::{RoomId, SeatId};
use crate::time::UnixMillis;

#[derive(Serialize)]
struct Envelope<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<P>,
    ts: u64,
    server_ts: u64,
}

fn render<P: Serialize>(
    kind: &str,
    room: Option<&str>,
    client: Option<&str>,
    payload: Option<P>,
    ts: UnixMillis,
    server_ts: UnixMillis,
) -> String {
    let envelope = Envelope {
        kind,
        room,
        client,
        payload,
        ts: ts.0,
        server_ts: server_ts.0,
    };
    to_json(&envelope)
}

/// Serializes into a buffer sized for a typical message, so rendering does not reallocate.
fn to_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::with_capacity(320);
    // Serializing strings, numbers and raw JSON into a Vec cannot fail, and serde_json
    // writes only valid UTF-8.
    if serde_json::to_writer(&mut out, value).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A UUID rendered on the stack, as the lower-case hyphenated text clients see.
struct IdText([u8; 36]);

impl IdText {
    fn new(id: uuid::Uuid) -> IdText {
        let mut buf = [0u8; 36];
        id.hyphenated().encode_lower(&mut buf);
        IdText(buf)
    }

    fn as_str(&self) -> &str {
        // Hyphenated lower-case hex is ASCII.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl Serialize for IdText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Serialize)]
struct RelayPayload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    play_state: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_server_ts: Option<u64>,
}

fn relay_payload(relay: &Relay, target: Option<UnixMillis>) -> RelayPayload<'_> {
    RelayPayload {
        action: relay.action.as_ref().map(|j| &*j.0),
        position: relay.position.as_ref().map(|j| &*j.0),
        play_state: relay.play_state.as_ref().map(|j| &*j.0),
        target_server_ts: target.map(|t| t.0),
    }
}

#[derive(Serialize)]
struct StateShape<'a> {
    position: f64,
    play_state: &'a str,
}

#[derive(Serialize)]
struct RoomStatePayload<'a> {
    name: &'a str,
    host_id: &'a str,
    state: StateShape<'a>,
    participant_count: usize,
    media_id: Option<&'a str>,
    /// The room's free-form content (seed 003's `media_url`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    media_url: Option<&'a str>,
    participants: Vec<Participant<'a>>,
}

/// A member in `participants` (seed 003's shape, with presence).
#[derive(Serialize)]
struct Participant<'a> {
    client_id: IdText,
    name: &'a str,
    is_host: bool,
    away: bool,
    buffering: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reported_latency: Option<u32>,
}

fn participants(presence: &[crate::core::types::Presence]) -> Vec<Participant<'_>> {
    presence
        .iter()
        .map(|p| Participant {
            client_id: IdText::new(p.seat.0),
            name: &p.name,
            is_host: p.host,
            away: p.away,
            buffering: p.buffering,
            reported_latency: p.latency_ms,
        })
        .collect()
}

#[derive(Serialize)]
struct ListEntry<'a> {
    id: &'a str,
    name: &'a str,
    count: usize,
    media_id: Option<&'a str>,
}

/// Renders an event. `None` for events that are not messages (`ClientLog`) and for
/// `RoomList`, which the caller renders once per version with `encode_room_list`.
pub fn encode(event: &Event, now: UnixMillis, sync_lead_ms: u64) -> Option<String> {
    match event {
        Event::RoomState { .. } => Some(room_state(event, now, sync_lead_ms)),
        Event::Control { .. } | Event::State { .. } => encode_playback(event, now),
        Event::Pong {
            seat,
            room,
            echo,
            received,
        } => Some(encode_pong(
            *seat,
            room.as_deref(),
            echo.as_ref(),
            *received,
            now,
        )),
        Event::RoomList { .. }
        | Event::Displaced
        | Event::ClientLog { .. }
        | Event::Signal { .. }
        | Event::Content { .. } => None,
        _ => encode_notice(event, now),
    }
}

/// `player_event` and `state_update`: the relayed fields, with the server's instants.
fn encode_playback(event: &Event, now: UnixMillis) -> Option<String> {
    let one = Some;
    match event {
        Event::Control {
            room,
            host,
            message,
            ..
        } => one(render(
            "player_event",
            Some(IdText::new(room.0).as_str()),
            Some(IdText::new(host.0).as_str()),
            Some(relay_payload(&message.relay, Some(message.target))),
            now,
            message.target,
        )),
        Event::State {
            room,
            host,
            relay,
            server_ts,
            ..
        } => one(render(
            "state_update",
            Some(IdText::new(room.0).as_str()),
            Some(IdText::new(host.0).as_str()),
            Some(relay_payload(relay, None)),
            now,
            *server_ts,
        )),
        _ => None,
    }
}

/// Everything else: greetings, membership changes, chat, errors.
fn encode_notice(event: &Event, now: UnixMillis) -> Option<String> {
    use serde_json::json;
    let one = Some;
    match event {
        Event::Hello { seat, resume_token } => {
            let id = IdText::new(seat.0);
            let id = id.as_str();
            let payload = match resume_token {
                Some(token) => json!({ "client_id": id, "resume_token": token }),
                None => json!({ "client_id": id }),
            };
            one(render(
                "client_hello",
                None,
                Some(id),
                Some(payload),
                now,
                now,
            ))
        }
        Event::Participants {
            room,
            count,
            presence: None,
            ..
        } => one(render(
            "participants_update",
            Some(IdText::new(room.0).as_str()),
            None,
            Some(json!({ "participant_count": count })),
            now,
            now,
        )),
        Event::Participants {
            room,
            count,
            presence: Some(presence),
            ..
        }
        | Event::Presence {
            room,
            count,
            presence,
        } => one(render(
            "participants_update",
            Some(IdText::new(room.0).as_str()),
            None,
            Some(json!({ "participant_count": count, "participants": participants(presence) })),
            now,
            now,
        )),
        Event::ClientJoined { room, seat, name } => one(render(
            "client_joined",
            Some(IdText::new(room.0).as_str()),
            Some(IdText::new(seat.0).as_str()),
            Some(json!({ "name": name })),
            now,
            now,
        )),
        Event::ForceResync {
            room,
            host,
            position,
            target,
        } => one(render(
            "force_resync",
            Some(IdText::new(room.0).as_str()),
            Some(IdText::new(host.0).as_str()),
            Some(json!({ "target_position": position, "target_server_ts": target.0 })),
            now,
            *target,
        )),
        Event::ClientLeft {
            room,
            seat,
            count,
            name,
            ..
        } => one(render(
            "client_left",
            Some(IdText::new(room.0).as_str()),
            Some(IdText::new(seat.0).as_str()),
            Some(json!({ "participant_count": count, "name": name })),
            now,
            now,
        )),
        Event::RoomClosed { room, reason } => one(render(
            "room_closed",
            Some(room),
            None,
            Some(json!({ "reason": reason })),
            now,
            now,
        )),
        Event::Chat {
            room,
            seat,
            username,
            user_id: _,
            text,
            server_ts,
        } => one(render(
            "chat_message",
            Some(IdText::new(room.0).as_str()),
            Some(IdText::new(seat.0).as_str()),
            Some(json!({ "username": username, "text": text })),
            now,
            *server_ts,
        )),
        Event::Error { seat, room, code } => one(render(
            "error",
            room.map(|r| IdText::new(r.0)).as_ref().map(IdText::as_str),
            Some(IdText::new(seat.0).as_str()),
            Some(json!({ "message": error_message(*code), "code": code.code() })),
            now,
            now,
        )),
        Event::HostChange { room, host, .. } => one(render(
            "host_change",
            Some(IdText::new(room.0).as_str()),
            None,
            Some(json!({ "host_id": IdText::new(host.0).as_str() })),
            now,
            now,
        )),
        Event::AuthSuccess { seat, user_name } => one(render(
            "auth_success",
            None,
            Some(IdText::new(seat.0).as_str()),
            Some(json!({ "user_name": user_name })),
            now,
            now,
        )),
        _ => None,
    }
}

/// `room_state`. For a joiner, the position is the room clock minus the stock client's own
/// SYNC_LEAD_MS (it adds that lead before seeking; docs/protocol.md, "Joiners"). The play
/// that follows for a joiner of a playing room is a core event of its own.
fn room_state(event: &Event, now: UnixMillis, sync_lead_ms: u64) -> String {
    let Event::RoomState {
        room,
        seat,
        name,
        host,
        clock,
        participants,
        media_id,
        content,
        server_ts,
        joiner,
        presence,
        ..
    } = event
    else {
        return String::new();
    };
    let (room, seat, host) = (room.to_string(), seat.to_string(), host.to_string());
    let lead = if *joiner {
        sync_lead_ms as f64 / 1_000.0
    } else {
        0.0
    };
    let payload = RoomStatePayload {
        name,
        host_id: &host,
        state: StateShape {
            position: (clock.position - lead).max(0.0),
            play_state: if clock.playing { "playing" } else { "paused" },
        },
        participant_count: *participants,
        media_id: media_id.as_deref(),
        media_url: content.as_deref(),
        participants: self::participants(presence),
    };
    render(
        "room_state",
        Some(&room),
        Some(&seat),
        Some(payload),
        now,
        *server_ts,
    )
}

#[derive(Serialize)]
struct ListMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: Vec<ListEntry<'a>>,
    /// Rooms that exist, listed or not (the stock client reads only `payload`).
    total: usize,
    ts: u64,
    server_ts: u64,
}

/// `room_list`: the entries the core chose, in its order, and the number of rooms that
/// exist.
pub fn encode_room_list(listing: &Listing, now: UnixMillis) -> String {
    let ids: Vec<IdText> = listing.rooms.iter().map(|r| IdText::new(r.id.0)).collect();
    let payload: Vec<ListEntry<'_>> = listing
        .rooms
        .iter()
        .zip(&ids)
        .map(|(room, id)| ListEntry {
            id: id.as_str(),
            name: &room.name,
            count: room.count,
            media_id: room.media_id.as_deref(),
        })
        .collect();
    to_json(&ListMessage {
        kind: "room_list",
        payload,
        total: listing.total,
        ts: now.0,
        server_ts: now.0,
    })
}

#[derive(Serialize)]
struct Pong<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    client: &'a str,
    payload: &'a RawValue,
    ts: u64,
    server_ts: u64,
    server_rx_ts: u64,
    server_tx_ts: u64,
}

/// `pong`: the ping's payload echoed; `server_ts` is the midpoint of the instants the ping
/// was received and the pong sent, both given as well for four-timestamp clock sync.
pub fn encode_pong(
    seat: SeatId,
    room: Option<&str>,
    echo: Option<&Json>,
    received: UnixMillis,
    sent: UnixMillis,
) -> String {
    let empty = Json::empty_object();
    let client = seat.to_string();
    let sent = sent.max(received);
    let pong = Pong {
        kind: "pong",
        room,
        client: &client,
        payload: &echo.unwrap_or(&empty).0,
        ts: sent.0,
        server_ts: received
            .0
            .saturating_add(sent.0.saturating_sub(received.0) / 2),
        server_rx_ts: received.0,
        server_tx_ts: sent.0,
    };
    to_json(&pong)
}

/// The client side of `decode`: renders a command as an OpenWatchParty client would send it.
/// Relayed fields and echoed payloads are written back byte for byte.
pub fn encode_command(command: &Command, room: Option<&str>, ts: u64) -> String {
    let (kind, envelope_room, payload) = command_parts(command, room);
    #[derive(Serialize)]
    struct ClientMessage<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<Box<RawValue>>,
        ts: u64,
    }
    let message = ClientMessage {
        kind,
        room: envelope_room,
        payload,
        ts,
    };
    serde_json::to_string(&message).unwrap_or_default()
}

/// A JSON object without its null fields (a field that was JSON null decodes as absent, so
/// dropping nulls is faithful), as raw JSON.
fn without_nulls(mut value: serde_json::Value) -> Option<Box<RawValue>> {
    if let serde_json::Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    serde_json::value::to_raw_value(&value).ok()
}

/// A command's `type`, envelope `room` and payload.
fn command_parts<'a>(
    command: &'a Command,
    room: Option<&'a str>,
) -> (&'static str, Option<&'a str>, Option<Box<RawValue>>) {
    use serde_json::json;
    let relay = |relay: &Relay| serde_json::value::to_raw_value(&relay_payload(relay, None)).ok();
    // Only a presented token has a wire form; the edge's verdicts do not.
    let token = |credential: &Option<Credential>| match credential {
        Some(Credential::Token(token)) => Some(token.clone()),
        _ => None,
    };
    match command {
        Command::Identify {
            user_name,
            user_id,
            follows_schedule,
            credential,
        } => {
            let payload = json!({ "user_name": user_name, "user_id": user_id,
                                  "scheduled": follows_schedule, "token": token(credential) });
            ("auth", None, without_nulls(payload))
        }
        Command::ListRooms => ("list_rooms", None, without_nulls(json!({}))),
        Command::CreateRoom {
            name,
            user_name,
            start_position,
            media_id,
            content,
            private,
            credential,
        } => {
            let payload = json!({ "name": name, "user_name": user_name,
                                  "start_pos": start_position, "media_id": media_id,
                                  "media_url": content,
                                  "options": { "private": private },
                                  "auth_token": token(credential) });
            ("create_room", room, without_nulls(payload))
        }
        Command::JoinRoom {
            room,
            user_name,
            credential,
            invite,
        } => {
            let invite = match invite {
                Some(Pass::Token(token)) => Some(token.as_str()),
                _ => None,
            };
            let payload = json!({ "user_name": user_name, "auth_token": token(credential),
                                  "invite_token": invite });
            ("join_room", Some(room.as_str()), without_nulls(payload))
        }
        Command::Resume { token } => ("resume", None, without_nulls(json!({ "token": token }))),
        Command::ForceResync { room, position } => (
            "force_resync",
            room.as_deref(),
            without_nulls(json!({ "target_position": position })),
        ),
        Command::CreateInvite { room, expires_in } => (
            "create_invite",
            room.as_deref(),
            without_nulls(json!({ "expires_in": expires_in })),
        ),
        Command::LeaveRoom => ("leave_room", room, without_nulls(json!({}))),
        // OpenWatchParty has no "enter": the nearest message joins the room by its id.
        Command::Enter {
            alias, user_name, ..
        } => (
            "join_room",
            Some(alias.as_str()),
            without_nulls(json!({ "user_name": user_name })),
        ),
        Command::Ready { room } => ("ready", room.as_deref(), without_nulls(json!({}))),
        Command::Control { room, control } => {
            ("player_event", room.as_deref(), relay(&control.relay))
        }
        Command::Report { room, report } => {
            // The relayed fields verbatim (their text is what the property compares), then
            // the latency, spliced in.
            let payload = report
                .has_payload
                .then(|| relay(&report.relay))
                .flatten()
                .map(|raw| match report.latency_ms {
                    None => raw,
                    Some(latency) => {
                        let text = raw.get();
                        let body = text.strip_suffix('}').unwrap_or(text);
                        let comma = if body.len() > 1 { "," } else { "" };
                        RawValue::from_string(format!(
                            "{body}{comma}\"reported_latency\":{latency}}}"
                        ))
                        .unwrap_or(raw)
                    }
                });
            ("state_update", room.as_deref(), payload)
        }
        Command::Ping { room, echo } => {
            ("ping", room.as_deref(), echo.as_ref().map(|j| j.0.clone()))
        }
        Command::Chat { room, text } => (
            "chat_message",
            room.as_deref(),
            without_nulls(json!({ "text": text })),
        ),
        // OpenWatchParty has no WebRTC signalling: the nearest is a debug line.
        Command::SetContent { room, content_id } => (
            "set_media",
            Some(room.as_str()),
            without_nulls(json!({ "media_url": content_id })),
        ),
        Command::TransferHost { room, to } => (
            "transfer_host",
            room.as_deref(),
            without_nulls(json!({ "client_id": to })),
        ),
        Command::ClaimHost { room } => ("claim_host", room.as_deref(), without_nulls(json!({}))),
        Command::Signal { .. } => ("client_log", None, without_nulls(json!({}))),
        Command::ClientLog { category, message } => (
            "client_log",
            None,
            without_nulls(json!({ "category": category, "message": message })),
        ),
    }
}

/// An error's `payload.message`, as the original words it where it has one.
pub fn error_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::RateLimited => "Rate limit exceeded",
        ErrorCode::InvalidMessage => "Invalid message format",
        ErrorCode::UnknownType => "Unknown message type",
        ErrorCode::BinaryUnsupported => "Binary messages are not supported",
        ErrorCode::RoomNotFound => "Room not found",
        ErrorCode::RoomFull => "Room is full",
        ErrorCode::RoomsLimit => "Too many rooms",
        ErrorCode::NotHost => "Only the host can control playback",
        ErrorCode::RoomRequired => "Room ID required for chat",
        ErrorCode::NotInRoom => "You are not in this room",
        ErrorCode::AuthFailed => "Authentication failed",
        ErrorCode::PeerNotFound => "Peer not found",
        ErrorCode::ChatEmpty => "Chat message cannot be empty",
        ErrorCode::ChatTooLong => "Chat message too long (max 500 characters)",
        ErrorCode::AuthRequired => "Authentication required",
        ErrorCode::InviteRequired => "This room is private: an invite is required",
        ErrorCode::InviteInvalid => "Invalid invite",
        ErrorCode::InviteExpired => "Invite expired",
        ErrorCode::InviteRoomMismatch => "Invite is for another room",
        ErrorCode::ResumeFailed => "Resume token invalid or expired",
        ErrorCode::HostPresent => "The host is here: ask them to hand over",
    }
}

/// `invite_created {invite_token, expires_at}` (Unix seconds), for the host who asked.
pub fn encode_invite(room: RoomId, token: &str, expires_at: u64, now: UnixMillis) -> String {
    render(
        "invite_created",
        Some(IdText::new(room.0).as_str()),
        None,
        Some(serde_json::json!({ "invite_token": token, "expires_at": expires_at })),
        now,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::ClockReading;
    use crate::id::RoomId;

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    /// A joiner's room_state has the clock minus the client's lead (the play that follows is
    /// a core event, tested in the core's transcripts).
    #[test]
    fn joiner_room_state_is_adjusted() {
        let event = Event::RoomState {
            room: RoomId(uuid::Uuid::nil()),
            seat: SeatId(uuid::Uuid::nil()),
            name: "r".into(),
            host: SeatId(uuid::Uuid::max()),
            clock: ClockReading {
                position: 10.0,
                playing: true,
            },
            participants: 2,
            media_id: None,
            content: None,
            server_ts: UnixMillis(5_000),
            joiner: true,
            refresh: false,
            you: Default::default(),
            peers: Vec::new(),
            presence: Vec::new(),
        };
        let encoded = encode(&event, UnixMillis(5_000), 300).expect("a message");
        let state = parse(&encoded);
        assert_eq!(state["payload"]["state"]["position"], 9.7);
        assert_eq!(state["payload"]["state"]["play_state"], "playing");
        assert_eq!(state["server_ts"], 5_000);
    }

    /// The pong's server_ts is the midpoint of receive and send.
    #[test]
    fn pong_midpoint() {
        let echo = Json(RawValue::from_string("{\"client_ts\":1}".into()).expect("json"));
        let pong = parse(&encode_pong(
            SeatId(uuid::Uuid::nil()),
            None,
            Some(&echo),
            UnixMillis(100),
            UnixMillis(104),
        ));
        assert_eq!(pong["server_ts"], 102);
        assert_eq!(pong["payload"]["client_ts"], 1);
        assert!(pong.get("room").is_none());
    }
}
