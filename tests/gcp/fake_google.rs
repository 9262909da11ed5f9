//! One local fake of the Google endpoints herald calls, checking each request's exact shape:
//! an OAuth token endpoint that verifies the service-account JWT with the key's public half, the
//! metadata server, Secret Manager's `:access`, and BigQuery's `insertAll`. Answers can be
//! scripted; every request is recorded.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const SERVICE_ACCOUNT: &str = "herald-test@p1.iam.gserviceaccount.com";
pub const KEY_ID: &str = "0123456789abcdef";

/// A service-account key made for the test: the JSON file herald reads, and the public key
/// (PKCS#1 DER) the fake token endpoint verifies signatures with.
pub struct TestKey {
    pub dir: tempfile::TempDir,
    pub public_der: Vec<u8>,
    pub pem: String,
}

impl TestKey {
    /// A fresh 2048-bit RSA key from `openssl`.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("key.pem");
        let status = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem_path)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is needed to make a test key");
        assert!(status.success());
        let public = std::process::Command::new("openssl")
            .args(["rsa", "-RSAPublicKey_out", "-outform", "DER", "-in"])
            .arg(&pem_path)
            .stderr(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(public.status.success());
        let pem = std::fs::read_to_string(&pem_path).unwrap();
        Self {
            dir,
            public_der: public.stdout,
            pem,
        }
    }

    /// Writes the key file herald reads (`GOOGLE_APPLICATION_CREDENTIALS`) naming `token_uri`.
    pub fn key_file(&self, token_uri: &str) -> PathBuf {
        let path = self.dir.path().join("service-account.json");
        let file = json!({
            "type": "service_account",
            "project_id": "p1",
            "private_key_id": KEY_ID,
            "private_key": self.pem,
            "client_email": SERVICE_ACCOUNT,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        });
        std::fs::write(&path, file.to_string()).unwrap();
        path
    }
}

/// What the token endpoints answer next.
#[derive(Debug, Clone)]
pub enum TokenReply {
    /// A token living this long.
    Token { expires_in: u64 },
    /// An error status with an OAuth error body.
    Status(u16, &'static str),
    /// A token, after a delay (a slow token endpoint).
    Slow(Duration),
}

/// What BigQuery's `insertAll` answers next.
#[derive(Debug, Clone)]
pub enum InsertReply {
    /// 200, every row inserted.
    Ok,
    /// 200 with these rows (by index in the request) failed for this reason.
    RowErrors(Vec<(usize, &'static str)>),
    /// An error status with a BigQuery error body and reason, and maybe `Retry-After`.
    Status(u16, &'static str, Option<u64>),
    /// Never answers (the client times out).
    Hang,
}

/// One request to a Google API, as received.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub path: String,
    pub authorization: String,
    pub content_type: String,
    pub body: Value,
}

/// A secret version: its number, value and creation time.
type SecretVersion = (u32, String, std::time::SystemTime);

#[derive(Default)]
struct Fake {
    public_der: Mutex<Option<Vec<u8>>>,
    token_script: Mutex<VecDeque<TokenReply>>,
    issued: Mutex<Vec<String>>,
    /// Tokens no longer accepted (answered 401).
    revoked: Mutex<Vec<String>>,
    /// Every token request: the grant's claims (service account) or `metadata`.
    token_requests: Mutex<Vec<Value>>,
    /// Secret Manager: secret name → (version number, value, created); the last is `latest`.
    secrets: Mutex<HashMap<String, Vec<SecretVersion>>>,
    /// Secret Manager refuses versions' metadata (the accessor role alone).
    deny_metadata: Mutex<bool>,
    /// Secret Manager: an error status answered instead, for a while.
    secret_status: Mutex<Option<(u16, &'static str)>>,
    insert_script: Mutex<VecDeque<InsertReply>>,
    requests: Mutex<Vec<ApiRequest>>,
}

/// The fake, on a local port.
pub struct FakeGoogle {
    pub address: String,
    state: Arc<Fake>,
    _server: JoinHandle<()>,
}

impl FakeGoogle {
    pub async fn start() -> Self {
        let state = Arc::new(Fake::default());
        let app = Router::new()
            .route("/token", post(token))
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/token",
                get(metadata_token),
            )
            .route(
                "/v1/projects/{project}/secrets/{secret}/versions/{version}",
                get(access_secret),
            )
            .route(
                "/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}/insertAll",
                post(insert_all).layer(axum::extract::DefaultBodyLimit::max(20 << 20)),
            )
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            address,
            state,
            _server: server,
        }
    }

    /// Verifies JWTs with `key` from now on.
    pub fn trust(&self, key: &TestKey) {
        *self.state.public_der.lock().unwrap() = Some(key.public_der.clone());
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.address)
    }

