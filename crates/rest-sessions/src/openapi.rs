//! The OpenAPI document served at `/openapi.json`, generated from the handlers'
//! annotations so it cannot drift from the routes: clients in any language can generate
//! their bindings from it, and schemathesis tests the server against it.
//!
//! Every parameter carries the contract's pattern and bounds, every reply its schema
//! (including `{}` for "no session"), and every route each error it can answer. The
//! patterns are checked against the library's own validation by this module's tests, and
//! the session schema against real serialized sessions.

use crate::error::ErrorBody;
use crate::replies::{
    ActivityReply, Empty, HealthNode, HealthReply, KillReply, MaybeSession, MigrationState,
    SessionsReply, ShardReply, StatsReply, TokenReply, UnreachableNode,
};
use crate::schemas::HealthUnavailable;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use redis_sessions::Session;
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses(
        (status = 200, description = "OpenAPI document", content_type = "application/json"),
        (status = 503, description = "The server is at its connection limit \
            (`tooManyConnections`) or its memory budget for requests (`overloaded`)",
            body = ErrorBody)))]
pub(crate) async fn serve(State(state): State<AppState>) -> Response {
    let mut document = document();
    pin_event_shards(&mut document, state.event_shards);
    Json(document).into_response()
}

/// The pattern of an event position (`after`) for a namespace of `shards` event streams:
/// `ms-seq`, or `shard:ms-seq` parts whose shard is below `shards`; None past 1000 shards
/// (the pattern would be long; the generic one of [`crate::schemas::EventsQuery`] stays).
fn event_position_pattern(shards: u16) -> Option<String> {
    if shards > 1000 {
        return None;
    }
    let shard = (0..shards.max(1))
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join("|");
    let id = "[0-9]{1,19}-[0-9]{1,19}";
    let part = format!("(?:{shard}):{id}");
    Some(format!("^(|{id}|{part}(,{part})*)$"))
}

/// Narrows the documented `after` of `/{app}/events` to the shards this server's namespace
/// has, so the document accepts exactly the positions the server does (a shard past them
/// is a 400, which a client generated from the document should never send).
fn pin_event_shards(openapi: &mut utoipa::openapi::OpenApi, shards: u16) {
    let Some(pattern) = event_position_pattern(shards) else {
        return;
    };
    let params = openapi
        .paths
        .paths
        .get_mut("/{app}/events")
        .and_then(|item| item.get.as_mut())
        .and_then(|get| get.parameters.as_mut());
    for param in params.into_iter().flatten() {
        let RefOr::T(param) = param else {
            continue;
        };
        if param.name == "after" {
            if let Some(RefOr::T(Schema::Object(schema))) = param.schema.as_mut() {
                schema.pattern = Some(pattern.clone());
            }
        }
    }
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

/// Links the token that `create` returns to the routes that take one, so generated
/// clients (and schemathesis' stateful phase) can follow a session through its life.
struct TokenLinks;

impl Modify for TokenLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        let created = openapi
            .paths
            .paths
            .get_mut("/{app}/create/{id}")
            .and_then(|item| item.put.as_mut())
            .and_then(|create| create.responses.responses.get_mut("200"));
        let Some(RefOr::T(created)) = created else {
            return;
        };
        for operation in ["get", "set", "kill"] {
            let link = LinkBuilder::new()
                .operation_id(operation)
                .parameter("app", "$request.path.app")
                .parameter("token", "$response.body#/token")
                .description(format!("`{operation}` on the new session"))
                .build();
            created.links.insert(operation.to_string(), RefOr::T(link));
        }
    }
}

/// Marks the body of `create` optional. utoipa makes a body optional only for an
/// `Option<T>` content type, and then also allows a JSON `null`, which `create` refuses.
struct OptionalCreateBody;

