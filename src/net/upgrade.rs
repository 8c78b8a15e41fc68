//! The HTTP side: parse one request head (httparse), route it, and make the response.
//! Pure functions over bytes, so they are fuzzed directly.
//!
//! Routes, as the original: `GET /ws` and `/ws/...` upgrade to WebSocket (query ignored);
//! `GET /health` (and `/health/...`) answers JSON (`HEAD` the same headers without the
//! body); `GET /` (and `/index.html`) the built-in party page; anything else is 404. The request target may be in origin form (`/ws`) or absolute
//! form (`http://host:3000/ws`, RFC 9112 §3.2.2). Every refusal is a real HTTP response with
//! `Connection: close`.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Headers read per request; more is answered 431.
const HEADERS_MAX: usize = 32;

/// What a complete request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A valid WebSocket upgrade; `key` is `Sec-WebSocket-Key`.
    WebSocket {
        /// The client's key, for the accept header.
        key: String,
        /// The path, without query or fragment.
        path: String,
        /// Subprotocols offered (`Sec-WebSocket-Protocol`, every header, in order).
        protocols: Vec<String>,
        /// The `Origin` header (allowed), if any.
        origin: Option<String>,
        /// The client address a proxy named (`X-Forwarded-For`, last entry), if any.
        forwarded_for: Option<IpAddr>,
    },
    /// `GET /health` (or `HEAD`); `origin` echoed for CORS when it is allowed.
    Health {
        /// The allowed Origin to echo, if any.
        origin: Option<String>,
        /// `HEAD`: the headers only.
        head: bool,
        /// The client address a proxy named (`X-Forwarded-For`, last entry), if any.
        forwarded_for: Option<IpAddr>,
    },
    /// `GET /metrics` (or `HEAD`): Prometheus text.
    Metrics {
        /// `HEAD`: the headers only.
        head: bool,
        /// The `Authorization: Bearer` token presented, if any.
        bearer: Option<String>,
        /// The client address a proxy named (`X-Forwarded-For`, last entry), if any.
        forwarded_for: Option<IpAddr>,
    },
    /// `GET /` (or `HEAD`): the built-in party page.
    Page {
        /// `HEAD`: the headers only.
        head: bool,
        /// `If-None-Match` names the page's current ETag: 304.
        etag_matches: bool,
    },
    /// Refused with this status.
    Refuse(Status),
}

/// HTTP statuses Tandem answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 400: malformed request or upgrade.
    BadRequest,
    /// 401: `/metrics` without the token it needs.
    Unauthorized,
    /// 403: Origin not allowed.
    Forbidden,
    /// 404: unknown path.
    NotFound,
    /// 405: not GET.
    MethodNotAllowed,
    /// 408: no complete request in time.
    RequestTimeout,
    /// 426: `/ws` without upgrade headers, or an unsupported WebSocket version.
    UpgradeRequired,
    /// 429: this address has too many connections or handshakes.
    TooManyRequests,
    /// 431: request head too large.
    HeadersTooLarge,
    /// 503: connection limit reached.
    Unavailable,
}

impl Status {
    /// Every status, in `index` order.
    pub const ALL: [Status; 10] = [
        Status::BadRequest,
        Status::Unauthorized,
        Status::Forbidden,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::RequestTimeout,
        Status::UpgradeRequired,
        Status::TooManyRequests,
        Status::HeadersTooLarge,
        Status::Unavailable,
    ];

