//! The handlers of the contract's routes, plus `/health`, `/metrics` and `/openapi.json`.
//!
//! Inputs are handed to the library as they come, so it checks them in the contract's
//! order and with its messages: a malformed query number or body becomes a value the
//! library rejects with the right error, rather than an error raised here out of order.
//! Query strings and bodies are parsed by hand, never by an extractor that could answer
//! with its own plain-text rejection.

use crate::deadline::store_call;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{PathParams, TimedBody};
use crate::node_reply::NodeJson;
use crate::replies::{
    ActivityReply, HealthNode, HealthReply, KillReply, MaybeSession, MigrationState, SessionsReply,
    StatsReply, TokenReply, UnreachableNode,
};
use crate::schemas::{
    AppIdHandleParams, AppIdParams, AppParam, AppTokenParams, BodyErrors, CreateBody, CreateQuery,
    HealthUnavailable, KeepQuery, SetBody, StatsQuery, StoreErrors, WindowQuery,
};
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use redis_sessions::CreateOptions;
use serde_json::Value;
use std::time::Duration;

/// A value the library rejects as "d must be an object": stands for a body that is not a
/// JSON object (malformed, an array, a string, invalid UTF-8), so the error comes in the
/// contract's order, after app, id/token, ip and ttl are checked.
const NOT_AN_OBJECT: Value = Value::Bool(false);

/// How long `/health` waits for the store's answer.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long `/health` waits for each node (and, on a cluster, for the topology first):
/// two steps fit in [`HEALTH_TIMEOUT`], so a silent node is named rather than hiding the
/// others behind a general timeout.
const NODE_TIMEOUT: Duration = Duration::from_millis(600);

type Reply<T> = Result<NodeJson<T>, ApiError>;

/// Query parameters; the first of repeated keys wins. Never fails: bad percent-encoding
/// decodes lossily and then fails the library's checks like any other bad value.
pub(crate) fn query(raw: Option<&str>) -> std::collections::HashMap<String, String> {
    let mut params = std::collections::HashMap::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        params
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    params
}

/// A query number: an integer, or 0 (which every numeric rule rejects) when it is not one,
/// so the library reports it with the contract's message and in the contract's order.
fn integer(value: &str) -> i64 {
    value.parse().unwrap_or(0)
}

/// A query parameter in seconds (`ttl`, `dt`) as the library's `Duration`: the REST
/// contract counts in seconds, the Rust API in `Duration`s. What is not a count of
/// seconds (negative, not an integer) becomes zero, which the library refuses with the
/// contract's message, as the Node server does.
fn seconds(value: &str) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(integer(value)).unwrap_or(0))
}

/// The body as JSON, or None when it is empty; anything that is not JSON becomes
/// [`NOT_AN_OBJECT`].
fn json_body(body: &[u8]) -> Option<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    // Read as Node's JSON.parse reads it: lone surrogates (`"\ud83d"`) and numbers past a
    // double (`1e400`, stored as null) are accepted, as the original server accepts them.
    let parsed = std::str::from_utf8(body)
        .ok()
        .and_then(|text| redis_sessions::node_json::parse(text, false).ok());
    Some(parsed.unwrap_or(NOT_AN_OBJECT))
}

/// Liveness of the service: `PONG` when the store answers a PING, as the original's ping
/// asked Redis (load balancers use it to see whether the service can serve); a JSON 503
/// within 2 s when it cannot.
#[utoipa::path(get, path = "/ping", tag = "operations",
    responses(
        (status = 200, description = "The store answers", body = String, content_type = "text/plain",
            example = "PONG"),
        (status = 503, description = "The store did not answer within 2 s (`redisUnavailable`), \
            or the server is at its connection limit (`tooManyConnections`)", body = ErrorBody)))]
pub(crate) async fn ping(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    store_call(state.store.ping()).await?;
    Ok("PONG")
}

/// Readiness: whether the store answers. The detail of a failure (Redis host:port, the
/// client's error text) tells an attacker where Redis is and how it fails: it goes only
/// to callers presenting the secret (`RS_AUTH_TOKEN`), or to all with `RS_HEALTH_DETAIL`.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "The store answers", body = HealthReply),
        (status = 503, description = "The store or one of its Redis nodes (a master, on a \
            cluster) is unreachable, or the server is at its connection limit \
            (`tooManyConnections`). `message` and `unreachable` only for callers with the \
            bearer secret, or for all with `RS_HEALTH_DETAIL=true`", body = HealthUnavailable)))]