impl Modify for OptionalCreateBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let body = openapi
            .paths
            .paths
            .get_mut("/{app}/create/{id}")
            .and_then(|item| item.put.as_mut())
            .and_then(|create| create.request_body.as_mut());
        if let Some(RefOr::T(body)) = body {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// Says that a served session has exactly the documented keys. The schema is derived from
/// `redis_sessions::Session` (its `utoipa` feature); serde's `deny_unknown_fields`, which
/// would say it there, would also refuse unknown keys when a user deserializes a session.
struct ExactSession;

impl Modify for ExactSession {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let session = openapi
            .components
            .as_mut()
            .and_then(|components| components.schemas.get_mut("Session"));
        if let Some(RefOr::T(Schema::Object(session))) = session {
            session.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
}

/// Documents the webhook deliveries (`RS_WEBHOOK_*`) in the document's `webhooks`
/// (OpenAPI 3.1): the POST a receiver gets, its signature header and the answers it may
/// give, so a receiver can be generated from the same document as a client.
struct Webhooks;

impl Modify for Webhooks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{
            HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
        };
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::{
            ContentBuilder, ObjectBuilder, PathsBuilder, Ref, Required, ResponseBuilder, Type,
        };
        let body = RequestBodyBuilder::new()
            .description(Some(
                "One app's lifecycle events (1 to `RS_WEBHOOK_BATCH`), oldest first per stream.",
            ))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("WebhookDelivery")))
                    .build(),
            )
            .required(Some(Required::True))
            .build();
        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        };
        let operation = OperationBuilder::new()
            .tag("events")
            .summary(Some(
                "Session lifecycle events, POSTed to RS_WEBHOOK_URL(S)",
            ))
            .description(Some(
                "Sent with `RS_WEBHOOK_URL` or `RS_WEBHOOK_URLS` set: at least once (an \
                 event is acknowledged only after a 2xx; drop repeats by `event_id`), \
                 retried with capped exponential backoff.",
            ))
            .parameter(header(
                "RS-Signature",
                "`t=<unix seconds>,v1=<hex>`: HMAC-SHA256 under RS_WEBHOOK_SECRET of \
                 `\"{t}.{raw body}\"`; refuse a wrong MAC or a `t` far from now.",
            ))
            .parameter(header(
                "RS-Delivery-Attempt",
                "1 for the first attempt at this body, then 2, 3, …",
            ))
            .request_body(Some(body))
            .response(
                "2XX",
                ResponseBuilder::new().description("Handled: the events are acknowledged"),
            )
            .response(
                "default",
                ResponseBuilder::new().description("Not handled: delivered again later"),
            );
        openapi.webhooks = Some(
            PathsBuilder::new()
                .path("sessionEvents", PathItem::new(HttpMethod::Post, operation))
                .build(),
        );
    }
}

/// Documents on every operation the replies of the HTTP parser, which come before any
/// route is chosen: `400 badRequest` (not well-formed HTTP/1.1), `414 uriTooLong`,
/// `431 headersTooLarge`, each with the JSON error body.
struct ParserErrors;

impl Modify for ParserErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let reply = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.entry("400".to_string()).or_insert_with(|| {
                    RefOr::T(reply(
                        "The request is not well-formed HTTP/1.1 (`badRequest`)",
                    ))
                });
                responses.insert(
                    "414".to_string(),
                    RefOr::T(reply(
                        "The request target is longer than the parser's limit (`uriTooLong`)",
                    )),
                );
                responses.insert(
                    "431".to_string(),
                    RefOr::T(reply(
                        "The request head is larger than the parser's limit (about 400 KB, \
                         100 headers: `headersTooLarge`)",
                    )),
                );
            }
        }
    }
}

