//! OpenWatchParty messages and errors over real sockets: shapes, rooms, membership, limits.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

/// A media id as the stock client sends it (32 hex digits).
const MEDIA: &str = "0123456789abcdef0123456789ABCDEF";
/// A well-formed room id that no room has.
const NO_ROOM: &str = "00000000-0000-4000-8000-000000000000";

/// A host in a fresh room and a guest who joined it; the host's participants_update is read.
fn host_and_guest(addr: SocketAddr) -> (Client, Client, String) {
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({"user_name": "Host"}));
    let mut guest = Client::connect(addr);
    guest.join_as(&room, "Guest");
    assert_eq!(
        host.recv_type("participants_update")["payload"]["participant_count"],
        2
    );
    (host, guest, room)
}

/// The entry for `room` in a room_list message.
/// The original's room rules (`ROOM_CLOSE_ON_HOST_LEAVE=true`, no seat grace), for the tests
/// of closing: tests/survive.rs has Tandem's default rules (handover, grace).
fn classic() -> tandem::config::Config {
    let mut config = config();
    config.core.room_close_on_host_leave = true;
    config.core.resume_grace_ms = 0;
    config
}

fn entry<'a>(list: &'a Value, room: &str) -> Option<&'a Value> {
    list["payload"]
        .as_array()
        .expect("payload array")
        .iter()
        .find(|e| e["id"] == room)
}

// ----- connect, auth, lists -----

/// Connecting yields client_hello (client == payload.client_id, a lower-case UUID v4), then a room_list array.
#[test]
fn hello_then_room_list() {
    let addr = start(config());
    let mut client = Client::connect_raw(addr, "/ws", &[]);
    let hello = client.recv();
    assert_eq!(hello["type"], "client_hello", "{hello}");
    let id = hello["payload"]["client_id"]
        .as_str()
        .expect("client_id string");
    assert_uuid_v4(id);
    assert_eq!(hello["client"], id, "{hello}");
    assert!(hello.get("room").is_none(), "{hello}");
    assert!(
        hello["ts"].is_u64() && hello["server_ts"].is_u64(),
        "{hello}"
    );
    let list = client.recv();
    assert_eq!(list["type"], "room_list", "{list}");
    assert_eq!(list["payload"], json!([]), "{list}");
    let other = Client::connect(addr);
    assert_ne!(other.id, id, "every connection gets its own id");
}

/// `auth` {user_name, user_id} is not answered; the name shows in chat and in the default room name.
#[test]
fn auth_name_is_used_later() {
    let addr = start(config());
    let mut alice = Client::connect(addr);
    alice.send(
        json!({"type": "auth", "payload": {"user_name": "  Alice\u{202E} ", "user_id": "u-1"}}),
    );
    alice.expect_quiet();
    alice.send(json!({"type": "create_room", "room": "", "payload": {}}));
    let state = alice.recv_type("room_state");
    assert_eq!(state["payload"]["name"], "Room de Alice", "{state}");
    let room = state["room"].as_str().unwrap().to_string();
    alice.send(json!({"type": "chat_message", "room": room, "payload": {"text": "hi"}}));
    let chat = alice.recv();
    assert_eq!(chat["type"], "chat_message", "{chat}");
    assert_eq!(chat["payload"]["username"], "Alice", "{chat}");
}

/// `auth` with a token (auth disabled) is answered with auth_success carrying the connection's display name.
#[test]
fn auth_token_gets_auth_success() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    client.send(json!({"type": "auth", "payload": {"token": "any.jwt.here"}}));
    let reply = client.recv();
    assert_eq!(reply["type"], "auth_success", "{reply}");
    assert_eq!(reply["client"], client.id.as_str(), "{reply}");
    assert_eq!(reply["payload"]["user_name"], "Anonymous", "{reply}");
    client.send(json!({"type": "auth", "payload": {"user_name": "Alice"}}));
    client.send(json!({"type": "auth", "payload": {"token": "t"}}));
    let reply = client.recv();
    assert_eq!(reply["type"], "auth_success", "{reply}");
    assert_eq!(reply["payload"]["user_name"], "Alice", "{reply}");
    client.expect_quiet();
}

/// `list_rooms` answers a room_list whose entries are {id, name, count (integer), media_id (32 hex or null)}.
#[test]
fn list_rooms_entries() {
    let addr = start(config());
    let mut a = Client::connect(addr);
    let with_media = a.create_room(json!({"name": "Film", "media_id": MEDIA}));
    let mut b = Client::connect(addr);
    let without = b.create_room(json!({"user_name": "Bob"}));
    let mut c = Client::connect(addr);
    c.send(json!({"type": "list_rooms"}));
    let list = c.recv_type("room_list");
    assert_eq!(list["payload"].as_array().map(Vec::len), Some(2), "{list}");
    let first = entry(&list, &with_media).expect("first room listed");
    assert_eq!(
        first,
        &json!({"id": with_media, "name": "Film", "count": 1, "media_id": MEDIA})
    );
    assert!(first["count"].is_u64());
    let second = entry(&list, &without).expect("second room listed");
    assert_eq!(
        second,
        &json!({"id": without, "name": "Room de Bob", "count": 1, "media_id": null})
    );
    for e in list["payload"].as_array().unwrap() {
        assert_uuid_v4(e["id"].as_str().unwrap());
    }
}

