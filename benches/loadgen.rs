//! Load generator for Tandem's two WebSocket dialects, OpenWatchParty and StreamSync v1
//! (driven by `benches/bench.sh`).
//!
//! One process, one thread, one hand-written mio poll loop driving every client connection,
//! so it can be pointed at any implementation of the protocol (`--url ws://127.0.0.1:3000/ws`).
//! Loopback targets only. Every run is bounded by its counts, `--duration` and a hard
//! `--deadline` (seconds); progress goes to stderr and exactly one JSON summary line is printed
//! last on stdout. `--server-pid PID` enables the server-side figures (null without it).
//!
//! Scenarios (`--scenario NAME`):
//!   idle   --conns N [--rooms K] [--dialect owp|v1]
//!                                         memory per idle connection, one ping each (answered
//!                                         within 1 s?; OpenWatchParty only, v1 has no ping),
//!                                         then how long the server stays busy after every
//!                                         connection closes at once
//!   fanout --rooms R --members M --hz H --duration S [--dialect owp|v1|mixed]
//!                                         host player_event + chat at H Hz per room; delivery
//!                                         latency and server CPU per delivered message. With
//!                                         v1 every member speaks StreamSync v1 and the host
//!                                         sends watch/playback_state (playing flipped each
//!                                         time, so each is a command) + chat/send; with mixed
//!                                         each room has M/2 v1 members and the rest
//!                                         OpenWatchParty, its host OpenWatchParty in even
//!                                         rooms and v1 in odd ones
//!   churn  --rate C --rooms R --members M --duration S [--hz H] [--dwell-ms D]
//!                                         C clients/s connect, join a random busy room, leave,
//!                                         disconnect; join latency and errors
//!   burst  --conns N                      N connect() calls issued at once; connect→hello spread
//!   slow   --conns N --rooms R --duration S [--readers G] [--chat-bytes B] [--rcvbuf BYTES]
//!                                         N room members that never read; server RSS, eviction
//!   floor  --conns C --frame-bytes 150,1000 --count N [--reader-cpu K]
//!          [--paced-rate W --burst B]     CPU cost of one loopback write() of a WebSocket-sized
//!                                         frame, measured in this process; needs no server.
//!                                         With --paced-rate, also the cost when the writes come
//!                                         as the fanout's do: B sockets at a time, W writes/s,
//!                                         the reader asleep between bursts
//!   attack --attack KIND --duration S [--attackers N] [--lobby L] [--rate C]
//!                                         one misbehaving client population, nothing measured
//!                                         but what it did and how each connection ended
//!                                         (HTTP status, close code, reset, still open). KIND:
//!                                         ping-flood (N=8 WebSockets sending Ping frames as
//!                                         fast as the socket takes them, never reading), big
//!                                         (N=16 streaming 64 KiB JSON text messages, reading),
//!                                         roomlist (N=1000 hosts with 400-byte room names, C=5
//!                                         leave+create per second, L=50 reading lobby clients),
//!                                         slowloris (N=200 upgrade heads sent a byte every
//!                                         500 ms, reconnecting when dropped), hog (up to
//!                                         N=2000 idle WebSockets held). A connection that ends
//!                                         is replaced (slowloris after 500 ms, others after 1 s,
//!                                         at most 100 replacements/s) until the attack stops.
//!                                         Source 127.0.0.1 unless --source-ip says otherwise.
//!
//! Common flags: `--url`, `--server-pid`, `--duration`, `--deadline`, `--max-in-flight`
//! (handshakes outstanding at once while connecting, default 500), `--source-ip 127.0.0.X`
//! (every client socket from that one loopback address; by default they are spread over
//! 127.0.0.1-255, 8,000 per address).
//!
//! Dialects: OpenWatchParty clients upgrade on the `--url` path; StreamSync v1 clients on the
//! same path offering the subprotocol `streamsync.v1` (Tandem routes `/ws` with it to v1), and
//! a 101 that does not select it fails the client. Other scenarios speak OpenWatchParty only.
//!
//! File descriptors: without the libc crate this program cannot raise RLIMIT_NOFILE itself;
//! run `ulimit -n 65536` (or the hard limit) first, as bench.sh does.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// The sample key/accept pair of RFC 6455 §1.3: a fixed key is fine for a load generator,
/// and checking the accept value still proves the server computed it.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const EADDRINUSE: i32 = 98;
const EADDRNOTAVAIL: i32 = 99;
const EINPROGRESS: i32 = 115;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// The OpenWatchParty server drops a connection's frames beyond 30 per second.
const OWP_RATE_LIMIT: f64 = 30.0;

/// The subprotocol a StreamSync v1 client offers (and Tandem selects) on the OpenWatchParty
/// path.
const V1_SUBPROTOCOL: &str = "streamsync.v1";

type Summary = Map<String, Value>;

/// Inserts `"key": json!(value)` pairs into a summary map.
macro_rules! put {
    ($map:expr, $($key:literal => $value:expr),+ $(,)?) => {
        $( $map.insert($key.to_string(), json!($value)); )+
    };
}

// ---------------------------------------------------------------------------------------------
// Command line, clock, exits

const KNOWN_FLAGS: &[&str] = &[
    "scenario",
    "url",
    "server-pid",
    "conns",
    "rooms",
    "members",
    "hz",
    "duration",
    "deadline",
    "rate",
    "dwell-ms",
    "readers",
    "room-cap",
    "chat-bytes",
    "rcvbuf",
    "max-in-flight",
    "frame-bytes",
    "count",
    "reader-cpu",
    "paced-rate",
    "burst",
    "port",
    "source-ip",
    "attack",
    "attackers",
    "lobby",
    "dialect",
];

struct Args(HashMap<String, String>);

impl Args {
    fn from_env() -> Args {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            // `cargo bench` passes `--bench` to every `harness = false` target.
            if arg == "--bench" {
                continue;
            }
            let Some(flag) = arg.strip_prefix("--") else {
                die(&format!("unexpected argument {arg:?}"))
            };
            let (key, value) = match flag.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => {
                    let value = it.next();
                    (
                        flag.to_string(),
                        value.unwrap_or_else(|| die(&format!("--{flag} needs a value"))),
                    )
                }
            };
            if !KNOWN_FLAGS.contains(&key.as_str()) {
                die(&format!("unknown flag --{key}"));
            }
            map.insert(key, value);
        }
        Args(map)
    }

    fn opt<T: FromStr>(&self, key: &str) -> Option<T> {
        let value = self.0.get(key)?;
        Some(
            value
                .parse()
                .unwrap_or_else(|_| die(&format!("bad value for --{key}: {value:?}"))),
        )
    }

    fn get<T: FromStr>(&self, key: &str, default: T) -> T {
        self.opt(key).unwrap_or(default)
    }
}

static T0: OnceLock<Instant> = OnceLock::new();
static SCENARIO: OnceLock<String> = OnceLock::new();

/// Monotonic ns since the generator started; every latency is a difference of two of these.
/// (clippy.toml keeps the server's clock in one place; a load generator is a clock.)
#[allow(clippy::disallowed_methods)]
fn now_ns() -> u64 {
    T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Wall-clock ms, for the envelope's `ts` (the server requires a non-negative integer).
#[allow(clippy::disallowed_methods)]
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// ns → seconds, rounded to µs for readable output.
fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e6
}

/// ns → ms, rounded to µs.
fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

/// Rounds ns to µs with one decimal.
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

fn log(msg: &str) {
    eprintln!("[{:7.2}s] {msg}", secs(now_ns()));
}

/// Setup failure: a message on stderr and exit code 2.
fn die(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(2)
}

/// Run-time bound exceeded: still end stdout with one JSON line, so drivers see why.
fn abort_run(reason: &str) -> ! {
    let scenario = SCENARIO.get().map_or("?", String::as_str);
    println!("{}", json!({ "scenario": scenario, "error": reason }));
    log(&format!("aborted: {reason}"));
    std::process::exit(3)
}

/// Small xorshift generator seeded from the OS: picks rooms for churning clients, names
/// mixed rooms.
struct Rng(u64);

impl Rng {
    #[allow(clippy::disallowed_methods)] // the server's rule; a generator may seed itself
    fn new() -> Rng {
        Rng(getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A random (version 4) UUID, hyphenated lower case.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000; // variant 10
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

struct Progress {
    label: &'static str,
    total: usize,
    last_ns: u64,
}

impl Progress {
    fn new(label: &'static str, total: usize) -> Progress {
        Progress {
            label,
            total,
            last_ns: now_ns(),
        }
    }

    fn tick(&mut self, done: usize) {
        if now_ns() - self.last_ns >= SEC {
            self.last_ns = now_ns();
            log(&format!("{}: {done}/{}", self.label, self.total));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readers and latency statistics

#[derive(Clone, Copy, Default)]
struct Mem {
    rss_kib: u64,
    anon_kib: u64,
    hwm_kib: u64,
}

fn read_mem(pid: Option<u32>) -> Option<Mem> {
    let text = fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kib = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Mem {
        rss_kib: kib("VmRSS:")?,
        anon_kib: kib("RssAnon:").unwrap_or(0),
        hwm_kib: kib("VmHWM:").unwrap_or(0),
    })
}

fn first_u64(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// CPU time of all threads of `pid` in ns. Per-task schedstat is ns-exact, while
/// /proc/PID/stat counts whole clock ticks (10 ms), so the latter is only the fallback.
fn proc_cpu_ns(pid: Option<u32>) -> Option<u64> {
    let pid = pid?;
    let mut total = None;
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) {
        for entry in dir.flatten() {
            let Ok(text) = fs::read_to_string(entry.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = first_u64(&text) {
                total = Some(total.unwrap_or(0) + ns);
            }
        }
    }
    total.or_else(|| stat_cpu_ns(pid))
}

fn stat_cpu_ns(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and ')': count fields after the last ')'.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * SEC / clk_tck())
}

fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().ok();
        let text = out.and_then(|o| String::from_utf8(o.stdout).ok());
        text.and_then(|t| t.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU time of the calling thread in ns (this program is single-threaded).
fn self_cpu_ns() -> u64 {
    let text = fs::read_to_string("/proc/thread-self/schedstat").ok();
    text.and_then(|t| first_u64(&t))
        .unwrap_or_else(|| die("cannot read /proc/thread-self/schedstat"))
}

#[derive(Default)]
struct Lat(Vec<u64>);

impl Lat {
    fn add(&mut self, ns: u64) {
        self.0.push(ns);
    }

    /// Nearest-rank percentile of the sorted samples.
    fn pct(&self, p: f64) -> Option<u64> {
        let n = self.0.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        (n > 0).then(|| self.0[rank.clamp(1, n) - 1])
    }

    /// Writes `<prefix>p50_us` … `<prefix>max_us` (null when there are no samples).
    fn report(&mut self, prefix: &str, out: &mut Summary) {
        self.0.sort_unstable();
        let points = [
            ("p50", 50.0),
            ("p90", 90.0),
            ("p99", 99.0),
            ("p999", 99.9),
            ("max", 100.0),
        ];
        for (name, p) in points {
            out.insert(format!("{prefix}{name}_us"), json!(self.pct(p).map(us)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Target and source addresses

struct Target {
    addr: SocketAddr,
    request: Vec<u8>,
    /// The same upgrade offering the StreamSync v1 subprotocol.
    request_v1: Vec<u8>,
}

impl Target {
    /// The upgrade request of `dialect`, and the subprotocol its 101 must select.
    fn request(&self, dialect: Dialect) -> (&[u8], Option<&'static str>) {
        match dialect {
            Dialect::Owp => (&self.request, None),
            Dialect::V1 => (&self.request_v1, Some(V1_SUBPROTOCOL)),
        }
    }
}

/// Parses `ws://HOST:PORT/PATH`; refuses anything that is not an IPv4 loopback address.
fn parse_target(url: &str) -> Target {
    let rest = url
        .strip_prefix("ws://")
        .unwrap_or_else(|| die("--url must start with ws://"));
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or_else(|_| die("bad port in --url"))),
        None => (authority, 80u16),
    };
    let ip = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse()
            .unwrap_or_else(|_| die("--url host must be an IPv4 address or localhost"))
    };
    if !ip.is_loopback() {
        die(&format!(
            "refusing non-loopback target {ip}: this tool only loads local servers"
        ));
    }
    let request = |extra: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .into_bytes()
    };
    Target {
        addr: SocketAddr::V4(SocketAddrV4::new(ip, port)),
        request: request(""),
        request_v1: request(&format!("Sec-WebSocket-Protocol: {V1_SUBPROTOCOL}\r\n")),
    }
}

/// Spreads client sockets over 127.0.0.1-255. `bind(ip, 0)` hands out odd ports first (half
/// of the ~28k ephemeral range) and slows to a crawl once they run out (measured: from
/// ~14,000 sockets on one address on). Earlier runs also leave ports in TIME_WAIT. So move on
/// to the next address every 8,000 sockets. With `--source-ip` every socket comes from that
/// one address instead (per-address limits then apply to this process as one client).
struct SrcPool {
    octet: u8,
    used: u32,
    fixed: Option<Ipv4Addr>,
}

impl SrcPool {
    const PER_ADDR: u32 = 8_000;

    fn new(fixed: Option<Ipv4Addr>) -> SrcPool {
        if let Some(ip) = fixed.filter(|ip| !ip.is_loopback()) {
            die(&format!("--source-ip {ip} is not a loopback address"));
        }
        // Start where the previous run (another pid) most likely did not.
        SrcPool {
            octet: (std::process::id() % 255 + 1) as u8,
            used: 0,
            fixed,
        }
    }

    fn from_args(args: &Args) -> SrcPool {
        SrcPool::new(args.opt("source-ip"))
    }

    fn advance(&mut self) {
        self.octet = if self.octet == 255 { 1 } else { self.octet + 1 };
        self.used = 0;
    }

    fn bind(&mut self, sock: &Socket) -> io::Result<()> {
        if let Some(ip) = self.fixed {
            return sock.bind(&SocketAddrV4::new(ip, 0).into());
        }
        for _ in 0..255 {
            if self.used >= Self::PER_ADDR {
                self.advance();
            }
            let addr = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, self.octet), 0);
            match sock.bind(&addr.into()) {
                Ok(()) => {
                    self.used += 1;
                    return Ok(());
                }
                Err(e) if matches!(e.raw_os_error(), Some(EADDRINUSE | EADDRNOTAVAIL)) => {
                    self.advance()
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free source port on 127.0.0.1-255"))
    }

    /// A non-blocking TCP socket from the next source address, its connect under way.
    fn connect(&mut self, target: SocketAddr, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        // Our own Nagle delay must not show up as server latency.
        sock.set_tcp_nodelay(true)?;
        if let Some(bytes) = rcvbuf {
            // Before connect: the window scale is fixed by the SYN.
            sock.set_recv_buffer_size(bytes)?;
        }
        self.bind(&sock)?;
        match sock.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(sock.into()))
    }
}

// ---------------------------------------------------------------------------------------------
// Inbound messages

/// Identifies a client connection; `gen` guards against slab keys being reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Cid {
    key: usize,
    gen: u32,
}

/// Which dialect a client speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dialect {
    /// OpenWatchParty: `{type, room?, payload, ts}`.
    Owp,
    /// StreamSync v1: `{v: 1, type, payload}`.
    V1,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Owp => "owp",
            Dialect::V1 => "v1",
        }
    }
}

/// Which dialect each member of a busy room speaks (`--dialect`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mix {
    Owp,
    V1,
    /// `members / 2` v1 members per room, the rest OpenWatchParty; the host speaks
    /// OpenWatchParty in even rooms and v1 in odd ones.
    Mixed,
}

impl Mix {
    fn from_args(args: &Args, allowed: &[&str]) -> Mix {
        let name: String = args.get("dialect", "owp".to_string());
        let mix = match name.as_str() {
            "owp" => Mix::Owp,
            "v1" => Mix::V1,
            "mixed" => Mix::Mixed,
            _ => die(&format!("bad value for --dialect: {name:?}")),
        };
        if !allowed.contains(&name.as_str()) {
            die(&format!(
                "--dialect {name}: this scenario takes {allowed:?}"
            ));
        }
        mix
    }

    fn name(self) -> &'static str {
        match self {
            Mix::Owp => "owp",
            Mix::V1 => "v1",
            Mix::Mixed => "mixed",
        }
    }

    fn host(self, room: usize) -> Dialect {
        match self {
            Mix::Owp => Dialect::Owp,
            Mix::V1 => Dialect::V1,
            Mix::Mixed if room % 2 == 0 => Dialect::Owp,
            Mix::Mixed => Dialect::V1,
        }
    }

    /// Guest `guest` of `guests` in room `room`: in a mixed room, the first guests fill the
    /// v1 half (less the host when it speaks v1).
    fn guest(self, room: usize, guest: usize, guests: usize) -> Dialect {
        match self {
            Mix::Owp => Dialect::Owp,
            Mix::V1 => Dialect::V1,
            Mix::Mixed => {
                let v1_hosts = usize::from(self.host(room) == Dialect::V1);
                let members = guests + 1;
                let v1_guests = (members / 2).saturating_sub(v1_hosts);
                if guest < v1_guests {
                    Dialect::V1
                } else {
                    Dialect::Owp
                }
            }
        }
    }
}

/// What a connection is for; the index is the scenario's own (room or client number).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    Host(u32),
    Guest(u32),
    Client(u32),
}

