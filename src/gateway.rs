//! The edge between the wire and the core: decodes each connection's text with its dialect,
//! drives the core, and renders the core's events into frames. Pure like the core (no I/O, no
//! clock): the shell and the simulation drive it alike.
//!
//! Rendering is done once per event and the bytes are shared by every recipient
//! (`Utf8Bytes` clones are reference-count bumps); the room list is rendered once per
//! version. Today every connection speaks the OpenWatchParty dialect; a second dialect adds a
//! per-connection codec choice here, not a change to the core.

use std::io;

use tungstenite::Utf8Bytes;

use crate::auth::{Auth, AuthConfig};
use crate::config::{Config, CoreConfig};
use crate::core::types::{
    Capabilities, Command, ControlAction, Credential, DecodeError, ErrorCode, Event, Json, Outbox,
    Pass, Relay, Report, ResumeKey,
};
use crate::core::{Core, Kind, Listing, Outcome};
use crate::id::RoomId;
use crate::id::{ConnId, SeatId};
use crate::log;
use crate::net::engine::{Engine, EngineConfig};
use crate::net::event_loop::Server;
use crate::net::service::{self, ConnInfo, Deferred, Service, ServiceStats};
use crate::net::stream::Stream;
use crate::net::upgrade::{owp_path, Status};
use crate::owp;
use crate::scratch::trim;
use crate::time::{Clock, Millis, Now, UnixMillis};
use crate::v1;

/// What the gateway asks the engine to do.
pub type Output = service::Output<PongReply>;

/// A pong waiting for its send instant.
#[derive(Debug)]
pub struct PongReply {
    seat: SeatId,
    room: Option<String>,
    echo: Option<Json>,
    received: UnixMillis,
}

impl Deferred for PongReply {
    /// Renders the pong as sent at `sent`.
    fn render(&self, sent: UnixMillis) -> Utf8Bytes {
        Utf8Bytes::from(owp::encode_pong(
            self.seat,
            self.room.as_deref(),
            self.echo.as_ref(),
            self.received,
            sent,
        ))
    }
}

/// The core plus its codecs.
#[derive(Debug)]
pub struct Gateway {
    core: Core,
    sync_lead_ms: u64,
    outbox: Outbox,
    /// Rendered frames per event index of the current outbox, per dialect.
    rendered: Vec<[Option<Utf8Bytes>; Dialect::COUNT]>,
    /// The dialect of each open connection, by connection index.
    dialects: Vec<Option<(ConnId, Dialect)>>,
    list_cache: Option<(u64, Utf8Bytes)>,
    /// Text messages decoded (those past the rate limit never are).
    decoded: u64,
    /// Connections closed for a broken invariant.
    internal_errors: u64,
    /// Connections displaced during the current render (their dialect is forgotten after).
    displaced: Vec<ConnId>,
    /// Names rooms were entered by in v1 (other than their UUID).
    aliases: std::collections::HashMap<RoomId, String>,
    /// The auth step's keys and rules.
    auth: Auth,
    /// Makes each connection's resume token.
    minter: crate::auth::ResumeMinter,
    /// Rooms outlive a shutdown (they are saved): clients are told to reconnect (1012),
    /// never that their room closed.
    keeps_rooms: bool,
    /// A snapshot taken in slices.
    snapshot: SliceState,
    /// Frames sent, by `Event::NAMES`, and errors sent, by `ErrorCode::ALL` (both dialects).
    sent: [u64; 23],
    errors_sent: [u64; 20],
}

/// Where a snapshot taken in slices stands.
#[derive(Debug, Default)]
struct SliceState {
    /// Rooms still to write, the next last.
    pending: Vec<RoomId>,
    /// No room written yet (no comma before the next).
    first: bool,
    /// The core's mutation count when the last snapshot began.
    saved: Option<u64>,
}

impl Gateway {
    /// A gateway over a fresh core, authentication off (tests and simulations). Invites
    /// are signed with a key drawn from `seed`.
    pub fn new(config: CoreConfig, seed: u64) -> Gateway {
        Gateway::with_auth(config, &AuthConfig::default(), seed_key(seed), seed)
    }

    /// A gateway over a fresh core with `auth`'s settings; `invite_key` (fresh OS randomness
    /// in the server) signs invites when no secret is configured, and keys resume tokens.
    pub fn with_auth(
        mut config: CoreConfig,
        auth: &AuthConfig,
        invite_key: [u8; 32],
        seed: u64,
    ) -> Gateway {
        config.auth_enabled = auth.enabled();
        let sync_lead_ms = config.sync_lead_ms;
        Gateway {
            core: Core::new(config, seed),
            sync_lead_ms,
            outbox: Outbox::default(),
            rendered: Vec::new(),
            dialects: Vec::new(),
            list_cache: None,
            decoded: 0,
            internal_errors: 0,
            aliases: std::collections::HashMap::new(),
            displaced: Vec::new(),
            auth: Auth::new(auth, invite_key),
            minter: crate::auth::ResumeMinter::new(&invite_key),
            keeps_rooms: false,
            snapshot: SliceState::default(),
            sent: [0; 23],
            errors_sent: [0; 20],
        }
    }

