//! Client-supplied text: display names, room names, chat limits.

/// Longest display or room name, in characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Longest display or room name (and user id), in UTF-8 bytes: 100 Latin characters fit,
/// 64 four-byte ones do.
pub const NAME_BYTES_MAX: usize = 256;
/// Longest chat message, in characters (Unicode scalar values, after trimming).
pub const CHAT_CHARS_MAX: usize = 500;

/// Whether `c` is a Unicode format character (general category Cf): bidi overrides and
/// isolates, zero-width characters, the BOM, tag characters and friends. These can reorder or
/// hide text around a name in someone else's UI.
pub fn is_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
        || is_invisible(c)
}

/// Other characters that show as nothing (Unicode's default-ignorable code points that are
/// not format characters, and the line and paragraph separators): a name made of them, or
/// padded with them, would look like someone else's.
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x034F | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F | 0x2028 | 0x2029
        | 0x2065 | 0x3164 | 0xFE00..=0xFE0F | 0xFFA0 | 0xE0000..=0xE0FFF)
}

/// Trims, removes control and format characters, and keeps at most `max` characters and
/// `NAME_BYTES_MAX` bytes.
pub fn sanitize_line(text: &str, max: usize) -> String {
    let kept: String = text
        .chars()
        .filter(|&c| !c.is_control() && !is_format(c))
        .collect();
    let mut out = String::new();
    for c in kept.trim().chars().take(max) {
        if out.len().saturating_add(c.len_utf8()) > NAME_BYTES_MAX {
            break;
        }
        out.push(c);
    }
    out.truncate(out.trim_end().len());
    out
}

/// A display name, or `None` if nothing printable is left.
pub fn display_name(text: &str) -> Option<String> {
    Some(sanitize_line(text, NAME_CHARS_MAX)).filter(|name| !name.is_empty())
}

/// A room name, or `None` if nothing printable is left.
pub fn room_name(text: &str) -> Option<String> {
    display_name(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names lose control and bidi/zero-width characters, are trimmed and cut at 100 chars.
    #[test]
    fn names_are_sanitized() {
        assert_eq!(
            display_name("  Bob\u{202E}\u{200B}\n "),
            Some("Bob".to_string())
        );
        assert_eq!(display_name("\u{200B}\t"), None);
        let long = "é".repeat(150);
        assert_eq!(display_name(&long).map(|n| n.chars().count()), Some(100));
        assert_eq!(sanitize_line("a\u{0}b", 10), "ab");
        // Bytes are capped too: 100 four-byte characters keep 64.
        let wide = "😀".repeat(100);
        assert_eq!(display_name(&wide).map(|n| n.len()), Some(NAME_BYTES_MAX));
        assert_eq!(sanitize_line(" \u{200B} x ", 10), "x");
        // Characters that show as nothing cannot pad a name into someone else's.
        assert_eq!(
            display_name("alice\u{3164}\u{034F}\u{FE0F}\u{2028}"),
            Some("alice".into())
        );
        assert_eq!(display_name("\u{3164}"), None);
    }
}