// ----- create_room -----

/// `create_room` answers room_state {room, client, payload {name, host_id, state, participant_count: 1, media_id}}.
#[test]
fn create_room_state_shape() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    host.send(json!({"type": "create_room", "room": "", "payload": {
        "name": "Movie night", "user_name": "Host", "start_pos": 42.5, "media_id": MEDIA}}));
    let state = host.recv();
    assert_eq!(state["type"], "room_state", "{state}");
    assert_uuid_v4(state["room"].as_str().expect("room id"));
    assert_eq!(state["client"], host.id.as_str());
    let payload = &state["payload"];
    assert_eq!(payload["name"], "Movie night");
    assert_eq!(payload["host_id"], host.id.as_str());
    assert_eq!(
        payload["state"],
        json!({"position": 42.5, "play_state": "paused"})
    );
    assert_eq!(payload["participant_count"], 1);
    assert!(payload["participant_count"].is_u64());
    assert_eq!(payload["media_id"], MEDIA);
    assert!(state["server_ts"].is_u64(), "{state}");
}

/// The room name is trimmed, loses control and bidi/zero-width characters, and is cut to 100 characters.
#[test]
fn create_room_name_is_sanitized() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    let long = "é".repeat(150);
    let cases = [
        (
            "  \u{202E}Evil\u{200B} Room\u{7}\u{FEFF}  ",
            "Evil Room".to_string(),
        ),
        ("\t\n\u{200F}  ", "Room de Anonymous".to_string()),
        (long.as_str(), "é".repeat(100)),
    ];
    for (name, expected) in cases {
        host.send(json!({"type": "create_room", "room": "", "payload": {"name": name}}));
        let state = host.recv_type("room_state");
        assert_eq!(state["payload"]["name"], expected.as_str(), "{state}");
    }
}

/// An invalid media_id (dashed GUID, short, non-hex) becomes null; an invalid start_pos becomes 0.
#[test]
fn create_room_invalid_fields_are_defaulted() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    for media in [
        json!("01234567-89ab-cdef-0123-456789abcdef"),
        json!("abc"),
        json!("g".repeat(32)),
        json!(7),
    ] {
        host.send(json!({"type": "create_room", "room": "", "payload": {"media_id": media}}));
        let state = host.recv_type("room_state");
        assert_eq!(
            state["payload"]["media_id"],
            Value::Null,
            "{media}: {state}"
        );
    }
    for start_pos in [
        json!(-1),
        json!(86_400.5),
        json!("12"),
        json!(null),
        json!(true),
    ] {
        host.send(json!({"type": "create_room", "room": "", "payload": {"start_pos": start_pos}}));
        let state = host.recv_type("room_state");
        assert_eq!(
            num(&state["payload"]["state"]["position"]),
            0.0,
            "{start_pos}: {state}"
        );
    }
    host.send(json!({"type": "create_room", "room": "", "payload": {"start_pos": 86_400}}));
    let state = host.recv_type("room_state");
    assert_eq!(
        num(&state["payload"]["state"]["position"]),
        86_400.0,
        "{state}"
    );
}

/// Lobby connections get a fresh room_list after create, join and leave, pushes spaced by the interval.
#[test]
fn lobby_gets_room_list_pushes() {
    let mut config = config();
    config.core.room_list_interval_ms = 150;
    let addr = start(config);
    let mut lobby = Client::connect(addr);
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({"name": "R"}));
    let list = lobby.recv_type("room_list");
    let first_at = now_ms();
    assert_eq!(entry(&list, &room).expect("listed")["count"], 1, "{list}");
    let mut guest = Client::connect(addr);
    guest.join(&room);
    let list = lobby.recv_type("room_list");
    let second_at = now_ms();
    assert_eq!(entry(&list, &room).expect("listed")["count"], 2, "{list}");
    assert!(
        second_at - first_at >= 100,
        "pushes closer than the interval"
    );
    guest.send(json!({"type": "leave_room", "payload": {}}));
    assert_eq!(
        guest.recv()["type"],
        "room_list",
        "the leaver gets the list at once"
    );
    let list = lobby.recv_type("room_list");
    assert_eq!(entry(&list, &room).expect("listed")["count"], 1, "{list}");
    host.send(json!({"type": "leave_room", "payload": {}}));
    let list = lobby.recv_type("room_list");
    assert_eq!(list["payload"], json!([]), "{list}");
}

// ----- join_room -----