    /// An engine serving a fresh gateway (tests and simulations; the server uses `server`).
    pub fn engine<S: Stream>(
        config: EngineConfig,
        seed: u64,
        clock: Option<Clock>,
    ) -> Engine<S, Gateway> {
        let gateway = Gateway::new(config.core.clone(), seed);
        Engine::with_service(config, gateway, clock)
    }

    /// A server bound to `config`'s address, serving a fresh gateway; `seed` drives every id
    /// the core makes, `invite_key` signs invites when no secret is configured (`None`: one
    /// drawn from `seed`, for tests).
    pub fn server(
        config: &Config,
        seed: u64,
        invite_key: Option<[u8; 32]>,
    ) -> io::Result<Server<Gateway>> {
        let key = invite_key.unwrap_or_else(|| seed_key(seed));
        let gateway = Gateway::with_auth(config.core.clone(), &config.auth, key, seed);
        Server::bind_with(config, gateway)
        // The caller wires the state file (`Server::with_state_file`, `keep_rooms`).
    }

    /// The core, for inspection.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Text messages decoded so far (a message dropped by the rate limit is not).
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Rooms are kept across restarts (a state file is written): at shutdown, clients are
    /// told to reconnect (1012) and no room closes.
    pub fn keep_rooms(&mut self, keep: bool) {
        self.keeps_rooms = keep;
    }

    /// The state to keep, as JSON: the core's snapshot and the names v1 rooms were entered
    /// by.
    pub fn snapshot_bytes(&self, now: Now) -> Vec<u8> {
        let state = SavedState {
            core: self.core.snapshot(now),
            aliases: self.saved_aliases(),
        };
        serde_json::to_vec(&state).unwrap_or_default()
    }

    /// The v1 names of rooms that exist, sorted.
    fn saved_aliases(&self) -> Vec<(String, String)> {
        let mut aliases: Vec<(String, String)> = self
            .aliases
            .iter()
            .filter(|(id, _)| self.core.clock_of(**id).is_some())
            .map(|(id, name)| (id.to_string(), name.clone()))
            .collect();
        aliases.sort();
        aliases
    }

    /// Brings saved state back into a fresh gateway. Refuses (and changes nothing) a file
    /// that is not JSON of this shape, or of a later version. Returns (rooms, seats).
    pub fn restore_bytes(&mut self, bytes: &[u8], now: Now) -> Result<(usize, usize), String> {
        let state: SavedState =
            serde_json::from_slice(bytes).map_err(|e| format!("not a state file: {e}"))?;
        let version = state.core.version;
        if version != crate::core::snapshot::SNAPSHOT_VERSION {
            return Err(format!(
                "version {version}, this server reads version {}",
                crate::core::snapshot::SNAPSHOT_VERSION
            ));
        }
        let restored = self.core.restore(&state.core, now);
        for (id, name) in state.aliases {
            if let (Some(id), Some(_)) = (RoomId::parse(&id), RoomId::from_name(&name)) {
                if self.core.clock_of(id).is_some() {
                    self.aliases.insert(id, name);
                }
            }
        }
        Ok(restored)
    }

    /// A connection finished its upgrade, speaking `dialect`.
    pub fn open(&mut self, now: Now, conn: ConnId, dialect: Dialect, out: &mut Vec<Output>) {
        self.set_dialect(conn, Some(dialect));
        let caps = Capabilities {
            follows_schedule: false,
            rejoins_by_naming: dialect == Dialect::Owp,
        };
        let token = self.minter.mint();
        let resume = crate::auth::resume_digest(&token).map(|digest| ResumeKey { token, digest });
        self.core.open(now, conn, caps, resume, &mut self.outbox);
        self.render(now, out);
    }

    /// A text message arrived.
    /// Spent from the sender's budget first: past it, the text is dropped unparsed. Returns
    /// what became of it.
    pub fn text(&mut self, now: Now, conn: ConnId, text: &str, out: &mut Vec<Output>) -> Outcome {
        if self.dialect_of(conn) == Dialect::V1 {
            return self.text_v1(now, conn, text, out);
        }
        let kind = owp::kind_hint(text);
        let mut outcome = Outcome::Refused(ErrorCode::RateLimited);
        if self.core.admit(now, conn, kind, &mut self.outbox) {
            self.decoded = self.decoded.saturating_add(1);
            let message = owp::decode(text).map(|c| self.authenticate(now, conn, c));
            let is_log = matches!(message, Ok(Command::ClientLog { .. }));
            let guessed_wrong = kind == Kind::ClientLog && !is_log;
            if !guessed_wrong || self.core.admit(now, conn, Kind::Other, &mut self.outbox) {
                outcome = self.core.handle(now, conn, message, &mut self.outbox);
            }
        }
        self.render(now, out);
        self.verify(now, conn, out);
        self.pause_if_over(now, conn, out);
        outcome
    }

