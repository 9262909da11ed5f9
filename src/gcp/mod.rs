//! Google Cloud clients on the official REST contracts: credentials and tokens (`auth`), Secret
//! Manager (the webhook secret, rotated live by `webhook_secret`), and BigQuery (`bigquery`:
//! streaming inserts, datasets and tables; `schema`: herald's event table). Every base URL is
//! configurable, so tests run them against local fakes and the BigQuery emulator.

mod auth;
pub mod bigquery;
mod jwt;
pub mod schema;
mod secret_manager;
pub mod webhook_secret;

pub use auth::{AccessToken, AuthError, CLOUD_PLATFORM_SCOPE, GoogleAuth, REFRESH_MARGIN};
pub use bigquery::{BigQuery, BigQueryError, TableRef};
pub use secret_manager::{AccessedSecret, SecretManager, SecretManagerError, SecretVersionName};

/// The `message` of a Google API error answer (`{"error": {"code", "message", "status"}}`), else
/// the start of the text.
pub fn google_error_message(text: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let message = parsed.as_ref().and_then(|value| {
        let error = value.get("error").unwrap_or(value);
        error.get("message").and_then(serde_json::Value::as_str)
    });
    match message {
        Some(message) => message.chars().take(300).collect(),
        None => text.trim().chars().take(200).collect(),
    }
}

/// A request that got no answer, with its causes (`error sending request: … Connection refused`)
/// and without its URL.
pub fn transport_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// An `http://` or `https://` URL with a host.
pub fn check_http_url(text: &str) -> Result<(), String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(url) => Err(format!(
            "expected an http:// or https:// URL, not a {}: URL",
            url.scheme()
        )),
        Err(error) => Err(format!("{text:?} is not a URL ({error})")),
    }
}

/// CRC32C (Castagnoli), the checksum Secret Manager sends with every payload.
pub fn crc32c(data: &[u8]) -> u32 {
    const POLYNOMIAL: u32 = 0x82F6_3B78; // reflected
    let mut crc = !0_u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // RFC 3720 appendix B.4 and the usual "123456789" check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xff; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn reads_google_error_messages() {
        let text = r#"{"error":{"code":404,"message":"Secret [projects/1/secrets/x] not found or has no versions.","status":"NOT_FOUND"}}"#;
        assert_eq!(
            google_error_message(text),
            "Secret [projects/1/secrets/x] not found or has no versions."
        );
        assert_eq!(google_error_message(" oops "), "oops");
    }
}
