//! A loopback Azure Key Vault: a real HTTP server on 127.0.0.1 that speaks the parts of Key
//! Vault's REST API (api-version 7.x) this crate uses, for the Azure SDK to talk to through
//! its real pipeline (challenge authentication, retries, error handling).
//!
//! - `GET /keys/{name}[/{version}]`, `POST /keys/{name}/{version}/wrapkey|unwrapkey`, with
//!   Key Vault's JSON shapes (JWK `n`/`e` base64url, `attributes` with Unix times and
//!   `recoveryLevel`, `{kid, value}` operation results).
//! - The bearer challenge: a request without a token gets 401 and a `WWW-Authenticate:
//!   Bearer authorization="…", resource="https://vault.azure.net"` header, as Key Vault
//!   answers a client's first request.
//! - Error statuses and bodies as Key Vault sends them (`{"error": {"code", "message",
//!   "innererror": {"code"}}}`): 401, 403 `ForbiddenByRbac` / `AccessDenied`, 403
//!   `KeyDisabled`, 404 `KeyNotFound`, 429 `Throttled` with `Retry-After`, 503.
//! - Switches: revoke access, disable or delete a key, throttle or fail the next requests.
//!
//! The vault's host name stays in every URL and kid (`https://{vault}.vault.azure.net/…`);
//! The SDK's HTTP client in tests is the crate's `LoopbackTransport` (feature
//! `insecure-loopback-vault`), sending those requests to this server.
#![allow(dead_code)]

pub mod entra;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{json, Value};

/// The token the double accepts.
pub const TOKEN: &str = "loopback-token-7f3a";

/// Where Key Vault's challenge sends clients for a token.
const AUTHORITY: &str = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001";

/// One key version in the double.
struct Version {
    id: String,
    private: OaepPrivateDecryptingKey,
    public: OaepPublicEncryptingKey,
    spki: Vec<u8>,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    kty: String,
    key_ops: Vec<String>,
    enabled: bool,
    not_before: Option<i64>,
    expires: Option<i64>,
}

/// How the double refuses access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// RBAC role assignment removed: 403 `ForbiddenByRbac`.
    RevokedRbac,
    /// Access policy removed: 403 `AccessDenied`.
    RevokedPolicy,
}

struct State {
    /// The resource the bearer challenge names: `https://vault.azure.net` or
    /// `https://managedhsm.azure.net`.
    resource: &'static str,
    keys: BTreeMap<String, Vec<Version>>,
    deleted: Vec<String>,
    recovery_level: String,
    access: Access,
    throttle_next: u32,
    fail_next: u32,
    malform_next: u32,
    stall_next: u32,
    stall_for: std::time::Duration,
    /// Run once, inside the next `unwrapkey` request, before it is answered.
    before_next_unwrap: Option<Box<dyn FnOnce() + Send>>,
    log: Vec<String>,
    /// Calls received, by operation: `challenge` (no token), `get`, `wrapKey`,
    /// `unwrapKey`, `other`; and `throttled`, the 429 answers among them. A request that
    /// repeats an earlier one's operation and `x-ms-client-request-id` is the HTTP stack
    /// sending the same call again (the SDK keeps the id across its retries; the HTTP
    /// client re-sends a request whose pooled connection closed under it), so it is counted
    /// once here and in full in `requests`.
    calls: BTreeMap<String, usize>,
    requests: usize,
    seen: std::collections::HashSet<(String, String)>,
    /// Like Key Vault's service limits: authenticated requests beyond this many in any
    /// one-second window are answered 429 with `Retry-After: 1`.
    rate_limit: Option<u32>,
    recent: std::collections::VecDeque<std::time::Instant>,
    /// Answers 503 to every request while set, recording when each new call arrived.
    down: bool,
    arrivals_while_down: Vec<(std::time::Instant, String)>,
    /// Faults drawn at random for each request, for soak runs.
    chaos: Option<Chaos>,
    /// The order of `seen`'s entries, oldest first: only the most recent are remembered.
    seen_order: std::collections::VecDeque<(String, String)>,
    keep_log: bool,
}

