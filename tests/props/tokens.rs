//! `tokens`: user tokens (JWT) and invites through `tandem::auth`, against a reference check
//! written here from RFC 7515/7519 with `hmac` and `sha2` (not jsonwebtoken).
//!
//! The input builds a token (a header from a list, claims field by field, present, absent or
//! of the wrong type, a right or wrong key, HMAC-SHA256 over the signing input) or takes raw
//! bytes, then mutates it (a byte changed, cut, or grown past `TOKEN_BYTES_MAX`).
//!
//! Properties: nothing panics; a user token is accepted only if the reference accepts it, and
//! then with the reference's subject and name; an invite verifies only if the reference
//! accepts it, for the same room and serial; an invite this server signs verifies to its
//! room and serial until it expires, and as expired after; a token longer than
//! `TOKEN_BYTES_MAX` is refused whatever it holds.

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use tandem::auth::{Auth, AuthConfig, Refusal, Secret, INVITE_AUDIENCE, LEEWAY_SECONDS};
use tandem::core::types::{ErrorCode, Identity, Pass};
use tandem::id::RoomId;
use tandem::time::UnixMillis;

use super::bytes::Bytes;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-32b";
const INVITE_SECRET: &[u8] = b"fuzz-invite-secret";
const AUDIENCE: &str = "OpenWatchParty";
const ISSUER: &str = "Jellyfin";
const NOW_S: u64 = 1_800_000_000;
const TOKEN_BYTES_MAX: usize = 1_024;
const ROOM: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

const HEADERS: [&str; 10] = [
    r#"{"alg":"HS256","typ":"JWT"}"#,
    r#"{"alg":"HS256"}"#,
    r#"{"typ":"JWT","alg":"HS256","kid":"k"}"#,
    r#"{"alg":"HS512","typ":"JWT"}"#,
    r#"{"alg":"HS384"}"#,
    r#"{"alg":"RS256","typ":"JWT"}"#,
    r#"{"alg":"none","typ":"JWT"}"#,
    r#"{"alg":"hs256"}"#,
    r#"{"typ":"JWT"}"#,
    r#"{"alg":"HS256","alg":"none"}"#,
];

fn auth() -> Auth {
    let config = AuthConfig {
        jwt_secret: Some(Secret(SECRET.to_vec())),
        invite_secret: Some(Secret(INVITE_SECRET.to_vec())),
        token_bytes_max: TOKEN_BYTES_MAX,
        ..AuthConfig::default()
    };
    Auth::new(&config, [0; 32])
}

/// The instant and the token an input makes.
fn token_of(input: &mut Bytes<'_>) -> (UnixMillis, String) {
    let now = UnixMillis(NOW_S * 1_000 + u64::from(input.byte()) * 997);
    let token = if input.flag() {
        build(input)
    } else {
        String::from_utf8_lossy(input.slice()).into_owned()
    };
    (now, mutate(input, token))
}

/// Whether the token an input makes is accepted as a user token, and as an invite (so that
/// tests can tell the seeds reach both verdicts).
pub fn verdicts(data: &[u8]) -> (bool, bool) {
    let (now, token) = token_of(&mut Bytes::new(data));
    let auth = auth();
    (
        auth.verify_user(&token, now).is_ok(),
        matches!(auth.verify_invite(&token, now), Pass::Valid { .. }),
    )
}

/// Checks every property on one input.
pub fn check(data: &[u8]) {
    let mut input = Bytes::new(data);
    let auth = auth();
    let (now, token) = token_of(&mut input);

    let user = auth.verify_user(&token, now);
    if token.len() > TOKEN_BYTES_MAX {
        assert_eq!(user, Err(Refusal::TooLarge));
    }
    if let Ok(identity) = user {
        let (subject, name) = reference_user(&token, now).unwrap_or_else(|why| {
            panic!("accepted a token the reference refuses ({why}): {token}")
        });
        assert_eq!(identity, Identity::Verified { subject, name });
    }
    let invite = auth.verify_invite(&token, now);
    if token.len() > TOKEN_BYTES_MAX {
        assert_eq!(invite, Pass::Refused(ErrorCode::InviteInvalid));
    }
    if let Pass::Valid { room, serial } = invite {
        let expected = reference_invite(&token, now).unwrap_or_else(|why| {
            panic!("accepted an invite the reference refuses ({why}): {token}")
        });
        assert_eq!((room, serial), expected);
    }

    // What this server signs, it accepts until it expires.
    let room = RoomId::parse(ROOM).expect("a room id");
    let serial = u64::from(input.byte()) << 8 | u64::from(input.byte());
    let expires = NOW_S - 64 + u64::from(input.byte());
    let signed = auth.sign_invite(room, serial, expires);
    let expected = if expires >= now.0 / 1_000 {
        Pass::Valid { room, serial }
    } else {
        Pass::Refused(ErrorCode::InviteExpired)
    };
    assert_eq!(auth.verify_invite(&signed, now), expected);
    assert!(
        auth.verify_user(&signed, now).is_err(),
        "an invite is no user token"
    );
}

/// A field's value, from a short list of right and wrong ones (`None`: absent).
fn value(input: &mut Bytes<'_>, right: Value, wrong: &[Value]) -> Option<Value> {
    match input.below(wrong.len() + 3) {
        0 => None,
        1 | 2 => Some(right),
        i => Some(wrong[i - 3].clone()),
    }
}

