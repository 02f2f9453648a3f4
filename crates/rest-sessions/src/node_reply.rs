//! Replies written byte for byte as the Node server writes them.
//!
//! The original server answers with `JSON.stringify`, which writes numbers in ECMAScript's
//! form (`1e+21`, `12345678901234567000`); serde_json writes the same doubles differently
//! (`1e21`). Clients that compare or hash reply bodies, and the tests that compare us with
//! the original, need the same bytes, so every JSON reply goes through this type.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A JSON reply in the bytes Node's `JSON.stringify` writes.
pub(crate) struct NodeJson<T>(pub T);

impl<T: Serialize> IntoResponse for NodeJson<T> {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json")],
            redis_sessions::node_json::to_vec(&self.0),
        )
            .into_response()
    }
}
