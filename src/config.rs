//! Settings: every limit and deadline, named with its unit last, each settable by an
//! environment variable and by the matching `--flag`. `SETTINGS` is the single table from which
//! parsing, `--help` and the README's settings list are made, so they cannot drift apart.

use std::fmt;
use std::net::IpAddr;

/// Everything the server can be told at startup.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Address to bind (`HOST`).
    pub host: IpAddr,
    /// TCP port (`PORT`); 0 picks a free one.
    pub port: u16,
    /// Allowed `Origin` values for WebSocket upgrades; `None` means any (`*`).
    pub allowed_origins: Option<Vec<String>>,
    /// Log level.
    pub log_level: crate::log::Level,
    /// One JSON object per log line instead of `key=value` text.
    pub log_json: bool,
    /// Open connections allowed at once; more get 503.
    pub connections_max: usize,
    /// Connections one client address may hold (IPv6: one /64); more get 429. 0: no limit.
    pub connections_per_ip_max: u32,
    /// New connections one client address may open per second; more get 429. 0: no limit.
    pub handshakes_per_ip_per_sec: u32,
    /// Proxies whose `X-Forwarded-For` names the client counted by the per-address limits.
    pub trusted_proxies: Vec<IpAddr>,
    /// Where rooms are saved to outlive a restart; empty: nowhere (rooms die with the
    /// process, and a stop closes them).
    pub state_file: String,
    /// How often the state file is written while running (0: only at shutdown).
    pub snapshot_interval_ms: u64,
    /// A state file larger than this is not read (set aside instead).
    pub state_file_bytes_max: u64,
    /// Transport limits and deadlines (the shell).
    pub net: NetConfig,
    /// Protocol and room rules (the core).
    pub core: CoreConfig,
    /// How tokens are checked (the gateway's auth step).
    pub auth: crate::auth::AuthConfig,
}

/// Limits the shell enforces.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Largest WebSocket message or frame accepted, in bytes; larger closes with 1009.
    pub message_bytes_max: usize,
    /// Largest HTTP request head, in bytes; larger gets 431.
    pub request_head_bytes_max: usize,
    /// Time allowed for a complete HTTP request; later gets 408.
    pub handshake_timeout_ms: u64,
    /// Silence after which a connection is closed; a WebSocket Ping goes out at half of it.
    pub idle_timeout_ms: u64,
    /// Time allowed for a closing handshake before the socket is dropped.
    pub close_timeout_ms: u64,
    /// Bytes queued for one client before it is evicted as a slow consumer.
    pub outbox_bytes_max: usize,
    /// tungstenite's read chunk, allocated per connection.
    pub read_buffer_bytes: usize,
    /// A client owed bytes that takes none of them for this long is evicted.
    pub write_stall_timeout_ms: u64,
    /// Kernel send buffer per socket (SO_SNDBUF); 0 keeps the kernel's autotuning, which lets
    /// a client that stops reading pin megabytes of kernel memory before the outbox cap is
    /// ever reached.
    pub socket_send_buffer_bytes: usize,
    /// Messages read from one connection per loop turn before others get their turn.
    pub messages_per_turn_max: usize,
    /// Bytes read from one connection per loop turn before others get their turn.
    pub read_bytes_per_turn_max: usize,
    /// Connections accepted per loop turn.
    pub accepts_per_turn_max: usize,
    /// Delay before accepting again after the process ran out of descriptors.
    pub accept_retry_ms: u64,
    /// Connection memory freed (queued bytes plus a per-connection estimate) after which the
    /// server compacts its tables and hands free memory back to the OS; 0 never does.
    pub memory_release_after_bytes: u64,
    /// `/metrics` answers only `Authorization: Bearer <this>` when set.
    pub metrics_token: Option<crate::auth::Secret>,
    /// `GET /` serves the built-in party page (else 404).
    pub party_page: bool,
}