/// Every route and reply schema of the server.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rest-sessions",
        description = "User sessions shared by services in any language, over Redis. When the \
            server runs with RS_AUTH_TOKEN, every route but /ping, /health and /openapi.json \
            needs `Authorization: Bearer <secret>`. Path segments are percent-decoded as \
            UTF-8; an invalid encoding is a 400."
    ),
    paths(
        crate::routes::ping,
        crate::routes::health,
        crate::routes::metrics,
        serve,
        crate::routes::create,
        crate::routes::get,
        crate::routes::set,
        crate::routes::activity,
        crate::routes::stats,
        crate::routes::soapp,
        crate::routes::soid,
        crate::routes::kill,
        crate::routes::killsoid,
        crate::routes::killdevice,
        crate::routes::killall,
        crate::events::events,
    ),
    components(schemas(
        Session,
        Empty,
        MaybeSession,
        SessionsReply,
        TokenReply,
        ActivityReply,
        StatsReply,
        ShardReply,
        KillReply,
        HealthReply,
        HealthUnavailable,
        UnreachableNode,
        HealthNode,
        MigrationState,
        ErrorBody,
        crate::events::EventsReply,
        redis_sessions::Event,
        redis_sessions::EventType,
        redis_sessions::EndReason,
        crate::webhook::WebhookDelivery,
        crate::webhook::WebhookEvent
    )),
    modifiers(
        &BearerSecret,
        &OptionalCreateBody,
        &TokenLinks,
        &ExactSession,
        &ParserErrors,
        &Webhooks
    ),
    tags(
        (name = "sessions", description = "The redis-sessions contract"),
        (name = "events", description = "Session lifecycle events (with `RS_EVENTS`)"),
        (name = "operations", description = "Liveness, readiness, metrics, this document")
    )
)]
pub(crate) struct ApiDoc;