/// A token built from the input: header, claims, key, signature.
fn build(input: &mut Bytes<'_>) -> String {
    let header = input.pick(&HEADERS);
    let exp = NOW_S as i64 + input.pick(&[-3_600i64, -61, -60, -59, 0, 59, 3_600]);
    let exp_wrong = [
        json!(-5),
        json!(exp as f64 + 0.5),
        json!(exp.to_string()),
        json!(null),
    ];
    let mut claims = Map::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            claims.insert(key.to_string(), v);
        }
    };
    if input.flag() {
        // A user token.
        put(
            "sub",
            value(
                input,
                json!("user-1"),
                &[json!(""), json!(7), json!(" user-1")],
            ),
        );
        put(
            "name",
            value(
                input,
                json!("Alice"),
                &[json!(""), json!("\u{7}"), json!(["Alice"])],
            ),
        );
        put(
            "aud",
            value(
                input,
                json!([AUDIENCE, AUDIENCE]),
                &[
                    json!(AUDIENCE),
                    json!("Other"),
                    json!(["Other"]),
                    json!(["Other", AUDIENCE]),
                    json!([]),
                ],
            ),
        );
        put(
            "iss",
            value(
                input,
                json!(ISSUER),
                &[json!("Emby"), json!([ISSUER]), json!(1)],
            ),
        );
        put("exp", value(input, json!(exp), &exp_wrong));
        put("iat", value(input, json!(NOW_S), &[json!("x")]));
        put("nbf", value(input, json!(NOW_S + 100), &[json!("x")]));
    } else {
        // An invite.
        put(
            "aud",
            value(
                input,
                json!(INVITE_AUDIENCE),
                &[json!(AUDIENCE), json!([INVITE_AUDIENCE])],
            ),
        );
        put(
            "room",
            value(
                input,
                json!(ROOM),
                &[json!("party"), json!(1), json!(ROOM.to_uppercase())],
            ),
        );
        let serial = input.byte();
        put(
            "serial",
            value(input, json!(serial), &[json!(-1), json!("1"), json!(1.5)]),
        );
        put("exp", value(input, json!(exp), &exp_wrong));
    }
    let key = input.pick(&[SECRET, INVITE_SECRET, b"other".as_slice(), b"".as_slice()]);
    let signing_input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(Value::Object(claims).to_string().as_bytes())
    );
    format!(
        "{signing_input}.{}",
        b64(&hmac(key, signing_input.as_bytes()))
    )
}

/// The token changed by the input: kept, a byte replaced, cut, or padded past the cap.
fn mutate(input: &mut Bytes<'_>, token: String) -> String {
    let mut bytes = token.into_bytes();
    match input.below(6) {
        0..=2 => {}
        3 if !bytes.is_empty() => {
            let at = input.below(bytes.len());
            bytes[at] = input.byte();
        }
        4 => bytes.truncate(input.below(bytes.len() + 1)),
        _ => bytes.extend(std::iter::repeat_n(b'A', TOKEN_BYTES_MAX)),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// base64url, padding optional, trailing bits ignored (as lenient as a decoder may be).
fn unb64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (text.len() % 4 != 1).then_some(out)
}

/// The reference JWS check: three parts, header `alg` exactly HS256 (duplicate keys read as
/// the last one), HMAC-SHA256 of the signing input under `key`; the claims as an object.
fn reference_jws(token: &str, key: &[u8]) -> Result<Map<String, Value>, &'static str> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err("too long");
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not three parts");
    };
    let header: Value =
        serde_json::from_slice(&unb64(header).ok_or("header b64")?).map_err(|_| "header json")?;
    if header.get("alg") != Some(&json!("HS256")) {
        return Err("alg");
    }
    let signing_input = &token[..header_len(token)];
    if unb64(signature).ok_or("signature b64")? != hmac(key, signing_input.as_bytes()) {
        return Err("signature");
    }
    match serde_json::from_slice(&unb64(claims).ok_or("claims b64")?) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err("claims json"),
    }
}

/// Length of `header.claims` (everything before the last dot).
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// The reference user check: `exp` an integer no more than the leeway past, `aud` the
/// audience or an array holding it, `iss` the issuer, `sub` and `name` non-empty strings
/// (the name as it would be shown, the subject as sent).
fn reference_user(token: &str, now: UnixMillis) -> Result<(String, String), &'static str> {
    let claims = reference_jws(token, SECRET)?;
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or("exp")?;
    if exp + LEEWAY_SECONDS < now.0 / 1_000 {
        return Err("expired");
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(auds)) => auds.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    if !audience_ok {
        return Err("aud");
    }
    if claims.get("iss") != Some(&json!(ISSUER)) {
        return Err("iss");
    }
    let sub = claims.get("sub").and_then(Value::as_str).ok_or("sub")?;
    let name = claims.get("name").and_then(Value::as_str).ok_or("name")?;
    let name = tandem::text::display_name(name).ok_or("name empty")?;
    if sub.is_empty() {
        return Err("sub empty");
    }
    Ok((sub.to_string(), name))
}

/// The reference invite check: signed with the invite key, `aud` the invite audience, `room`
/// a room id, `serial` and `exp` integers, not expired.
fn reference_invite(token: &str, now: UnixMillis) -> Result<(RoomId, u64), &'static str> {
    let claims = reference_jws(token, INVITE_SECRET)?;
    if claims.get("aud") != Some(&json!(INVITE_AUDIENCE)) {
        return Err("aud");
    }
    let room = claims
        .get("room")
        .and_then(Value::as_str)
        .and_then(RoomId::parse)
        .ok_or("room")?;
    let serial = claims
        .get("serial")
        .and_then(Value::as_u64)
        .ok_or("serial")?;
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or("exp")?;
    if exp < now.0 / 1_000 {
        return Err("expired");
    }
    Ok((room, serial))
}
