//! The outermost middleware of every route: one access-log event and the metrics of each
//! request. It sees the matched route template (`/:app/get/:token`), never
//! the raw path, so tokens, ids and session data never reach logs or metric labels.

use crate::error::ErrorName;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// The route label of requests that matched no route.
pub(crate) const UNMATCHED: &str = "unmatched";

/// Middleware: logs and counts each request once answered.
pub(crate) async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| route_template(path.as_str()))
        .unwrap_or_else(|| UNMATCHED.to_string());

    let response = next.run(request).await;

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let error = response.extensions().get::<ErrorName>().map(|e| e.0);
    tracing::info!(
        target: "rest_sessions::access",
        method,
        route = %route,
        status,
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        error = error.unwrap_or(""),
        "request"
    );
    crate::metrics::record(method, &route, status, error, elapsed);
    response
}

/// A fixed label per method, so a client inventing methods cannot create new series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// axum's `/{app}/get/{token}` written as the original's `/:app/get/:token`.
pub(crate) fn route_template(axum_path: &str) -> String {
    axum_path.replace('{', ":").replace('}', "")
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates() {
        assert_eq!(
            super::route_template("/{app}/get/{token}"),
            "/:app/get/:token"
        );
        assert_eq!(super::route_template("/ping"), "/ping");
    }
}