/// Rules the core enforces.
#[derive(Clone, Debug, PartialEq)]
pub struct CoreConfig {
    /// Rooms that may exist at once.
    pub rooms_max: usize,
    /// Members per room, host included.
    pub room_members_max: usize,
    /// Messages per connection per second.
    pub messages_per_second_max: u32,
    /// `client_log` messages per connection per second (a separate budget).
    pub client_logs_per_second_max: u32,
    /// Lead time of a scheduled play.
    pub play_schedule_ms: u64,
    /// Lead time of a scheduled pause, seek or buffering.
    pub control_schedule_ms: u64,
    /// Longest wait for unready members before a pending play starts anyway.
    pub ready_wait_ms_max: u64,
    /// Minimum spacing of room_list pushes.
    pub room_list_interval_ms: u64,
    /// Entries in a room_list at most.
    pub room_list_max: usize,
    /// Size of a room_list message at most (entries counted at their largest).
    pub room_list_bytes_max: usize,
    /// Bytes of room_list pushed to the whole lobby per second at most (pushes are spaced).
    pub lobby_push_bytes_per_sec: u64,
    /// state_update relays suppressed for this long after a player_event.
    pub command_cooldown_ms: u64,
    /// Minimum spacing of relayed state_updates.
    pub state_update_interval_ms: u64,
    /// What a stock OpenWatchParty client adds to a joiner's position (its SYNC_LEAD_MS).
    pub sync_lead_ms: u64,
    /// Whether JWT authentication is on (`JWT_SECRET` set): rooms need an identity.
    pub auth_enabled: bool,
    /// Lifetime of an invite whose host asked for none, in seconds.
    pub invite_ttl_default_s: u64,
    /// Longest lifetime of an invite, in seconds.
    pub invite_ttl_max_s: u64,
    /// Rooms one verified identity may host at once (authentication on).
    pub rooms_per_identity_max: usize,
    /// How long a member's seat outlives its connection, waiting for it to come back.
    pub resume_grace_ms: u64,
    /// How long a room waits for its disconnected host before another member becomes host.
    pub host_grace_ms: u64,
    /// The original's rule: the room closes when its host leaves or disconnects.
    pub room_close_on_host_leave: bool,
    /// Chat messages a room keeps for joiners and members coming back.
    pub chat_history_max: usize,
    /// Least spacing of presence updates (`participants_update` for away, back, buffering)
    /// per room; changes in between are told together.
    pub presence_interval_ms: u64,
    /// Bytes of chat (text and names) a room keeps at most; older messages go first.
    pub chat_history_bytes_max: usize,
    /// Least spacing of room-wide changes a host makes (content, handover), each of which
    /// sends every member a fresh `room_state`; one sooner is refused `rate_limited`.
    pub room_refresh_interval_ms: u64,
    /// How long the host must have been away before a member may claim the room.
    pub host_claim_after_ms: u64,
    /// Joins per room per second whose `participants_update` carries the whole member list;
    /// later ones carry the count, and the list follows with the next presence update.
    pub join_lists_per_second: u32,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            message_bytes_max: 64 << 10,
            request_head_bytes_max: 8 << 10,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            close_timeout_ms: 2_000,
            outbox_bytes_max: 256 << 10,
            read_buffer_bytes: 1 << 10,
            socket_send_buffer_bytes: 64 << 10,
            write_stall_timeout_ms: 15_000,
            messages_per_turn_max: 32,
            read_bytes_per_turn_max: 8 << 10,
            accepts_per_turn_max: 256,
            accept_retry_ms: 100,
            memory_release_after_bytes: 256 << 10,
            metrics_token: None,
            party_page: true,
        }
    }
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            rooms_max: 1_000,
            room_members_max: 20,
            messages_per_second_max: 30,
            client_logs_per_second_max: 10,
            play_schedule_ms: 1_000,
            control_schedule_ms: 300,
            ready_wait_ms_max: 2_000,
            room_list_interval_ms: 250,
            room_list_max: 100,
            room_list_bytes_max: 32 << 10,
            lobby_push_bytes_per_sec: 1 << 20,
            command_cooldown_ms: 2_000,
            state_update_interval_ms: 500,
            sync_lead_ms: 300,
            auth_enabled: false,
            invite_ttl_default_s: 3_600,
            invite_ttl_max_s: 86_400,
            rooms_per_identity_max: 3,
            resume_grace_ms: 90_000,
            host_grace_ms: 30_000,
            room_close_on_host_leave: false,
            chat_history_max: 50,
            presence_interval_ms: 500,
            room_refresh_interval_ms: 500,
            host_claim_after_ms: 5_000,
            join_lists_per_second: 4,
            chat_history_bytes_max: 16 << 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 3_000,
            allowed_origins: Some(vec![
                "http://localhost:8096".to_string(),
                "https://localhost:8096".to_string(),
            ]),
            log_level: crate::log::Level::Info,
            log_json: false,
            connections_max: 10_000,
            connections_per_ip_max: 64,
            handshakes_per_ip_per_sec: 20,
            trusted_proxies: Vec::new(),
            state_file: "tandem-state.json".to_string(),
            snapshot_interval_ms: 10_000,
            state_file_bytes_max: 256 << 20,
            net: NetConfig::default(),
            core: CoreConfig::default(),
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