/// The joiner gets room_state with participant_count 2; the host gets participants_update.
#[test]
fn join_room_state_and_participants_update() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({"name": "R", "media_id": MEDIA}));
    let mut guest = Client::connect(addr);
    let state = guest.join_as(&room, "Guest");
    assert_eq!(state["room"], room.as_str());
    assert_eq!(state["client"], guest.id.as_str());
    let payload = &state["payload"];
    assert_eq!(payload["name"], "R");
    assert_eq!(payload["host_id"], host.id.as_str());
    assert_eq!(payload["participant_count"], 2);
    assert_eq!(payload["media_id"], MEDIA);
    assert_eq!(payload["state"]["play_state"], "paused");
    let update = host.recv();
    assert_eq!(update["type"], "participants_update", "{update}");
    assert_eq!(update["room"], room.as_str());
    assert_eq!(update["payload"]["participant_count"], 2);
    // Seed 003's presence: every member, the host first.
    let participants = update["payload"]["participants"]
        .as_array()
        .expect("participants");
    assert_eq!(participants.len(), 2);
    assert_eq!(participants[0]["client_id"], host.id.as_str());
    assert_eq!(participants[0]["is_host"], true);
    assert_eq!(participants[1]["client_id"], guest.id.as_str());
    assert_eq!(participants[1]["name"], "Guest");
    assert_eq!(participants[1]["away"], false);
    assert_eq!(
        state["payload"]["participants"],
        update["payload"]["participants"]
    );
    // And a client_joined with the name, right after.
    host.see_joins = true;
    let joined = host.recv();
    assert_eq!(joined["type"], "client_joined", "{joined}");
    assert_eq!(joined["payload"], json!({"name": "Guest"}));
    guest.expect_quiet();
}

/// Joining an unknown room: error room_not_found, then room_closed for that name, the latter once.
#[test]
fn join_unknown_room() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    for name in [NO_ROOM, "not-a-uuid"] {
        client.send(json!({"type": "join_room", "room": name, "payload": {}}));
        let error = client.recv();
        assert_error(&error, "Room not found", "room_not_found");
        assert_eq!(error["client"], client.id.as_str());
        let closed = client.recv();
        assert_eq!(closed["type"], "room_closed", "{closed}");
        assert_eq!(closed["room"], name);
        assert_eq!(closed["payload"]["reason"], "Room not found");
        client.send(json!({"type": "join_room", "room": name, "payload": {}}));
        assert_error(&client.recv(), "Room not found", "room_not_found");
        client.expect_quiet();
    }
}

/// At ROOM_MEMBERS_MAX a join gets error room_full (envelope room set) and room_closed once.
#[test]
fn join_full_room() {
    let mut config = config();
    config.core.room_members_max = 3;
    let addr = start(config);
    let (mut host, _g1, room) = host_and_guest(addr);
    let mut g2 = Client::connect(addr);
    assert_eq!(g2.join(&room)["payload"]["participant_count"], 3);
    let mut late = Client::connect(addr);
    late.send(json!({"type": "join_room", "room": room, "payload": {}}));
    let error = late.recv();
    assert_error(&error, "Room is full", "room_full");
    assert_eq!(error["room"], room.as_str());
    let closed = late.recv();
    assert_eq!(closed["type"], "room_closed", "{closed}");
    assert_eq!(closed["room"], room.as_str());
    assert_eq!(closed["payload"]["reason"], "Room is full");
    late.send(json!({"type": "join_room", "room": room, "payload": {}}));
    assert_error(&late.recv(), "Room is full", "room_full");
    late.expect_quiet();
    assert_eq!(host.recv()["type"], "participants_update");
    host.expect_quiet();
}

/// A guest joining another room leaves its room first: the old host gets client_left.
#[test]
fn join_other_room_leaves_first() {
    let addr = start(config());
    let (mut a, mut guest, room_a) = host_and_guest(addr);
    let mut c = Client::connect(addr);
    let room_c = c.create_room(json!({}));
    let state = guest.join(&room_c);
    assert_eq!(state["room"], room_c.as_str());
    assert_eq!(state["payload"]["participant_count"], 2);
    let left = a.recv();
    assert_eq!(left["type"], "client_left", "{left}");
    assert_eq!(left["room"], room_a.as_str());
    assert_eq!(left["client"], guest.id.as_str());
    assert_eq!(left["payload"]["participant_count"], 1);
    assert_eq!(c.recv()["payload"]["participant_count"], 2);
    // The room it left still exists: a message naming it is refused, never answered with a
    // lost-room notice (which would end the party for a stock client for good), and it does
    // not bring the guest back either (it is in another room).
    guest.send(json!({"type": "chat_message", "room": room_a, "payload": {"text": "x"}}));
    guest.expect_quiet();
    a.expect_quiet();
}

/// A member's create_room leaves its room first: the host gets client_left.
#[test]
fn member_create_room_leaves_first() {
    let addr = start(config());
    let (mut host, mut guest, room) = host_and_guest(addr);
    let state = {
        guest.send(json!({"type": "create_room", "room": "", "payload": {}}));
        guest.recv_type("room_state")
    };
    assert_ne!(state["room"], room.as_str());
    assert_eq!(state["payload"]["host_id"], guest.id.as_str());
    let left = host.recv();
    assert_eq!(left["type"], "client_left", "{left}");
    assert_eq!(left["client"], guest.id.as_str());
    assert_eq!(left["payload"]["participant_count"], 1);
    host.expect_quiet();
}

