//! The StreamSync v1 dialect (`{v, type, requestId?, payload}`), a codec at the edge of the
//! same core as OpenWatchParty. This is its first part: `server/hello`, `room/join`,
//! `room/leave`, `chat/send`, and exactly one `ack` or `error` per `requestId`. Playback,
//! content and WebRTC relay are not there yet and are answered `bad_request`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::core::room::{valid_position, CONTENT_ID_BYTES_MAX};
use crate::core::types::{
    reason, Command, Control, ControlAction, Credential, ErrorCode, Event, Json, Pass, Peer,
    PlayState, Relay, SignalKind,
};
use crate::id::RoomId;
use crate::text;
use crate::time::UnixMillis;

/// Close code sent to a connection whose seat another connection took over.
pub const CLOSE_REPLACED: u16 = 4001;

/// The subprotocol that selects this dialect on `/ws`.
pub const SUBPROTOCOL: &str = "streamsync.v1";

/// Longest `requestId` echoed back.
const REQUEST_ID_MAX: usize = 64;
/// Longest `userId`.
const USER_ID_MAX: usize = 64;

/// A decoded request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The client's request id, answered with one `ack` or `error`.
    pub request_id: Option<String>,
    /// What it asks.
    pub command: Command,
    /// The `roomId` as the client wrote it.
    pub room_name: String,
}

/// A message that is not a request this dialect can carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Its request id, if one could be read.
    pub request_id: Option<String>,
    /// Why, for the error's `message`.
    pub reason: &'static str,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    v: Option<&'a RawValue>,
    #[serde(rename = "type", default, borrow)]
    kind: Option<&'a RawValue>,
    #[serde(rename = "requestId", default, borrow)]
    request_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

/// A field of a JSON object.
fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_object()?.get(name)
}

fn string(raw: Option<&RawValue>) -> Option<String> {
    serde_json::from_str::<String>(raw?.get()).ok()
}

/// Decodes one v1 message.
pub fn decode(text: &str) -> Result<Request, Rejected> {
    let reject = |request_id: Option<String>, reason| Rejected { request_id, reason };
    let envelope: Envelope<'_> =
        serde_json::from_str(text).map_err(|_| reject(None, "not a JSON object"))?;
    let request_id = match envelope.request_id {
        None => None,
        Some(raw) => Some(
            string(Some(raw))
                .filter(|id| !id.is_empty() && id.len() <= REQUEST_ID_MAX)
                .ok_or_else(|| reject(None, "requestId must be a string of 1-64 bytes"))?,
        ),
    };
    let fail = |reason| reject(request_id.clone(), reason);
    if envelope.v.map(RawValue::get) != Some("1") {
        return Err(fail("v must be 1"));
    }
    let kind = string(envelope.kind).ok_or_else(|| fail("type must be a string"))?;
    let payload: Value = envelope
        .payload
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .filter(Value::is_object)
        .ok_or_else(|| fail("payload must be an object"))?;
    let command = match kind.as_str() {
        "room/join" => {
            join(&payload).ok_or_else(|| fail("room/join needs a valid roomId and client"))?
        }
        "room/create_invite" => {
            let (room, _) =
                room(&payload).ok_or_else(|| fail("room/create_invite needs a valid roomId"))?;
            let expires_in = match field(&payload, "expiresInSec") {
                None => None,
                Some(value) => Some(
                    value
                        .as_u64()
                        .filter(|s| *s >= 1)
                        .ok_or_else(|| fail("expiresInSec must be a positive integer"))?,
                ),
            };
            Command::CreateInvite {
                room: Some(room.to_string()),
                expires_in,
            }
        }
        "session/resume" => Command::Resume {
            token: field(&payload, "token")
                .and_then(Value::as_str)
                .ok_or_else(|| fail("session/resume needs a token"))?
                .to_string(),
        },
        "room/leave" => {
            room(&payload).ok_or_else(|| fail("room/leave needs a valid roomId"))?;
            Command::LeaveRoom
        }
        "chat/send" => {
            let (room, _) = room(&payload).ok_or_else(|| fail("chat/send needs a valid roomId"))?;
            let text = field(&payload, "text")
                .and_then(Value::as_str)
                .ok_or_else(|| fail("chat/send needs a text"))?;
            Command::Chat {
                room: Some(room.to_string()),
                text: text.to_string(),
            }
        }
        "webrtc/offer" | "webrtc/answer" | "webrtc/ice" => {
            signal(&kind, &payload).ok_or_else(|| {
                fail("webrtc needs roomId, toUserId and its sdp or candidate (at most 16 KiB)")
            })?
        }
        "watch/set_content" => {
            let (room, _) =
                room(&payload).ok_or_else(|| fail("watch/set_content needs a valid roomId"))?;
            let content_id = field(&payload, "contentId")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty() && c.len() <= CONTENT_ID_BYTES_MAX)
                .ok_or_else(|| fail("watch/set_content needs a contentId of 1-512 bytes"))?;
            Command::SetContent {
                room: room.to_string(),
                content_id: content_id.to_string(),
            }
        }
        "watch/playback_state" => playback(&payload).ok_or_else(|| {
            fail("watch/playback_state needs roomId and state {playing, positionSec}")
        })?,
        _ => return Err(fail("unsupported type")),
    };
    let room_name = room(&payload).map(|(_, name)| name).unwrap_or_default();
    Ok(Request {
        request_id,
        command,
        room_name,
    })
}

