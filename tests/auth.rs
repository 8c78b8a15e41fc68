//! Identity and access over real sockets: JWT as the OpenWatchParty Jellyfin plugin signs it,
//! invites, private rooms, the host-only commands, in both dialects. Every token is made
//! here with jsonwebtoken (or by hand, for the headers jsonwebtoken will not write).

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tandem::auth::Secret;

const SECRET: &str = "a-test-secret-that-is-long-enough-32b";
const INVITE_SECRET: &str = "an-invite-secret-for-the-tests-only";

fn auth_config() -> tandem::config::Config {
    let mut config = config();
    config.auth.jwt_secret = Some(Secret(SECRET.as_bytes().to_vec()));
    config.auth.invite_secret = Some(Secret(INVITE_SECRET.as_bytes().to_vec()));
    config
}

fn now_s() -> u64 {
    now_ms() / 1_000
}

/// Claims as the Jellyfin plugin writes them (reference §5.3): `aud` twice in an array.
fn plugin_claims(sub: &str, name: &str) -> Value {
    json!({
        "sub": sub,
        "name": name,
        "aud": ["OpenWatchParty", "OpenWatchParty"],
        "iss": "Jellyfin",
        "iat": now_s(),
        "jti": "0b1d8e2c-7f57-4c1a-9a55-3c1f0e4d8a21",
        "exp": now_s() + 3_600,
    })
}

fn sign_with(claims: &Value, alg: Algorithm, key: &str) -> String {
    // jsonwebtoken's cryptography is Tandem's HMAC-only provider, installed by the server or
    // here, whichever comes first.
    tandem::auth::install_crypto();
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("sign")
}

fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::HS256, SECRET)
}

/// A token for `sub` named `name`, valid for an hour.
fn token(sub: &str, name: &str) -> String {
    sign(&plugin_claims(sub, name))
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A token with a hand-written header (and a signature that is not one).
fn with_header(header: &str, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes()),
        signature
    )
}

/// `auth` with `token`; returns the reply.
fn authenticate(client: &mut Client, token: &str) -> Value {
    client.send(json!({"type": "auth", "payload": {"token": token}}));
    client.recv()
}

fn assert_auth_failed(client: &mut Client, token: &str) {
    let reply = authenticate(client, token);
    assert_error(&reply, "Authentication failed", "auth_failed");
}

fn create(client: &mut Client, payload: Value) -> Value {
    client.send(json!({"type": "create_room", "payload": payload}));
    client.recv()
}

fn join_with(client: &mut Client, room: &str, payload: Value) -> Value {
    client.send(json!({"type": "join_room", "room": room, "payload": payload}));
    client.recv()
}

/// A host with a room, authenticated as `sub`; returns (host, room id).
fn host(addr: std::net::SocketAddr, sub: &str, options: Value) -> (Client, String) {
    let mut host = Client::connect(addr);
    let state = create(
        &mut host,
        json!({"name": "Film", "auth_token": token(sub, "Host"), "options": options}),
    );
    assert_eq!(state["type"], "room_state", "{state}");
    let room = state["room"].as_str().expect("room").to_string();
    (host, room)
}

fn invite(host: &mut Client, room: &str, expires_in: Option<u64>) -> (String, u64) {
    let payload = expires_in.map_or(json!({}), |s| json!({"expires_in": s}));
    host.send(json!({"type": "create_invite", "room": room, "payload": payload}));
    let created = host.recv();
    assert_eq!(created["type"], "invite_created", "{created}");
    (
        created["payload"]["invite_token"]
            .as_str()
            .expect("token")
            .to_string(),
        created["payload"]["expires_at"].as_u64().expect("expires"),
    )
}

/// The plugin's token is accepted: `auth_success` with the token's name; the socket may then
/// create a room, and its name in chat is the token's.
#[test]
fn plugin_token_accepted() {
    let addr = start(auth_config());
    let mut alice = Client::connect(addr);
    let reply = authenticate(
        &mut alice,
        &token("8f0e4d1c2b3a49a5b6c7d8e9f0a1b2c3", "Alice"),
    );
    assert_eq!(reply["type"], "auth_success", "{reply}");
    assert_eq!(reply["payload"]["user_name"], "Alice");
    let state = create(&mut alice, json!({"name": "Film"}));
    assert_eq!(state["type"], "room_state", "{state}");
    let room = state["room"].as_str().unwrap().to_string();
    alice.send(json!({"type": "chat_message", "room": room, "payload": {"text": "hi"}}));
    let chat = alice.recv_type("chat_message");
    assert_eq!(chat["payload"]["username"], "Alice");
}

