//! Who may use the gateway. Every web page the node's user visits can send requests to
//! `127.0.0.1`, so the gateway checks every request before it reaches a handler:
//!
//! 1. **Host.** The `Host` header must name the gateway itself (`127.0.0.1:PORT`,
//!    `localhost:PORT`, `[::1]:PORT`, or the bound address): a page that rebinds its own
//!    domain name to 127.0.0.1 sends its own name, and is refused.
//! 2. **Origin.** A request a browser sends on behalf of another page says so: an `Origin`
//!    other than the gateway's own, or `Sec-Fetch-Site` other than `same-origin` or `none`
//!    (a page on another 127.0.0.1 port is *same-site* but not *same-origin*, and is refused
//!    too). Requests without these headers (the CLI, curl) pass this check.
//! 3. **Credentials.** The node's API token (`private/api_auth_token`, which the CLI reads)
//!    as `Authorization: Bearer TOKEN`, or a browser session: a `SameSite=Strict`,
//!    `HttpOnly` cookie given in exchange for a one-time login code (`cairn webopen`).
//!
//! Secrets are compared in constant time; sessions and codes are bounded in number and life.

use crate::api;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_codec::base32;
use rand::rngs::OsRng;
use rand::RngCore;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The cookie that carries a browser session.
pub const SESSION_COOKIE: &str = "cairn_session";
/// How long a one-time login code may wait to be used.
pub const LOGIN_CODE_LIFETIME: Duration = Duration::from_secs(300);
/// How long a browser session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most login codes waiting, and the most sessions, at once (the oldest go first).
const MAX_CODES: usize = 16;
const MAX_SESSIONS: usize = 64;

/// The gateway's credentials and where it may be reached.
pub struct Auth {
    token: String,
    /// The `host:port` values a request's `Host` may carry.
    hosts: Vec<String>,
    /// Login codes and sessions: secret -> when it stops being good.
    codes: Mutex<Secrets>,
    sessions: Mutex<Secrets>,
}

/// Live secrets: each with its expiry and its place in the order they were made.
#[derive(Default)]
struct Secrets {
    live: BTreeMap<String, (Instant, u64)>,
    made: u64,
}

/// Why a request was turned away.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` header does not name this gateway.
    ForeignHost(String),
    /// A browser sent it for a page of another origin.
    CrossOrigin(String),
    /// No token and no session.
    NoCredentials,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::ForeignHost(_) | Refusal::CrossOrigin(_) => StatusCode::FORBIDDEN,
            Refusal::NoCredentials => StatusCode::UNAUTHORIZED,
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::ForeignHost(host) => format!(
                "refused: this gateway answers only to its own address, and the request was \
                 for {host:?} (a web page rebinding its name to this machine looks like this)"
            ),
            Refusal::CrossOrigin(origin) => format!(
                "refused: the request came from a page of another origin ({origin}); only \
                 the node's own pages and the CLI may use its gateway"
            ),
            Refusal::NoCredentials => "refused: this request needs the node's API token \
                 (`Authorization: Bearer ...`, which the CLI reads from \
                 private/api_auth_token) or a browser session (`cairn -d DIR webopen` prints \
                 a one-time login URL)"
                .to_owned(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = api::Failure {
            error: self.message(),
        };
        (self.status(), Json(body)).into_response()
    }
}

impl Auth {
    /// Credentials for a gateway bound to `bound`, with the API token `token`.
    pub fn new(token: String, bound: SocketAddr) -> Self {
        let port = bound.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        if !bound.ip().is_loopback() && !bound.ip().is_unspecified() {
            hosts.push(bound.to_string());
        }
        Auth {
            token,
            hosts,
            codes: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    /// The origins (`http://host:port`) of the gateway's own pages.
    fn own_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
    }

    /// Checks where a request comes from: its `Host`, `Origin` and `Sec-Fetch-Site`.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = text(headers, header::HOST).unwrap_or_default();
        if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Err(Refusal::ForeignHost(host.to_owned()));
        }
        if let Some(origin) = text(headers, header::ORIGIN) {
            if !self.own_origin(origin) {
                return Err(Refusal::CrossOrigin(origin.to_owned()));
            }
        }
        match text(headers, "sec-fetch-site") {
            None | Some("same-origin") | Some("none") => Ok(()),
            Some(other) => Err(Refusal::CrossOrigin(format!("Sec-Fetch-Site: {other}"))),
        }
    }

    /// Checks a request's credentials: the API token, or a live session cookie.
    pub fn check_credentials(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let bearer = text(headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|given| same_secret(given.trim(), &self.token)) {
            return Ok(());
        }
        let session = cookie(headers, SESSION_COOKIE);
        if session.is_some_and(|id| live(&self.sessions, id, false)) {
            return Ok(());
        }
        Err(Refusal::NoCredentials)
    }

    /// A new one-time login code.
    pub fn new_login_code(&self) -> String {
        remember(&self.codes, MAX_CODES, LOGIN_CODE_LIFETIME)
    }

    /// Trades a login code (used once) for a new session: its `Set-Cookie` header value.
    pub fn log_in(&self, code: &str) -> Option<HeaderValue> {
        if !live(&self.codes, code, true) {
            return None;
        }
        let session = remember(&self.sessions, MAX_SESSIONS, SESSION_LIFETIME);
        let cookie = format!(
            "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            SESSION_LIFETIME.as_secs()
        );
        HeaderValue::from_str(&cookie).ok()
    }
}

