//! Parties that survive, over real sockets: seat resume, host handover, re-admission of a
//! client that behaves as the stock OpenWatchParty one, reclaim by authentication. Graces
//! are shortened by settings; every wait is on a message, bounded by the client's timeout.

mod common;

use common::*;
use serde_json::{json, Value};

/// Connects and returns the client with the resume token of its `client_hello`.
fn connect_with_token(addr: std::net::SocketAddr) -> (Client, String) {
    let mut client = Client::connect_raw(addr, "/ws", &[]);
    let hello = client.recv();
    assert_eq!(hello["type"], "client_hello", "{hello}");
    client.id = hello["payload"]["client_id"].as_str().unwrap().to_string();
    let token = hello["payload"]["resume_token"]
        .as_str()
        .expect("resume_token")
        .to_string();
    assert_eq!(token.len(), 43, "{token}");
    assert_eq!(client.recv()["type"], "room_list");
    (client, token)
}

/// Closes with a closing handshake and waits for the server's answer: by then the server
/// has let go of the connection (a dropped socket would race with what the test does next).
fn close_cleanly(mut client: Client) {
    let _ = client.ws.close(None);
    for _ in 0..100 {
        match client.ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(error) => panic!("{error}"),
        }
    }
    panic!("the server did not answer the close");
}

fn resume(client: &mut Client, token: &str) -> Vec<Value> {
    client.send(json!({"type": "resume", "payload": {"token": token}}));
    client.drain()
}

/// A member that drops and resumes within the grace gets its seat back: its old client id,
/// the room, and the chat it missed; the others are told nothing (no one left).
#[test]
fn member_resume() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({}));
    let (mut guest, token) = connect_with_token(addr);
    guest.join(&room);
    host.recv_type("participants_update");
    let old_id = guest.id.clone();
    // A clean close: once its echo is back, the server has let go of the connection (a
    // dropped socket would race with the chat below).
    close_cleanly(guest);
    // The others see it away, not gone.
    let away = host.recv();
    assert_eq!(away["type"], "participants_update", "{away}");
    assert_eq!(away["payload"]["participants"][1]["away"], true, "{away}");
    assert_eq!(away["payload"]["participant_count"], 2);
    host.send(
        json!({"type": "chat_message", "room": room, "payload": {"text": "while you were away"}}),
    );
    assert_eq!(
        host.recv_type("chat_message")["payload"]["text"],
        "while you were away"
    );

    let (mut back, _next_token) = connect_with_token(addr);
    let got = resume(&mut back, &token);
    let kinds: Vec<&str> = got.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["client_hello", "room_state", "chat_message"],
        "{got:?}"
    );
    assert_eq!(got[0]["payload"]["client_id"], old_id.as_str());
    assert_eq!(got[1]["room"], room.as_str());
    assert_eq!(got[1]["client"], old_id.as_str());
    assert_eq!(got[2]["payload"]["text"], "while you were away");
    let here = host.recv();
    assert_eq!(here["type"], "participants_update", "{here}");
    assert_eq!(
        here["payload"]["participants"][1]["away"], false,
        "back: {here}"
    );
    host.expect_quiet();
    // It is the member again: its chat reaches the host under the old id.
    back.send(json!({"type": "chat_message", "room": room, "payload": {"text": "back"}}));
    let chat = host.recv_type("chat_message");
    assert_eq!(chat["client"], old_id.as_str());
}

/// A wrong token, an oversize one, and the token of a seat whose grace ended get
/// `resume_failed`, and no seat.
#[test]
fn resume_refused() {
    let mut config = config();
    config.core.resume_grace_ms = 300;
    let addr = start(config);
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({}));
    let (mut guest, token) = connect_with_token(addr);
    guest.join(&room);
    host.recv_type("participants_update");
    drop(guest);
    // The grace ends: the member leaves.
    assert_eq!(
        host.recv_type("client_left")["payload"]["participant_count"],
        1
    );
    let mut other = Client::connect(addr);
    for bad in [
        token.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &"x".repeat(5_000),
    ] {
        let got = resume(&mut other, bad);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_error(&got[0], "Resume token invalid or expired", "resume_failed");
    }
    host.expect_quiet();
}

/// The host drops and resumes within the grace: same room, still host; nobody saw a
/// host change.
#[test]
fn host_resume_within_grace() {
    let addr = start(config());
    let (mut host, token) = connect_with_token(addr);
    let room = host.create_room(json!({}));
    let mut guest = Client::connect(addr);
    guest.join(&room);
    let host_id = host.id.clone();
    drop(host);
    let (mut back, _) = connect_with_token(addr);
    let got = resume(&mut back, &token);
    let state = got
        .iter()
        .find(|m| m["type"] == "room_state")
        .expect("room_state");
    assert_eq!(state["payload"]["host_id"], host_id.as_str());
    assert_eq!(state["client"], host_id.as_str());
    // Still the host: its commands reach the guest.
    back.send(
        json!({"type": "player_event", "room": room, "payload": {"action": "play", "position": 4}}),
    );
    let event = guest.recv_type("player_event");
    assert_eq!(event["client"], host_id.as_str());
    assert!(guest.drain().iter().all(|m| m["type"] != "host_change"));
}

