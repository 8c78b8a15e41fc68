//! After a crowd leaves, the server compacts its tables and calls the memory-release hook
//! (the binary's `malloc_trim`), and everything that stayed keeps working. The schedule itself
//! (threshold, quiet period, cap) is unit-tested in `src/net/memory.rs`.

mod common;

use std::sync::mpsc::{self, Sender};
use std::sync::Mutex;

use common::*;
use serde_json::json;
use tandem::gateway::Gateway;

/// Where the hook reports (a plain `fn` cannot capture).
static RELEASES: Mutex<Option<Sender<()>>> = Mutex::new(None);

fn released() {
    if let Some(tx) = RELEASES.lock().unwrap().as_ref() {
        let _ = tx.send(());
    }
}

#[test]
fn a_crowd_leaving_triggers_a_release_and_the_room_that_stayed_works() {
    let (tx, rx) = mpsc::channel();
    *RELEASES.lock().unwrap() = Some(tx);
    let mut config = config();
    // A crowd from one address: this test is about memory, not per-address limits.
    config.connections_per_ip_max = 0;
    config.handshakes_per_ip_per_sec = 0;
    // 30 WebSockets at the per-connection estimate (2 KiB) cross it.
    config.net.memory_release_after_bytes = 32 << 10;
    let mut server = Gateway::server(&config, 7, None).expect("bind 127.0.0.1:0");
    server.on_memory_release(released);
    let addr = server.local_addr();
    std::thread::spawn(move || server.run());

    let mut host = Client::connect(addr);
    let room = host.create_room(json!({ "name": "stays", "user_name": "h" }));
    let mut guest = Client::connect(addr);
    guest.join(&room);

    let mut crowd: Vec<Client> = (0..30).map(|_| Client::connect(addr)).collect();
    for (i, member) in crowd.iter_mut().enumerate().take(10) {
        member.join_as(&room, &format!("c{i}"));
    }
    // Everyone answered: the server has seen all of them. Now they all leave at once.
    drop(crowd);

    rx.recv_timeout(WAIT * 2)
        .expect("the release hook runs after the crowd leaves");

    // The room, its host and its remaining guest are intact after compaction.
    host.send(json!({ "type": "chat_message", "room": room, "payload": { "text": "still here" } }));
    let chat = guest.recv_type("chat_message");
    assert_eq!(chat["payload"]["text"], "still here", "{chat}");
    let newcomer = Client::connect(addr);
    assert!(!newcomer.id.is_empty());
}
