//! Hostile clients against the real engine over in-memory pipes, on a virtual clock: one
//! connection's input must not cost the others memory or turns.

#[path = "driver/mod.rs"]
mod driver;

use std::io::Write;

use driver::engine::Driver;
use driver::mem_stream::{self, Knobs, MemStream};
use driver::UPGRADE;
use tandem::config::{CoreConfig, NetConfig};
use tandem::id::ConnId;
use tandem::net::engine::{EngineConfig, CONTROL_SLACK};

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    driver::frame(first, payload, [0x11, 0x22, 0x33, 0x44])
}

struct Peer {
    id: ConnId,
    client: MemStream,
    server: MemStream,
}

/// The shared in-memory driver (tests/driver) and the client ends of its pipes.
struct Rig {
    net: Driver,
    peers: Vec<Peer>,
}

impl Rig {
    fn new(net: NetConfig) -> Rig {
        let config = EngineConfig {
            net,
            core: CoreConfig::default(),
            connections_max: 16,
            allowed_origins: None,
            address_limits: Default::default(),
            trusted_proxies: Vec::new(),
        };
        Rig {
            net: Driver::with_seed(config, 3),
            peers: Vec::new(),
        }
    }

    /// A WebSocket client, upgraded and greeted; returns its index.
    fn connect(&mut self, window: usize) -> usize {
        let (mut client, server) = mem_stream::pair();
        let handle = server.handle();
        handle.set_knobs(Knobs {
            window,
            ..Knobs::default()
        });
        let id = self.net.accept(server);
        client.write_all(UPGRADE).expect("upgrade");
        self.peers.push(Peer {
            id,
            client,
            server: handle,
        });
        self.turn();
        let index = self.peers.len() - 1;
        let greeting = self.read(index);
        assert!(greeting.starts_with(b"HTTP/1.1 101"), "no upgrade");
        index
    }

    fn send(&mut self, who: usize, bytes: &[u8]) {
        self.peers[who].client.write_all(bytes).expect("send");
    }

    /// Sends `frame` if the pipe takes all of it; false (nothing sent) if it would not.
    fn offer_whole(&mut self, who: usize, frame: &[u8]) -> bool {
        let room = self.peers[who].client.knobs().window;
        let unread = self.peers[who].server.readable_bytes();
        if unread + frame.len() > room {
            return false;
        }
        self.peers[who]
            .client
            .write_all(frame)
            .expect("room was checked");
        true
    }

    /// Sends as much of `bytes` as the pipe takes (a client that is not being read blocks).
    fn offer(&mut self, who: usize, bytes: &[u8]) -> usize {
        match self.peers[who].client.write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("offer: {e}"),
        }
    }

    fn read(&mut self, who: usize) -> Vec<u8> {
        self.peers[who].client.handle().drain()
    }

    /// Bytes the server has read from `who`.
    fn taken_from(&self, who: usize) -> usize {
        let peer = &self.peers[who];
        peer.client.handle().written_total() as usize - peer.server.readable_bytes()
    }

    /// One loop turn: readiness for every peer with news, then flush and reap.
    fn turn(&mut self) {
        self.net.turn();
    }

    /// Turns until nothing is carried over (bounded).
    fn settle(&mut self) {
        self.net.settle();
    }
}

