//! The optional shared secret. The original server trusted everyone who could reach it;
//! when `RS_AUTH_TOKEN` is set, callers must prove they know the secret, so a server
//! reachable beyond loopback does not hand sessions to anyone on the network.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Routes open without the secret: liveness probes, the API description and the console's
/// page (served only with `RS_CONSOLE`; it holds no data, and a browser's navigation
/// cannot send the bearer header: the page asks for the secret and sends it itself),
/// which reveal nothing about sessions.
pub(crate) const PUBLIC_PATHS: [&str; 4] = ["/ping", "/health", "/openapi.json", "/console"];

/// Middleware: lets a request through when no secret is configured, when its path is
/// public, or when it carries `Authorization: Bearer <secret>`; answers 401 otherwise.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(secret) = state.auth_token.as_deref() else {
        return next.run(request).await;
    };
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    if presents_secret(request.headers(), secret) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// True when `headers` carry `Authorization: Bearer <secret>`.
pub(crate) fn presents_secret(headers: &axum::http::HeaderMap, secret: &str) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| bearer(value.as_bytes()))
        .is_some_and(|given| constant_time_eq(given, secret.as_bytes()))
}

/// The credentials of a `Bearer` authorization header (scheme case-insensitive).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let start = rest.iter().position(|b| *b != b' ')?;
    Some(&rest[start..])
}

/// Compares two byte strings in time that depends only on their lengths, not on where
/// they differ, so the secret cannot be guessed byte by byte from response times.
pub(crate) fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    let len = given.len().max(secret.len());
    let mut diff = u8::from(given.len() != secret.len());
    for i in 0..len {
        let a = given.get(i).copied().unwrap_or(0);
        let b = secret.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(a ^ b);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn parses_bearer() {
        assert_eq!(bearer(b"Bearer xyz"), Some(&b"xyz"[..]));
        assert_eq!(bearer(b"bearer  xyz"), Some(&b"xyz"[..]));
        assert_eq!(bearer(b"Basic xyz"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
    }
}