/// Re-joining the room you are in gives a fresh room_state and tells nobody.
#[test]
fn rejoin_same_room() {
    let addr = start(config());
    let (mut host, mut guest, room) = host_and_guest(addr);
    let state = guest.join(&room);
    assert_eq!(state["room"], room.as_str());
    assert_eq!(state["payload"]["participant_count"], 2);
    guest.expect_quiet();
    host.expect_quiet();
}

// ----- closing and leaving -----

/// A host's second create_room closes its room for everyone incl. itself, then its new room_state.
#[test]
fn host_second_create_room_closes_first() {
    let addr = start(classic());
    let (mut host, mut guest, room) = host_and_guest(addr);
    host.send(json!({"type": "create_room", "room": "", "payload": {}}));
    let closed = host.recv();
    assert_eq!(closed["type"], "room_closed", "{closed}");
    assert_eq!(closed["room"], room.as_str());
    assert_eq!(closed["payload"]["reason"], "Host started a new room");
    let state = host.recv_type("room_state");
    assert_ne!(state["room"], room.as_str());
    assert_eq!(state["payload"]["participant_count"], 1);
    let closed = guest.recv();
    assert_eq!(closed["type"], "room_closed", "{closed}");
    assert_eq!(closed["room"], room.as_str());
    assert_eq!(closed["payload"]["reason"], "Host started a new room");
    assert_eq!(guest.recv()["type"], "room_list");
}

/// Host leave_room: guests get room_closed "Host left the room" then a room_list; the host only a room_list.
#[test]
fn host_leave_closes_room() {
    let addr = start(classic());
    let (mut host, mut guest, room) = host_and_guest(addr);
    host.send(json!({"type": "leave_room", "room": room, "payload": {}}));
    let closed = guest.recv();
    assert_eq!(closed["type"], "room_closed", "{closed}");
    assert_eq!(closed["room"], room.as_str());
    assert_eq!(closed["payload"]["reason"], "Host left the room");
    let list = guest.recv();
    assert_eq!(list["type"], "room_list", "{list}");
    assert_eq!(list["payload"], json!([]));
    assert_eq!(host.recv()["type"], "room_list");
    host.expect_quiet();
}

/// Host disconnect: guests get room_closed "Host left the room" then a room_list.
#[test]
fn host_disconnect_closes_room() {
    let addr = start(classic());
    let (host, mut guest, room) = host_and_guest(addr);
    drop(host);
    let closed = guest.recv();
    assert_eq!(closed["type"], "room_closed", "{closed}");
    assert_eq!(closed["room"], room.as_str());
    assert_eq!(closed["payload"]["reason"], "Host left the room");
    assert_eq!(guest.recv()["type"], "room_list");
}

/// Guest leave_room (or disconnect): the host gets client_left {client: guest, participant_count}.
#[test]
fn guest_leave_tells_host() {
    let addr = start(classic());
    let (mut host, mut guest, room) = host_and_guest(addr);
    guest.send(json!({"type": "leave_room", "room": room, "payload": {}}));
    assert_eq!(guest.recv()["type"], "room_list");
    let left = host.recv();
    assert_eq!(left["type"], "client_left", "{left}");
    assert_eq!(left["room"], room.as_str());
    assert_eq!(left["client"], guest.id.as_str());
    assert_eq!(left["payload"]["participant_count"], 1);
    let mut other = Client::connect(addr);
    other.join(&room);
    assert_eq!(host.recv()["type"], "participants_update");
    drop(other);
    let left = host.recv();
    assert_eq!(left["type"], "client_left", "{left}");
    assert_eq!(left["payload"]["participant_count"], 1);
}

/// Naming a room that does not exist (ping/ready/player_event/state_update/chat) gets
/// room_closed once per name; naming one that exists, from the lobby, lets the client back in
/// as a member (a stock client after a reconnect), never with room_closed.
#[test]
fn lost_room_notice_once() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    let existing = host.create_room(json!({}));
    let messages = |room: &str| {
        vec![
            json!({"type": "ping", "room": room, "payload": {"client_ts": 1}}),
            json!({"type": "ready", "room": room, "payload": {}}),
            json!({"type": "player_event", "room": room, "payload": {"action": "pause", "position": 1}}),
            json!({"type": "state_update", "room": room, "payload": {"position": 1, "play_state": "paused"}}),
            json!({"type": "chat_message", "room": room, "payload": {"text": "hi"}}),
        ]
    };
    for message in messages(&existing) {
        let mut client = Client::connect(addr);
        client.send(message.clone());
        let seen = client.drain();
        assert!(
            seen.iter().all(|m| m["type"] != "room_closed"),
            "{message}: {seen:?}"
        );
        let state = seen.iter().find(|m| m["type"] == "room_state");
        let state = state.unwrap_or_else(|| panic!("{message}: not re-admitted: {seen:?}"));
        assert_eq!(state["room"], existing.as_str());
        assert_ne!(
            state["payload"]["host_id"],
            client.id.as_str(),
            "never as host"
        );
        assert_eq!(
            host.recv_type("participants_update")["room"],
            existing.as_str()
        );
        drop(client);
    }
    for (room, reason) in [(NO_ROOM, "Room not found")] {
        for message in messages(room) {
            let mut client = Client::connect(addr);
            client.send(message.clone());
            let seen = client.drain();
            let closed: Vec<&Value> = seen.iter().filter(|m| m["type"] == "room_closed").collect();
            assert_eq!(closed.len(), 1, "{message}: {seen:?}");
            assert_eq!(closed[0]["room"], room);
            assert_eq!(closed[0]["payload"], json!({"reason": reason}));
            assert!(
                seen.iter().all(|m| m["type"] != "error"),
                "{message}: {seen:?}"
            );
            for again in messages(room) {
                client.send(again.clone());
                let seen = client.drain();
                assert!(
                    seen.iter().all(|m| m["type"] == "pong"),
                    "{again}: {seen:?}"
                );
            }
        }
    }
}