/// Faults the double injects at random (a fixed seed: runs repeat), each request drawing
/// once: `1 / throttle_one_in` are answered 429 with `Retry-After: 1`; `1 / burst_one_in`
/// start a burst of `burst_len` 503 answers (this one included); `1 / slow_one_in` are
/// answered after `slow_for`. Zero turns a fault off.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    pub throttle_one_in: u32,
    pub burst_one_in: u32,
    pub burst_len: u32,
    pub slow_one_in: u32,
    pub slow_for: std::time::Duration,
    pub seed: u64,
}

/// How many (operation, request id) pairs the double remembers to tell a re-sent request
/// from a new call: re-sends follow within seconds.
const SEEN_CAPACITY: usize = 2048;

/// A running loopback vault. Dropping it stops the server.
pub struct KeyVaultDouble {
    host: String,
    port: u16,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyVaultDouble {
    /// Starts a vault for `https://{vault}.vault.azure.net` on a free loopback port.
    pub fn start(vault: &str) -> Self {
        Self::start_on(
            format!("{vault}.vault.azure.net"),
            "https://vault.azure.net",
        )
    }

    /// Starts a Managed HSM for `https://{hsm}.managedhsm.azure.net`, whose bearer challenge
    /// names the resource `https://managedhsm.azure.net`.
    pub fn start_managed_hsm(hsm: &str) -> Self {
        Self::start_on(
            format!("{hsm}.managedhsm.azure.net"),
            "https://managedhsm.azure.net",
        )
    }

    fn start_on(host: String, resource: &'static str) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let state = Arc::new(Mutex::new(State {
            resource,
            keys: BTreeMap::new(),
            deleted: Vec::new(),
            recovery_level: "Recoverable".to_owned(),
            access: Access::Granted,
            throttle_next: 0,
            fail_next: 0,
            malform_next: 0,
            stall_next: 0,
            stall_for: std::time::Duration::ZERO,
            before_next_unwrap: None,
            log: Vec::new(),
            calls: BTreeMap::new(),
            requests: 0,
            seen: std::collections::HashSet::new(),
            rate_limit: None,
            recent: std::collections::VecDeque::new(),
            down: false,
            arrivals_while_down: Vec::new(),
            chaos: None,
            seen_order: std::collections::VecDeque::new(),
            keep_log: true,
        }));
        let thread = {
            let (server, state, host) = (Arc::clone(&server), Arc::clone(&state), host.clone());
            std::thread::spawn(move || {
                // A thread per request, as a real service answers concurrently: one stalled
                // request must not hold up the others.
                for request in server.incoming_requests() {
                    let (state, host) = (Arc::clone(&state), host.clone());
                    std::thread::spawn(move || serve(&host, &state, request));
                }
            })
        };
        Self {
            host,
            port,
            state,
            server,
            thread: Some(thread),
        }
    }

    /// `https://{vault}.vault.azure.net`.
    pub fn vault_url(&self) -> String {
        format!("https://{}", self.host)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The unversioned key URL of `name`.
    pub fn key_url(&self, name: &str) -> String {
        format!("{}/keys/{name}", self.vault_url())
    }

    /// Creates a key (or a new version of it, which becomes current) of `bits` bits, with
    /// wrapKey and unwrapKey allowed; returns the version.
    pub fn create_key(&self, name: &str, bits: usize) -> String {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => panic!("unsupported size {bits}"),
        };
        let private = PrivateDecryptingKey::generate(size).expect("generate");
        let spki = private.public_key().as_der().expect("public der");
        let (modulus, exponent) = rsa_components(spki.as_ref());
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!(
            "{:016x}{:016x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let version = Version {
            id: id.clone(),
            public: OaepPublicEncryptingKey::new(private.public_key()).expect("oaep public"),
            spki: spki.as_ref().to_vec(),
            private: OaepPrivateDecryptingKey::new(private).expect("oaep"),
            modulus,
            exponent,
            kty: "RSA-HSM".to_owned(),
            key_ops: ["encrypt", "decrypt", "wrapKey", "unwrapKey"]
                .map(str::to_owned)
                .to_vec(),
            enabled: true,
            not_before: None,
            expires: None,
        };
        lock(&self.state)
            .keys
            .entry(name.to_owned())
            .or_default()
            .push(version);
        id
    }

    /// The X.509 `SubjectPublicKeyInfo` DER of `name`/`version`.
    pub fn public_key_der(&self, name: &str, version: &str) -> Vec<u8> {
        lock(&self.state)
            .keys
            .get(name)
            .and_then(|versions| versions.iter().find(|v| v.id == version))
            .map(|v| v.spki.clone())
            .expect("no such key version")
    }

    /// The versioned kid of `name`/`version`.
    pub fn kid(&self, name: &str, version: &str) -> String {
        format!("{}/keys/{name}/{version}", self.vault_url())
    }

    pub fn set_access(&self, access: Access) {
        lock(&self.state).access = access;
    }

    /// Disables or enables every version of `name`.
    pub fn set_enabled(&self, name: &str, enabled: bool) {
        self.edit_versions(name, |v| v.enabled = enabled);
    }

    /// Enables or disables one version of `name`.
    pub fn set_version_enabled(&self, name: &str, version: &str, enabled: bool) {
        self.edit_versions(name, |v| {
            if v.id == version {
                v.enabled = enabled;
            }
        });
    }

    /// Removes one version of `name` (the others stay).
    pub fn delete_version(&self, name: &str, version: &str) {
        let mut state = lock(&self.state);
        if let Some(versions) = state.keys.get_mut(name) {
            versions.retain(|v| v.id != version);
        }
    }

    pub fn set_key_ops(&self, name: &str, ops: &[&str]) {
        self.edit_versions(name, |v| {
            v.key_ops = ops.iter().map(|s| (*s).to_owned()).collect()
        });
    }

    /// Makes the key's JWK say public exponent `e` (the private half is unchanged).
    pub fn set_public_exponent(&self, name: &str, e: &[u8]) {
        self.edit_versions(name, |v| v.exponent = e.to_vec());
    }

    pub fn set_kty(&self, name: &str, kty: &str) {
        self.edit_versions(name, |v| v.kty = kty.to_owned());
    }

    pub fn set_validity(&self, name: &str, not_before: Option<i64>, expires: Option<i64>) {
        self.edit_versions(name, |v| {
            v.not_before = not_before;
            v.expires = expires;
        });
    }

    pub fn set_recovery_level(&self, level: &str) {
        lock(&self.state).recovery_level = level.to_owned();
    }

    /// Deletes the key (soft delete: it is gone from the key API).
    pub fn delete_key(&self, name: &str) {
        let mut state = lock(&self.state);
        state.keys.remove(name);
        state.deleted.push(name.to_owned());
    }

    /// Answers the next `n` requests with 429 and `Retry-After: 1`.
    pub fn throttle_next(&self, n: u32) {
        lock(&self.state).throttle_next = n;
    }

    /// Answers the next `n` authenticated requests with 200 and a JSON body cut short.
    pub fn malform_next(&self, n: u32) {
        lock(&self.state).malform_next = n;
    }

    /// Answers the next `n` requests with 503.
    pub fn fail_next(&self, n: u32) {
        lock(&self.state).fail_next = n;
    }

    /// Holds each of the next `n` requests for `hold` and then drops it unanswered, like a
    /// vault that accepted the connection and hung. Logged as `METHOD /path stalled`.
    pub fn stall_next(&self, n: u32, hold: std::time::Duration) {
        let mut state = lock(&self.state);
        state.stall_next = n;
        state.stall_for = hold;
    }

    /// The requests served so far, as `METHOD /path status`.
    /// Runs `action` inside the next `unwrapkey` request, before the vault answers it: a
    /// scripted interleaving of "the key call is in flight" with whatever `action` does.
    pub fn before_next_unwrap(&self, action: impl FnOnce() + Send + 'static) {
        lock(&self.state).before_next_unwrap = Some(Box::new(action));
    }

    /// How many requests of `operation` the vault received: `challenge`, `get`, `wrapKey`,
    /// `unwrapKey`, `other`, or `throttled` for the 429 answers.
    pub fn calls(&self, operation: &str) -> usize {
        lock(&self.state).calls.get(operation).copied().unwrap_or(0)
    }

    /// Every count of [`KeyVaultDouble::calls`] that is not zero.
    pub fn all_calls(&self) -> BTreeMap<String, usize> {
        lock(&self.state).calls.clone()
    }

    /// Every HTTP request received, repeats included.
    pub fn requests(&self) -> usize {
        lock(&self.state).requests
    }

    /// [`KeyVaultDouble::all_calls`] without the unauthenticated challenge requests.
    pub fn authenticated_calls(&self) -> BTreeMap<String, usize> {
        let mut calls = self.all_calls();
        calls.remove("challenge");
        calls
    }

    /// Forgets the counts.
    pub fn reset_calls(&self) {
        let mut state = lock(&self.state);
        state.calls.clear();
        state.requests = 0;
    }

    /// Takes the vault down (every request answered 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        lock(&self.state).down = down;
    }

    /// When each new call (not a re-sent request) arrived while the vault was down, with
    /// its operation.
    pub fn arrivals_while_down(&self) -> Vec<(std::time::Instant, String)> {
        lock(&self.state).arrivals_while_down.clone()
    }

    /// Injects random faults from now on.
    pub fn set_chaos(&self, chaos: Chaos) {
        lock(&self.state).chaos = Some(chaos);
    }

    /// Keeps the request log (the default) or not: a long run keeps its memory flat.
    pub fn keep_log(&self, keep: bool) {
        lock(&self.state).keep_log = keep;
    }

    /// Answers 429 to authenticated requests beyond `per_second` in any one-second window.
    pub fn limit_rate(&self, per_second: u32) {
        lock(&self.state).rate_limit = Some(per_second);
    }

    pub fn log(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }

    pub fn clear_log(&self) {
        lock(&self.state).log.clear();
    }

    fn edit_versions(&self, name: &str, edit: impl Fn(&mut Version)) {
        let mut state = lock(&self.state);
        for version in state.keys.get_mut(name).into_iter().flatten() {
            edit(version);
        }
    }
}

