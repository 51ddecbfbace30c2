//! A loopback Entra ID token endpoint (`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`)
//! and an Azure Pipelines OIDC endpoint (`https://dev.azure.com/…/oidctoken`), for the
//! Azure SDK's real service-principal credentials to log in against.
//!
//! - Client secret: `client_secret` must be the registered one.
//! - Client certificate: `client_assertion` must be a JWT whose `x5t` is the registered
//!   certificate's SHA-1 thumbprint, signed RS256 by its key, for this endpoint and client.
//! - Azure Pipelines: the OIDC endpoint hands out an OIDC token for the registered service
//!   connection to a request bearing the system access token; the token endpoint takes that
//!   OIDC token as the `client_assertion`.
//!
//! Answers are Entra's shapes: `{token_type, expires_in, access_token}` or
//! `{error, error_description, error_codes}` with 400/401. Secrets are never logged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use serde_json::{json, Value};

/// The host the credentials ask for tokens.
pub const LOGIN_HOST: &str = "login.microsoftonline.com";
/// The host of the Azure Pipelines OIDC endpoint.
pub const PIPELINES_HOST: &str = "dev.azure.com";
/// The OIDC endpoint's path.
pub const OIDC_PATH: &str =
    "/contoso/ledger/_apis/distributedtask/hubs/build/plans/p1/jobs/j1/oidctoken";

enum Proof {
    Secret(String),
    Certificate {
        thumbprint: String,
        public_key: openssl::pkey::PKey<openssl::pkey::Public>,
    },
    Pipelines {
        service_connection: String,
        system_token: String,
        oidc_token: String,
    },
}

struct State {
    tenant: String,
    /// What each client id proves itself with.
    clients: BTreeMap<String, Proof>,
    /// The token handed out on success (the one the vault double takes).
    access_token: String,
    log: Vec<String>,
}

/// A running endpoint. Dropping it stops the server.
pub struct EntraDouble {
    port: u16,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EntraDouble {
    /// Has `cmd` (a `cmke`) log in with `--azure-credential client-secret` as `client` of
    /// `tenant` with `secret`, at this double (reached through the loopback transport).
    pub fn log_in_with_secret(
        &self,
        cmd: &mut assert_cmd::Command,
        tenant: &str,
        client: &str,
        secret: &str,
    ) {
        cmd.args(["--azure-credential", "client-secret"])
            .env("CMKE_INSECURE_LOOPBACK_VAULT", self.routes())
            .env("AZURE_TENANT_ID", tenant)
            .env("AZURE_CLIENT_ID", client)
            .env("AZURE_CLIENT_SECRET", secret)
            .env_remove("AZURE_CLIENT_SECRET_FILE");
    }

    /// Starts the endpoint for `tenant`, handing out `access_token`.
    pub fn start(tenant: &str, access_token: &str) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let state = Arc::new(Mutex::new(State {
            tenant: tenant.to_owned(),
            clients: BTreeMap::new(),
            access_token: access_token.to_owned(),
            log: Vec::new(),
        }));
        {
            let (server, state) = (Arc::clone(&server), Arc::clone(&state));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    serve(&state, request);
                }
            });
        }
        Self {
            port,
            state,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `host=port` pairs for `CMKE_INSECURE_LOOPBACK_VAULT`.
    pub fn routes(&self) -> String {
        format!(
            "{LOGIN_HOST}={port},{PIPELINES_HOST}={port}",
            port = self.port
        )
    }

    pub fn register_secret(&self, client_id: &str, secret: &str) {
        lock(&self.state)
            .clients
            .insert(client_id.to_owned(), Proof::Secret(secret.to_owned()));
    }

    /// Registers the certificate (DER) and its public key for `client_id`.
    pub fn register_certificate(&self, client_id: &str, certificate: &openssl::x509::X509) {
        let der = certificate.to_der().expect("der");
        let thumbprint = Base64::encode_string(&openssl::sha::sha1(&der));
        lock(&self.state).clients.insert(
            client_id.to_owned(),
            Proof::Certificate {
                thumbprint,
                public_key: certificate.public_key().expect("public key"),
            },
        );
    }

    pub fn register_pipelines(
        &self,
        client_id: &str,
        service_connection: &str,
        system_token: &str,
    ) {
        lock(&self.state).clients.insert(
            client_id.to_owned(),
            Proof::Pipelines {
                service_connection: service_connection.to_owned(),
                system_token: system_token.to_owned(),
                oidc_token: format!("oidc-{service_connection}-4f1d"),
            },
        );
    }

    /// The requests served, as `PATH STATUS [client_id]`.
    pub fn log(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }
}

