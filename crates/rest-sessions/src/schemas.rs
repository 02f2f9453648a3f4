//! What the OpenAPI document says of the inputs and errors that no Rust type of the server
//! carries as such: path and query parameters (with the contract's patterns and bounds,
//! checked against the library's rules by openapi.rs's tests), the request bodies, and the
//! error replies of each kind of route. The replies' schemas come from their own types
//! (replies.rs, and `redis_sessions::Session` itself).

use crate::error::ErrorBody;
use crate::replies::HealthReply;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{OneOfBuilder, RefOr};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToSchema};

/// A value of a data object in a request body: a string, a number or a boolean.
fn scalar() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)))
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Number)))
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Boolean)))
        .build()
        .into()
}

/// `app` in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct AppParam {
    /// App name: 3-20 of `A-Z a-z 0-9 _ -`.
    #[param(pattern = "^[A-Za-z0-9_-]{3,20}$", min_length = 3, max_length = 20)]
    app: String,
}

/// `app` and `token` in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct AppTokenParams {
    /// App name: 3-20 of `A-Z a-z 0-9 _ -`.
    #[param(pattern = "^[A-Za-z0-9_-]{3,20}$", min_length = 3, max_length = 20)]
    app: String,
    /// Session token: 64 letters and digits.
    #[param(pattern = "^[A-Za-z0-9]{64}$", min_length = 64, max_length = 64)]
    token: String,
}

/// `app` and `id` in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct AppIdParams {
    /// App name: 3-20 of `A-Z a-z 0-9 _ -`.
    #[param(pattern = "^[A-Za-z0-9_-]{3,20}$", min_length = 3, max_length = 20)]
    app: String,
    /// User id: 1-128 characters, any but line breaks (e-mail addresses, Korean, `:`),
    /// percent-encoded as UTF-8; an invalid encoding is a 400.
    #[param(
        pattern = "^[^\\n\\r\\u2028\\u2029]{1,128}$",
        min_length = 1,
        max_length = 128
    )]
    id: String,
}

/// `app`, `id` and a device `handle` in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct AppIdHandleParams {
    /// App name: 3-20 of `A-Z a-z 0-9 _ -`.
    #[param(pattern = "^[A-Za-z0-9_-]{3,20}$", min_length = 3, max_length = 20)]
    app: String,
    /// User id: 1-128 characters, any but line breaks, percent-encoded as UTF-8.
    #[param(
        pattern = "^[^\\n\\r\\u2028\\u2029]{1,128}$",
        min_length = 1,
        max_length = 128
    )]
    id: String,
    /// A session's device handle, as `soid` lists it: 32 lowercase hex digits.
    #[param(pattern = "^[0-9a-f]{32}$", min_length = 32, max_length = 32)]
    handle: String,
}

/// The query of `killsoid`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct KeepQuery {
    /// The token of a session to keep ("sign out all other devices"): 64 letters and digits.
    #[param(pattern = "^[A-Za-z0-9]{64}$", min_length = 64, max_length = 64)]
    keep: Option<String>,
}

/// The query of `create`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct CreateQuery {
    /// The client's address: 1-39 characters, no line breaks.
    #[param(
        pattern = "^[^\\n\\r\\u2028\\u2029]{1,39}$",
        min_length = 1,
        max_length = 39
    )]
    ip: String,
    /// Idle timeout in seconds (default 7200).
    #[param(minimum = 10)]
    ttl: Option<i64>,
    /// `true`: the session ends at create time + ttl, however often it is used. Any other
    /// value is ignored, as the original server did.
    no_resave: Option<String>,
}

/// The query of `activity` and `soapp`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct WindowQuery {
    /// Window in seconds.
    #[param(minimum = 10)]
    dt: i64,
}

/// The query of `stats`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct StatsQuery {
    /// Windows to count active sessions and ids over: whole seconds, comma-separated, at
    /// most 32 [default: `300,3600,86400`].
    #[param(
        example = "300,3600,86400",
        pattern = r"^[0-9]{1,19}(,[0-9]{1,19}){0,31}$"
    )]
    windows: Option<String>,
}