pub(crate) async fn health(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let detail = state.health_detail
        || state
            .auth_token
            .as_deref()
            .is_some_and(|secret| crate::auth::presents_secret(&headers, secret));
    let store = state.store_kind.as_str();
    let check = async { tokio::join!(state.store.ping(), state.store.nodes(NODE_TIMEOUT)) };
    let (message, note, found) = match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
        Ok((ping, nodes)) => {
            let total = nodes.iter().filter(|n| !n.replica).count();
            let replicas = nodes.len() - total;
            let listed: Vec<HealthNode> = nodes
                .iter()
                .map(|n| HealthNode {
                    node: n.node.clone(),
                    replica: n.replica,
                    ok: n.error.is_none(),
                })
                .collect();
            let unreachable: Vec<UnreachableNode> = nodes
                .into_iter()
                .filter_map(|n| {
                    n.error.map(|error| UnreachableNode {
                        node: n.node,
                        error,
                        replica: n.replica,
                    })
                })
                .collect();
            let masters_out = unreachable.iter().filter(|n| !n.replica).count();
            let replicas_out = unreachable.len() - masters_out;
            let message = match ping {
                Err(err) => Some(err.to_string()),
                Ok(_) if masters_out > 0 => {
                    Some(format!("{masters_out} of {total} redis nodes unreachable"))
                }
                Ok(_) => None,
            };
            // Replicas that do not answer are reported without making the store
            // unavailable: their reads go to the masters meanwhile.
            let note = (message.is_none() && replicas_out > 0).then(|| {
                format!(
                    "{replicas_out} of {replicas} replicas unreachable; their reads go to the \
                     masters"
                )
            });
            (message, note, (unreachable, listed))
        }
        Err(_) => (
            Some("the store did not answer in time".to_string()),
            None,
            (Vec::new(), Vec::new()),
        ),
    };
    let status = if message.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // The nodes' list (`listed`) is detail too: it says where Redis is.
    let (message, (unreachable, listed)) = if detail {
        (message, found)
    } else {
        (None, (Vec::new(), Vec::new()))
    };
    let reply = HealthReply {
        status: if status == StatusCode::OK {
            "ok"
        } else {
            "unavailable"
        },
        store,
        message: message.or(note),
        unreachable,
        nodes: listed,
        migration: state.store.migration_cutover_ms().map(|ms| {
            let at = std::time::UNIX_EPOCH + Duration::from_millis(ms);
            MigrationState {
                cutover: crate::migrate::rfc3339(at),
                cutover_ms: ms,
                cut_over: std::time::SystemTime::now() >= at,
            }
        }),
    };
    (status, Json(reply)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing or wrong bearer secret (`unauthorized`)", body = ErrorBody),
        (status = 503, description = "The server is at its connection limit (`tooManyConnections`)",
            body = ErrorBody)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(stats) = state.store.cache_stats() {
        crate::metrics::record_cache(stats);
    }
    crate::metrics::record_request_bytes(state.overload.bytes_in_flight());
    let text = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Creates a session of user `id` in `app`.
#[utoipa::path(put, path = "/{app}/create/{id}", tag = "sessions",
    params(AppIdParams, CreateQuery),
    request_body(content = CreateBody, description = "Optional data `d`: a JSON object \
        of strings, numbers, booleans (null values are left out); no body or `{}` for none",
        content_type = "application/json"),
    responses(
        (status = 200, description = "Created", body = TokenReply),
        BodyErrors))]
pub(crate) async fn create(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
    RawQuery(raw): RawQuery,
    body: Result<TimedBody, ApiError>,
) -> Reply<TokenReply> {
    let (app, id) = path?.two();
    if let Some(webhooks) = &state.webhooks {
        webhooks.saw(&app);
    }
    let TimedBody(body) = body?;
    let params = query(raw.as_deref());
    let ip = params.get("ip").map(String::as_str).unwrap_or("");
    let mut options =
        CreateOptions::default().no_resave(params.get("no_resave").is_some_and(|v| v == "true"));
    if let Some(ttl) = params.get("ttl") {
        options = options.ttl(seconds(ttl));
    }
    match json_body(&body) {
        // `{}` stores no data, as the original did.
        Some(Value::Object(map)) if map.is_empty() => {}
        // null is not an object either.
        Some(Value::Null) => options = options.data(NOT_AN_OBJECT),
        Some(d) => options = options.data(d),
        None => {}
    }
    let token = store_call(state.store.create(&app, &id, ip, options)).await?;
    Ok(NodeJson(TokenReply { token }))
}

/// The live session of `token` (a read), or `{}`.
#[utoipa::path(get, path = "/{app}/get/{token}", tag = "sessions",
    params(AppTokenParams),
    responses(
        (status = 200, description = "The session, or `{}` when none is live",
            body = MaybeSession),
        StoreErrors))]
