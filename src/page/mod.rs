//! The built-in party page (`GET /`): one hand-written HTML file with its CSS and JS inline,
//! compiled into the binary. Its responses are made once, on first use, and shared by every
//! request: the Content-Security-Policy names the SHA-256 of each inline script and style, so
//! nothing else runs on the page, and the ETag lets a browser revalidate with a 304.

use std::fmt::Write as _;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The page, as written in `src/page/party.html`.
pub const PAGE: &str = include_str!("party.html");

/// The responses, made once.
struct Built {
    full: Vec<u8>,
    head: Vec<u8>,
    not_modified: Vec<u8>,
    etag: String,
    csp: String,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let digest = Sha256::digest(PAGE.as_bytes());
        let mut etag = String::from("\"");
        for byte in digest.iter().take(12) {
            let _ = write!(etag, "{byte:02x}");
        }
        etag.push('"');
        let csp = policy(PAGE);
        let headers = |status: &str, length: Option<usize>| {
            let mut text = format!("HTTP/1.1 {status}\r\n");
            if let Some(length) = length {
                let _ = write!(
                    text,
                    "Content-Type: text/html; charset=utf-8\r\nContent-Length: {length}\r\n"
                );
            }
            let _ = write!(
                text,
                "Cache-Control: no-cache\r\nETag: {etag}\r\n\
                 Content-Security-Policy: {csp}\r\nX-Content-Type-Options: nosniff\r\n\
                 Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n\
                 Cross-Origin-Opener-Policy: same-origin\r\n\
                 Connection: close\r\n\r\n"
            );
            text.into_bytes()
        };
        let head = headers("200 OK", Some(PAGE.len()));
        let mut full = head.clone();
        full.extend_from_slice(PAGE.as_bytes());
        let not_modified = headers("304 Not Modified", None);
        Built {
            full,
            head,
            not_modified,
            etag,
            csp,
        }
    })
}

/// The page's entity tag (quoted, as in the `ETag` header).
pub fn etag() -> &'static str {
    &built().etag
}

/// The Content-Security-Policy the page is served with.
pub fn content_security_policy() -> &'static str {
    &built().csp
}

/// The whole response: 200 with the page (`head`: without the body), or 304 when the
/// browser's copy is current.
pub fn response(head: bool, etag_matches: bool) -> &'static [u8] {
    let built = built();
    if etag_matches {
        &built.not_modified
    } else if head {
        &built.head
    } else {
        &built.full
    }
}

/// Only what the page itself carries may run: each inline `<script>` and `<style>` by its
/// hash. The WebSocket goes to the page's own origin; media may come from anywhere the
/// member points it (a LAN server, a local file as a `blob:`).
fn policy(page: &str) -> String {
    let hashes = |tag: &str| {
        let mut sources = String::new();
        for body in inline_bodies(page, tag) {
            let digest = Sha256::digest(body.as_bytes());
            let _ = write!(sources, " 'sha256-{}'", base64(&digest));
        }
        if sources.is_empty() {
            sources.push_str(" 'none'");
        }
        sources
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; connect-src 'self'; \
         media-src http: https: blob: data:; img-src data: blob:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        hashes("script"),
        hashes("style")
    )
}

/// The text between each `<tag>` (or `<tag ...>`) and its `</tag>`.
pub fn inline_bodies<'a>(page: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut bodies = Vec::new();
    let mut rest = page;
    while let Some(at) = rest.find(&open) {
        let after = rest
            .get(at.saturating_add(open.len())..)
            .unwrap_or_default();
        // `<scripts` or `<style-x` are other tags.
        if !after.starts_with(['>', ' ', '\n', '\t']) {
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        let body_and_rest = after.get(gt.saturating_add(1)..).unwrap_or_default();
        let Some(end) = body_and_rest.find(&close) else {
            break;
        };
        bodies.push(body_and_rest.get(..end).unwrap_or_default());
        rest = body_and_rest.get(end..).unwrap_or_default();
    }
    bodies
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3).saturating_mul(4));
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let index = ((n >> shift) & 63) as usize;
                out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'=')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        // RFC 4648 §10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn inline_bodies_found() {
        let page =
            "<style>a{}</style><script>1</script><scripts>x</scripts><script type=x>2</script>";
        assert_eq!(inline_bodies(page, "style"), ["a{}"]);
        assert_eq!(inline_bodies(page, "script"), ["1", "2"]);
    }

    /// The page's one script and one style are what the policy allows, and nothing else.
    #[test]
    fn policy_names_the_page() {
        let csp = content_security_policy();
        assert_eq!(inline_bodies(PAGE, "script").len(), 1);
        assert_eq!(inline_bodies(PAGE, "style").len(), 1);
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
    }
}