/// The client side of `decode`, for tests and fuzzing: a decoded request written back as a
/// v1 message (`decode(encode_request(decode(t)))` equals `decode(t)`).
pub fn encode_request(request: &Request) -> String {
    let room = &request.room_name;
    let (kind, payload) = match &request.command {
        Command::Enter {
            user_id,
            user_name,
            credential,
            invite,
            ..
        } => {
            let mut payload = json!({ "roomId": room,
                                      "client": { "userId": user_id, "displayName": user_name } });
            if let (Some(Credential::Token(token)), Some(map)) =
                (credential, payload.as_object_mut())
            {
                map.insert("token".into(), json!(token));
            }
            if let (Some(Pass::Token(token)), Some(map)) = (invite, payload.as_object_mut()) {
                map.insert("inviteToken".into(), json!(token));
            }
            ("room/join", payload)
        }
        Command::Resume { token } => ("session/resume", json!({ "token": token })),
        Command::CreateInvite { expires_in, .. } => {
            let mut payload = json!({ "roomId": room });
            if let (Some(seconds), Some(map)) = (expires_in, payload.as_object_mut()) {
                map.insert("expiresInSec".into(), json!(seconds));
            }
            ("room/create_invite", payload)
        }
        Command::LeaveRoom => ("room/leave", json!({ "roomId": room })),
        Command::Chat { text, .. } => ("chat/send", json!({ "roomId": room, "text": text })),
        Command::SetContent { content_id, .. } => (
            "watch/set_content",
            json!({ "roomId": room, "contentId": content_id }),
        ),
        Command::Control { control, .. } => (
            "watch/playback_state",
            json!({ "roomId": room, "state": {
                "playing": control.action == ControlAction::Play,
                "positionSec": control.position,
                "hostTsMs": control.relay.host_ts } }),
        ),
        Command::Signal {
            to_user,
            kind,
            body,
            ..
        } => {
            let body: Value = serde_json::from_str(body.text()).unwrap_or(Value::Null);
            let (kind, key) = match kind {
                SignalKind::Offer => ("webrtc/offer", "sdp"),
                SignalKind::Answer => ("webrtc/answer", "sdp"),
                SignalKind::Ice => ("webrtc/ice", "candidate"),
            };
            let mut payload = serde_json::Map::new();
            payload.insert("roomId".into(), json!(room));
            payload.insert("toUserId".into(), json!(to_user));
            payload.insert(key.into(), body);
            (kind, Value::Object(payload))
        }
        _ => ("unknown", json!({})),
    };
    let mut envelope = serde_json::Map::new();
    envelope.insert("v".into(), json!(1));
    envelope.insert("type".into(), json!(kind));
    if let Some(id) = &request.request_id {
        envelope.insert("requestId".into(), json!(id));
    }
    envelope.insert("payload".into(), payload);
    Value::Object(envelope).to_string()
}

