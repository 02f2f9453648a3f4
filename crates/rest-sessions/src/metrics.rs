//! Prometheus metrics at `/metrics`: request counts, latencies and errors by route
//! template, so an operator sees load, slowness and failures per endpoint without
//! reading logs; and the store's Redis connection counters (timeouts, reconnects, stuck
//! connections replaced), recorded by the library. Labels are route templates, never raw
//! paths, which hold tokens and ids and would make the number of series unbounded.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Requests answered, by `method`, `route` and `status`.
pub(crate) const REQUESTS: &str = "rest_sessions_http_requests_total";
/// Seconds from request to response, by `method` and `route`.
pub(crate) const LATENCY: &str = "rest_sessions_http_request_duration_seconds";
/// Error replies (status >= 400), by `route`, `status` and `error` name.
pub(crate) const ERRORS: &str = "rest_sessions_http_errors_total";

/// The in-process cache's counters (present when the cache is on), by `kind`: `hits`,
/// `misses`, `invalidations` (messages received) and `flushes` (whole cache dropped after
/// an interrupted subscription).
pub(crate) const CACHE: &str = "rest_sessions_cache_events_total";

/// Connections open now.
pub(crate) const CONNECTIONS_OPEN: &str = "rest_sessions_connections_open";
/// Connections answered `503 tooManyConnections` (or closed) at once, by `reason`:
/// `max_connections` (every slot taken, none could be freed), `address_connections`,
/// `address_unfinished` (the client address holds its share).
pub(crate) const CONNECTIONS_REFUSED: &str = "rest_sessions_connections_refused_total";
/// Connections closed to admit a new one at the bound, by `rule`: `oldest_idle`,
/// `oldest_unfinished`.
pub(crate) const CONNECTIONS_EVICTED: &str = "rest_sessions_connections_evicted_total";
/// Requests refused before their bytes were read, by `reason`: `memory` (the request
/// bytes in flight are at the budget).
pub(crate) const REQUESTS_REFUSED: &str = "rest_sessions_requests_refused_total";
/// Request bytes held now: unparsed heads and the reserved bodies of requests served.
pub(crate) const REQUEST_BYTES: &str = "rest_sessions_request_bytes_in_flight";
/// Requests hyper could not parse, answered with a JSON 400, 414 or 431, by `status`.
pub(crate) const UNPARSED: &str = "rest_sessions_unparsed_requests_total";
/// Connections closed by a deadline, by `reason`: `header_timeout`, `idle_timeout`,
/// `send_timeout`.
pub(crate) const CONNECTIONS_EXPIRED: &str = "rest_sessions_connections_expired_total";

/// Latency buckets in seconds: sub-millisecond Redis round trips up to the 1.8 s deadline.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle (the same
/// handle on later calls), or None when another recorder was installed first.
pub(crate) fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(LATENCY.to_string()), &BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    metrics::describe_counter!(REQUESTS, "HTTP requests answered");
                    metrics::describe_histogram!(
                        LATENCY,
                        metrics::Unit::Seconds,
                        "HTTP request latency"
                    );
                    metrics::describe_counter!(ERRORS, "HTTP error replies");
                    metrics::describe_gauge!(CONNECTIONS_OPEN, "HTTP connections open");
                    metrics::describe_counter!(
                        CONNECTIONS_REFUSED,
                        "connections refused at the connection bound"
                    );
                    metrics::describe_counter!(
                        CONNECTIONS_EXPIRED,
                        "connections closed by a header, idle or send timeout"
                    );
                    metrics::describe_counter!(
                        CONNECTIONS_EVICTED,
                        "connections closed to admit a new one at the bound"
                    );
                    metrics::describe_counter!(
                        REQUESTS_REFUSED,
                        "requests refused before their bytes were read"
                    );
                    metrics::describe_gauge!(
                        REQUEST_BYTES,
                        metrics::Unit::Bytes,
                        "request bytes in flight (unparsed heads, reserved bodies)"
                    );
                    metrics::describe_counter!(
                        UNPARSED,
                        "requests that could not be parsed (JSON 400, 414, 431)"
                    );
                    describe_store();
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(%err, "metrics recorder not installed; /metrics stays empty");
                    None
                }
            }
        })
        .clone()
}

/// Describes the counters the library records (see [`redis_sessions::metric_names`]).
fn describe_store() {
    use redis_sessions::metric_names as m;
    metrics::describe_counter!(m::TIMEOUTS, "Redis calls that timed out");
    metrics::describe_counter!(
        m::DISCONNECTS,
        "Redis calls failed on a dropped or refused connection (each followed by a reconnect)"
    );
    metrics::describe_counter!(
        m::CHECKS,
        "Connection checks after repeated timeouts, by result"
    );
    metrics::describe_counter!(
        m::REPLACEMENTS,
        "Stuck Redis connections replaced by a fresh one"
    );
}

/// Runs the recorder's periodic upkeep (draining histogram buckets) in the background, as
/// the exporter requires when it has no HTTP listener of its own. Needs a tokio runtime.
pub(crate) fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// Publishes the cache's counters, read from the store when `/metrics` is scraped.
pub(crate) fn record_cache(stats: redis_sessions::CacheStats) {
    for (kind, value) in [
        ("hits", stats.hits),
        ("misses", stats.misses),
        ("invalidations", stats.invalidations),
        ("flushes", stats.flushes),
    ] {
        metrics::counter!(CACHE, "kind" => kind).absolute(value);
    }
}

/// Counts one answered request.
pub(crate) fn record(
    method: &'static str,
    route: &str,
    status: u16,
    error: Option<&'static str>,
    elapsed: Duration,
) {
    let route = route.to_string();
    let status_text = status.to_string();
    metrics::counter!(REQUESTS, "method" => method, "route" => route.clone(), "status" => status_text.clone())
        .increment(1);
    metrics::histogram!(LATENCY, "method" => method, "route" => route.clone())
        .record(elapsed.as_secs_f64());
    if status >= 400 {
        metrics::counter!(
            ERRORS,
            "route" => route,
            "status" => status_text,
            "error" => error.unwrap_or("unknown")
        )
        .increment(1);
    }
}

/// Counts a connection taken into service.
pub(crate) fn connection_opened() {
    metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
}

/// Counts a served connection that closed.
pub(crate) fn connection_ended() {
    metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
}

/// Counts a connection refused at once, and why.
pub(crate) fn connection_refused(reason: &'static str) {
    metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
}

/// Counts a connection closed to admit another, and by which rule.
pub(crate) fn connection_evicted(rule: &'static str) {
    metrics::counter!(CONNECTIONS_EVICTED, "rule" => rule).increment(1);
}

/// Counts a request refused before its bytes were read.
pub(crate) fn request_refused(reason: &'static str) {
    metrics::counter!(REQUESTS_REFUSED, "reason" => reason).increment(1);
}

/// Publishes the request bytes in flight (read when `/metrics` is scraped).
pub(crate) fn record_request_bytes(bytes: usize) {
    metrics::gauge!(REQUEST_BYTES).set(bytes as f64);
}

/// Counts a request hyper could not parse; `status` is the reply's three digits.
pub(crate) fn parse_error(status: &[u8]) {
    let status = match status {
        b"414" => "414",
        b"431" => "431",
        _ => "400",
    };
    metrics::counter!(UNPARSED, "status" => status).increment(1);
}

/// Counts a connection closed by a deadline.
pub(crate) fn connection_closed(reason: &'static str) {
    metrics::counter!(CONNECTIONS_EXPIRED, "reason" => reason).increment(1);
}