impl Drop for KeyVaultDouble {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// (n, e) of an RSA `SubjectPublicKeyInfo`.
fn rsa_components(spki: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use pkcs8::der::Decode;
    let info = pkcs8::spki::SubjectPublicKeyInfoRef::from_der(spki).expect("spki");
    let key = pkcs1::RsaPublicKey::from_der(info.subject_public_key.raw_bytes()).expect("pkcs1");
    (
        key.modulus.as_bytes().to_vec(),
        key.public_exponent.as_bytes().to_vec(),
    )
}

struct Reply {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
    /// Sent instead of `body` when set: bytes that are not JSON.
    raw_body: Option<String>,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body,
        headers: Vec::new(),
        raw_body: None,
    }
}

fn error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Reply {
    let mut error = json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        error["innererror"] = json!({ "code": inner });
    }
    reply(status, json!({ "error": error }))
}

fn serve(host: &str, state: &Mutex<State>, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let path = url
        .split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned();
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_owned());
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let operation = if authorization.is_none() {
        "challenge"
    } else if method == "GET" && path.starts_with("/keys/") {
        "get"
    } else if method == "POST" && path.ends_with("/unwrapkey") {
        "unwrapKey"
    } else if method == "POST" && path.ends_with("/wrapkey") {
        "wrapKey"
    } else {
        "other"
    };
    let call_id = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("x-ms-client-request-id"))
        .map(|h| h.value.as_str().to_owned());
    let injected = {
        let mut state = lock(state);
        state.requests += 1;
        let new_call = call_id.is_none_or(|id| {
            let entry = (operation.to_owned(), id);
            let new = state.seen.insert(entry.clone());
            if new {
                state.seen_order.push_back(entry);
                if state.seen_order.len() > SEEN_CAPACITY {
                    if let Some(oldest) = state.seen_order.pop_front() {
                        state.seen.remove(&oldest);
                    }
                }
            }
            new
        });
        if new_call {
            *state.calls.entry(operation.to_owned()).or_default() += 1;
            if state.down {
                state
                    .arrivals_while_down
                    .push((std::time::Instant::now(), operation.to_owned()));
            }
        }
        injected_fault(&mut state, authorization.is_some())
    };
    if let Some(Fault::Slow(hold)) = injected {
        std::thread::sleep(hold);
    }
    let stall = {
        let mut state = lock(state);
        (state.stall_next > 0).then(|| {
            state.stall_next -= 1;
            state.log.push(format!("{method} {path} stalled"));
            state.stall_for
        })
    };
    if let Some(hold) = stall {
        std::thread::sleep(hold);
        return;
    }

    if authorization.is_some() && method == "POST" && path.ends_with("/unwrapkey") {
        let action = lock(state).before_next_unwrap.take();
        if let Some(action) = action {
            action();
        }
    }
    let reply = match injected {
        Some(Fault::Down | Fault::Unavailable) => error(
            503,
            "ServiceUnavailable",
            "The service is unavailable.",
            None,
        ),
        Some(Fault::Throttled) => {
            let mut throttled = error(429, "Throttled", "Request was not processed.", None);
            throttled.headers.push(("Retry-After", "1".to_owned()));
            throttled
        }
        Some(Fault::Slow(_)) | None => {
            respond(host, state, &method, &path, authorization.as_deref(), &body)
        }
    };
    {
        let mut state = lock(state);
        if state.keep_log {
            state.log.push(format!("{method} {path} {}", reply.status));
        }
        if reply.status == 429 {
            *state.calls.entry("throttled".to_owned()).or_default() += 1;
        }
    }
    let mut response =
        tiny_http::Response::from_string(reply.raw_body.unwrap_or_else(|| reply.body.to_string()))
            .with_status_code(reply.status)
            .with_header(header("Content-Type", "application/json; charset=utf-8"))
            .with_header(header("x-ms-keyvault-service-version", "1.9.1336.1"));
    for (name, value) in reply.headers {
        response = response.with_header(header(name, &value));
    }
    let _ = request.respond(response);
}