fn ping_message() -> Vec<u8> {
    frame(0x81, br#"{"type":"ping","payload":{"client_ts":1}}"#)
}

/// A client that sends pings and never reads is owed one pong, not one per ping: the server
/// keeps its queue within the cap (the pongs coalesce), reads no more than the message rate
/// of pings a second from it (then lets TCP push back), and keeps serving another client.
#[test]
fn ping_flood_without_reading_stays_bounded() {
    let net = NetConfig::default();
    let cap = net.outbox_bytes_max;
    let budget = net.read_bytes_per_turn_max;
    let rate = CoreConfig::default().messages_per_second_max as usize;
    let mut rig = Rig::new(net);
    let flooder = rig.connect(4 << 10);
    let canary = rig.connect(1 << 20);
    rig.read(canary);
    let ping = frame(0x89, &[7; 125]);
    let rounds = 100;
    for round in 0..rounds {
        // 100 ms a round: the canary stays within its rate limit, the flooder within the
        // write-stall deadline (it is not reading, so it would be evicted at 15 s).
        rig.net.now = rig.net.now.plus(100);
        // Whole pings, as many as the pipe takes (the stream must stay well-formed).
        while rig.offer_whole(flooder, &ping) {}
        rig.send(canary, &ping_message());
        rig.settle();
        let queued = rig.net.engine.queued_max();
        // At most the pongs allowed to wait (and the greeting), whatever was pinged.
        assert!(
            queued <= CONTROL_SLACK + 1024,
            "round {round}: {queued} bytes queued for a client that pinged"
        );
        assert!(queued <= cap + CONTROL_SLACK);
        let reply = rig.read(canary);
        assert!(
            reply.windows(6).any(|w| w == b"\"pong\""),
            "round {round}: the canary got no pong"
        );
    }
    assert_eq!(rig.net.engine.websockets(), 2, "nobody was evicted");
    // Per second: the pings of the rate and one more, plus what one turn's budget had
    // already read past them.
    let seconds = rounds / 10 + 1;
    let taken = rig.taken_from(flooder);
    let allowed = seconds * ((rate + 1) * ping.len() + budget);
    assert!(
        taken <= allowed,
        "read {taken} bytes of pings, at most {allowed} expected"
    );
    assert!(rig.net.engine.stats().paused >= 10);
}

/// A message larger than the read chunk leaves no large buffer behind: once the socket is
/// drained at a frame boundary the read state is rebuilt, and the connection goes on.
#[test]
fn large_message_buffer_is_released() {
    let mut rig = Rig::new(NetConfig::default());
    let who = rig.connect(1 << 20);
    rig.read(who);
    let text = format!(
        r#"{{"type":"ping","payload":{{"client_ts":1,"pad":"{}"}}}}"#,
        "x".repeat(60_000)
    );
    // Fragmented, with a ping in between: released only after the last fragment.
    let (first, rest) = text.as_bytes().split_at(30_000);
    rig.send(who, &frame(0x01, first));
    rig.settle();
    assert_eq!(
        rig.net.engine.stats().read_buffers_released,
        0,
        "mid-message"
    );
    rig.send(who, &frame(0x89, b"p"));
    rig.settle();
    assert_eq!(
        rig.net.engine.stats().read_buffers_released,
        0,
        "mid-message"
    );
    rig.send(who, &frame(0x80, rest));
    rig.settle();
    assert_eq!(rig.net.engine.stats().read_buffers_released, 1);
    let reply = rig.read(who);
    assert!(reply.windows(6).any(|w| w == b"\"pong\""));
    // Small messages afterwards: no more releases, answers as before.
    for _ in 0..3 {
        rig.send(who, &ping_message());
        rig.settle();
        assert!(rig.read(who).windows(6).any(|w| w == b"\"pong\""));
    }
    assert_eq!(rig.net.engine.stats().read_buffers_released, 1);
}

/// One sender with a backlog of large messages gets at most READ_BYTES_PER_TURN read per
/// turn, and another client's message is answered in the same turn.
#[test]
fn large_senders_share_the_turn() {
    let net = NetConfig::default();
    let budget = net.read_bytes_per_turn_max;
    let chunk = net.read_buffer_bytes;
    let mut rig = Rig::new(net);
    let streamer = rig.connect(1 << 20);
    let canary = rig.connect(1 << 20);
    rig.read(canary);
    let big = format!(
        r#"{{"type":"chat_message","payload":{{"text":"{}"}}}}"#,
        "y".repeat(60_000)
    );
    let frame_big = frame(0x81, big.as_bytes());
    for _ in 0..8 {
        rig.send(streamer, &frame_big);
    }
    rig.send(canary, &ping_message());
    let before = rig.taken_from(streamer);
    rig.turn();
    let taken = rig.taken_from(streamer) - before;
    assert!(
        taken <= budget + chunk,
        "{taken} bytes read from one client in one turn"
    );
    assert!(
        rig.net.engine.has_carry_over(),
        "the streamer comes back next turn"
    );
    let reply = rig.read(canary);
    assert!(
        reply.windows(6).any(|w| w == b"\"pong\""),
        "the canary waited behind the streamer"
    );
    // The next turn drives it from the carry-over list; a readiness event in the same turn
    // must not start a second budget.
    let before = rig.taken_from(streamer);
    let mut reaped = Vec::new();
    let now = rig.net.now;
    rig.net.engine.begin_turn(now);
    rig.net
        .engine
        .ready(now, rig.peers[streamer].id, true, true);
    rig.net
        .engine
        .ready(now, rig.peers[streamer].id, true, true);
    rig.net.engine.end_turn(now, &mut reaped);
    let taken = rig.taken_from(streamer) - before;
    assert!(
        taken <= budget + chunk,
        "{taken} bytes read from one client in one turn driven three times"
    );
    rig.settle();
    assert_eq!(
        rig.taken_from(streamer),
        rig.peers[streamer].client.handle().written_total() as usize
    );
}

/// A client past its message rate is not read for the rest of its second: what it sends
/// meanwhile waits in its socket, not in the server's CPU.
#[test]
fn over_rate_sender_is_not_read() {
    let mut rig = Rig::new(NetConfig::default());
    let rate = CoreConfig::default().messages_per_second_max as usize;
    let streamer = rig.connect(1 << 20);
    let text = format!(
        r#"{{"type":"chat_message","payload":{{"text":"{}"}}}}"#,
        "z".repeat(20_000)
    );
    let message = frame(0x81, text.as_bytes());
    let seconds = 5;
    // Whole frames only: what the pipe did not take is offered again first.
    let mut pending: Vec<u8> = Vec::new();
    for _ in 0..seconds * 10 {
        rig.net.now = rig.net.now.plus(100);
        loop {
            if pending.is_empty() {
                pending.extend_from_slice(&message);
            }
            let n = rig.offer(streamer, &pending);
            pending.drain(..n);
            if !pending.is_empty() {
                break;
            }
        }
        rig.settle();
    }
    let taken = rig.taken_from(streamer);
    let budget = NetConfig::default().read_bytes_per_turn_max;
    let allowed = (seconds + 1) * ((rate + 1) * message.len() + budget);
    assert!(
        taken <= allowed,
        "read {taken} bytes, at most {allowed} expected"
    );
    assert!(rig.net.engine.stats().paused >= seconds as u64);
    assert_eq!(rig.net.engine.websockets(), 1, "paused, not closed");
}

/// Frames that arrive with the HTTP request (before the 101, which RFC 6455 forbids but a
/// client may do) are followed too: the read buffer is released at a real frame boundary,
/// never mid-frame, and the stream stays intact.
#[test]
fn frames_sent_with_the_request_keep_the_boundaries() {
    let mut rig = Rig::new(NetConfig::default());
    let (mut client, server) = mem_stream::pair();
    let handle = server.handle();
    let id = rig.net.accept(server);
    let big = format!(
        r#"{{"type":"ping","payload":{{"client_ts":1,"pad":"{}"}}}}"#,
        "x".repeat(20_000)
    );
    let big_frame = frame(0x81, big.as_bytes());
    let mut request = UPGRADE.to_vec();
    request.extend_from_slice(&ping_message());
    // Half of a large frame comes with the request: the tracker must know it is mid-frame.
    let (first, rest) = big_frame.split_at(big_frame.len() / 2);
    request.extend_from_slice(first);
    client.write_all(&request).expect("request");
    rig.peers.push(Peer {
        id,
        client,
        server: handle,
    });
    rig.settle();
    assert_eq!(rig.net.engine.stats().read_buffers_released, 0, "mid-frame");
    rig.send(0, rest);
    rig.settle();
    assert_eq!(rig.net.engine.stats().read_buffers_released, 1);
    let replies = rig.read(0);
    let pongs = replies.windows(6).filter(|w| w == b"\"pong\"").count();
    assert_eq!(pongs, 2, "both pings answered");
    rig.send(0, &ping_message());
    rig.settle();
    assert!(
        rig.read(0).windows(6).any(|w| w == b"\"pong\""),
        "the stream is intact"
    );
}

/// A message fragmented without end (a text frame without FIN, then empty continuations)
/// never completes, so it never counts as a message: its data frames are paced instead, and
/// the server reads no more than a few per message of the rate each second.
#[test]
fn endless_fragments_are_paced() {
    let mut rig = Rig::new(NetConfig::default());
    let rate = CoreConfig::default().messages_per_second_max as usize;
    let flooder = rig.connect(1 << 20);
    let canary = rig.connect(1 << 20);
    rig.read(canary);
    rig.send(flooder, &frame(0x01, b"{"));
    let continuation = frame(0x00, b"");
    let seconds = 5;
    for _ in 0..seconds * 10 {
        rig.net.now = rig.net.now.plus(100);
        while rig.offer_whole(flooder, &continuation) {}
        rig.send(canary, &ping_message());
        rig.settle();
        assert!(rig.read(canary).windows(6).any(|w| w == b"\"pong\""));
    }
    let frames = rig.taken_from(flooder) / continuation.len();
    // Per second: the frames of the rate, plus what the turn that crossed it had read
    // (one turn's byte budget of 6-byte frames).
    let budget = NetConfig::default().read_bytes_per_turn_max;
    let allowed = (seconds + 1) * (rate * 4 + 1 + budget / continuation.len() + 1);
    assert!(
        frames <= allowed,
        "{frames} frames read, at most {allowed} expected"
    );
    assert!(rig.net.engine.stats().paused >= seconds as u64);
}