/// The `roomId` of a payload: the room and the name it was given by.
pub fn room(payload: &Value) -> Option<(RoomId, String)> {
    let name = field(payload, "roomId")?.as_str()?;
    RoomId::from_name(name).map(|id| (id, name.to_string()))
}

fn join(payload: &Value) -> Option<Command> {
    let (room, alias) = room(payload)?;
    let client = field(payload, "client")?;
    let user_id = field(client, "userId")?.as_str()?;
    let valid_id = !user_id.is_empty()
        && user_id.len() <= USER_ID_MAX
        && user_id
            .chars()
            .all(|c| !c.is_control() && !text::is_format(c));
    let name = field(client, "displayName")?
        .as_str()
        .and_then(text::display_name)?;
    // Optional tokens: present but not a string is a bad request, not an absent token.
    let token = |key: &str| match field(payload, key) {
        None => Some(None),
        Some(value) => value.as_str().map(|t| Some(t.to_string())),
    };
    let credential = token("token")?.map(Credential::Token);
    let invite = token("inviteToken")?.map(Pass::Token);
    valid_id.then(|| Command::Enter {
        room,
        alias,
        user_id: Some(user_id.to_string()),
        user_name: Some(name),
        credential,
        invite,
    })
}

/// A host's playback state, as a command: a play or a pause at `positionSec`, relayed to
/// OpenWatchParty members as the stock host's `player_event`. (The gateway turns it into a
/// report when it agrees with the room clock, so a host repeating its state is no command.)
fn playback(payload: &Value) -> Option<Command> {
    let (room, _) = room(payload)?;
    let state = field(payload, "state")?;
    let playing = field(state, "playing")?.as_bool()?;
    let position = field(state, "positionSec")?
        .as_f64()
        .filter(|p| valid_position(*p))?;
    let (action, play_state) = if playing {
        (ControlAction::Play, PlayState::Playing)
    } else {
        (ControlAction::Pause, PlayState::Paused)
    };
    let verb = if playing { "play" } else { "pause" };
    Some(Command::Control {
        room: Some(room.to_string()),
        control: Control {
            action,
            position: Some(position),
            play_state: Some(play_state),
            relay: Relay {
                host_ts: field(state, "hostTsMs").and_then(Value::as_u64),
                action: Some(Json::string(verb)),
                position: Some(Json::number(position)),
                play_state: Some(Json::string(play_state.as_str())),
            },
        },
    })
}

/// Largest SDP or candidate relayed, in bytes of JSON.
const SIGNAL_BYTES_MAX: usize = 16 << 10;

/// A WebRTC signal: its body is opaque (any JSON value under `sdp` or `candidate`), only
/// size-capped.
fn signal(kind: &str, payload: &Value) -> Option<Command> {
    let (room, _) = room(payload)?;
    let to_user = field(payload, "toUserId")?.as_str()?.to_string();
    let (kind, key) = match kind {
        "webrtc/offer" => (SignalKind::Offer, "sdp"),
        "webrtc/answer" => (SignalKind::Answer, "sdp"),
        _ => (SignalKind::Ice, "candidate"),
    };
    let body = serde_json::value::to_raw_value(field(payload, key)?).ok()?;
    (body.get().len() <= SIGNAL_BYTES_MAX).then(|| Command::Signal {
        room: room.to_string(),
        to_user,
        kind,
        body: Json(body),
    })
}

/// The error code of a request that found the server's own state broken.
pub const INTERNAL: &str = "internal";

/// The v1 error code of a refusal.
pub fn error_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotHost
        | ErrorCode::AuthFailed
        | ErrorCode::AuthRequired
        | ErrorCode::InviteRequired
        | ErrorCode::InviteInvalid
        | ErrorCode::InviteExpired
        | ErrorCode::InviteRoomMismatch
        | ErrorCode::ResumeFailed
        | ErrorCode::HostPresent => "unauthorized",
        ErrorCode::NotInRoom => "not_in_room",
        ErrorCode::RoomNotFound => "room_not_found",
        ErrorCode::PeerNotFound => "peer_not_found",
        _ => "bad_request",
    }
}