    /// A v1 message: spent from the budget, decoded, handled, and answered with exactly one
    /// `ack` or `error` when it carries a `requestId` (an `error` also when it does not and
    /// was refused).
    fn text_v1(&mut self, now: Now, conn: ConnId, text: &str, out: &mut Vec<Output>) -> Outcome {
        let mut request_id = None;
        let mut reason = None;
        let outcome = if !self.core.admit(now, conn, Kind::Other, &mut self.outbox) {
            Outcome::Refused(ErrorCode::RateLimited)
        } else {
            self.decoded = self.decoded.saturating_add(1);
            match v1::decode(text) {
                Err(rejected) => {
                    request_id = rejected.request_id;
                    reason = Some(rejected.reason);
                    Outcome::Refused(ErrorCode::InvalidMessage)
                }
                Ok(request) => {
                    request_id = request.request_id;
                    let command = self.authenticate(now, conn, request.command);
                    self.handle_v1(now, conn, command, &request.room_name)
                }
            }
        };
        self.render(now, out);
        // A state found broken around the sender answers `internal` (and `verify` closes
        // the connection right after): no ack for a request whose effect is in doubt.
        let checked = self.core.check_conn(conn);
        let reply = match outcome {
            _ if checked.is_err() => Some(v1::error(
                request_id.as_deref(),
                v1::INTERNAL,
                "Internal error",
            )),
            Outcome::Accepted => request_id.as_deref().map(v1::ack),
            Outcome::Refused(code) => {
                crate::core::bump(&mut self.errors_sent, code.index());
                Some(v1::error(
                    request_id.as_deref(),
                    v1::error_code(code),
                    reason.unwrap_or(owp::error_message(code)),
                ))
            }
        };
        if let Some(reply) = reply {
            out.push(Output::Send {
                conn,
                text: Utf8Bytes::from(reply),
            });
        }
        self.contain(now, conn, checked, out);
        self.pause_if_over(now, conn, out);
        outcome
    }

    /// Carries out a decoded v1 command: remembers the name a room was entered by, and
    /// refuses leaving a room the sender is not in.
    fn handle_v1(&mut self, now: Now, conn: ConnId, command: Command, room_name: &str) -> Outcome {
        if let Command::Enter { room, alias, .. } = &command {
            if RoomId::parse(alias).is_none() {
                self.remember_alias(*room, alias);
            }
        }
        let command = self.settle_playback(command);
        if matches!(command, Command::LeaveRoom) {
            let named = RoomId::from_name(room_name);
            if named.is_none() || named != self.core.room_of(conn) {
                return Outcome::Refused(ErrorCode::NotInRoom);
            }
        }
        self.core.handle(now, conn, Ok(command), &mut self.outbox)
    }

    /// A v1 host's playback state that agrees with the room clock (same play state, position
    /// within a second) is a report, not a command: hosts repeat their state, and a command
    /// makes every OpenWatchParty member act.
    fn settle_playback(&self, command: Command) -> Command {
        let Command::Control { room, control } = command else {
            return command;
        };
        let clock = room
            .as_deref()
            .and_then(RoomId::parse)
            .and_then(|id| self.core.clock_of(id));
        let agrees = clock.is_some_and(|clock| {
            let playing = control.action == ControlAction::Play;
            let near = control
                .position
                .is_some_and(|p| (p - clock.position).abs() <= 1.0);
            clock.playing == playing && near
        });
        if !agrees {
            return Command::Control { room, control };
        }
        Command::Report {
            room,
            report: Report {
                has_payload: true,
                position_number: control.position,
                position: control.position,
                play_state_text: control.play_state.map(|s| s.as_str().to_string()),
                latency_ms: None,
                relay: Relay {
                    action: None,
                    ..control.relay
                },
            },
        }
    }

    /// Remembers the name a room was entered by in v1, to call it that in v1 messages;
    /// names of rooms that are gone are forgotten once there are more than rooms allowed.
    fn remember_alias(&mut self, room: RoomId, alias: &str) {
        if self.aliases.len() > self.core.rooms_max() {
            let core = &self.core;
            self.aliases.retain(|id, _| core.host(*id).is_some());
        }
        self.aliases.insert(room, alias.to_string());
    }

    /// The dialect `conn` speaks.
    fn dialect_of(&self, conn: ConnId) -> Dialect {
        match self.dialects.get(conn.index as usize) {
            Some(Some((owner, dialect))) if *owner == conn => *dialect,
            _ => Dialect::Owp,
        }
    }

    /// A binary message arrived (not part of the protocol).
    pub fn binary(&mut self, now: Now, conn: ConnId, out: &mut Vec<Output>) -> Outcome {
        let outcome = self
            .core
            .receive(now, conn, Err(DecodeError::Binary), &mut self.outbox);
        self.render(now, out);
        self.pause_if_over(now, conn, out);
        outcome
    }

