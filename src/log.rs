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

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `LOG_FORMAT=json`: one JSON object per line instead of `key=value` text.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Writes one line: `level=info event=... key=value...`, or the same fields as one JSON
/// object (`LOG_FORMAT=json`).
pub fn write(level: Level, line: std::fmt::Arguments<'_>) {
    let text = format!("level={} {}", level.label(), line);
    let mut err = std::io::stderr().lock();
    if JSON.load(Ordering::Relaxed) {
        let _ = writeln!(err, "{}", to_json(&text));
    } else {
        let _ = writeln!(err, "{text}");
    }
}

/// A `key=value ...` line as one JSON object: quoted values (written with `quoted`) become
/// strings without their quotes, plain integers numbers, anything else strings. A token
/// without `=` goes under `"msg"`.
pub fn to_json(line: &str) -> String {
    let mut fields = serde_json::Map::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let key = rest.get(..key_end).unwrap_or_default();
        rest = rest.get(key_end..).unwrap_or_default();
        let Some(after) = rest.strip_prefix('=') else {
            let entry = fields.entry("msg").or_insert_with(|| String::new().into());
            if let serde_json::Value::String(msg) = entry {
                if !msg.is_empty() {
                    msg.push(' ');
                }
                msg.push_str(key);
            }
            rest = rest.trim_start();
            continue;
        };
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            // Up to the first quote not escaped by a backslash.
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, '"')) => value.push('"'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, other)) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => value.push('\\'),
                    },
                    '"' => {
                        end = i.saturating_add(1);
                        break;
                    }
                    other => value.push(other),
                }
            }
            (
                serde_json::Value::String(value),
                quoted.get(end..).unwrap_or_default(),
            )
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            let raw = after.get(..end).unwrap_or_default();
            let value = raw
                .parse::<u64>()
                .map(serde_json::Value::from)
                .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
            (value, after.get(end..).unwrap_or_default())
        };
        fields.insert(key.to_string(), value);
        rest = remaining.trim_start();
    }
    serde_json::Value::Object(fields).to_string()
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

    /// LOG_FORMAT=json: every field, quoted values unquoted (a forged field stays inside its
    /// value), integers as numbers.
    #[test]
    fn json_lines() {
        let line = format!(
            "level=info event=client_log conn=3:1 count=12 message={}",
            quoted("hi\" level=error x=\"y", 64)
        );
        let value: serde_json::Value = serde_json::from_str(&to_json(&line)).expect("JSON");
        assert_eq!(value["level"], "info");
        assert_eq!(value["event"], "client_log");
        assert_eq!(value["conn"], "3:1");
        assert_eq!(value["count"], 12);
        assert_eq!(value["message"], "hi\" level=error x=\"y");
        assert_eq!(value.as_object().map(|o| o.len()), Some(5));
    }
}
