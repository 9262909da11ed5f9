//! What herald knows of GitHub: webhook signatures, secrets, the few payload fields it indexes,
//! and a small REST client (for backfill and redeliver).

mod event;
mod hooks;
mod payload;
mod rest;
mod secrets;
mod signature;

pub use event::{EventName, IndexedEvent, MAX_DEPTH, ParseError, nesting_depth};
pub use hooks::{Hook, HookDelivery, HookNameError};
pub use payload::{PayloadError, is_form, json_document};
pub use rest::{Item, Page, RestClient, RestError, link_target, next_link, rate_limit_wait};
pub use secrets::{SecretSource, WebhookSecrets, load_secrets};
pub use signature::{SignatureError, SignatureVerifier, sign_sha256};