/// The lost-room notice is once per room name even when two stale names alternate.
#[test]

fn lost_room_notice_once_per_name_interleaved() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    let other = "00000000-0000-4000-8000-000000000001";
    for room in [NO_ROOM, other] {
        client.send(json!({"type": "ready", "room": room}));
        let closed = client.recv();
        assert_eq!(closed["type"], "room_closed", "{closed}");
        assert_eq!(closed["room"], room);
    }
    for room in [NO_ROOM, other, NO_ROOM] {
        client.send(json!({"type": "ready", "room": room}));
        client.expect_quiet();
    }
}

/// A member told its room closed is not told again when a message in flight still names it.
#[test]

fn no_second_notice_after_room_closed() {
    let addr = start(classic());
    let (host, mut guest, room) = host_and_guest(addr);
    drop(host);
    assert_eq!(guest.recv()["type"], "room_closed");
    assert_eq!(guest.recv()["type"], "room_list");
    guest.send(json!({"type": "ping", "room": room, "payload": {"client_ts": 1}}));
    assert_eq!(guest.recv()["type"], "pong");
    guest.expect_quiet();
}

/// At ROOMS_MAX rooms, create_room gets error rooms_limit.
#[test]
fn rooms_limit() {
    let mut config = config();
    config.core.rooms_max = 1;
    let addr = start(config);
    let mut a = Client::connect(addr);
    a.create_room(json!({}));
    let mut b = Client::connect(addr);
    b.send(json!({"type": "create_room", "room": "", "payload": {}}));
    assert_error(&b.recv(), "Too many rooms", "rooms_limit");
    b.expect_quiet();
    a.send(json!({"type": "create_room", "room": "", "payload": {}}));
    assert_eq!(
        a.recv_type("room_state")["payload"]["participant_count"],
        1,
        "a host may replace its room"
    );
}

// ----- ping, chat, client_log -----

