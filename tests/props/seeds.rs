//! The seed corpora, as code: fuzz/corpus/<target>/seed-* are these bytes, and
//! tests/fuzz_corpus.rs fails if the files and this list drift apart (set `WRITE_SEEDS=1` to
//! rewrite the files after changing it).

use tandem::rng::Rng;

use super::conn_bytes::STOCK_MESSAGES;
use super::driver::{frame, UPGRADE};

/// Targets with a corpus, in the order `make fuzz` runs them.
pub const TARGETS: [&str; 5] = [
    "upgrade_request",
    "decode_owp",
    "conn_bytes",
    "core_ops",
    "tokens",
];

/// (file name, bytes) of every seed of `target`.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let named = |list: Vec<(&str, Vec<u8>)>| {
        list.into_iter()
            .map(|(name, bytes)| (format!("seed-{name}"), bytes))
            .collect()
    };
    match target {
        "upgrade_request" => named(upgrade_requests()),
        "decode_owp" => named(
            client_messages()
                .into_iter()
                .map(|(name, text)| (name, text.as_bytes().to_vec()))
                .collect(),
        ),
        "conn_bytes" => named(connection_programs()),
        "core_ops" => named(core_programs()),
        "tokens" => named(token_programs()),
        _ => Vec::new(),
    }
}

fn upgrade_requests() -> Vec<(&'static str, Vec<u8>)> {
    let with = |extra: &str| {
        let text =
            String::from_utf8_lossy(UPGRADE).replace("\r\n\r\n", &format!("\r\n{extra}\r\n"));
        text.into_bytes()
    };
    let mut with_frame = UPGRADE.to_vec();
    with_frame.extend(frame(0x81, STOCK_MESSAGES[0].as_bytes(), [1, 2, 3, 4]));
    vec![
        ("upgrade", UPGRADE.to_vec()),
        ("upgrade-then-frame", with_frame),
        ("upgrade-origin", with("Origin: http://localhost:8096\r\n")),
        (
            "upgrade-foreign-origin",
            with("Origin: http://evil.example\r\n"),
        ),
        (
            "upgrade-bare-lf",
            String::from_utf8_lossy(UPGRADE)
                .replace("\r\n", "\n")
                .into_bytes(),
        ),
        (
            "health",
            b"GET /health HTTP/1.1\r\nOrigin: https://localhost:8096\r\n\r\n".to_vec(),
        ),
        (
            "post-ws",
            b"POST /ws/room?x=1 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "plain-get-ws",
            b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "bad-key",
            String::from_utf8_lossy(UPGRADE)
                .replace("dGhlIHNhbXBsZSBub25jZQ==", "short")
                .into_bytes(),
        ),
        (
            "http10",
            String::from_utf8_lossy(UPGRADE)
                .replace("HTTP/1.1", "HTTP/1.0")
                .into_bytes(),
        ),
        ("partial", UPGRADE[..40].to_vec()),
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
    ]
}

