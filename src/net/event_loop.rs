//! The event loop: the only code that knows mio. One thread, one `Poll`, the listener, the
//! signal pipe, and the engine holding every connection.
//!
//! A turn: poll (timeout = the engine's next deadline, or zero when work is carried over);
//! read the clock once; fire timers; record readiness and drive those connections; accept;
//! flush everything queued; reap. The loop runs until SIGTERM/SIGINT/SIGQUIT, then stops
//! accepting, tells room members, closes every WebSocket with 1001 and exits within a second.
//! SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{
    SIGALRM, SIGHUP, SIGINT, SIGIO, SIGPROF, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGVTALRM,
    SIGXCPU, SIGXFSZ,
};
use signal_hook_mio::v1_0::Signals;

use super::addresses::Limits;
use super::engine::{Engine, EngineConfig};
use super::memory::ReleasePolicy;
use super::service::Service;
use crate::config::Config;
use crate::id::ConnId;
use crate::log;
use crate::time::{Clock, Millis, Now};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const EVENTS_CAPACITY: usize = 1_024;
const LISTEN_BACKLOG: i32 = 1_024;
/// Signals that stop the server gracefully (1001 to every WebSocket, then exit 0).
const STOP_SIGNALS: &[i32] = &[SIGTERM, SIGINT, SIGQUIT];
/// Signals that would otherwise kill the process without a word (a terminal closing, a
/// stray `kill -USR1`, a timer or resource signal): logged and ignored. There is no
/// configuration to reload. (SIGPIPE is already ignored by the Rust runtime.)
const IGNORED_SIGNALS: &[i32] = &[
    SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGXCPU, SIGXFSZ,
];

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGHUP => "SIGHUP",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        SIGQUIT => "SIGQUIT",
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGALRM => "SIGALRM",
        SIGVTALRM => "SIGVTALRM",
        SIGPROF => "SIGPROF",
        SIGIO => "SIGIO",
        SIGXCPU => "SIGXCPU",
        SIGXFSZ => "SIGXFSZ",
        _ => "other",
    }
}

/// Time allowed between the stop signal and exit.
const SHUTDOWN_MS: u64 = 800;
/// Consecutive `poll` failures tolerated before giving up.
const POLL_FAILURES_MAX: u32 = 16;

/// A bound, not yet running server.
pub struct Server<A: Service> {
    poll: Poll,
    listener: TcpListener,
    signals: Signals,
    engine: Engine<TcpStream, A>,
    clock: Clock,
    local_addr: SocketAddr,
    accepts_per_turn_max: usize,
    accept_retry_ms: u64,
    send_buffer_bytes: usize,
    memory: MemoryRelease,
    state: Option<StateFile>,
}

/// Where and how often the service's snapshot is written.
struct StateFile {
    path: std::path::PathBuf,
    interval_ms: u64,
    next: Millis,
    /// A snapshot being taken or written, a slice per turn.
    job: Option<SaveJob>,
}

/// Bytes of snapshot serialized per turn, and written per turn: each slice costs about a
/// millisecond, so a large state never stalls the loop for long.
const SLICE_BYTES: usize = 256 << 10;
const WRITE_BYTES_PER_TURN: usize = 1 << 20;

/// A periodic snapshot in progress.
struct SaveJob {
    bytes: Vec<u8>,
    /// Once serialized: the temporary file and how much of `bytes` it holds.
    file: Option<(std::fs::File, usize)>,
    began: Millis,
    /// Time spent in slices, and the longest one.
    busy_us: u128,
    longest_us: u128,
    turns: u32,
}