/// `pong` echoes the payload verbatim and the room if given, with server_rx_ts <= server_ts <= server_tx_ts.
#[test]
fn ping_pong_echo() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    let payload = r#"{"client_ts":1.50,"nested":{"a":[1,2,{"b":null}]},"s":"\u00e9"}"#;
    let before = now_ms();
    client.send_text(&format!(r#"{{"type":"ping","payload":{payload},"ts":1}}"#));
    let text = client.recv_text();
    let after = now_ms();
    assert!(text.contains(&format!(r#""payload":{payload}"#)), "{text}");
    let pong: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["client"], client.id.as_str());
    assert!(pong.get("room").is_none(), "{pong}");
    let (rx, mid, tx) = (
        &pong["server_rx_ts"],
        &pong["server_ts"],
        &pong["server_tx_ts"],
    );
    assert!(rx.is_u64() && mid.is_u64() && tx.is_u64(), "{pong}");
    let (rx, mid, tx) = (
        rx.as_u64().unwrap(),
        mid.as_u64().unwrap(),
        tx.as_u64().unwrap(),
    );
    assert!(rx <= mid && mid <= tx, "{pong}");
    assert!(
        before.saturating_sub(1_000) <= rx && tx <= after + 1_000,
        "{pong}"
    );

    let room = client.create_room(json!({}));
    client.send(
        json!({"type": "ping", "room": room, "client": client.id, "payload": {"client_ts": 7}}),
    );
    let pong = client.recv();
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(pong["room"], room.as_str());
    assert_eq!(pong["payload"], json!({"client_ts": 7}));
    client.expect_quiet();
}

/// `chat_message` goes to every member incl. the sender: {client, payload {username, text (trimmed)}, server_ts}.
#[test]
fn chat_reaches_all_members() {
    let addr = start(config());
    let (mut host, mut guest, room) = host_and_guest(addr);
    let before = now_ms();
    let guest_id = guest.id.clone();
    guest.send(json!({"type": "chat_message", "room": room, "payload": {"text": "  hi there \n"}}));
    for client in [&mut guest, &mut host] {
        let chat = client.recv();
        assert_eq!(chat["type"], "chat_message", "{chat}");
        assert_eq!(chat["room"], room.as_str());
        assert_eq!(chat["client"], guest_id.as_str());
        assert_eq!(
            chat["payload"],
            json!({"username": "Guest", "text": "hi there"})
        );
        let server_ts = chat["server_ts"].as_u64().expect("server_ts");
        assert!(
            server_ts + 1_000 >= before && server_ts <= now_ms() + 1_000,
            "{chat}"
        );
    }
    let long_ok = "é".repeat(500);
    guest.send(json!({"type": "chat_message", "room": room, "payload": {"text": long_ok}}));
    assert_eq!(host.recv()["payload"]["text"], long_ok.as_str());
    assert_eq!(guest.recv()["payload"]["text"], long_ok.as_str());
}

/// Chat errors: no room → room_required; empty/whitespace → chat_empty; 501 characters → chat_too_long.
#[test]
fn chat_errors() {
    let addr = start(config());
    let (mut host, mut guest, room) = host_and_guest(addr);
    let cases = [
        (
            json!({"type": "chat_message", "payload": {"text": "hi"}}),
            "Room ID required for chat",
            "room_required",
        ),
        (
            json!({"type": "chat_message", "room": "", "payload": {"text": "hi"}}),
            "Room ID required for chat",
            "room_required",
        ),
        (
            json!({"type": "chat_message", "room": room, "payload": {"text": ""}}),
            "Chat message cannot be empty",
            "chat_empty",
        ),
        (
            json!({"type": "chat_message", "room": room, "payload": {"text": " \t\n "}}),
            "Chat message cannot be empty",
            "chat_empty",
        ),
        (
            json!({"type": "chat_message", "room": room, "payload": {"text": "é".repeat(501)}}),
            "Chat message too long (max 500 characters)",
            "chat_too_long",
        ),
        (
            json!({"type": "chat_message", "room": room, "payload": {"text": "a".repeat(501)}}),
            "Chat message too long (max 500 characters)",
            "chat_too_long",
        ),
    ];
    for (message, text, code) in cases {
        guest.send(message);
        let error = guest.recv();
        assert_error(&error, text, code);
        assert_eq!(error["client"], guest.id.as_str());
        assert!(error.get("room").is_none(), "{error}");
    }
    guest.expect_quiet();
    host.expect_quiet();
}

/// `client_log` is never answered; 100 at once do not starve a following ping (own budget, dropped silently).
#[test]
fn client_log_has_its_own_budget() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    client.send(json!({"type": "client_log", "payload": {"category": "SYNC", "message": "x"}}));
    client.expect_quiet();
    for i in 0..100 {
        client.send(json!({"type": "client_log", "payload": {"category": "CLOCK", "message": format!("line {i}")}}));
    }
    client.expect_quiet();
    for _ in 0..5 {
        client.expect_quiet();
    }
}

// ----- malformed input and refusals -----

/// Malformed messages get error invalid_message / unknown_type; a binary frame gets unsupported_data.
#[test]
fn malformed_messages_are_errors() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    let invalid = "Invalid message format";
    let cases: [(&str, &str, &str); 9] = [
        ("not json", invalid, "invalid_message"),
        ("[1,2]", invalid, "invalid_message"),
        ("\"ping\"", invalid, "invalid_message"),
        ("{}", invalid, "invalid_message"),
        (r#"{"type":5}"#, invalid, "invalid_message"),
        (r#"{"type":"ping""#, invalid, "invalid_message"),
        (
            r#"{"type":"bogus","payload":{}}"#,
            "Unknown message type",
            "unknown_type",
        ),
        (
            r#"{"type":"player_event","room":"r","payload":{"position":1}}"#,
            invalid,
            "invalid_message",
        ),
        (
            r#"{"type":"chat_message","room":"r","payload":{}}"#,
            invalid,
            "invalid_message",
        ),
    ];
    for (text, message, code) in cases {
        client.send_text(text);
        let error = client.recv();
        assert_error(&error, message, code);
        assert_eq!(error["client"], client.id.as_str(), "{text}");
        assert!(error.get("room").is_none(), "{text}: {error}");
    }
    client.ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    assert_error(
        &client.recv(),
        "Binary messages are not supported",
        "unsupported_data",
    );
    client.expect_quiet();
}

/// Every message shape the stock client sends (reference §7.3) is accepted without an error.
#[test]
fn stock_client_shapes_are_tolerated() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    let mut guest = Client::connect(addr);
    let (h, g) = (host.id.clone(), guest.id.clone());
    let mut seen = Vec::new();
    let ts = now_ms();
    host.send(
        json!({"type": "auth", "payload": {"user_name": "Host", "user_id": "abc123"}, "ts": ts}),
    );
    host.send(json!({"type": "ping", "payload": {"client_ts": ts}, "ts": ts}));
    host.send(json!({"type": "create_room", "room": "", "client": h,
        "payload": {"start_pos": 12.34, "media_id": MEDIA, "user_name": "Host"}}));
    seen.extend(host.drain());
    let state = seen
        .iter()
        .find(|m| m["type"] == "room_state")
        .expect("room_state");
    let room = state["room"].as_str().unwrap().to_string();
    host.send(
        json!({"type": "ping", "room": room, "client": h, "payload": {"client_ts": now_ms()}}),
    );
    seen.extend(host.drain());

    guest.send(json!({"type": "auth", "payload": {"user_name": "Guest"}}));
    guest.send(json!({"type": "ping", "payload": {"client_ts": now_ms()}}));
    guest
        .send(json!({"type": "ping", "room": "", "client": g, "payload": {"client_ts": now_ms()}}));
    guest.send(
        json!({"type": "join_room", "room": room, "client": g, "payload": {"user_name": "Guest"}}),
    );
    guest.send(json!({"type": "ready", "room": room, "client": g, "payload": {"room": room, "media_id": MEDIA}}));
    seen.extend(guest.drain());

    let host_sends = [
        json!({"type": "player_event", "room": room, "client": h, "payload": {"action": "play", "position": 12.5, "play_state": "playing"}}),
        json!({"type": "state_update", "room": room, "client": h, "payload": {"position": 12.5, "play_state": "playing"}}),
        json!({"type": "player_event", "room": room, "client": h, "payload": {"action": "pause", "position": 14.0, "play_state": "paused"}}),
        json!({"type": "state_update", "room": room, "client": h, "payload": {"position": 14.0, "play_state": "paused"}}),
        json!({"type": "player_event", "room": room, "client": h, "payload": {"action": "seek", "position": 60.0, "play_state": "paused"}}),
        json!({"type": "state_update", "room": room, "client": h, "payload": {"position": 60.0, "play_state": "paused"}}),
        json!({"type": "player_event", "room": room, "client": h, "payload": {"action": "buffering", "position": 60.1}}),
        json!({"type": "player_event", "room": room, "client": h, "payload": {"action": "play", "position": 60.1}}),
        json!({"type": "state_update", "room": room, "client": h, "payload": {"position": 61.2, "play_state": "playing"}}),
        json!({"type": "chat_message", "room": room, "client": h, "payload": {"text": "hello"}}),
        json!({"type": "client_log", "payload": {"category": "HOST", "message": "sent play"}, "ts": now_ms()}),
        json!({"type": "ping", "room": room, "client": h, "payload": {"client_ts": now_ms()}}),
    ];
    for message in host_sends {
        host.send(message);
    }
    seen.extend(host.drain());
    guest.send(
        json!({"type": "chat_message", "room": room, "client": g, "payload": {"text": "hi"}}),
    );
    guest.send(json!({"type": "client_log", "payload": {"category": "CLIENT", "message": "x"}}));
    guest.send(
        json!({"type": "ping", "room": room, "client": g, "payload": {"client_ts": now_ms()}}),
    );
    guest.send(json!({"type": "leave_room", "room": room, "client": g, "payload": {}}));
    seen.extend(guest.drain());
    host.send(json!({"type": "leave_room", "room": room, "client": h, "payload": {}}));
    seen.extend(host.drain());
    let errors: Vec<&Value> = seen
        .iter()
        .filter(|m| m["type"] == "error" || m["type"] == "room_closed")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let relays = seen.iter().filter(|m| m["type"] == "player_event").count();
    assert_eq!(relays, 5, "the guest saw every command: {seen:?}");
}

/// A non-host player_event or state_update gets error not_host and is relayed to nobody.
#[test]
fn non_host_commands_are_refused() {
    let addr = start(config());
    let (mut host, mut guest, room) = host_and_guest(addr);
    let mut other = Client::connect(addr);
    other.join(&room);
    assert_eq!(host.recv()["type"], "participants_update");
    assert_eq!(guest.recv()["type"], "participants_update");
    let commands = [
        json!({"type": "player_event", "room": room, "payload": {"action": "play", "position": 3, "play_state": "playing"}}),
        json!({"type": "state_update", "room": room, "payload": {"position": 30, "play_state": "playing"}}),
    ];
    for command in commands {
        guest.send(command);
        let error = guest.recv();
        assert_error(&error, "Only the host can control playback", "not_host");
        assert_eq!(error["room"], room.as_str());
    }
    guest.expect_quiet();
    host.expect_quiet();
    other.expect_quiet();
}

/// Over 30 messages in a second: 30 answered, the 31st dropped with exactly one rate_limited
/// error, and the sender not read for the rest of that window; what it sent meanwhile is read
/// in the next window (TCP pushed back on it), not dropped.
#[test]
fn rate_limit_one_error_per_window() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    for i in 0..40 {
        client.send(json!({"type": "ping", "payload": {"client_ts": i}}));
    }
    let (mut pongs, mut errors, mut window_start) = (0u64, 0u64, 0u64);
    while errors == 0 {
        let message = client.recv();
        match message["type"].as_str() {
            Some("pong") => {
                if pongs == 0 {
                    window_start = message["server_rx_ts"].as_u64().expect("server_rx_ts");
                }
                assert_eq!(message["payload"]["client_ts"], pongs, "pongs in order");
                pongs += 1;
            }
            _ => {
                assert_error(&message, "Rate limit exceeded", "rate_limited");
                errors += 1;
            }
        }
    }
    assert_eq!(pongs, 30, "the first 30 pings of the window are answered");
    // The rest are read only once the window (begun when the first ping was read) is over,
    // as the server's own receive stamps show.
    for expected in 31..40 {
        let message = client.recv();
        assert_eq!(message["type"], "pong", "{message}");
        assert_eq!(message["payload"]["client_ts"], expected);
        let received = message["server_rx_ts"].as_u64().expect("server_rx_ts");
        // The window is kept on the monotonic clock and stamped with the wall clock, which
        // the system may slew or step while the test runs (3 ms over one second was seen):
        // allow 50 ms. A server that read them at once would stamp them ~0 ms in.
        assert!(
            received + 50 >= window_start + 1_000,
            "read {} ms into the window: {message}",
            received.saturating_sub(window_start)
        );
    }
    client.expect_quiet();
}

// ----- transport limits -----

/// A 65,536-byte message is accepted; a 65,537-byte one closes the connection with 1009.
#[test]
fn oversized_message_closes_1009() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    let base = r#"{"type":"ping","payload":{"client_ts":1,"pad":""}}"#;
    let text = base.replace(
        r#""pad":"""#,
        &format!(r#""pad":"{}""#, "a".repeat(65_536 - base.len())),
    );
    assert_eq!(text.len(), 65_536);
    client.send_text(&text);
    let pong = client.recv();
    assert_eq!(pong["type"], "pong");
    assert_eq!(
        pong["payload"]["pad"].as_str().map(str::len),
        Some(65_536 - base.len())
    );
    client.send_text(&"a".repeat(65_537));
    assert_eq!(client.close_code(), Some(1009));

    // Fragments under the limit whose message is over it.
    let mut client = Client::connect(addr);
    let first = Frame::message(vec![b'a'; 40_000], OpCode::Data(Data::Text), false);
    let last = Frame::message(vec![b'a'; 40_000], OpCode::Data(Data::Continue), true);
    client.ws.send(Message::Frame(first)).unwrap();
    client.ws.send(Message::Frame(last)).unwrap();
    assert_eq!(client.close_code(), Some(1009));
}

/// Invalid UTF-8 in a text frame closes the connection with 1007.
#[test]
fn invalid_utf8_closes_1007() {
    let addr = start(config());
    let mut client = Client::connect(addr);
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    client.ws.send(Message::Frame(frame)).unwrap();
    assert_eq!(client.close_code(), Some(1007));
}

/// A silent peer that never answers gets a WebSocket Ping at half the idle timeout, then close 1001, then EOF.
#[test]
fn idle_peer_is_pinged_then_closed() {
    let mut config = config();
    config.net.idle_timeout_ms = 400;
    config.net.close_timeout_ms = 200;
    let addr = start(config);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "EOF during the handshake"
        );
        head.push(byte[0]);
    }
    let opened = now_ms();
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut opcodes = Vec::new();
    let close_payload = loop {
        let mut header = [0u8; 2];
        stream.read_exact(&mut header).expect("a frame before EOF");
        assert_eq!(header[1] & 0x80, 0, "server frames are unmasked");
        let len = match header[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                stream.read_exact(&mut ext).unwrap();
                u16::from_be_bytes(ext) as usize
            }
            127 => {
                let mut ext = [0u8; 8];
                stream.read_exact(&mut ext).unwrap();
                u64::from_be_bytes(ext) as usize
            }
            len => len as usize,
        };
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).unwrap();
        let opcode = header[0] & 0x0f;
        opcodes.push(opcode);
        if opcode == 0x8 {
            break payload;
        }
    };
    let closed_after = now_ms() - opened;
    assert_eq!(
        opcodes.iter().filter(|&&op| op == 0x1).count(),
        2,
        "hello and room_list: {opcodes:?}"
    );
    assert!(
        opcodes.contains(&0x9),
        "a Ping before the close: {opcodes:?}"
    );
    assert_eq!(
        u16::from_be_bytes([close_payload[0], close_payload[1]]),
        1001
    );
    assert!(closed_after >= 350, "closed after {closed_after} ms");
    let mut rest = [0u8; 16];
    assert_eq!(
        stream.read(&mut rest).expect("EOF, not a timeout"),
        0,
        "socket reaches EOF"
    );
}

/// A peer that answers the server's Pings (tungstenite does while reading) is not idled out.
#[test]
fn answering_peer_stays_open() {
    let mut config = config();
    config.net.idle_timeout_ms = 300;
    let addr = start(config);
    let mut client = Client::connect(addr);
    client.expect_silence(Duration::from_millis(900));
    client.expect_quiet();
}