/// The host drops for longer than HOST_GRACE_MS: the longest-present member becomes host.
/// Every member gets `host_change` and a `room_state` naming it; a client that, like the
/// stock one, learns `isHost` only from `room_state` starts driving playback, and the others
/// follow it. The old host's seat leaves when its own grace ends.
#[test]
fn host_handover_after_grace() {
    let mut config = config();
    config.core.host_grace_ms = 200;
    config.core.resume_grace_ms = 1_000;
    let addr = start(config);
    let (host, mut first, room) = host_and_guest(addr);
    let mut second = Client::connect(addr);
    second.join(&room);
    first.recv_type("participants_update");
    drop(host);

    let first_id = first.id.clone();
    for member in [&mut first, &mut second] {
        let change = member.recv_type("host_change");
        assert_eq!(change["room"], room.as_str());
        assert_eq!(change["payload"]["host_id"], first_id.as_str());
    }
    // As the stock client does: isHost ⇔ room_state.host_id == own client id.
    let state = first.recv_type("room_state");
    let is_host = state["payload"]["host_id"] == first.id.as_str();
    assert!(is_host, "{state}");
    let state = second.recv_type("room_state");
    assert_ne!(state["payload"]["host_id"], second.id.as_str());

    first.send(json!({"type": "player_event", "room": room, "payload": {"action": "pause", "position": 12.5}}));
    let event = second.recv_type("player_event");
    assert_eq!(event["client"], first.id.as_str());
    assert_eq!(event["payload"]["position"], 12.5);
    // The old host's seat leaves once its grace is over.
    let left = second.recv_type("client_left");
    assert_eq!(left["payload"]["participant_count"], 2);
}

/// A client that behaves as the stock one: after its own reconnect it sends no join and
/// names its old room only in its ping (a guest) or its state_update (a host). It is let
/// back in as a member, is never told the room closed, and a former host learns from
/// `room_state` that it is not the host any more.
#[test]
fn stock_client_reconnects() {
    let mut config = config();
    config.core.host_grace_ms = 100;
    let addr = start(config);
    let (host, mut guest, room) = host_and_guest(addr);
    // The host's Wi-Fi blips; the room goes on under the guest.
    drop(host);
    guest.recv_type("host_change");
    guest.recv_type("room_state");

    let mut old_host = Client::connect(addr);
    old_host.send(json!({"type": "state_update", "room": room, "payload": {"position": 3, "play_state": "playing"}}));
    let got = old_host.drain();
    assert!(got.iter().all(|m| m["type"] != "room_closed"), "{got:?}");
    let state = got
        .iter()
        .find(|m| m["type"] == "room_state")
        .expect("re-admitted");
    assert_eq!(state["room"], room.as_str());
    assert_ne!(
        state["payload"]["host_id"],
        old_host.id.as_str(),
        "not host on its claim"
    );

    // The guest's own reconnect: it names the room in its ping.
    drop(guest);
    let mut guest = Client::connect(addr);
    guest.send(json!({"type": "ping", "room": room, "payload": {"client_ts": 7}}));
    let got = guest.drain();
    assert!(got.iter().all(|m| m["type"] != "room_closed"), "{got:?}");
    assert!(got
        .iter()
        .any(|m| m["type"] == "room_state" && m["room"] == room.as_str()));
}

/// With authentication on, a reconnecting socket that authenticates as the subject of a seat
/// in grace gets that seat back (no resume token needed); another subject does not.
#[test]
fn auth_reclaims_a_seat() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    const SECRET: &str = "survive-test-secret-long-enough-32";
    let mut config = config();
    config.auth.jwt_secret = Some(tandem::auth::Secret(SECRET.as_bytes().to_vec()));
    let addr = start(config);
    tandem::auth::install_crypto();
    let token = |sub: &str| {
        let claims = json!({"sub": sub, "name": sub.to_uppercase(), "aud": ["OpenWatchParty"],
                            "iss": "Jellyfin", "exp": now_ms() / 1_000 + 600});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let mut host = Client::connect(addr);
    host.send(json!({"type": "auth", "payload": {"token": token("host")}}));
    host.recv_type("auth_success");
    let room = host.create_room(json!({}));
    let mut guest = Client::connect(addr);
    guest.send(json!({"type": "auth", "payload": {"token": token("ann")}}));
    guest.recv_type("auth_success");
    guest.join(&room);
    host.recv_type("participants_update");
    let old_id = guest.id.clone();
    close_cleanly(guest);

    let mut stranger = Client::connect(addr);
    stranger.send(json!({"type": "auth", "payload": {"token": token("bob")}}));
    let got = stranger.drain();
    assert!(got.iter().all(|m| m["type"] != "room_state"), "{got:?}");

    let mut back = Client::connect(addr);
    back.send(json!({"type": "auth", "payload": {"token": token("ann")}}));
    let got = back.drain();
    let kinds: Vec<&str> = got.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["client_hello", "room_state", "auth_success"],
        "{got:?}"
    );
    assert_eq!(got[0]["payload"]["client_id"], old_id.as_str());
    assert_eq!(got[1]["room"], room.as_str());
    // Away, then back (presence updates are spaced by PRESENCE_INTERVAL_MS: the second may
    // come a little later); nothing else.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = host.recv();
        assert_eq!(m["type"], "participants_update", "{m}");
        seen.push(m["payload"]["participants"][1]["away"].as_bool().unwrap());
    }
    assert_eq!(seen, [true, false], "away, then back");
    host.expect_quiet();
}