    /// Past its message budget, a sender is not read until the budget refills: what it
    /// sends meanwhile waits in the kernel (TCP pushes back) instead of being read and
    /// dropped. A client_log past its own budget does not pause the rest.
    fn pause_if_over(&mut self, now: Now, conn: ConnId, out: &mut Vec<Output>) {
        if let Some(until) = self.core.over_budget_until(now, conn) {
            out.push(Output::Pause { conn, until });
        }
    }

    /// After a message from `conn`: if the core's state around it is broken (a bug), the
    /// damage stays with it: an internal error is logged with the connection and its room,
    /// the connection is dropped from the core and closed with 1011, the others go on.
    fn verify(&mut self, now: Now, conn: ConnId, out: &mut Vec<Output>) {
        let checked = self.core.check_conn(conn);
        self.contain(now, conn, checked, out);
    }

    /// `verify` with the check already made.
    fn contain(
        &mut self,
        now: Now,
        conn: ConnId,
        checked: Result<(), &'static str>,
        out: &mut Vec<Output>,
    ) {
        let Err(detail) = checked else {
            return;
        };
        let room = self.core.room_of(conn);
        log!(
            Error,
            "event=internal_error conn={conn} room={} detail={}",
            room.map_or_else(|| "none".to_string(), |r| r.to_string()),
            log::quoted(detail, 64)
        );
        self.internal_errors = self.internal_errors.saturating_add(1);
        self.set_dialect(conn, None);
        self.core.drop_broken(now, conn, &mut self.outbox);
        self.render(now, out);
        out.push(Output::Close {
            conn,
            code: 1011,
            reason: "Internal error",
        });
    }

    /// Connections closed because the state around them was found broken.
    pub fn internal_errors(&self) -> u64 {
        self.internal_errors
    }

    /// A connection is gone.
    pub fn close(&mut self, now: Now, conn: ConnId, out: &mut Vec<Output>) {
        self.set_dialect(conn, None);
        self.core.close(now, conn, &mut self.outbox);
        self.render(now, out);
    }

    /// Fires due timers.
    pub fn advance(&mut self, now: Now, out: &mut Vec<Output>) {
        self.core.advance(now, &mut self.outbox);
        self.render(now, out);
    }

    /// Tells every room member the server is stopping.
    pub fn shutdown(&mut self, now: Now, out: &mut Vec<Output>) {
        self.core.shutdown(now, self.keeps_rooms, &mut self.outbox);
        self.render(now, out);
    }

    /// When `advance` next has work.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.core.next_deadline()
    }

    /// Releases capacity left over from a crowd that has gone (see `Core::compact`).
    pub fn compact(&mut self) {
        self.core.compact();
        self.rendered = Vec::new();
        self.outbox.compact();
    }

    fn set_dialect(&mut self, conn: ConnId, dialect: Option<Dialect>) {
        let index = conn.index as usize;
        if self.dialects.len() <= index {
            self.dialects.resize(index.saturating_add(1), None);
        }
        if let Some(slot) = self.dialects.get_mut(index) {
            *slot = dialect.map(|d| (conn, d));
        }
    }

    /// Turns the outbox into frames: each event rendered once per dialect among its
    /// recipients, the bytes shared by all of them.
    fn render(&mut self, now: Now, out: &mut Vec<Output>) {
        self.rendered.clear();
        self.rendered
            .resize(self.outbox.events.len(), [const { None }; Dialect::COUNT]);
        for &(conn, index) in &self.outbox.sends {
            let Some(event) = self.outbox.events.get(index as usize) else {
                continue;
            };
            match event {
                Event::Pong {
                    seat,
                    room,
                    echo,
                    received,
                } => {
                    let reply = PongReply {
                        seat: *seat,
                        room: room.clone(),
                        echo: echo.clone(),
                        received: *received,
                    };
                    out.push(Output::Stamped { conn, frame: reply });
                    continue;
                }
                Event::Restart => {
                    out.push(Output::Close {
                        conn,
                        code: 1012,
                        reason: "Server restarting",
                    });
                    continue;
                }
                Event::Displaced => {
                    self.displaced.push(conn);
                    out.push(Output::Close {
                        conn,
                        code: v1::CLOSE_REPLACED,
                        reason: "Replaced by a newer connection",
                    });
                    continue;
                }
                Event::ClientLog { category, message } => {
                    log!(
                        Debug,
                        "event=client_log conn={conn} category={} message={}",
                        log::quoted(category, 32),
                        log::quoted(message, 512)
                    );
                    continue;
                }
                _ => {}
            }
            let dialect = self.dialect_of(conn);
            let Some(slot) = self
                .rendered
                .get_mut(index as usize)
                .and_then(|slots| slots.get_mut(dialect.index()))
            else {
                continue;
            };
            if slot.is_none() {
                let aliases = &self.aliases;
                let room_id =
                    |id: RoomId| aliases.get(&id).cloned().unwrap_or_else(|| id.to_string());
                *slot = match (dialect, event) {
                    (Dialect::Owp, Event::RoomList { listing, withheld }) => Some(if *withheld {
                        Utf8Bytes::from(owp::encode_room_list(listing, now.wall))
                    } else {
                        room_list(listing, &mut self.list_cache, now.wall)
                    }),
                    (
                        _,
                        Event::Invite {
                            room,
                            serial,
                            expires_at,
                        },
                    ) => {
                        let expires_s = expires_at.0 / 1_000;
                        let token = self.auth.sign_invite(*room, *serial, expires_s);
                        Some(Utf8Bytes::from(match dialect {
                            Dialect::Owp => owp::encode_invite(*room, &token, expires_s, now.wall),
                            Dialect::V1 => v1::encode_invite(&room_id(*room), &token, *expires_at),
                        }))
                    }
                    (Dialect::Owp, _) => {
                        owp::encode(event, now.wall, self.sync_lead_ms).map(Utf8Bytes::from)
                    }
                    (Dialect::V1, _) => v1::encode(event, now.wall, &room_id).map(Utf8Bytes::from),
                };
            }
            if let Some(text) = slot {
                crate::core::bump(&mut self.sent, event.index());
                if let Event::Error { code, .. } = event {
                    crate::core::bump(&mut self.errors_sent, code.index());
                }
                let text = text.clone();
                out.push(match event {
                    // A relayed host state supersedes the previous one still queued for a
                    // lagging member (commands are never dropped).
                    Event::State { room, .. } => Output::SendLatest {
                        conn,
                        text,
                        key: (room.0.as_u128() as u64) | 1,
                    },
                    _ => Output::Send { conn, text },
                });
            }
        }
        self.outbox.clear();
        for conn in std::mem::take(&mut self.displaced) {
            self.set_dialect(conn, None);
        }
        trim(&mut self.outbox.events);
        trim(&mut self.outbox.sends);
        self.rendered.clear();
        trim(&mut self.rendered);
    }
}

