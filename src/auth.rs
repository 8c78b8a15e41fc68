//! The edge's auth step: user tokens (JWT, as the OpenWatchParty Jellyfin plugin signs them)
//! and invites (tokens this server signs for one room). Pure: the current time is an
//! argument, so verification is deterministic and fuzzable. Nothing here logs a token.
//!
//! User tokens: HS256 only, keyed by `JWT_SECRET`; `exp` required (60 s leeway), `aud` (a
//! string or an array, as the plugin emits) must name `JWT_AUDIENCE`, `iss` must be
//! `JWT_ISSUER`, `sub` and `name` must be non-empty strings. Anything else is refused.
//!
//! Invites: HS256 over `{aud: "tandem-invite", room, serial, exp}`, keyed by `INVITE_SECRET`,
//! else `JWT_SECRET`, else a random key made at start (such invites die with the process).
//! The audience keeps the two kinds apart when they share a key: an invite is not a user
//! token and a user token is not an invite.

use std::fmt;

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::core::types::{ErrorCode, Identity, Pass};
use crate::id::RoomId;
use crate::time::UnixMillis;

/// Seconds past `exp` a user token is still accepted (clock skew between Jellyfin and us).
pub const LEEWAY_SECONDS: u64 = 60;

/// The audience of invites: never a user token's.
pub const INVITE_AUDIENCE: &str = "tandem-invite";

/// A secret: compared and cloned like bytes, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// How tokens are checked: the auth settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthConfig {
    /// `JWT_SECRET`: set and non-empty turns authentication on.
    pub jwt_secret: Option<Secret>,
    /// `JWT_AUDIENCE`: the `aud` a user token must name.
    pub audience: String,
    /// `JWT_ISSUER`: the `iss` a user token must carry.
    pub issuer: String,
    /// `INVITE_SECRET`: the key invites are signed with (else `JWT_SECRET`, else random).
    pub invite_secret: Option<Secret>,
    /// `TOKEN_BYTES_MAX`: a longer token is refused before it is decoded.
    pub token_bytes_max: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            audience: "OpenWatchParty".to_string(),
            issuer: "Jellyfin".to_string(),
            invite_secret: None,
            token_bytes_max: 4_096,
        }
    }
}

impl AuthConfig {
    /// Whether clients must authenticate.
    pub fn enabled(&self) -> bool {
        self.jwt_secret.as_ref().is_some_and(|s| !s.0.is_empty())
    }

    /// Where invites get their key: `"INVITE_SECRET"`, `"JWT_SECRET"` or `"random"`.
    pub fn invite_key_source(&self) -> &'static str {
        if self.invite_secret.as_ref().is_some_and(|s| !s.0.is_empty()) {
            "INVITE_SECRET"
        } else if self.enabled() {
            "JWT_SECRET"
        } else {
            "random"
        }
    }
}

/// Why a user token was refused (for the server log; the client only hears "failed").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Longer than `TOKEN_BYTES_MAX`: not decoded at all.
    TooLarge,
    /// Not a well-formed HS256 JWT, or a bad signature.
    Malformed,
    /// A claim is missing, of the wrong type, or has the wrong value.
    Claims,
    /// `exp` is more than the leeway in the past.
    Expired,
}

impl Refusal {
    /// A word for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::Claims => "claims",
            Refusal::Expired => "expired",
        }
    }
}

#[derive(Deserialize)]
struct UserClaims {
    sub: String,
    name: String,
    exp: u64,
    /// Checked by the rules too; a string here (an array is no issuer).
    #[allow(dead_code)]
    iss: String,
}

#[derive(Serialize, Deserialize)]
struct InviteClaims {
    aud: String,
    room: String,
    serial: u64,
    exp: u64,
}