    /// Its place in `ALL`.
    pub fn index(self) -> usize {
        Status::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// Code and reason phrase.
    pub fn line(self) -> (u16, &'static str) {
        match self {
            Status::BadRequest => (400, "Bad Request"),
            Status::Unauthorized => (401, "Unauthorized"),
            Status::Forbidden => (403, "Forbidden"),
            Status::NotFound => (404, "Not Found"),
            Status::MethodNotAllowed => (405, "Method Not Allowed"),
            Status::RequestTimeout => (408, "Request Timeout"),
            Status::UpgradeRequired => (426, "Upgrade Required"),
            Status::TooManyRequests => (429, "Too Many Requests"),
            Status::HeadersTooLarge => (431, "Request Header Fields Too Large"),
            Status::Unavailable => (503, "Service Unavailable"),
        }
    }
}

/// Parses a request head from `buf`. `Ok(None)`: incomplete, read more. `Ok(Some((len,
/// route)))`: the head is `buf[..len]` (`len <= buf.len()`); bytes after it belong to the
/// WebSocket stream. `allowed_origins`: `None` allows any. `serves`: whether a path is a
/// WebSocket endpoint (others are 404).
pub fn parse_request(
    buf: &[u8],
    head_bytes_max: usize,
    allowed_origins: Option<&[String]>,
    serves: &dyn Fn(&str) -> bool,
) -> Option<(usize, Route)> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= head_bytes_max => {
            return Some((buf.len(), Route::Refuse(Status::HeadersTooLarge)))
        }
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => {
            return Some((buf.len(), Route::Refuse(Status::HeadersTooLarge)))
        }
        Err(_) => return Some((buf.len(), Route::Refuse(Status::BadRequest))),
    };
    if len > head_bytes_max {
        return Some((len, Route::Refuse(Status::HeadersTooLarge)));
    }
    Some((len, route(&request, allowed_origins, serves)))
}

/// The path of a request target in origin or absolute form, without query or fragment.
fn target_path(target: &str) -> &str {
    let path = match target.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            // The authority ends at the first `/`, `?` or `#` (RFC 3986 §3.2): a `/` inside
            // the query of `http://h?/health` is not the path.
            match rest.find(['/', '?', '#']) {
                Some(i) if rest.get(i..).is_some_and(|p| p.starts_with('/')) => {
                    rest.get(i..).unwrap_or("/")
                }
                _ => "/",
            }
        }
        _ => target,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

