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

use tandem::core::types::{Command, DecodeError};
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