pub(crate) async fn get(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
) -> Reply<MaybeSession> {
    let (app, token) = path?.two();
    let session = store_call(state.store.get(&app, &token)).await?;
    Ok(NodeJson(session.into()))
}

/// Merges the body into the session's data (null deletes a key).
#[utoipa::path(post, path = "/{app}/set/{token}", tag = "sessions",
    params(AppTokenParams),
    request_body(content = SetBody, description = "Data `d`: a JSON object of strings, numbers, \
        booleans, or null to delete a key", content_type = "application/json"),
    responses(
        (status = 200, description = "The updated session, or `{}` when none is live",
            body = MaybeSession),
        BodyErrors))]
pub(crate) async fn set(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
    body: Result<TimedBody, ApiError>,
) -> Reply<MaybeSession> {
    let (app, token) = path?.two();
    let TimedBody(body) = body?;
    // An empty body is "No d supplied", as the library says for a missing d.
    let d = json_body(&body).unwrap_or(Value::Null);
    let session = store_call(state.store.set(&app, &token, &d)).await?;
    Ok(NodeJson(session.into()))
}

/// How many distinct ids were active in the last `dt` seconds.
#[utoipa::path(get, path = "/{app}/activity", tag = "sessions",
    params(AppParam, WindowQuery),
    responses(
        (status = 200, description = "Active ids", body = ActivityReply),
        StoreErrors))]
pub(crate) async fn activity(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
    RawQuery(raw): RawQuery,
) -> Reply<ActivityReply> {
    let app = path?.one();
    let dt = query(raw.as_deref())
        .get("dt")
        .map_or(std::time::Duration::ZERO, |v| seconds(v));
    let activity = store_call(state.store.activity(&app, dt)).await?;
    Ok(NodeJson(ActivityReply { activity }))
}

/// An app's figures, for dashboards and the console: sessions, users, how many of each
/// were active within each window, and the spread over shards and masters. Read from the
/// app's indexes alone (a few O(log n) counts per shard), so it costs the same on any app
/// size, unlike counting a `soapp` listing.
#[utoipa::path(get, path = "/{app}/stats", tag = "sessions",
    params(AppParam, StatsQuery),
    responses(
        (status = 200, description = "The app's figures", body = StatsReply),
        StoreErrors))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
    RawQuery(raw): RawQuery,
) -> Reply<StatsReply> {
    let app = path?.one();
    let windows = match query(raw.as_deref()).get("windows") {
        None => DEFAULT_WINDOWS.to_vec(),
        Some(list) => windows(list).ok_or_else(|| {
            ApiError::Store(redis_sessions::Error::InvalidValue(
                format!(
                    "windows must be 1 to {MAX_WINDOWS} whole numbers of seconds, comma-separated"
                )
                .into(),
            ))
        })?,
    };
    let durations: Vec<std::time::Duration> = windows
        .iter()
        .map(|s| std::time::Duration::from_secs(*s))
        .collect();
    let stats = store_call(state.store.app_stats(&app, &durations)).await?;
    Ok(NodeJson(StatsReply::new(windows, stats)))
}

/// `stats`' windows when none are asked: 5 minutes, an hour, a day.
const DEFAULT_WINDOWS: [u64; 3] = [300, 3600, 86_400];

/// Most windows one `stats` call counts (each costs two counts per shard).
const MAX_WINDOWS: usize = 32;

/// `windows=300,3600`: whole seconds, 1 to [`MAX_WINDOWS`] of them (a window longer than
/// the epoch counts everything); None when the list is anything else.
fn windows(list: &str) -> Option<Vec<u64>> {
    let parsed: Option<Vec<u64>> = list
        .split(',')
        .map(|w| w.trim().parse::<u64>().ok())
        .collect();
    parsed.filter(|w| (1..=MAX_WINDOWS).contains(&w.len()))
}

/// The live sessions active in the last `dt` seconds, most recent first.
#[utoipa::path(get, path = "/{app}/soapp", tag = "sessions",
    params(AppParam, WindowQuery),
    responses(
        (status = 200, description = "Sessions", body = SessionsReply),
        StoreErrors))]
pub(crate) async fn soapp(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
    RawQuery(raw): RawQuery,
) -> Reply<SessionsReply> {
    let app = path?.one();
    let dt = query(raw.as_deref())
        .get("dt")
        .map_or(std::time::Duration::ZERO, |v| seconds(v));
    let sessions = store_call(state.store.soapp(&app, dt)).await?;
    Ok(NodeJson(SessionsReply { sessions }))
}

/// The live sessions of one id.
#[utoipa::path(get, path = "/{app}/soid/{id}", tag = "sessions",
    params(AppIdParams),
    responses(
        (status = 200, description = "Sessions", body = SessionsReply),
        StoreErrors))]