impl Drop for EntraDouble {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn serve(state: &Mutex<State>, mut request: tiny_http::Request) {
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let query = request.url().split_once('?').map(|(_, q)| q.to_owned());
    let bearer = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().trim_start_matches("Bearer ").to_owned());
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let (status, answer, client) = {
        let state = lock(state);
        if path == OIDC_PATH {
            oidc(&state, query.as_deref(), bearer.as_deref())
        } else if path == format!("/{}/oauth2/v2.0/token", state.tenant) {
            token(&state, &form)
        } else {
            (
                400,
                entra_error("invalid_tenant", 90002, "AADSTS90002: Tenant not found."),
                None,
            )
        }
    };
    lock(state)
        .log
        .push(format!("{path} {status} {}", client.unwrap_or_default()));
    let response = tiny_http::Response::from_string(answer.to_string())
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes("Content-Type", "application/json; charset=utf-8")
                .expect("header"),
        );
    let _ = request.respond(response);
}

fn entra_error(error: &str, code: u32, description: &str) -> Value {
    json!({ "error": error, "error_description": description, "error_codes": [code] })
}

fn oidc(state: &State, query: Option<&str>, bearer: Option<&str>) -> (u16, Value, Option<String>) {
    let connection = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect::<BTreeMap<_, _>>()
        })
        .and_then(|q| q.get("serviceConnectionId").cloned());
    for (client, proof) in &state.clients {
        if let Proof::Pipelines {
            service_connection,
            system_token,
            oidc_token,
        } = proof
        {
            if connection.as_deref() == Some(service_connection.as_str())
                && bearer == Some(system_token.as_str())
            {
                return (
                    200,
                    json!({ "oidcToken": oidc_token }),
                    Some(client.clone()),
                );
            }
        }
    }
    (401, json!({ "message": "TF400813: not authorized" }), None)
}

fn token(state: &State, form: &BTreeMap<String, String>) -> (u16, Value, Option<String>) {
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            400,
            entra_error("unsupported_grant_type", 70003, "AADSTS70003"),
            Some(client_id),
        );
    }
    let Some(proof) = state.clients.get(&client_id) else {
        return (
            400,
            entra_error(
                "unauthorized_client",
                700016,
                "AADSTS700016: Application not found in the directory.",
            ),
            Some(client_id),
        );
    };
    let endpoint = format!("https://{LOGIN_HOST}/{}/oauth2/v2.0/token", state.tenant);
    let proven = match proof {
        Proof::Secret(secret) => form.get("client_secret") == Some(secret),
        Proof::Certificate {
            thumbprint,
            public_key,
        } => form
            .get("client_assertion")
            .is_some_and(|jwt| assertion_holds(jwt, thumbprint, public_key, &client_id, &endpoint)),
        Proof::Pipelines { oidc_token, .. } => form.get("client_assertion") == Some(oidc_token),
    };
    if !proven {
        return (
            401,
            entra_error(
                "invalid_client",
                7000215,
                "AADSTS7000215: Invalid client secret provided.",
            ),
            Some(client_id),
        );
    }
    (
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": state.access_token,
        }),
        Some(client_id),
    )
}

/// A client assertion: RS256 by the certificate's key, naming the certificate, this client
/// and this endpoint, not expired.
fn assertion_holds(
    jwt: &str,
    thumbprint: &str,
    public_key: &openssl::pkey::PKey<openssl::pkey::Public>,
    client_id: &str,
    endpoint: &str,
) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return false;
    };
    let decode = |part: &str| Base64UrlUnpadded::decode_vec(part.trim_end_matches('=')).ok();
    let json = |part: &str| decode(part).and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let (Some(header), Some(claims), Some(signature)) =
        (json(header), json(payload), decode(signature))
    else {
        return false;
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    let verified = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), public_key)
        .and_then(|mut v| {
            v.update(signed.as_bytes())?;
            v.verify(&signature)
        })
        .unwrap_or(false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    verified
        && header["alg"] == "RS256"
        && header["x5t"] == thumbprint
        && claims["iss"] == client_id
        && claims["sub"] == client_id
        && claims["aud"] == endpoint
        && claims["exp"].as_i64().is_some_and(|exp| exp > now)
}
