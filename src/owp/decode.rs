//! Client → server: OpenWatchParty JSON to `Command`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::core::room::{valid_content, valid_position};
use crate::core::types::{
    Command, Control, ControlAction, Credential, DecodeError, Json, Pass, PlayState, Relay, Report,
};
use crate::core::Kind;

/// The envelope. Every field is kept raw so that an ill-typed optional field is ignored
/// rather than failing the whole message.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    room: Option<&'a RawValue>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

/// Every payload field any message type reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Fields<'a> {
    #[serde(borrow)]
    action: Option<&'a RawValue>,
    #[serde(borrow)]
    position: Option<&'a RawValue>,
    #[serde(borrow)]
    play_state: Option<&'a RawValue>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    user_name: Option<&'a RawValue>,
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow)]
    token: Option<&'a RawValue>,
    #[serde(borrow)]
    scheduled: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    start_pos: Option<&'a RawValue>,
    #[serde(borrow)]
    media_id: Option<&'a RawValue>,
    #[serde(borrow)]
    category: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    auth_token: Option<&'a RawValue>,
    #[serde(borrow)]
    invite_token: Option<&'a RawValue>,
    #[serde(borrow)]
    options: Option<&'a RawValue>,
    #[serde(borrow)]
    expires_in: Option<&'a RawValue>,
    #[serde(borrow)]
    reported_latency: Option<&'a RawValue>,
    #[serde(borrow)]
    target_position: Option<&'a RawValue>,
    #[serde(borrow)]
    media_url: Option<&'a RawValue>,
    #[serde(borrow)]
    client_id: Option<&'a RawValue>,
}