impl<A: Service> std::fmt::Debug for Server<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl<A: Service> Server<A> {
    /// Binds the listener and prepares the loop, serving `service`.
    pub fn bind_with(config: &Config, service: A) -> io::Result<Server<A>> {
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::from_std(listen(address)?);
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new(STOP_SIGNALS.iter().chain(IGNORED_SIGNALS))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let clock = Clock::start();
        let engine_config = EngineConfig {
            net: config.net.clone(),
            core: config.core.clone(),
            connections_max: config.connections_max,
            allowed_origins: config.allowed_origins.clone(),
            address_limits: Limits {
                connections: config.connections_per_ip_max,
                handshakes_per_sec: config.handshakes_per_ip_per_sec,
            },
            trusted_proxies: config.trusted_proxies.clone(),
        };
        let engine = Engine::with_service(engine_config, service, Some(clock));
        Ok(Server {
            poll,
            listener,
            signals,
            engine,
            clock,
            local_addr,
            accepts_per_turn_max: config.net.accepts_per_turn_max,
            accept_retry_ms: config.net.accept_retry_ms,
            send_buffer_bytes: config.net.socket_send_buffer_bytes,
            memory: MemoryRelease {
                policy: ReleasePolicy::new(config.net.memory_release_after_bytes),
                release: None,
            },
            state: None,
        })
    }

    /// Writes the service's snapshot to `path` every `interval_ms` (0: only at shutdown) and
    /// at shutdown, before the connections are closed.
    pub fn with_state_file(&mut self, path: std::path::PathBuf, interval_ms: u64) {
        let next = if interval_ms == 0 {
            Millis(u64::MAX)
        } else {
            self.clock.now().mono.after(interval_ms)
        };
        self.state = Some(StateFile {
            path,
            interval_ms,
            next,
            job: None,
        });
    }

    /// One slice of the periodic snapshot, if one is due or under way: start it, serialize
    /// the next rooms, or write the next megabyte; the last slice syncs and renames.
    fn save_slice(&mut self, now: Now) {
        use std::io::Write;
        let Some(state) = self.state.as_mut() else {
            return;
        };
        if state.job.is_none() {
            if now.mono < state.next {
                return;
            }
            state.next = if state.interval_ms > 0 {
                now.mono.after(state.interval_ms)
            } else {
                Millis(u64::MAX)
            };
            let mut bytes = Vec::new();
            if !self.engine.service_mut().snapshot_start(now, &mut bytes) {
                return;
            }
            state.job = Some(SaveJob {
                bytes,
                file: None,
                began: now.mono,
                busy_us: 0,
                longest_us: 0,
                turns: 0,
            });
        }
        let Some(job) = state.job.as_mut() else {
            return;
        };
        #[allow(clippy::disallowed_methods)] // Measures the slice, as the log reports it.
        let started = std::time::Instant::now();
        let mut done = false;
        let result: io::Result<()> = match job.file.as_mut() {
            None => {
                let service = self.engine.service_mut();
                if service.snapshot_next(now, &mut job.bytes, SLICE_BYTES) {
                    super::state_file::open_temporary(&state.path)
                        .map(|file| job.file = Some((file, 0)))
                } else {
                    Ok(())
                }
            }
            Some((file, written)) => {
                let end = written
                    .saturating_add(WRITE_BYTES_PER_TURN)
                    .min(job.bytes.len());
                let chunk = job.bytes.get(*written..end).unwrap_or_default();
                let wrote = file.write_all(chunk);
                *written = end;
                done = end >= job.bytes.len();
                wrote
            }
        };
        let slice = started.elapsed().as_micros();
        job.busy_us = job.busy_us.saturating_add(slice);
        job.longest_us = job.longest_us.max(slice);
        job.turns = job.turns.saturating_add(1);
        if let Err(error) = result {
            log!(
                Error,
                "event=state_save_failed path={} error={error}",
                state.path.display()
            );
            state.job = None;
            return;
        }
        if !done {
            return;
        }
        let Some(job) = state.job.take() else {
            return;
        };
        let Some((file, _)) = job.file else {
            return;
        };
        #[allow(clippy::disallowed_methods)]
        let syncing = std::time::Instant::now();
        match super::state_file::commit(&state.path, file) {
            Ok(()) => log!(
                Debug,
                "event=state_saved bytes={} turns={} busy_us={} longest_slice_us={} \
                 sync_us={} elapsed_ms={}",
                job.bytes.len(),
                job.turns,
                job.busy_us,
                job.longest_us,
                syncing.elapsed().as_micros(),
                now.mono.since(job.began)
            ),
            Err(error) => log!(
                Error,
                "event=state_save_failed path={} error={error}",
                state.path.display()
            ),
        }
    }