enum Msg {
    Hello,
    RoomState(String),
    /// A relayed `player_event` or `chat_message`, with the send time encoded by a host.
    Delivery(Option<u64>),
    Pong,
    Error(String),
    Other,
}

enum Ev {
    Msg(Msg),
    /// Closed by the server or failed; the reason is tallied in `Counters::gone`.
    Gone,
}

struct Note {
    cid: Cid,
    part: Part,
    at_ns: u64,
    ev: Ev,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    room: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PositionPayload {
    position: Option<f64>,
}

/// v1 `watch/playback_state`: `{roomId, state: {playing, positionSec?}, …}`.
#[derive(Deserialize)]
struct V1PlaybackPayload {
    state: Option<V1State>,
}

#[derive(Deserialize)]
struct V1State {
    #[serde(rename = "positionSec")]
    position_sec: Option<f64>,
}

/// v1 `room/joined`: `{roomId, you, peers}`.
#[derive(Deserialize)]
struct V1JoinedPayload {
    #[serde(rename = "roomId")]
    room_id: String,
}

#[derive(Deserialize)]
struct ChatPayload<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorPayload {
    message: Option<String>,
}

/// Finds `"type":"<word>"` in the first or last 160 bytes. Broadcasts such as `room_list` can be
/// many KiB and are sent to every client; recognising them without a full parse keeps the
/// generator from becoming the bottleneck. Only our own names and texts appear in payloads,
/// and none contain that key, so a hit is the envelope's.
fn quick_type(text: &str) -> Option<&str> {
    const KEY: &[u8] = b"\"type\":\"";
    let bytes = text.as_bytes();
    let windows = [
        (0, bytes.len().min(160)),
        (bytes.len().saturating_sub(160), bytes.len()),
    ];
    for (from, to) in windows {
        let hay = &bytes[from..to];
        if let Some(at) = hay.windows(KEY.len()).position(|w| w == KEY) {
            let start = from + at + KEY.len();
            let len = bytes[start..].iter().position(|&b| b == b'"')?;
            return text.get(start..start + len);
        }
    }
    None
}

/// Either dialect's messages (their type names do not overlap, but for `error`, which both
/// shape alike).
fn classify(text: &str) -> Option<Msg> {
    if let Some(
        "room_list"
        | "participants_update"
        | "client_left"
        | "state_update"
        | "room/peer_joined"
        | "room/peer_left"
        | "ack",
    ) = quick_type(text)
    {
        return Some(Msg::Other);
    }
    let env: Envelope = serde_json::from_str(text).ok()?;
    let raw = env.payload.map_or("null", RawValue::get);
    Some(match env.kind.as_ref() {
        "client_hello" | "server/hello" => Msg::Hello,
        "room_state" => Msg::RoomState(env.room?.into_owned()),
        "room/joined" => {
            let p: V1JoinedPayload = serde_json::from_str(raw).ok()?;
            Msg::RoomState(p.room_id)
        }
        "player_event" => {
            let p: PositionPayload = serde_json::from_str(raw).ok()?;
            Msg::Delivery(sent_at(p.position))
        }
        "watch/playback_state" => {
            let p: V1PlaybackPayload = serde_json::from_str(raw).ok()?;
            Msg::Delivery(sent_at(p.state.and_then(|s| s.position_sec)))
        }
        "chat_message" | "chat/message" => {
            let p: ChatPayload = serde_json::from_str(raw).ok()?;
            Msg::Delivery(p.text.and_then(|t| chat_sent_ns(&t)))
        }
        "pong" => Msg::Pong,
        "error" => {
            let p: Option<ErrorPayload> = serde_json::from_str(raw).ok();
            Msg::Error(p.and_then(|p| p.message).unwrap_or_default())
        }
        _ => Msg::Other,
    })
}

/// Playback positions sent by our hosts are their send time in seconds.
fn sent_at(position: Option<f64>) -> Option<u64> {
    position
        .filter(|s| *s >= 0.0)
        .map(|s| (s * 1e9).round() as u64)
}

/// Chat texts are `t<send ns>` optionally followed by a space and padding.
fn chat_sent_ns(text: &str) -> Option<u64> {
    text.strip_prefix('t')?.split(' ').next()?.parse().ok()
}

/// A client→server message. The envelope's `ts` must be an integer (wall-clock ms).
fn envelope(kind: &str, room: &str, payload: Value) -> String {
    json!({ "type": kind, "room": room, "payload": payload, "ts": unix_ms() }).to_string()
}

/// A StreamSync v1 client→server message, without a `requestId`: the server then answers
/// only a refusal, so a host's playback states and chats cost what an OpenWatchParty host's
/// do (no `ack` back).
fn v1_message(kind: &str, payload: Value) -> String {
    json!({ "v": 1, "type": kind, "payload": payload }).to_string()
}

/// A v1 `room/join` for `user` (its userId and display name).
fn v1_join(room: &str, user: &str) -> String {
    let client = json!({ "userId": user, "displayName": user });
    v1_message("room/join", json!({ "roomId": room, "client": client }))
}

// ---------------------------------------------------------------------------------------------
// Client connections

enum Io {
    /// TCP connect in progress, or the upgrade request/response under way.
    Upgrading {
        stream: TcpStream,
        sent: usize,
        resp: Vec<u8>,
    },
    Open(Box<WebSocket<TcpStream>>),
    /// Placeholder while the stream moves from one state to the next.
    Moving,
}

struct Conn {
    io: Io,
    gen: u32,
    part: Part,
    dialect: Dialect,
    /// False for clients that deliberately stopped reading (the slow scenario).
    reading: bool,
}

#[derive(Default)]
struct Counters {
    dial_failed: u64,
    parse_failed: u64,
    gone: HashMap<&'static str, u64>,
    server_errors: HashMap<String, u64>,
    first_dial_error: Option<String>,
}

struct Net {
    poll: Poll,
    conns: Slab<Conn>,
    target: Target,
    src: SrcPool,
    config: WebSocketConfig,
    next_gen: u32,
    notes: Vec<Note>,
    counts: Counters,
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

/// Parses the upgrade response; `Some(head length)` once it is complete and valid (and, when
/// `protocol` is given, selects that subprotocol).
fn parse_101(buf: &[u8], protocol: Option<&str>) -> Result<Option<usize>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => {
            if resp.code != Some(101) {
                return Err("upgrade refused");
            }
            let accept = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"));
            if accept.map(|h| h.value) != Some(WS_ACCEPT.as_bytes()) {
                return Err("bad Sec-WebSocket-Accept");
            }
            if let Some(protocol) = protocol {
                let selected = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"));
                if selected.map(|h| h.value) != Some(protocol.as_bytes()) {
                    return Err("subprotocol not selected");
                }
            }
            Ok(Some(len))
        }
        Err(_) => Err("malformed upgrade response"),
    }
}

/// Drives connect → request → 101 on a non-blocking socket, reading until WouldBlock.
fn upgrade_io(
    stream: &mut TcpStream,
    sent: &mut usize,
    resp: &mut Vec<u8>,
    (request, protocol): (&[u8], Option<&str>),
) -> Result<Option<usize>, &'static str> {
    if *sent < request.len() {
        if let Ok(Some(_)) | Err(_) = stream.take_error() {
            return Err("connect failed");
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None), // still connecting
            Err(_) => return Err("connect failed"),
        }
        while *sent < request.len() {
            match stream.write(&request[*sent..]) {
                Ok(0) => return Err("connect failed"),
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err("connect failed"),
            }
        }
    }
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Err("closed during upgrade"),
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                if let Some(len) = parse_101(resp, protocol)? {
                    return Ok(Some(len));
                }
                if resp.len() > 16 * 1024 {
                    return Err("upgrade response too large");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("connection error during upgrade"),
        }
    }
}

