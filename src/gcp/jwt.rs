//! A service-account key file and the JWT it signs to ask for a token (RFC 7523, RS256), as
//! Google documents for "Using OAuth 2.0 for server to server applications".

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;

/// Google's token endpoint, for key files that do not name one.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// How long an assertion is valid (Google accepts at most one hour).
const ASSERTION_LIFETIME_SECONDS: u64 = 3600;

/// A parsed service-account key. The private key never leaves this struct.
pub struct ServiceAccountKey {
    pub client_email: String,
    pub token_uri: String,
    /// Where it was read from, for error messages.
    pub path: String,
    key_id: Option<String>,
    key: RsaKeyPair,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Parses the JSON of a key file (`gcloud iam service-accounts keys create`).
    pub fn parse(text: &str, path: &str) -> Result<Self, String> {
        let file: KeyFile =
            serde_json::from_str(text).map_err(|error| format!("not a JSON key file: {error}"))?;
        match file.kind.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(format!(
                    "its type is {other:?}; herald takes a service-account key \
                     (`gcloud iam service-accounts keys create`), or runs on Google Cloud's \
                     metadata server without one"
                ));
            }
            None => return Err("it has no \"type\"; is it a service-account key?".into()),
        }
        let client_email = file
            .client_email
            .filter(|email| !email.is_empty())
            .ok_or("it has no client_email")?;
        let pem = file.private_key.ok_or("it has no private_key")?;
        let key = parse_private_key(&pem)?;
        let token_uri = file
            .token_uri
            .filter(|uri| !uri.is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        super::check_http_url(&token_uri).map_err(|error| format!("token_uri: {error}"))?;
        Ok(Self {
            client_email,
            token_uri,
            path: path.to_owned(),
            key_id: file.private_key_id.filter(|id| !id.is_empty()),
            key,
        })
    }

    /// A signed assertion asking for `scope`, issued at `now` (Unix seconds).
    pub fn assertion(&self, scope: &str, now: u64) -> Result<String, String> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(id) = &self.key_id {
            header["kid"] = id.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the token request failed".to_owned())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// An RSA key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what Google issues) or PKCS#1
/// (`BEGIN RSA PRIVATE KEY`).
fn parse_private_key(pem: &str) -> Result<RsaKeyPair, String> {
    let (label, der) = pem_body(pem)?;
    let parsed = match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        other => {
            return Err(format!(
                "private_key is a {other:?}, not an RSA private key"
            ));
        }
    };
    parsed.map_err(|error| format!("private_key is not a usable RSA key: {error}"))
}

/// The label and decoded bytes of the first PEM block.
fn pem_body(pem: &str) -> Result<(String, Vec<u8>), String> {
    let start = pem
        .find("-----BEGIN ")
        .ok_or("private_key is not PEM (no BEGIN line)")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest
        .find("-----")
        .ok_or("private_key has a broken BEGIN line")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + "-----".len();
    let end_marker = format!("-----END {label}-----");
    let body_end = rest
        .find(&end_marker)
        .ok_or_else(|| format!("private_key has no {end_marker:?} line"))?;
    let base64: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(base64)
        .map_err(|error| format!("private_key is not valid base64: {error}"))?;
    Ok((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_service_account_key() {
        let cases = [
            ("{", "not a JSON key file"),
            (
                r#"{"type":"authorized_user"}"#,
                "herald takes a service-account key",
            ),
            (r#"{"client_email":"x"}"#, "no \"type\""),
            (
                r#"{"type":"service_account","private_key":"x"}"#,
                "no client_email",
            ),
            (
                r#"{"type":"service_account","client_email":"a@b","private_key":"junk"}"#,
                "not PEM",
            ),
            (
                r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
                "not a usable RSA key",
            ),
        ];
        for (text, expected) in cases {
            let error = ServiceAccountKey::parse(text, "key.json").err().unwrap();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn reads_pem_blocks() {
        let (label, der) = pem_body(
            "junk\n-----BEGIN RSA PRIVATE KEY-----\nAAEC\nAw==\n-----END RSA PRIVATE KEY-----",
        )
        .unwrap();
        assert_eq!((label.as_str(), der), ("RSA PRIVATE KEY", vec![0, 1, 2, 3]));
    }
}
