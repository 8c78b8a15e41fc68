//! `tandem`: parse settings, bind, run until SIGTERM/SIGINT.

#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::arithmetic_side_effects
    )
)]

use std::process::ExitCode;

use tandem::config::{self, Config, Invocation};
use tandem::gateway::Gateway;
use tandem::log;

fn main() -> ExitCode {
    // A setting that is not valid UTF-8 is an error, never an unset one (a binary
    // JWT_SECRET must not turn authentication off).
    for setting in config::SETTINGS {
        if std::env::var_os(setting.env).is_some_and(|v| v.to_str().is_none()) {
            eprintln!("tandem: {}: not valid UTF-8", setting.env);
            return ExitCode::from(2);
        }
    }
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let healthcheck = args.first().is_some_and(|a| a == "healthcheck");
    if healthcheck {
        args.remove(0);
    }
    let env = |name: &str| std::env::var(name).ok();
    let config = match Config::from_env_and_args(&env, &args, descriptor_limit()) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help) => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("tandem {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("tandem: {error}");
            return ExitCode::from(2);
        }
    };
    if healthcheck {
        return probe_health(&config);
    }
    log::set_level(config.log_level);
    log::set_json(config.log_json);
    // The core's ids come from this seed; it is the one place randomness enters. Without it
    // room ids (and later resume tokens and invite keys) would be predictable: refuse to run.
    #[allow(clippy::disallowed_methods)]
    let seed = match seed_from(getrandom::u64()) {
        Ok(seed) => seed,
        Err(message) => {
            eprintln!("tandem: {message}");
            return ExitCode::FAILURE;
        }
    };
    // Invites are signed with INVITE_SECRET, else JWT_SECRET, else this key: fresh OS
    // randomness, so such invites die with the process.
    let mut invite_key = [0u8; 32];
    #[allow(clippy::disallowed_methods)]
    if let Err(error) = getrandom::fill(&mut invite_key) {
        eprintln!(
            "tandem: {}",
            seed_from(Err(error)).err().unwrap_or_default()
        );
        return ExitCode::FAILURE;
    }
    #[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(unused_mut))]
    let mut server = match Gateway::server(&config, seed, Some(invite_key)) {
        Ok(server) => server,
        Err(error) => {
            eprintln!(
                "tandem: cannot listen on {}:{}: {error}",
                config.host, config.port
            );
            return ExitCode::FAILURE;
        }
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    server.on_memory_release(glibc::trim);
    if !config.state_file.is_empty() {
        restore_state(&mut server, &config.state_file, config.state_file_bytes_max);
        server.service_mut().keep_rooms(true);
        server.with_state_file(
            config.state_file.clone().into(),
            config.snapshot_interval_ms,
        );
    }
    let origins = match &config.allowed_origins {
        None => "*".to_string(),
        Some(list) => list.join(","),
    };
    log!(
        Info,
        "event=listening addr={} version={} max_connections={} allowed_origins={} auth={} \
         invite_key={}",
        server.local_addr(),
        env!("CARGO_PKG_VERSION"),
        config.connections_max,
        origins,
        if config.auth.enabled() {
            "enabled"
        } else {
            "disabled"
        },
        config.auth.invite_key_source()
    );
    auth_warnings(&config.auth);
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log!(Error, "event=fatal error={error:?}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the state file, if there is one. One that cannot be used (unreadable, truncated,
/// corrupt, of a later version) never stops the server: it is set aside under another name
/// (the evidence is kept) and the server starts empty.
fn restore_state(
    server: &mut tandem::net::event_loop::Server<Gateway>,
    file: &str,
    bytes_max: u64,
) {
    use tandem::net::state_file;
    let path = std::path::Path::new(file);
    let now = server.now();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let read = if size > bytes_max {
        Err(std::io::Error::other(format!(
            "{size} bytes, over STATE_FILE_BYTES_MAX ({bytes_max})"
        )))
    } else {
        state_file::read(path)
    };
    let problem = match read {
        Ok(None) => {
            log!(Info, "event=state_absent path={file}");
            return;
        }
        Ok(Some(bytes)) => match server.service_mut().restore_bytes(&bytes, now) {
            Ok((rooms, seats)) => {
                log!(
                    Info,
                    "event=state_restored path={file} rooms={rooms} seats={seats} bytes={}",
                    bytes.len()
                );
                return;
            }
            Err(problem) => problem,
        },
        Err(error) => error.to_string(),
    };
    match state_file::set_aside(path, now.wall.0 / 1_000) {
        Ok(aside) => log!(
            Error,
            "event=state_unusable path={file} kept_as={} problem={} detail=\"starting empty\"",
            aside.display(),
            log::quoted(&problem, 200)
        ),
        Err(error) => log!(
            Error,
            "event=state_unusable path={file} problem={} set_aside_error={error} \
             detail=\"starting empty\"",
            log::quoted(&problem, 200)
        ),
    }
}

/// Says loudly when authentication is off, and when its secret is short.
fn auth_warnings(auth: &tandem::auth::AuthConfig) {
    match &auth.jwt_secret {
        Some(secret) if !secret.0.is_empty() => {
            if secret.0.len() < 32 {
                log!(
                    Warn,
                    "event=weak_jwt_secret bytes={} detail=\"JWT_SECRET is shorter than 32 \
                     bytes: tokens can be forged by brute force; use a long random secret\"",
                    secret.0.len()
                );
            }
        }
        _ => {
            log!(
                Warn,
                "event=auth_disabled detail=\"JWT_SECRET is not set: AUTHENTICATION IS OFF. \
                 Anyone who reaches this port can list, create and join rooms under any \
                 name. Set JWT_SECRET (the Jellyfin plugin's secret) before exposing it\"",
            );
        }
    }
}

/// `tandem healthcheck`: asks the server configured by the same settings (its `PORT`, on
/// loopback when it binds every address) for `/health`; exits 0 when it answers 200 with
/// `"status":"ok"`, 1 otherwise. For container health checks: no shell or curl needed.
fn probe_health(config: &Config) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{IpAddr, SocketAddr, TcpStream};
    use std::time::Duration;
    let host = match config.host {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    };
    let address = SocketAddr::new(host, config.port);
    let timeout = Duration::from_secs(2);
    let answer = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        stream.take(64 << 10).read_to_end(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.1 200") && text.contains("\"status\":\"ok\"") => {
            ExitCode::SUCCESS
        }
        Ok(text) => {
            let line = text.lines().next().unwrap_or_default();
            eprintln!("tandem healthcheck: {address}: {line}");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("tandem healthcheck: {address}: {error}");
            ExitCode::from(1)
        }
    }
}

/// The server's seed, or why there is none: a failing OS random source stops the server.
fn seed_from(random: Result<u64, getrandom::Error>) -> Result<u64, String> {
    random.map_err(|error| {
        format!(
            "cannot read the operating system's random source ({error}); \
             refusing to start with predictable room ids"
        )
    })
}

/// The soft limit on open files, from /proc (no libc needed).
fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// glibc keeps freed small blocks inside its heap: after a crowd of slow consumers is
/// evicted, their fragmented queues would pin the peak RSS for good. `malloc_trim` returns
/// every free page to the OS. The one `unsafe` of the project; the library forbids it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }

    /// Returns the allocator's free pages to the OS.
    pub fn trim() {
        // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own state
        // (under its lock) and is called from the one thread that allocates.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failing random source is an error with a clear message, never a fixed seed.
    #[test]
    fn no_seed_without_randomness() {
        assert_eq!(seed_from(Ok(7)), Ok(7));
        let error = getrandom::Error::UNSUPPORTED;
        let message = seed_from(Err(error)).expect_err("no seed");
        assert!(message.contains("random source"), "{message}");
        assert!(message.contains("predictable"), "{message}");
    }
}
