//! **Insecure, for tests only** (feature `insecure-loopback-vault`): an HTTP transport that
//! sends Key Vault requests for chosen vault hosts to plain HTTP on 127.0.0.1, and a
//! credential that hands out a fixed token.
//!
//! It exists so that `cmke` and the test suite can run the Azure SDK's real pipeline
//! against a local Key Vault double. Requests keep their `https://{vault}…` URLs (kids, the
//! challenge check and the SDK's policies see production values) and only the socket goes
//! to loopback. Never enable this feature in a build that handles real keys: whoever sets
//! the environment of such a `cmke` receives its bearer tokens in clear on a local port.

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{AsyncRawResponse, HttpClient, Request};

/// Sends requests for each mapped vault host to `http://127.0.0.1:{port}`.
#[derive(Debug)]
pub struct LoopbackTransport {
    inner: Arc<dyn HttpClient>,
    ports: BTreeMap<String, u16>,
}

impl LoopbackTransport {
    /// Maps each `(host, port)`; requests for any other host fail to connect.
    #[must_use]
    pub fn new(ports: impl IntoIterator<Item = (String, u16)>) -> Arc<Self> {
        // A new connection per request: the doubles behind this are small test servers,
        // and a kept-alive connection they have let go of would hang a request until its
        // try timed out.
        let inner: Arc<dyn HttpClient> =
            match reqwest::Client::builder().pool_max_idle_per_host(0).build() {
                Ok(client) => Arc::new(client),
                Err(_) => azure_core::http::new_http_client(None),
            };
        Arc::new(Self {
            inner,
            ports: ports.into_iter().collect(),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for LoopbackTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let host = request.url().host_str().unwrap_or_default().to_owned();
        let Some(port) = self.ports.get(&host).copied() else {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Connection,
                format!("no loopback vault for {host}"),
            ));
        };
        let mut request = request.clone();
        let url = request.url_mut();
        let rewritten = url
            .set_scheme("http")
            .and_then(|()| url.set_host(Some("127.0.0.1")).map_err(|_| ()))
            .and_then(|()| url.set_port(Some(port)));
        if rewritten.is_err() {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "cannot rewrite the request URL to loopback",
            ));
        }
        self.inner.execute_request(&request).await
    }
}

/// A credential that always hands out `token`, and records the scopes asked for.
#[derive(Debug)]
pub struct FixedTokenCredential {
    token: String,
    scopes: std::sync::Mutex<Vec<String>>,
}

impl FixedTokenCredential {
    /// A credential for `token`.
    #[must_use]
    pub fn new(token: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            token: token.into(),
            scopes: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The scopes tokens were asked for, in order.
    #[must_use]
    pub fn scopes(&self) -> Vec<String> {
        self.scopes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait::async_trait]
impl TokenCredential for FixedTokenCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.scopes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(scopes.iter().map(|s| (*s).to_owned()));
        Ok(AccessToken::new(
            self.token.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}