/// `exp` has 60 s of leeway: 30 s past is accepted, 120 s past is not.
#[test]
fn expiry_and_leeway() {
    let addr = start(auth_config());
    let mut client = Client::connect(addr);
    let mut claims = plugin_claims("u1", "Ann");
    claims["exp"] = json!(now_s() - 120);
    assert_auth_failed(&mut client, &sign(&claims));
    claims["exp"] = json!(now_s() - 30);
    assert_eq!(
        authenticate(&mut client, &sign(&claims))["type"],
        "auth_success"
    );
}

/// Wrong secret, `alg: none`, HS512, RS256, wrong `aud`, wrong `iss`, missing `sub` or
/// `name`, an oversize token, garbage: each is refused, and the server goes on.
#[test]
fn bad_tokens_refused() {
    let addr = start(auth_config());
    let mut client = Client::connect(addr);
    let claims = plugin_claims("u1", "Ann");
    assert_auth_failed(
        &mut client,
        &sign_with(&claims, Algorithm::HS256, "another-secret"),
    );
    assert_auth_failed(
        &mut client,
        &with_header(r#"{"alg":"none","typ":"JWT"}"#, &claims, ""),
    );
    assert_auth_failed(&mut client, &sign_with(&claims, Algorithm::HS512, SECRET));
    // RS256 with an HMAC "signature" made with the secret as if it were a public key: the
    // algorithm confusion attack. Refused for its header alone.
    let hs = sign(&claims);
    let signature = hs.rsplit('.').next().unwrap();
    assert_auth_failed(
        &mut client,
        &with_header(r#"{"alg":"RS256","typ":"JWT"}"#, &claims, signature),
    );
    for (key, value) in [("aud", json!("Other")), ("iss", json!("Emby"))] {
        let mut wrong = claims.clone();
        wrong[key] = value;
        assert_auth_failed(&mut client, &sign(&wrong));
    }
    for key in ["sub", "name", "exp", "aud", "iss"] {
        let mut missing = claims.clone();
        missing.as_object_mut().unwrap().remove(key);
        assert_auth_failed(&mut client, &sign(&missing));
    }
    let mut huge = claims.clone();
    huge["pad"] = json!("x".repeat(8_000));
    assert_auth_failed(&mut client, &sign(&huge));
    assert_auth_failed(&mut client, "not.a.token");
    // None of that authenticated the socket.
    assert_error(
        &create(&mut client, json!({})),
        "Authentication required",
        "auth_required",
    );
}

/// `aud` as a plain string is accepted too.
#[test]
fn audience_as_string() {
    let addr = start(auth_config());
    let mut client = Client::connect(addr);
    let mut claims = plugin_claims("u1", "Ann");
    claims["aud"] = json!("OpenWatchParty");
    assert_eq!(
        authenticate(&mut client, &sign(&claims))["type"],
        "auth_success"
    );
}

/// A socket that authenticated stays authenticated after a later bad token.
#[test]
fn authenticated_socket_survives_a_bad_token() {
    let addr = start(auth_config());
    let mut client = Client::connect(addr);
    assert_eq!(
        authenticate(&mut client, &token("u1", "Ann"))["type"],
        "auth_success"
    );
    assert_auth_failed(&mut client, "garbage");
    assert_eq!(create(&mut client, json!({}))["type"], "room_state");
}

/// Without a token, create and join are refused with `auth_required`, and the room list is
/// empty; `auth_token` inside create_room / join_room authenticates the request itself.
#[test]
fn auth_token_in_create_and_join() {
    let addr = start(auth_config());
    let (_host, room) = host(addr, "h1", json!({}));

    let mut stranger = Client::connect(addr);
    stranger.send(json!({"type": "list_rooms"}));
    let list = stranger.recv_type("room_list");
    assert_eq!(
        list["payload"],
        json!([]),
        "an unauthenticated socket sees no rooms"
    );
    assert_error(
        &create(&mut stranger, json!({"name": "x"})),
        "Authentication required",
        "auth_required",
    );
    assert_error(
        &join_with(&mut stranger, &room, json!({"user_name": "me"})),
        "Authentication required",
        "auth_required",
    );
    assert_error(
        &join_with(&mut stranger, &room, json!({"auth_token": "forged"})),
        "Authentication failed",
        "auth_failed",
    );

    let state = join_with(
        &mut stranger,
        &room,
        json!({"auth_token": token("g1", "Guest")}),
    );
    assert_eq!(state["type"], "room_state", "{state}");
    assert_eq!(state["room"], room.as_str());

    // Authenticated, a lobby socket sees the room.
    let mut friend = Client::connect(addr);
    authenticate(&mut friend, &token("f1", "Friend"));
    friend.send(json!({"type": "list_rooms"}));
    let list = friend.recv_type("room_list");
    assert_eq!(list["payload"][0]["id"], room.as_str(), "{list}");
}

/// The display name comes from the token: a payload `user_name` (in auth, create or join)
/// does not override it.
#[test]
fn no_impersonation() {
    let addr = start(auth_config());
    let mut alice = Client::connect(addr);
    alice.send(
        json!({"type": "auth", "payload": {"token": token("a1", "Alice"), "user_name": "Bob"}}),
    );
    assert_eq!(alice.recv()["payload"]["user_name"], "Alice");
    alice.send(json!({"type": "auth", "payload": {"user_name": "Bob", "user_id": "b1"}}));
    let state = create(&mut alice, json!({"user_name": "Bob"}));
    let room = state["room"].as_str().unwrap().to_string();
    let mut guest = Client::connect(addr);
    let joined = join_with(
        &mut guest,
        &room,
        json!({"auth_token": token("g1", "Guest"), "user_name": "Alice"}),
    );
    assert_eq!(joined["type"], "room_state");
    guest.send(json!({"type": "chat_message", "room": room, "payload": {"text": "who"}}));
    let chat = alice.recv_type("chat_message");
    assert_eq!(chat["payload"]["username"], "Guest");
    alice.send(json!({"type": "chat_message", "room": room, "payload": {"text": "me"}}));
    let chat = guest.recv_type("chat_message");
    assert_eq!(chat["payload"]["text"], "who", "its own first");
    let chat = guest.recv_type("chat_message");
    assert_eq!(chat["payload"]["username"], "Alice");
}

/// An invite lets a guest without an account into that room only; expired, forged,
/// malformed and other-room invites are refused with their own codes; an invite for a room
/// that closed is refused even though its token is still valid.
#[test]
fn invites() {
    let addr = start(auth_config());
    let (mut host_a, room_a) = host(addr, "h1", json!({}));
    let (_host_b, room_b) = host(addr, "h2", json!({}));
    let (token_a, expires_at) = invite(&mut host_a, &room_a, Some(600));
    assert!(
        (now_s() + 590..=now_s() + 601).contains(&expires_at),
        "{expires_at}"
    );

    let mut guest = Client::connect(addr);
    let state = join_with(
        &mut guest,
        &room_a,
        json!({"invite_token": token_a, "user_name": "Guest"}),
    );
    assert_eq!(state["type"], "room_state", "{state}");
    assert_eq!(state["room"], room_a.as_str());

    let mut other = Client::connect(addr);
    assert_error(
        &join_with(&mut other, &room_b, json!({"invite_token": token_a})),
        "Invite is for another room",
        "invite_room_mismatch",
    );
    let expired = sign_with(
        &json!({"aud": "tandem-invite", "room": room_a, "serial": 1, "exp": now_s() - 5}),
        Algorithm::HS256,
        INVITE_SECRET,
    );
    assert_error(
        &join_with(&mut other, &room_a, json!({"invite_token": expired})),
        "Invite expired",
        "invite_expired",
    );
    let forged = sign_with(
        &json!({"aud": "tandem-invite", "room": room_a, "serial": 1, "exp": now_s() + 60}),
        Algorithm::HS256,
        "not-the-invite-secret",
    );
    for bad in [forged.as_str(), "garbage", &token("u9", "User")] {
        assert_error(
            &join_with(&mut other, &room_a, json!({"invite_token": bad})),
            "Invalid invite",
            "invite_invalid",
        );
    }

    // The room closes (its host leaves: the guest becomes host, then leaves too); its
    // invite no longer admits anyone.
    host_a.send(json!({"type": "leave_room", "room": room_a}));
    assert_eq!(
        guest.recv_type("host_change")["payload"]["host_id"],
        guest.id.as_str()
    );
    guest.send(json!({"type": "leave_room", "room": room_a}));
    guest.recv_type("room_list");
    assert_error(
        &join_with(&mut other, &room_a, json!({"invite_token": token_a})),
        "Room not found",
        "room_not_found",
    );
}

/// A private room is absent from everyone's room list and refuses a join without an invite,
/// even from an authenticated user; its invite admits.
#[test]
fn private_rooms() {
    let addr = start(auth_config());
    let (mut host, room) = host(addr, "h1", json!({"private": true}));
    let (_public_host, public) = host_public(addr);
    let mut user = Client::connect(addr);
    authenticate(&mut user, &token("u1", "User"));
    user.send(json!({"type": "list_rooms"}));
    let list = user.recv_type("room_list");
    let ids: Vec<&str> = list["payload"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![public.as_str()], "{list}");
    assert_error(
        &join_with(&mut user, &room, json!({})),
        "This room is private: an invite is required",
        "invite_required",
    );
    let (token, _) = invite(&mut host, &room, None);
    let state = join_with(&mut user, &room, json!({"invite_token": token}));
    assert_eq!(state["type"], "room_state", "{state}");
}

fn host_public(addr: std::net::SocketAddr) -> (Client, String) {
    host(addr, "h2", json!({}))
}

/// Private rooms work with authentication off too (invites signed with a random key).
#[test]
fn private_room_without_auth() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({"options": {"private": true}}));
    let mut guest = Client::connect(addr);
    guest.send(json!({"type": "list_rooms"}));
    assert_eq!(guest.recv_type("room_list")["payload"], json!([]));
    assert_error(
        &join_with(&mut guest, &room, json!({})),
        "This room is private: an invite is required",
        "invite_required",
    );
    let (token, _) = invite(&mut host, &room, Some(60));
    assert_eq!(
        join_with(&mut guest, &room, json!({"invite_token": token}))["type"],
        "room_state"
    );
}