/// v1: `server/hello` carries `resumeToken`; `session/resume` gives the seat back.
#[test]
fn v1_resume() {
    let addr = start(config());
    let mut ann = Client::connect_raw(addr, "/v1/ws", &[]);
    let hello = ann.recv();
    let token = hello["payload"]["resumeToken"]
        .as_str()
        .expect("resumeToken")
        .to_string();
    ann.send_text(
        &json!({"v": 1, "type": "room/join", "requestId": "1",
        "payload": {"roomId": "den", "client": {"userId": "ann", "displayName": "Ann"}}})
        .to_string(),
    );
    assert_eq!(ann.recv()["type"], "room/joined");
    assert_eq!(ann.recv()["type"], "ack");
    drop(ann);
    let mut back = Client::connect_raw(addr, "/v1/ws", &[]);
    assert_eq!(back.recv()["type"], "server/hello");
    back.send_text(
        &json!({"v": 1, "type": "session/resume", "requestId": "2",
        "payload": {"token": token}})
        .to_string(),
    );
    assert_eq!(back.recv()["type"], "server/hello");
    let joined = back.recv();
    assert_eq!(joined["type"], "room/joined", "{joined}");
    assert_eq!(joined["payload"]["roomId"], "den");
    assert_eq!(joined["payload"]["you"]["userId"], "ann");
    let ack = back.recv();
    assert_eq!(ack["type"], "ack", "{ack}");
}

/// Presence (seed 003): a member's `buffering` and `reported_latency` show in
/// `participants`; a scheduled play waits for a buffering member (up to the ready-wait);
/// the host's `force_resync` reaches every member with its instant; `client_left` names
/// who left.
#[test]
fn presence_buffering_latency_force_resync() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    host.declare_scheduled();
    let room = host.create_room(json!({"name": "Film"}));
    let mut guest = Client::connect(addr);
    guest.join_as(&room, "Gus");
    host.recv_type("participants_update");

    guest.send(json!({"type": "state_update", "room": room,
                      "payload": {"play_state": "buffering", "reported_latency": 42}}));
    let update = host.recv_type("participants_update");
    let gus = &update["payload"]["participants"][1];
    assert_eq!(
        (gus["buffering"].as_bool(), gus["reported_latency"].as_u64()),
        (Some(true), Some(42))
    );
    assert!(
        guest.drain().iter().all(|m| m["type"] != "error"),
        "no not_host for presence"
    );

    // The play waits while Gus buffers, and goes once he stops.
    host.send(json!({"type": "player_event", "room": room,
                     "payload": {"action": "play", "position": 5.0, "play_state": "playing"}}));
    assert!(
        guest.drain().iter().all(|m| m["type"] != "player_event"),
        "held while buffering"
    );
    guest.send(json!({"type": "state_update", "room": room, "payload": {"play_state": "paused"}}));
    // The end of its own stall is the member's news too: no `not_host` for it.
    let play = loop {
        let message = guest.recv();
        assert_ne!(message["type"], "error", "{message}");
        if message["type"] == "player_event" {
            break message;
        }
    };
    assert_eq!(play["payload"]["action"], "play");
    assert!(
        guest.drain().iter().all(|m| m["type"] != "error"),
        "no not_host for the end of a stall"
    );

    host.send(json!({"type": "force_resync", "room": room, "payload": {"target_position": 33.5}}));
    for member in [&mut host, &mut guest] {
        let resync = member.recv_type("force_resync");
        assert_eq!(resync["payload"]["target_position"], 33.5);
        assert!(resync["payload"]["target_server_ts"]
            .as_u64()
            .is_some_and(|t| t >= now_ms() - 5_000));
    }
    guest.send(json!({"type": "force_resync", "room": room, "payload": {"target_position": 1}}));
    assert_error(
        &guest.recv(),
        "Only the host can control playback",
        "not_host",
    );

    guest.send(json!({"type": "leave_room", "room": room}));
    let left = host.recv_type("client_left");
    assert_eq!(left["payload"]["name"], "Gus");
}
