//! `GET /{app}/events`: the session lifecycle events of an app (written with
//! `RS_EVENTS`) for clients in any language, as Server-Sent Events or page by page.
//!
//! Both forms read the same positions: an event's `cursor` (the SSE `id`) is where the
//! next read resumes, so a client that saves it after handling each event and resumes
//! from it after a crash, a disconnect or a server restart misses nothing and sees nothing
//! twice (as long as the streams' retention, `RS_EVENTS_MAXLEN`, still holds it).
//!
//! An event stream is a long-lived reply: its connection stays busy while it streams
//! (never closed as idle, see [`crate::overload::Activity::long_lived`]), each read of
//! Redis runs under the store deadline on its own, not the stream as a whole, and the
//! streams served at once are bounded (`RS_EVENTS_MAX_STREAMS`), because each polls Redis.

use crate::deadline::store_call;
use crate::error::ApiError;
use crate::extract::PathParams;
use crate::overload::LongLived;
use crate::routes::query;
use crate::schemas::{AppParam, EventsQuery, StoreErrors};
use crate::server::BodyContext;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use redis_sessions::{Event, EventsFrom};
use serde::Serialize;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::ToSchema;

/// Events of a page when the query does not say.
const DEFAULT_COUNT: usize = 100;

/// Most events of a page: a page is one read of each stream, and its reply is held whole.
const MAX_COUNT: usize = 1000;

/// Events of the first read of a stream (the rest follow from the library's stream, which
/// holds at most as many): what one event stream holds in memory at most, beside the
/// socket's buffers.
const STREAM_PAGE: usize = 256;

/// How often an idle event stream sends a comment: proxies close upstream connections
/// silent for 60 s (nginx's `proxy_read_timeout`), and a client learns its connection is
/// still alive.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The JSON page of events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventsReply {
    /// The events after the position asked for, oldest first (none when there are no
    /// new ones).
    pub events: Vec<Event>,
    /// Where the next page starts: pass it as `after` (the position asked for when no
    /// event followed it).
    pub next: String,
}

/// True when the client asks for Server-Sent Events (`Accept: text/event-stream`, as
/// every EventSource does); otherwise it gets a JSON page.
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let media = item.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("text/event-stream")
        })
}

/// The page size in the query: 1 to [`MAX_COUNT`], [`DEFAULT_COUNT`] when absent.
fn count(value: Option<&String>) -> Result<usize, ApiError> {
    let Some(value) = value else {
        return Ok(DEFAULT_COUNT);
    };
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_COUNT).contains(n))
        .ok_or_else(|| {
            ApiError::Store(redis_sessions::Error::InvalidValue(
                "count must be an integer from 1 to 1000".into(),
            ))
        })
}

/// The app's lifecycle events after a position: Server-Sent Events for a client that
/// accepts `text/event-stream`, else a JSON page.
#[utoipa::path(get, path = "/{app}/events", tag = "events",
    params(AppParam, EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Server-Sent Events only: \
            the `id` of the last event handled, sent by an EventSource when it reconnects; \
            wins over `after`.")),
    responses(
        (status = 200, description = "With `Accept: text/event-stream`: an endless stream \
            of Server-Sent Events, one per lifecycle event, its `id` the event's cursor and \
            its `data` the event as JSON (a comment every 15 s while idle); it starts after \
            `Last-Event-ID` or `after`, else with the events written from now on. Otherwise \
            a JSON page of at most `count` events after `after` (from the oldest retained \
            without it) and the cursor of the next page.",
            content(
                (EventsReply = "application/json"),
                (String = "text/event-stream")
            )),
        (status = 404, description = "Events are off on this server (`eventsOff`: start it \
            with `RS_EVENTS=true`)", body = crate::error::ErrorBody),
        StoreErrors))]
pub(crate) async fn events(
    State(state): State<AppState>,
    path: Result<PathParams, ApiError>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Result<Response, ApiError> {
    let app = path?.one();
    if !state.events {
        return Err(ApiError::EventsOff);
    }
    let params = query(raw.as_deref());
    let after = params.get("after").cloned();
    if !wants_stream(&headers) {
        let count = count(params.get("count"))?;
        let from = after.map_or(EventsFrom::Start, EventsFrom::After);
        let page = store_call(state.store.events_page(&app, &from, count)).await?;
        let reply = EventsReply {
            events: page.events,
            next: page.cursor,
        };
        return Ok(Json(reply).into_response());
    }

    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let from = last_event_id
        .or(after)
        .map_or(EventsFrom::Now, EventsFrom::After);
    let permit = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams)?;
    // The first read answers a bad app or position with a 400 before the stream starts,
    // and resolves "now" to a position.
    let first = store_call(state.store.events_page(&app, &from, STREAM_PAGE)).await?;
    // Without the connection's entry (never: the server always sets it) the request
    // ends when the handler returns, as any other.
    let busy = extensions
        .get::<BodyContext>()
        .map(|context| context.activity.long_lived());
    let long_lived = busy.is_some();
    let live = state
        .store
        .events(&app, EventsFrom::After(first.cursor.clone()));
    let mut shutdown = state.shutdown.clone();
    let stopped = async move {
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    };
    let stream = futures_util::stream::iter(first.events.into_iter().map(Ok))
        .chain(live)
        .filter_map(|item| {
            std::future::ready(match item {
                Ok(event) => Some(Ok::<_, Infallible>(sse_event(&event))),
                // A failed read (Redis away, a failover) is retried by the library from the
                // same position: nothing is lost, the client only waits.
                Err(err) => {
                    tracing::debug!(error = %err, "event read failed; retrying");
                    None
                }
            })
        })
        .take_until(stopped)
        .map(move |item| {
            // Held as long as the stream: the stream slot and the busy connection.
            let _held = (&permit, &busy);
            item
        });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // One stream per connection: when it ends (at shutdown) the connection closes rather
    // than wait for a next request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    // Tells a proxy such as nginx to pass events on as they come, not buffer them.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    if long_lived {
        response.extensions_mut().insert(LongLived);
    }
    Ok(response)
}

/// One Server-Sent Event: `id` the cursor after it, `data` the event as JSON.
fn sse_event(event: &Event) -> sse::Event {
    // Serializing strings and numbers cannot fail; should it, the event still goes out
    // with its cursor, so the client's position moves on only past what it was sent.
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    // A cursor is digits, `-`, `:` and `,`: never a line break, which `id` refuses.
    sse::Event::default().id(&event.cursor).data(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_or_page_by_accept() {
        let mut headers = HeaderMap::new();
        assert!(!wants_stream(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_stream(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.5, Text/Event-Stream"),
        );
        assert!(wants_stream(&headers));
    }

    #[test]
    fn counts() {
        assert_eq!(count(None).ok(), Some(DEFAULT_COUNT));
        assert_eq!(count(Some(&"1000".to_owned())).ok(), Some(1000));
        for bad in ["0", "1001", "x", "-1", ""] {
            assert!(count(Some(&bad.to_owned())).is_err(), "{bad}");
        }
    }
}