/// A member who is not the host gets `not_host` for player_event, state_update and
/// create_invite (the original ignores them silently).
#[test]
fn non_host_control_refused() {
    let addr = start(auth_config());
    let (mut host, room) = host(addr, "h1", json!({}));
    let (invite_token, _) = invite(&mut host, &room, None);
    let mut guest = Client::connect(addr);
    let state = join_with(&mut guest, &room, json!({"invite_token": invite_token}));
    assert_eq!(state["type"], "room_state");
    host.recv_type("participants_update");
    for message in [
        json!({"type": "player_event", "room": room, "payload": {"action": "play", "position": 1.0}}),
        json!({"type": "state_update", "room": room, "payload": {"position": 1.0, "play_state": "playing"}}),
        json!({"type": "create_invite", "room": room, "payload": {}}),
    ] {
        guest.send(message);
        assert_error(
            &guest.recv(),
            "Only the host can control playback",
            "not_host",
        );
    }
    host.expect_quiet();
}

/// One identity hosts at most ROOMS_PER_IDENTITY_MAX rooms at once.
#[test]
fn rooms_per_identity() {
    let mut config = auth_config();
    config.core.rooms_per_identity_max = 2;
    let addr = start(config);
    let _a = host(addr, "same", json!({}));
    let _b = host(addr, "same", json!({}));
    let mut third = Client::connect(addr);
    assert_error(
        &create(&mut third, json!({"auth_token": token("same", "Host")})),
        "Too many rooms",
        "rooms_limit",
    );
    let _other = host(addr, "someone-else", json!({}));
}