/// What a state file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    core: crate::core::snapshot::Snapshot,
    /// (room id, the name v1 clients entered it by).
    aliases: Vec<(String, String)>,
}

/// A 32-byte key drawn from `seed` (tests and simulations; the server draws its own).
fn seed_key(seed: u64) -> [u8; 32] {
    let mut rng = crate::rng::Rng::new(seed ^ 0x1A7E_C0DE);
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    key
}

impl Gateway {
    /// The edge's auth step: every credential and invite a command carries is checked here,
    /// before the core sees it, and replaced by what it proves (or a refusal). A refusal's
    /// reason is logged; the token never is.
    fn authenticate(&self, now: Now, conn: ConnId, mut command: Command) -> Command {
        let user = |credential: &mut Option<Credential>| {
            let Some(Credential::Token(token)) = credential else {
                return;
            };
            *credential = Some(match self.auth.verify_user(token, now.wall) {
                Ok(identity) => Credential::Accepted(identity),
                Err(why) => {
                    // Debug, not info: a client can send 30 bad tokens a second.
                    log!(
                        Debug,
                        "event=auth_failed conn={conn} reason={} token_bytes={}",
                        why.as_str(),
                        token.len()
                    );
                    Credential::Refused
                }
            });
        };
        let invite = |pass: &mut Option<Pass>| {
            if let Some(Pass::Token(token)) = pass {
                *pass = Some(self.auth.verify_invite(token, now.wall));
            }
        };
        match &mut command {
            Command::Identify { credential, .. } | Command::CreateRoom { credential, .. } => {
                user(credential)
            }
            Command::JoinRoom {
                credential,
                invite: pass,
                ..
            }
            | Command::Enter {
                credential,
                invite: pass,
                ..
            } => {
                user(credential);
                invite(pass);
            }
            Command::Resume { token } => {
                // No digest (empty or oversize): a digest no seat has.
                *token = crate::auth::resume_digest(token).unwrap_or_default();
            }
            _ => {}
        }
        command
    }
}

/// A wire dialect: a codec chosen per connection at the upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// OpenWatchParty's JSON messages.
    Owp,
    /// StreamSync v1's versioned envelope.
    V1,
}

impl Dialect {
    /// How many dialects there are (the size of a per-event render cache).
    pub const COUNT: usize = 2;

    fn index(self) -> usize {
        match self {
            Dialect::Owp => 0,
            Dialect::V1 => 1,
        }
    }
}

/// The route table: (path, subprotocol) → dialect. Today: `/ws` and `/ws/...` without a
/// subprotocol speak OpenWatchParty.
const ROUTES: &[Route] = &[
    (v1_path, Some(v1::SUBPROTOCOL), Dialect::V1),
    (v1_path, None, Dialect::V1),
    (owp_path, Some(v1::SUBPROTOCOL), Dialect::V1),
    (owp_path, None, Dialect::Owp),
];