    /// `host:port`, as `GCE_METADATA_HOST` takes it.
    pub fn metadata_host(&self) -> String {
        self.address.trim_start_matches("http://").to_owned()
    }

    pub fn script_tokens(&self, replies: Vec<TokenReply>) {
        self.state.token_script.lock().unwrap().extend(replies);
    }

    /// Every token issued so far is refused from now on.
    pub fn revoke_tokens(&self) {
        let issued = self.state.issued.lock().unwrap().clone();
        self.state.revoked.lock().unwrap().extend(issued);
    }

    pub fn token_requests(&self) -> Vec<Value> {
        self.state.token_requests.lock().unwrap().clone()
    }

    /// Adds a version to a secret (`projects/P/secrets/S`); it becomes `latest`.
    pub fn add_secret_version(&self, secret: &str, value: &str) -> u32 {
        self.add_secret_version_aged(secret, value, Duration::ZERO)
    }

    /// Adds a version created `age` ago.
    pub fn add_secret_version_aged(&self, secret: &str, value: &str, age: Duration) -> u32 {
        let mut secrets = self.state.secrets.lock().unwrap();
        let versions = secrets.entry(secret.to_owned()).or_default();
        let number = versions.len() as u32 + 1;
        versions.push((number, value.to_owned(), std::time::SystemTime::now() - age));
        number
    }

    /// Refuse (403) or answer requests for versions' metadata.
    pub fn deny_metadata(&self, deny: bool) {
        *self.state.deny_metadata.lock().unwrap() = deny;
    }

    /// Secret Manager answers this error (or again normally with `None`).
    pub fn fail_secrets(&self, failure: Option<(u16, &'static str)>) {
        *self.state.secret_status.lock().unwrap() = failure;
    }

    pub fn script_inserts(&self, replies: Vec<InsertReply>) {
        self.state.insert_script.lock().unwrap().extend(replies);
    }

    /// Requests to Secret Manager and BigQuery, in order.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn requests_to(&self, fragment: &str) -> Vec<ApiRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.path.contains(fragment))
            .collect()
    }
}

fn next_token(state: &Fake, expires_in: u64) -> Response {
    let mut issued = state.issued.lock().unwrap();
    let token = format!("ya29.test-token-{}", issued.len() + 1);
    issued.push(token.clone());
    Json(json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}))
        .into_response()
}

use axum::Json;

async fn scripted_token(state: &Fake) -> Response {
    let reply = state
        .token_script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(TokenReply::Token { expires_in: 3599 });
    match reply {
        TokenReply::Token { expires_in } => next_token(state, expires_in),
        TokenReply::Slow(delay) => {
            tokio::time::sleep(delay).await;
            next_token(state, 3599)
        }
        TokenReply::Status(status, error) => (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"error": error, "error_description": "refused by the fake"})),
        )
            .into_response(),
    }
}

/// The OAuth token endpoint: a JWT-bearer grant whose assertion must verify with the trusted key
/// and carry the claims Google requires.
async fn token(State(state): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    let refuse = |why: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    if header(&headers, "content-type") != "application/x-www-form-urlencoded" {
        return refuse("not a form".into());
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return refuse(format!("grant_type {:?}", form.get("grant_type")));
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse("no assertion".into());
    };
    let public = state.public_der.lock().unwrap().clone();
    let claims = match verify_jwt(assertion, public.as_deref()) {
        Ok(claims) => claims,
        Err(why) => return refuse(why),
    };
    state.token_requests.lock().unwrap().push(claims);
    scripted_token(&state).await
}

