//! Google access tokens, found the way Google's client libraries find them: a service-account
//! key (`GOOGLE_APPLICATION_CREDENTIALS`: an RS256-signed JWT exchanged at the key's `token_uri`),
//! else the metadata server (Cloud Run, GCE, GKE; `GCE_METADATA_HOST` moves it). One token is
//! cached per process, shared by every Google client, and refreshed shortly before it expires;
//! callers that arrive during a refresh wait for that one refresh.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::jwt::ServiceAccountKey;
use crate::config::GoogleConfig;

/// The scope every token is asked for: BigQuery and Secret Manager both accept it, and the
/// service account's IAM roles decide what it may actually do.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A cached token is replaced once it has less than this left: 3 min 45 s, as Google's Python
/// library does, just under the 5 minutes before expiry when the metadata server itself starts
/// handing out a new token (so a token from it is always reusable for a while).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(225);

/// How long one request for a token may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no token could be had. Each says what to do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set and the metadata server \
         at {host} did not answer ({detail}); set GOOGLE_APPLICATION_CREDENTIALS to a \
         service-account key file, or run on Google Cloud"
    )]
    NoCredentials { host: String, detail: String },
    #[error("the Google credentials file {path}: {detail}")]
    BadKeyFile { path: String, detail: String },
    #[error("{endpoint} refused to issue a token ({status}: {detail}){hint}")]
    Refused {
        endpoint: String,
        status: u16,
        detail: String,
        hint: &'static str,
    },
    #[error("asking {endpoint} for a token failed: {detail}")]
    Unavailable { endpoint: String, detail: String },
}

impl AuthError {
    /// Whether asking again later may succeed (an outage rather than a refusal).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
            || matches!(self, Self::Refused { status, .. } if *status >= 500 || *status == 429)
    }
}

/// A bearer token for Google APIs; its value never appears in `Debug` output.
#[derive(Clone)]
pub struct AccessToken {
    value: SecretString,
    expires_at: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AccessToken {
    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.value.expose_secret())
    }

    fn fresh_at(&self, now: Instant) -> bool {
        now + REFRESH_MARGIN < self.expires_at
    }
}

/// Where tokens come from.
enum Source {
    ServiceAccount(Box<ServiceAccountKey>),
    Metadata { host: String },
}

/// The process's Google credentials and its one cached token.
pub struct GoogleAuth {
    source: Source,
    http: reqwest::Client,
    cached: Mutex<Option<AccessToken>>,
}