/// One setting: its environment name, help text and how to apply a value.
pub struct Setting {
    /// Environment variable; the flag is its lower-case, dashed form.
    pub env: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// Default as text.
    pub default: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

macro_rules! number {
    ($($field:ident).+) => {
        |config: &mut Config, text: &str| {
            config.$($field).+ = text.trim().parse().map_err(|_| format!("not a number: {text:?}"))?;
            Ok(())
        }
    };
}

/// Every setting, in the order `--help` lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        env: "PORT",
        help: "TCP port; 0 picks a free one",
        default: "3000",
        apply: number!(port),
    },
    Setting {
        env: "HOST",
        help: "address to bind; :: for dual stack",
        default: "0.0.0.0",
        apply: |c, t| {
            c.host = t
                .trim()
                .parse()
                .map_err(|_| format!("not an IP address: {t:?}"))?;
            Ok(())
        },
    },
    Setting {
        env: "ALLOWED_ORIGINS",
        help: "comma-separated Origin allow-list, exact match; * allows any",
        default: "http://localhost:8096,https://localhost:8096",
        apply: |c, t| {
            c.allowed_origins = parse_origins(t);
            Ok(())
        },
    },
    Setting {
        env: "LOG_LEVEL",
        help: "error, warn, info, debug or trace (RUST_LOG is read too)",
        default: "info",
        apply: |c, t| {
            c.log_level =
                crate::log::Level::parse(t).ok_or_else(|| format!("unknown log level: {t:?}"))?;
            Ok(())
        },
    },
    Setting {
        env: "LOG_FORMAT",
        help: "text (key=value) or json (one object per line)",
        default: "text",
        apply: |c, t| {
            c.log_json = match t.trim() {
                "json" => true,
                "text" | "" => false,
                _ => return Err(format!("not text or json: {t:?}")),
            };
            Ok(())
        },
    },
    Setting {
        env: "MAX_CONNECTIONS",
        help: "open connections at once; more get HTTP 503",
        default: "soft descriptor limit - 128, at most 10000",
        apply: number!(connections_max),
    },
    Setting {
        env: "MAX_CONNECTIONS_PER_IP",
        help: "connections one client address (IPv6: one /64) may hold; more get 429; 0 = no limit",
        default: "64",
        apply: number!(connections_per_ip_max),
    },
    Setting {
        env: "HANDSHAKES_PER_IP_PER_SEC",
        help: "new connections one client address may open per second; more get 429; 0 = no limit",
        default: "20",
        apply: number!(handshakes_per_ip_per_sec),
    },
    Setting {
        env: "TRUSTED_PROXIES",
        help: "comma-separated proxy addresses whose X-Forwarded-For names the client",
        default: "none",
        apply: |c, t| {
            c.trusted_proxies = parse_addresses(t)?;
            Ok(())
        },
    },
    Setting {
        env: "STATE_FILE",
        help: "file rooms are saved to, to outlive a restart (relative to the working \
               directory); empty = none",
        default: "tandem-state.json",
        apply: |c, t| {
            c.state_file = t.trim().to_string();
            Ok(())
        },
    },
    Setting {
        env: "SNAPSHOT_INTERVAL_MS",
        help: "how often the state file is written while running; 0 = only at shutdown",
        default: "10000",
        apply: number!(snapshot_interval_ms),
    },
    Setting {
        env: "STATE_FILE_BYTES_MAX",
        help: "a larger state file is not read at start (set aside instead)",
        default: "268435456",
        apply: number!(state_file_bytes_max),
    },
    Setting {
        env: "ROOMS_MAX",
        help: "rooms that may exist at once",
        default: "1000",
        apply: number!(core.rooms_max),
    },
    Setting {
        env: "ROOM_MEMBERS_MAX",
        help: "members per room, host included",
        default: "20",
        apply: number!(core.room_members_max),
    },
    Setting {
        env: "RATE_LIMIT_PER_SEC",
        help: "messages per connection per second",
        default: "30",
        apply: number!(core.messages_per_second_max),
    },
    Setting {
        env: "CLIENT_LOG_PER_SEC",
        help: "client_log messages per connection per second (own budget)",
        default: "10",
        apply: number!(core.client_logs_per_second_max),
    },
    Setting {
        env: "PLAY_SCHEDULE_MS",
        help: "lead time of a scheduled play",
        default: "1000",
        apply: number!(core.play_schedule_ms),
    },
    Setting {
        env: "CONTROL_SCHEDULE_MS",
        help: "lead time of a scheduled pause/seek/buffering",
        default: "300",
        apply: number!(core.control_schedule_ms),
    },
    Setting {
        env: "MAX_READY_WAIT_MS",
        help: "longest wait for unready members before a play starts",
        default: "2000",
        apply: number!(core.ready_wait_ms_max),
    },
    Setting {
        env: "ROOM_LIST_INTERVAL_MS",
        help: "minimum spacing of room_list pushes",
        default: "250",
        apply: number!(core.room_list_interval_ms),
    },
    Setting {
        env: "ROOM_LIST_MAX",
        help: "entries in a room_list at most (most members first, then newest)",
        default: "100",
        apply: number!(core.room_list_max),
    },
    Setting {
        env: "ROOM_LIST_BYTES_MAX",
        help: "size of a room_list message at most",
        default: "32768",
        apply: number!(core.room_list_bytes_max),
    },
    Setting {
        env: "LOBBY_PUSH_BYTES_PER_SEC",
        help: "room_list bytes pushed to the whole lobby per second at most",
        default: "1048576",
        apply: number!(core.lobby_push_bytes_per_sec),
    },
    Setting {
        env: "COMMAND_COOLDOWN_MS",
        help: "state_update relays suppressed after a player_event",
        default: "2000",
        apply: number!(core.command_cooldown_ms),
    },
    Setting {
        env: "STATE_UPDATE_INTERVAL_MS",
        help: "minimum spacing of relayed state_updates",
        default: "500",
        apply: number!(core.state_update_interval_ms),
    },
    Setting {
        env: "SYNC_LEAD_MS",
        help: "lead the stock client adds to a joiner's position",
        default: "300",
        apply: number!(core.sync_lead_ms),
    },
    Setting {
        env: "JWT_SECRET",
        help: "HS256 key of the Jellyfin plugin's tokens; set = authentication on (prefer the \
               environment: flags show in ps)",
        default: "unset: authentication off",
        apply: |c, t| {
            c.auth.jwt_secret = Some(crate::auth::Secret(t.as_bytes().to_vec()));
            Ok(())
        },
    },
    Setting {
        env: "JWT_AUDIENCE",
        help: "the aud a token must name (a string or an array holding it)",
        default: "OpenWatchParty",
        apply: |c, t| {
            c.auth.audience = t.to_string();
            Ok(())
        },
    },
    Setting {
        env: "JWT_ISSUER",
        help: "the iss a token must carry",
        default: "Jellyfin",
        apply: |c, t| {
            c.auth.issuer = t.to_string();
            Ok(())
        },
    },
    Setting {
        env: "INVITE_SECRET",
        help: "key invites are signed with; unset: JWT_SECRET, else a random key made at \
               start (invites then die with the process)",
        default: "unset",
        apply: |c, t| {
            c.auth.invite_secret = Some(crate::auth::Secret(t.as_bytes().to_vec()));
            Ok(())
        },
    },
    Setting {
        env: "INVITE_TTL_SECONDS",
        help: "lifetime of an invite whose host asks for none",
        default: "3600",
        apply: number!(core.invite_ttl_default_s),
    },
    Setting {
        env: "INVITE_TTL_MAX_SECONDS",
        help: "longest lifetime of an invite",
        default: "86400",
        apply: number!(core.invite_ttl_max_s),
    },
    Setting {
        env: "TOKEN_BYTES_MAX",
        help: "longest token or invite accepted; longer is refused before decoding",
        default: "4096",
        apply: number!(auth.token_bytes_max),
    },
    Setting {
        env: "ROOMS_PER_IDENTITY_MAX",
        help: "rooms one authenticated user may host at once",
        default: "3",
        apply: number!(core.rooms_per_identity_max),
    },
    Setting {
        env: "RESUME_GRACE_MS",
        help: "how long a member's seat outlives its connection (shown away); 0 = not at all",
        default: "90000",
        apply: number!(core.resume_grace_ms),
    },
    Setting {
        env: "HOST_GRACE_MS",
        help: "how long a room waits for its disconnected host before handing over",
        default: "30000",
        apply: number!(core.host_grace_ms),
    },
    Setting {
        env: "ROOM_CLOSE_ON_HOST_LEAVE",
        help: "true: the room closes when its host leaves or disconnects (the original's rule)",
        default: "false",
        apply: |c, t| {
            c.core.room_close_on_host_leave = boolean(t, false)?;
            Ok(())
        },
    },
    Setting {
        env: "CHAT_HISTORY_MAX",
        help: "chat messages a room keeps, replayed to joiners and to members coming back",
        default: "50",
        apply: number!(core.chat_history_max),
    },
    Setting {
        env: "PRESENCE_INTERVAL_MS",
        help: "least spacing of presence updates per room (changes in between go together)",
        default: "500",
        apply: number!(core.presence_interval_ms),
    },
    Setting {
        env: "ROOM_REFRESH_INTERVAL_MS",
        help: "least spacing of a room's content changes and handovers (sooner: rate_limited)",
        default: "500",
        apply: number!(core.room_refresh_interval_ms),
    },
    Setting {
        env: "HOST_CLAIM_AFTER_MS",
        help: "how long the host must be away before a member may claim the room",
        default: "5000",
        apply: number!(core.host_claim_after_ms),
    },
    Setting {
        env: "JOIN_LISTS_PER_SEC",
        help: "joins per room per second told with the whole member list (later: the count)",
        default: "4",
        apply: number!(core.join_lists_per_second),
    },
    Setting {
        env: "CHAT_HISTORY_BYTES_MAX",
        help: "bytes of chat a room keeps at most (older messages go first)",
        default: "16384",
        apply: number!(core.chat_history_bytes_max),
    },
    Setting {
        env: "PARTY_PAGE",
        help: "true: GET / serves the built-in party page; false: 404",
        default: "true",
        apply: |c, t| {
            c.net.party_page = boolean(t, true)?;
            Ok(())
        },
    },
    Setting {
        env: "METRICS_TOKEN",
        help: "if set, GET /metrics needs Authorization: Bearer <token> (else 401)",
        default: "unset: /metrics is open",
        apply: |c, t| {
            c.net.metrics_token =
                Some(crate::auth::Secret(t.as_bytes().to_vec())).filter(|s| !s.0.is_empty());
            Ok(())
        },
    },
    Setting {
        env: "IDLE_TIMEOUT_MS",
        help: "silence before a connection is closed (Ping at half)",
        default: "60000",
        apply: number!(net.idle_timeout_ms),
    },
    Setting {
        env: "HANDSHAKE_TIMEOUT_MS",
        help: "time allowed for a complete HTTP request (then 408)",
        default: "5000",
        apply: number!(net.handshake_timeout_ms),
    },
    Setting {
        env: "CLOSE_TIMEOUT_MS",
        help: "time allowed for a closing handshake",
        default: "2000",
        apply: number!(net.close_timeout_ms),
    },
    Setting {
        env: "MESSAGE_BYTES_MAX",
        help: "largest WebSocket message (larger closes with 1009)",
        default: "65536",
        apply: number!(net.message_bytes_max),
    },
    Setting {
        env: "REQUEST_HEAD_BYTES_MAX",
        help: "largest HTTP request head (larger gets 431)",
        default: "8192",
        apply: number!(net.request_head_bytes_max),
    },
    Setting {
        env: "OUTBOX_BYTES_MAX",
        help: "bytes queued for a client before it is evicted",
        default: "262144",
        apply: number!(net.outbox_bytes_max),
    },
    Setting {
        env: "WRITE_STALL_TIMEOUT_MS",
        help: "a client that takes none of the bytes owed to it for this long is evicted",
        default: "15000",
        apply: number!(net.write_stall_timeout_ms),
    },
    Setting {
        env: "SOCKET_SEND_BUFFER_BYTES",
        help: "kernel send buffer per socket (SO_SNDBUF); 0 = kernel default",
        default: "65536",
        apply: number!(net.socket_send_buffer_bytes),
    },
    Setting {
        env: "READ_BUFFER_BYTES",
        help: "per-connection read chunk",
        default: "1024",
        apply: number!(net.read_buffer_bytes),
    },
    Setting {
        env: "READ_BYTES_PER_TURN",
        help: "bytes read from one connection per loop turn before others get their turn",
        default: "8192",
        apply: number!(net.read_bytes_per_turn_max),
    },
    Setting {
        env: "MEMORY_RELEASE_AFTER_BYTES",
        help: "connection memory freed before tables are compacted and memory returned to \
               the OS; 0 = never",
        default: "262144",
        apply: number!(net.memory_release_after_bytes),
    },
];