/// The last address of `X-Forwarded-For` (the one the nearest proxy added), if it parses.
fn forwarded_for(request: &httparse::Request<'_, '_>) -> Option<IpAddr> {
    let header = request
        .headers
        .iter()
        .rev()
        .find(|h| h.name.eq_ignore_ascii_case("X-Forwarded-For"))?;
    let value = std::str::from_utf8(header.value).ok()?;
    let last = value.rsplit(',').next()?.trim();
    // Accept `[v6]:port`, `v4:port` and bare addresses.
    let bare = last.strip_prefix('[').and_then(|l| l.split(']').next());
    bare.unwrap_or(last)
        .parse()
        .ok()
        .or_else(|| last.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// Every subprotocol offered, over every `Sec-WebSocket-Protocol` header.
fn protocols(request: &httparse::Request<'_, '_>) -> Vec<String> {
    request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// The request's `Origin` (if one, as text) and whether it is allowed: absent is allowed; one
/// that is not UTF-8, or several, never is.
fn origin_policy<'a>(
    request: &httparse::Request<'_, 'a>,
    allowed_origins: Option<&[String]>,
) -> (Option<&'a str>, bool) {
    let origins: Vec<&'a [u8]> = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Origin"))
        .map(|h| h.value)
        .collect();
    let origin = match origins.as_slice() {
        [one] => Some(std::str::from_utf8(one).ok()),
        [] => None,
        _ => Some(None),
    };
    let allowed = match (origin, allowed_origins) {
        (None, _) => true,
        (Some(None), _) => false,
        (Some(Some(_)), None) => true,
        (Some(Some(origin)), Some(list)) => {
            list.iter().any(|allowed| allowed == origin) || same_origin(request, origin)
        }
    };
    (origin.flatten(), allowed)
}

/// The page that asks is one this server served (the party page): its `Origin` is `http://`
/// or `https://` followed by exactly the request's one `Host` (behind a TLS proxy that
/// passes `Host` on, the browser's `https://` origin names the same host), and that host is
/// a name no outsider can point at this server (`local_host`). A public name is not enough:
/// with DNS rebinding, a stranger's page at `evil.example` can make a browser on the LAN send
/// exactly `Host: evil.example` and `Origin: http://evil.example` here. Such names go in
/// `ALLOWED_ORIGINS`.
fn same_origin(request: &httparse::Request<'_, '_>, origin: &str) -> bool {
    let mut hosts = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Host"));
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    let Ok(host) = std::str::from_utf8(host.value) else {
        return false;
    };
    let host = host.trim();
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    !host.is_empty() && authority.is_some_and(|a| a.eq_ignore_ascii_case(host)) && local_host(host)
}

/// A `Host` (with or without a port) that only this network can resolve, so no page from
/// elsewhere can be served under it: an IP address, `localhost`, a name without a dot (the
/// local search domain), or a name under `.local` (mDNS), `.lan`, `.home.arpa`, `.internal`
/// or `.localhost`.
fn local_host(host: &str) -> bool {
    if let Some(bracketed) = host.strip_prefix('[') {
        let Some((address, rest)) = bracketed.split_once(']') else {
            return false;
        };
        let port = rest.strip_prefix(':').unwrap_or(rest);
        return address.parse::<std::net::Ipv6Addr>().is_ok()
            && (rest.is_empty() || (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())));
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return false,
        None => host,
    };
    if name.is_empty() || name.ends_with('.') {
        return false;
    }
    let name = name.to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || !name.contains('.')
        || [".local", ".lan", ".home.arpa", ".internal", ".localhost"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

fn route(
    request: &httparse::Request<'_, '_>,
    allowed_origins: Option<&[String]>,
    serves: &dyn Fn(&str) -> bool,
) -> Route {
    let path = target_path(request.path.unwrap_or("/"));
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let (origin, origin_allowed) = origin_policy(request, allowed_origins);
    let on = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if on("/health") {
        if request.method != Some("GET") && request.method != Some("HEAD") {
            return Route::Refuse(Status::MethodNotAllowed);
        }
        let origin = origin.filter(|_| origin_allowed && allowed_origins.is_some());
        return Route::Health {
            origin: origin.map(String::from),
            head: request.method == Some("HEAD"),
            forwarded_for: forwarded_for(request),
        };
    }
    if on("/metrics") {
        if request.method != Some("GET") && request.method != Some("HEAD") {
            return Route::Refuse(Status::MethodNotAllowed);
        }
        let bearer = header("Authorization")
            .and_then(|v| v.trim().strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        return Route::Metrics {
            head: request.method == Some("HEAD"),
            bearer,
            forwarded_for: forwarded_for(request),
        };
    }
    if path == "/" || path == "/index.html" {
        if request.method != Some("GET") && request.method != Some("HEAD") {
            return Route::Refuse(Status::MethodNotAllowed);
        }
        // Weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`; every header counts.
        let etag = crate::page::etag();
        let etag_matches = request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("If-None-Match"))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim())
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag);
        return Route::Page {
            head: request.method == Some("HEAD"),
            etag_matches,
        };
    }
    if !serves(path) {
        return Route::Refuse(Status::NotFound);
    }
    if request.method != Some("GET") {
        return Route::Refuse(Status::MethodNotAllowed);
    }
    if !origin_allowed {
        return Route::Refuse(Status::Forbidden);
    }
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return Route::Refuse(Status::UpgradeRequired);
    }
    if request.version != Some(1) {
        return Route::Refuse(Status::BadRequest);
    }
    if header("Sec-WebSocket-Version").map(str::trim) != Some("13") {
        return Route::Refuse(Status::UpgradeRequired);
    }
    let keys = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Key"))
        .count();
    if keys > 1 {
        return Route::Refuse(Status::BadRequest);
    }
    match header("Sec-WebSocket-Key").map(str::trim) {
        Some(key) if valid_key(key) => Route::WebSocket {
            key: key.to_string(),
            path: path.to_string(),
            protocols: protocols(request),
            origin: origin.map(String::from),
            forwarded_for: forwarded_for(request),
        },
        _ => Route::Refuse(Status::BadRequest),
    }
}