// ----- the v1 dialect -----

fn v1(addr: std::net::SocketAddr) -> Client {
    let mut client = Client::connect_raw(addr, "/v1/ws", &[]);
    assert_eq!(client.recv()["type"], "server/hello");
    client
}

fn v1_request(client: &mut Client, kind: &str, id: &str, payload: Value) -> Value {
    client
        .send_text(&json!({"v": 1, "type": kind, "requestId": id, "payload": payload}).to_string());
    client.recv()
}

fn v1_join(client: &mut Client, room: &str, user: &str, extra: Value) -> Value {
    let mut payload =
        json!({"roomId": room, "client": {"userId": user, "displayName": "Declared"}});
    for (key, value) in extra.as_object().unwrap() {
        payload[key] = value.clone();
    }
    v1_request(client, "room/join", "j", payload)
}

fn assert_v1_error(message: &Value, code: &str) {
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["payload"]["code"], code, "{message}");
}

/// v1: `room/join` carries the token; the userId must be its `sub`; the display name is the
/// token's; without a token the join is `unauthorized`; an invite from `room/create_invite`
/// admits a guest; a guest's playback state is `unauthorized`.
#[test]
fn v1_auth_and_invites() {
    let addr = start(auth_config());
    let mut host = v1(addr);
    assert_v1_error(&v1_join(&mut host, "den", "h1", json!({})), "unauthorized");
    assert_v1_error(
        &v1_join(
            &mut host,
            "den",
            "someone-else",
            json!({"token": token("h1", "Hana")}),
        ),
        "unauthorized",
    );
    let joined = v1_join(
        &mut host,
        "den",
        "h1",
        json!({"token": token("h1", "Hana")}),
    );
    assert_eq!(joined["type"], "room/joined", "{joined}");
    assert_eq!(
        joined["payload"]["you"],
        json!({"userId": "h1", "displayName": "Hana"})
    );
    assert_eq!(host.recv()["type"], "ack");

    let created = v1_request(
        &mut host,
        "room/create_invite",
        "i",
        json!({"roomId": "den", "expiresInSec": 120}),
    );
    assert_eq!(created["type"], "room/invite", "{created}");
    assert_eq!(created["payload"]["roomId"], "den");
    let invite = created["payload"]["inviteToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(created["payload"]["expiresAtMs"].as_u64().unwrap() > now_ms());
    assert_eq!(host.recv()["type"], "ack");

    let mut guest = v1(addr);
    assert_v1_error(
        &v1_join(&mut guest, "den", "g1", json!({"inviteToken": "forged"})),
        "unauthorized",
    );
    let joined = v1_join(&mut guest, "den", "g1", json!({"inviteToken": invite}));
    assert_eq!(joined["type"], "room/joined", "{joined}");
    assert_eq!(guest.recv()["type"], "ack");
    assert_eq!(host.recv()["type"], "room/peer_joined");

    let state = json!({"roomId": "den", "state": {"playing": true, "positionSec": 5.0}});
    assert_v1_error(
        &v1_request(&mut guest, "watch/playback_state", "p", state),
        "unauthorized",
    );
    assert_v1_error(
        &v1_request(
            &mut guest,
            "room/create_invite",
            "c",
            json!({"roomId": "den"}),
        ),
        "unauthorized",
    );
    // A guest without a verified identity can neither take the host's seat nor pass for
    // the host: its userId and name are marked as a guest's.
    let mut thief = v1(addr);
    let reply = v1_request(
        &mut host,
        "room/create_invite",
        "k",
        json!({"roomId": "den"}),
    );
    assert_eq!(host.recv()["type"], "ack");
    let invite = reply["payload"]["inviteToken"]
        .as_str()
        .unwrap()
        .to_string();
    let joined = v1_join(&mut thief, "den", "h1", json!({"inviteToken": invite}));
    assert_eq!(joined["type"], "room/joined", "{joined}");
    assert_eq!(
        joined["payload"]["you"],
        json!({"userId": "guest:h1", "displayName": "Declared (guest)"})
    );
    assert_eq!(thief.recv()["type"], "ack");
    let peer = host.recv();
    assert_eq!(peer["payload"]["peer"]["userId"], "guest:h1", "{peer}");
    host.send_text(
        &json!({"v": 1, "type": "chat/send", "payload": {"roomId": "den", "text": "still mine"}})
            .to_string(),
    );
    let chat = host.recv();
    assert_eq!(
        chat["type"], "chat/message",
        "the host kept its seat: {chat}"
    );
    assert_eq!(chat["payload"]["from"]["userId"], "h1");
}

/// An OpenWatchParty host's invite admits a v1 guest (and the v1 guest's chat reaches the
/// OpenWatchParty host under the name it declared, since guests have no token).
#[test]
fn invite_across_dialects() {
    let addr = start(auth_config());
    let (mut host, room) = host(addr, "h1", json!({"private": true}));
    let (invite_token, _) = invite(&mut host, &room, None);
    let mut guest = v1(addr);
    let joined = v1_join(
        &mut guest,
        &room,
        "g1",
        json!({"inviteToken": invite_token}),
    );
    assert_eq!(joined["type"], "room/joined", "{joined}");
    assert_eq!(
        host.recv_type("participants_update")["payload"]["participant_count"],
        2
    );
}

// ----- found by an attack run (each test names its finding) -----

/// F1: a guest whose join elsewhere is refused keeps the userId the others know it by (it
/// used to keep the refused one, and so could take a member's userId and its WebRTC
/// signals). F2: a guest declaring a member's userId is known as `guest:<id>`, so the real
/// user still gets in. F3: a guest's name is marked `(guest)`.
#[test]
fn guests_cannot_pass_for_members() {
    let addr = start(auth_config());
    let mut host = v1(addr);
    let joined = v1_join(
        &mut host,
        "party",
        "h1",
        json!({"token": token("h1", "Hana")}),
    );
    assert_eq!(joined["type"], "room/joined");
    assert_eq!(host.recv()["type"], "ack");
    let reply = v1_request(
        &mut host,
        "room/create_invite",
        "i",
        json!({"roomId": "party"}),
    );
    assert_eq!(host.recv()["type"], "ack");
    let invite = reply["payload"]["inviteToken"]
        .as_str()
        .unwrap()
        .to_string();

    let mut guest = v1(addr);
    let joined = v1_join(&mut guest, "party", "bob", json!({"inviteToken": invite}));
    assert_eq!(
        joined["payload"]["you"],
        json!({"userId": "guest:bob", "displayName": "Declared (guest)"})
    );
    assert_eq!(guest.recv()["type"], "ack");
    host.recv(); // peer_joined
                 // A refused join elsewhere under the host's id changes nothing.
    assert_v1_error(&v1_join(&mut guest, "zzz", "h1", json!({})), "unauthorized");
    guest.send_text(
        &json!({"v": 1, "type": "chat/send", "payload": {"roomId": "party", "text": "hi"}})
            .to_string(),
    );
    let chat = host.recv();
    assert_eq!(chat["payload"]["from"]["userId"], "guest:bob", "{chat}");
    // The real bob joins with his token.
    let mut bob = v1(addr);
    let joined = v1_join(
        &mut bob,
        "party",
        "bob",
        json!({"token": token("bob", "Bob")}),
    );
    assert_eq!(joined["type"], "room/joined", "{joined}");
    assert_eq!(joined["payload"]["you"]["userId"], "bob");
}

/// F6: a connection authenticated as one user cannot switch to another (one connection
/// could otherwise host rooms under any number of identities).
#[test]
fn no_second_identity_on_a_connection() {
    let addr = start(auth_config());
    let mut client = Client::connect(addr);
    assert_eq!(
        authenticate(&mut client, &token("alice", "Alice"))["type"],
        "auth_success"
    );
    assert_auth_failed(&mut client, &token("bob", "Bob"));
    // The same user's refreshed token is fine.
    assert_eq!(
        authenticate(&mut client, &token("alice", "Alice"))["type"],
        "auth_success"
    );
    let state = create(&mut client, json!({}));
    let room = state["room"].as_str().unwrap().to_string();
    client.send(json!({"type": "chat_message", "room": room, "payload": {"text": "me"}}));
    assert_eq!(
        client.recv_type("chat_message")["payload"]["username"],
        "Alice"
    );
}

/// F7: a connection without an identity learns nothing about which rooms exist: joining an
/// existing and a missing room get the same answer, and naming a missing room in a ping
/// gets no lost-room notice.
#[test]
fn no_oracle_without_identity() {
    let addr = start(auth_config());
    let (_host, room) = host(addr, "h1", json!({}));
    let mut stranger = Client::connect(addr);
    for target in [room.as_str(), "0f8fad5b-d9cb-469f-a165-70867728950e"] {
        assert_error(
            &join_with(&mut stranger, target, json!({})),
            "Authentication required",
            "auth_required",
        );
        stranger.send(json!({"type": "ping", "room": target, "payload": {"client_ts": 1}}));
        assert_eq!(stranger.recv()["type"], "pong");
    }
    stranger.expect_quiet();
}

/// F9: at a handover, a member with a verified identity comes before a guest admitted by
/// invite; the owner of a private room may come back to it whoever hosts it.
#[test]
fn handover_prefers_members_with_an_identity() {
    let addr = start(auth_config());
    let (mut owner, room) = host(addr, "owner", json!({"private": true}));
    let (invite_token, _) = invite(&mut owner, &room, None);
    let mut guest = Client::connect(addr);
    assert_eq!(
        join_with(&mut guest, &room, json!({"invite_token": invite_token}))["type"],
        "room_state"
    );
    owner.recv_type("participants_update");
    let (second_invite, _) = invite(&mut owner, &room, None);
    let mut member = Client::connect(addr);
    let state = join_with(
        &mut member,
        &room,
        json!({"invite_token": second_invite, "auth_token": token("m1", "Member")}),
    );
    assert_eq!(state["type"], "room_state");
    owner.send(json!({"type": "leave_room", "room": room}));
    let change = guest.recv_type("host_change");
    assert_eq!(
        change["payload"]["host_id"],
        member.id.as_str(),
        "not the guest"
    );
    // The owner comes back to its private room without an invite.
    let mut again = Client::connect(addr);
    let state = join_with(
        &mut again,
        &room,
        json!({"auth_token": token("owner", "Owner")}),
    );
    assert_eq!(state["type"], "room_state", "{state}");
}

/// F8: with authentication off, a private room cannot be entered by taking a member's seat
/// over (declared userIds): an invite is needed for that too.
#[test]
fn private_room_take_over_needs_an_invite() {
    let addr = start(config());
    let mut host = v1(addr);
    assert_eq!(
        v1_join(&mut host, "den", "h1", json!({}))["type"],
        "room/joined"
    );
    assert_eq!(host.recv()["type"], "ack");
    // Made private by an OpenWatchParty host instead: v1 has no option for it, so use one.
    let mut owp_host = Client::connect(addr);
    let room = owp_host.create_room(json!({"options": {"private": true}}));
    owp_host.send(json!({"type": "auth", "payload": {"user_id": "o1"}}));
    let mut intruder = v1(addr);
    assert_v1_error(
        &v1_join(&mut intruder, &room, "anonymous", json!({})),
        "unauthorized",
    );
    assert_v1_error(
        &v1_join(&mut intruder, &room, "o1", json!({})),
        "unauthorized",
    );
    owp_host.expect_quiet();
}

/// F5: a setting that is not valid UTF-8 (a binary JWT_SECRET) stops the server instead of
/// being taken as unset (which turned authentication off).
#[cfg(unix)]
#[test]
fn non_utf8_secret_refuses_to_start() {
    use std::os::unix::ffi::OsStrExt;
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("STATE_FILE", "")
        .env(
            "JWT_SECRET",
            std::ffi::OsStr::from_bytes(b"\xff\xfe-binary-secret"),
        )
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run tandem");
    assert_eq!(status.code(), Some(2));
}

/// Reserved subjects are refused: `anonymous` (a seat that declared no id) and `guest:…`.
#[test]
fn reserved_subjects_refused() {
    let addr = start(auth_config());
    let mut client = Client::connect(addr);
    assert_auth_failed(&mut client, &token("anonymous", "A"));
    assert_auth_failed(&mut client, &token("guest:bob", "B"));
}

/// Tokens and secrets never reach the log, even at trace level: a valid token, a refused
/// one, an invite, a resume token and the secrets themselves are absent from everything the
/// server wrote.
#[test]
fn no_tokens_or_secrets_in_logs() {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("ALLOWED_ORIGINS", "*")
        .env("LOG_LEVEL", "trace")
        .env("STATE_FILE", "")
        .env("JWT_SECRET", SECRET)
        .env("INVITE_SECRET", INVITE_SECRET)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn tandem");
    let mut stderr = child.stderr.take().expect("stderr");
    // The address is on the first lines; read byte by byte until it is known.
    let mut early = Vec::new();
    let addr = loop {
        let mut byte = [0u8; 1];
        assert_eq!(stderr.read(&mut byte).expect("log"), 1, "log ended");
        early.push(byte[0]);
        if byte[0] == b'\n' {
            let text = String::from_utf8_lossy(&early).into_owned();
            if let Some(addr) = text
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("addr="))
            {
                break addr.parse::<std::net::SocketAddr>().expect("address");
            }
        }
    };
    let good = token("u1", "Alice");
    let mut bad = token("u2", "Bob");
    bad.push('x');
    let mut client = Client::connect_raw(addr, "/ws", &[]);
    let hello = client.recv();
    let resume_token = hello["payload"]["resume_token"]
        .as_str()
        .unwrap()
        .to_string();
    client.recv();
    assert_eq!(authenticate(&mut client, &good)["type"], "auth_success");
    assert_auth_failed(&mut client, &bad);
    let room = create(&mut client, json!({}))["room"]
        .as_str()
        .unwrap()
        .to_string();
    let (invite_token, _) = invite(&mut client, &room, None);
    let mut other = Client::connect(addr);
    join_with(
        &mut other,
        &room,
        json!({"invite_token": "forged-invite-token"}),
    );
    other.send(json!({"type": "resume", "payload": {"token": resume_token}}));
    other.drain();
    drop(client);
    drop(other);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut log = String::from_utf8_lossy(&early).into_owned();
    let _ = stderr.read_to_string(&mut log);
    let _ = child.wait();
    assert!(log.contains("event=auth_failed"), "the refusal is logged");
    for secret in [
        good.as_str(),
        bad.as_str(),
        invite_token.as_str(),
        resume_token.as_str(),
        "forged-invite-token",
        SECRET,
        INVITE_SECRET,
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    // Not even a token's signature alone.
    let signature = good.rsplit('.').next().unwrap();
    assert!(!log.contains(signature));
}

/// Found by an attack run: a guest admitted by invite could claim the room once every member
/// with an identity had blipped, although a handover would still have preferred them. A
/// guest's claim waits while the room has another member with an identity, connected or not.
#[test]
fn a_guest_does_not_claim_over_an_away_member() {
    let mut config = config();
    config.auth.jwt_secret = Some(tandem::auth::Secret(SECRET.as_bytes().to_vec()));
    config.core.host_claim_after_ms = 0;
    config.core.resume_grace_ms = 600_000;
    config.core.host_grace_ms = 600_000;
    let addr = start(config);
    let mut host = Client::connect(addr);
    host.send(json!({"type": "auth", "payload": {"token": token("u-host", "Host")}}));
    host.recv_type("auth_success");
    let room = host.create_room(json!({}));
    let mut member = Client::connect(addr);
    member.send(json!({"type": "auth", "payload": {"token": token("u-member", "Member")}}));
    member.recv_type("auth_success");
    member.join(&room);
    host.send(json!({"type": "create_invite", "room": room}));
    let invite = host.recv_type("invite_created")["payload"]["invite_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut guest = Client::connect(addr);
    guest.send(json!({"type": "join_room", "room": room,
                      "payload": {"user_name": "G", "invite_token": invite}}));
    guest.recv_type("room_state");
    drop(host);
    drop(member);
    // Both away now (two presence changes: wait for the one that shows them both).
    loop {
        let update = guest.recv_type("participants_update");
        let people = update["payload"]["participants"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if people.iter().filter(|p| p["away"] == true).count() == 2 {
            break;
        }
    }
    guest.send(json!({"type": "claim_host", "room": room}));
    assert_error(
        &guest.recv(),
        "The host is here: ask them to hand over",
        "host_present",
    );
}