enum Fault {
    Down,
    Unavailable,
    Throttled,
    Slow(std::time::Duration),
}

/// The fault, if any, this request meets: the vault is down, or (for authenticated
/// requests, outside a burst already under way) the chaos draws.
fn injected_fault(state: &mut State, authenticated: bool) -> Option<Fault> {
    if state.down {
        return Some(Fault::Down);
    }
    if !authenticated || state.fail_next > 0 {
        return None;
    }
    let chaos = state.chaos.as_mut()?;
    let mut draw = |one_in: u32| {
        // xorshift64*: the same faults in the same order on every run.
        chaos.seed ^= chaos.seed >> 12;
        chaos.seed ^= chaos.seed << 25;
        chaos.seed ^= chaos.seed >> 27;
        let value = chaos.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        one_in > 0 && value % u64::from(one_in) == 0
    };
    let (burst_one_in, throttle_one_in, slow_one_in) =
        (chaos.burst_one_in, chaos.throttle_one_in, chaos.slow_one_in);
    let (burst, throttle, slow) = (draw(burst_one_in), draw(throttle_one_in), draw(slow_one_in));
    let (burst_len, slow_for) = (chaos.burst_len, chaos.slow_for);
    if burst {
        // This answer is the burst's first; `respond` answers the rest.
        state.fail_next = burst_len.saturating_sub(1);
        Some(Fault::Unavailable)
    } else if throttle {
        Some(Fault::Throttled)
    } else if slow {
        Some(Fault::Slow(slow_for))
    } else {
        None
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("header")
}

fn respond(
    host: &str,
    state: &Mutex<State>,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Reply {
    let resource = lock(state).resource;
    match authorization {
        None => {
            let mut challenge = error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                None,
            );
            challenge.headers.push((
                "WWW-Authenticate",
                format!(r#"Bearer authorization="{AUTHORITY}", resource="{resource}""#),
            ));
            return challenge;
        }
        Some(auth) if auth != format!("Bearer {TOKEN}") => {
            // As Key Vault does, the refusal carries the challenge again: which tenant's
            // tokens this vault takes.
            let mut rejected = error(401, "Unauthorized", "AKV10032: Invalid issuer.", None);
            rejected.headers.push((
                "WWW-Authenticate",
                format!(r#"Bearer authorization="{AUTHORITY}", resource="{resource}""#),
            ));
            return rejected;
        }
        Some(_) => {}
    }
    let mut state = lock(state);
    if let Some(limit) = state.rate_limit {
        let now = std::time::Instant::now();
        while state
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1))
        {
            state.recent.pop_front();
        }
        if state.recent.len() >= limit as usize {
            let mut throttled = error(
                429,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                None,
            );
            throttled.headers.push(("Retry-After", "1".to_owned()));
            return throttled;
        }
        state.recent.push_back(now);
    }
    if state.throttle_next > 0 {
        state.throttle_next -= 1;
        let mut throttled = error(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
            None,
        );
        throttled.headers.push(("Retry-After", "1".to_owned()));
        return throttled;
    }
    if state.malform_next > 0 {
        state.malform_next -= 1;
        return Reply {
            status: 200,
            body: Value::Null,
            headers: Vec::new(),
            raw_body: Some(r#"{"key": {"kid": "https://"#.to_owned()),
        };
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        return error(
            503,
            "ServiceUnavailable",
            "The service is currently unavailable.",
            None,
        );
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (name, version, operation) = match (method, segments.as_slice()) {
        ("GET", ["keys", name]) => (*name, None, "get"),
        ("GET", ["keys", name, version]) => (*name, Some(*version), "get"),
        ("POST", ["keys", name, version, op]) if *op == "wrapkey" || *op == "unwrapkey" => (
            *name,
            Some(*version),
            if *op == "wrapkey" {
                "wrapKey"
            } else {
                "unwrapKey"
            },
        ),
        _ => {
            return error(
                400,
                "BadParameter",
                "Method or path not supported by the double.",
                None,
            )
        }
    };
    let action = match operation {
        "get" => "read",
        "wrapKey" => "wrap/action",
        _ => "unwrap/action",
    };
    match state.access {
        Access::Granted => {}
        Access::RevokedRbac => {
            return error(
                403,
                "Forbidden",
                &format!(
                    "Caller is not authorized to perform action on resource.\r\nAction: \
                     'Microsoft.KeyVault/vaults/keys/{action}'\r\nAssignment: (not found)\r\n\
                     DecisionReason: 'DeniedWithNoValidRBAC'"
                ),
                Some("ForbiddenByRbac"),
            )
        }
        Access::RevokedPolicy => {
            return error(
                403,
                "Forbidden",
                &format!(
                    "The user, group or application 'appid=00000000-0000-0000-0000-000000000002' \
                     does not have keys {} permission on key vault '{host}'.",
                    if operation == "get" { "get" } else { operation }
                ),
                Some("AccessDenied"),
            )
        }
    }
    let recovery_level = state.recovery_level.clone();
    let not_found = || {
        error(
            404,
            "KeyNotFound",
            &format!(
                "A key with (name/id) {name}{} was not found in this key vault. If you recently \
                 deleted this key you may be able to recover it using the correct recovery \
                 command. For help resolving this issue, please see \
                 https://go.microsoft.com/fwlink/?linkid=2125182",
                version.map(|v| format!("/{v}")).unwrap_or_default()
            ),
            None,
        )
    };
    let Some(versions) = state.keys.get(name) else {
        return not_found();
    };
    let found = match version {
        Some(v) => versions.iter().find(|k| k.id == v),
        None => versions.last(),
    };
    let Some(key) = found else {
        return not_found();
    };
    let kid = format!("https://{host}/keys/{name}/{}", key.id);
    if operation == "get" {
        return reply(
            200,
            json!({
                "key": {
                    "kid": kid,
                    "kty": key.kty,
                    "key_ops": key.key_ops,
                    "n": Base64UrlUnpadded::encode_string(&key.modulus),
                    "e": Base64UrlUnpadded::encode_string(&key.exponent),
                },
                "attributes": {
                    "enabled": key.enabled,
                    "nbf": key.not_before,
                    "exp": key.expires,
                    "created": 1_700_000_000,
                    "updated": 1_700_000_000,
                    "recoveryLevel": recovery_level,
                    "recoverableDays": 90,
                    "exportable": false,
                },
                "tags": {}
            }),
        );
    }
    // Key Vault refuses the private-key operations on a disabled key and still serves the
    // public ones (encrypt, verify, wrapKey), as reported against the live service in
    // Azure/azure-sdk-for-python#45342; so a disabled key stops unwrapping at once, and
    // stops new wraps only through the wrapper's own key check.
    if !key.enabled && operation == "unwrapKey" {
        return error(
            403,
            "Forbidden",
            &format!("Operation {operation} is not allowed on a disabled key."),
            Some("KeyDisabled"),
        );
    }
    if !key.key_ops.iter().any(|op| op == operation) {
        return error(
            403,
            "Forbidden",
            &format!("Operation {operation} is not permitted on this key."),
            Some("KeyOperationForbidden"),
        );
    }
    let parameters: Value = serde_json::from_slice(body).unwrap_or_default();
    let value = parameters["value"]
        .as_str()
        .and_then(|v| Base64UrlUnpadded::decode_vec(v.trim_end_matches('=')).ok());
    let algorithm = parameters["alg"].as_str().unwrap_or_default();
    let oaep = match algorithm {
        "RSA-OAEP-256" => &OAEP_SHA256_MGF1SHA256,
        "RSA-OAEP" => &OAEP_SHA1_MGF1SHA1,
        _ => {
            return error(
                400,
                "BadParameter",
                &format!("Invalid algorithm '{algorithm}' for this operation."),
                None,
            )
        }
    };
    let Some(value) = value else {
        return error(400, "BadParameter", "Property 'value' is required.", None);
    };
    let result = if operation == "wrapKey" {
        let mut out = vec![0u8; key.public.ciphertext_size()];
        key.public
            .encrypt(oaep, &value, &mut out, None)
            .map(|c| c.to_vec())
            .ok()
    } else {
        let mut out = vec![0u8; key.private.min_output_size()];
        key.private
            .decrypt(oaep, &value, &mut out, None)
            .map(|p| p.to_vec())
            .ok()
    };
    match result {
        Some(bytes) => reply(
            200,
            json!({ "kid": kid, "value": Base64UrlUnpadded::encode_string(&bytes) }),
        ),
        None => error(400, "BadParameter", "Bad Request", None),
    }
}

/// The Azure SDK's HTTP client for tests, reaching these doubles by their vault hosts.
pub fn transport(
    doubles: &[&KeyVaultDouble],
) -> Arc<cmk_envelope::azure::loopback::LoopbackTransport> {
    cmk_envelope::azure::loopback::LoopbackTransport::new(
        doubles.iter().map(|d| (d.host().to_owned(), d.port())),
    )
}

/// Options whose transport reaches the doubles, with quick retries so tests stay short.
pub fn quick_options(doubles: &[&KeyVaultDouble]) -> cmk_envelope::azure::KeyVaultOptions {
    use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
    let client = ClientOptions {
        transport: Some(Transport::new(transport(doubles))),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(10),
            max_retries: 3,
            max_total_elapsed: azure_core::time::Duration::seconds(20),
            max_delay: azure_core::time::Duration::milliseconds(50),
        }),
        ..ClientOptions::default()
    };
    cmk_envelope::azure::KeyVaultOptions::default().client_options(client)
}

/// The key `name` of `vault`, as a wrapper that connects on first use (through the
/// transport `options` carry) with the double's token.
pub fn lazy_key(
    vault: &KeyVaultDouble,
    name: &str,
    options: cmk_envelope::azure::KeyVaultOptions,
) -> Arc<dyn cmk_envelope::KeyWrapper> {
    Arc::new(
        cmk_envelope::azure::KeyVaultWrapper::connect_lazily(
            &vault.key_url(name),
            cmk_envelope::azure::loopback::FixedTokenCredential::new(TOKEN),
            options,
        )
        .expect("client"),
    )
}

/// Expected call counts, `(operation, n)`, as [`KeyVaultDouble::all_calls`] reports them
/// (operations with no call are left out).
pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| ((*op).to_owned(), *n))
        .collect()
}
