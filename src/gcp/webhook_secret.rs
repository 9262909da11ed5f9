//! The webhook secret kept in Secret Manager (`HERALD_WEBHOOK_SECRET_GCP`): read at start-up
//! (where every failure is fatal and says what to fix), then again every
//! `HERALD_WEBHOOK_SECRET_REFRESH`. A new value takes effect at once and the one it replaces keeps
//! verifying for `HERALD_WEBHOOK_SECRET_GRACE`, so GitHub's deliveries signed with either pass
//! while the webhook's settings are changed. A failed refresh keeps the secrets in use.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{GoogleAuth, SecretManager, SecretVersionName};
use crate::config::SecretManagerConfig;
use crate::github::{SignatureVerifier, WebhookSecrets};

/// The shortest refresh interval accepted (Secret Manager counts every access against a quota).
pub const MIN_REFRESH: Duration = Duration::from_millis(100);

/// The secrets in use: the current value, and the values it replaced until their grace ends.
/// Pure: the caller passes the time.
#[derive(Debug)]
pub struct Rotation {
    current: WebhookSecrets,
    current_version: String,
    retired: Vec<(WebhookSecrets, Instant)>,
    grace: Duration,
}

/// What one observation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The same value as before.
    Unchanged,
    /// A new value; the one it replaced verifies until the grace ends.
    Rotated { from_version: String },
}

impl Rotation {
    pub fn new(first: WebhookSecrets, version: String, grace: Duration) -> Self {
        Self {
            current: first,
            current_version: version,
            retired: Vec::new(),
            grace,
        }
    }

    /// Keeps `value` verifying until `until` (a version replaced before this process started).
    pub fn retire(&mut self, value: WebhookSecrets, until: Instant) {
        if !value.same_as(&self.current) {
            self.retired.push((value, until));
        }
    }

    /// Takes a value just read.
    pub fn observe(&mut self, value: WebhookSecrets, version: String, now: Instant) -> Change {
        if value.same_as(&self.current) {
            self.current_version = version;
            return Change::Unchanged;
        }
        let replaced = std::mem::replace(&mut self.current, value);
        let from_version = std::mem::replace(&mut self.current_version, version);
        // A value rotated back to is current again, not also retired.
        self.retired.retain(|(old, _)| !old.same_as(&self.current));
        self.retired.push((replaced, now + self.grace));
        Change::Rotated { from_version }
    }

    /// Drops the retired values whose grace has ended; whether any was.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.retired.len();
        self.retired.retain(|(_, until)| *until > now);
        self.retired.len() != before
    }

    /// When the next retired value stops verifying.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.retired.iter().map(|(_, until)| *until).min()
    }

    /// Every secret that verifies now: the current ones first (new signatures use the first).
    pub fn effective(&self) -> WebhookSecrets {
        let mut all = vec![&self.current];
        all.extend(self.retired.iter().rev().map(|(old, _)| old));
        WebhookSecrets::combine(all)
    }

    pub fn current_version(&self) -> &str {
        &self.current_version
    }
}

/// The secret's name, checked.
pub fn name(config: &SecretManagerConfig) -> anyhow::Result<Option<SecretVersionName>> {
    let Some(text) = config
        .webhook_secret_gcp
        .as_deref()
        .filter(|text| !text.trim().is_empty())
    else {
        return Ok(None);
    };
    let name = text
        .parse::<SecretVersionName>()
        .map_err(|error| anyhow::anyhow!("HERALD_WEBHOOK_SECRET_GCP: {error}"))?;
    Ok(Some(name))
}

/// Reads the secret once: at start-up, and for `herald send-test`. Errors are the fatal,
/// explained kind.
pub async fn read(
    manager: &SecretManager,
    name: &SecretVersionName,
) -> anyhow::Result<(WebhookSecrets, String)> {
    let secret = manager.access(name).await.with_context(|| {
        format!("reading the webhook secret (HERALD_WEBHOOK_SECRET_GCP={name})")
    })?;
    let secrets = WebhookSecrets::parse(secret.value.expose_secret())
        .with_context(|| format!("the webhook secret {}", secret.version))?;
    Ok((secrets, secret.version))
}

/// The version before `current` when `current` replaced it less than `grace` ago, with when its
/// grace ends: a process started during a rotation accepts what the others still accept. Only
/// for `latest`; anything that cannot be read (the version's creation time needs
/// `roles/secretmanager.viewer`; the previous version may be disabled or destroyed) just leaves
/// the previous version out.
async fn previous_in_grace(
    manager: &SecretManager,
    name: &SecretVersionName,
    current: &str,
    grace: Duration,
) -> Option<(WebhookSecrets, Instant)> {
    if name.version != "latest" {
        return None;
    }
    let number: u64 = current.rsplit('/').next()?.parse().ok()?;
    let previous = number.checked_sub(1).filter(|previous| *previous > 0)?;
    let created = match manager.created(&name.version(number)).await {
        Ok(created) => created,
        Err(error) => {
            tracing::info!(secret = %name, error = %error, "cannot tell when the current webhook secret version was created, so the previous one is not accepted; grant roles/secretmanager.viewer on the secret to keep a rotation's grace period across restarts");
            return None;
        }
    };
    let age = std::time::SystemTime::now()
        .duration_since(created)
        .unwrap_or(Duration::ZERO);
    let left = grace.checked_sub(age).filter(|left| !left.is_zero())?;
    match manager.access(&name.version(previous)).await {
        Ok(secret) => {
            let value = WebhookSecrets::parse(secret.value.expose_secret()).ok()?;
            tracing::info!(
                secret = %name,
                previous = %secret.version,
                grace_left_seconds = left.as_secs(),
                "the webhook secret was rotated recently; the previous version keeps verifying until its grace period ends"
            );
            Some((value, Instant::now() + left))
        }
        Err(error) => {
            tracing::info!(secret = %name, error = %error, "the previous webhook secret version cannot be read; only the current one verifies");
            None
        }
    }
}