/// A `Sec-WebSocket-Key` is the base64 of 16 bytes: 22 characters and `==` (RFC 6455 §4.1).
fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes
            .iter()
            .take(22)
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// The 101 response completing an upgrade, echoing the selected subprotocol if any.
pub fn switching_protocols(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(protocol) = protocol {
        let _ = write!(response, "Sec-WebSocket-Protocol: {protocol}\r\n");
    }
    response.push_str("\r\n");
    response.into_bytes()
}

/// The OpenWatchParty endpoint: `/ws` and anything under it.
pub fn owp_path(path: &str) -> bool {
    path == "/ws" || path.starts_with("/ws/")
}

/// A refusal with a short plain-text body.
pub fn refusal(status: Status) -> Vec<u8> {
    let (code, reason) = status.line();
    let body = format!("{code} {reason}\n");
    let mut response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == Status::UpgradeRequired {
        response.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    }
    if status == Status::Unauthorized {
        response.push_str("WWW-Authenticate: Bearer\r\n");
    }
    if status == Status::TooManyRequests || status == Status::Unavailable {
        response.push_str("Retry-After: 1\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&body);
    response.into_bytes()
}

/// `/metrics`: Prometheus text format 0.0.4; `head`: the same headers, no body.
pub fn metrics(body: &str, head: bool) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head {
        response.push_str(body);
    }
    response.into_bytes()
}

/// `/health`: status, auth mode and a few counters; `head`: the same headers, no body.
pub fn health(
    origin: Option<&str>,
    head: bool,
    auth_enabled: bool,
    connections: usize,
    rooms: usize,
) -> Vec<u8> {
    let body = format!(
        "{{\"status\":\"ok\",\"auth_enabled\":{auth_enabled},\"connections\":{connections},\
         \"rooms\":{rooms},\"version\":\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(origin) = origin {
        let _ = write!(
            response,
            "Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n"
        );
    }
    response.push_str("\r\n");
    if !head {
        response.push_str(&body);
    }
    response.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn upgrade(path: &str, extra: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    }

    fn origins() -> Vec<String> {
        vec!["http://localhost:8096".to_string()]
    }

    fn route_of(text: &str) -> Route {
        parse_request(text.as_bytes(), 8_192, Some(&origins()), &owp_path)
            .expect("complete")
            .1
    }

    /// /ws and /ws/... upgrade; other paths are 404; /health answers.
    #[test]
    fn routes() {
        let ws = |path: &str| Route::WebSocket {
            key: KEY.into(),
            path: path.into(),
            protocols: Vec::new(),
            origin: None,
            forwarded_for: None,
        };
        assert_eq!(route_of(&upgrade("/ws", "")), ws("/ws"));
        assert_eq!(route_of(&upgrade("/ws/room?x=1", "")), ws("/ws/room"));
        // Absolute form routes on its path.
        assert_eq!(
            route_of(&upgrade("http://localhost:3000/ws?x", "")),
            ws("/ws")
        );
        // Subprotocols from every header, in order.
        let offered = upgrade(
            "/ws",
            "Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n",
        );
        let Route::WebSocket { protocols, .. } = route_of(&offered) else {
            panic!("not an upgrade")
        };
        assert_eq!(protocols, ["a", "b", "c"]);
        assert_eq!(
            route_of("GET HTTP://h/health HTTP/1.1\r\n\r\n"),
            Route::Health {
                origin: None,
                head: false,
                forwarded_for: None
            }
        );
        // Absolute form without a path is `/`: the page.
        assert_eq!(
            route_of("GET http://h HTTP/1.1\r\n\r\n"),
            Route::Page {
                head: false,
                etag_matches: false
            }
        );
        assert_eq!(
            route_of(&upgrade("/wsx", "")),
            Route::Refuse(Status::NotFound)
        );
        assert_eq!(
            route_of("HEAD /health HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 203.0.113.9\r\n\r\n"),
            Route::Health {
                origin: None,
                head: true,
                forwarded_for: Some([203, 0, 113, 9].into())
            }
        );
        let page = |head, etag_matches| Route::Page { head, etag_matches };
        assert_eq!(route_of("GET / HTTP/1.1\r\n\r\n"), page(false, false));
        assert_eq!(
            route_of("HEAD /index.html HTTP/1.1\r\n\r\n"),
            page(true, false)
        );
        let revalidate = format!(
            "GET / HTTP/1.1\r\nIf-None-Match: \"x\", {}\r\n\r\n",
            crate::page::etag()
        );
        assert_eq!(route_of(&revalidate), page(false, true));
        assert_eq!(
            route_of("GET / HTTP/1.1\r\nIf-None-Match: \"stale\"\r\n\r\n"),
            page(false, false)
        );
        assert_eq!(
            route_of("POST / HTTP/1.1\r\n\r\n"),
            Route::Refuse(Status::MethodNotAllowed)
        );
        assert_eq!(
            route_of("GET /page HTTP/1.1\r\n\r\n"),
            Route::Refuse(Status::NotFound)
        );
        let weak = format!(
            "GET / HTTP/1.1\r\nIf-None-Match: \"a\"\r\nIf-None-Match: W/{}\r\n\r\n",
            crate::page::etag()
        );
        assert_eq!(route_of(&weak), page(false, true));
        // A `/` in the query or fragment of an absolute-form target is not its path.
        for target in [
            "http://h?/health",
            "http://h#/health",
            "http://h?/metrics",
            "http://h?x=/ws",
        ] {
            assert_eq!(
                route_of(&format!("GET {target} HTTP/1.1\r\n\r\n")),
                page(false, false),
                "{target}"
            );
        }
        assert_eq!(
            route_of("GET http://h/health?/ws HTTP/1.1\r\n\r\n"),
            Route::Health {
                origin: None,
                head: false,
                forwarded_for: None
            }
        );
    }

    /// Origin: absent allowed, listed allowed, other 403; `*` (None) allows any.
    #[test]
    fn origin_rules() {
        assert!(matches!(
            route_of(&upgrade("/ws", "Origin: http://localhost:8096\r\n")),
            Route::WebSocket { .. }
        ));
        assert_eq!(
            route_of(&upgrade("/ws", "Origin: http://evil\r\n")),
            Route::Refuse(Status::Forbidden)
        );
        let any = parse_request(
            upgrade("/ws", "Origin: http://evil\r\n").as_bytes(),
            8_192,
            None,
            &owp_path,
        );
        assert!(matches!(any, Some((_, Route::WebSocket { .. }))));
        // An Origin that is not UTF-8, or two of them, is refused even when any is allowed.
        let mut bytes = upgrade("/ws", "Origin: http://localhost:8096\r\n").into_bytes();
        let at = bytes.windows(4).position(|w| w == b"8096").expect("origin");
        bytes[at] = 0xFF;
        for list in [Some(&origins()[..]), None] {
            let refused = parse_request(&bytes, 8_192, list, &owp_path).map(|r| r.1);
            assert_eq!(refused, Some(Route::Refuse(Status::Forbidden)));
        }
        let two = upgrade(
            "/ws",
            "Origin: http://localhost:8096\r\nOrigin: http://evil\r\n",
        );
        assert_eq!(route_of(&two), Route::Refuse(Status::Forbidden));
        // The server's own page: an Origin naming exactly the request's Host, http or https.
        let own = |host: &str, origin: &str| {
            upgrade("/ws", &format!("Origin: {origin}\r\n"))
                .replace("Host: x", &format!("Host: {host}"))
        };
        for (host, origin) in [
            ("nas.lan:3000", "http://nas.lan:3000"),
            ("NAS.lan:3000", "http://nas.LAN:3000"),
            ("192.168.1.5:3000", "http://192.168.1.5:3000"),
            ("[fd00::1]:3000", "https://[fd00::1]:3000"),
            ("nas:3000", "http://nas:3000"),
            ("localhost:3000", "http://localhost:3000"),
            ("tv.home.arpa", "https://tv.home.arpa"),
        ] {
            assert!(
                matches!(route_of(&own(host, origin)), Route::WebSocket { .. }),
                "{origin}"
            );
        }
        for (host, origin) in [
            ("nas.lan:3000", "http://nas.lan:3001"),
            ("nas.lan", "http://nas.lan.evil"),
            ("nas.lan", "ftp://nas.lan"),
            ("nas.lan", "http://evil@nas.lan"),
            ("", "http://"),
            // A public name: DNS rebinding could put a stranger's page under it.
            ("party.example", "https://party.example"),
            ("evil.example:3000", "http://evil.example:3000"),
            ("nas.lan.", "http://nas.lan."),
            ("[fd00::1", "http://[fd00::1"),
        ] {
            assert_eq!(
                route_of(&own(host, origin)),
                Route::Refuse(Status::Forbidden),
                "{host} {origin}"
            );
        }
        let two_hosts = own("a", "http://a").replace("Host: a\r\n", "Host: a\r\nHost: b\r\n");
        assert_eq!(route_of(&two_hosts), Route::Refuse(Status::Forbidden));
    }

    /// A plain GET of /ws is 426; a bad key is 400; a huge head is 431; partial is None.
    #[test]
    fn refusals() {
        assert_eq!(
            route_of("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Refuse(Status::UpgradeRequired)
        );
        let bad_key = upgrade("/ws", "").replace(KEY, "short");
        assert_eq!(route_of(&bad_key), Route::Refuse(Status::BadRequest));
        let two_keys = upgrade("/ws", &format!("Sec-WebSocket-Key: {KEY}\r\n"));
        assert_eq!(route_of(&two_keys), Route::Refuse(Status::BadRequest));
        let huge = format!("GET /ws HTTP/1.1\r\nX: {}\r\n", "a".repeat(9_000));
        assert_eq!(
            parse_request(huge.as_bytes(), 8_192, None, &owp_path).map(|r| r.1),
            Some(Route::Refuse(Status::HeadersTooLarge))
        );
        assert_eq!(
            parse_request(b"GET /ws HTTP/1.1\r\nHost", 8_192, None, &owp_path),
            None
        );
        assert_eq!(
            route_of("garbage\r\n\r\n"),
            Route::Refuse(Status::BadRequest)
        );
    }

    /// X-Forwarded-For: the last entry, with or without a port; garbage is none.
    #[test]
    fn forwarded_addresses() {
        let cases = [
            ("1.2.3.4", Some("1.2.3.4")),
            ("9.9.9.9, 1.2.3.4:5678", Some("1.2.3.4")),
            ("[2001:db8::1]:80", Some("2001:db8::1")),
            ("2001:db8::2", Some("2001:db8::2")),
            ("unknown", None),
        ];
        for (value, expected) in cases {
            let text = upgrade("/ws", &format!("X-Forwarded-For: {value}\r\n"));
            let Route::WebSocket { forwarded_for, .. } = route_of(&text) else {
                panic!("{value}")
            };
            let expected: Option<IpAddr> = expected.map(|e| e.parse().expect("address"));
            assert_eq!(forwarded_for, expected, "{value}");
        }
    }

    /// HEAD /health has the GET's headers and no body.
    #[test]
    fn head_has_no_body() {
        let get = String::from_utf8(health(None, false, false, 1, 2)).expect("ascii");
        let head = String::from_utf8(health(None, true, false, 1, 2)).expect("ascii");
        assert!(get.starts_with(&head) && head.ends_with("\r\n\r\n") && get.len() > head.len());
    }

    /// The accept key is RFC 6455's example.
    #[test]
    fn accept_key() {
        let response = String::from_utf8(switching_protocols(KEY, None)).expect("ascii");
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert!(!response.contains("Sec-WebSocket-Protocol"));
        let selected = String::from_utf8(switching_protocols(KEY, Some("x.v1"))).expect("ascii");
        assert!(selected.contains("\r\nSec-WebSocket-Protocol: x.v1\r\n\r\n"));
    }
}