/// The keys and rules tokens are checked with.
pub struct Auth {
    user: Option<(DecodingKey, Validation)>,
    invite_sign: EncodingKey,
    invite_check: DecodingKey,
    invite_rules: Validation,
    token_bytes_max: usize,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

/// HS256 rules with our own expiry check (against the caller's clock, not the system's).
fn rules(audience: &str, required: &[&str]) -> Validation {
    let mut rules = Validation::new(Algorithm::HS256);
    rules.validate_exp = false;
    rules.validate_nbf = false;
    rules.leeway = 0;
    rules.set_audience(&[audience]);
    rules.set_required_spec_claims(required);
    rules
}

impl Auth {
    /// The auth step for `config`; `fallback_key` signs invites when no secret is set (the
    /// server passes fresh OS randomness).
    pub fn new(config: &AuthConfig, fallback_key: [u8; 32]) -> Auth {
        install_crypto();
        let user = config
            .jwt_secret
            .as_ref()
            .filter(|s| !s.0.is_empty())
            .map(|secret| {
                let mut rules = rules(&config.audience, &["exp", "sub", "aud", "iss"]);
                rules.set_issuer(&[config.issuer.as_str()]);
                (DecodingKey::from_secret(&secret.0), rules)
            });
        let invite_key: &[u8] = match (&config.invite_secret, &config.jwt_secret) {
            (Some(secret), _) if !secret.0.is_empty() => &secret.0,
            (_, Some(secret)) if !secret.0.is_empty() => &secret.0,
            _ => &fallback_key,
        };
        Auth {
            user,
            invite_sign: EncodingKey::from_secret(invite_key),
            invite_check: DecodingKey::from_secret(invite_key),
            invite_rules: rules(INVITE_AUDIENCE, &["exp", "aud"]),
            token_bytes_max: config.token_bytes_max,
        }
    }

    /// Whether clients must authenticate.
    pub fn enabled(&self) -> bool {
        self.user.is_some()
    }

    /// Checks a user token at `now`. With authentication off any token is accepted as
    /// anonymous (the original's behaviour), and the connection keeps the name it declares.
    pub fn verify_user(&self, token: &str, now: UnixMillis) -> Result<Identity, Refusal> {
        let Some((key, rules)) = &self.user else {
            return Ok(Identity::Anonymous);
        };
        if token.len() > self.token_bytes_max {
            return Err(Refusal::TooLarge);
        }
        let claims = jsonwebtoken::decode::<UserClaims>(token, key, rules)
            .map_err(|error| match error.kind() {
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidAudience
                | ErrorKind::InvalidIssuer
                | ErrorKind::Json(_) => Refusal::Claims,
                _ => Refusal::Malformed,
            })?
            .claims;
        if claims.exp.saturating_add(LEEWAY_SECONDS) < now.0 / 1_000 {
            return Err(Refusal::Expired);
        }
        let subject = crate::text::sanitize_line(&claims.sub, crate::text::NAME_CHARS_MAX);
        let name = crate::text::display_name(&claims.name).ok_or(Refusal::Claims)?;
        // Reserved: a seat that declared no id, and guests' ids.
        let reserved = subject == "anonymous" || subject.starts_with("guest:");
        if subject.is_empty() || subject != claims.sub || reserved {
            return Err(Refusal::Claims);
        }
        Ok(Identity::Verified { subject, name })
    }

    /// An invite to room `room` (incarnation `serial`) valid until `expires_at` (Unix
    /// seconds).
    pub fn sign_invite(&self, room: RoomId, serial: u64, expires_at: u64) -> String {
        let claims = InviteClaims {
            aud: INVITE_AUDIENCE.to_string(),
            room: room.to_string(),
            serial,
            exp: expires_at,
        };
        // HS256 over a small struct cannot fail; an empty token is refused by any check.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.invite_sign)
            .unwrap_or_default()
    }

    /// Checks an invite at `now`: valid for its room, or refused with why.
    pub fn verify_invite(&self, token: &str, now: UnixMillis) -> Pass {
        if token.len() > self.token_bytes_max {
            return Pass::Refused(ErrorCode::InviteInvalid);
        }
        let Ok(data) =
            jsonwebtoken::decode::<InviteClaims>(token, &self.invite_check, &self.invite_rules)
        else {
            return Pass::Refused(ErrorCode::InviteInvalid);
        };
        let claims = data.claims;
        let Some(room) = RoomId::parse(&claims.room) else {
            return Pass::Refused(ErrorCode::InviteInvalid);
        };
        if claims.exp < now.0 / 1_000 {
            return Pass::Refused(ErrorCode::InviteExpired);
        }
        Pass::Valid {
            room,
            serial: claims.serial,
        }
    }
}

/// Longest resume token accepted (they are 43 characters): longer is refused unread.
pub const RESUME_TOKEN_BYTES_MAX: usize = 64;

/// Mints resume tokens: HMAC-SHA256 under a random key over a counter, a keyed PRF, so a
/// token cannot be guessed from any other (seat ids come from a fast PRNG that one id would
/// give away; these do not).
pub struct ResumeMinter {
    key: EncodingKey,
    count: u64,
}

impl fmt::Debug for ResumeMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeMinter")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl ResumeMinter {
    /// A minter keyed by `secret` (fresh OS randomness in the server), under a key of its
    /// own: HMAC(secret, "resume"), so it shares nothing usable with the invite key.
    pub fn new(secret: &[u8; 32]) -> ResumeMinter {
        install_crypto();
        let key = jsonwebtoken::crypto::sign(
            b"tandem resume key",
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
        .unwrap_or_default();
        ResumeMinter {
            key: EncodingKey::from_secret(key.as_bytes()),
            count: 0,
        }
    }

    /// The next token (43 base64url characters).
    pub fn mint(&mut self) -> String {
        self.count = self.count.wrapping_add(1);
        let message = format!("tandem resume {}", self.count);
        jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, Algorithm::HS256)
            .unwrap_or_default()
    }
}