impl Net {
    fn new(target: Target, src: SrcPool) -> Net {
        // Small eager read buffers so that 19,000 clients fit easily; write eagerly.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        Net {
            poll: Poll::new().unwrap_or_else(|e| die(&format!("epoll: {e}"))),
            conns: Slab::new(),
            target,
            src,
            config,
            next_gen: 0,
            notes: Vec::new(),
            counts: Counters::default(),
        }
    }

    /// Starts a non-blocking connect from the next source address.
    fn dial(&mut self, part: Part, dialect: Dialect, rcvbuf: Option<usize>) -> io::Result<Cid> {
        let mut stream = self.src.connect(self.target.addr, rcvbuf)?;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, Token(key), interest)?;
        self.next_gen = self.next_gen.wrapping_add(1);
        let io = Io::Upgrading {
            stream,
            sent: 0,
            resp: Vec::new(),
        };
        entry.insert(Conn {
            io,
            gen: self.next_gen,
            part,
            dialect,
            reading: true,
        });
        Ok(Cid {
            key,
            gen: self.next_gen,
        })
    }

    fn dial_failed(&mut self, err: &io::Error) {
        self.counts.dial_failed += 1;
        if self.counts.first_dial_error.is_none() {
            log(&format!("dial failed: {err}"));
            self.counts.first_dial_error = Some(err.to_string());
        }
    }

    fn live(&mut self, cid: Cid) -> Option<&mut Conn> {
        self.conns.get_mut(cid.key).filter(|c| c.gen == cid.gen)
    }

    /// Handles one readiness event. Events are hints: every operation runs to WouldBlock.
    fn on_ready(&mut self, key: usize, ev: &Event) {
        let Some(conn) = self.conns.get_mut(key) else {
            return; // a late event for a connection already closed
        };
        let result = match (&conn.io, conn.reading) {
            (Io::Upgrading { .. }, _) => self.advance_upgrade(key),
            (Io::Open(_), true) => self.flush(key).and_then(|()| self.read_open(key)),
            // Not reading: the only news we can get is an error or hang-up (eviction).
            (Io::Open(_), false)
                if ev.is_error() || ev.is_write_closed() || ev.is_read_closed() =>
            {
                Err("evicted")
            }
            (Io::Open(_), false) => self.flush(key),
            (Io::Moving, _) => Ok(()),
        };
        if let Err(why) = result {
            self.gone(key, why);
        }
    }

    fn advance_upgrade(&mut self, key: usize) -> Result<(), &'static str> {
        let conn = &mut self.conns[key];
        let request = self.target.request(conn.dialect);
        let Io::Upgrading { stream, sent, resp } = &mut conn.io else {
            return Ok(());
        };
        let Some(head_len) = upgrade_io(stream, sent, resp, request)? else {
            return Ok(());
        };
        let Io::Upgrading { stream, resp, .. } = std::mem::replace(&mut conn.io, Io::Moving) else {
            unreachable!("state checked above")
        };
        let leftover = resp[head_len..].to_vec();
        let ws = WebSocket::from_partially_read(stream, leftover, Role::Client, Some(self.config));
        conn.io = Io::Open(Box::new(ws));
        // The leftover may hold whole frames and the socket more data; edge-triggered readiness
        // will not be reported again, so drain now.
        self.read_open(key)
    }

    fn read_open(&mut self, key: usize) -> Result<(), &'static str> {
        let conn = &mut self.conns[key];
        let (cid, part) = (Cid { key, gen: conn.gen }, conn.part);
        let Io::Open(ws) = &mut conn.io else {
            return Ok(());
        };
        loop {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    let at_ns = now_ns();
                    match classify(text.as_str()) {
                        Some(msg) => {
                            if let Msg::Error(m) = &msg {
                                *self.counts.server_errors.entry(m.clone()).or_default() += 1;
                            }
                            self.notes.push(Note {
                                cid,
                                part,
                                at_ns,
                                ev: Ev::Msg(msg),
                            });
                        }
                        None => self.counts.parse_failed += 1,
                    }
                }
                Ok(_) => {} // ping, pong, close: tungstenite answers them itself
                Err(e) if would_block(&e) => return Ok(()),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Err("closed by server")
                }
                Err(e) => {
                    let why = match e {
                        tungstenite::Error::Io(_) => "connection error",
                        _ => "websocket protocol error",
                    };
                    if !self.counts.gone.contains_key(why) {
                        log(&format!("first {why}: {e}"));
                    }
                    return Err(why);
                }
            }
        }
    }

    fn flush(&mut self, key: usize) -> Result<(), &'static str> {
        let Io::Open(ws) = &mut self.conns[key].io else {
            return Ok(());
        };
        match ws.flush() {
            Ok(()) => Ok(()),
            Err(e) if would_block(&e) => Ok(()), // queued; the next writable event flushes
            Err(_) => Err("write failed"),
        }
    }

    /// Queues one text frame and tries to write it; false if the connection is gone.
    fn send(&mut self, cid: Cid, text: String) -> bool {
        let Some(conn) = self.live(cid) else {
            return false;
        };
        let Io::Open(ws) = &mut conn.io else {
            return false;
        };
        match ws.write(Message::text(text)).and_then(|()| ws.flush()) {
            Ok(()) => true,
            Err(e) if would_block(&e) => true,
            Err(_) => {
                self.gone(cid.key, "write failed");
                false
            }
        }
    }

    /// Removes a connection that failed or was closed by the peer, and reports it.
    fn gone(&mut self, key: usize, why: &'static str) {
        if let Some(conn) = self.conns.try_remove(key) {
            *self.counts.gone.entry(why).or_default() += 1;
            let cid = Cid { key, gen: conn.gen };
            self.notes.push(Note {
                cid,
                part: conn.part,
                at_ns: now_ns(),
                ev: Ev::Gone,
            });
        }
    }

    /// Closes a connection on purpose (dropping the socket also removes it from epoll).
    fn close(&mut self, cid: Cid) {
        if self.live(cid).is_some() {
            self.conns.remove(cid.key);
        }
    }

    fn close_all(&mut self) -> usize {
        let n = self.conns.len();
        self.conns.clear();
        n
    }

    /// Stops reading a client: its receive buffer fills and the server has to deal with it.
    fn stop_reading(&mut self, cid: Cid) {
        let registry = self.poll.registry();
        let Some(conn) = self.conns.get_mut(cid.key).filter(|c| c.gen == cid.gen) else {
            return;
        };
        if let Io::Open(ws) = &mut conn.io {
            conn.reading = false;
            let _ = registry.reregister(ws.get_mut(), Token(cid.key), Interest::WRITABLE);
        }
    }

    fn local_addr(&mut self, cid: Cid) -> Option<SocketAddrV4> {
        let Io::Open(ws) = &self.live(cid)?.io else {
            return None;
        };
        match ws.get_ref().local_addr() {
            Ok(SocketAddr::V4(addr)) => Some(addr),
            _ => None,
        }
    }

    fn report(&self, out: &mut Summary) {
        let c = &self.counts;
        put!(out,
            "dial_failed" => c.dial_failed,
            "first_dial_error" => c.first_dial_error,
            "conns_lost" => c.gone,
            "server_errors" => c.server_errors,
            "parse_failed" => c.parse_failed,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Busy rooms: host ticks and delivery accounting

struct Room {
    host: Cid,
    /// The host's dialect, which its ticks are sent in.
    dialect: Dialect,
    /// The id every member joins by (a UUID, or the v1 name of a v1-only room).
    id: String,
    /// Members including the host, as joined during setup.
    members: u32,
}

#[derive(Default)]
struct Load {
    rooms: Vec<Room>,
    period_ns: u64,
    chat_pad: String,
    /// (due ns, room index, chat?) — a player_event, then a chat half a period later.
    queue: BinaryHeap<Reverse<(u64, usize, bool)>>,
    playing: Vec<bool>,
    /// Sends in [start, end) are counted and timed.
    window: (u64, u64),
    sent: u64,
    expected: u64,
    delivered: u64,
    received_in_window: u64,
    late_ticks: u64,
    lat: Lat,
}

impl Load {
    /// Schedules every host's ticks, spread evenly over one period.
    fn start(&mut self, hz: f64) {
        let now = now_ns();
        let n = self.rooms.len() as u64;
        self.period_ns = (1e9 / hz) as u64;
        self.playing = vec![false; self.rooms.len()];
        for i in 0..n {
            self.queue.push(Reverse((
                now + i * self.period_ns / n.max(1),
                i as usize,
                false,
            )));
        }
    }

    fn stop(&mut self) {
        self.queue.clear();
    }

    fn next_due(&self) -> u64 {
        self.queue
            .peek()
            .map_or(u64::MAX, |Reverse((due, _, _))| *due)
    }

    fn fire_due(&mut self, net: &mut Net, now: u64) {
        let half = self.period_ns / 2;
        while let Some(&Reverse((due, i, chat))) = self.queue.peek() {
            if due > now {
                break;
            }
            self.queue.pop();
            // When the generator falls behind, skip ahead instead of bursting to catch up.
            let next = if now - due > self.period_ns {
                self.late_ticks += 1;
                now + half
            } else {
                due + half
            };
            self.send_tick(net, i, chat);
            self.queue.push(Reverse((next, i, !chat)));
        }
    }

    fn send_tick(&mut self, net: &mut Net, i: usize, chat: bool) {
        let room = &self.rooms[i];
        let t = now_ns();
        let text = if chat {
            let text = if self.chat_pad.is_empty() {
                format!("t{t}")
            } else {
                format!("t{t} {}", self.chat_pad)
            };
            match room.dialect {
                Dialect::Owp => envelope("chat_message", &room.id, json!({ "text": text })),
                Dialect::V1 => v1_message("chat/send", json!({ "roomId": &room.id, "text": text })),
            }
        } else {
            self.playing[i] = !self.playing[i];
            let playing = self.playing[i];
            // The server relays only action/position/play_state, so the send time rides in
            // the position (seconds; f64 keeps sub-µs precision over hours).
            let position = t as f64 / 1e9;
            match room.dialect {
                Dialect::Owp => {
                    let (action, state) = if playing {
                        ("play", "playing")
                    } else {
                        ("pause", "paused")
                    };
                    let payload =
                        json!({ "action": action, "position": position, "play_state": state });
                    envelope("player_event", &room.id, payload)
                }
                // The same fact in v1: play and pause alternate, so every state disagrees
                // with the room clock and is a command (relayed at once), never a report
                // (rate-limited to one per STATE_UPDATE_INTERVAL_MS).
                Dialect::V1 => {
                    let state = json!({ "playing": playing, "positionSec": position });
                    let payload = json!({ "roomId": &room.id, "state": state });
                    v1_message("watch/playback_state", payload)
                }
            }
        };
        if !net.send(room.host, text) {
            return; // host gone: the server closed its room too
        }
        if (self.window.0..self.window.1).contains(&t) {
            self.sent += 1;
            // player_event goes to everyone but the host; chat to everyone including it.
            self.expected += u64::from(if chat { room.members } else { room.members - 1 });
        }
    }

    /// Consumes deliveries to room members; other notes are left to the scenario.
    fn absorb(&mut self, note: &Note) -> bool {
        if matches!(note.part, Part::Client(_)) {
            return false;
        }
        let Ev::Msg(Msg::Delivery(sent_ns)) = &note.ev else {
            return false;
        };
        let window = self.window.0..self.window.1;
        if window.contains(&note.at_ns) {
            self.received_in_window += 1;
        }
        if let Some(sent) = *sent_ns {
            if window.contains(&sent) {
                self.delivered += 1;
                self.lat.add(note.at_ns.saturating_sub(sent));
            }
        }
        true
    }

    fn report(&mut self, out: &mut Summary) {
        put!(out,
            "sent" => self.sent,
            "expected" => self.expected,
            "delivered" => self.delivered,
            "lost" => self.expected.saturating_sub(self.delivered),
            "gen_late_ticks" => self.late_ticks,
        );
        self.lat.report("", out);
    }
}

// ---------------------------------------------------------------------------------------------
// The loop and setup helpers

struct Opened {
    cid: Cid,
    /// From issuing connect() to receiving `client_hello`.
    connect_ns: u64,
    hello_at_ns: u64,
}

struct Bench {
    net: Net,
    events: Events,
    load: Load,
    pid: Option<u32>,
    deadline_ns: u64,
    max_in_flight: usize,
}

impl Bench {
    /// `run_ns` is the scenario's own running time; the default hard deadline adds setup
    /// time for every connection the flags ask for, plus a minute for drains and closes.
    fn new(args: &Args, run_ns: u64, conns: usize) -> Bench {
        let url: String = args.get("url", "ws://127.0.0.1:3000/ws".to_string());
        let pid: Option<u32> = args.opt("server-pid");
        if let Some(pid) = pid {
            if fs::metadata(format!("/proc/{pid}")).is_err() {
                die(&format!("--server-pid {pid}: no such process"));
            }
        }
        let default_s = run_ns / SEC + 60 + conns as u64 / 100;
        let deadline_s: u64 = args.get("deadline", default_s);
        Bench {
            net: Net::new(parse_target(&url), SrcPool::from_args(args)),
            events: Events::with_capacity(1024),
            load: Load::default(),
            pid,
            deadline_ns: now_ns() + deadline_s * SEC,
            max_in_flight: args.get("max-in-flight", 500usize).max(1),
        }
    }

    /// One turn: fire due host ticks, wait for readiness until `until_ns` or the next tick,
    /// handle it. Returns the notes the busy-room accounting did not consume.
    fn step(&mut self, until_ns: u64) -> Vec<Note> {
        let now = now_ns();
        if now >= self.deadline_ns {
            abort_run("hard deadline exceeded");
        }
        self.load.fire_due(&mut self.net, now);
        let wake = until_ns.min(self.load.next_due()).min(self.deadline_ns);
        let timeout = Duration::from_nanos(wake.saturating_sub(now_ns()));
        match self.net.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => die(&format!("poll failed: {e}")),
        }
        for ev in self.events.iter() {
            self.net.on_ready(ev.token().0, ev);
        }
        self.load.fire_due(&mut self.net, now_ns());
        let mut notes = std::mem::take(&mut self.net.notes);
        notes.retain(|n| !self.load.absorb(n));
        notes
    }

    /// Keeps the loop (and the host ticks) running until `until_ns`, ignoring other notes.
    fn run_until(&mut self, until_ns: u64) {
        while now_ns() < until_ns {
            self.step(until_ns);
        }
    }

    fn connect_timeout(n: usize) -> u64 {
        30 * SEC + n as u64 * 5 * MS
    }

    /// Opens `n` clients, at most `in_flight` without a hello (`client_hello`,
    /// `server/hello`) yet, and waits for every hello. Clients that fail or time out are `None` (and closed).
    fn open_clients(
        &mut self,
        n: usize,
        part: impl Fn(usize) -> Part,
        dialect: impl Fn(usize) -> Dialect,
        rcvbuf: Option<usize>,
        in_flight: usize,
    ) -> Vec<Option<Opened>> {
        let mut out: Vec<Option<Opened>> = (0..n).map(|_| None).collect();
        let mut pending: HashMap<Cid, (usize, u64)> = HashMap::new();
        let (mut next, mut settled) = (0, 0);
        let deadline = now_ns() + Self::connect_timeout(n);
        let mut progress = Progress::new("connect", n);
        while settled < n && now_ns() < deadline {
            while next < n && pending.len() < in_flight {
                let t = now_ns();
                match self.net.dial(part(next), dialect(next), rcvbuf) {
                    Ok(cid) => drop(pending.insert(cid, (next, t))),
                    Err(e) => {
                        self.net.dial_failed(&e);
                        settled += 1;
                    }
                }
                next += 1;
            }
            for note in self.step(deadline) {
                let Some(&(i, t)) = pending.get(&note.cid) else {
                    continue;
                };
                match note.ev {
                    Ev::Msg(Msg::Hello) => {
                        let connect_ns = note.at_ns.saturating_sub(t);
                        out[i] = Some(Opened {
                            cid: note.cid,
                            connect_ns,
                            hello_at_ns: note.at_ns,
                        });
                    }
                    Ev::Gone => {}
                    Ev::Msg(_) => continue,
                }
                pending.remove(&note.cid);
                settled += 1;
            }
            progress.tick(settled);
        }
        for cid in pending.into_keys() {
            *self
                .net
                .counts
                .gone
                .entry("no client_hello in time")
                .or_default() += 1;
            self.net.close(cid);
        }
        out
    }

    /// Sends each request and waits for the first reply satisfying `want`, at most
    /// `in_flight` outstanding. An `error` reply, a lost connection or the timeout is `None`;
    /// otherwise (latency ns, reply).
    fn request_all(
        &mut self,
        reqs: Vec<(Cid, String)>,
        want: fn(&Msg) -> bool,
        in_flight: usize,
        timeout_ns: u64,
    ) -> Vec<Option<(u64, Msg)>> {
        let n = reqs.len();
        let mut out: Vec<Option<(u64, Msg)>> = (0..n).map(|_| None).collect();
        let mut pending: HashMap<Cid, (usize, u64)> = HashMap::new();
        let mut reqs = reqs.into_iter().enumerate();
        let mut settled = 0;
        let deadline = now_ns() + timeout_ns;
        let mut unsent = n;
        while settled < n && now_ns() < deadline {
            // Batches of 256 with a poll in between: replies are read while sending goes on,
            // so a reply's latency is the server's, not the length of our own send loop.
            let mut batch = 0;
            while pending.len() < in_flight && batch < 256 {
                let Some((i, (cid, text))) = reqs.next() else {
                    break;
                };
                (unsent, batch) = (unsent - 1, batch + 1);
                let t = now_ns();
                if self.net.send(cid, text) {
                    pending.insert(cid, (i, t));
                } else {
                    settled += 1;
                }
            }
            let more_to_send = unsent > 0 && pending.len() < in_flight;
            for note in self.step(if more_to_send { 0 } else { deadline }) {
                let Some(&(i, t)) = pending.get(&note.cid) else {
                    continue;
                };
                match note.ev {
                    Ev::Msg(msg) if want(&msg) => {
                        out[i] = Some((note.at_ns.saturating_sub(t), msg))
                    }
                    Ev::Msg(Msg::Error(_)) | Ev::Gone => {}
                    Ev::Msg(_) => continue,
                }
                pending.remove(&note.cid);
                settled += 1;
            }
        }
        out
    }

    /// Creates `rooms` rooms with one host and `guests` joined guests each, speaking the
    /// dialects `mix` gives them. Rooms whose host could not connect or create are left out;
    /// missing guests lower `members`.
    ///
    /// An OpenWatchParty host creates its room (`create_room`) and gets its UUID. A v1 host
    /// is the first to `room/join` it, which creates it: in a v1-only room by a name unique
    /// to this process (`b<pid>-<i>`, as v1 clients name rooms), in a mixed room by a fresh
    /// UUID, the one name both dialects can join by.
    fn build_rooms(&mut self, rooms: usize, guests: usize, mix: Mix) -> Vec<Room> {
        log(&format!(
            "setting up {rooms} rooms x {} members ({})",
            guests + 1,
            mix.name()
        ));
        let hosts = self.open_clients(
            rooms,
            |i| Part::Host(i as u32),
            |i| mix.host(i),
            None,
            self.max_in_flight,
        );
        let hosts: Vec<(usize, Cid)> = hosts
            .into_iter()
            .enumerate()
            .filter_map(|(i, o)| Some((i, o?.cid)))
            .collect();
        let mut rng = Rng::new();
        let reqs = hosts.iter().map(|&(i, cid)| {
            let text = match (mix, mix.host(i)) {
                (_, Dialect::Owp) => {
                    let payload = json!({ "start_pos": 0, "user_name": format!("h{i}") });
                    envelope("create_room", "", payload)
                }
                (Mix::Mixed, Dialect::V1) => v1_join(&rng.uuid(), &format!("h{i}")),
                (_, Dialect::V1) => {
                    let name = format!("b{}-{i}", std::process::id());
                    v1_join(&name, &format!("h{i}"))
                }
            };
            (cid, text)
        });
        let is_state = |m: &Msg| matches!(m, Msg::RoomState(_));
        let reqs: Vec<(Cid, String)> = reqs.collect();
        let replies = self.request_all(reqs, is_state, self.max_in_flight, 30 * SEC);
        // Room index as the mix sees it (hosts that failed leave gaps), and the room.
        let mut out: Vec<(usize, Room)> = Vec::new();
        for ((i, host), reply) in hosts.into_iter().zip(replies) {
            match reply {
                Some((_, Msg::RoomState(id))) => out.push((
                    i,
                    Room {
                        host,
                        dialect: mix.host(i),
                        id,
                        members: 1,
                    },
                )),
                _ => self.net.close(host),
            }
        }
        if guests == 0 || out.is_empty() {
            return out.into_iter().map(|(_, room)| room).collect();
        }
        let part = |j: usize| Part::Guest((j / guests) as u32);
        let dialect = |j: usize| mix.guest(out[j / guests].0, j % guests, guests);
        let opened = self.open_clients(out.len() * guests, part, dialect, None, self.max_in_flight);
        let (mut reqs, mut room_of) = (Vec::new(), Vec::new());
        for (j, o) in opened.iter().enumerate() {
            let Some(o) = o else { continue };
            let id = &out[j / guests].1.id;
            let text = match dialect(j) {
                Dialect::Owp => envelope("join_room", id, json!({ "user_name": format!("g{j}") })),
                Dialect::V1 => v1_join(id, &format!("g{j}")),
            };
            reqs.push((o.cid, text));
            room_of.push(j / guests);
        }
        let replies = self.request_all(reqs, is_state, self.max_in_flight, 30 * SEC);
        for (room, reply) in room_of.into_iter().zip(replies) {
            if reply.is_some() {
                out[room].1.members += 1;
            }
        }
        out.into_iter().map(|(_, room)| room).collect()
    }

    /// Sends one `ping` to each client at once; latency is timed from each client's own send.
    fn ping_sweep(&mut self, cids: &[Cid], out: &mut Summary) {
        log(&format!("pinging {} clients", cids.len()));
        let reqs = cids
            .iter()
            .map(|&c| (c, envelope("ping", "", json!({ "client_ts": unix_ms() }))));
        let pong = |m: &Msg| matches!(m, Msg::Pong);
        let replies = self.request_all(reqs.collect(), pong, usize::MAX, 2 * SEC);
        let mut lat = Lat(replies.iter().flatten().map(|r| r.0).collect());
        put!(out,
            "ping_sent" => cids.len(),
            "ping_answered" => lat.0.len(),
            "ping_within_1s" => lat.0.iter().filter(|&&ns| ns <= SEC).count(),
        );
        lat.report("ping_", out);
    }

    /// Closes every connection as fast as it can, sampling the server's CPU between chunks
    /// of 1,000 closes and then every 10 ms, until the server has used under 10% of a core
    /// for 200 ms. Busy time runs from the first close to the last busy sample; CPU time is
    /// everything the server used from the first close on.
    fn close_all_timed(&mut self, out: &mut Summary) {
        let keys: Vec<usize> = self.net.conns.iter().map(|(k, _)| k).collect();
        let t_close = now_ns();
        let mut busy = proc_cpu_ns(self.pid).map(|cpu| BusySampler::new(t_close, cpu));
        for chunk in keys.chunks(1000) {
            for &key in chunk {
                self.net.conns.remove(key);
            }
            busy = busy.and_then(|b| b.sample(self.pid));
        }
        put!(out, "closed" => keys.len(), "close_calls_ms" => ms(now_ns() - t_close));
        while let Some(b) = busy.as_ref() {
            if now_ns() - b.busy_until >= 200 * MS || now_ns() - t_close >= 60 * SEC {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            busy = busy.and_then(|b| b.sample(self.pid));
        }
        put!(out,
            "close_busy_s" => busy.as_ref().map(|b| secs(b.busy_until - t_close)),
            "close_cpu_s" => busy.as_ref().map(|b| secs(b.last_cpu - b.cpu0)),
        );
    }

    fn base_summary(&self, scenario: &str) -> Summary {
        let mut out = Summary::new();
        put!(out, "scenario" => scenario, "server_pid" => self.pid);
        out
    }
}

/// Tracks when a process was last busy (above 10% of a core between two samples).
struct BusySampler {
    cpu0: u64,
    last_t: u64,
    last_cpu: u64,
    busy_until: u64,
}

impl BusySampler {
    fn new(t: u64, cpu: u64) -> BusySampler {
        BusySampler {
            cpu0: cpu,
            last_t: t,
            last_cpu: cpu,
            busy_until: t,
        }
    }

    /// `None` once the process is gone.
    fn sample(mut self, pid: Option<u32>) -> Option<BusySampler> {
        let cpu = proc_cpu_ns(pid)?;
        let now = now_ns();
        if (cpu - self.last_cpu) * 10 > now - self.last_t {
            self.busy_until = now;
        }
        (self.last_t, self.last_cpu) = (now, cpu);
        Some(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn kib_per(after: Option<u64>, before: Option<u64>, n: usize) -> Option<f64> {
    let delta = after? as f64 - before? as f64;
    (n > 0).then(|| (delta / n as f64 * 100.0).round() / 100.0)
}

fn scenario_idle(args: &Args) -> Summary {
    let n: usize = args.get("conns", 1000);
    let rooms: usize = args.get::<usize>("rooms", 0).min(n);
    let mix = Mix::from_args(args, &["owp", "v1"]);
    let dialect = mix.host(0);
    let mut b = Bench::new(args, 0, n);
    let mem0 = read_mem(b.pid);
    let t0 = now_ns();
    let hosts = if rooms > 0 {
        b.build_rooms(rooms, 0, mix)
    } else {
        Vec::new()
    };
    log(&format!(
        "opening {} idle clients ({})",
        n - rooms,
        dialect.name()
    ));
    let opened = b.open_clients(
        n - rooms,
        |i| Part::Client(i as u32),
        |_| dialect,
        None,
        b.max_in_flight,
    );
    let connect_s = secs(now_ns() - t0);
    let cids: Vec<Cid> = hosts
        .iter()
        .map(|r| r.host)
        .chain(opened.iter().flatten().map(|o| o.cid))
        .collect();
    // Let the server finish its broadcasts and the kernel its queues before reading RSS.
    b.run_until(now_ns() + SEC);
    let mem1 = read_mem(b.pid);
    let mut out = b.base_summary("idle");
    put!(out,
        "dialect" => dialect.name(),
        "conns" => n,
        "rooms" => hosts.len(),
        "held" => cids.len(),
        "connect_s" => connect_s,
        "rss_before_kib" => mem0.map(|m| m.rss_kib),
        "rss_after_kib" => mem1.map(|m| m.rss_kib),
        "anon_before_kib" => mem0.map(|m| m.anon_kib),
        "anon_after_kib" => mem1.map(|m| m.anon_kib),
        "kib_per_conn_rss" => kib_per(mem1.map(|m| m.rss_kib), mem0.map(|m| m.rss_kib), cids.len()),
        "kib_per_conn_anon" => kib_per(mem1.map(|m| m.anon_kib), mem0.map(|m| m.anon_kib), cids.len()),
    );
    // v1 has no application-level ping: its idle clients are only held and closed.
    if dialect == Dialect::Owp {
        b.ping_sweep(&cids, &mut out);
    }
    b.net.report(&mut out);
    log(&format!("closing {} clients at once", cids.len()));
    b.close_all_timed(&mut out);
    out
}

/// Warms up for 1 s, measures `dur_ns` of host ticks, then drains for up to 2 s.
/// Returns (server CPU ns in the window, loadgen CPU ns in the window).
fn measure_rooms(b: &mut Bench, dur_ns: u64) -> (Option<u64>, u64) {
    b.run_until(now_ns() + SEC);
    let start = now_ns();
    let end = start + dur_ns;
    b.load.window = (start, end);
    let (cpu0, self0) = (proc_cpu_ns(b.pid), self_cpu_ns());
    log(&format!("measuring for {:.1} s", secs(dur_ns)));
    b.run_until(end);
    let (cpu1, self1) = (proc_cpu_ns(b.pid), self_cpu_ns());
    b.load.stop();
    let drain_end = now_ns() + 2 * SEC;
    while b.load.delivered < b.load.expected && now_ns() < drain_end {
        b.step(drain_end);
    }
    (cpu1.zip(cpu0).map(|(a, z)| a - z), self1 - self0)
}

/// Server-side and generator-side figures of a measured window of room traffic.
fn report_window(b: &Bench, out: &mut Summary, dur_ns: u64, server_cpu: Option<u64>, own_cpu: u64) {
    let received = b.load.received_in_window;
    let per_delivery = server_cpu
        .filter(|_| received > 0)
        .map(|c| us(c / received));
    let mem = read_mem(b.pid);
    put!(out,
        "deliveries_per_s" => (received as f64 / secs(dur_ns)).round(),
        "server_cpu_us_per_delivery" => per_delivery,
        "server_cpu_pct" => server_cpu.map(|c| (c as f64 / dur_ns as f64 * 1000.0).round() / 10.0),
        "server_rss_peak_kib" => mem.map(|m| m.hwm_kib),
        "server_rss_end_kib" => mem.map(|m| m.rss_kib),
        "loadgen_cpu_pct" => (own_cpu as f64 / dur_ns as f64 * 1000.0).round() / 10.0,
    );
}

fn check_rate(hz: f64) {
    if 2.0 * hz > OWP_RATE_LIMIT {
        log(&format!(
            "warning: {hz} Hz means {} frames/s per host, above OpenWatchParty's 30/s",
            2.0 * hz
        ));
    }
}

fn scenario_fanout(args: &Args) -> Summary {
    let rooms: usize = args.get("rooms", 100);
    let members: usize = args.get::<usize>("members", 10).max(2);
    let hz: f64 = args.get("hz", 10.0);
    let dur_ns = (args.get("duration", 10.0) * 1e9) as u64;
    let mix = Mix::from_args(args, &["owp", "v1", "mixed"]);
    check_rate(hz);
    let mut b = Bench::new(args, dur_ns + 3 * SEC, rooms * members);
    b.load.rooms = b.build_rooms(rooms, members - 1, mix);
    b.load.start(hz);
    let (server_cpu, own_cpu) = measure_rooms(&mut b, dur_ns);
    let mut out = b.base_summary("fanout");
    let v1_hosts = b.load.rooms.iter().filter(|r| r.dialect == Dialect::V1);
    put!(out,
        "dialect" => mix.name(),
        "rooms" => b.load.rooms.len(),
        "v1_hosts" => v1_hosts.count(),
        "v1_members" => b.net.conns.iter().filter(|(_, c)| c.dialect == Dialect::V1).count(),
        "members" => members,
        "hz" => hz,
        "duration_s" => secs(dur_ns),
    );
    b.load.report(&mut out);
    report_window(&b, &mut out, dur_ns, server_cpu, own_cpu);
    b.net.report(&mut out);
    out
}

// --- churn

#[derive(PartialEq)]
enum Stage {
    Connecting,
    Joining { sent_ns: u64 },
    Dwelling,
}

struct Churner {
    stage: Stage,
    deadline_ns: u64,
}

#[derive(Default)]
struct Churn {
    dwell_ns: u64,
    live: HashMap<Cid, Churner>,
    started: u64,
    completed: u64,
    failed: u64,
    timeouts: u64,
    join: Lat,
}

impl Churn {
    fn on_note(&mut self, net: &mut Net, rooms: &[Room], rng: &mut Rng, note: Note) {
        let Some(c) = self.live.get_mut(&note.cid) else {
            return;
        };
        match (&c.stage, note.ev) {
            (Stage::Connecting, Ev::Msg(Msg::Hello)) => {
                let room = &rooms[rng.below(rooms.len())];
                let join = envelope("join_room", &room.id, json!({ "user_name": "churn" }));
                c.stage = Stage::Joining { sent_ns: now_ns() };
                c.deadline_ns = now_ns() + 5 * SEC;
                net.send(note.cid, join);
            }
            (Stage::Joining { sent_ns }, Ev::Msg(Msg::RoomState(_))) => {
                self.join.add(note.at_ns.saturating_sub(*sent_ns));
                c.stage = Stage::Dwelling;
                c.deadline_ns = now_ns() + self.dwell_ns;
            }
            (_, Ev::Msg(Msg::Error(_))) | (_, Ev::Gone) => {
                self.failed += 1;
                self.live.remove(&note.cid);
                net.close(note.cid);
            }
            _ => {}
        }
    }

    /// Leaves and disconnects clients whose dwell ended; gives up on stuck ones.
    fn expire(&mut self, net: &mut Net, now: u64) {
        let (completed, timeouts) = (&mut self.completed, &mut self.timeouts);
        self.live.retain(|&cid, c| {
            if c.deadline_ns > now {
                return true;
            }
            if c.stage == Stage::Dwelling {
                if net.send(cid, envelope("leave_room", "", json!({}))) {
                    *completed += 1;
                }
            } else {
                *timeouts += 1;
            }
            net.close(cid);
            false
        });
    }

    fn next_deadline(&self) -> u64 {
        self.live
            .values()
            .map(|c| c.deadline_ns)
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// Spawns churners at `rate`/s until `end_ns`, then lets the last ones finish (≤ 6 s).
fn run_churn(b: &mut Bench, churn: &mut Churn, rate: f64, end_ns: u64) {
    let period = (1e9 / rate) as u64;
    let mut next_spawn = now_ns();
    let mut rng = Rng::new();
    let finish_by = end_ns + 6 * SEC;
    while now_ns() < end_ns || (!churn.live.is_empty() && now_ns() < finish_by) {
        while next_spawn <= now_ns() && next_spawn < end_ns {
            next_spawn += period;
            churn.started += 1;
            match b
                .net
                .dial(Part::Client(churn.started as u32), Dialect::Owp, None)
            {
                Ok(cid) => {
                    let c = Churner {
                        stage: Stage::Connecting,
                        deadline_ns: now_ns() + 5 * SEC,
                    };
                    churn.live.insert(cid, c);
                }
                Err(e) => {
                    b.net.dial_failed(&e);
                    churn.failed += 1;
                }
            }
        }
        let spawn_at = if next_spawn < end_ns {
            next_spawn
        } else {
            finish_by
        };
        let wake = spawn_at.min(churn.next_deadline()).min(finish_by);
        for note in b.step(wake) {
            churn.on_note(&mut b.net, &b.load.rooms, &mut rng, note);
        }
        churn.expire(&mut b.net, now_ns());
    }
}

fn scenario_churn(args: &Args) -> Summary {
    let rate: f64 = args.get("rate", 20.0);
    let rooms: usize = args.get("rooms", 20);
    let members: usize = args.get::<usize>("members", 5).max(2);
    let hz: f64 = args.get("hz", 2.0);
    let dwell_ns = args.get::<u64>("dwell-ms", 500) * MS;
    let dur_ns = (args.get("duration", 10.0) * 1e9) as u64;
    if rate <= 0.0 || hz <= 0.0 {
        die("--rate and --hz must be positive");
    }
    check_rate(hz);
    let mut b = Bench::new(args, dur_ns + 10 * SEC, rooms * members);
    b.load.rooms = b.build_rooms(rooms, members - 1, Mix::Owp);
    if b.load.rooms.is_empty() {
        die("no room could be set up");
    }
    b.load.start(hz);
    b.run_until(now_ns() + SEC);
    let start = now_ns();
    b.load.window = (start, start + dur_ns);
    let (cpu0, self0) = (proc_cpu_ns(b.pid), self_cpu_ns());
    log(&format!("churning at {rate}/s for {:.1} s", secs(dur_ns)));
    let mut churn = Churn {
        dwell_ns,
        ..Churn::default()
    };
    run_churn(&mut b, &mut churn, rate, start + dur_ns);
    let (cpu1, self1) = (proc_cpu_ns(b.pid), self_cpu_ns());
    let mut out = b.base_summary("churn");
    put!(out,
        "rate" => rate, "rooms" => b.load.rooms.len(), "members" => members, "hz" => hz,
        "duration_s" => secs(dur_ns), "dwell_ms" => dwell_ns / MS,
        "cycles_started" => churn.started, "cycles_completed" => churn.completed,
        "cycles_per_s" => churn.completed as f64 / secs(dur_ns),
        "errors" => churn.failed, "timeouts" => churn.timeouts,
        "server_cpu_pct" => cpu1.zip(cpu0).map(|(a, z)| ((a - z) as f64 / (now_ns() - start) as f64 * 1000.0).round() / 10.0),
        "loadgen_cpu_pct" => ((self1 - self0) as f64 / (now_ns() - start) as f64 * 1000.0).round() / 10.0,
        "server_rss_peak_kib" => read_mem(b.pid).map(|m| m.hwm_kib),
    );
    churn.join.report("join_", &mut out);
    let mut bg = Summary::new();
    b.load.report(&mut bg);
    out.insert("background".into(), Value::Object(bg));
    b.net.report(&mut out);
    out
}

fn scenario_burst(args: &Args) -> Summary {
    let n: usize = args.get("conns", 1000);
    let mut b = Bench::new(args, 0, n);
    log(&format!("issuing {n} connects at once"));
    let t0 = now_ns();
    let opened = b.open_clients(n, |i| Part::Client(i as u32), |_| Dialect::Owp, None, n);
    let ok: Vec<&Opened> = opened.iter().flatten().collect();
    let last_hello = ok.iter().map(|o| o.hello_at_ns).max();
    let mut lat = Lat(ok.iter().map(|o| o.connect_ns).collect());
    let mut out = b.base_summary("burst");
    put!(out,
        "conns" => n,
        "hello" => ok.len(),
        "failed" => n - ok.len(),
        "all_hello_ms" => last_hello.map(|t| ms(t - t0)),
        // A SYN dropped on listen-backlog overflow is retransmitted after ~1 s.
        "over_900ms" => lat.0.iter().filter(|&&ns| ns > 900 * MS).count(),
    );
    lat.report("", &mut out);
    b.net.report(&mut out);
    b.net.close_all();
    out
}

// --- slow consumers

/// The server's side of its connections, from /proc/net/tcp{,6}. A server that evicts a
/// client which stopped reading usually just closes the socket: the FIN then waits behind
/// the unsent data and the zero window, so the client never sees it, but the server's
/// socket visibly leaves ESTABLISHED. The kernel send queue is memory spent on the server's
/// behalf that its RSS does not show.
#[derive(Default)]
struct ServerSockets {
    sendq_bytes: u64,
    /// Client address → still ESTABLISHED on the server's side.
    peers: HashMap<SocketAddrV4, bool>,
}

/// Parses `0100007F:0BB8`; IPv4-mapped IPv6 addresses (a dual-stack listener) too.
fn parse_proc_addr(field: &str) -> Option<SocketAddrV4> {
    let (ip_hex, port_hex) = field.split_once(':')?;
    let ip_hex = match ip_hex.len() {
        8 => ip_hex,
        32 if ip_hex.starts_with("0000000000000000FFFF0000") => &ip_hex[24..],
        _ => return None,
    };
    let ip = u32::from_str_radix(ip_hex, 16).ok()?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    // The kernel prints the network-order address as a native-endian integer.
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
}

/// Reads the server's sockets (local address = `server`); `None` if none could be read.
fn read_server_sockets(server: SocketAddrV4) -> Option<ServerSockets> {
    let mut out = ServerSockets::default();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().take(5).collect();
            let [_, local, peer, state, queues] = f[..] else {
                continue;
            };
            let (Some(local), Some(peer)) = (parse_proc_addr(local), parse_proc_addr(peer)) else {
                continue;
            };
            if local != server || peer.port() == 0 {
                continue; // not the server's, or its listener
            }
            let tx = queues
                .split(':')
                .next()
                .and_then(|h| u64::from_str_radix(h, 16).ok());
            out.sendq_bytes += tx.unwrap_or(0);
            // A TIME_WAIT leftover may share the address; any ESTABLISHED entry wins.
            *out.peers.entry(peer).or_insert(false) |= state == "01";
        }
    }
    (!out.peers.is_empty()).then_some(out)
}

struct SlowTrack {
    server: SocketAddrV4,
    /// Non-readers the server still holds: client address and consecutive scans missing.
    live: HashMap<Cid, (SocketAddrV4, u8)>,
    evicted: u64,
    first_evict_ns: Option<u64>,
    last_evict_ns: Option<u64>,
    rss: Vec<(u64, u64)>,
    sendq_kib: Vec<u64>,
    next_sample_ns: u64,
    next_log_ns: u64,
}

impl SlowTrack {
    fn evict(&mut self, cid: Cid, at_ns: u64) {
        if self.live.remove(&cid).is_some() {
            self.evicted += 1;
            self.first_evict_ns.get_or_insert(at_ns);
            self.last_evict_ns = Some(at_ns);
        }
    }

    /// An error or hang-up on a non-reader (the server reset it) is an eviction too.
    fn on_notes(&mut self, notes: Vec<Note>) {
        for note in notes {
            if matches!(note.ev, Ev::Gone) {
                self.evict(note.cid, note.at_ns);
            }
        }
    }

    /// Marks non-readers whose server-side socket left ESTABLISHED, or is missing from two
    /// scans in a row (one read of /proc/net/tcp can skip entries while the table changes).
    fn scan(&mut self) {
        let Some(table) = read_server_sockets(self.server) else {
            return;
        };
        self.sendq_kib.push(table.sendq_bytes / 1024);
        let now = now_ns();
        let mut gone = Vec::new();
        for (cid, (addr, misses)) in self.live.iter_mut() {
            match table.peers.get(addr) {
                Some(true) => *misses = 0,
                Some(false) => gone.push(*cid),
                None if *misses >= 1 => gone.push(*cid),
                None => *misses += 1,
            }
        }
        for cid in gone {
            self.evict(cid, now);
        }
    }

    /// Every 250 ms: server RSS and socket scan; every second a progress line.
    fn sample(&mut self, pid: Option<u32>, load: &Load) {
        let now = now_ns();
        if now < self.next_sample_ns {
            return;
        }
        self.next_sample_ns = now + 250 * MS;
        let rss = read_mem(pid).map(|m| m.rss_kib);
        if let Some(rss) = rss {
            self.rss.push((now, rss));
        }
        self.scan();
        if now >= self.next_log_ns {
            self.next_log_ns = now + SEC;
            let (d, e, q) = (load.delivered, load.expected, self.sendq_kib.last());
            let msg = format!(
                "rss {rss:?} KiB, sendq {q:?} KiB, evicted {}, readers got {d}/{e}",
                self.evicted
            );
            log(&msg);
        }
    }

    /// Runs the loop until `until_ns`, sampling.
    fn run(&mut self, b: &mut Bench, until_ns: u64) {
        while now_ns() < until_ns {
            self.sample(b.pid, &b.load);
            let notes = b.step(until_ns.min(self.next_sample_ns));
            self.on_notes(notes);
        }
    }
}

/// Opens `n` clients with small receive buffers, joins them round-robin to the rooms and
/// stops reading them. Returns the ones that joined, with their local addresses.
fn open_non_readers(b: &mut Bench, n: usize, rcvbuf: usize) -> HashMap<Cid, (SocketAddrV4, u8)> {
    log(&format!("opening {n} non-reading clients"));
    let opened = b.open_clients(
        n,
        |i| Part::Client(i as u32),
        |_| Dialect::Owp,
        Some(rcvbuf),
        b.max_in_flight,
    );
    let rooms = &b.load.rooms;
    let reqs: Vec<(Cid, String)> = opened
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, o)| {
            let payload = json!({ "user_name": format!("s{j}") });
            (
                o.cid,
                envelope("join_room", &rooms[j % rooms.len()].id, payload),
            )
        })
        .collect();
    let cids: Vec<Cid> = reqs.iter().map(|r| r.0).collect();
    let is_state = |m: &Msg| matches!(m, Msg::RoomState(_));
    let replies = b.request_all(reqs, is_state, b.max_in_flight, 30 * SEC);
    let mut joined = HashMap::new();
    for (cid, reply) in cids.into_iter().zip(replies) {
        match (reply, b.net.local_addr(cid)) {
            (Some(_), Some(addr)) => {
                b.net.stop_reading(cid);
                joined.insert(cid, (addr, 0));
            }
            _ => b.net.close(cid),
        }
    }
    joined
}

/// Sets up the busy rooms (more than `--rooms` when the room cap requires) and starts them.
fn start_slow_rooms(b: &mut Bench, args: &Args, n: usize, readers: usize, hz: f64) {
    let cap: usize = args.get("room-cap", 20);
    let per_room = cap.saturating_sub(1 + readers).max(1);
    // Rooms hold at most `cap` members (20 in OpenWatchParty): add rooms rather than fail joins.
    let rooms = args.get::<usize>("rooms", 50).max(n.div_ceil(per_room));
    b.load.rooms = b.build_rooms(rooms, readers, Mix::Owp);
    if b.load.rooms.is_empty() {
        die("no room could be set up");
    }
    b.load.chat_pad = "x".repeat(args.get::<usize>("chat-bytes", 400).min(480));
    b.load.start(hz);
    b.run_until(now_ns() + 2 * SEC);
    b.load.window = (now_ns(), u64::MAX);
}

fn scenario_slow(args: &Args) -> Summary {
    let n: usize = args.get("conns", 2000);
    let readers: usize = args.get("readers", 2);
    let hz: f64 = args.get("hz", 10.0);
    let dur_ns = (args.get("duration", 30.0) * 1e9) as u64;
    check_rate(hz);
    let mut b = Bench::new(args, dur_ns + 20 * SEC, n * 2);
    start_slow_rooms(&mut b, args, n, readers, hz);
    let SocketAddr::V4(server) = b.net.target.addr else {
        unreachable!("IPv4 only")
    };
    let rss_start = read_mem(b.pid).map(|m| m.rss_kib);
    let sendq_start = read_server_sockets(server).map(|t| t.sendq_bytes / 1024);
    let live = open_non_readers(&mut b, n, args.get("rcvbuf", 4096));
    let joined = live.len();
    let t_stop = now_ns();
    let mut track = SlowTrack {
        server,
        live,
        evicted: 0,
        first_evict_ns: None,
        last_evict_ns: None,
        rss: Vec::new(),
        sendq_kib: Vec::new(),
        next_sample_ns: 0,
        next_log_ns: 0,
    };
    log(&format!(
        "{joined} non-readers joined; running {:.1} s",
        secs(dur_ns)
    ));
    track.run(&mut b, t_stop + dur_ns);
    // Whoever is still held gets disconnected by us now; RSS is read 5 s after the last goes.
    // Tearing down what the server queued for them costs this process CPU (loopback resets
    // run in our context), so the readers' measurement window ends here.
    b.load.window.1 = now_ns();
    let closed_by_us = track.live.len();
    let last_gone = if closed_by_us > 0 {
        now_ns()
    } else {
        track.last_evict_ns.unwrap_or(t_stop)
    };
    for cid in track.live.drain().map(|(cid, _)| cid).collect::<Vec<_>>() {
        b.net.close(cid);
    }
    track.run(&mut b, last_gone + 5 * SEC + 250 * MS);
    let after = track
        .rss
        .iter()
        .find(|s| s.0 >= last_gone + 5 * SEC)
        .map(|s| s.1);
    let mut out = b.base_summary("slow");
    put!(out,
        "conns" => n, "joined" => joined, "rooms" => b.load.rooms.len(),
        "readers_per_room" => readers, "hz" => hz, "chat_bytes" => b.load.chat_pad.len(),
        "duration_s" => secs(dur_ns),
        "evicted" => track.evicted,
        "closed_by_us" => closed_by_us,
        "first_evict_s" => track.first_evict_ns.map(|t| secs(t.saturating_sub(t_stop))),
        "last_evict_s" => track.last_evict_ns.map(|t| secs(t.saturating_sub(t_stop))),
        "rss_start_kib" => rss_start,
        "rss_peak_kib" => track.rss.iter().map(|s| s.1).max(),
        "rss_hwm_kib" => read_mem(b.pid).map(|m| m.hwm_kib),
        "rss_after_5s_kib" => after,
        "rss_after_ratio" => after.zip(rss_start).map(|(a, s)| (a as f64 / s as f64 * 100.0).round() / 100.0),
        "server_sendq_start_kib" => sendq_start,
        "server_sendq_peak_kib" => track.sendq_kib.iter().max(),
    );
    let mut readers_out = Summary::new();
    b.load.report(&mut readers_out);
    out.insert("readers".into(), Value::Object(readers_out));
    b.net.report(&mut out);
    out
}

// --- floor: the CPU cost of one loopback write

/// A server→client text frame of exactly `total` bytes (header included), shaped like a
/// relayed chat message.
fn ws_frame(total: usize) -> Vec<u8> {
    let total = total.clamp(16, 65_535);
    let mut frame = vec![0x81u8];
    let body_len = if total <= 127 { total - 2 } else { total - 4 };
    if total <= 127 {
        frame.push(body_len as u8);
    } else {
        frame.push(126);
        frame.extend_from_slice(&(body_len as u16).to_be_bytes());
    }
    let (head, tail) = (
        &b"{\"type\":\"chat_message\",\"payload\":{\"text\":\""[..],
        &b"\"}}"[..],
    );
    if body_len >= head.len() + tail.len() {
        frame.extend_from_slice(head);
        frame.resize(frame.len() + body_len - head.len() - tail.len(), b'x');
        frame.extend_from_slice(tail);
    } else {
        frame.resize(total, b'x');
    }
    frame
}

fn spawn_floor_reader(port: u16, conns: usize, cpu: Option<u32>) -> std::process::Child {
    let exe = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["--scenario", "floor-reader", "--port", &port.to_string()])
        .args(["--conns", &conns.to_string()])
        .stdout(Stdio::null());
    cmd.spawn()
        .unwrap_or_else(|e| die(&format!("cannot start the reader process: {e}")))
}

fn accept_n(listener: &std::net::TcpListener, n: usize) -> Vec<std::net::TcpStream> {
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| die(&format!("listener: {e}")));
    let deadline = now_ns() + 30 * SEC;
    let mut socks = Vec::with_capacity(n);
    while socks.len() < n {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)
                    .unwrap_or_else(|e| die(&format!("socket: {e}")));
                // Like a WebSocket server sending small frames: one segment per write.
                s.set_nodelay(true)
                    .unwrap_or_else(|e| die(&format!("socket: {e}")));
                socks.push(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if now_ns() > deadline {
                    die(&format!(
                        "reader connected only {} of {n} sockets",
                        socks.len()
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => die(&format!("accept: {e}")),
        }
    }
    socks
}

/// Writes `count` frames round-robin; returns (own CPU ns, wall ns). Blocking sockets: a
/// full buffer waits off-CPU, so the CPU figure is the cost of the write calls alone.
fn timed_writes(socks: &mut [std::net::TcpStream], frame: &[u8], count: usize) -> (u64, u64) {
    let (cpu0, wall0) = (self_cpu_ns(), now_ns());
    for i in 0..count {
        let n = socks.len();
        if let Err(e) = socks[i % n].write_all(frame) {
            die(&format!("write to the reader failed: {e}"));
        }
    }
    (self_cpu_ns() - cpu0, now_ns() - wall0)
}

/// Writes `count` frames in bursts of `burst` sockets, `rate` writes per second, sleeping
/// between bursts (so the reader goes back to sleep too); returns (own CPU ns, writes/s).
fn timed_paced_writes(
    socks: &mut [std::net::TcpStream],
    frame: &[u8],
    count: usize,
    burst: usize,
    rate: f64,
) -> (u64, f64) {
    let interval = (burst as f64 * 1e9 / rate) as u64;
    let (cpu0, wall0) = (self_cpu_ns(), now_ns());
    let mut next = wall0;
    let mut i = 0;
    while i < count {
        for _ in 0..burst.min(count - i) {
            let n = socks.len();
            if let Err(e) = socks[i % n].write_all(frame) {
                die(&format!("write to the reader failed: {e}"));
            }
            i += 1;
        }
        next += interval;
        let now = now_ns();
        if next > now {
            std::thread::sleep(Duration::from_nanos(next - now));
        }
    }
    let wall = now_ns() - wall0;
    (self_cpu_ns() - cpu0, count as f64 / secs(wall))
}

fn scenario_floor(args: &Args) -> Summary {
    let conns: usize = args.get::<usize>("conns", 1000).max(1);
    let count: usize = args.get::<usize>("count", 200_000).max(1);
    let sizes: Vec<usize> = args
        .get("frame-bytes", "150,1000".to_string())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| die("bad --frame-bytes list"))
        })
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| die(&format!("cannot listen on 127.0.0.1: {e}")));
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| die(&e.to_string()));
    let mut child = spawn_floor_reader(port, conns, args.opt("reader-cpu"));
    let mut socks = accept_n(&listener, conns);
    let mut out = Summary::new();
    put!(out, "scenario" => "floor", "conns" => conns, "count" => count);
    for (i, &size) in sizes.iter().enumerate() {
        let frame = ws_frame(size);
        log(&format!(
            "floor: {count} writes of {} bytes over {conns} sockets",
            frame.len()
        ));
        timed_writes(&mut socks, &frame, (count / 10).max(conns)); // warm-up
        let (cpu, wall) = timed_writes(&mut socks, &frame, count);
        let cpu_us = (cpu as f64 / count as f64).round() / 1000.0;
        let wall_us = (wall as f64 / count as f64).round() / 1000.0;
        out.insert(format!("cpu_us_per_write_{}", frame.len()), json!(cpu_us));
        out.insert(format!("wall_us_per_write_{}", frame.len()), json!(wall_us));
        if i == 0 {
            put!(out, "frame_bytes" => frame.len(), "cpu_us_per_write" => cpu_us);
            let rate: f64 = args.get("paced-rate", 0.0);
            if rate > 0.0 {
                let burst = args.get::<usize>("burst", 9).clamp(1, conns);
                let paced = (count / 4).max(burst);
                log(&format!(
                    "floor: {paced} writes of {} bytes in bursts of {burst} at {rate}/s",
                    frame.len()
                ));
                let (cpu, achieved) = timed_paced_writes(&mut socks, &frame, paced, burst, rate);
                let cpu_us = (cpu as f64 / paced as f64).round() / 1000.0;
                out.insert(
                    format!("cpu_us_per_write_paced_{}", frame.len()),
                    json!(cpu_us),
                );
                put!(out, "paced_burst" => burst, "paced_rate" => achieved.round());
            }
        }
    }
    drop(socks);
    reap(&mut child);
    out
}

