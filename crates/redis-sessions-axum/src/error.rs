//! The one error type of the crate, which is also the extractor's rejection: every store
//! failure becomes a proper HTTP response instead of a panic.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// What can go wrong with a request's session.
///
/// It implements [`IntoResponse`], so handlers can use `?` on every session operation and
/// still answer with a sensible status: 503 while the store is unreachable (worth a
/// retry), 400 for an input the store refused (say a user id with a line break), 401 for
/// an operation that needs a logged-in session, 500 for the rest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session store failed or refused the call.
    #[error("session store: {0}")]
    Store(#[from] redis_sessions::Error),
    /// A value given to [`Session::insert`](crate::Session::insert) is not a string,
    /// number, boolean or null: the store keeps only such values (shared with Node.js).
    #[error("session value `{key}` must be a string, number, boolean or null")]
    NotScalar {
        /// The key whose value was refused.
        key: String,
    },
    /// The operation needs a logged-in session (after [`upgrade`](crate::Session::upgrade)).
    #[error("this request has no logged-in session")]
    NotAuthenticated,
    /// The app name computed for the request does not match `^[A-Za-z0-9_-]{3,20}$`.
    #[error("invalid session app name `{0}`")]
    InvalidApp(String),
    /// The [`Session`](crate::Session) extractor was used on a route without the
    /// [`SessionLayer`](crate::SessionLayer).
    #[error("the Session extractor needs the SessionLayer on this route")]
    MissingLayer,
}

impl SessionError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            SessionError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::Store(e) if e.is_input_error() => StatusCode::BAD_REQUEST,
            SessionError::NotAuthenticated => StatusCode::UNAUTHORIZED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            SessionError::Store(e) if e.is_input_error() => e.to_string(),
            SessionError::NotAuthenticated => self.to_string(),
            SessionError::Store(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "session store unavailable");
                "session store unavailable, try again later".to_string()
            }
            other => {
                tracing::error!(error = %other, "session error");
                "session error".to_string()
            }
        };
        (status, body).into_response()
    }
}