pub(crate) async fn soid(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
) -> Reply<SessionsReply> {
    let (app, id) = path?.two();
    let sessions = store_call(state.store.soid(&app, &id)).await?;
    Ok(NodeJson(SessionsReply { sessions }))
}

/// Ends one session.
#[utoipa::path(delete, path = "/{app}/kill/{token}", tag = "sessions",
    params(AppTokenParams),
    responses(
        (status = 200, description = "1 when a live session was removed, else 0", body = KillReply),
        StoreErrors))]
pub(crate) async fn kill(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
) -> Reply<KillReply> {
    let (app, token) = path?.two();
    let killed = store_call(state.store.kill(&app, &token)).await?;
    Ok(NodeJson(KillReply::from(killed)))
}

/// Ends every session of one id ("log out everywhere"), or with `keep` every session but
/// the one of that token ("sign out all other devices").
#[utoipa::path(delete, path = "/{app}/killsoid/{id}", tag = "sessions",
    params(AppIdParams, KeepQuery),
    responses(
        (status = 200, description = "Sessions removed", body = KillReply),
        StoreErrors))]
pub(crate) async fn killsoid(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
    RawQuery(raw): RawQuery,
) -> Reply<KillReply> {
    let (app, id) = path?.two();
    let kill = match query(raw.as_deref()).get("keep") {
        Some(keep) => store_call(state.store.killsoid_keep(&app, &id, keep)).await?,
        None => store_call(state.store.killsoid(&app, &id)).await?,
    };
    Ok(NodeJson(KillReply { kill }))
}

/// Ends one session of an id by its device handle (from `soid`): "sign out that device".
/// `{"kill":0}` when no session of this id has that handle.
#[utoipa::path(delete, path = "/{app}/killdevice/{id}/{handle}", tag = "sessions",
    params(AppIdHandleParams),
    responses(
        (status = 200, description = "Sessions removed (0 or 1)", body = KillReply),
        StoreErrors))]
pub(crate) async fn killdevice(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
) -> Reply<KillReply> {
    let (app, id, handle) = path?.three();
    let killed = store_call(state.store.kill_device(&app, &id, &handle)).await?;
    Ok(NodeJson(KillReply::from(killed)))
}

/// Ends every session of an app.
#[utoipa::path(delete, path = "/{app}/killall", tag = "sessions",
    params(AppParam),
    responses(
        (status = 200, description = "Sessions removed", body = KillReply),
        StoreErrors))]
pub(crate) async fn killall(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
) -> Reply<KillReply> {
    let app = path?.one();
    let kill = store_call(state.store.killall(&app)).await?;
    Ok(NodeJson(KillReply { kill }))
}

/// Fallback for paths no route has: a JSON 404.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Fallback for a known path with the wrong method: a JSON 405.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_windows_are_whole_seconds_and_bounded() {
        assert_eq!(windows("300,3600"), Some(vec![300, 3600]));
        assert_eq!(windows(" 0 "), Some(vec![0]));
        assert_eq!(
            windows("9999999999999999999"),
            Some(vec![9_999_999_999_999_999_999])
        );
        for bad in ["", "1,", "-5", "1.5", "x", "99999999999999999999"] {
            assert_eq!(windows(bad), None, "{bad:?}");
        }
        assert!(windows(&vec!["1"; MAX_WINDOWS].join(",")).is_some());
        assert_eq!(windows(&vec!["1"; MAX_WINDOWS + 1].join(",")), None);
    }

    #[test]
    fn query_first_wins_and_decodes() {
        let q = query(Some("ip=1.2.3.4&ttl=30&ttl=5&x=%ZZ"));
        assert_eq!(q["ip"], "1.2.3.4");
        assert_eq!(q["ttl"], "30");
        assert!(q.contains_key("x"));
        assert!(query(None).is_empty());
    }

    #[test]
    fn integers() {
        assert_eq!(integer("30"), 30);
        assert_eq!(integer("abc"), 0);
        assert_eq!(integer("3.5"), 0);
        assert_eq!(integer("99999999999999999999"), 0);
        assert_eq!(seconds("30"), std::time::Duration::from_secs(30));
        assert_eq!(seconds("-30"), std::time::Duration::ZERO);
    }

    #[test]
    fn bodies() {
        assert_eq!(json_body(b""), None);
        assert_eq!(json_body(b" \n"), None);
        assert_eq!(json_body(b"{oops"), Some(NOT_AN_OBJECT));
        assert_eq!(json_body(b"\xff\xfe"), Some(NOT_AN_OBJECT));
        assert_eq!(json_body(b"[1]"), Some(serde_json::json!([1])));
    }
}