/// Waits up to 10 s for the reader to see every EOF and exit; kills it otherwise.
fn reap(child: &mut std::process::Child) {
    let deadline = now_ns() + 10 * SEC;
    while now_ns() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    log("reader did not exit; killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// Hidden child of `floor`: connects the sockets and drains them until every one is closed.
fn floor_reader(args: &Args) {
    let port: u16 = args.opt("port").unwrap_or_else(|| die("--port required"));
    let conns: usize = args.get("conns", 1000);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut poll = Poll::new().unwrap_or_else(|e| die(&format!("epoll: {e}")));
    let mut streams: Vec<Option<TcpStream>> = Vec::with_capacity(conns);
    for i in 0..conns {
        let s =
            std::net::TcpStream::connect(addr).unwrap_or_else(|e| die(&format!("connect: {e}")));
        s.set_nonblocking(true)
            .unwrap_or_else(|e| die(&format!("socket: {e}")));
        let mut s = TcpStream::from_std(s);
        let registered = poll
            .registry()
            .register(&mut s, Token(i), Interest::READABLE);
        registered.unwrap_or_else(|e| die(&format!("register: {e}")));
        streams.push(Some(s));
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut open, deadline) = (conns, now_ns() + 900 * SEC);
    while open > 0 && now_ns() < deadline {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_secs(1))) {
            if e.kind() != io::ErrorKind::Interrupted {
                die(&format!("poll: {e}"));
            }
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(s) = streams.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let done = loop {
                match s.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
            };
            if done {
                streams[i] = None;
                open -= 1;
            }
        }
    }
}

