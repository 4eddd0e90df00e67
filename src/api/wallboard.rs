//! The wallboard page at `/` (also `/wallboard`): HTML, CSS and
//! JavaScript embedded in the binary, no build step, nothing loaded from
//! elsewhere, so it works offline. The page holds no data: it follows
//! the event stream ([`super::stream`]) with the API's own access rules,
//! and a supervisor who logs in with a `supervisor` token pauses,
//! unpauses and logs out agents through the same API as every client.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("wallboard/index.html");
const SCRIPT: &str = include_str!("wallboard/wallboard.js");
const STYLE: &str = include_str!("wallboard/wallboard.css");

/// What every file of the page is sent with: no framing by other sites,
/// nothing loaded from anywhere but zentrale itself.
const POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/`, `/wallboard`, `/wallboard.js`, `/wallboard.css`: open, like
/// `/healthz` (the files carry no data).
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let index = || async { file("text/html; charset=utf-8", INDEX) };
    Router::new()
        .route("/", get(index))
        .route("/wallboard", get(index))
        .route(
            "/wallboard.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/wallboard.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}
