//! The webhook secrets: from the environment, a file, or generated on first run.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::config::SecretConfig;

/// One or more shared secrets; several are accepted at once while rotating.
#[derive(Clone)]
pub struct WebhookSecrets(Vec<SecretString>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets([redacted; {}])", self.0.len())
    }
}

impl WebhookSecrets {
    /// Splits a comma- or newline-separated list; blanks are ignored, at least one must remain.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let secrets: Vec<SecretString> = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .map(SecretString::from)
            .collect();
        if secrets.is_empty() {
            bail!("the webhook secret is empty");
        }
        Ok(Self(secrets))
    }

    pub fn iter(&self) -> impl Iterator<Item = &SecretString> {
        self.0.iter()
    }

    /// The secret new signatures are made with (the first one listed).
    pub fn primary(&self) -> &str {
        self.0[0].expose_secret()
    }

    /// Whether both hold the same secrets in the same order.
    pub fn same_as(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.expose_secret() == b.expose_secret())
    }

    /// All secrets of `sets`, in order, each once; the first set's primary stays primary.
    pub fn combine<'a>(sets: impl IntoIterator<Item = &'a Self>) -> Self {
        let mut all: Vec<SecretString> = Vec::new();
        for secret in sets.into_iter().flat_map(Self::iter) {
            if !all
                .iter()
                .any(|known| known.expose_secret() == secret.expose_secret())
            {
                all.push(secret.clone());
            }
        }
        assert!(!all.is_empty(), "combining no secrets");
        Self(all)
    }
}

/// Where the secrets came from, so start-up can tell the operator what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Environment,
    File,
    /// Google Secret Manager, this version (`projects/…/versions/N`).
    SecretManager(String),
    Generated,
    ReusedGenerated,
}

/// Resolves the configured secrets. Without any, reuses or creates `secret_path` (mode 0600).
pub fn load_secrets(config: &SecretConfig) -> anyhow::Result<(WebhookSecrets, SecretSource)> {
    if let Some(secret) = &config.webhook_secret {
        let secrets =
            WebhookSecrets::parse(secret.expose_secret()).context("HERALD_WEBHOOK_SECRET")?;
        return Ok((secrets, SecretSource::Environment));
    }
    if let Some(path) = &config.webhook_secret_file {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading the webhook secret file {}", path.display()))?;
        let secrets = WebhookSecrets::parse(&text)
            .with_context(|| format!("the webhook secret file {}", path.display()))?;
        return Ok((secrets, SecretSource::File));
    }
    let path = &config.secret_path;
    if path.exists() {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading the generated secret {}", path.display()))?;
        let secrets = WebhookSecrets::parse(&text)
            .with_context(|| format!("the generated secret file {}", path.display()))?;
        return Ok((secrets, SecretSource::ReusedGenerated));
    }
    let secret = generate();
    write_private(path, &secret)
        .with_context(|| format!("writing a new webhook secret to {}", path.display()))?;
    Ok((WebhookSecrets::parse(&secret)?, SecretSource::Generated))
}

fn generate() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> SecretConfig {
        SecretConfig {
            webhook_secret: None,
            webhook_secret_file: None,
            secret_path: dir.join("herald.secret"),
            secret_manager: crate::config::SecretManagerConfig {
                webhook_secret_gcp: None,
                secret_manager_api_url: "http://127.0.0.1:9".into(),
                webhook_secret_refresh: std::time::Duration::from_secs(300),
                webhook_secret_grace: std::time::Duration::from_secs(3600),
            },
        }
    }

    #[test]
    fn parses_a_rotation_list() {
        let secrets = WebhookSecrets::parse(" new , old ,").unwrap();
        assert_eq!(secrets.iter().count(), 2);
        assert_eq!(secrets.primary(), "new");
        assert!(WebhookSecrets::parse(" , ").is_err());
        assert!(!format!("{secrets:?}").contains("new"));
    }

    #[test]
    fn combines_sets_without_repeating_a_secret() {
        let new = WebhookSecrets::parse("new").unwrap();
        let old = WebhookSecrets::parse("old,new").unwrap();
        let all = WebhookSecrets::combine([&new, &old]);
        let listed: Vec<&str> = all.iter().map(ExposeSecret::expose_secret).collect();
        assert_eq!(listed, ["new", "old"]);
        assert!(all.same_as(&WebhookSecrets::parse("new,old").unwrap()));
        assert!(!all.same_as(&old));
    }

    #[test]
    fn generates_once_then_reuses_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = load_secrets(&config(dir.path())).unwrap();
        assert_eq!(source, SecretSource::Generated);
        assert_eq!(first.primary().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("herald.secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, source) = load_secrets(&config(dir.path())).unwrap();
        assert_eq!(source, SecretSource::ReusedGenerated);
        assert_eq!(first.primary(), second.primary());
    }

    #[test]
    fn environment_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret.txt");
        fs::write(&file, "from-file\nsecond\n").unwrap();
        let mut cfg = config(dir.path());
        cfg.webhook_secret_file = Some(file.clone());
        let (secrets, source) = load_secrets(&cfg).unwrap();
        assert_eq!(
            (secrets.primary(), source),
            ("from-file", SecretSource::File)
        );
        assert_eq!(secrets.iter().count(), 2);
        cfg.webhook_secret = Some(SecretString::from("from-env"));
        let (secrets, source) = load_secrets(&cfg).unwrap();
        assert_eq!(
            (secrets.primary(), source),
            ("from-env", SecretSource::Environment)
        );
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.webhook_secret_file = Some(dir.path().join("nope"));
        let error = load_secrets(&cfg).unwrap_err();
        assert!(format!("{error:#}").contains("reading the webhook secret file"));
    }
}
