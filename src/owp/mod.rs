//! The OpenWatchParty dialect: a codec at the edge of the core.
//!
//! `decode` turns one text message into a dialect-free `Command` (tolerantly, as the original
//! does: only a non-object envelope, a missing or ill-typed `type`, or a missing required
//! field is an error). `encode` renders a core `Event` in OpenWatchParty's JSON shapes.
//! `encode_command` is the client side of `decode`, used by tests, the simulation and the
//! fuzzers (a decoded message re-encodes to text that decodes to the same command).

mod decode;
mod encode;

pub use decode::{decode, kind_hint};
pub use encode::{
    encode, encode_command, encode_invite, encode_pong, encode_room_list, error_message,
};
