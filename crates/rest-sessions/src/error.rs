//! Every failure of a request, turned into the JSON error shape of the contract:
//! `{"error": "<name>", "message": "<text>"}`, with the status a client can act on
//! (400 fix your input, 401 authenticate, 413 send less, 503 retry later).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use redis_sessions::ErrorKind;
use serde::Serialize;
use std::borrow::Cow;

/// The JSON body of every error reply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// A stable name to match on: `missingParameter`, `invalidFormat`, `invalidValue`,
    /// `redisUnavailable`, `notFound`, `requestTimeout`, …
    pub error: Cow<'static, str>,
    /// A human-readable explanation.
    pub message: Cow<'static, str>,
}

/// The error name of a reply, kept in the response's extensions so the metrics layer can
/// count errors by name without parsing bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorName(pub &'static str);

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The session library refused the input or could not reach its store.
    Store(redis_sessions::Error),
    /// The request body was larger than the configured limit.
    PayloadTooLarge,
    /// The request body could not be read (client went away, broken framing).
    BadBody,
    /// Missing or wrong `Authorization: Bearer` secret.
    Unauthorized,
    /// No route has this path.
    NotFound,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// The store did not answer within the request deadline (too slow or away).
    Timeout,
    /// The client did not send its request body within the body timeout: its fault, not
    /// the store's, so a 408 and never counted as an outage.
    RequestTimeout,
    /// A bug: a handler panicked. The process keeps serving.
    Internal,
    /// The request bytes in flight are at the memory budget: refused before its body was
    /// read; retry after `Retry-After`.
    Overloaded,
    /// `GET /{app}/events` on a server without `RS_EVENTS`: no events are written, so
    /// there is nothing to serve (a 404, as for a route this server does not have).
    EventsOff,
    /// Every event stream slot (`RS_EVENTS_MAX_STREAMS`) is taken; retry after
    /// `Retry-After`, or read pages.
    TooManyStreams,
}

/// The reply to a request refused over the memory budget.
pub(crate) fn overloaded() -> Response {
    ApiError::Overloaded.into_response()
}

impl ApiError {
    /// The HTTP status of this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            // The library's one mapping, shared with the axum middleware: 400 input, 503
            // unreachable/closed/Redis answering with an error (LOADING, READONLY, OOM…),
            // 500 corrupt data.
            ApiError::Store(e) => StatusCode::from_u16(e.kind().http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::BadBody => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::EventsOff => StatusCode::NOT_FOUND,
            ApiError::TooManyStreams => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error's name in the reply.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ApiError::Store(e) if e.kind() == ErrorKind::Unavailable => "redisUnavailable",
            ApiError::Store(e) => e.name(),
            ApiError::PayloadTooLarge => "payloadTooLarge",
            ApiError::BadBody => "invalidBody",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound => "notFound",
            ApiError::MethodNotAllowed => "methodNotAllowed",
            ApiError::Timeout => "redisUnavailable",
            ApiError::RequestTimeout => "requestTimeout",
            ApiError::Internal => "internalError",
            ApiError::Overloaded => "overloaded",
            ApiError::EventsOff => "eventsOff",
            ApiError::TooManyStreams => "tooManyStreams",
        }
    }

    fn message(&self) -> Cow<'static, str> {
        match self {
            ApiError::Store(e) => e.to_string().into(),
            ApiError::PayloadTooLarge => "The request body is larger than the limit".into(),
            ApiError::BadBody => "The request body could not be read".into(),
            ApiError::Unauthorized => "Missing or wrong bearer token".into(),
            ApiError::NotFound => "No such route".into(),
            ApiError::MethodNotAllowed => "Method not allowed on this route".into(),
            ApiError::Timeout => "The session store did not answer in time".into(),
            ApiError::RequestTimeout => "The request body did not arrive in time".into(),
            ApiError::Internal => "Internal server error".into(),
            ApiError::Overloaded => {
                "The server is at its memory budget for requests in flight; retry".into()
            }
            ApiError::EventsOff => "Session events are off on this server (RS_EVENTS)".into(),
            ApiError::TooManyStreams => {
                "The server serves as many event streams as it may (RS_EVENTS_MAX_STREAMS); \
                 retry, or read pages"
                    .into()
            }
        }
    }
}

impl From<redis_sessions::Error> for ApiError {
    fn from(err: redis_sessions::Error) -> Self {
        ApiError::Store(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let name = self.name();
        // A refusal under load is counted, not logged: an attack would flood the log.
        if status.is_server_error()
            && !matches!(self, ApiError::Overloaded | ApiError::TooManyStreams)
        {
            // The message of a store error names the failure, never a token or session data.
            tracing::warn!(error = name, message = %self.message(), "request failed");
        }
        let body = ErrorBody {
            error: name.into(),
            message: self.message(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::Overloaded | ApiError::TooManyStreams) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::REQUEST_TIMEOUT || matches!(self, ApiError::Overloaded) {
            // The (rest of the) body may still be on its way: the connection cannot carry
            // another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response.extensions_mut().insert(ErrorName(name));
        response
    }
}