/// What the server keeps of a resume token: HMAC-SHA256 under a fixed, public key, used as
/// a one-way hash (a state file or a memory dump does not give tokens away). A token longer
/// than `RESUME_TOKEN_BYTES_MAX` has no digest.
pub fn resume_digest(token: &str) -> Option<String> {
    if token.is_empty() || token.len() > RESUME_TOKEN_BYTES_MAX {
        return None;
    }
    install_crypto();
    let key = EncodingKey::from_secret(b"tandem resume token digest");
    jsonwebtoken::crypto::sign(token.as_bytes(), &key, Algorithm::HS256).ok()
}

/// jsonwebtoken's cryptography, HMAC only: every token and invite Tandem reads is HS256, so
/// the RSA, ECDSA and EdDSA code of jsonwebtoken's `rust_crypto` provider (about 400 KB of
/// the static binary) is not built at all. Installed once per process, before any token is
/// signed or checked (the constructors here and `resume_digest` see to it; a test that signs
/// with jsonwebtoken before starting a server calls it itself). HS384 and HS512 are here so
/// that tests can make such tokens: the validation rules accept HS256 only, and reject any
/// other `alg` before a verifier is asked for.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Only this module installs a provider; a second call cannot happen under `Once`.
        let _ = HMAC_ONLY.install_default();
    });
}

static HMAC_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: hmac_signer,
    verifier_factory: hmac_verifier,
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// One HMAC key for one algorithm of the family.
enum HmacKey {
    Sha256(hmac::Hmac<sha2::Sha256>),
    Sha384(hmac::Hmac<sha2::Sha384>),
    Sha512(hmac::Hmac<sha2::Sha512>),
}

impl HmacKey {
    fn new(algorithm: Algorithm, secret: &[u8]) -> jsonwebtoken::errors::Result<HmacKey> {
        use hmac::Mac;
        let bad = |_| jsonwebtoken::errors::Error::from(ErrorKind::InvalidKeyFormat);
        Ok(match algorithm {
            Algorithm::HS256 => HmacKey::Sha256(Mac::new_from_slice(secret).map_err(bad)?),
            Algorithm::HS384 => HmacKey::Sha384(Mac::new_from_slice(secret).map_err(bad)?),
            Algorithm::HS512 => HmacKey::Sha512(Mac::new_from_slice(secret).map_err(bad)?),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        })
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            HmacKey::Sha256(_) => Algorithm::HS256,
            HmacKey::Sha384(_) => Algorithm::HS384,
            HmacKey::Sha512(_) => Algorithm::HS512,
        }
    }

    fn tag(&self, message: &[u8]) -> Vec<u8> {
        use hmac::Mac;
        match self {
            HmacKey::Sha256(mac) => mac
                .clone()
                .chain_update(message)
                .finalize()
                .into_bytes()
                .to_vec(),
            HmacKey::Sha384(mac) => mac
                .clone()
                .chain_update(message)
                .finalize()
                .into_bytes()
                .to_vec(),
            HmacKey::Sha512(mac) => mac
                .clone()
                .chain_update(message)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// Constant-time comparison (the `hmac` crate's).
    fn check(&self, message: &[u8], tag: &[u8]) -> bool {
        use hmac::Mac;
        match self {
            HmacKey::Sha256(mac) => mac.clone().chain_update(message).verify_slice(tag).is_ok(),
            HmacKey::Sha384(mac) => mac.clone().chain_update(message).verify_slice(tag).is_ok(),
            HmacKey::Sha512(mac) => mac.clone().chain_update(message).verify_slice(tag).is_ok(),
        }
    }
}

impl signature::Signer<Vec<u8>> for HmacKey {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.tag(message))
    }
}

impl JwtSigner for HmacKey {
    fn algorithm(&self) -> Algorithm {
        HmacKey::algorithm(self)
    }
}