// --- attack: one misbehaving client population, bounded in count and time

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AttackKind {
    PingFlood,
    Big,
    RoomList,
    Slowloris,
    Hog,
}

impl AttackKind {
    fn parse(name: &str) -> AttackKind {
        match name {
            "ping-flood" => AttackKind::PingFlood,
            "big" => AttackKind::Big,
            "roomlist" => AttackKind::RoomList,
            "slowloris" => AttackKind::Slowloris,
            "hog" => AttackKind::Hog,
            other => die(&format!(
                "unknown --attack {other:?} (ping-flood|big|roomlist|slowloris|hog)"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            AttackKind::PingFlood => "ping-flood",
            AttackKind::Big => "big",
            AttackKind::RoomList => "roomlist",
            AttackKind::Slowloris => "slowloris",
            AttackKind::Hog => "hog",
        }
    }

    fn default_attackers(self) -> usize {
        match self {
            AttackKind::PingFlood => 8,
            AttackKind::Big => 16,
            AttackKind::RoomList => 1000,
            AttackKind::Slowloris => 200,
            AttackKind::Hog => 2000,
        }
    }

    /// What `sent` counts in the summary.
    fn sent_unit(self) -> &'static str {
        match self {
            AttackKind::PingFlood => "ping frames",
            AttackKind::Big => "64 KiB messages",
            AttackKind::RoomList => "requests",
            AttackKind::Slowloris => "request head bytes",
            AttackKind::Hog => "pongs",
        }
    }
}

/// What one attacking connection does once its socket is up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tactic {
    /// Ping frames as fast as the socket takes them; never reads.
    Flood,
    /// 64 KiB text messages as fast as the socket takes them; reads whatever comes back.
    Big,
    /// Creates a room, then leaves and re-creates it when its turn comes.
    Host,
    /// Stays in the lobby reading room lists.
    Lobby,
    /// Sends its upgrade request head a byte at a time.
    Slow,
    /// Holds an idle WebSocket, answering the server's pings.
    Hog,
}

