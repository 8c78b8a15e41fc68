//! The StreamSync v1 dialect over real sockets (its first part: hello, join, leave, chat,
//! acks and errors), alone and in a room shared with OpenWatchParty clients.

mod common;

use common::*;
use serde_json::{json, Value};
use tandem::id::RoomId;

fn v1(addr: std::net::SocketAddr) -> Client {
    let mut client = Client::connect_raw(addr, "/v1/ws", &[]);
    let hello = client.recv();
    assert_eq!(hello["type"], "server/hello", "{hello}");
    assert_eq!(hello["payload"]["v"], 1);
    assert!(hello["payload"]["nowMs"]
        .as_u64()
        .is_some_and(|t| t > 1_700_000_000_000));
    client
}

fn request(client: &mut Client, kind: &str, id: &str, payload: Value) {
    client
        .send_text(&json!({"v": 1, "type": kind, "requestId": id, "payload": payload}).to_string());
}

fn join(client: &mut Client, room: &str, id: &str, user: &str) -> Value {
    request(
        client,
        "room/join",
        id,
        json!({"roomId": room, "client": {"userId": user, "displayName": user.to_uppercase()}}),
    );
    let joined = client.recv();
    assert_eq!(joined["type"], "room/joined", "{joined}");
    expect_ack(client, id);
    joined
}

/// The next message is the ack of `id`.
fn expect_ack(client: &mut Client, id: &str) {
    let ack = client.recv();
    assert_eq!(
        (ack["type"].as_str(), ack["payload"]["requestId"].as_str()),
        (Some("ack"), Some(id)),
        "{ack}"
    );
}