impl std::fmt::Debug for GoogleAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GoogleAuth(")?;
        f.write_str(&self.describe())?;
        f.write_str(")")
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

impl GoogleAuth {
    /// Reads the credentials the configuration names. A key file is read and checked now (a
    /// broken one is an error at start-up); the metadata server is first asked when a token is
    /// needed.
    pub fn from_config(config: &GoogleConfig) -> Result<Arc<Self>, AuthError> {
        let source = match &config.google_application_credentials {
            Some(path) if !path.as_os_str().is_empty() => {
                Source::ServiceAccount(Box::new(read_key_file(path)?))
            }
            _ => Source::Metadata {
                host: config.gce_metadata_host.trim().to_owned(),
            },
        };
        let http =
            crate::outbound::client(TOKEN_TIMEOUT).map_err(|error| AuthError::Unavailable {
                endpoint: "the token endpoint".into(),
                detail: error.to_string(),
            })?;
        Ok(Arc::new(Self {
            source,
            http,
            cached: Mutex::new(None),
        }))
    }

    /// Which credentials these are, for logs: the service account's e-mail, or the metadata
    /// server.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::ServiceAccount(key) => format!("service account {}", key.client_email),
            Source::Metadata { host } => format!("the metadata server at {host}"),
        }
    }

    /// The service account's e-mail when it is known from a key file.
    pub fn service_account(&self) -> Option<&str> {
        match &self.source {
            Source::ServiceAccount(key) => Some(&key.client_email),
            Source::Metadata { .. } => None,
        }
    }

    /// A token valid for at least a few more minutes: the cached one, or a new one. Concurrent
    /// callers wait for a single refresh.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token.fresh_at(Instant::now())
        {
            return Ok(token.clone());
        }
        let token = self.fetch().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Forgets the cached token (an API answered 401: it was revoked or the clock is off), so the
    /// next call asks for a new one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<AccessToken, AuthError> {
        let asked_at = Instant::now();
        let (endpoint, request) = match &self.source {
            Source::ServiceAccount(key) => {
                let assertion =
                    key.assertion(CLOUD_PLATFORM_SCOPE, now_seconds())
                        .map_err(|detail| AuthError::BadKeyFile {
                            path: key.path.clone(),
                            detail,
                        })?;
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                    .append_pair("assertion", &assertion)
                    .finish();
                let request = self
                    .http
                    .post(&key.token_uri)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form);
                (key.token_uri.clone(), request)
            }
            Source::Metadata { host } => {
                let url = metadata_token_url(host);
                let request = self.http.get(&url).header("Metadata-Flavor", "Google");
                (url, request)
            }
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let unreachable = error.is_connect() || error.is_timeout();
                let detail = super::transport_error(error);
                return Err(match &self.source {
                    Source::Metadata { host } if unreachable => AuthError::NoCredentials {
                        host: host.clone(),
                        detail,
                    },
                    _ => AuthError::Unavailable { endpoint, detail },
                });
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let hint = match (&self.source, status.as_u16()) {
                (Source::ServiceAccount(_), 400 | 401) => {
                    ": the key may be deleted or disabled, or this machine's clock is wrong; \
                     create a new key for the service account"
                }
                (Source::Metadata { .. }, 403 | 404) => {
                    ": the instance may have no service account attached; deploy with \
                     --service-account"
                }
                _ => "",
            };
            return Err(AuthError::Refused {
                endpoint,
                status: status.as_u16(),
                detail: oauth_error(&text),
                hint,
            });
        }
        let answer: TokenAnswer =
            serde_json::from_str(&text).map_err(|error| AuthError::Unavailable {
                endpoint: endpoint.clone(),
                detail: format!("the answer is not a token: {error}"),
            })?;
        if answer.access_token.is_empty() {
            return Err(AuthError::Unavailable {
                endpoint,
                detail: "the answer holds an empty token".into(),
            });
        }
        // Counted from when it was asked for, so a slow answer never makes it look fresher.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        tracing::debug!(
            credentials = %self.describe(),
            expires_in = lifetime.as_secs(),
            "new Google access token"
        );
        Ok(AccessToken {
            value: SecretString::from(answer.access_token),
            expires_at: asked_at + lifetime,
        })
    }
}

/// The metadata server's token URL for the instance's default service account.
fn metadata_token_url(host: &str) -> String {
    let host = host.trim_end_matches('/');
    let base = if host.starts_with("http://") || host.starts_with("https://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    };
    format!("{base}/computeMetadata/v1/instance/service-accounts/default/token")
}

/// `error: error_description` of an OAuth error answer, else the (shortened) text.
fn oauth_error(text: &str) -> String {
    #[derive(Deserialize)]
    struct OauthError {
        error: Option<serde_json::Value>,
        error_description: Option<String>,
    }
    if let Ok(parsed) = serde_json::from_str::<OauthError>(text) {
        let error = match parsed.error {
            Some(serde_json::Value::String(code)) => Some(code),
            Some(other) => Some(super::google_error_message(&other.to_string())),
            None => None,
        };
        match (error, parsed.error_description) {
            (Some(error), Some(description)) => return format!("{error}: {description}"),
            (Some(error), None) => return error,
            _ => {}
        }
    }
    text.chars().take(200).collect()
}

fn read_key_file(path: &Path) -> Result<ServiceAccountKey, AuthError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| AuthError::BadKeyFile {
        path: shown.clone(),
        detail: format!("cannot read it: {error}"),
    })?;
    ServiceAccountKey::parse(&text, &shown).map_err(|detail| AuthError::BadKeyFile {
        path: shown,
        detail,
    })
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_take_a_host_with_or_without_a_scheme() {
        assert_eq!(
            metadata_token_url("metadata.google.internal"),
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(
            metadata_token_url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/computeMetadata/v1/instance/service-accounts/default/token"
        );
    }

    #[test]
    fn oauth_errors_keep_the_code_and_description() {
        assert_eq!(
            oauth_error(
                r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
            ),
            "invalid_grant: Invalid JWT Signature."
        );
        assert_eq!(oauth_error("plain text"), "plain text");
    }

    #[test]
    fn tokens_are_fresh_until_the_margin() {
        let now = Instant::now();
        let token = |left: Duration| AccessToken {
            value: SecretString::from("t".to_owned()),
            expires_at: now + left,
        };
        assert!(token(Duration::from_secs(3600)).fresh_at(now));
        assert!(!token(REFRESH_MARGIN).fresh_at(now));
        assert!(!format!("{:?}", token(REFRESH_MARGIN)).contains("\"t\""));
    }
}