/// The document, built once per call (cheap; requested rarely).
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use redis_sessions::{CreateOptions, Options, RedisSessions, Session};
    use serde_json::{json, Value};

    const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[tokio::test]
    async fn the_event_position_pattern_is_what_the_store_accepts() {
        let store = RedisSessions::in_memory(
            Options::default().events(redis_sessions::EventOptions::default()),
        );
        let one = regex::Regex::new(&event_position_pattern(1).unwrap()).unwrap();
        for (position, valid) in [
            ("", true),
            ("0-0", true),
            ("1733300000000-12", true),
            ("0:5-1", true),
            ("0:5-1,0:6-0", true),
            ("1:5-1", false),
            ("5-", false),
            ("-5", false),
            ("x", false),
            ("0:5-1,", false),
        ] {
            assert_eq!(one.is_match(position), valid, "{position:?}");
            let from = redis_sessions::EventsFrom::After(position.to_owned());
            let read = store.events_page("app", &from, 1).await;
            assert_eq!(read.is_ok(), valid, "{position:?}: {read:?}");
        }
        let sixty = regex::Regex::new(&event_position_pattern(60).unwrap()).unwrap();
        assert!(sixty.is_match("0:1-0,59:2-3"));
        assert!(!sixty.is_match("60:1-0"));
        assert!(!sixty.is_match("00:1-0,5:1-0x"));
        assert_eq!(event_position_pattern(1001), None);
        let mut document = document();
        pin_event_shards(&mut document, 1);
        let document = serde_json::to_value(document).unwrap();
        assert_eq!(
            param(&document, "/{app}/events", "get", "after")["pattern"],
            event_position_pattern(1).unwrap().as_str()
        );
    }

    fn doc() -> Value {
        serde_json::to_value(document()).expect("document as JSON")
    }

    /// The schema of parameter `name` of `method path`.
    fn param(doc: &Value, path: &str, method: &str, name: &str) -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|params| params.iter().find(|p| p["name"] == name))
            .map(|p| p["schema"].clone())
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
    }

    /// Whether the library takes `value` as `what` (`app`, `token`, `id`, `ip`): the
    /// embedded store checks inputs exactly as the Redis one does.
    fn library_accepts(what: &str, value: &str) -> bool {
        thread_local! {
            static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
        }
        RUNTIME.with(|runtime| {
            runtime.block_on(async {
                let store =
                    RedisSessions::in_memory(Options::default().wipe(std::time::Duration::ZERO));
                let result = match what {
                    "app" => store.get(value, TOKEN).await.map(drop),
                    "token" => store.get("app", value).await.map(drop),
                    "id" => store.soid("app", value).await.map(drop),
                    "ip" => store
                        .create("app", "u", value, CreateOptions::default())
                        .await
                        .map(drop),
                    _ => unreachable!(),
                };
                match result {
                    Ok(()) => true,
                    Err(err) => {
                        assert_eq!(
                            err.kind(),
                            redis_sessions::ErrorKind::Input,
                            "{what} {value:?}: {err}"
                        );
                        false
                    }
                }
            })
        })
    }

    /// (what, route, method): where each string parameter is documented.
    const STRINGS: [(&str, &str, &str); 4] = [
        ("app", "/{app}/killall", "delete"),
        ("token", "/{app}/get/{token}", "get"),
        ("id", "/{app}/soid/{id}", "get"),
        ("ip", "/{app}/create/{id}", "put"),
    ];

    fn pattern(what: &str) -> String {
        let (_, path, method) = STRINGS.iter().find(|(w, _, _)| *w == what).unwrap();
        let schema = param(&doc(), path, method, what);
        schema["pattern"].as_str().expect("a pattern").to_string()
    }

    /// The documented patterns, compiled once.
    fn matcher(what: &str) -> &'static regex::Regex {
        static MATCHERS: std::sync::OnceLock<Vec<(&str, regex::Regex)>> =
            std::sync::OnceLock::new();
        let matchers = MATCHERS.get_or_init(|| {
            STRINGS
                .iter()
                .map(|(w, _, _)| (*w, regex::Regex::new(&pattern(w)).unwrap()))
                .collect()
        });
        &matchers.iter().find(|(w, _)| *w == what).unwrap().1
    }

    /// Strings that match the documented pattern of `what` (generation needs it unanchored).
    fn generate(what: &str) -> proptest::string::RegexGeneratorStrategy<String> {
        let pattern = pattern(what);
        let bare = pattern.trim_start_matches('^').trim_end_matches('$');
        proptest::string::string_regex(bare).expect("a pattern proptest can generate from")
    }

    /// Strings near every rule's edges: lengths around the bounds, line breaks, the
    /// characters the app and token rules allow and refuse, non-ASCII.
    fn edgy() -> impl Strategy<Value = String> {
        let alphabet = prop::sample::select(vec![
            'a', 'Z', '0', '9', '_', '-', ':', ' ', '.', '@', '%', '/', '\n', '\r', '\u{2028}',
            '\u{2029}', '\t', '\0', 'é', '김', '😀',
        ]);
        prop_oneof![
            prop::collection::vec(alphabet.clone(), 0..24).prop_map(|c| c.into_iter().collect()),
            prop::collection::vec(alphabet, 60..140).prop_map(|c| c.into_iter().collect()),
            "[A-Za-z0-9]{62,66}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Every string the documented pattern describes, the library accepts...
        #[test]
        fn documented_values_are_accepted(
            app in generate("app"),
            token in generate("token"),
            id in generate("id"),
            ip in generate("ip"),
        ) {
            prop_assert!(library_accepts("app", &app), "app {:?}", app);
            prop_assert!(library_accepts("token", &token), "token {:?}", token);
            prop_assert!(library_accepts("id", &id), "id {:?}", id);
            prop_assert!(library_accepts("ip", &ip), "ip {:?}", ip);
        }

        /// ...and every string it does not describe, the library refuses.
        #[test]
        fn the_patterns_are_the_library_rules(value in edgy()) {
            for (what, _, _) in STRINGS {
                let documented = matcher(what).is_match(&value);
                prop_assert_eq!(
                    documented,
                    library_accepts(what, &value),
                    "{} {:?}", what, value
                );
            }
        }
    }

    #[test]
    fn lengths_and_numbers_are_bounded_as_the_contract_says() {
        let doc = doc();
        for (what, path, method, min, max) in [
            ("app", "/{app}/killall", "delete", 3, 20),
            ("token", "/{app}/kill/{token}", "delete", 64, 64),
            ("id", "/{app}/killsoid/{id}", "delete", 1, 128),
            ("ip", "/{app}/create/{id}", "put", 1, 39),
        ] {
            let schema = param(&doc, path, method, what);
            assert_eq!(schema["minLength"], min, "{what}");
            assert_eq!(schema["maxLength"], max, "{what}");
        }
        assert_eq!(
            param(&doc, "/{app}/create/{id}", "put", "ttl")["minimum"],
            10
        );
        assert_eq!(param(&doc, "/{app}/activity", "get", "dt")["minimum"], 10);
        assert_eq!(param(&doc, "/{app}/soapp", "get", "dt")["minimum"], 10);
    }

    #[test]
    fn every_route_documents_its_errors_and_get_set_allow_no_session() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                let has = |status: &str| responses.contains_key(status);
                // The connection bound can answer any route, and so can the parser.
                for status in ["400", "414", "431", "503"] {
                    assert!(has(status), "{method} {path} lacks {status}");
                }
                if path.starts_with("/{app}") {
                    for status in ["200", "400", "401", "500", "503"] {
                        assert!(has(status), "{method} {path} lacks {status}");
                    }
                    if method == "put" || method == "post" {
                        assert!(has("408") && has("413"), "{method} {path}");
                    }
                    for (status, reply) in responses {
                        if status != "200" {
                            assert_eq!(
                                reply["content"]["application/json"]["schema"]["$ref"],
                                "#/components/schemas/ErrorBody",
                                "{method} {path} {status}"
                            );
                        }
                    }
                }
            }
        }
        assert!(doc["paths"]["/ping"]["get"]["responses"]
            .as_object()
            .unwrap()
            .contains_key("503"));
        let maybe = &doc["components"]["schemas"]["MaybeSession"]["oneOf"];
        assert_eq!(maybe[1]["$ref"], "#/components/schemas/NoSession");
        for route in ["/{app}/get/{token}", "/{app}/set/{token}"] {
            let ok = &doc["paths"][route];
            let method = if route.contains("/get/") {
                "get"
            } else {
                "post"
            };
            assert_eq!(
                ok[method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/MaybeSession"
            );
        }
        assert_eq!(
            doc["paths"]["/{app}/create/{id}"]["put"]["requestBody"]["required"],
            false
        );
    }

    /// The session schema is the library's `Session` (derived by its `utoipa` feature):
    /// the keys a served session has, no more, required as the contract says, and its data
    /// values are scalars.
    #[test]
    fn the_session_schema_is_the_library_session() {
        let doc = doc();
        let schema = &doc["components"]["schemas"]["Session"];
        let session: Session = serde_json::from_value(json!({
            "id":"a@b","r":2,"w":3,"ttl":60,"idle":1,"ip":"::1",
            "d":{"s":"x","n":1.5,"b":true},"no_resave":true,
            "handle":"0123456789abcdef0123456789abcdef","created_ms":1,"corrupt":true
        }))
        .unwrap();
        let served = serde_json::to_value(&session).unwrap();
        let mut keys: Vec<&str> = served
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut documented: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        documented.sort_unstable();
        assert_eq!(
            keys, documented,
            "every key served is documented, and no other"
        );
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["id", "idle", "ip", "r", "ttl", "w"]);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["handle"]["pattern"], "^[0-9a-f]{32}$");
        let value = &schema["properties"]["d"]["additionalProperties"];
        let value = match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => &doc["components"]["schemas"][reference.rsplit('/').next().unwrap()],
            None => value,
        };
        let mut types: Vec<&str> = value["oneOf"]
            .as_array()
            .expect("a data value is one of the scalars")
            .iter()
            .filter_map(|t| t["type"].as_str())
            .collect();
        types.sort_unstable();
        assert_eq!(types, ["boolean", "number", "string"]);
    }
}
