//! Google Secret Manager: reading one secret version (`versions/V:access`), with the payload's
//! CRC32C checked, as the REST API documents. One request; the official crate would add twenty.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde::Deserialize;

use super::{AuthError, GoogleAuth, crc32c, google_error_message};

/// How long one read may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `projects/P/secrets/S/versions/V`: which secret, and which version (`latest` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionName {
    pub project: String,
    pub secret: String,
    pub version: String,
}

impl FromStr for SecretVersionName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || {
            format!(
                "{text:?} is not a Secret Manager name: expected projects/PROJECT/secrets/SECRET \
                 or projects/PROJECT/secrets/SECRET/versions/VERSION"
            )
        };
        let parts: Vec<&str> = text.trim().split('/').collect();
        let (project, secret, version) = match parts.as_slice() {
            ["projects", project, "secrets", secret] => (*project, *secret, "latest"),
            ["projects", project, "secrets", secret, "versions", version] => {
                (*project, *secret, *version)
            }
            _ => return Err(expected()),
        };
        let project_ok = !project.is_empty()
            && project.len() <= 63
            && project
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let name_ok = |name: &str| {
            !name.is_empty()
                && name.len() <= 255
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !project_ok || !name_ok(secret) || !name_ok(version) {
            return Err(expected());
        }
        Ok(Self {
            project: project.to_owned(),
            secret: secret.to_owned(),
            version: version.to_owned(),
        })
    }
}

impl SecretVersionName {
    /// The same secret's version `version`.
    #[must_use]
    pub fn version(&self, version: u64) -> Self {
        Self {
            version: version.to_string(),
            ..self.clone()
        }
    }
}

impl fmt::Display for SecretVersionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "projects/{}/secrets/{}/versions/{}",
            self.project, self.secret, self.version
        )
    }
}

/// A secret's value and the version it came from (`…/versions/7` even when `latest` was asked
/// for). `Debug` never shows the value.
#[derive(Clone)]
pub struct AccessedSecret {
    pub version: String,
    pub value: SecretString,
}

impl fmt::Debug for AccessedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessedSecret")
            .field("version", &self.version)
            .field("value", &"[redacted]")
            .finish()
    }
}

/// Why a secret could not be read; each names the secret and the next step.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretManagerError {
    #[error(
        "Secret Manager has no {name} ({detail}); create it (`gcloud secrets create {secret} \
         --data-file=-`) or correct HERALD_WEBHOOK_SECRET_GCP"
    )]
    NotFound {
        name: String,
        secret: String,
        detail: String,
    },
    #[error(
        "{who} may not read {name} ({detail}); grant it roles/secretmanager.secretAccessor on \
         the secret (`gcloud secrets add-iam-policy-binding {secret} --member=serviceAccount:EMAIL \
         --role=roles/secretmanager.secretAccessor`)"
    )]
    PermissionDenied {
        who: String,
        name: String,
        secret: String,
        detail: String,
    },
    #[error("Secret Manager refused {name} ({status}: {detail})")]
    Refused {
        name: String,
        status: u16,
        detail: String,
    },
    #[error("reading {name} from Secret Manager failed: {detail}")]
    Unavailable { name: String, detail: String },
    #[error("{name}: {detail}")]
    Corrupt { name: String, detail: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl SecretManagerError {
    /// Whether reading again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Corrupt { .. } => true,
            Self::Auth(error) => error.is_transient(),
            _ => false,
        }
    }
}

/// Reads secret versions.
#[derive(Debug, Clone)]
pub struct SecretManager {
    http: reqwest::Client,
    base: String,
    auth: Arc<GoogleAuth>,
}

#[derive(Deserialize)]
struct AccessAnswer {
    name: Option<String>,
    payload: Option<Payload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    data: Option<String>,
    /// An int64, which Google's JSON encodes as a string.
    data_crc32c: Option<serde_json::Value>,
}

