//! A WebSocket echo endpoint built from Tandem's own connection layer (upgrade parsing,
//! tungstenite framing over the same engine, write queues, limits, event loop), for the
//! Autobahn conformance cases (`make conformance`). Not a route of the production server.
//!
//! `cargo run --release --example echo -- [--production]`: listens on 127.0.0.1:$PORT (9001).
//! By default the message limit is raised to 16 MiB and binary is echoed; `--production`
//! keeps the server's real limits (64 KiB: larger messages close with 1009).

use std::process::ExitCode;

use tandem::config::Config;
use tandem::id::ConnId;
use tandem::net::event_loop::Server;
use tandem::net::service::{ConnInfo, NoDeferred, Service, ServiceStats};
use tandem::net::upgrade::Status;
use tandem::time::{Millis, Now};
use tungstenite::{Bytes, Utf8Bytes};

type Output = tandem::net::service::Output<NoDeferred>;

/// Sends every message back as it came.
struct Echo;

impl Service for Echo {
    type Deferred = NoDeferred;

    /// Any path; no subprotocol.
    fn select(&self, _path: &str, _protocols: &[String]) -> Result<Option<&'static str>, Status> {
        Ok(None)
    }
    fn open(&mut self, _now: Now, _conn: ConnId, _info: &ConnInfo, _out: &mut Vec<Output>) {}
    fn text(&mut self, _now: Now, conn: ConnId, text: &str, out: &mut Vec<Output>) {
        out.push(Output::Send {
            conn,
            text: Utf8Bytes::from(text.to_string()),
        });
    }
    fn binary(&mut self, _now: Now, conn: ConnId, data: &[u8], out: &mut Vec<Output>) {
        out.push(Output::SendBinary {
            conn,
            data: Bytes::copy_from_slice(data),
        });
    }
    fn close(&mut self, _now: Now, _conn: ConnId, _out: &mut Vec<Output>) {}
    fn advance(&mut self, _now: Now, _out: &mut Vec<Output>) {}
    fn shutdown(&mut self, _now: Now, _out: &mut Vec<Output>) {}
    fn next_deadline(&self) -> Option<Millis> {
        None
    }
    fn stats(&self) -> ServiceStats {
        ServiceStats::default()
    }
}

fn main() -> ExitCode {
    let production = std::env::args().any(|a| a == "--production");
    let mut config = Config {
        host: "127.0.0.1".parse().expect("loopback"),
        port: std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(9_001),
        allowed_origins: None,
        log_level: tandem::log::Level::Warn,
        ..Config::default()
    };
    if !production {
        config.net.message_bytes_max = 16 << 20;
        config.net.outbox_bytes_max = 64 << 20;
        config.net.read_buffer_bytes = 64 << 10;
        config.net.socket_send_buffer_bytes = 0;
    }
    // The conformance client sends fast and much: no idle or stall evictions in a run, and
    // its hundreds of connections from one address in a few seconds are not an attack.
    config.net.write_stall_timeout_ms = 60_000;
    config.connections_per_ip_max = 0;
    config.handshakes_per_ip_per_sec = 0;
    // Nor are its bursts of pings and fragments: the engine paces those at the message rate.
    config.core.messages_per_second_max = 1_000_000;
    tandem::log::set_level(config.log_level);
    let server = match Server::bind_with(&config, Echo) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("echo: cannot listen: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "echo listening addr={} production={production}",
        server.local_addr()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