#[derive(Serialize)]
struct Outgoing<'a, P: Serialize> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'a str,
    payload: P,
}

/// A v1 message, serialized once (fields in the schema's order: `v`, `type`, `payload`).
fn message<P: Serialize>(kind: &str, payload: P) -> String {
    serde_json::to_string(&Outgoing {
        v: 1,
        kind,
        payload,
    })
    .unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlaybackOut<'a> {
    room_id: String,
    state: StateOut,
    server_ts_ms: u64,
    from_user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateOut {
    playing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    position_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_ts_ms: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatOut<'a> {
    room_id: String,
    from: PeerOut<'a>,
    text: &'a str,
    ts_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerOut<'a> {
    user_id: &'a str,
    display_name: &'a str,
}

/// `ack` for a request.
pub fn ack(request_id: &str) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Ack<'a> {
        request_id: &'a str,
    }
    message("ack", Ack { request_id })
}

/// `error`, for a request if it had an id.
pub fn error(request_id: Option<&str>, code: &str, text: &str) -> String {
    let payload = match request_id {
        Some(id) => json!({ "requestId": id, "code": code, "message": text }),
        None => json!({ "code": code, "message": text }),
    };
    message("error", payload)
}

fn peer(peer: &Peer) -> Value {
    json!({ "userId": peer.user_id, "displayName": peer.name })
}

/// Renders an event for a v1 client; `None` for what this dialect does not carry (yet).
/// `room_id` names a room as v1 clients know it.
pub fn encode(
    event: &Event,
    now: UnixMillis,
    room_id: &dyn Fn(RoomId) -> String,
) -> Option<String> {
    let rendered = match event {
        Event::Hello {
            resume_token: Some(token),
            ..
        } => message(
            "server/hello",
            json!({ "v": 1, "nowMs": now.0, "resumeToken": token }),
        ),
        Event::Hello { .. } => message("server/hello", json!({ "v": 1, "nowMs": now.0 })),
        // A refresh after a content change: v1 members get `watch/content` instead.
        Event::RoomState { refresh: true, .. } => return None,
        Event::RoomState {
            room, you, peers, ..
        } => message(
            "room/joined",
            json!({ "roomId": room_id(*room), "you": peer(you),
                    "peers": peers.iter().map(peer).collect::<Vec<_>>() }),
        ),
        Event::Participants { room, joined, .. } => message(
            "room/peer_joined",
            json!({ "roomId": room_id(*room), "peer": peer(joined) }),
        ),
        Event::ClientLeft { room, user_id, .. } => message(
            "room/peer_left",
            json!({ "roomId": room_id(*room), "userId": user_id }),
        ),
        Event::Chat {
            room,
            user_id,
            username,
            text,
            server_ts,
            ..
        } => message(
            "chat/message",
            ChatOut {
                room_id: room_id(*room),
                from: PeerOut {
                    user_id,
                    display_name: username,
                },
                text,
                ts_ms: server_ts.0,
            },
        ),
        // A room that closed under its members (not a lost-room notice, which v1 does not
        // need: it answers with an error instead).
        Event::RoomClosed { room, reason } => {
            if ![reason::HOST_LEFT, reason::HOST_NEW_ROOM, reason::SHUTDOWN].contains(reason) {
                return None;
            }
            let id = RoomId::parse(room)?;
            message(
                "room/closed",
                json!({ "roomId": room_id(id), "reason": reason }),
            )
        }
        Event::Control {
            room,
            host_user,
            message,
            ..
        } => playback_state(room_id(*room), host_user, &message.relay, message.target)?,
        Event::State {
            room,
            host_user,
            relay,
            server_ts,
            ..
        } => playback_state(room_id(*room), host_user, relay, *server_ts)?,
        Event::HostChange {
            room, host_user, ..
        } => message(
            "room/host_changed",
            json!({ "roomId": room_id(*room), "hostUserId": host_user }),
        ),
        Event::Content {
            room, content_id, ..
        } => message(
            "watch/content",
            json!({ "roomId": room_id(*room), "contentId": content_id }),
        ),
        Event::Signal {
            room,
            from_user,
            kind,
            body,
        } => {
            let (kind, key) = match kind {
                SignalKind::Offer => ("webrtc/offer", "sdp"),
                SignalKind::Answer => ("webrtc/answer", "sdp"),
                SignalKind::Ice => ("webrtc/ice", "candidate"),
            };
            let body: Value = serde_json::from_str(body.text()).unwrap_or(Value::Null);
            let mut payload = serde_json::Map::new();
            payload.insert("roomId".into(), json!(room_id(*room)));
            payload.insert("fromUserId".into(), json!(from_user));
            payload.insert(key.into(), body);
            message(kind, Value::Object(payload))
        }
        _ => return None,
    };
    Some(rendered)
}