/// A configuration problem found at startup.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    /// A setting's value could not be used.
    Invalid { name: String, reason: String },
    /// An argument that is not a known flag.
    UnknownFlag(String),
    /// A flag given without its value.
    MissingValue(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { name, reason } => write!(f, "{name}: {reason}"),
            ConfigError::UnknownFlag(flag) => write!(f, "unknown argument {flag:?} (try --help)"),
            ConfigError::MissingValue(flag) => write!(f, "{flag} needs a value"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Invocation {
    /// Run the server.
    Run(Box<Config>),
    /// Print help and exit.
    Help,
    /// Print the version and exit.
    Version,
}

impl Config {
    /// Builds the configuration from environment variables, then flags (flags win).
    /// `descriptor_limit` is the process's soft descriptor limit, if known.
    pub fn from_env_and_args(
        env: &dyn Fn(&str) -> Option<String>,
        args: &[String],
        descriptor_limit: Option<u64>,
    ) -> Result<Invocation, ConfigError> {
        let mut config = Config::default();
        if let Some(limit) = descriptor_limit {
            config.connections_max = (limit.saturating_sub(128).max(16) as usize).min(10_000);
        }
        if let Some(level) = env("RUST_LOG") {
            if let Some(level) = crate::log::Level::parse(&level) {
                config.log_level = level;
            }
        }
        for setting in SETTINGS {
            if let Some(value) = env(setting.env) {
                (setting.apply)(&mut config, &value).map_err(|reason| ConfigError::Invalid {
                    name: setting.env.to_string(),
                    reason,
                })?;
            }
        }
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(Invocation::Help),
                "-V" | "--version" => return Ok(Invocation::Version),
                _ => {}
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            let setting = SETTINGS
                .iter()
                .find(|s| flag_name(s.env) == flag)
                .ok_or_else(|| ConfigError::UnknownFlag(arg.clone()))?;
            let value = match inline {
                Some(value) => value,
                None => rest
                    .next()
                    .cloned()
                    .ok_or_else(|| ConfigError::MissingValue(flag.into()))?,
            };
            (setting.apply)(&mut config, &value).map_err(|reason| ConfigError::Invalid {
                name: flag.to_string(),
                reason,
            })?;
        }
        config.core.auth_enabled = config.auth.enabled();
        config.validate()?;
        Ok(Invocation::Run(Box::new(config)))
    }

    /// Checks relationships between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name: &str, reason: &str| {
            Err(ConfigError::Invalid {
                name: name.into(),
                reason: reason.into(),
            })
        };
        if self.connections_max == 0 {
            return invalid("MAX_CONNECTIONS", "must be at least 1");
        }
        if self.core.room_members_max < 2 {
            return invalid("ROOM_MEMBERS_MAX", "must be at least 2");
        }
        if self.net.message_bytes_max < 1_024 {
            return invalid("MESSAGE_BYTES_MAX", "must be at least 1024");
        }
        if self.net.outbox_bytes_max < self.net.message_bytes_max.saturating_mul(2) {
            return invalid(
                "OUTBOX_BYTES_MAX",
                "must be at least twice MESSAGE_BYTES_MAX",
            );
        }
        if self.net.read_bytes_per_turn_max < 64 {
            return invalid("READ_BYTES_PER_TURN", "must be at least 64");
        }
        if self.net.idle_timeout_ms < 2 || self.net.read_buffer_bytes < 64 {
            return invalid("IDLE_TIMEOUT_MS/READ_BUFFER_BYTES", "too small");
        }
        if self.core.room_list_bytes_max < 1_024
            || self.core.room_list_bytes_max > self.net.outbox_bytes_max / 4
        {
            return invalid(
                "ROOM_LIST_BYTES_MAX",
                "must be at least 1024 and at most a quarter of OUTBOX_BYTES_MAX",
            );
        }
        if self.core.messages_per_second_max == 0 {
            return invalid("RATE_LIMIT_PER_SEC", "must be at least 1");
        }
        if self.core.invite_ttl_max_s == 0
            || self.core.invite_ttl_default_s == 0
            || self.core.invite_ttl_default_s > self.core.invite_ttl_max_s
        {
            return invalid(
                "INVITE_TTL_SECONDS",
                "must be at least 1 and at most INVITE_TTL_MAX_SECONDS",
            );
        }
        if self.auth.token_bytes_max < 256 {
            return invalid("TOKEN_BYTES_MAX", "must be at least 256");
        }
        Ok(())
    }
}