/// The v1 endpoint: `/v1/ws`.
fn v1_path(path: &str) -> bool {
    path == "/v1/ws"
}

/// One route: which paths, which subprotocol (none: the client offered none Tandem speaks
/// there), which dialect.
type Route = (fn(&str) -> bool, Option<&'static str>, Dialect);

/// The dialect of a WebSocket at `path` with `protocol` selected.
pub fn route(path: &str, protocol: Option<&str>) -> Option<Dialect> {
    ROUTES
        .iter()
        .find(|(serves, selected, _)| serves(path) && *selected == protocol)
        .map(|(_, _, dialect)| *dialect)
}

/// Which subprotocol to select for a WebSocket at `path` offering `protocols`: the first
/// offered that a route of this path names; else none, if the path has a route without one
/// (an offered subprotocol Tandem does not speak is ignored and none is echoed, so a client
/// that insists on it fails its own handshake check, RFC 6455 §4.1); else 404.
pub fn select(path: &str, protocols: &[String]) -> Result<Option<&'static str>, Status> {
    let mut plain = false;
    for (_, selected, _) in ROUTES.iter().filter(|(serves, _, _)| serves(path)) {
        match selected {
            Some(name) if protocols.iter().any(|p| p == name) => return Ok(Some(name)),
            Some(_) => {}
            None => plain = true,
        }
    }
    if plain {
        Ok(None)
    } else {
        Err(Status::NotFound)
    }
}

impl Service for Gateway {
    type Deferred = PongReply;

    fn select(&self, path: &str, protocols: &[String]) -> Result<Option<&'static str>, Status> {
        select(path, protocols)
    }
    fn open(&mut self, now: Now, conn: ConnId, info: &ConnInfo, out: &mut Vec<Output>) {
        let dialect = route(&info.path, info.protocol).unwrap_or(Dialect::Owp);
        Gateway::open(self, now, conn, dialect, out)
    }
    fn text(&mut self, now: Now, conn: ConnId, text: &str, out: &mut Vec<Output>) {
        let _ = Gateway::text(self, now, conn, text, out);
    }
    fn binary(&mut self, now: Now, conn: ConnId, _data: &[u8], out: &mut Vec<Output>) {
        let _ = Gateway::binary(self, now, conn, out);
    }
    fn close(&mut self, now: Now, conn: ConnId, out: &mut Vec<Output>) {
        Gateway::close(self, now, conn, out)
    }
    fn advance(&mut self, now: Now, out: &mut Vec<Output>) {
        Gateway::advance(self, now, out)
    }
    fn shutdown(&mut self, now: Now, out: &mut Vec<Output>) {
        Gateway::shutdown(self, now, out)
    }
    fn next_deadline(&self) -> Option<Millis> {
        Gateway::next_deadline(self)
    }
    fn stats(&self) -> ServiceStats {
        ServiceStats {
            rooms: self.core.stats().rooms,
            auth_enabled: self.core.auth_enabled(),
        }
    }
    fn snapshot(&mut self, now: Now) -> Option<Vec<u8>> {
        self.keeps_rooms.then(|| self.snapshot_bytes(now))
    }

    fn metrics(&self, out: &mut String) {
        use crate::net::service::family;
        let stats = self.core.stats();
        let (members, away) = self.core.members_and_away();
        family(
            out,
            "tandem_rooms",
            "gauge",
            "Rooms open.",
            &[("", stats.rooms as u64)],
        );
        family(
            out,
            "tandem_members",
            "gauge",
            "Seats in rooms.",
            &[("", members as u64)],
        );
        family(
            out,
            "tandem_members_away",
            "gauge",
            "Seats in rooms waiting in grace for their connection.",
            &[("", away as u64)],
        );
        let counters = self.core.counters();
        let labelled = |names: &[&str], counts: &[u64], label: &str| -> Vec<(String, u64)> {
            names
                .iter()
                .zip(counts)
                .map(|(name, count)| (format!("{label}=\"{name}\""), *count))
                .collect()
        };
        let commands = labelled(&Command::NAMES, &counters.commands, "type");
        let commands: Vec<(&str, u64)> = commands.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            out,
            "tandem_messages_in_total",
            "counter",
            "Client messages handled (after the rate limit), by command.",
            &commands,
        );
        let sent = labelled(&Event::NAMES, &self.sent, "type");
        let sent: Vec<(&str, u64)> = sent.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            out,
            "tandem_messages_out_total",
            "counter",
            "Frames sent to clients, by event.",
            &sent,
        );
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        let errors = labelled(&codes, &self.errors_sent, "code");
        let errors: Vec<(&str, u64)> = errors.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            out,
            "tandem_errors_sent_total",
            "counter",
            "Errors sent to clients, by code.",
            &errors,
        );
        family(
            out,
            "tandem_resumes_total",
            "counter",
            "Seats taken back with a resume token.",
            &[("", counters.resumes)],
        );
        family(
            out,
            "tandem_reclaims_total",
            "counter",
            "Seats taken back by authenticating as their user.",
            &[("", counters.reclaims)],
        );
        family(
            out,
            "tandem_readmissions_total",
            "counter",
            "Reconnected clients let back into the room they named.",
            &[("", counters.readmissions)],
        );
        family(
            out,
            "tandem_host_handovers_total",
            "counter",
            "Host handovers.",
            &[("", counters.handovers)],
        );
        family(
            out,
            "tandem_pending_plays_released_total",
            "counter",
            "Scheduled plays released, by why.",
            &[
                ("by=\"ready\"", counters.plays_released_ready),
                ("by=\"deadline\"", counters.plays_released_deadline),
            ],
        );
        family(
            out,
            "tandem_invites_total",
            "counter",
            "Invites made.",
            &[("", counters.invites)],
        );
        family(
            out,
            "tandem_internal_errors_total",
            "counter",
            "Connections closed because the state around them was found broken.",
            &[("", self.internal_errors)],
        );
    }

    fn snapshot_start(&mut self, now: Now, buf: &mut Vec<u8>) -> bool {
        let mutations = self.core.mutations();
        if !self.keeps_rooms || self.snapshot.saved == Some(mutations) {
            return false;
        }
        self.snapshot.saved = Some(mutations);
        let mut pending = self.core.snapshot_rooms();
        pending.reverse();
        self.snapshot.pending = pending;
        self.snapshot.first = true;
        buf.extend_from_slice(
            format!(
                r#"{{"core":{{"version":{},"saved_at":{},"serial":{},"rooms":["#,
                crate::core::snapshot::SNAPSHOT_VERSION,
                now.wall.0,
                self.core.serial_now()
            )
            .as_bytes(),
        );
        true
    }

    fn snapshot_next(&mut self, now: Now, buf: &mut Vec<u8>, bytes: usize) -> bool {
        let until = buf.len().saturating_add(bytes);
        while buf.len() < until {
            let Some(id) = self.snapshot.pending.pop() else {
                buf.extend_from_slice(b"]},\"aliases\":");
                let _ = serde_json::to_writer(&mut *buf, &self.saved_aliases());
                buf.push(b'}');
                return true;
            };
            // A room closed since the snapshot began is not in it.
            let Some(room) = self.core.snapshot_room(id, now) else {
                continue;
            };
            if !std::mem::take(&mut self.snapshot.first) {
                buf.push(b',');
            }
            let _ = serde_json::to_writer(&mut *buf, &room);
        }
        false
    }

    fn compact(&mut self) {
        Gateway::compact(self)
    }
}

