//! The OpenAPI document served at `/openapi.json`, generated from the handlers'
//! annotations so it cannot drift from the routes: clients in any language can generate
//! their bindings from it, and schemathesis tests the server against it.
//!
//! Every parameter carries the contract's pattern and bounds, every reply its schema
//! (including `{}` for "no session"), and every route each error it can answer. The
//! patterns are checked against the library's own validation by this module's tests, and
//! the session schema against real serialized sessions.

use crate::error::ErrorBody;
use crate::routes::{ActivityReply, HealthReply, KillReply, TokenReply, UnreachableNode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OneOfBuilder, RefOr};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

/// `app` in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct AppParam {
    /// App name: 3-20 of `A-Z a-z 0-9 _ -`.
    #[param(pattern = "^[A-Za-z0-9_-]{3,20}$", min_length = 3, max_length = 20)]
    app: String,
}

/// `app` and `token` in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct AppTokenParams {
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
pub struct AppIdParams {
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
pub struct AppIdHandleParams {
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
pub struct KeepQuery {
    /// The token of a session to keep ("sign out all other devices"): 64 letters and digits.
    #[param(pattern = "^[A-Za-z0-9]{64}$", min_length = 64, max_length = 64)]
    keep: Option<String>,
}

/// The query of `create`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CreateQuery {
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
pub struct WindowQuery {
    /// Window in seconds.
    #[param(minimum = 10)]
    dt: i64,
}

/// A value of a session's data: a string, a number or a boolean.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// A number, any JSON number.
    Number(f64),
    /// A boolean.
    Flag(bool),
}

/// A session as the API returns it: the documentation of `redis_sessions::Session`, whose
/// crate does not depend on utoipa. The tests deserialize real sessions into it (unknown
/// fields refused) and serialize them back unchanged, so the two cannot drift apart.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Session)]
pub struct SessionDoc {
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    d: BTreeMap<String, Scalar>,
    /// Present, and true, only for sessions that end at a fixed time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    no_resave: bool,
    /// In `soid`'s sessions: the session's device handle (a one-way hash of its token, 32
    /// hex digits), for `killdevice`. Never the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{32}$")]
    handle: Option<String>,
    /// In `soid`'s sessions: when the session was created, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_ms: Option<u64>,
}

/// `{}`: no live session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NoSession)]
pub struct NoSessionDoc {}

/// The reply of `get` and `set`: the session, or `{}` when none is live.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(as = MaybeSession)]
pub enum MaybeSessionDoc {
    /// The live session.
    Live(SessionDoc),
    /// No live session.
    None(NoSessionDoc),
}

/// The reply of `soapp` and `soid`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Sessions)]
pub struct SessionsDoc {
    /// Live sessions, most recently active first.
    sessions: Vec<SessionDoc>,
}

/// A data object in a request body: string, number or boolean values, `null` to delete a
/// key (at `set`) or to leave it out (at `create`).
fn data_schema(min_properties: usize) -> Schema {
    let value = OneOfBuilder::new()
        .item(Scalar::schema())
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
pub struct CreateBody;

impl PartialSchema for CreateBody {
    fn schema() -> RefOr<Schema> {
        RefOr::T(data_schema(0))
    }
}

impl ToSchema for CreateBody {}

/// The body of `set`: the keys to change, at least one.
pub struct SetBody;

impl PartialSchema for SetBody {
    fn schema() -> RefOr<Schema> {
        RefOr::T(data_schema(1))
    }
}

impl ToSchema for SetBody {}

/// The 503 of `/health`: its own reply when the store is away, or the error body when the
/// server is at its connection limit.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum HealthUnavailable {
    /// The store does not answer.
    Store(HealthReply),
    /// `tooManyConnections`.
    Busy(ErrorBody),
}

/// The error replies of a route that reads the store but takes no body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum StoreErrors {
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
    /// connection limit (`tooManyConnections`, with `Retry-After`), or durable writes are on
    /// and the replicas did not confirm in time (`notReplicated`). On a write the outcome
    /// is unknown: it may have been applied.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The error replies of a route that takes a body: [`StoreErrors`] and the body's own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
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
    /// The body is over the body limit (`payloadTooLarge`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// Stored data that cannot be read (`internalError` and the library's names).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The store did not answer within 2 s (`redisUnavailable`), the server is at its
    /// connection limit (`tooManyConnections`), or durable writes are on and the replicas
    /// did not confirm in time (`notReplicated`). The write may have been applied.
    #[response(status = 503)]
    Unavailable(ErrorBody),
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
        crate::routes::openapi,
        crate::routes::create,
        crate::routes::get,
        crate::routes::set,
        crate::routes::activity,
        crate::routes::soapp,
        crate::routes::soid,
        crate::routes::kill,
        crate::routes::killsoid,
        crate::routes::killdevice,
        crate::routes::killall,
    ),
    components(schemas(
        SessionDoc,
        NoSessionDoc,
        MaybeSessionDoc,
        SessionsDoc,
        Scalar,
        TokenReply,
        ActivityReply,
        KillReply,
        HealthReply,
        HealthUnavailable,
        UnreachableNode,
        ErrorBody
    )),
    modifiers(&BearerSecret, &OptionalCreateBody, &TokenLinks),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use redis_sessions::{CreateOptions, Options, RedisSessions, Session};
    use serde_json::{json, Value};

    const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

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
                let store = RedisSessions::in_memory(Options::default().wipe(0));
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
                // The connection bound can answer any route.
                assert!(has("503"), "{method} {path} lacks 503");
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

    /// The documented session and the library's serialize the same: a session with every
    /// field, and one with none of the optional ones, go through the documentation type
    /// (unknown fields refused) unchanged.
    #[test]
    fn the_session_schema_is_the_library_session() {
        for text in [
            json!({"id":"a@b","r":2,"w":3,"ttl":60,"idle":1,"ip":"::1",
                   "d":{"s":"x","n":1.5,"b":true},"no_resave":true}),
            json!({"id":"u","r":1,"w":1,"ttl":7200,"idle":0,"ip":"1.2.3.4"}),
        ] {
            let session: Session = serde_json::from_value(text.clone()).unwrap();
            let served = serde_json::to_value(&session).unwrap();
            assert_eq!(served, text, "the library's own form");
            let documented: SessionDoc = serde_json::from_value(served.clone())
                .expect("a served session is a documented one");
            assert_eq!(serde_json::to_value(documented).unwrap(), served);
        }
        let schema = &doc()["components"]["schemas"]["Session"];
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["id", "idle", "ip", "r", "ttl", "w"]);
        assert_eq!(schema["additionalProperties"], false);
    }
}
