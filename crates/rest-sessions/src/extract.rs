//! The request's inputs as the handlers need them: path parameters decoded strictly, and
//! the body read within its own timeout and size limit.
//!
//! axum's `Path` decodes leniently (`%ZZ` stays `%ZZ`), and its body extractor shares the
//! request's deadline with the store call; both were wrong for a public endpoint.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Stands for a path segment whose percent-encoding is invalid (`%ZZ`, a lone `%`, bytes
/// that are not UTF-8): a line break, which every path rule of the contract (app, token,
/// id; docs/spec/redis-sessions.md#inputs-and-errors) rejects as malformed. The library then reports it in the contract's order and with
/// its message (`Invalid id format`), like any other malformed value.
pub(crate) const BADLY_ENCODED: &str = "\n";

/// The route's path parameters in the order of the route template, each percent-decoded
/// strictly.
#[derive(Debug)]
pub(crate) struct PathParams(pub Vec<String>);

impl PathParams {
    /// The first parameter (the app).
    pub(crate) fn one(self) -> String {
        self.0.into_iter().next().unwrap_or_default()
    }

    /// The first three parameters (app, id, handle).
    pub(crate) fn three(self) -> (String, String, String) {
        let mut params = self.0.into_iter();
        let first = params.next().unwrap_or_default();
        let second = params.next().unwrap_or_default();
        (first, second, params.next().unwrap_or_default())
    }

    /// The first two parameters (app, then token or id).
    pub(crate) fn two(self) -> (String, String) {
        let mut params = self.0.into_iter();
        let first = params.next().unwrap_or_default();
        (first, params.next().unwrap_or_default())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let template = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        // A `{param}` never spans a `/`, so the template's segments and the path's line up.
        let params = template
            .split('/')
            .zip(parts.uri.path().split('/'))
            .filter(|(name, _)| name.starts_with('{'))
            .map(|(_, raw)| decode_strict(raw).unwrap_or_else(|| BADLY_ENCODED.to_owned()))
            .collect();
        Ok(PathParams(params))
    }
}

/// Percent-decodes `raw`, or None when an escape is not `%` and two hex digits or the
/// decoded bytes are not UTF-8.
pub(crate) fn decode_strict(raw: &str) -> Option<String> {
    fn hex(digit: Option<&u8>) -> Option<u8> {
        (*digit? as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(hex(bytes.get(i + 1))? << 4 | hex(bytes.get(i + 2))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The whole request body, read within the body timeout and the size limit.
///
/// The timeout covers the whole body. tower-http's `RequestBodyTimeoutLayer` restarts its
/// timer at every frame, so a client sending a byte a second would never time out.
#[derive(Debug)]
pub(crate) struct TimedBody(pub Bytes);

impl FromRequest<AppState> for TimedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.body_limit;
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        // The deadline shrunk by the load when the request started (when it was served by
        // our accept loop).
        let context = request
            .extensions()
            .get::<crate::server::BodyContext>()
            .cloned();
        let deadline = context.as_ref().map_or(state.body_timeout, |c| c.deadline);
        let body = Limited::new(request.into_body(), limit);
        let read = tokio::time::timeout(deadline, body.collect()).await;
        if let Some(context) = context {
            context.activity.body_done();
        }
        match read {
            Ok(Ok(collected)) => Ok(TimedBody(collected.to_bytes())),
            Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
                Err(ApiError::PayloadTooLarge)
            }
            Ok(Err(_)) => Err(ApiError::BadBody),
            Err(_) => Err(ApiError::RequestTimeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode_strict;

    #[test]
    fn strict_decoding() {
        assert_eq!(decode_strict("a%40b.com").as_deref(), Some("a@b.com"));
        assert_eq!(decode_strict("%EA%b9%80").as_deref(), Some("김"));
        assert_eq!(decode_strict("plain+text").as_deref(), Some("plain+text"));
        assert_eq!(decode_strict("").as_deref(), Some(""));
        for bad in [
            "%ZZ",
            "%",
            "a%4",
            "%4g",
            "%E0%A4",
            "%FF",
            "%ED%A0%80",
            "%C3%28",
        ] {
            assert_eq!(decode_strict(bad), None, "{bad}");
        }
    }
}
