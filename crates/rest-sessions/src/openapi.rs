//! The OpenAPI document served at `/openapi.json`, generated from the handlers'
//! annotations so it cannot drift from the routes: clients in any language can generate
//! their bindings from it.

use crate::error::ErrorBody;
use crate::routes::{ActivityReply, HealthReply, KillReply, TokenReply, UnreachableNode};
use std::collections::BTreeMap;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// A session as the API returns it (documentation of `redis_sessions::Session`).
#[derive(ToSchema)]
#[schema(as = Session)]
#[allow(dead_code)]
pub struct SessionSchema {
    /// The user id.
    id: String,
    /// Reads before this one.
    r: u64,
    /// Writes so far.
    w: u64,
    /// Idle timeout in seconds, or for a `no_resave` session the seconds left.
    ttl: i64,
    /// Seconds since the last activity.
    idle: i64,
    /// The client address given at create.
    ip: String,
    /// The data, absent when there is none.
    d: Option<BTreeMap<String, serde_json::Value>>,
    /// Present (true) for sessions that end at a fixed time.
    no_resave: Option<bool>,
}

/// The reply of `soapp` and `soid` (documentation).
#[derive(ToSchema)]
#[schema(as = Sessions)]
#[allow(dead_code)]
pub struct SessionsSchema {
    /// Live sessions, most recently active first.
    sessions: Vec<SessionSchema>,
}

/// Declares the optional bearer secret (`RS_AUTH_TOKEN`).
struct BearerSecret;

impl Modify for BearerSecret {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every route and reply schema of the server.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rest-sessions",
        description = "User sessions shared by services in any language, over Redis. When the \
            server runs with RS_AUTH_TOKEN, every route but /ping, /health and /openapi.json \
            needs `Authorization: Bearer <secret>`."
    ),
    paths(
        crate::routes::ping,
        crate::routes::health,
        crate::routes::metrics,
        crate::routes::openapi,
        crate::routes::create,
        crate::routes::get,
        crate::routes::set,
        crate::routes::activity,
        crate::routes::soapp,
        crate::routes::soid,
        crate::routes::kill,
        crate::routes::killsoid,
        crate::routes::killall,
    ),
    components(schemas(
        SessionSchema,
        SessionsSchema,
        TokenReply,
        ActivityReply,
        KillReply,
        HealthReply,
        UnreachableNode,
        ErrorBody
    )),
    modifiers(&BearerSecret),
    tags(
        (name = "sessions", description = "The redis-sessions contract"),
        (name = "operations", description = "Liveness, readiness, metrics, this document")
    )
)]
pub struct ApiDoc;

/// The document, built once per call (cheap; requested rarely).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