/// The room list, rendered once per version.
fn room_list(
    listing: &Listing,
    cache: &mut Option<(u64, Utf8Bytes)>,
    now: UnixMillis,
) -> Utf8Bytes {
    if let Some((cached, text)) = cache {
        if *cached == listing.version {
            return text.clone();
        }
    }
    let text = Utf8Bytes::from(owp::encode_room_list(listing, now));
    *cache = Some((listing.version, text.clone()));
    text
}

#[cfg(test)]
mod route_tests {
    use super::*;

    /// (path, subprotocol) → dialect: /ws and below speak OpenWatchParty without a
    /// subprotocol; an unknown subprotocol is not selected; other paths are 404.
    #[test]
    fn route_table() {
        let none: Vec<String> = Vec::new();
        let offered = vec!["chat".to_string(), "x.v9".to_string()];
        assert_eq!(select("/ws", &none), Ok(None));
        assert_eq!(select("/ws/room/1", &offered), Ok(None));
        assert_eq!(select("/wss", &none), Err(Status::NotFound));
        assert_eq!(select("/", &offered), Err(Status::NotFound));
        assert_eq!(route("/ws", None), Some(Dialect::Owp));
        assert_eq!(route("/ws", Some("chat")), None);
        assert_eq!(route("/other", None), None);
        // StreamSync v1: /v1/ws, or /ws with its subprotocol (echoed when offered).
        let v1_offered = vec!["chat".to_string(), "streamsync.v1".to_string()];
        assert_eq!(select("/ws", &v1_offered), Ok(Some("streamsync.v1")));
        assert_eq!(select("/v1/ws", &none), Ok(None));
        assert_eq!(select("/v1/ws", &v1_offered), Ok(Some("streamsync.v1")));
        assert_eq!(route("/ws", Some("streamsync.v1")), Some(Dialect::V1));
        assert_eq!(route("/v1/ws", None), Some(Dialect::V1));
        assert_eq!(select("/v1/ws/x", &none), Err(Status::NotFound));
    }
}

#[cfg(test)]
mod fault_tests {
    use super::*;
    use crate::net::service::Deferred;
    use crate::time::{Millis, UnixMillis};

