//! `upgrade_request`: `net::upgrade::parse_request` on arbitrary bytes.
//!
//! The whole input is the request head as it arrived (so a seed is a readable HTTP request).
//! Properties, for the production head limit and a small one derived from the input:
//! - a complete parse never consumes more than the input (and, for a routed request, no more
//!   than the head limit), and a WebSocket route has a well-formed key;
//! - bytes arriving in chunks give the decision they give at once: the engine re-parses the
//!   growing head after every read, so a prefix that decides must decide the same way;
//! - bytes after a complete head (the first WebSocket frames) never change the decision;
//! - the Origin allow-list only ever turns an upgrade into 403 or drops the echoed origin:
//!   allowing any origin never refuses what a list accepts.

use tandem::net::upgrade::{owp_path, parse_request, Route, Status};

/// The production request head limit (`REQUEST_HEAD_BYTES_MAX`).
const HEAD_MAX: usize = 8 << 10;

/// Checks every property on one input.
pub fn check(data: &[u8]) {
    let origins = vec![
        "http://localhost:8096".to_string(),
        "https://localhost:8096".to_string(),
    ];
    // A small limit reaches the 431 paths with small inputs.
    let small = 16 + data.len() % 240;
    for head_max in [HEAD_MAX, small] {
        for allowed in [None, Some(origins.as_slice())] {
            check_one(data, head_max, allowed);
        }
        check_origin_policy(data, head_max, &origins);
    }
}

fn check_one(data: &[u8], head_max: usize, allowed: Option<&[String]>) {
    // The engine never holds more than the limit.
    let buf = &data[..data.len().min(head_max)];
    let whole = parse_request(buf, head_max, allowed, &owp_path);
    if let Some((len, route)) = &whole {
        assert!(*len <= buf.len(), "consumed {len} of {} bytes", buf.len());
        check_route(&buf[..*len], route, head_max, allowed);
    } else {
        assert!(
            buf.len() < head_max,
            "an incomplete head at the limit must be refused"
        );
    }
    check_chunking(buf, head_max, allowed, &whole);
    if let Some((len, route)) = &whole {
        if is_routed(route) && *len < head_max {
            // Frames that follow the head are the WebSocket's, not the request's.
            let mut longer = buf[..*len].to_vec();
            longer.extend_from_slice(b"\x81\x85\0\0\0\0hello GET / HTTP/1.1\r\n\r\n");
            let again = parse_request(&longer, head_max, allowed, &owp_path);
            assert_eq!(
                again.as_ref(),
                Some(&(*len, clone_route(route))),
                "trailing bytes changed it"
            );
        }
    }
}

/// Re-parses growing prefixes, as the engine does when the head arrives in pieces.
fn check_chunking(
    buf: &[u8],
    head_max: usize,
    allowed: Option<&[String]>,
    whole: &Option<(usize, Route)>,
) {
    let mut cuts: Vec<usize> = buf
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .take(24)
        .collect();
    cuts.extend([1, buf.len() / 3, buf.len() / 2, buf.len().saturating_sub(1)]);
    for cut in cuts.into_iter().filter(|&c| c > 0 && c < buf.len()) {
        let Some((len, route)) = parse_request(&buf[..cut], head_max, allowed, &owp_path) else {
            continue;
        };
        let Some((whole_len, whole_route)) = whole else {
            panic!("prefix of {cut} bytes decided {route:?} but the whole head is incomplete")
        };
        assert_eq!(
            &route, whole_route,
            "prefix of {cut} bytes decided differently"
        );
        if is_routed(&route) {
            assert_eq!(
                len, *whole_len,
                "prefix of {cut} bytes ended the head elsewhere"
            );
        }
    }
}

fn check_route(head: &[u8], route: &Route, head_max: usize, allowed: Option<&[String]>) {
    match route {
        Route::WebSocket { key, .. } => {
            assert!(head.len() <= head_max);
            // httparse ends a head at a blank line, with or without CR on either line.
            assert!(
                head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"),
                "head not terminated"
            );
            assert!(
                key.len() == 24 && key.ends_with("=="),
                "bad key accepted: {key:?}"
            );
            // Empty lines before the request line are skipped (RFC 9112 §2.2).
            let start = head
                .iter()
                .position(|b| !matches!(b, b'\r' | b'\n'))
                .unwrap_or(0);
            let start =
                String::from_utf8_lossy(&head[start..head.len().min(start + 8)]).into_owned();
            assert!(start.starts_with("GET "), "upgrade without GET: {start:?}");
        }
        Route::Health {
            origin: Some(origin),
            ..
        } => {
            let list = allowed.expect("an origin is echoed only with an allow-list");
            assert!(
                list.contains(origin),
                "echoed an origin not on the list: {origin:?}"
            );
        }
        Route::Metrics { bearer, .. } => {
            assert!(bearer.as_ref().is_none_or(|b| !b.contains(['\r', '\n'])));
        }
        Route::Page { .. } => {
            // Only the page's own paths, by GET or HEAD.
            let text = String::from_utf8_lossy(head);
            let line = text.trim_start_matches(['\r', '\n']);
            assert!(
                line.starts_with("GET ") || line.starts_with("HEAD "),
                "page for {line:?}"
            );
        }
        Route::Health { origin: None, .. } | Route::Refuse(_) => {}
    }
}

/// Allowing any origin never refuses what the allow-list accepts; where they differ, the
/// list answers 403 to a GET of /ws that `*` upgrades or refuses for a later reason (the
/// origin is checked before the upgrade headers, so a foreign origin with a bad key is 403).
fn check_origin_policy(data: &[u8], head_max: usize, origins: &[String]) {
    let buf = &data[..data.len().min(head_max)];
    let any = parse_request(buf, head_max, None, &owp_path).map(|(_, route)| route);
    let listed = parse_request(buf, head_max, Some(origins), &owp_path).map(|(_, route)| route);
    match (&any, &listed) {
        (None, None) => {}
        (Some(Route::Health { .. }), Some(Route::Health { .. })) => {}
        (Some(Route::Page { .. }), Some(Route::Page { .. })) => {}
        (
            Some(
                Route::WebSocket { .. }
                | Route::Refuse(Status::UpgradeRequired | Status::BadRequest),
            ),
            Some(Route::Refuse(Status::Forbidden)),
        ) => {}
        (Some(a), Some(b)) if a == b => {}
        _ => panic!("origin policy: any={any:?} listed={listed:?}"),
    }
}

/// Routes that consumed exactly a head (not a refusal of unparseable bytes).
fn is_routed(route: &Route) -> bool {
    !matches!(
        route,
        Route::Refuse(Status::BadRequest | Status::HeadersTooLarge)
    )
}

fn clone_route(route: &Route) -> Route {
    route.clone()
}
