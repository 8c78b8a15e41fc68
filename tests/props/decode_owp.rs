//! `decode_owp`: `owp::decode` on arbitrary text, and the round trip through its client-side
//! inverse `owp::encode_command`.
//!
//! The input is the message text (invalid UTF-8 is skipped: the engine only hands text frames,
//! which tungstenite has validated). Properties:
//! - decoding never panics;
//! - a decoded command re-encodes to text that decodes to the same command, whatever envelope
//!   room is passed (`encode_command` uses its `room` argument only for the variants that do
//!   not carry one, `create_room` and `leave_room`, and `decode` ignores it there);
//! - the re-encoded text is a fixed point: encoding the decoded copy gives the same JSON.
//!
//! "The same" is exact: relayed fields and echoed payloads are raw JSON, compared as text.

use serde_json::{json, Value};
use tandem::core::types::{Command, DecodeError, Json, Relay};
use tandem::owp;

/// A room id in canonical form, for the envelope-room argument.
const ROOM: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

/// Checks every property on one input.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(command) = owp::decode(text) else {
        return;
    };
    // The envelope room and ts are free choices of the client; derive them from the input.
    let room = [None, Some(ROOM), Some("lobby")][data.len() % 3];
    let ts = data.len() as u64 * 7_919;
    let encoded = owp::encode_command(&command, room, ts);
    let decoded = owp::decode(&encoded);
    let Ok(again) = decoded else {
        panic!("re-encoded command does not decode: {decoded:?}\ncommand: {command:?}\ntext: {encoded}")
    };
    assert_eq!(
        again, command,
        "round trip changed the command\ntext: {encoded}"
    );
    let canonical = owp::encode_command(&again, room, ts);
    assert_eq!(canonical, encoded, "not a fixed point");
}

/// The documented contract, byte for byte: `decode(encode_command(decode(text)))` equals
/// `decode(text)`, raw JSON text included. `None` when `text` does not decode.
pub fn strict_round_trip(text: &str) -> Option<(Command, Result<Command, DecodeError>)> {
    let command = owp::decode(text).ok()?;
    let again = owp::decode(&owp::encode_command(&command, None, 0));
    Some((command, again))
}

/// A command as a JSON value, raw fields parsed, for comparison with `close`.
pub fn shape(command: &Command) -> Value {
    match command {
        Command::Identify {
            user_name,
            user_id,
            follows_schedule,
            token,
        } => {
            json!(["auth", user_name, user_id, follows_schedule, token])
        }
        Command::ListRooms => json!(["list_rooms"]),
        Command::CreateRoom {
            name,
            user_name,
            start_position,
            media_id,
        } => {
            json!(["create_room", name, user_name, start_position, media_id])
        }
        Command::JoinRoom { room, user_name } => json!(["join_room", room, user_name]),
        Command::LeaveRoom => json!(["leave_room"]),
        Command::Ready { room } => json!(["ready", room]),
        Command::Control { room, control } => json!([
            "control",
            room,
            format!("{:?}", control.action),
            control.position,
            control.play_state.map(|p| p.as_str()),
            relay(&control.relay)
        ]),
        Command::Report { room, report } => json!([
            "report",
            room,
            report.has_payload,
            report.position_number,
            report.position,
            report.play_state_text,
            relay(&report.relay)
        ]),
        Command::Ping { room, echo } => json!(["ping", room, raw(echo)]),
        Command::Chat { room, text } => json!(["chat", room, text]),
        Command::ClientLog { category, message } => json!(["client_log", category, message]),
    }
}

fn relay(relay: &Relay) -> Value {
    json!([
        raw(&relay.action),
        raw(&relay.position),
        raw(&relay.play_state)
    ])
}

/// A raw value parsed; one that does not parse stays distinguishable (its loss must show).
fn raw(json: &Option<Json>) -> Value {
    match json {
        None => json!({ "absent": true }),
        Some(json) => serde_json::from_str(json.text())
            .unwrap_or_else(|_| json!({ "unparseable": json.text() })),
    }
}

fn contains_unparseable(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(contains_unparseable),
        Value::Object(map) => map.contains_key("unparseable"),
        _ => false,
    }
}

/// JSON equality, with numbers compared as `f64` to within a few ulps.
pub fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}