/// `create_room`'s `options`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Options<'a> {
    #[serde(borrow)]
    private: Option<&'a RawValue>,
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// A JSON string, borrowed from the message when it has no escapes.
fn str_value(raw: Option<&RawValue>) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    let raw = raw?.get();
    match serde_json::from_str::<&str>(raw) {
        Ok(borrowed) => Some(Cow::Borrowed(borrowed)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

fn string(raw: Option<&RawValue>) -> Option<String> {
    serde_json::from_str::<String>(raw?.get()).ok()
}

fn number(raw: Option<&RawValue>) -> Option<f64> {
    let raw = raw?.get();
    // Only JSON numbers: serde_json would not read a string as f64 anyway, but be explicit.
    if raw.starts_with('"') {
        return None;
    }
    serde_json::from_str::<f64>(raw)
        .ok()
        .filter(|n| n.is_finite())
}

fn boolean(raw: Option<&RawValue>) -> Option<bool> {
    serde_json::from_str::<bool>(raw?.get()).ok()
}

fn owned(raw: Option<&RawValue>) -> Option<Json> {
    raw.map(|raw| Json(raw.to_owned()))
}

/// A media id is exactly 32 ASCII hex digits (a dashed GUID is not one, as the original).
fn media_id(raw: Option<&RawValue>) -> Option<String> {
    string(raw).filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Which budget a message is spent from, guessed without parsing it: `client_log` when the
/// text has `"type"`, optional whitespace, `:`, optional whitespace and `"client_log"` (a
/// scan, far cheaper than parsing; a name or chat text `client_log` is not a type). The
/// caller spends a message guessed wrong from the main budget as well once it is decoded.
pub fn kind_hint(text: &str) -> Kind {
    let mut rest = text;
    while let Some(at) = rest.find("\"type\"") {
        rest = rest.get(at.saturating_add(6)..).unwrap_or_default();
        let value = rest.trim_start().strip_prefix(':').map(str::trim_start);
        if value.is_some_and(|v| v.starts_with("\"client_log\"")) {
            return Kind::ClientLog;
        }
    }
    Kind::Other
}

/// Decodes one OpenWatchParty message.
pub fn decode(text: &str) -> Result<Command, DecodeError> {
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::Invalid);
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|_| DecodeError::Invalid)?;
    let kind = str_value(envelope.kind).ok_or(DecodeError::Invalid)?;
    let room = string(envelope.room).filter(|room| !room.is_empty());
    let payload = envelope.payload.filter(|p| is_object(p));
    let fields: Fields<'_> = payload
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let command = match kind.as_ref() {
        "auth" => Command::Identify {
            user_name: string(fields.user_name),
            user_id: string(fields.user_id),
            follows_schedule: boolean(fields.scheduled),
            credential: string(fields.token).map(Credential::Token),
        },
        "list_rooms" => Command::ListRooms,
        "create_room" => Command::CreateRoom {
            name: string(fields.name),
            user_name: string(fields.user_name),
            start_position: number(fields.start_pos)
                .filter(|p| valid_position(*p))
                .unwrap_or(0.0),
            media_id: media_id(fields.media_id),
            content: string(fields.media_url).filter(|c| valid_content(c)),
            private: fields
                .options
                .filter(|o| is_object(o))
                .and_then(|o| serde_json::from_str::<Options<'_>>(o.get()).ok())
                .and_then(|o| boolean(o.private))
                .unwrap_or(false),
            credential: string(fields.auth_token).map(Credential::Token),
        },
        "join_room" => Command::JoinRoom {
            room: room.ok_or(DecodeError::Invalid)?,
            user_name: string(fields.user_name),
            credential: string(fields.auth_token).map(Credential::Token),
            invite: string(fields.invite_token).map(Pass::Token),
        },
        "force_resync" => Command::ForceResync {
            room,
            position: number(fields.target_position)
                .filter(|p| valid_position(*p))
                .ok_or(DecodeError::Invalid)?,
        },
        "resume" => Command::Resume {
            token: string(fields.token).ok_or(DecodeError::Invalid)?,
        },
        "create_invite" => Command::CreateInvite {
            room,
            expires_in: number(fields.expires_in)
                .filter(|s| *s >= 1.0 && *s <= 1e12)
                .map(|s| s as u64),
        },
        "set_media" => Command::SetContent {
            room: room.ok_or(DecodeError::Invalid)?,
            content_id: string(fields.media_url)
                .filter(|c| valid_content(c))
                .ok_or(DecodeError::Invalid)?,
        },
        "transfer_host" => Command::TransferHost {
            room,
            to: string(fields.client_id).ok_or(DecodeError::Invalid)?,
        },
        "claim_host" => Command::ClaimHost { room },
        "leave_room" => Command::LeaveRoom,
        "ready" => Command::Ready { room },
        "player_event" => Command::Control {
            room,
            control: control(&fields)?,
        },
        "state_update" => Command::Report {
            room,
            report: report(&fields, payload.is_some()),
        },
        "ping" => Command::Ping {
            room,
            echo: owned(envelope.payload),
        },
        "chat_message" => Command::Chat {
            room,
            text: string(fields.text).ok_or(DecodeError::Invalid)?,
        },
        "client_log" => Command::ClientLog {
            category: string(fields.category),
            message: string(fields.message),
        },
        _ => return Err(DecodeError::UnknownType),
    };
    Ok(command)
}

/// A host's `player_event` payload: an `action` string is required.
fn control(fields: &Fields<'_>) -> Result<Control, DecodeError> {
    let raw_action = fields
        .action
        .filter(|raw| raw.get().len() <= ACTION_BYTES_MAX + 2);
    let action = string(raw_action).ok_or(DecodeError::Invalid)?;
    Ok(Control {
        action: ControlAction::parse(&action),
        position: number(position_field(fields)).filter(|p| valid_position(*p)),
        play_state: string(fields.play_state)
            .as_deref()
            .and_then(PlayState::parse),
        relay: relay(fields),
    })
}

/// A host's `state_update` payload (every field optional).
fn report(fields: &Fields<'_>, has_payload: bool) -> Report {
    Report {
        has_payload,
        position_number: number(position_field(fields)),
        position: number(position_field(fields)).filter(|p| valid_position(*p)),
        // Only a play state a relay may carry counts: an unknown one is dropped everywhere.
        play_state_text: string(fields.play_state).filter(|s| known_play_state(s)),
        latency_ms: number(fields.reported_latency)
            .filter(|l| (0.0..=60_000.0).contains(l))
            .map(|l| l as u32),
        relay: Relay {
            action: None,
            ..relay(fields)
        },
    }
}

/// `position` if it is a finite JSON number written in at most `POSITION_TEXT_MAX`
/// characters; otherwise it is absent everywhere (clock, filter and relay alike).
fn position_field<'a>(fields: &Fields<'a>) -> Option<&'a RawValue> {
    fields
        .position
        .filter(|raw| raw.get().len() <= POSITION_TEXT_MAX && number(Some(raw)).is_some())
}

/// The play states a relay carries.
fn known_play_state(text: &str) -> bool {
    matches!(text, "playing" | "paused" | "buffering")
}

/// Longest `action` (its JSON text, quotes aside); a longer one makes the message invalid.
pub const ACTION_BYTES_MAX: usize = 32;
/// Longest `position` text relayed (a JSON number written out).
const POSITION_TEXT_MAX: usize = 32;

