//! The one error type of the crate, which is also the extractor's rejection: every store
//! failure becomes a proper HTTP response instead of a panic.

use axum::response::{IntoResponse, Response};
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};
use redis_sessions::ErrorKind;

/// Seconds a client is asked to wait (`Retry-After`) when the store is unreachable: long
/// enough for the connection to be re-established after a Redis restart or failover.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// What can go wrong with a request's session.
///
/// It implements [`IntoResponse`], so handlers can use `?` on every session operation and
/// still answer with a sensible status: 503 with `Retry-After` while the store is
/// unreachable or answers with an error, 400 for an input the store refused (say a user id
/// with a line break), 401 for an operation that needs a logged-in session, 500 for the
/// rest (see [`status`](Self::status)). Every 500 is logged
/// through `tracing` at error level with its cause (never with tokens or session data).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session store failed or refused the call.
    #[error("session store: {0}")]
    Store(#[from] redis_sessions::Error),
    /// A value given to [`Session::insert`](crate::Session::insert) cannot be serialized
    /// to JSON (e.g. a map whose keys are not strings or numbers).
    #[error("session value `{key}` cannot be stored: {reason}")]
    Encode {
        /// The key whose value was refused.
        key: String,
        /// serde's reason.
        reason: String,
    },
    /// The request carried a token that a concurrent request replaced (a login,
    /// [`upgrade`](crate::Session::upgrade) or [`rotate`](crate::Session::rotate)) while
    /// this one was on its way or running: nothing of this request was saved and its
    /// cookie is left alone (the browser already holds the new one). Answers 409 Conflict:
    /// retry the request, which then carries the new cookie. See
    /// [`SessionLayer::rotation_grace`](crate::SessionLayer::rotation_grace).
    #[error(
        "the session was renewed by a concurrent login or rotation while this request ran: \
         nothing was saved; retry the request with the new cookie"
    )]
    Rotated,
    /// The operation needs a logged-in session (after [`upgrade`](crate::Session::upgrade)).
    #[error("this request has no logged-in session")]
    NotAuthenticated,
    /// The app name computed for the request by
    /// [`per_request_app`](crate::SessionLayer::per_request_app) does not match
    /// `^[A-Za-z0-9_-]{3,20}$`: a configuration error, reported to the routes that use the
    /// session only.
    #[error("invalid session app name `{0}` computed for this request (it must match ^[A-Za-z0-9_-]{{3,20}}$)")]
    InvalidApp(String),
    /// The [`Session`](crate::Session) extractor was used on a route without the
    /// [`SessionLayer`](crate::SessionLayer).
    #[error(
        "the Session extractor was used on a route without SessionLayer: add \
         `.layer(SessionLayer::new(store, \"app\"))` to the Router after the routes that take a Session"
    )]
    MissingLayer,
}

impl SessionError {
    /// The HTTP status this error answers with: a store error by the library's one mapping
    /// ([`ErrorKind::http_status`], the same as `rest-sessions`), 401 for
    /// [`NotAuthenticated`](Self::NotAuthenticated), 409 for [`Rotated`](Self::Rotated),
    /// 500 for the rest.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            SessionError::Store(e) => StatusCode::from_u16(e.kind().http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            SessionError::NotAuthenticated => StatusCode::UNAUTHORIZED,
            SessionError::Rotated => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            SessionError::Store(e) if e.kind().is_retryable() => {
                tracing::warn!(error = %e, "session store unavailable: answering 503");
                let mut response =
                    (status, "session store unavailable, try again later").into_response();
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                response
            }
            SessionError::Store(e) if e.kind() == ErrorKind::Input => {
                (status, e.to_string()).into_response()
            }
            SessionError::NotAuthenticated => (status, self.to_string()).into_response(),
            SessionError::Rotated => {
                tracing::info!("a request with a token replaced meanwhile: answering 409");
                (status, self.to_string()).into_response()
            }
            // A configuration mistake: the message says what to change, to the developer
            // who meets it first in the browser, and to the log.
            SessionError::MissingLayer => {
                tracing::error!(error = %self, "session error: answering 500");
                (status, self.to_string()).into_response()
            }
            // Logged at error level once per layer, when first met (see the service); a
            // client that sends odd Host headers must not flood the log.
            SessionError::InvalidApp(_) => {
                tracing::debug!(error = %self, "session error: answering 500");
                (status, "session error").into_response()
            }
            other => {
                tracing::error!(error = %other, "session error: answering 500");
                (status, "session error").into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_answer_the_library_status() {
        let unconfirmed = SessionError::Store(redis_sessions::Error::NotReplicated {
            acked: 0,
            wanted: 1,
        });
        assert_eq!(unconfirmed.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = unconfirmed.into_response();
        assert!(response.headers().contains_key(RETRY_AFTER));
        let input = SessionError::Store(redis_sessions::Error::InvalidFormat(
            "Invalid id format".into(),
        ));
        assert_eq!(input.status(), StatusCode::BAD_REQUEST);
        let corrupt = SessionError::Store(redis_sessions::Error::Corrupt("field d".into()));
        assert_eq!(corrupt.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            SessionError::NotAuthenticated.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
