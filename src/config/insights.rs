//! Settings of the issue-flow insights inside `herald serve`: who may see the dashboard and the
//! API, the address people reach herald at (for links), and the weekly digest.

use clap::Args;

/// `/dashboard`, `/api/*` and the weekly digest.
#[derive(Debug, Clone, Args)]
pub struct InsightsConfig {
    /// Serve `/dashboard` and `/api/*` without a token on a non-loopback address. Without a
    /// token and without this, they answer 403 there (GitHub logins are personal data).
    #[arg(long, env = "HERALD_PUBLIC_DASHBOARD", default_value_t = false)]
    pub public_dashboard: bool,
    /// The address people reach this herald at (`https://herald.example.com`), for the
    /// dashboard link in digests; the dashboard's login cookie is `Secure` when it is https.
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Post the weekly digest to this destination (a `slack-webhook` or `stdout` destination);
    /// off when unset.
    #[arg(long, env = "HERALD_DIGEST_DESTINATION")]
    pub digest_destination: Option<String>,
    /// When the weekly digest is posted: a weekday and a time (`Mon 09:00`).
    #[arg(long, env = "HERALD_DIGEST_SCHEDULE", default_value = "Mon 09:00")]
    pub digest_schedule: String,
    /// The time zone of the schedule (IANA, `Europe/Berlin`).
    #[arg(long, env = "HERALD_DIGEST_ZONE", default_value = "UTC")]
    pub digest_zone: String,
}