/// Keeps a verifier's secrets in step with Secret Manager.
pub struct Refresher {
    manager: SecretManager,
    name: SecretVersionName,
    interval: Duration,
    rotation: Rotation,
}

impl Refresher {
    /// Reads the secret for start-up (every failure fatal and explained), and returns it with
    /// the refresher that keeps it current.
    pub async fn start(
        config: &SecretManagerConfig,
        name: SecretVersionName,
        auth: Arc<GoogleAuth>,
    ) -> anyhow::Result<(WebhookSecrets, String, Self)> {
        if config.webhook_secret_refresh < MIN_REFRESH {
            anyhow::bail!(
                "HERALD_WEBHOOK_SECRET_REFRESH ({:?}) must be at least {MIN_REFRESH:?}",
                config.webhook_secret_refresh
            );
        }
        let manager = SecretManager::new(&config.secret_manager_api_url, auth)?;
        let (secrets, version) = read(&manager, &name).await?;
        let grace = config.webhook_secret_grace;
        let mut rotation = Rotation::new(secrets, version.clone(), grace);
        if let Some((previous, until)) = previous_in_grace(&manager, &name, &version, grace).await {
            rotation.retire(previous, until);
        }
        let secrets = rotation.effective();
        let refresher = Self {
            manager,
            name,
            interval: config.webhook_secret_refresh,
            rotation,
        };
        Ok((secrets, version, refresher))
    }

    /// Reads the secret every interval, giving `verifier` each change, and ends replaced
    /// values' grace on time, until `stop`.
    pub async fn run(
        mut self,
        verifier: Arc<SignatureVerifier>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut next_read = Instant::now() + self.interval;
        loop {
            let wake = self
                .rotation
                .next_expiry()
                .map_or(next_read, |expiry| expiry.min(next_read));
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            let mut changed = false;
            if now >= next_read {
                changed |= self.refresh(now).await;
                next_read = Instant::now() + self.interval;
            }
            if self.rotation.expire(Instant::now()) {
                tracing::info!(
                    secret = %self.name,
                    "the grace period of a replaced webhook secret ended; it no longer verifies"
                );
                changed = true;
            }
            if changed {
                verifier.replace_secrets(self.rotation.effective());
            }
        }
    }

    /// One read; whether the secrets changed. Failures keep the secrets in use.
    async fn refresh(&mut self, now: Instant) -> bool {
        match self.manager.access(&self.name).await {
            Ok(secret) => match WebhookSecrets::parse(secret.value.expose_secret()) {
                Ok(value) => match self.rotation.observe(value, secret.version, now) {
                    Change::Unchanged => false,
                    Change::Rotated { from_version } => {
                        tracing::info!(
                            secret = %self.name,
                            version = %self.rotation.current_version(),
                            previous = %from_version,
                            grace_seconds = self.rotation.grace.as_secs(),
                            "the webhook secret was rotated; the previous value keeps verifying \
                             until its grace period ends"
                        );
                        true
                    }
                },
                Err(error) => {
                    tracing::error!(secret = %self.name, version = %secret.version, error = %error, "the webhook secret read from Secret Manager is not usable; keeping the secrets in use");
                    false
                }
            },
            Err(error) => {
                tracing::warn!(secret = %self.name, error = %error, "refreshing the webhook secret failed; keeping the secrets in use");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(text: &str) -> WebhookSecrets {
        WebhookSecrets::parse(text).unwrap()
    }

    fn listed(rotation: &Rotation) -> Vec<String> {
        rotation
            .effective()
            .iter()
            .map(|secret| secret.expose_secret().to_owned())
            .collect()
    }

    #[test]
    fn a_rotation_keeps_the_old_value_for_the_grace_period() {
        let start = Instant::now();
        let grace = Duration::from_secs(3600);
        let mut rotation = Rotation::new(secrets("one"), "v1".into(), grace);
        assert_eq!(
            rotation.observe(secrets("one"), "v1".into(), start),
            Change::Unchanged
        );
        assert_eq!(rotation.next_expiry(), None);
        let later = start + Duration::from_secs(60);
        assert_eq!(
            rotation.observe(secrets("two"), "v2".into(), later),
            Change::Rotated {
                from_version: "v1".into()
            }
        );
        assert_eq!(listed(&rotation), ["two", "one"]);
        assert_eq!(rotation.effective().primary(), "two");
        assert_eq!(rotation.next_expiry(), Some(later + grace));
        assert!(!rotation.expire(later + grace - Duration::from_millis(1)));
        assert_eq!(listed(&rotation), ["two", "one"]);
        assert!(rotation.expire(later + grace));
        assert_eq!(listed(&rotation), ["two"]);
        assert_eq!(rotation.next_expiry(), None);
    }

    #[test]
    fn rotating_twice_keeps_both_old_values_each_for_its_own_grace() {
        let start = Instant::now();
        let grace = Duration::from_secs(100);
        let mut rotation = Rotation::new(secrets("a"), "1".into(), grace);
        rotation.observe(secrets("b"), "2".into(), start);
        rotation.observe(secrets("c"), "3".into(), start + Duration::from_secs(50));
        assert_eq!(listed(&rotation), ["c", "b", "a"]);
        rotation.expire(start + Duration::from_secs(100));
        assert_eq!(listed(&rotation), ["c", "b"]);
        // Back to an old value: it is current, listed once.
        rotation.observe(secrets("b"), "4".into(), start + Duration::from_secs(120));
        assert_eq!(listed(&rotation), ["b", "c"]);
        assert_eq!(rotation.current_version(), "4");
    }
}