/// Checks a JWT's header, signature (RS256 with `public`) and claims; returns the claims.
fn verify_jwt(assertion: &str, public: Option<&[u8]>) -> Result<Value, String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("not three parts".into());
    };
    let decode = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let header = decode(header)?;
    if header != json!({"alg": "RS256", "typ": "JWT", "kid": KEY_ID}) {
        return Err(format!("header {header}"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    let public = public.ok_or("no trusted key")?;
    let signed = &assertion[..assertion.rfind('.').unwrap()];
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.".to_owned())?;
    let claims = decode(claims)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iat = claims["iat"].as_u64().ok_or("no iat")?;
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    if claims["iss"] != SERVICE_ACCOUNT
        || claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
        || !claims["aud"]
            .as_str()
            .is_some_and(|aud| aud.ends_with("/token"))
        || iat.abs_diff(now) > 60
        || exp != iat + 3600
    {
        return Err(format!("claims {claims}"));
    }
    Ok(claims)
}

async fn metadata_token(State(state): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if header(&headers, "metadata-flavor") != "Google" {
        return (
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.",
        )
            .into_response();
    }
    state.token_requests.lock().unwrap().push(json!("metadata"));
    scripted_token(&state).await
}

/// Records an API request; whether it carries a token the fake issued.
fn record(state: &Fake, path: String, headers: &HeaderMap, body: &[u8]) -> bool {
    let authorization = header(headers, "authorization");
    state.requests.lock().unwrap().push(ApiRequest {
        path,
        authorization: authorization.clone(),
        content_type: header(headers, "content-type"),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
    let revoked = state.revoked.lock().unwrap().clone();
    state
        .issued
        .lock()
        .unwrap()
        .iter()
        .filter(|token| !revoked.contains(token))
        .any(|token| authorization == format!("Bearer {token}"))
}

async fn access_secret(
    State(state): State<Arc<Fake>>,
    Path((project, secret, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/projects/{project}/secrets/{secret}/versions/{version}");
    if !record(&state, path, &headers, b"") {
        return google_error(401, "UNAUTHENTICATED", "unauthenticated", None);
    }
    let (version, access) = match version.strip_suffix(":access") {
        Some(version) => (version.to_owned(), true),
        None => (version, false),
    };
    if let Some((status, message)) = *state.secret_status.lock().unwrap() {
        return google_error(status, "FAILED", message, None);
    }
    if !access && *state.deny_metadata.lock().unwrap() {
        return google_error(
            403,
            "PERMISSION_DENIED",
            "secretmanager.versions.get denied",
            None,
        );
    }
    let name = format!("projects/{project}/secrets/{secret}");
    let secrets = state.secrets.lock().unwrap();
    let found = secrets.get(&name).and_then(|versions| {
        if version == "latest" {
            versions.last()
        } else {
            versions
                .iter()
                .find(|(number, _, _)| number.to_string() == version)
        }
    });
    let Some((number, value, created)) = found else {
        return google_error(
            404,
            "NOT_FOUND",
            "Secret [projects/1/secrets/x] not found or has no versions.",
            None,
        );
    };
    if !access {
        let created = time::OffsetDateTime::from(*created)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        return Json(json!({
            "name": format!("projects/123456/secrets/{secret}/versions/{number}"),
            "createTime": created,
            "state": "ENABLED",
        }))
        .into_response();
    }
    Json(json!({
        "name": format!("projects/123456/secrets/{secret}/versions/{number}"),
        "payload": {
            "data": STANDARD.encode(value),
            "dataCrc32c": herald::gcp::crc32c(value.as_bytes()).to_string(),
        }
    }))
    .into_response()
}

async fn insert_all(
    State(state): State<Arc<Fake>>,
    Path((project, dataset, table)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path =
        format!("/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}/insertAll");
    if !record(&state, path, &headers, &body) {
        return google_error(401, "UNAUTHENTICATED", "unauthenticated", None);
    }
    let reply = state
        .insert_script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(InsertReply::Ok);
    match reply {
        InsertReply::Ok => {
            Json(json!({"kind": "bigquery#tableDataInsertAllResponse"})).into_response()
        }
        InsertReply::RowErrors(rows) => {
            let errors: Vec<Value> = rows
                .iter()
                .map(|(index, reason)| {
                    json!({"index": index, "errors": [{
                        "reason": reason, "location": "payload", "debugInfo": "",
                        "message": format!("{reason}: the fake refused row {index}"),
                    }]})
                })
                .collect();
            Json(json!({"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": errors}))
                .into_response()
        }
        InsertReply::Status(status, reason, retry_after) => {
            google_error(status, "ERROR", reason, retry_after)
        }
        InsertReply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

fn google_error(status: u16, code: &str, reason: &str, retry_after: Option<u64>) -> Response {
    let body = json!({"error": {
        "code": status,
        "message": format!("the fake says {reason}"),
        "errors": [{"message": format!("the fake says {reason}"), "domain": "global", "reason": reason}],
        "status": code,
    }});
    let mut response = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    response
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
