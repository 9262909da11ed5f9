//! Every error answer as `{"error": "..."}` with `content-type: application/json`, including the
//! ones herald's handlers do not write: a wrong method (axum's empty 405), the request deadline
//! (tower-http's empty 408), and extractor rejections (plain-text 400, 413, 415). Clients parse
//! one shape whatever failed. The dashboard's pages for people (HTML) are left as they are.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

/// Longest plain-text reason kept from a rejection; longer bodies get the status's own words.
const MAX_REASON_BYTES: usize = 512;

/// Middleware: rewrites an error answer that is neither JSON nor HTML.
pub async fn as_json(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || already_shaped(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let reason = axum::body::to_bytes(body, MAX_REASON_BYTES)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| default_reason(status, &method, &parts.headers));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&json!({ "error": reason })).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

/// JSON already, or a page meant for a browser.
fn already_shaped(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let value = value.trim_start().to_ascii_lowercase();
            value.starts_with("application/json") || value.starts_with("text/html")
        })
}

/// Words for an answer that came with none.
fn default_reason(status: StatusCode, method: &Method, headers: &HeaderMap) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = headers
                .get(header::ALLOW)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty());
            match allowed {
                Some(allowed) => {
                    let allowed: Vec<&str> = allowed.split(',').map(str::trim).collect();
                    let allowed = match allowed.split_last() {
                        Some((last, [])) => (*last).to_owned(),
                        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                        None => String::new(),
                    };
                    format!("method {method} not allowed here; use {allowed}")
                }
                None => format!("method {method} not allowed here"),
            }
        }
        StatusCode::REQUEST_TIMEOUT => "the request took too long".to_owned(),
        StatusCode::NOT_FOUND => "not found".to_owned(),
        other => other
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::routing::{get, post};
    use tower_http::timeout::TimeoutLayer;

    use super::*;

    /// Answers from axum and tower-http themselves, served for real: a JSON extractor's 415 and
    /// 400, the request deadline's empty 408, and a handler's plain-text error.
    #[tokio::test]
    async fn answers_herald_did_not_write_become_json() {
        let app = Router::new()
            .route(
                "/json",
                post(|axum::Json(_): axum::Json<serde_json::Value>| async { "ok" }),
            )
            .route(
                "/slow",
                get(|| async {
                    std::future::pending::<()>().await;
                    "never"
                }),
            )
            .route(
                "/text",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "try later") }),
            )
            .route(
                "/page",
                get(|| async {
                    (
                        StatusCode::FORBIDDEN,
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        "<p>closed</p>",
                    )
                }),
            )
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(50),
            ));
        let app = Router::new()
            .fallback_service(app)
            .layer(axum::middleware::from_fn(as_json));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let cases = [
            (client.post(format!("{base}/json")).body("{}"), 415),
            (
                client
                    .post(format!("{base}/json"))
                    .header("content-type", "application/json")
                    .body("{"),
                400,
            ),
            (client.get(format!("{base}/slow")), 408),
            (client.get(format!("{base}/text")), 503),
            (client.delete(format!("{base}/text")), 405),
        ];
        for (request, status) in cases {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let body: serde_json::Value = response.json().await.unwrap();
            let error = body["error"].as_str().unwrap_or_default();
            assert!(!error.is_empty(), "{status}: {body}");
            if status == 503 {
                assert_eq!(error, "try later", "a plain-text reason is kept");
            }
            if status == 405 {
                assert_eq!(error, "method DELETE not allowed here; use GET or HEAD");
            }
        }
        let page = client.get(format!("{base}/page")).send().await.unwrap();
        assert_eq!(page.status(), 403);
        assert_eq!(
            page.text().await.unwrap(),
            "<p>closed</p>",
            "HTML pages stay"
        );
    }

    #[test]
    fn a_wrong_method_names_the_right_one() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        assert_eq!(
            default_reason(StatusCode::METHOD_NOT_ALLOWED, &Method::GET, &headers),
            "method GET not allowed here; use POST"
        );
        headers.insert(header::ALLOW, HeaderValue::from_static("GET,HEAD,POST"));
        assert_eq!(
            default_reason(StatusCode::METHOD_NOT_ALLOWED, &Method::PUT, &headers),
            "method PUT not allowed here; use GET, HEAD or POST"
        );
        assert_eq!(
            default_reason(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &Method::POST,
                &HeaderMap::new()
            ),
            "unsupported media type"
        );
    }
}
