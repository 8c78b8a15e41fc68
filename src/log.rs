//! A tiny logger: one `key=value` line per event on stderr, filtered by a level set once at
//! startup. Only the shell logs; the pure layers report through their outputs.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// Severity, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures of the server itself.
    Error = 1,
    /// A limit was enforced or something was refused.
    Warn = 2,
    /// Lifecycle: listening, shutdown, rooms created and closed.
    Info = 3,
    /// Per-connection events.
    Debug = 4,
    /// Per-message events.
    Trace = 5,
}

impl Level {
    /// Parses `error`..`trace`, case-insensitively; `RUST_LOG`-style `tandem=debug` too.
    pub fn parse(text: &str) -> Option<Level> {
        let text = text
            .rsplit(['=', ','])
            .next()
            .unwrap_or(text)
            .trim()
            .to_ascii_lowercase();
        match text.as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "trace" => Some(Level::Trace),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

// The level is process-wide configuration written once before the loop starts; an atomic is
// the lock-free way to hold it (no `static mut`).
static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the most verbose level that is written.
pub fn set_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether a line at `level` would be written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Writes one line: `level=info event=... key=value...`.
pub fn write(level: Level, line: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "level={} {}", level.label(), line);
}

/// Logs a line if its level is enabled: `log!(Info, "event=listening addr={}", addr)`.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::write($crate::log::Level::$level, format_args!($($arg)+));
        }
    };
}

/// Makes client-supplied text safe for one log line: control characters become `?`, and the
/// result is cut to `max` characters.
pub fn sanitize(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Client-supplied text as one quoted log value: sanitized, cut to `max` characters, then
/// written in quotes with `"`, `\` and anything unprintable escaped, so it can never end its
/// value early or forge another `key=value` field.
pub fn quoted(text: &str, max: usize) -> String {
    format!("{:?}", sanitize(text, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Levels parse from both LOG_LEVEL and RUST_LOG forms; client text cannot break a line.
    #[test]
    fn parse_and_sanitize() {
        assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
        assert_eq!(Level::parse("tandem=trace"), Some(Level::Trace));
        assert_eq!(Level::parse("loud"), None);
        assert_eq!(sanitize("a\nb\u{1b}[31m", 4), "a?b?");
        // A quoted value cannot end early or add fields.
        let forged = quoted("LOG\" level=error event=forged x=\"", 64);
        assert!(forged.starts_with('"') && forged.ends_with('"'));
        let inner = &forged[1..forged.len() - 1];
        assert!(!inner.replace("\\\"", "").contains('"'), "{forged}");
        assert_eq!(quoted("a b\u{202E}", 8), "\"a b\\u{202e}\"");
    }
}