impl SecretManager {
    pub fn new(base: &str, auth: Arc<GoogleAuth>) -> anyhow::Result<Self> {
        super::check_http_url(base)
            .map_err(|error| anyhow::anyhow!("HERALD_SECRET_MANAGER_API_URL: {error}"))?;
        Ok(Self {
            http: crate::outbound::client(TIMEOUT)?,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// Reads `name`: `GET {base}/v1/{name}:access`, the payload base64-decoded and its CRC32C
    /// checked.
    pub async fn access(
        &self,
        name: &SecretVersionName,
    ) -> Result<AccessedSecret, SecretManagerError> {
        let text = self.get(name, ":access").await?;
        decode_answer(&name.to_string(), &text)
    }

    /// When a version was created: `GET {base}/v1/{name}` (its metadata, which needs
    /// `secretmanager.versions.get`, in `roles/secretmanager.viewer`, not in the accessor role).
    pub async fn created(
        &self,
        name: &SecretVersionName,
    ) -> Result<SystemTime, SecretManagerError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Metadata {
            create_time: Option<String>,
        }
        let shown = name.to_string();
        let text = self.get(name, "").await?;
        let corrupt = |detail: String| SecretManagerError::Corrupt {
            name: shown.clone(),
            detail,
        };
        let metadata: Metadata = serde_json::from_str(&text)
            .map_err(|error| corrupt(format!("the answer is not a secret version: {error}")))?;
        let text = metadata
            .create_time
            .ok_or_else(|| corrupt("the answer has no createTime".into()))?;
        let at = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| corrupt(format!("createTime {text:?} is not a time")))?;
        Ok(SystemTime::from(at))
    }

    /// `GET {base}/v1/{name}{suffix}` with a token; the answer's text, or the error it means.
    async fn get(
        &self,
        name: &SecretVersionName,
        suffix: &str,
    ) -> Result<String, SecretManagerError> {
        let shown = name.to_string();
        let token = self.auth.token().await?;
        let url = format!("{}/v1/{shown}{suffix}", self.base);
        let response = self
            .http
            .get(&url)
            .header("authorization", token.bearer())
            .send()
            .await
            .map_err(|error| SecretManagerError::Unavailable {
                name: shown.clone(),
                detail: super::transport_error(error),
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| SecretManagerError::Unavailable {
                name: shown.clone(),
                detail: super::transport_error(error),
            })?;
        if !status.is_success() {
            let detail = format!("{}: {}", status.as_u16(), google_error_message(&text));
            return Err(match status.as_u16() {
                404 => SecretManagerError::NotFound {
                    name: shown,
                    secret: name.secret.clone(),
                    detail,
                },
                403 => SecretManagerError::PermissionDenied {
                    who: self.auth.service_account().map_or_else(
                        || "the service account herald runs as".to_owned(),
                        |email| format!("the service account {email}"),
                    ),
                    name: shown,
                    secret: name.secret.clone(),
                    detail,
                },
                401 => {
                    self.auth.invalidate().await;
                    SecretManagerError::Unavailable {
                        name: shown,
                        detail: format!(
                            "the access token was refused ({detail}); a new one is asked for next time"
                        ),
                    }
                }
                code if code >= 500 || code == 429 => SecretManagerError::Unavailable {
                    name: shown,
                    detail,
                },
                code => SecretManagerError::Refused {
                    name: shown,
                    status: code,
                    detail: google_error_message(&text),
                },
            });
        }
        Ok(text)
    }
}

/// The value and version in an `:access` answer, after checking its CRC32C.
fn decode_answer(shown: &str, text: &str) -> Result<AccessedSecret, SecretManagerError> {
    let corrupt = |detail: String| SecretManagerError::Corrupt {
        name: shown.to_owned(),
        detail,
    };
    let answer: AccessAnswer = serde_json::from_str(text)
        .map_err(|error| corrupt(format!("the answer is not a secret version: {error}")))?;
    let payload = answer
        .payload
        .ok_or_else(|| corrupt("the answer has no payload".into()))?;
    let data = STANDARD
        .decode(payload.data.unwrap_or_default())
        .map_err(|error| corrupt(format!("the payload is not base64: {error}")))?;
    if let Some(expected) = payload.data_crc32c {
        let expected = match &expected {
            serde_json::Value::String(text) => text.parse::<u64>().ok(),
            other => other.as_u64(),
        }
        .ok_or_else(|| corrupt(format!("dataCrc32c {expected} is not a number")))?;
        let actual = u64::from(crc32c(&data));
        if actual != expected {
            return Err(corrupt(format!(
                "the payload was damaged in transit (CRC32C {actual} instead of {expected})"
            )));
        }
    }
    let value =
        String::from_utf8(data).map_err(|_| corrupt("the secret is not UTF-8 text".into()))?;
    Ok(AccessedSecret {
        version: answer.name.unwrap_or_else(|| shown.to_owned()),
        value: SecretString::from(value),
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn parses_secret_names() {
        let name: SecretVersionName = "projects/p-1/secrets/github_webhook".parse().unwrap();
        assert_eq!(
            name.to_string(),
            "projects/p-1/secrets/github_webhook/versions/latest"
        );
        let pinned: SecretVersionName = "projects/123/secrets/s/versions/7".parse().unwrap();
        assert_eq!(pinned.version, "7");
        for bad in [
            "",
            "s",
            "projects/p/secrets/",
            "projects/P/secrets/s",
            "projects/p/secrets/s/versions",
            "projects/p/secrets/s/versions/1/x",
            "projects/p/secrets/s?x=1",
            "projects/p/secrets/../versions/1",
        ] {
            let error = bad.parse::<SecretVersionName>().unwrap_err();
            assert!(
                error.contains("expected projects/PROJECT"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn decodes_and_checks_the_payload() {
        let data = STANDARD.encode("s3cret\n");
        let crc = crc32c(b"s3cret\n");
        let good = format!(
            r#"{{"name":"projects/1/secrets/s/versions/3","payload":{{"data":"{data}","dataCrc32c":"{crc}"}}}}"#
        );
        let secret = decode_answer("n", &good).unwrap();
        assert_eq!(secret.version, "projects/1/secrets/s/versions/3");
        assert_eq!(secret.value.expose_secret(), "s3cret\n");
        assert!(!format!("{secret:?}").contains("s3cret"));
        let damaged = good.replace(&crc.to_string(), &(crc ^ 1).to_string());
        let error = decode_answer("n", &damaged).unwrap_err().to_string();
        assert!(error.contains("damaged in transit"), "{error}");
        let binary = format!(
            r#"{{"payload":{{"data":"{}"}}}}"#,
            STANDARD.encode([0xff, 0xfe])
        );
        assert!(
            decode_answer("n", &binary)
                .unwrap_err()
                .to_string()
                .contains("not UTF-8")
        );
        assert!(
            decode_answer("n", "{}")
                .unwrap_err()
                .to_string()
                .contains("no payload")
        );
    }
}