/// The next message is an error for `id` with `code`.
fn expect_error(client: &mut Client, id: Option<&str>, code: &str) {
    let error = client.recv();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["code"], code, "{error}");
    assert_eq!(error["payload"]["requestId"].as_str(), id, "{error}");
    assert!(error["payload"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

/// Join creates a named room (first member), a second joiner sees the first as a peer, the
/// first sees the second arrive; chat reaches both; leave is seen; each request gets exactly
/// one ack.
#[test]
fn join_chat_leave() {
    let addr = start(config());
    let mut ann = v1(addr);
    let joined = join(&mut ann, "movie-night", "1", "ann");
    assert_eq!(joined["payload"]["roomId"], "movie-night");
    assert_eq!(
        joined["payload"]["you"],
        json!({"userId": "ann", "displayName": "ANN"})
    );
    assert_eq!(joined["payload"]["peers"], json!([]));

    let mut bob = v1(addr);
    let joined = join(&mut bob, "movie-night", "2", "bob");
    assert_eq!(
        joined["payload"]["peers"],
        json!([{"userId": "ann", "displayName": "ANN"}])
    );
    let arrived = ann.recv();
    assert_eq!(arrived["type"], "room/peer_joined", "{arrived}");
    assert_eq!(
        arrived["payload"],
        json!({"roomId": "movie-night", "peer": {"userId": "bob", "displayName": "BOB"}})
    );

    request(
        &mut bob,
        "chat/send",
        "3",
        json!({"roomId": "movie-night", "text": " hi "}),
    );
    for client in [&mut ann, &mut bob] {
        let chat = client.recv_type("chat/message");
        assert_eq!(
            chat["payload"]["from"],
            json!({"userId": "bob", "displayName": "BOB"})
        );
        assert_eq!(chat["payload"]["text"], "hi");
        assert!(chat["payload"]["tsMs"].as_u64().is_some());
    }
    expect_ack(&mut bob, "3");

    request(
        &mut bob,
        "room/leave",
        "4",
        json!({"roomId": "movie-night"}),
    );
    expect_ack(&mut bob, "4");
    let left = ann.recv();
    assert_eq!(
        left["payload"],
        json!({"roomId": "movie-night", "userId": "bob"}),
        "{left}"
    );
    for client in [&mut ann, &mut bob] {
        client.expect_silence(std::time::Duration::from_millis(200));
    }
}

/// Errors: a bad envelope is bad_request (with the requestId when it could be read), chat
/// in a room one is not in is not_in_room, in a room that does not exist room_not_found,
/// leaving another room not_in_room; a refused message without requestId still gets one error.
#[test]
fn errors_have_codes() {
    let addr = start(config());
    let mut ann = v1(addr);
    ann.send_text(r#"{"v":2,"type":"room/leave","requestId":"a","payload":{"roomId":"r"}}"#);
    expect_error(&mut ann, Some("a"), "bad_request");
    ann.send_text(r#"{"v":1,"requestId":"b","payload":{}}"#);
    expect_error(&mut ann, Some("b"), "bad_request");
    ann.send_text("not json");
    expect_error(&mut ann, None, "bad_request");
    request(
        &mut ann,
        "room/join",
        "c",
        json!({"roomId": "bad room!", "client": {"userId": "a", "displayName": "A"}}),
    );
    expect_error(&mut ann, Some("c"), "bad_request");
    request(
        &mut ann,
        "chat/send",
        "d",
        json!({"roomId": "nowhere", "text": "x"}),
    );
    expect_error(&mut ann, Some("d"), "room_not_found");
    let mut bob = v1(addr);
    join(&mut bob, "elsewhere", "e", "bob");
    request(
        &mut ann,
        "chat/send",
        "f",
        json!({"roomId": "elsewhere", "text": "x"}),
    );
    expect_error(&mut ann, Some("f"), "not_in_room");
    request(&mut ann, "room/leave", "g", json!({"roomId": "elsewhere"}));
    expect_error(&mut ann, Some("g"), "not_in_room");
    ann.send_text(
        &json!({"v": 1, "type": "chat/send", "payload": {"roomId": "elsewhere", "text": "x"}})
            .to_string(),
    );
    expect_error(&mut ann, None, "not_in_room");
    // A type the schema does not have: answered, never ignored.
    request(&mut ann, "room/dance", "h", json!({"roomId": "elsewhere"}));
    expect_error(&mut ann, Some("h"), "bad_request");
    ann.expect_silence(std::time::Duration::from_millis(200));
}

/// On /ws the subprotocol selects v1 and is echoed back.
#[test]
fn subprotocol_on_ws() {
    let addr = start(config());
    let mut client =
        Client::connect_raw(addr, "/ws", &[("Sec-WebSocket-Protocol", "streamsync.v1")]);
    assert_eq!(client.recv()["type"], "server/hello");
}

/// A v1 room and OpenWatchParty clients share it: the OWP client finds it in room_list (by
/// its name) and joins by its UUID; joins and chat cross both ways.
#[test]
fn mixed_room_joins_and_chat() {
    let addr = start(config());
    let mut ann = v1(addr);
    join(&mut ann, "party", "1", "ann");
    let mut owp = Client::connect(addr);
    owp.send(json!({"type": "list_rooms"}));
    let list = owp.recv_type("room_list");
    let entry = list["payload"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["name"] == "party"))
        .cloned()
        .expect("the v1 room in the OWP room list");
    let room = entry["id"].as_str().expect("a UUID").to_string();
    assert_uuid_v4_or_named(&room);
    let state = owp.join(&room);
    assert_eq!(state["payload"]["participant_count"], 2, "{state}");
    let arrived = ann.recv();
    assert_eq!(arrived["type"], "room/peer_joined", "{arrived}");
    assert_eq!(arrived["payload"]["roomId"], "party");

    owp.send(json!({"type": "chat_message", "room": room, "payload": {"text": "from owp"}}));
    let chat = ann.recv_type("chat/message");
    assert_eq!(chat["payload"]["text"], "from owp");
    assert_eq!(chat["payload"]["roomId"], "party");
    assert_eq!(owp.recv_type("chat_message")["payload"]["text"], "from owp");
    request(
        &mut ann,
        "chat/send",
        "2",
        json!({"roomId": "party", "text": "from v1"}),
    );
    let chat = owp.recv_type("chat_message");
    assert_eq!(chat["payload"]["text"], "from v1");
    assert_eq!(chat["payload"]["username"], "ANN");
    assert_eq!(chat["room"], room.as_str());
}

/// Room ids for OWP stay UUIDs, even for a room named in v1.
fn assert_uuid_v4_or_named(id: &str) {
    let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
    assert_eq!(parsed.hyphenated().to_string(), id);
}

fn playback(client: &mut Client, id: &str, room: &str, playing: bool, position: f64) {
    request(
        client,
        "watch/playback_state",
        id,
        json!({"roomId": room, "state": {"playing": playing, "positionSec": position, "hostTsMs": 1}}),
    );
}

/// A v1 host's playback reaches an OpenWatchParty guest as the stock host's player_event; a
/// repeated state is no command; a non-host's state is unauthorized.
#[test]
fn v1_host_drives_owp_guest() {
    let addr = start(config());
    let mut host = v1(addr);
    join(&mut host, "film", "1", "host");
    let room = RoomId::from_name("film").expect("a name").to_string();
    let mut guest = Client::connect(addr);
    guest.join(&room);
    host.recv_type("room/peer_joined");

    playback(&mut host, "2", "film", true, 10.0);
    expect_ack(&mut host, "2");
    let play = guest.recv_type("player_event");
    assert_eq!(play["payload"]["action"], "play", "{play}");
    assert_eq!(play["payload"]["position"], 10.0);
    assert_eq!(play["payload"]["play_state"], "playing");
    assert_eq!(play["room"], room.as_str());

    playback(&mut host, "3", "film", true, 10.2);
    expect_ack(&mut host, "3");
    playback(&mut host, "4", "film", false, 11.0);
    expect_ack(&mut host, "4");
    let pause = guest.recv();
    assert_eq!(
        pause["type"], "player_event",
        "the repeated state was a command: {pause}"
    );
    assert_eq!(pause["payload"]["action"], "pause");
    assert_eq!(pause["payload"]["position"], 11.0);

    let mut other = v1(addr);
    join(&mut other, "film", "5", "other");
    playback(&mut other, "6", "film", true, 3.0);
    let reply = other.recv_type("error");
    assert_eq!(reply["payload"]["code"], "unauthorized", "{reply}");
    assert_eq!(reply["payload"]["requestId"], "6");
}

/// An OpenWatchParty host's commands reach a v1 guest as watch/playback_state, from the
/// host's user id, stamped with the server instant.
#[test]
fn owp_host_drives_v1_guest() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    host.send(json!({"type": "auth", "payload": {"user_name": "Hosty", "user_id": "h1"}}));
    let room = host.create_room(json!({}));
    let mut guest = v1(addr);
    let joined = join(&mut guest, &room, "1", "g");
    assert_eq!(joined["payload"]["roomId"], room.as_str());
    assert_eq!(
        joined["payload"]["peers"],
        json!([{"userId": "h1", "displayName": "Hosty"}])
    );
    host.recv_type("participants_update");

    let before = now_ms();
    host.send(json!({"type": "player_event", "room": room, "payload": {"action": "play", "position": 42.5, "play_state": "playing"}}));
    let state = guest.recv_type("watch/playback_state");
    assert_eq!(
        state["payload"]["state"],
        json!({"playing": true, "positionSec": 42.5}),
        "{state}"
    );
    assert_eq!(state["payload"]["fromUserId"], "h1");
    assert_eq!(state["payload"]["roomId"], room.as_str());
    assert!(state["payload"]["serverTsMs"]
        .as_u64()
        .is_some_and(|t| t + 5 >= before));
    host.send(json!({"type": "player_event", "room": room, "payload": {"action": "pause", "position": 50}}));
    let state = guest.recv_type("watch/playback_state");
    assert_eq!(
        state["payload"]["state"],
        json!({"playing": false, "positionSec": 50.0}),
        "{state}"
    );
}

/// WebRTC signals reach the named peer only (not a third member), with the sender's user id;
/// an unknown peer is peer_not_found, a room one is not in not_in_room.
#[test]
fn webrtc_relay_to_one_peer() {
    let addr = start(config());
    let mut ann = v1(addr);
    join(&mut ann, "call", "1", "ann");
    let mut bob = v1(addr);
    join(&mut bob, "call", "2", "bob");
    let mut cat = v1(addr);
    join(&mut cat, "call", "3", "cat");
    ann.recv_type("room/peer_joined");
    ann.recv_type("room/peer_joined");
    bob.recv_type("room/peer_joined");

    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n";
    request(
        &mut ann,
        "webrtc/offer",
        "4",
        json!({"roomId": "call", "toUserId": "bob", "sdp": sdp}),
    );
    expect_ack(&mut ann, "4");
    let offer = bob.recv();
    assert_eq!(offer["type"], "webrtc/offer", "{offer}");
    assert_eq!(
        offer["payload"],
        json!({"roomId": "call", "fromUserId": "ann", "sdp": sdp})
    );
    request(
        &mut bob,
        "webrtc/answer",
        "5",
        json!({"roomId": "call", "toUserId": "ann", "sdp": "answer"}),
    );
    expect_ack(&mut bob, "5");
    assert_eq!(ann.recv()["payload"]["sdp"], "answer");
    let candidate = json!({"candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host", "sdpMid": "0"});
    request(
        &mut bob,
        "webrtc/ice",
        "6",
        json!({"roomId": "call", "toUserId": "ann", "candidate": candidate}),
    );
    expect_ack(&mut bob, "6");
    let ice = ann.recv();
    assert_eq!(ice["payload"]["candidate"], candidate, "{ice}");
    cat.expect_silence(std::time::Duration::from_millis(200));

    request(
        &mut ann,
        "webrtc/offer",
        "7",
        json!({"roomId": "call", "toUserId": "nobody", "sdp": "x"}),
    );
    expect_error(&mut ann, Some("7"), "peer_not_found");
    let mut dan = v1(addr);
    request(
        &mut dan,
        "webrtc/offer",
        "8",
        json!({"roomId": "call", "toUserId": "ann", "sdp": "x"}),
    );
    expect_error(&mut dan, Some("8"), "not_in_room");
    let huge = "x".repeat(20_000);
    request(
        &mut ann,
        "webrtc/offer",
        "9",
        json!({"roomId": "call", "toUserId": "bob", "sdp": huge}),
    );
    expect_error(&mut ann, Some("9"), "bad_request");
}

/// The host sets the content: v1 members get watch/content, OpenWatchParty members a fresh
/// room_state whose media_id is the content id when it is 32 hex digits (null otherwise); a
/// joiner learns the content; a non-host is unauthorized.
#[test]
fn content_crosses_dialects() {
    // Content changes back to back (their spacing is tests/party.rs's).
    let mut config = config();
    config.core.room_refresh_interval_ms = 0;
    let addr = start(config);
    let mut host = v1(addr);
    join(&mut host, "cinema", "1", "host");
    let room = RoomId::from_name("cinema").expect("a name").to_string();
    let mut owp = Client::connect(addr);
    owp.join(&room);
    host.recv_type("room/peer_joined");

    let media = "0123456789abcdef0123456789abcdef";
    request(
        &mut host,
        "watch/set_content",
        "2",
        json!({"roomId": "cinema", "contentId": media}),
    );
    let content = host.recv_type("watch/content");
    assert_eq!(
        content["payload"],
        json!({"roomId": "cinema", "contentId": media})
    );
    expect_ack(&mut host, "2");
    let state = owp.recv_type("room_state");
    assert_eq!(state["payload"]["media_id"], media, "{state}");

    request(
        &mut host,
        "watch/set_content",
        "3",
        json!({"roomId": "cinema", "contentId": "https://lan/film.webm"}),
    );
    host.recv_type("watch/content");
    expect_ack(&mut host, "3");
    let state = owp.recv_type("room_state");
    assert!(state["payload"]["media_id"].is_null(), "{state}");

    let mut late = v1(addr);
    join_then_content(&mut late, "cinema", "https://lan/film.webm");
    request(
        &mut late,
        "watch/set_content",
        "5",
        json!({"roomId": "cinema", "contentId": "x"}),
    );
    let reply = late.recv_type("error");
    assert_eq!(reply["payload"]["code"], "unauthorized", "{reply}");
}

/// A joiner of a room with content gets room/joined, then watch/content, then the ack.
fn join_then_content(client: &mut Client, room: &str, content: &str) {
    request(
        client,
        "room/join",
        "4",
        json!({"roomId": room, "client": {"userId": "late", "displayName": "Late"}}),
    );
    assert_eq!(client.recv()["type"], "room/joined");
    let known = client.recv();
    assert_eq!(known["payload"]["contentId"], content, "{known}");
    expect_ack(client, "4");
}

/// A second connection joining with the same userId takes the seat over: the older socket
/// is closed with 4001, the newer holds the same place (host role included), and the other
/// members see nothing change.
#[test]
fn same_user_takes_the_seat_over() {
    let addr = start(config());
    let mut first = v1(addr);
    join(&mut first, "den", "1", "ann");
    let mut bob = v1(addr);
    join(&mut bob, "den", "2", "bob");
    first.recv_type("room/peer_joined");

    let mut second = v1(addr);
    let joined = join(&mut second, "den", "3", "ann");
    assert_eq!(joined["payload"]["you"]["userId"], "ann");
    assert_eq!(
        joined["payload"]["peers"],
        json!([{"userId": "bob", "displayName": "BOB"}])
    );
    assert_eq!(first.close_code(), Some(4001));
    bob.expect_silence(std::time::Duration::from_millis(200));

    // Still the host: its playback is accepted and reaches bob.
    playback(&mut second, "4", "den", true, 5.0);
    expect_ack(&mut second, "4");
    let state = bob.recv_type("watch/playback_state");
    assert_eq!(state["payload"]["fromUserId"], "ann");
    // The host's own clock is relayed to v1 members as it was sent.
    assert_eq!(state["payload"]["state"]["hostTsMs"], 1, "{state}");
}

/// Seeks cross both ways: a v1 host's state far from the room clock is a command at the new
/// position; an OpenWatchParty host's seek reaches a v1 guest with its position and state.
#[test]
fn seeks_cross_both_ways() {
    let addr = start(config());
    let mut host = v1(addr);
    join(&mut host, "seek", "1", "host");
    let room = RoomId::from_name("seek").expect("a name").to_string();
    let mut owp = Client::connect(addr);
    owp.join(&room);
    host.recv_type("room/peer_joined");
    playback(&mut host, "2", "seek", true, 10.0);
    expect_ack(&mut host, "2");
    assert_eq!(owp.recv_type("player_event")["payload"]["position"], 10.0);
    playback(&mut host, "3", "seek", true, 600.0);
    expect_ack(&mut host, "3");
    let jump = owp.recv_type("player_event");
    assert_eq!(jump["payload"]["position"], 600.0, "{jump}");
    assert_eq!(jump["payload"]["play_state"], "playing");

    let mut owp_host = Client::connect(addr);
    let owp_room = owp_host.create_room(json!({}));
    let mut guest = v1(addr);
    join(&mut guest, &owp_room, "4", "g");
    owp_host.send(json!({"type": "player_event", "room": owp_room, "payload": {"action": "seek", "position": 123.0, "play_state": "paused"}}));
    let state = guest.recv_type("watch/playback_state");
    assert_eq!(
        state["payload"]["state"],
        json!({"playing": false, "positionSec": 123.0}),
        "{state}"
    );
}

/// A member cannot re-enter its own room under another member's `userId` (the simulation
/// found that it took that seat over and, as host, closed its own room under everyone): the
/// request is refused and both keep their seats.
#[test]
fn no_take_over_from_inside_the_room() {
    let addr = start(config());
    let mut ann = v1(addr);
    join(&mut ann, "den", "1", "ann");
    let mut bob = v1(addr);
    join(&mut bob, "den", "2", "bob");
    assert_eq!(ann.recv()["type"], "room/peer_joined");
    request(
        &mut ann,
        "room/join",
        "3",
        json!({"roomId": "den", "client": {"userId": "bob", "displayName": "BOB"}}),
    );
    expect_error(&mut ann, Some("3"), "bad_request");
    request(
        &mut bob,
        "chat/send",
        "4",
        json!({"roomId": "den", "text": "still here"}),
    );
    let chat = ann.recv();
    assert_eq!(chat["type"], "chat/message", "{chat}");
    assert_eq!(chat["payload"]["from"]["userId"], "bob");
}