    fn texts(out: &mut Vec<Output>, conn: ConnId) -> Vec<String> {
        let mut mine = Vec::new();
        out.retain(|o| match o {
            Output::Send { conn: c, text } | Output::SendLatest { conn: c, text, .. }
                if *c == conn =>
            {
                mine.push(text.as_str().to_string());
                false
            }
            Output::Stamped { conn: c, frame } if *c == conn => {
                mine.push(frame.render(UnixMillis(0)).as_str().to_string());
                false
            }
            _ => true,
        });
        mine
    }

    /// Three OpenWatchParty connections: a host with a room, a guest in it, a third in the
    /// lobby; the outputs of setting it up are dropped.
    fn party() -> (Gateway, Now, [ConnId; 3], RoomId) {
        let mut gateway = Gateway::new(CoreConfig::default(), 5);
        let now = Now {
            mono: Millis(10),
            wall: UnixMillis(1_700_000_000_000),
        };
        let conns = [1, 2, 3].map(|index| ConnId {
            index,
            generation: 1,
        });
        let mut out = Vec::new();
        for c in conns {
            gateway.open(now, c, Dialect::Owp, &mut out);
        }
        let create = r#"{"type":"create_room","payload":{}}"#;
        let _ = gateway.text(now, conns[0], create, &mut out);
        let room = gateway.core().room_of(conns[0]).expect("a room");
        let join = format!(r#"{{"type":"join_room","room":"{room}"}}"#);
        let _ = gateway.text(now, conns[1], &join, &mut out);
        (gateway, now, conns, room)
    }

    fn closed_1011(out: &[Output], who: ConnId) -> bool {
        out.iter()
            .any(|o| matches!(o, Output::Close { conn, code: 1011, .. } if *conn == who))
    }

    /// A broken invariant around one connection (its seat gone) closes that connection with
    /// 1011 and leaves the others served, in its room and elsewhere.
    #[test]
    fn broken_invariant_closes_one_connection() {
        let (mut gateway, now, [host, guest, other], room) = party();
        let mut out = Vec::new();
        gateway.core.break_seat(guest);
        let ping = r#"{"type":"ping","payload":{"client_ts":1}}"#;
        let _ = gateway.text(now, guest, ping, &mut out);
        assert!(closed_1011(&out, guest), "{out:?}");
        assert_eq!(gateway.internal_errors(), 1);
        assert_eq!(gateway.core().seat(guest), None, "dropped from the core");
        out.clear();

        for c in [host, other] {
            let _ = gateway.text(now, c, ping, &mut out);
            let replies = texts(&mut out, c);
            assert!(
                replies.iter().any(|t| t.contains("\"pong\"")),
                "{c}: {replies:?}"
            );
        }
        let chat =
            format!(r#"{{"type":"chat_message","room":"{room}","payload":{{"text":"hi"}}}}"#);
        let _ = gateway.text(now, host, &chat, &mut out);
        assert!(texts(&mut out, host)
            .iter()
            .any(|t| t.contains("chat_message")));
        gateway.core().check_invariants();
    }

    /// A v1 request that finds the state around its sender broken is answered `internal`
    /// (its only answer: no ack), then the connection is closed with 1011.
    #[test]
    fn v1_internal_error() {
        let (mut gateway, now, _, _) = party();
        let mut out = Vec::new();
        let v1_conn = ConnId {
            index: 9,
            generation: 1,
        };
        gateway.open(now, v1_conn, Dialect::V1, &mut out);
        out.clear();
        gateway.core.break_seat(v1_conn);
        let chat =
            r#"{"v":1,"type":"chat/send","requestId":"r1","payload":{"roomId":"den","text":"x"}}"#;
        let _ = gateway.text(now, v1_conn, chat, &mut out);
        let replies = texts(&mut out, v1_conn);
        assert_eq!(replies.len(), 1, "{replies:?}");
        let reply: serde_json::Value = serde_json::from_str(&replies[0]).expect("JSON");
        assert_eq!(reply["type"], "error");
        assert_eq!(reply["payload"]["code"], "internal");
        assert_eq!(reply["payload"]["requestId"], "r1");
        assert!(closed_1011(&out, v1_conn), "{out:?}");
    }

    /// A session pointing at another connection's seat is dropped alone: the seat's holder
    /// keeps its seat and its room, and its room's members keep theirs.
    #[test]
    fn a_stolen_seat_stays_with_its_holder() {
        let (mut gateway, now, [host, guest, thief], room) = party();
        let mut out = Vec::new();
        gateway.core.steal_seat(thief, host);
        let _ = gateway.text(now, thief, r#"{"type":"ping","payload":{}}"#, &mut out);
        assert!(closed_1011(&out, thief), "{out:?}");
        assert!(
            !out.iter().any(
                |o| matches!(o, Output::Send { text, .. } if text.as_str().contains("room_closed"))
            ),
            "nobody was told the room closed: {out:?}"
        );
        assert_eq!(gateway.core().room_of(host), Some(room));
        assert_eq!(gateway.core().host(room), Some(host));
        assert_eq!(gateway.core().members(room), vec![host, guest]);
        gateway.core().check_invariants();
    }
}
