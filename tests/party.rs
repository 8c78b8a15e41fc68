//! What the built-in party page needs from the server, over real sockets: `GET /` with its
//! headers and policy, the same-origin WebSocket, and the OpenWatchParty additions the page
//! uses (`media_url`, `set_media`, `transfer_host`, `claim_host`, the exact clock for a
//! scheduling joiner). The page itself runs in Chromium under `make e2e`.

mod common;

use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// Standard base64, written out here so the test does not share the server's encoder.
fn base64(bytes: &[u8]) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = String::new();
    for byte in bytes {
        bits.push_str(&format!("{byte:08b}"));
    }
    while bits.len() % 6 != 0 {
        bits.push('0');
    }
    let mut out: String = bits
        .as_bytes()
        .chunks(6)
        .map(|six| {
            let index = u8::from_str_radix(std::str::from_utf8(six).unwrap(), 2).unwrap();
            alphabet[index as usize] as char
        })
        .collect();
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

/// `GET /`: the page, small, self-contained, with a policy that allows exactly its own
/// script and style; `HEAD` has the headers only; a current ETag gets 304; other methods
/// 405; with `PARTY_PAGE=false`, 404.
#[test]
fn the_page_is_served() {
    let addr = start(config());
    let page = http(addr, b"GET / HTTP/1.1\r\nHost: nas.lan\r\n\r\n");
    assert_eq!(status(&page), 200, "{page:.300}");
    assert_eq!(
        header(&page, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let html = body(&page);
    assert_eq!(
        header(&page, "Content-Length").and_then(|l| l.parse().ok()),
        Some(html.len())
    );
    assert!(html.len() < 60 * 1024, "the page is {} bytes", html.len());
    assert!(html.starts_with("<!doctype html>"));
    assert_eq!(header(&page, "Cache-Control"), Some("no-cache"));
    assert_eq!(header(&page, "X-Content-Type-Options"), Some("nosniff"));
    // A page that opened the party's tab cannot reach into it (or steer its address).
    assert_eq!(
        header(&page, "Cross-Origin-Opener-Policy"),
        Some("same-origin")
    );
    // Nothing from elsewhere: no external script, style, font or image, no CDN.
    for pattern in [
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
        "<link",
        "<iframe",
    ] {
        assert!(!html.contains(pattern), "the page has {pattern}");
    }
    // The policy names the hash of each inline script and style, and nothing unsafe.
    let csp = header(&page, "Content-Security-Policy").expect("a policy");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    for tag in ["script", "style"] {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = html.find(&open).expect("an inline block") + open.len();
        let end = start + html[start..].find(&close).expect("closed");
        let hash = base64(&Sha256::digest(&html.as_bytes()[start..end]));
        assert!(
            csp.contains(&format!("'sha256-{hash}'")),
            "{tag} hash {hash} not in {csp}"
        );
        assert_eq!(html.matches(&open).count(), 1, "one inline {tag}");
    }
    // HEAD: same headers, no body.
    let head = http(addr, b"HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(status(&head), 200);
    assert_eq!(
        header(&head, "Content-Length"),
        header(&page, "Content-Length")
    );
    assert_eq!(body(&head), "");
    // Revalidation.
    let etag = header(&page, "ETag").expect("an ETag");
    let again = http(
        addr,
        format!("GET / HTTP/1.1\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status(&again), 304, "{again}");
    assert_eq!(body(&again), "");
    let stale = http(addr, b"GET / HTTP/1.1\r\nIf-None-Match: \"old\"\r\n\r\n");
    assert_eq!(status(&stale), 200);
    assert_eq!(
        status(&http(addr, b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")),
        405
    );
    assert_eq!(
        status(&http(addr, b"GET /index.html HTTP/1.1\r\n\r\n")),
        200
    );

    let mut off = config();
    off.net.party_page = false;
    let addr = start(off);
    assert_eq!(status(&http(addr, b"GET / HTTP/1.1\r\n\r\n")), 404);
}

/// The status of a WebSocket upgrade of `/ws` with this `Host` and `Origin`.
fn upgrade_status(addr: std::net::SocketAddr, host: &str, origin: &str) -> u16 {
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
    status(&String::from_utf8_lossy(&buf[..n]))
}

fn strict_origins() -> tandem::config::Config {
    let mut config = config();
    config.allowed_origins = Some(vec!["http://localhost:8096".into()]);
    config
}

/// The page opens its WebSocket from its own origin: allowed whatever ALLOWED_ORIGINS says;
/// another origin is still refused.
#[test]
fn the_page_origin_may_connect() {
    let addr = start(strict_origins());
    let host = addr.to_string();
    assert_eq!(upgrade_status(addr, &host, &format!("http://{host}")), 101);
    assert_eq!(upgrade_status(addr, &host, "http://localhost:8096"), 101);
    assert_eq!(upgrade_status(addr, &host, "http://evil.example"), 403);
    assert_eq!(
        upgrade_status(addr, &host, &format!("http://{host}.evil.example")),
        403
    );
}

/// DNS rebinding: a stranger's page under a public name that resolves to this server sends
/// `Host` and `Origin` that agree; that is not the server's own page.
#[test]
fn a_rebound_public_name_is_not_the_page() {
    let addr = start(strict_origins());
    for (host, allowed) in [("evil.example:3000", false), ("nas.lan:3000", true)] {
        let got = upgrade_status(addr, host, &format!("http://{host}"));
        assert_eq!(got, if allowed { 101 } else { 403 }, "{host}");
    }
}

/// `media_url` at creation and `set_media` later: every member's `room_state` carries it;
/// only the host may change it; an empty or oversize one is not a media URL.
#[test]
fn media_url_and_set_media() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    host.send(json!({"type": "create_room",
                     "payload": {"name": "Film", "media_url": "http://nas.lan/a.webm"}}));
    let state = host.recv_type("room_state");
    assert_eq!(
        state["payload"]["media_url"], "http://nas.lan/a.webm",
        "{state}"
    );
    assert_eq!(state["payload"]["media_id"], serde_json::Value::Null);
    let room = state["room"].as_str().unwrap().to_string();
    let mut guest = Client::connect(addr);
    let joined = guest.join(&room);
    assert_eq!(joined["payload"]["media_url"], "http://nas.lan/a.webm");
    host.recv_type("participants_update");

    host.send(json!({"type": "set_media", "room": room,
                     "payload": {"media_url": "file:movie.mkv#1234"}}));
    for client in [&mut host, &mut guest] {
        let refresh = client.recv_type("room_state");
        assert_eq!(
            refresh["payload"]["media_url"], "file:movie.mkv#1234",
            "{refresh}"
        );
    }
    guest.send(json!({"type": "set_media", "room": room, "payload": {"media_url": "x"}}));
    assert_error(
        &guest.recv(),
        "Only the host can control playback",
        "not_host",
    );
    for bad in [json!(""), json!("a".repeat(513)), json!(7)] {
        host.send(json!({"type": "set_media", "room": room, "payload": {"media_url": bad}}));
        assert_error(&host.recv(), "Invalid message format", "invalid_message");
    }
    // A room created with an unusable media_url simply has none.
    let mut other = Client::connect(addr);
    other.send(json!({"type": "create_room", "payload": {"media_url": "a\u{7}b"}}));
    let state = other.recv_type("room_state");
    assert!(state["payload"].get("media_url").is_none(), "{state}");
}

/// `transfer_host`: the host hands over to a member by client id; everyone is told. Only the
/// host may, and only to a member.
#[test]
fn transfer_host() {
    let addr = start(config());
    let (mut host, mut guest, room) = host_and_guest(addr);

    guest.send(json!({"type": "transfer_host", "room": room,
                      "payload": {"client_id": guest.id}}));
    assert_error(
        &guest.recv(),
        "Only the host can control playback",
        "not_host",
    );
    host.send(json!({"type": "transfer_host", "room": room,
                     "payload": {"client_id": "0f8fad5b-d9cb-469f-a165-70867728950e"}}));
    assert_error(&host.recv(), "Peer not found", "peer_not_found");
    host.send(json!({"type": "transfer_host", "room": room, "payload": {}}));
    assert_error(&host.recv(), "Invalid message format", "invalid_message");

    host.send(json!({"type": "transfer_host", "room": room,
                     "payload": {"client_id": guest.id}}));
    let guest_id = guest.id.clone();
    for client in [&mut host, &mut guest] {
        let change = client.recv_type("host_change");
        assert_eq!(change["payload"]["host_id"], guest_id.as_str());
        let state = client.recv_type("room_state");
        assert_eq!(state["payload"]["host_id"], guest_id.as_str());
    }
    // The former host is a member now; the new one commands.
    host.send(json!({"type": "player_event", "room": room, "payload": {"action": "pause"}}));
    assert_error(
        &host.recv(),
        "Only the host can control playback",
        "not_host",
    );
    guest.send(json!({"type": "player_event", "room": room,
                      "payload": {"action": "pause", "position": 3.0}}));
    assert_eq!(host.recv_type("player_event")["payload"]["position"], 3.0);
}

/// A host and a guest in a room whose graces are long, with `HOST_CLAIM_AFTER_MS` as given.
fn claim_party(claim_after_ms: u64) -> (std::net::SocketAddr, Client, Client, String) {
    let mut config = config();
    config.core.host_grace_ms = 600_000;
    config.core.resume_grace_ms = 600_000;
    config.core.host_claim_after_ms = claim_after_ms;
    let addr = start(config);
    let (host, guest, room) = host_and_guest(addr);
    (addr, host, guest, room)
}

/// `claim_host`: refused while the host is connected (`host_present`); once the host's
/// connection has been gone for `HOST_CLAIM_AFTER_MS` (0 here), the member who asks becomes
/// host at once, without waiting for the host's grace.
#[test]
fn claim_host_when_the_host_is_away() {
    let (addr, host, mut guest, room) = claim_party(0);

    guest.send(json!({"type": "claim_host", "room": room}));
    assert_error(
        &guest.recv(),
        "The host is here: ask them to hand over",
        "host_present",
    );
    drop(host);
    let away = guest.recv_type("participants_update");
    assert_eq!(away["payload"]["participants"][0]["away"], true, "{away}");
    // A stranger naming the room does not get in by claiming it.
    let mut stranger = Client::connect(addr);
    stranger.send(json!({"type": "claim_host", "room": room}));
    assert!(stranger.drain().is_empty());
    guest.send(json!({"type": "claim_host", "room": room}));
    let change = guest.recv_type("host_change");
    assert_eq!(change["payload"]["host_id"], guest.id.as_str());
    let state = guest.recv_type("room_state");
    assert_eq!(state["payload"]["host_id"], guest.id.as_str());
    assert_eq!(state["payload"]["participant_count"], 2, "{state}");
    // The new host's claim again changes nothing and is not refused.
    guest.send(json!({"type": "claim_host", "room": room}));
    assert!(guest.drain().is_empty());
}

/// A host whose connection just blipped keeps its room: a claim before
/// `HOST_CLAIM_AFTER_MS` has passed is refused `host_present`.
#[test]
fn no_claim_while_the_host_may_be_back_soon() {
    let (_, host, mut guest, room) = claim_party(600_000);
    drop(host);
    guest.recv_type("participants_update");
    guest.send(json!({"type": "claim_host", "room": room}));
    assert_error(
        &guest.recv(),
        "The host is here: ask them to hand over",
        "host_present",
    );
}

/// Handing over goes to a member who is connected: an away member is `peer_not_found`.
#[test]
fn no_transfer_to_an_away_member() {
    let mut config = config();
    config.core.resume_grace_ms = 600_000;
    let addr = start(config);
    let (mut host, guest, room) = host_and_guest(addr);
    let id = guest.id.clone();
    drop(guest);
    host.recv_type("participants_update");
    host.send(json!({"type": "transfer_host", "room": room, "payload": {"client_id": id}}));
    assert_error(&host.recv(), "Peer not found", "peer_not_found");
}

/// Each content change or handover sends every member a `room_state`: at most one per
/// `ROOM_REFRESH_INTERVAL_MS` per room (a second sooner is `rate_limited`, and two members
/// passing the host role back and forth are limited together); a content that does not
/// change is not told again.
#[test]
fn room_wide_changes_are_spaced() {
    let mut config = config();
    config.core.room_refresh_interval_ms = 600_000;
    let addr = start(config);
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({"media_url": "http://nas.lan/a.webm"}));
    let mut guest = Client::connect(addr);
    guest.join(&room);
    host.recv_type("participants_update");
    // The same content again: nothing to tell.
    host.send(json!({"type": "set_media", "room": room, "payload": {"media_url": "http://nas.lan/a.webm"}}));
    assert!(host.drain().is_empty());
    host.send(json!({"type": "set_media", "room": room, "payload": {"media_url": "http://nas.lan/b.webm"}}));
    assert_eq!(
        host.recv_type("room_state")["payload"]["media_url"],
        "http://nas.lan/b.webm"
    );
    guest.recv_type("room_state");
    host.send(json!({"type": "set_media", "room": room, "payload": {"media_url": "http://nas.lan/c.webm"}}));
    assert_error(&host.recv(), "Rate limit exceeded", "rate_limited");
    host.send(json!({"type": "transfer_host", "room": room, "payload": {"client_id": guest.id}}));
    assert_error(&host.recv(), "Rate limit exceeded", "rate_limited");
    assert!(guest.drain().is_empty());
}

/// The content rule holds for every dialect: a v1 host's content with a control character is
/// refused like an OpenWatchParty one.
#[test]
fn v1_content_follows_the_same_rule() {
    let addr = start(config());
    let mut v1 = Client::connect_raw(addr, "/v1/ws", &[]);
    assert_eq!(v1.recv()["type"], "server/hello");
    v1.send(json!({"v": 1, "type": "room/join", "requestId": "j",
                   "payload": {"roomId": "den", "client": {"userId": "u1", "displayName": "U"}}}));
    loop {
        if v1.recv()["type"] == "ack" {
            break;
        }
    }
    v1.send(
        json!({"v": 1, "type": "watch/set_content", "requestId": "c",
                   "payload": {"roomId": "den", "contentId": "https://x/\u{0}\r\nX: 1"}}),
    );
    let answer = v1.recv();
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["payload"]["code"], "bad_request", "{answer}");
    v1.send(
        json!({"v": 1, "type": "watch/set_content", "requestId": "d",
                   "payload": {"roomId": "den", "contentId": "file:a\u{202e}b#1"}}),
    );
    assert_eq!(v1.recv()["payload"]["code"], "bad_request");
}

/// A joiner that follows the schedule is told the room clock exactly; the stock client's
/// `room_state` keeps the lead it adds itself taken off.
#[test]
fn a_scheduling_joiner_gets_the_exact_clock() {
    let addr = start(config());
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({"start_pos": 42.5}));
    let mut stock = Client::connect(addr);
    let state = stock.join(&room);
    assert_eq!(num(&state["payload"]["state"]["position"]), 42.2);
    let mut page = Client::connect(addr);
    page.declare_scheduled();
    let state = page.join(&room);
    assert_eq!(num(&state["payload"]["state"]["position"]), 42.5);
}

/// Found by an attack run: someone joining and leaving in a loop made every member receive
/// the whole member list each time. Past `JOIN_LISTS_PER_SEC` joins in a room's second, a
/// join carries the count only; the list follows once, with the next presence update.
#[test]
fn join_churn_does_not_resend_the_list() {
    let mut config = config();
    config.core.presence_interval_ms = 200;
    config.core.join_lists_per_second = 2;
    let addr = start(config);
    let mut host = Client::connect(addr);
    let room = host.create_room(json!({}));
    let mut churner = Client::connect(addr);
    for _ in 0..6 {
        churner.join(&room);
        churner.send(json!({"type": "leave_room"}));
        churner.recv_type("room_list");
    }
    let told: Vec<_> = host
        .drain()
        .into_iter()
        .filter(|m| m["type"] == "participants_update")
        .collect();
    assert_eq!(told.len(), 6, "every join is told: {told:?}");
    assert!(told.iter().all(|m| m["payload"]["participant_count"] == 2));
    let listed = told
        .iter()
        .filter(|m| m["payload"].get("participants").is_some())
        .count();
    assert_eq!(listed, 2, "{told:?}");
    // The list follows, once, and it is the room as it is now.
    let follow = host.recv_type("participants_update");
    assert_eq!(follow["payload"]["participant_count"], 1, "{follow}");
    assert_eq!(
        follow["payload"]["participants"].as_array().map(Vec::len),
        Some(1)
    );
}

/// Found by an attack run: hosts leaving one after another made every member receive a
/// fresh `room_state` per handover. Within `ROOM_REFRESH_INTERVAL_MS` of the last one, a
/// handover tells everyone `host_change` and only the new host its `room_state`.
#[test]
fn handovers_in_a_row_refresh_only_the_new_host() {
    let mut config = config();
    config.core.room_refresh_interval_ms = 600_000;
    let addr = start(config);
    let mut first = Client::connect(addr);
    let room = first.create_room(json!({}));
    let mut second = Client::connect(addr);
    second.join(&room);
    let mut third = Client::connect(addr);
    third.join(&room);
    let mut watcher = Client::connect(addr);
    watcher.join(&room);
    for client in [&mut second, &mut third, &mut watcher] {
        client.drain();
    }
    first.send(json!({"type": "leave_room"}));
    // Wait for the handover itself (another connection's message): what came with it is
    // queued before anything the watcher asks for afterwards.
    watcher.recv_type("host_change");
    let told = watcher.drain();
    let kinds: Vec<_> = told.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"room_state"), "{kinds:?}");
    let state = second.recv_type("room_state");
    assert_eq!(state["payload"]["host_id"], second.id.as_str());
    third.drain();
    // The new host leaves at once: the next member is host, and only it gets a room_state.
    second.send(json!({"type": "leave_room"}));
    let state = third.recv_type("room_state");
    assert_eq!(state["payload"]["host_id"], third.id.as_str());
    watcher.recv_type("host_change");
    let told = watcher.drain();
    let kinds: Vec<_> = told.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert!(!kinds.contains(&"room_state"), "{kinds:?}");
}