enum AStage {
    /// Connecting, sending the upgrade request, reading the response.
    Upgrading {
        sent: usize,
        resp: Vec<u8>,
    },
    Open,
}

/// How an attacking connection ended.
enum End {
    /// A complete HTTP response other than 101.
    Http(u16),
    /// A close frame from the server (1005: no code).
    Close(u16),
    Eof,
    Reset,
    ConnectFailed,
    Error(io::ErrorKind),
}

impl End {
    fn from_io(e: &io::Error) -> End {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => End::Reset,
            io::ErrorKind::ConnectionRefused => End::ConnectFailed,
            kind => End::Error(kind),
        }
    }

    fn label(&self, upgrading: bool) -> String {
        let when = if upgrading { "_during_upgrade" } else { "" };
        match self {
            End::Http(code) => format!("http_{code}"),
            End::Close(code) => format!("close_{code}"),
            End::Eof => format!("eof{when}"),
            End::Reset => format!("reset{when}"),
            End::ConnectFailed => "connect_failed".to_string(),
            End::Error(kind) => format!("error_{kind:?}{when}"),
        }
    }
}

/// A server→client frame, parsed just enough to count it.
enum Frame {
    /// The first `FRAME_PREFIX` bytes of a text message (lossy), and whether that is all.
    Text(String, bool),
    Ping(Vec<u8>),
    Pong,
    Close(u16),
    Other,
}