    /// Whether a snapshot is under way (the loop then does not wait for events).
    fn saving(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.job.is_some())
    }

    /// Writes the whole snapshot now (at shutdown: whatever periodic one was under way is
    /// dropped); logs what it cost.
    fn save(&mut self, now: Now) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        state.job = None;
        let Some(bytes) = self.engine.service_mut().snapshot(now) else {
            return;
        };
        let serialized = self.clock.now().mono;
        match super::state_file::write_atomic(&state.path, &bytes) {
            Ok(()) => {
                let done = self.clock.now().mono;
                log!(
                    Debug,
                    "event=state_saved bytes={} serialize_ms={} write_ms={}",
                    bytes.len(),
                    serialized.since(now.mono),
                    done.since(serialized)
                );
            }
            Err(error) => log!(
                Error,
                "event=state_save_failed path={} error={error}",
                state.path.display()
            ),
        }
    }

    /// Installs what returns free memory to the OS after the tables are compacted (the
    /// binary passes the allocator's trim; without it, only the tables are compacted).
    pub fn on_memory_release(&mut self, release: fn()) {
        self.memory.release = Some(release);
    }

    /// The service, to prepare it before `run` (restore saved state).
    pub fn service_mut(&mut self) -> &mut A {
        self.engine.service_mut()
    }

    /// Both clocks now, as the loop reads them.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs until a stop signal, then shuts down gracefully.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut reaped = Vec::new();
        let mut accept = AcceptState::default();
        let mut stop_at: Option<Millis> = None;
        let mut poll_failures: u32 = 0;
        // The server loop: runs until shutdown completes; every step inside is bounded.
        loop {
            let timeout = self.timeout(&accept, stop_at);
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                poll_failures = poll_failures.saturating_add(1);
                log!(
                    Error,
                    "event=poll_failed error={error:?} count={poll_failures}"
                );
                if poll_failures >= POLL_FAILURES_MAX {
                    return Err(error);
                }
                continue;
            }
            poll_failures = 0;
            let now = self.clock.now();
            self.engine.begin_turn(now);
            for event in events.iter() {
                match event.token() {
                    LISTENER => accept.pending = true,
                    SIGNALS => {
                        if self.take_stop_signal() && stop_at.is_none() {
                            stop_at = Some(self.begin_shutdown(now));
                        }
                    }
                    token => {
                        let Some(id) = ConnId::from_token(token.0) else {
                            continue;
                        };
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        let writable = event.is_writable() || event.is_write_closed();
                        self.engine.ready(now, id, readable, writable);
                    }
                }
            }
            if stop_at.is_none() {
                self.accept(now, &mut accept);
            }
            self.engine.end_turn(now, &mut reaped);
            for mut stream in reaped.drain(..) {
                let _ = self.poll.registry().deregister(&mut stream);
            }
            self.release_memory(now);
            if stop_at.is_none() {
                self.save_slice(now);
            }
            if let Some(stop_at) = stop_at {
                if self.engine.is_empty() || now.mono >= stop_at {
                    log!(Info, "event=stopped connections_left={}", self.engine.len());
                    return Ok(());
                }
            }
        }
    }

    fn timeout(&self, accept: &AcceptState, stop_at: Option<Millis>) -> Option<Duration> {
        let accept_now =
            accept.pending && accept.paused_until.is_none() && self.engine.can_accept();
        if self.engine.has_carry_over() || accept_now || (stop_at.is_none() && self.saving()) {
            return Some(Duration::ZERO);
        }
        let deadlines = [
            self.engine.next_deadline(),
            accept.paused_until,
            stop_at,
            self.memory.policy.deadline(),
            self.state.as_ref().map(|s| s.next),
        ];
        let deadline = deadlines.into_iter().flatten().min()?;
        let now = self.clock.now().mono;
        Some(Duration::from_millis(deadline.since(now)))
    }

    /// Accepts until the backlog is empty, the per-turn budget is spent, or no slot is left.
    fn accept(&mut self, now: Now, state: &mut AcceptState) {
        if let Some(until) = state.paused_until {
            if now.mono < until {
                return;
            }
            state.paused_until = None;
        }
        if !state.pending {
            return;
        }
        for _ in 0..self.accepts_per_turn_max {
            if !self.engine.can_accept() {
                // Retried when a slot frees: `pending` stays set.
                return;
            }
            match self.listener.accept() {
                Ok((stream, peer)) => self.adopt(now, stream, peer.ip()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    state.pending = false;
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Typically out of descriptors: stop accepting and retry from a timer,
                    // never spin on a listener that stays readable.
                    log!(
                        Warn,
                        "event=accept_paused error={e:?} retry_ms={}",
                        self.accept_retry_ms
                    );
                    state.paused_until = Some(now.mono.after(self.accept_retry_ms));
                    return;
                }
            }
        }
    }

    fn adopt(&mut self, now: Now, stream: TcpStream, peer: std::net::IpAddr) {
        let _ = stream.set_nodelay(true);
        if self.send_buffer_bytes > 0 {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(self.send_buffer_bytes);
        }
        match self.engine.accept_from(now, stream, Some(peer)) {
            Ok(id) => {
                let token = Token(id.to_token());
                let registered = match self.engine.stream_mut(id) {
                    Some(stream) => self.poll.registry().register(
                        stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ),
                    None => Ok(()),
                };
                if let Err(error) = registered {
                    log!(Error, "event=register_failed conn={id} error={error:?}");
                }
            }
            Err(stream) => drop(stream),
        }
    }

    /// When departed WebSockets have freed `MEMORY_RELEASE_AFTER_BYTES` and their wave is
    /// over (`ReleasePolicy`): compacts the tables and calls the release hook. Without it the
    /// allocator keeps the peak of a crowd of slow consumers (fragmented small blocks).
    fn release_memory(&mut self, now: Now) {
        let freed = self.engine.stats().freed_bytes;
        if !self.memory.policy.tick(freed, now.mono) {
            return;
        }
        self.engine.compact();
        if let Some(release) = self.memory.release {
            release();
        }
        let took_ms = self.clock.now().mono.since(now.mono);
        log!(
            Debug,
            "event=memory_released freed_bytes={freed} connections={} took_ms={took_ms}",
            self.engine.len()
        );
    }

    /// Whether a stop signal arrived; other handled signals are logged and ignored.
    fn take_stop_signal(&mut self) -> bool {
        let mut stop = false;
        for signal in self.signals.pending() {
            if STOP_SIGNALS.contains(&signal) {
                stop = true;
            } else {
                log!(Info, "event=signal_ignored signal={}", signal_name(signal));
            }
        }
        stop
    }

    fn begin_shutdown(&mut self, now: Now) -> Millis {
        log!(
            Info,
            "event=shutdown connections={} rooms={}",
            self.engine.websockets(),
            self.engine.service().stats().rooms
        );
        let _ = self.poll.registry().deregister(&mut self.listener);
        // Saved before the connections close, so every member is in the file.
        self.save(now);
        self.engine.shutdown(now);
        now.mono.after(SHUTDOWN_MS)
    }
}

struct MemoryRelease {
    policy: ReleasePolicy,
    /// Returns free memory to the OS.
    release: Option<fn()>,
}

#[derive(Default)]
struct AcceptState {
    /// The listener may have connections waiting (edge-triggered: it will not say again).
    pending: bool,
    /// Accepting paused after an error (e.g. out of descriptors) until then.
    paused_until: Option<Millis>,
}

/// A non-blocking listener with a backlog of 1024 (mio's own bind uses 128, which makes a
/// burst of connections stall for a SYN retransmit).
fn listen(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        // `::` serves IPv4 too.
        socket.set_only_v6(false)?;
    }
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