/// The fields a host's message relays, type-checked: `position` only if it is a finite JSON
/// number, `play_state` only if it is `playing`, `paused` or `buffering`, `action` only as a
/// short string. Anything else is dropped from the relay, never passed on; what the stock
/// client sends always passes, byte for byte.
fn relay(fields: &Fields<'_>) -> Relay {
    let position = position_field(fields);
    let play_state = fields
        .play_state
        .filter(|raw| str_value(Some(raw)).is_some_and(|s| known_play_state(&s)));
    let action = fields
        .action
        .filter(|raw| raw.get().len() <= ACTION_BYTES_MAX + 2 && string(Some(raw)).is_some());
    Relay {
        host_ts: None,
        action: owned(action),
        position: owned(position),
        play_state: owned(play_state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client_log hint reads the type, not a name or a text that says `client_log`.
    #[test]
    fn kind_hint_reads_the_type() {
        for text in [
            r#"{"type":"client_log","payload":{}}"#,
            r#"{ "type" : "client_log" }"#,
            r#"{"payload":{"category":"x"},"type":"client_log"}"#,
        ] {
            assert_eq!(kind_hint(text), Kind::ClientLog, "{text}");
        }
        for text in [
            r#"{"type":"chat_message","payload":{"text":"client_log"}}"#,
            r#"{"type":"auth","payload":{"user_name":"\"client_log\""}}"#,
            r#"{"type":"join_room","room":"client_log"}"#,
            r#"{"typ":"client_log"}"#,
        ] {
            assert_eq!(kind_hint(text), Kind::Other, "{text}");
        }
    }

    /// Only structural problems are errors; ill-typed optional fields are ignored.
    #[test]
    fn tolerant_decoding() {
        assert_eq!(decode("[1]"), Err(DecodeError::Invalid));
        assert_eq!(decode("{\"type\":5}"), Err(DecodeError::Invalid));
        assert_eq!(decode("{}"), Err(DecodeError::Invalid));
        assert_eq!(decode("{\"type\":\"nope\"}"), Err(DecodeError::UnknownType));
        assert_eq!(
            decode("{\"type\":\"list_rooms\",\"ts\":\"x\",\"room\":7}"),
            Ok(Command::ListRooms)
        );
        assert_eq!(
            decode("{\"type\":\"player_event\",\"room\":\"r\",\"payload\":{\"position\":1}}"),
            Err(DecodeError::Invalid)
        );
        assert_eq!(
            decode("{\"type\":\"chat_message\",\"payload\":[\"hi\"]}"),
            Err(DecodeError::Invalid)
        );
        assert_eq!(
            decode("{\"type\":\"join_room\",\"room\":\"\"}"),
            Err(DecodeError::Invalid)
        );
    }

    /// create_room keeps valid fields and silently drops invalid ones, as the original.
    #[test]
    fn create_room_validation() {
        let command = decode(
            "{\"type\":\"create_room\",\"payload\":{\"start_pos\":-4,\"media_id\":\"abc\",\"name\":7,\"media_url\":\"\"}}",
        );
        assert_eq!(
            command,
            Ok(Command::CreateRoom {
                name: None,
                user_name: None,
                start_position: 0.0,
                media_id: None,
                content: None,
                private: false,
                credential: None,
            })
        );
        let id = "0123456789abcdefABCDEF0123456789";
        let text = format!(
            "{{\"type\":\"create_room\",\"payload\":{{\"start_pos\":12.5,\"media_id\":\"{id}\"}}}}"
        );
        match decode(&text) {
            Ok(Command::CreateRoom {
                start_position,
                media_id,
                ..
            }) => {
                assert_eq!(start_position, 12.5);
                assert_eq!(media_id.as_deref(), Some(id));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Relayed fields of the right type are kept byte for byte; others are dropped.
    #[test]
    fn relay_fields_are_checked() {
        let text = "{\"type\":\"player_event\",\"room\":\"r\",\"payload\":{\"action\":\"seek\",\"position\":1e2,\"play_state\":[1]}}";
        let Ok(Command::Control { control, .. }) = decode(text) else {
            panic!()
        };
        assert_eq!(control.position, Some(100.0));
        assert_eq!(control.play_state, None);
        assert_eq!(control.relay.position.as_ref().map(Json::text), Some("1e2"));
        assert_eq!(control.relay.play_state, None);
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let text = format!(
            "{{\"type\":\"state_update\",\"room\":\"r\",\"payload\":{{\"position\":{deep},\"play_state\":\"buffering\"}}}}"
        );
        let Ok(Command::Report { report, .. }) = decode(&text) else {
            panic!()
        };
        assert_eq!(report.relay.position, None);
        assert_eq!(
            report.relay.play_state.as_ref().map(Json::text),
            Some("\"buffering\"")
        );
        for position in ["\"5\"", "-1", "1e400", "null", "{}"] {
            let text = format!(
                "{{\"type\":\"player_event\",\"payload\":{{\"action\":\"play\",\"position\":{position}}}}}"
            );
            let Ok(Command::Control { control, .. }) = decode(&text) else {
                panic!("{text}")
            };
            let kept = control.relay.position.as_ref().map(Json::text);
            assert_eq!(kept.is_some(), position == "-1", "{position}");
        }
        let long = format!(
            "{{\"type\":\"player_event\",\"payload\":{{\"action\":\"{}\"}}}}",
            "x".repeat(33)
        );
        assert_eq!(decode(&long), Err(DecodeError::Invalid));
    }
}