/// Payload bytes kept of each inbound frame: enough for a `type`, an error or a close code.
const FRAME_PREFIX: usize = 512;

/// Server→client frames from a byte stream: each frame's first bytes are kept, the rest of a
/// long payload (a room list can be hundreds of KiB) skipped without buffering it.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
    /// Payload bytes of the current frame still to discard.
    skip: usize,
}

impl FrameReader {
    fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        let n = self.skip.min(data.len());
        self.skip -= n;
        self.buf.extend_from_slice(&data[n..]);
        let mut at = 0;
        loop {
            let b = &self.buf[at..];
            if b.len() < 2 {
                break;
            }
            let (op, masked, len7) = (b[0] & 0x0f, b[1] & 0x80 != 0, b[1] & 0x7f);
            let (len, mut head) = match len7 {
                126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(&b[2..10]);
                    (
                        usize::try_from(u64::from_be_bytes(be)).unwrap_or(usize::MAX),
                        10,
                    )
                }
                126 | 127 => break,
                n => (usize::from(n), 2),
            };
            head += if masked { 4 } else { 0 };
            let kept = len.min(FRAME_PREFIX);
            if b.len() < head + kept {
                break;
            }
            let payload = &b[head..head + kept];
            out.push(match op {
                0x1 => Frame::Text(String::from_utf8_lossy(payload).into_owned(), kept == len),
                0x8 if payload.len() >= 2 => {
                    Frame::Close(u16::from_be_bytes([payload[0], payload[1]]))
                }
                0x8 => Frame::Close(1005),
                0x9 => Frame::Ping(payload.to_vec()),
                0xA => Frame::Pong,
                _ => Frame::Other,
            });
            if b.len() >= head.saturating_add(len) {
                at += head + len;
            } else {
                self.skip = head.saturating_add(len) - b.len();
                at = self.buf.len();
                break;
            }
        }
        self.buf.drain(..at);
    }
}

/// A masked client→server frame (RFC 6455 §5.3; the RFC's sample masking key).
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&KEY);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    frame
}

/// A `chat_message` text just under 65,536 bytes (the default `MESSAGE_BYTES_MAX`), valid JSON.
fn big_message() -> String {
    const TOTAL: usize = 65_500;
    let head = format!(
        "{{\"type\":\"chat_message\",\"room\":\"x\",\"ts\":{},\"payload\":{{\"text\":\"",
        unix_ms()
    );
    let tail = "\"}}";
    let mut text = head;
    text.extend(std::iter::repeat_n('x', TOTAL - text.len() - tail.len()));
    text.push_str(tail);
    text
}

struct AConn {
    stream: TcpStream,
    tactic: Tactic,
    stage: AStage,
    /// Slowloris: when the next byte of the request head is due.
    next_byte_ns: u64,
    /// Small writes waiting for the socket: pongs, room requests.
    out: Vec<u8>,
    /// Flood and big: position in the endless stream.
    stream_at: usize,
    reader: FrameReader,
}

#[derive(Default)]
struct AttackCounts {
    dials: u64,
    dial_failed: u64,
    first_dial_error: Option<String>,
    ws_opened: u64,
    open_now: u64,
    peak_open: u64,
    sent: u64,
    bytes_sent: u64,
    bytes_received: u64,
    http_status: HashMap<u16, u64>,
    ended: HashMap<String, u64>,
    received: HashMap<String, u64>,
    server_errors: HashMap<String, u64>,
}

struct Attack {
    kind: AttackKind,
    poll: Poll,
    events: Events,
    conns: Slab<AConn>,
    target: Target,
    src: SrcPool,
    /// Flood and big connections write this endlessly (whole frames, so every lap ends on a
    /// frame boundary); `frame_ends` are the offsets where its frames end.
    stream: Vec<u8>,
    frame_ends: Vec<usize>,
    /// Connections to open: (not before ns, tactic), in order of time (one delay per attack).
    to_dial: std::collections::VecDeque<(u64, Tactic)>,
    /// The earliest time the next replacement may be dialed.
    next_redial_ns: u64,
    max_in_flight: usize,
    /// Connections with more to do than one event allowed (edge-triggered: no new event comes).
    hungry: Vec<usize>,
    /// Roomlist: leave+create turns per second, the next due, the next host in turn.
    churn_period_ns: u64,
    next_churn_ns: u64,
    next_host: usize,
    end_ns: u64,
    counts: AttackCounts,
    scratch: Vec<u8>,
    frames: Vec<Frame>,
}

/// Per event, at most this many bytes are written or read on one connection before the
/// others get their turn.
const ATTACK_IO_SLICE: usize = 1 << 20;