/// Messages as the stock OpenWatchParty client and a scheduling client send them.
pub fn client_messages() -> Vec<(&'static str, String)> {
    let room = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let mut list: Vec<(&str, String)> = vec![
        ("list-rooms", STOCK_MESSAGES[0].into()),
        ("auth-scheduled", STOCK_MESSAGES[1].into()),
        ("create-room", STOCK_MESSAGES[2].into()),
        ("player-event", STOCK_MESSAGES[3].into()),
        ("state-update", STOCK_MESSAGES[4].into()),
        ("ping", STOCK_MESSAGES[5].into()),
        ("chat-no-room", STOCK_MESSAGES[6].into()),
        ("leave-room", STOCK_MESSAGES[7].into()),
    ];
    list.extend([
        ("auth-token", r#"{"type":"auth","payload":{"token":"abc","user_name":"Bob","user_id":"u1"}}"#.into()),
        ("join-room", format!(r#"{{"type":"join_room","room":"{room}","payload":{{"user_name":"Cy"}}}}"#)),
        ("ready", format!(r#"{{"type":"ready","room":"{room}","ts":5}}"#)),
        ("pause", format!(r#"{{"type":"player_event","room":"{room}","payload":{{"action":"pause","position":12.25,"play_state":"paused"}}}}"#)),
        ("seek-raw", format!(r#"{{"type":"player_event","room":"{room}","payload":{{"action":"seek","position":1e2}}}}"#)),
        ("state-no-payload", format!(r#"{{"type":"state_update","room":"{room}"}}"#)),
        ("chat", format!(r#"{{"type":"chat_message","room":"{room}","payload":{{"text":"  hi  "}}}}"#)),
        ("client-log", r#"{"type":"client_log","payload":{"category":"SYNC","message":"drift 40ms"}}"#.into()),
        ("ping-room", format!(r#"{{"type":"ping","room":"{room}","payload":{{"client_ts":1700000000000}}}}"#)),
        ("unknown-type", r#"{"type":"nope","payload":{}}"#.into()),
        ("not-object", "[1,2,3]".into()),
    ]);
    list
}

/// conn_bytes programs: see that module's doc for the operation bytes.
fn connection_programs() -> Vec<(&'static str, Vec<u8>)> {
    let mask = [9, 8, 7, 6];
    let text = |message: &str| frame(0x81, message.as_bytes(), mask);
    let mut ping_flood = Vec::new();
    for i in 0..40u8 {
        ping_flood.extend(frame(0x89, &[i; 8], mask));
    }
    let mut oversized = vec![0x81, 0xFF];
    oversized.extend_from_slice(&((64u64 << 10) + 1).to_be_bytes());
    oversized.extend_from_slice(&mask);
    let mut fragments = frame(0x01, b"{\"type\":", mask);
    fragments.extend(frame(0x80, b"\"list_rooms\"}", mask));
    let session: Vec<u8> = [
        STOCK_MESSAGES[1],
        STOCK_MESSAGES[2],
        STOCK_MESSAGES[5],
        STOCK_MESSAGES[6],
    ]
    .iter()
    .flat_map(|m| text(m))
    .collect();
    vec![
        (
            "session",
            program(0x01, &[&session, &frame(0x88, &[3, 232], mask)], &[]),
        ),
        ("ping-flood", program(0x01, &[&ping_flood], &[0xC4])),
        ("oversized", program(0x01, &[&oversized], &[0xC8])),
        ("fragments", program(0x01, &[&fragments], &[])),
        (
            "slow-reader",
            program(0x07, &[&session, &session, &session], &[0xCF, 0xCF, 0xDC]),
        ),
        (
            "half-handshake",
            program(0x00, &[&UPGRADE[..30]], &[0xCF, 0xCF, 0xC1]),
        ),
        (
            "byte-chunks",
            program(0x11, &[&text(STOCK_MESSAGES[0])], &[0xDE, 0x02, 0xDF]),
        ),
    ]
}

/// Encodes `chunks` as chunk operations (at most 64 bytes each), then `tail` operations.
fn program(flags: u8, chunks: &[&[u8]], tail: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    for chunk in chunks {
        for piece in chunk.chunks(64) {
            out.push(piece.len() as u8 - 1);
            out.extend_from_slice(piece);
        }
    }
    out.extend_from_slice(tail);
    out
}

/// core_ops programs: random bytes are valid programs; a few lengths and seeds.
fn core_programs() -> Vec<(&'static str, Vec<u8>)> {
    let random = |seed: u64, len: usize| {
        let mut rng = Rng::new(seed);
        (0..len).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>()
    };
    vec![
        ("random-1", random(1, 256)),
        ("random-2", random(2, 1_024)),
        ("random-3", random(3, 4_096)),
        (
            "opens-and-creates",
            [0u8, 0, 0, 1, 0, 4, 0, 2, 1, 4, 1, 3, 0, 9, 200, 11].to_vec(),
        ),
    ]
}

/// `tokens` programs (see tests/props/tokens.rs for the layout): a valid user token, a valid
/// invite, `alg: none`, HS512, an expired token, a wrong key, a cut token, raw text.
fn token_programs() -> Vec<(&'static str, Vec<u8>)> {
    // now, build, header, exp choice, user, sub, name, aud, iss, exp, iat, nbf, key, mutation,
    // then the signing round trip's serial (2 bytes) and expiry.
    let user = |header: u8, exp: u8, key: u8, mutation: u8| {
        vec![
            0, 1, header, exp, 1, 1, 1, 1, 1, 1, 0, 0, key, mutation, 0, 5, 200,
        ]
    };
    // now, build, header, exp choice, invite, aud, room, serial, serial field, exp, key, ...
    let invite = vec![0, 1, 0, 6, 0, 1, 1, 3, 1, 1, 1, 0, 0, 9, 10];
    let mut raw = vec![0, 0, 11];
    raw.extend_from_slice(b"not.a.token");
    raw.extend_from_slice(&[0, 0, 1, 100]);
    vec![
        ("user-valid", user(0, 6, 0, 0)),
        ("user-alg-none", user(6, 6, 0, 0)),
        ("user-hs512", user(3, 6, 0, 0)),
        ("user-expired", user(0, 0, 0, 0)),
        ("user-within-leeway", user(0, 2, 0, 0)),
        ("user-wrong-key", user(0, 6, 2, 0)),
        ("user-cut", user(0, 6, 0, 4)),
        ("user-oversize", user(0, 6, 0, 5)),
        ("invite-valid", invite),
        ("raw", raw),
    ]
}