/// A header's value as text, if it is there and is text.
fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn same_secret(given: &str, secret: &str) -> bool {
    given.len() == secret.len() && bool::from(given.as_bytes().ct_eq(secret.as_bytes()))
}

/// A fresh random secret, remembered in `table` until `lifetime` from now; the oldest is
/// forgotten when the table is full.
fn remember(table: &Mutex<Secrets>, max: usize, lifetime: Duration) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = base32::encode(&bytes);
    let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    table.live.retain(|_, (until, _)| *until > now);
    if table.live.len() >= max {
        let oldest = table.live.iter().min_by_key(|(_, (_, made))| *made);
        if let Some(oldest) = oldest.map(|(k, _)| k.clone()) {
            table.live.remove(&oldest);
        }
    }
    table.made += 1;
    let made = table.made;
    table.live.insert(secret.clone(), (now + lifetime, made));
    debug_assert!(table.live.len() <= max);
    secret
}

/// Whether `secret` is in `table` and not expired (compared in constant time); with `spend`,
/// it is used up.
fn live(table: &Mutex<Secrets>, secret: &str, spend: bool) -> bool {
    let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    table.live.retain(|_, (until, _)| *until > now);
    let found = table.live.keys().find(|k| same_secret(secret, k)).cloned();
    match found {
        Some(key) if spend => table.live.remove(&key).is_some(),
        Some(_) => true,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new("tok3n".into(), "127.0.0.1:8080".parse().unwrap())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_the_gateways_own_host_is_served() {
        let a = auth();
        assert_eq!(
            a.check_origin(&headers(&[("host", "127.0.0.1:8080")])),
            Ok(())
        );
        assert_eq!(
            a.check_origin(&headers(&[("host", "LOCALHOST:8080")])),
            Ok(())
        );
        for host in ["evil.example", "evil.example:8080", "127.0.0.1:8081", ""] {
            let refused = a.check_origin(&headers(&[("host", host)]));
            assert!(matches!(refused, Err(Refusal::ForeignHost(_))), "{host}");
        }
        assert!(a.check_origin(&HeaderMap::new()).is_err(), "no Host at all");
    }

    #[test]
    fn pages_of_other_origins_are_refused_even_on_the_same_machine() {
        let a = auth();
        let host = ("host", "127.0.0.1:8080");
        let ok = [
            vec![host, ("origin", "http://127.0.0.1:8080")],
            vec![host, ("sec-fetch-site", "same-origin")],
            vec![host, ("sec-fetch-site", "none")],
        ];
        for h in ok {
            assert_eq!(a.check_origin(&headers(&h)), Ok(()), "{h:?}");
        }
        let refused = [
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "http://127.0.0.1:9999")],
            vec![host, ("origin", "null")],
            vec![host, ("sec-fetch-site", "same-site")],
            vec![host, ("sec-fetch-site", "cross-site")],
        ];
        for h in refused {
            let result = a.check_origin(&headers(&h));
            assert!(matches!(result, Err(Refusal::CrossOrigin(_))), "{h:?}");
        }
    }

    #[test]
    fn the_token_or_a_session_from_a_one_time_code_lets_a_request_in() {
        let a = auth();
        assert_eq!(
            a.check_credentials(&HeaderMap::new()),
            Err(Refusal::NoCredentials)
        );
        let good = headers(&[("authorization", "Bearer tok3n")]);
        assert_eq!(a.check_credentials(&good), Ok(()));
        for wrong in ["Bearer tok3", "Bearer tok3nn", "tok3n", "Basic tok3n"] {
            let h = headers(&[("authorization", wrong)]);
            assert!(a.check_credentials(&h).is_err(), "{wrong}");
        }
        let code = a.new_login_code();
        assert!(a.log_in("not the code").is_none());
        let set_cookie = a.log_in(&code).expect("the code logs in once");
        assert!(a.log_in(&code).is_none(), "a code is good once");
        let set_cookie = set_cookie.to_str().unwrap().to_owned();
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
        let session = set_cookie
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_owned())
            .unwrap();
        let with_cookie = headers(&[("cookie", &format!("other=1; {SESSION_COOKIE}={session}"))]);
        assert_eq!(a.check_credentials(&with_cookie), Ok(()));
        let forged = headers(&[("cookie", &format!("{SESSION_COOKIE}={code}"))]);
        assert!(
            a.check_credentials(&forged).is_err(),
            "a spent code is not a session"
        );
    }

    #[test]
    fn codes_and_sessions_are_bounded() {
        let a = auth();
        let codes: Vec<String> = (0..MAX_CODES + 5).map(|_| a.new_login_code()).collect();
        assert!(a.codes.lock().unwrap().live.len() <= MAX_CODES);
        assert!(
            a.log_in(codes.last().unwrap()).is_some(),
            "the newest is kept"
        );
    }
}