impl Attack {
    fn dial(&mut self, tactic: Tactic, now: u64) {
        self.counts.dials += 1;
        let mut stream = match self.src.connect(self.target.addr, None) {
            Ok(s) => s,
            Err(e) => return self.dial_failed(tactic, &e, now),
        };
        let entry = self.conns.vacant_entry();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(entry.key()), interest)
        {
            return self.dial_failed(tactic, &e, now);
        }
        // Slowloris heads start spread over one 500 ms period.
        let next_byte_ns = now + (self.counts.dials % 50) * 10 * MS;
        entry.insert(AConn {
            stream,
            tactic,
            stage: AStage::Upgrading {
                sent: 0,
                resp: Vec::new(),
            },
            next_byte_ns,
            out: Vec::new(),
            stream_at: 0,
            reader: FrameReader::default(),
        });
    }

    fn dial_failed(&mut self, tactic: Tactic, e: &io::Error, now: u64) {
        self.counts.dial_failed += 1;
        if self.counts.first_dial_error.is_none() {
            log(&format!("dial failed: {e}"));
            self.counts.first_dial_error = Some(e.to_string());
        }
        self.redial(tactic, now);
    }

    /// Every attack keeps its population while it runs: a connection that ends (refused,
    /// dropped, closed) is replaced, a slowloris head 500 ms later, any other 1 s later and
    /// at most 100 such replacements per second (so a refusing server is asked again at a
    /// bounded rate, not flooded with handshakes).
    fn redial(&mut self, tactic: Tactic, now: u64) {
        if now >= self.end_ns {
            return;
        }
        let due = if tactic == Tactic::Slow {
            now + 500 * MS
        } else {
            let due = (now + SEC).max(self.next_redial_ns);
            self.next_redial_ns = due + 10 * MS;
            due
        };
        self.to_dial.push_back((due, tactic));
    }

    /// Dials what is due, keeping at most `max_in_flight` handshakes (slowloris heads, which
    /// never finish, do not count) outstanding.
    fn dial_due(&mut self, now: u64) {
        let in_flight = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.tactic != Tactic::Slow && matches!(c.stage, AStage::Upgrading { .. })
            })
            .count();
        let mut room = self.max_in_flight.saturating_sub(in_flight);
        while let Some(&(due, tactic)) = self.to_dial.front() {
            if due > now || (room == 0 && tactic != Tactic::Slow) {
                break;
            }
            self.to_dial.pop_front();
            room = room.saturating_sub(usize::from(tactic != Tactic::Slow));
            self.dial(tactic, now);
        }
    }

    fn end(&mut self, key: usize, why: End, now: u64) {
        let Some(conn) = self.conns.try_remove(key) else {
            return;
        };
        let upgrading = matches!(conn.stage, AStage::Upgrading { .. });
        if !upgrading {
            self.counts.open_now -= 1;
        }
        *self.counts.ended.entry(why.label(upgrading)).or_default() += 1;
        self.redial(conn.tactic, now);
    }

    /// Connect, request (all at once but for slowloris), response.
    fn upgrade(&mut self, key: usize) -> Result<bool, End> {
        let conn = &mut self.conns[key];
        let AStage::Upgrading { sent, resp } = &mut conn.stage else {
            return Ok(false);
        };
        match conn.stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) => return Err(End::from_io(&e)),
            Err(e) => return Err(End::from_io(&e)),
        }
        match conn.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(_) => return Err(End::ConnectFailed),
        }
        let request = &self.target.request;
        if conn.tactic != Tactic::Slow {
            while *sent < request.len() {
                match conn.stream.write(&request[*sent..]) {
                    Ok(0) => return Err(End::Eof),
                    Ok(n) => *sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(End::from_io(&e)),
                }
            }
        }
        loop {
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => return Err(End::Eof),
                Ok(n) => {
                    self.counts.bytes_received += n as u64;
                    resp.extend_from_slice(&self.scratch[..n]);
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut parsed = httparse::Response::new(&mut headers);
                    match parsed.parse(resp) {
                        Ok(httparse::Status::Complete(len)) => {
                            let code = parsed.code.unwrap_or(0);
                            *self.counts.http_status.entry(code).or_default() += 1;
                            if code != 101 {
                                return Err(End::Http(code));
                            }
                            let leftover = resp[len..].to_vec();
                            conn.stage = AStage::Open;
                            conn.reader.feed(&leftover, &mut self.frames);
                            return Ok(true);
                        }
                        Ok(httparse::Status::Partial) if resp.len() <= 16 * 1024 => {}
                        _ => return Err(End::Http(0)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::from_io(&e)),
            }
        }
    }

    fn on_open(&mut self, key: usize, now: u64) {
        self.counts.ws_opened += 1;
        self.counts.open_now += 1;
        self.counts.peak_open = self.counts.peak_open.max(self.counts.open_now);
        let conn = &mut self.conns[key];
        match conn.tactic {
            // Never reads: only writability matters (errors and hang-ups are always reported).
            Tactic::Flood => {
                let _ = self.poll.registry().reregister(
                    &mut conn.stream,
                    Token(key),
                    Interest::WRITABLE,
                );
            }
            Tactic::Host => {
                conn.out.extend(create_room_frame());
                self.counts.sent += 1;
            }
            _ => {}
        }
        if self.next_churn_ns == 0 {
            self.next_churn_ns = now + self.churn_period_ns;
        }
        self.hungry.push(key);
    }

    /// Handles the frames `read` collected for `key`; a close frame ends the connection.
    fn on_frames(&mut self, key: usize) -> Result<(), End> {
        let mut close = None;
        for frame in std::mem::take(&mut self.frames) {
            let name = match frame {
                Frame::Text(text, complete) => {
                    if complete {
                        if let Some(Msg::Error(m)) = classify(&text) {
                            *self.counts.server_errors.entry(m).or_default() += 1;
                        }
                    }
                    quick_type(&text).unwrap_or("?").to_string()
                }
                Frame::Ping(payload) => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.out.extend(masked_frame(0xA, &payload));
                        if self.kind == AttackKind::Hog {
                            self.counts.sent += 1;
                        }
                    }
                    "ping".to_string()
                }
                Frame::Pong => "pong".to_string(),
                Frame::Close(code) => {
                    close.get_or_insert(code);
                    "close".to_string()
                }
                Frame::Other => "other".to_string(),
            };
            *self.counts.received.entry(name).or_default() += 1;
        }
        close.map_or(Ok(()), |code| Err(End::Close(code)))
    }

    /// Reads until WouldBlock (or `limit` bytes: then the connection is hungry).
    fn read(&mut self, key: usize, limit: usize) -> Result<(), End> {
        let mut total = 0;
        let result = loop {
            let conn = &mut self.conns[key];
            if total >= limit {
                self.hungry.push(key);
                break Ok(());
            }
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => break Err(End::Eof),
                Ok(n) => {
                    total += n;
                    self.counts.bytes_received += n as u64;
                    conn.reader.feed(&self.scratch[..n], &mut self.frames);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(End::from_io(&e)),
            }
        };
        // Frames read before an EOF still count (a close frame first names the reason).
        self.on_frames(key)?;
        result
    }

    /// Writes queued small frames, then (flood, big) the endless stream.
    fn write(&mut self, key: usize) -> Result<(), End> {
        let conn = &mut self.conns[key];
        while !conn.out.is_empty() {
            match conn.stream.write(&conn.out) {
                Ok(0) => return Err(End::Eof),
                Ok(n) => {
                    self.counts.bytes_sent += n as u64;
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::from_io(&e)),
            }
        }
        if !matches!(conn.tactic, Tactic::Flood | Tactic::Big) {
            return Ok(());
        }
        let mut total = 0;
        while total < ATTACK_IO_SLICE {
            let from = conn.stream_at;
            match conn.stream.write(&self.stream[from..]) {
                Ok(0) => return Err(End::Eof),
                Ok(n) => {
                    total += n;
                    let to = from + n;
                    self.counts.bytes_sent += n as u64;
                    let ends = |at: usize| self.frame_ends.partition_point(|&e| e <= at);
                    self.counts.sent += (ends(to) - ends(from)) as u64;
                    conn.stream_at = to % self.stream.len();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::from_io(&e)),
            }
        }
        self.hungry.push(key);
        Ok(())
    }

    fn on_ready(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let result = match conn.stage {
            AStage::Upgrading { .. } => match self.upgrade(key) {
                Ok(true) => {
                    self.on_open(key, now);
                    self.on_frames(key)
                }
                other => other.map(drop),
            },
            AStage::Open if conn.tactic == Tactic::Flood => self.write(key),
            AStage::Open => self
                .read(key, ATTACK_IO_SLICE)
                .and_then(|()| self.write(key)),
        };
        if let Err(why) = result {
            self.end(key, why, now);
        }
    }

    /// Slowloris bytes and roomlist turns that are due.
    fn timers(&mut self, now: u64) {
        if self.kind == AttackKind::Slowloris {
            let due: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| c.next_byte_ns <= now)
                .map(|(k, _)| k)
                .collect();
            for key in due {
                if let Err(why) = self.dribble(key, now) {
                    self.end(key, why, now);
                }
            }
        }
        if self.kind == AttackKind::RoomList && self.next_churn_ns != 0 {
            while self.next_churn_ns <= now {
                self.next_churn_ns += self.churn_period_ns;
                self.churn_one();
            }
        }
    }

    /// Sends the next byte of a slowloris request head, if the socket is connected.
    fn dribble(&mut self, key: usize, now: u64) -> Result<(), End> {
        let conn = &mut self.conns[key];
        let AStage::Upgrading { sent, .. } = &mut conn.stage else {
            return Ok(());
        };
        if *sent >= self.target.request.len() || conn.stream.peer_addr().is_err() {
            return Ok(()); // head complete (after 75 s), or still connecting
        }
        conn.next_byte_ns = now + 500 * MS;
        match conn.stream.write(&self.target.request[*sent..*sent + 1]) {
            Ok(n) => {
                *sent += n;
                self.counts.sent += n as u64;
                self.counts.bytes_sent += n as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(End::from_io(&e)),
        }
    }

    /// The next open host leaves its room and creates a new one.
    fn churn_one(&mut self) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.tactic == Tactic::Host && matches!(c.stage, AStage::Open))
            .map(|(k, _)| k)
            .collect();
        if keys.is_empty() {
            return;
        }
        let key = keys[self.next_host % keys.len()];
        self.next_host = self.next_host.wrapping_add(1);
        let conn = &mut self.conns[key];
        let leave = envelope("leave_room", "", json!({}));
        conn.out.extend(masked_frame(0x1, leave.as_bytes()));
        conn.out.extend(create_room_frame());
        self.counts.sent += 2;
        self.hungry.push(key);
    }

    fn run(&mut self, deadline_ns: u64) {
        let mut progress_ns = now_ns() + SEC;
        while now_ns() < self.end_ns {
            let now = now_ns();
            if now >= deadline_ns {
                abort_run("hard deadline exceeded");
            }
            self.dial_due(now);
            self.timers(now);
            let timeout = if self.hungry.is_empty() {
                Duration::from_nanos((10 * MS).min(self.end_ns.saturating_sub(now)))
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => die(&format!("poll failed: {e}")),
            }
            let now = now_ns();
            let mut ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            ready.append(&mut self.hungry);
            ready.sort_unstable();
            ready.dedup();
            for key in ready {
                self.on_ready(key, now);
            }
            if now >= progress_ns {
                progress_ns = now + SEC;
                let c = &self.counts;
                log(&format!(
                    "{}: {} open, {} dials, sent {} {} ({} bytes), ended {:?}",
                    self.kind.name(),
                    c.open_now,
                    c.dials,
                    c.sent,
                    self.kind.sent_unit(),
                    c.bytes_sent,
                    c.ended
                ));
            }
        }
    }

    /// After the attack: reads what each connection has waiting (a close frame or response
    /// the server sent meanwhile, at most 16 MiB each, 2 s in all), then closes everything.
    fn finish(&mut self) {
        self.to_dial.clear();
        let stop_by = now_ns() + 2 * SEC;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let result = match self.conns[key].stage {
                AStage::Upgrading { .. } if now_ns() < stop_by => self.upgrade(key).map(drop),
                AStage::Open if now_ns() < stop_by => self.read(key, 16 << 20),
                _ => Ok(()),
            };
            let now = now_ns();
            match result {
                Err(why) => self.end(key, why, now),
                Ok(()) => {
                    let label = match self.conns[key].stage {
                        AStage::Upgrading { .. } => "still_upgrading",
                        AStage::Open => "open_at_end",
                    };
                    *self.counts.ended.entry(label.to_string()).or_default() += 1;
                }
            }
        }
        self.conns.clear();
    }
}

fn create_room_frame() -> Vec<u8> {
    // 100 four-byte characters: the longest room name, at its largest in bytes.
    let name = "\u{1F600}".repeat(100);
    let text = envelope("create_room", "", json!({ "name": name, "start_pos": 0 }));
    masked_frame(0x1, text.as_bytes())
}

fn scenario_attack(args: &Args) -> Summary {
    let kind = AttackKind::parse(&args.get("attack", String::new()));
    let n: usize = args.get("attackers", kind.default_attackers());
    let lobby: usize = args.get("lobby", 50);
    let rate: f64 = args.get("rate", 5.0);
    let dur_ns = (args.get("duration", 10.0) * 1e9) as u64;
    let source: Ipv4Addr = args.get("source-ip", Ipv4Addr::LOCALHOST);
    let url: String = args.get("url", "ws://127.0.0.1:3000/ws".to_string());
    if rate <= 0.0 {
        die("--rate must be positive");
    }
    let deadline_ns = now_ns() + args.get::<u64>("deadline", dur_ns / SEC + 30) * SEC;
    let (stream, frame_ends) = match kind {
        AttackKind::PingFlood => {
            // Alternating empty and 125-byte pings, 64 KiB or so per lap.
            let (mut stream, mut ends) = (Vec::new(), Vec::new());
            while stream.len() < 64 * 1024 {
                stream.extend(masked_frame(0x9, b""));
                ends.push(stream.len());
                stream.extend(masked_frame(0x9, &[b'p'; 125]));
                ends.push(stream.len());
            }
            (stream, ends)
        }
        AttackKind::Big => {
            let frame = masked_frame(0x1, big_message().as_bytes());
            let len = frame.len();
            (frame, vec![len])
        }
        _ => (Vec::new(), Vec::new()),
    };
    let now = now_ns();
    let mut to_dial = std::collections::VecDeque::new();
    let tactic = match kind {
        AttackKind::PingFlood => Tactic::Flood,
        AttackKind::Big => Tactic::Big,
        AttackKind::RoomList => Tactic::Host,
        AttackKind::Slowloris => Tactic::Slow,
        AttackKind::Hog => Tactic::Hog,
    };
    to_dial.extend((0..n).map(|_| (now, tactic)));
    if kind == AttackKind::RoomList {
        to_dial.extend((0..lobby).map(|_| (now, Tactic::Lobby)));
    }
    let mut attack = Attack {
        kind,
        poll: Poll::new().unwrap_or_else(|e| die(&format!("epoll: {e}"))),
        events: Events::with_capacity(1024),
        conns: Slab::new(),
        target: parse_target(&url),
        src: SrcPool::new(Some(source)),
        stream,
        frame_ends,
        to_dial,
        next_redial_ns: 0,
        max_in_flight: args.get("max-in-flight", 200usize).max(1),
        hungry: Vec::new(),
        churn_period_ns: (1e9 / rate) as u64,
        next_churn_ns: 0,
        next_host: 0,
        end_ns: now + dur_ns,
        counts: AttackCounts::default(),
        scratch: vec![0u8; 64 * 1024],
        frames: Vec::new(),
    };
    log(&format!(
        "attack {} from {source}: {n} attackers for {:.1} s",
        kind.name(),
        secs(dur_ns)
    ));
    let self0 = self_cpu_ns();
    attack.run(deadline_ns);
    let own_cpu = self_cpu_ns() - self0;
    let open_at_end = attack.counts.open_now;
    attack.finish();
    let c = &attack.counts;
    let http: Map<String, Value> = c
        .http_status
        .iter()
        .map(|(code, n)| (code.to_string(), json!(n)))
        .collect();
    let mut out = Summary::new();
    put!(out,
        "scenario" => "attack",
        "attack" => kind.name(),
        "source_ip" => source.to_string(),
        "attackers" => n,
        "lobby" => (kind == AttackKind::RoomList).then_some(lobby),
        "duration_s" => secs(dur_ns),
        "dials" => c.dials,
        "dial_failed" => c.dial_failed,
        "first_dial_error" => c.first_dial_error,
        "ws_opened" => c.ws_opened,
        "peak_open" => c.peak_open,
        "open_at_end" => open_at_end,
        "sent" => c.sent,
        "sent_unit" => kind.sent_unit(),
        "bytes_sent" => c.bytes_sent,
        "bytes_received" => c.bytes_received,
        "http_status" => http,
        "ended" => c.ended,
        "received" => c.received,
        "server_errors" => c.server_errors,
        "loadgen_cpu_pct" => (own_cpu as f64 / dur_ns as f64 * 1000.0).round() / 10.0,
    );
    out
}

// ---------------------------------------------------------------------------------------------

const USAGE: &str = "usage: loadgen --scenario idle|fanout|churn|burst|slow|floor|attack [flags] \
                     (see the header of benches/loadgen.rs)";

fn main() {
    now_ns(); // start the monotonic clock
              // `cargo bench` and `cargo test --all-targets` run every bench target, without flags or
              // with their own (`--bench`, test filters): without a scenario there is nothing to do.
    if !std::env::args().any(|a| a == "--scenario" || a.starts_with("--scenario=")) {
        eprintln!("{USAGE}");
        return;
    }
    let args = Args::from_env();
    let scenario: String = args.get("scenario", String::new());
    SCENARIO.get_or_init(|| scenario.clone());
    if args.0.contains_key("dialect") && !["idle", "fanout"].contains(&scenario.as_str()) {
        die("--dialect applies to the idle and fanout scenarios only");
    }
    let summary = match scenario.as_str() {
        "idle" => scenario_idle(&args),
        "fanout" => scenario_fanout(&args),
        "churn" => scenario_churn(&args),
        "burst" => scenario_burst(&args),
        "slow" => scenario_slow(&args),
        "floor" => scenario_floor(&args),
        "attack" => scenario_attack(&args),
        "floor-reader" => return floor_reader(&args),
        other => die(&format!("unknown scenario {other:?}; {USAGE}")),
    };
    log("done");
    println!("{}", Value::Object(summary));
}
