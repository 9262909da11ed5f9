//! What herald knows of GitHub's webhooks: signatures, secrets, and the few payload fields it indexes.

mod event;
mod secrets;
mod signature;

pub use event::{EventName, IndexedEvent, ParseError};
pub use secrets::{SecretSource, WebhookSecrets, load_secrets};
pub use signature::{SignatureError, SignatureVerifier, sign_sha256};