/// A yes/no setting: `true`, `1`, `yes` or `false`, `0`, `no`; empty is `empty`.
fn boolean(text: &str, empty: bool) -> Result<bool, String> {
    match text.trim() {
        "" => Ok(empty),
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("not true or false: {text:?}")),
    }
}

/// `ALLOWED_ORIGINS` as a list; `*` anywhere in it allows any origin.
pub fn parse_origins(text: &str) -> Option<Vec<String>> {
    let entries: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    if entries.iter().any(|e| e == "*") {
        return None;
    }
    Some(entries)
}

/// A comma-separated list of IP addresses (empty or `none`: no address).
pub fn parse_addresses(text: &str) -> Result<Vec<IpAddr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && *e != "none")
        .map(|e| e.parse().map_err(|_| format!("not an IP address: {e:?}")))
        .collect()
}

/// `MAX_READY_WAIT_MS` → `--max-ready-wait-ms`.
pub fn flag_name(env: &str) -> String {
    format!("--{}", env.to_ascii_lowercase().replace('_', "-"))
}

/// The `--help` text.
pub fn help() -> String {
    let mut text = format!(
        "tandem {}: a watch-party session server (OpenWatchParty compatible)\n\n\
         Usage: tandem [--flag value]...\n\
         \x20      tandem healthcheck [--flag value]...   probe /health of the server these\n\
         \x20      settings describe (its PORT, on loopback); exit 0 if healthy, 1 if not\n\n\
         Every setting is an environment variable or the matching flag (flags win).\n\n",
        env!("CARGO_PKG_VERSION")
    );
    let flag_width = SETTINGS
        .iter()
        .map(|s| flag_name(s.env).len())
        .max()
        .unwrap_or(0);
    let env_width = SETTINGS.iter().map(|s| s.env.len()).max().unwrap_or(0);
    for setting in SETTINGS {
        text.push_str(&format!(
            "  {:<flag_width$} {:<env_width$} {} (default {})\n",
            flag_name(setting.env),
            setting.env,
            setting.help,
            setting.default
        ));
    }
    text.push_str(&format!(
        "\n  {:<flag_width$} this text\n  {:<flag_width$} the version\n",
        "-h, --help", "-V, --version"
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(env: &[(&str, &str)], args: &[&str]) -> Result<Invocation, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Config::from_env_and_args(&lookup, &args, Some(1_024))
    }

    fn run(invocation: Result<Invocation, ConfigError>) -> Config {
        match invocation {
            Ok(Invocation::Run(config)) => *config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    /// Defaults match the documented ones, and MAX_CONNECTIONS stays below the fd limit.
    #[test]
    fn defaults() {
        let config = run(parse(&[], &[]));
        assert_eq!(config.port, 3_000);
        assert_eq!(config.connections_max, 896);
        assert_eq!(config.core.room_members_max, 20);
        assert_eq!(config.allowed_origins.as_ref().map(Vec::len), Some(2));
    }

    /// Flags override environment variables; both forms of flag work.
    #[test]
    fn flags_override_env() {
        let config = run(parse(
            &[("PORT", "4000"), ("MAX_READY_WAIT_MS", "10")],
            &["--port", "0", "--idle-timeout-ms=500"],
        ));
        assert_eq!(config.port, 0);
        assert_eq!(config.core.ready_wait_ms_max, 10);
        assert_eq!(config.net.idle_timeout_ms, 500);
    }

    /// `*` allows any origin; bad values and flags are reported, not ignored.
    #[test]
    fn origins_and_errors() {
        assert_eq!(
            run(parse(&[("ALLOWED_ORIGINS", "*")], &[])).allowed_origins,
            None
        );
        assert_eq!(parse_origins(" a , ,b"), Some(vec!["a".into(), "b".into()]));
        assert!(matches!(
            parse(&[("PORT", "x")], &[]),
            Err(ConfigError::Invalid { .. })
        ));
        // Yes/no settings: each word both ways, empty is the setting's default.
        assert!(!run(parse(&[("PARTY_PAGE", "no")], &[])).net.party_page);
        assert!(run(parse(&[("PARTY_PAGE", "")], &[])).net.party_page);
        assert!(
            run(parse(&[("ROOM_CLOSE_ON_HOST_LEAVE", "yes")], &[]))
                .core
                .room_close_on_host_leave
        );
        assert!(
            !run(parse(&[("ROOM_CLOSE_ON_HOST_LEAVE", "")], &[]))
                .core
                .room_close_on_host_leave
        );
        assert!(matches!(
            parse(&[("PARTY_PAGE", "maybe")], &[]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            parse(&[], &["--nope"]),
            Err(ConfigError::UnknownFlag(_))
        ));
        assert!(matches!(
            parse(&[], &["--port"]),
            Err(ConfigError::MissingValue(_))
        ));
        assert_eq!(parse(&[], &["--help"]), Ok(Invocation::Help));
        assert!(help().contains("--max-ready-wait-ms"));
    }
}

#[cfg(test)]
mod docs_tests {
    use super::SETTINGS;

    /// README lists every setting, and docs/protocol.md every error code: docs stay true.
    #[test]
    fn docs_cover_every_setting_and_error_code() {
        let readme = include_str!("../README.md");
        for setting in SETTINGS {
            assert!(
                readme.contains(&format!("`{}`", setting.env)),
                "README lacks {}",
                setting.env
            );
        }
        let protocol = include_str!("../docs/protocol.md");
        for code in crate::core::types::ErrorCode::ALL {
            assert!(
                protocol.contains(&format!("`{}`", code.code())),
                "protocol.md lacks {code:?}"
            );
            assert!(
                protocol.contains(crate::owp::error_message(code)),
                "protocol.md lacks {:?}",
                crate::owp::error_message(code)
            );
        }
    }
}