impl signature::Verifier<Vec<u8>> for HmacKey {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> Result<(), signature::Error> {
        if self.check(message, tag) {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for HmacKey {
    fn algorithm(&self) -> Algorithm {
        HmacKey::algorithm(self)
    }
}

fn hmac_signer(
    algorithm: &Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    Ok(Box::new(HmacKey::new(
        *algorithm,
        key.try_get_hmac_secret()?,
    )?))
}

fn hmac_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(HmacKey::new(
        *algorithm,
        key.try_get_hmac_secret()?,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        name: &'a str,
        aud: serde_json::Value,
        iss: &'a str,
        exp: u64,
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    fn auth() -> Auth {
        let config = AuthConfig {
            jwt_secret: Some(Secret(SECRET.to_vec())),
            ..AuthConfig::default()
        };
        Auth::new(&config, [7; 32])
    }

    fn sign(claims: &Claims<'_>, alg: Algorithm, key: &[u8]) -> String {
        install_crypto();
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key))
            .expect("sign")
    }

    fn claims(exp: u64) -> Claims<'static> {
        Claims {
            sub: "user-1",
            name: "Alice",
            aud: serde_json::json!(["OpenWatchParty", "OpenWatchParty"]),
            iss: "Jellyfin",
            exp,
        }
    }

    /// The plugin's token (aud an array) is accepted; leeway 60 s; other algorithms, keys,
    /// audiences and issuers are refused.
    #[test]
    fn user_tokens() {
        let auth = auth();
        let now_s = NOW.0 / 1_000;
        let good = sign(&claims(now_s + 3_600), Algorithm::HS256, SECRET);
        assert_eq!(
            auth.verify_user(&good, NOW),
            Ok(Identity::Verified {
                subject: "user-1".into(),
                name: "Alice".into()
            })
        );
        let within = sign(&claims(now_s - 30), Algorithm::HS256, SECRET);
        assert!(auth.verify_user(&within, NOW).is_ok());
        let beyond = sign(&claims(now_s - 61), Algorithm::HS256, SECRET);
        assert_eq!(auth.verify_user(&beyond, NOW), Err(Refusal::Expired));
        let other_key = sign(&claims(now_s + 60), Algorithm::HS256, b"another key");
        assert_eq!(auth.verify_user(&other_key, NOW), Err(Refusal::Malformed));
        let hs512 = sign(&claims(now_s + 60), Algorithm::HS512, SECRET);
        assert_eq!(auth.verify_user(&hs512, NOW), Err(Refusal::Malformed));
        let mut wrong_aud = claims(now_s + 60);
        wrong_aud.aud = serde_json::json!("Other");
        let token = sign(&wrong_aud, Algorithm::HS256, SECRET);
        assert_eq!(auth.verify_user(&token, NOW), Err(Refusal::Claims));
        let mut wrong_iss = claims(now_s + 60);
        wrong_iss.iss = "Emby";
        let token = sign(&wrong_iss, Algorithm::HS256, SECRET);
        assert_eq!(auth.verify_user(&token, NOW), Err(Refusal::Claims));
        let big = "a".repeat(5_000);
        assert_eq!(auth.verify_user(&big, NOW), Err(Refusal::TooLarge));
    }

    /// An invite verifies for its room until it expires; a user token is no invite, and an
    /// invite is no user token, even under one key.
    #[test]
    fn invites() {
        let auth = auth();
        let room = RoomId(uuid::Uuid::from_u128(9));
        let now_s = NOW.0 / 1_000;
        let invite = auth.sign_invite(room, 3, now_s + 10);
        assert_eq!(
            auth.verify_invite(&invite, NOW),
            Pass::Valid { room, serial: 3 }
        );
        assert_eq!(
            auth.verify_invite(&invite, UnixMillis((now_s + 11) * 1_000)),
            Pass::Refused(ErrorCode::InviteExpired)
        );
        assert_eq!(auth.verify_user(&invite, NOW), Err(Refusal::Claims));
        let user = sign(&claims(now_s + 60), Algorithm::HS256, SECRET);
        assert_eq!(
            auth.verify_invite(&user, NOW),
            Pass::Refused(ErrorCode::InviteInvalid)
        );
        let forged = Auth::new(&AuthConfig::default(), [8; 32]).sign_invite(room, 3, now_s + 10);
        assert_eq!(
            auth.verify_invite(&forged, NOW),
            Pass::Refused(ErrorCode::InviteInvalid)
        );
    }
}