/// The query of `events`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct EventsQuery {
    /// The position to read after: an event's `cursor` (or `next` of a page); empty for
    /// the oldest event retained. One Redis: `ms-seq`; a cluster: `shard:ms-seq` for each
    /// shard read, joined by `,`. A shard past the namespace's shards is a 400.
    #[param(
        pattern = "^(|[0-9]{1,19}-[0-9]{1,19}|[0-9]{1,5}:[0-9]{1,19}-[0-9]{1,19}(,[0-9]{1,5}:[0-9]{1,19}-[0-9]{1,19})*)$",
        max_length = 4096
    )]
    after: Option<String>,
    /// JSON page only: most events in the page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    count: Option<i64>,
}

/// A data object in a request body: string, number or boolean values, `null` to delete a
/// key (at `set`) or to leave it out (at `create`).
fn data_schema(min_properties: usize) -> Schema {
    let value = OneOfBuilder::new()
        .item(scalar())
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
        .build();
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .min_properties(Some(min_properties))
        .additional_properties(Some(RefOr::T(Schema::OneOf(value))))
        .build()
        .into()
}

/// The body of `create`: optional data (`{}` or no body: none).
pub(crate) struct CreateBody;

impl PartialSchema for CreateBody {
    fn schema() -> RefOr<Schema> {
        RefOr::T(data_schema(0))
    }
}

impl ToSchema for CreateBody {}

/// The body of `set`: the keys to change, at least one.
pub(crate) struct SetBody;

impl PartialSchema for SetBody {
    fn schema() -> RefOr<Schema> {
        RefOr::T(data_schema(1))
    }
}

impl ToSchema for SetBody {}

/// The 503 of `/health`: its own reply when the store is away (with `message` and
/// `unreachable` only for callers with the secret, or with `RS_HEALTH_DETAIL`), or the
/// error body when the server is at its connection limit.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum HealthUnavailable {
    /// The store does not answer.
    Store(HealthReply),
    /// `tooManyConnections`.
    Busy(ErrorBody),
}

/// The error replies of a route that reads the store but takes no body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum StoreErrors {
    /// A broken input rule (`missingParameter`, `invalidFormat`, `invalidValue`), including
    /// a path segment whose percent-encoding is invalid.
    #[response(status = 400)]
    BadInput(ErrorBody),
    /// Missing or wrong bearer secret (`unauthorized`), when the server has one.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Stored data that cannot be read (`internalError` and the library's names).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The store did not answer within 2 s (`redisUnavailable`), the server is at its
    /// connection limit (`tooManyConnections`, with `Retry-After`) or its memory budget
    /// for requests (`overloaded`, with `Retry-After`, nothing applied), or durable writes
    /// are on and the replicas did not confirm in time (`notReplicated`). On a write the
    /// outcome of `redisUnavailable` and `notReplicated` is unknown: it may have been
    /// applied.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The error replies of a route that takes a body: [`StoreErrors`] and the body's own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum BodyErrors {
    /// A broken input rule (`missingParameter`, `invalidFormat`, `invalidValue`), including
    /// a body that is not a JSON object and a badly encoded path segment.
    #[response(status = 400)]
    BadInput(ErrorBody),
    /// Missing or wrong bearer secret (`unauthorized`), when the server has one.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The body did not arrive within the body timeout (`requestTimeout`).
    #[response(status = 408)]
    RequestTimeout(ErrorBody),
    /// The body is over the body limit (`payloadTooLarge`), or the session's data would
    /// pass the store's bounds of 1000 keys and 64 KiB of JSON (`dataTooLarge`; nothing
    /// was written).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// Stored data that cannot be read (`internalError` and the library's names).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The store did not answer within 2 s (`redisUnavailable`), the server is at its
    /// connection limit (`tooManyConnections`) or its memory budget for requests
    /// (`overloaded`: refused before its body was read, nothing applied), or durable writes
    /// are on and the replicas did not confirm in time (`notReplicated`). After
    /// `redisUnavailable` or `notReplicated` the write may have been applied.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
