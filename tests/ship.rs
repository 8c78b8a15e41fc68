//! What shipping needs from the binary itself: `tandem healthcheck` for container health
//! checks without a shell or curl.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn healthcheck(port: u16) -> Option<i32> {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("healthcheck")
        .env_clear()
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .stderr(Stdio::null())
        .status()
        .expect("run tandem healthcheck")
        .code()
}

/// 0 against a running server, 1 against something that is not one (a listener that
/// hangs up at once).
#[test]
fn healthcheck_exit_codes() {
    let addr = start(config());
    assert_eq!(healthcheck(addr.port()), Some(0));
    let impostor = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = impostor.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in impostor.incoming() {
            drop(stream);
        }
    });
    assert_eq!(healthcheck(port), Some(1));
}