/// `room/invite {roomId, inviteToken, expiresAtMs}`, for the host who asked.
pub fn encode_invite(room_id: &str, token: &str, expires_at: UnixMillis) -> String {
    message(
        "room/invite",
        json!({ "roomId": room_id, "inviteToken": token, "expiresAtMs": expires_at.0 }),
    )
}

/// `watch/playback_state` from the relayed fields of a command or report: playing for a
/// `play` (or a `playing` state without a pause), the position when there is one.
fn playback_state(room: String, from: &str, relay: &Relay, at: UnixMillis) -> Option<String> {
    // The relayed strings are short words: borrowed unless escaped.
    let word = |json: &Option<Json>| {
        json.as_ref()
            .and_then(|j| serde_json::from_str::<std::borrow::Cow<'_, str>>(j.text()).ok())
            .map(|w| w.into_owned())
    };
    let action = word(&relay.action);
    let playing = match action.as_deref() {
        Some("play") => true,
        Some("pause" | "buffering") => false,
        _ => word(&relay.play_state).as_deref() == Some("playing"),
    };
    let position = relay
        .position
        .as_ref()
        .and_then(|j| j.text().parse::<f64>().ok())
        .filter(|p| p.is_finite());
    Some(message(
        "watch/playback_state",
        PlaybackOut {
            room_id: room,
            state: StateOut {
                playing,
                position_sec: position,
                host_ts_ms: relay.host_ts,
            },
            server_ts_ms: at.0,
            from_user_id: from,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envelope rules: v must be 1, type a string, payload an object; requestId comes back.
    #[test]
    fn envelope() {
        let bad = |text: &str| decode(text).err().map(|r| r.request_id);
        assert_eq!(bad("[]"), Some(None));
        assert_eq!(
            bad(r#"{"v":2,"type":"room/leave","requestId":"a","payload":{"roomId":"r"}}"#),
            Some(Some("a".into()))
        );
        assert_eq!(
            bad(r#"{"v":1,"requestId":"b","payload":{}}"#),
            Some(Some("b".into()))
        );
        assert_eq!(
            bad(r#"{"v":1,"type":"room/leave","requestId":"c","payload":[]}"#),
            Some(Some("c".into()))
        );
        assert_eq!(
            bad(r#"{"v":1,"type":"room/leave","requestId":7,"payload":{}}"#),
            Some(None)
        );
        let join = r#"{"v":1,"type":"room/join","requestId":"j","payload":{"roomId":"movie","client":{"userId":"u1","displayName":"Ann"}}}"#;
        let Ok(Request {
            request_id,
            command: Command::Enter { room, alias, .. },
            ..
        }) = decode(join)
        else {
            panic!("a join")
        };
        assert_eq!(request_id.as_deref(), Some("j"));
        assert_eq!(
            (Some(room), alias.as_str()),
            (RoomId::from_name("movie"), "movie")
        );
        let bad_room = join.replace("movie", "bad room");
        assert!(decode(&bad_room).is_err());
    }
}
