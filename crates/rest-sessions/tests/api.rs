//! The REST contract (docs/spec/rest-api.md), black-box: every route, the original rest-sessions scenarios, every
//! input error, percent-encoded ids, body limits, metrics and the OpenAPI document.

mod common;

use common::{client, create, json, raw_request, RedisServer, Server, UNKNOWN_TOKEN};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn every_route_in_the_original_scenarios() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[]);
    let http = client();
    let app = "mytestapp";

    let ping = http.get(server.url("/ping")).send().await.unwrap();
    assert_eq!(ping.status().as_u16(), 200);
    assert_eq!(ping.text().await.unwrap(), "PONG");

    // Two users, user1 on two devices; user2 with data at create.
    let (status, body) = json(
        http.put(server.url(&format!("/{app}/create/user1?ip=127.0.0.1&ttl=30")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let token1 = body["token"].as_str().unwrap().to_string();
    assert_eq!(token1.len(), 64);
    assert_eq!(keys(&body), ["token"]);

    let (status, body) = json(
        http.put(server.url(&format!("/{app}/create/user2?ip=10.0.0.2")))
            .body(r#"{"lang":"ko","vip":true,"gone":null}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let token2 = body["token"].as_str().unwrap().to_string();

    let (status, body) = json(
        http.put(server.url(&format!("/{app}/create/user1?ip=127.0.0.2")))
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let token3 = body["token"].as_str().unwrap().to_string();

    // get: exact keys, ttl a number, r counts reads before this one.
    let get = |t: &str| http.get(server.url(&format!("/{app}/get/{t}"))).send();
    let (status, s) = json(get(&token1).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&s), ["id", "idle", "ip", "r", "ttl", "w"]);
    assert_eq!(s["id"], "user1");
    assert_eq!(s["ip"], "127.0.0.1");
    assert_eq!(s["ttl"], json!(30));
    assert_eq!(s["r"], json!(1));
    assert_eq!(s["w"], json!(1));
    let (_, s) = json(get(&token1).await.unwrap()).await;
    assert_eq!(s["r"], json!(2));

    let (_, s) = json(get(&token2).await.unwrap()).await;
    assert_eq!(s["d"], json!({"lang": "ko", "vip": true}));
    assert_eq!(s["ttl"], json!(7200));
    let (_, s) = json(get(&token3).await.unwrap()).await;
    assert!(s.get("d").is_none(), "{{}} at create stores no data: {s}");

    // set: merge, null deletes, empty data drops d.
    let set = |t: &str, body: &'static str| {
        http.post(server.url(&format!("/{app}/set/{t}")))
            .body(body)
            .send()
    };
    let (status, s) = json(set(&token1, r#"{"foo":"bar","n":1}"#).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(s["d"], json!({"foo": "bar", "n": 1}));
    assert_eq!(s["w"], json!(2));
    let (_, s) = json(set(&token1, r#"{"foo":null}"#).await.unwrap()).await;
    assert_eq!(s["d"], json!({"n": 1}));
    assert_eq!(s["w"], json!(3));
    let (_, s) = json(set(&token1, r#"{"n":null}"#).await.unwrap()).await;
    assert!(s.get("d").is_none());
    assert_eq!(keys(&s), ["id", "idle", "ip", "r", "ttl", "w"]);

    // activity / soapp / soid.
    let (status, a) = json(
        http.get(server.url(&format!("/{app}/activity?dt=60")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(a, json!({"activity": 2}));
    let (_, so) = json(
        http.get(server.url(&format!("/{app}/soapp?dt=60")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(so["sessions"].as_array().unwrap().len(), 3);
    let (_, so) = json(
        http.get(server.url(&format!("/{app}/soid/user1")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sessions = so["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s["id"] == "user1"));

    // kill one device; a second kill and a get find nothing.
    let kill = |t: &str| http.delete(server.url(&format!("/{app}/kill/{t}"))).send();
    let (status, k) = json(kill(&token3).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(k, json!({"kill": 1}));
    let (_, k) = json(kill(&token3).await.unwrap()).await;
    assert_eq!(k, json!({"kill": 0}));
    let (status, s) = json(get(&token3).await.unwrap()).await;
    assert_eq!((status, s), (200, json!({})));
    let (status, s) = json(set(&token3, r#"{"a":1}"#).await.unwrap()).await;
    assert_eq!((status, s), (200, json!({})));
    let (_, s) = json(get(UNKNOWN_TOKEN).await.unwrap()).await;
    assert_eq!(s, json!({}));

    // killsoid: user1 everywhere.
    let (status, k) = json(
        http.delete(server.url(&format!("/{app}/killsoid/user1")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(k, json!({"kill": 1}));
    let (_, so) = json(
        http.get(server.url(&format!("/{app}/soid/user1")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(so, json!({"sessions": []}));
    let (_, a) = json(
        http.get(server.url(&format!("/{app}/activity?dt=60")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a, json!({"activity": 1}));

    // no_resave sessions say so.
    let (_, body) = json(
        http.put(server.url(&format!("/{app}/create/user3?ip=::1&ttl=60&no_resave=true")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let token4 = body["token"].as_str().unwrap().to_string();
    let (_, s) = json(get(&token4).await.unwrap()).await;
    assert_eq!(s["no_resave"], json!(true));

    // killall: user2 and user3 are left.
    let (status, k) = json(
        http.delete(server.url(&format!("/{app}/killall")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(k, json!({"kill": 2}));
    let (_, s) = json(get(&token2).await.unwrap()).await;
    assert_eq!(s, json!({}));
    let (_, a) = json(
        http.get(server.url(&format!("/{app}/activity?dt=60")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a, json!({"activity": 0}));

    // The sessions live in the test's Redis, in the Node layout.
    let keys = redis.command(&["KEYS", "rs:*"]).unwrap();
    assert!(!keys.contains(&token1), "killed sessions leave no keys");
}

/// (method, path, body, expected error name, expected message)
type Case = (&'static str, String, Option<Vec<u8>>, &'static str, String);

#[tokio::test]
async fn every_input_error_is_a_400_with_the_contract_name_and_message() {
    let server = Server::in_memory(&[]);
    let http = client();
    let token = create(&http, &server, "myapp", "user1").await;
    let long_id = "x".repeat(129);
    let long_korean = "%EA%B9%80".repeat(129);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let forbidden =
        "d.a has a forbidden type. Only strings, numbers, boolean and null are allowed.";
    let not_object = "d must be an object";
    let ttl = "ttl must be a positive integer >= 10";
    let dt = "deltaTime must be a positive integer >= 10";
    let b = |s: &str| Some(s.as_bytes().to_vec());

    let cases: Vec<Case> = vec![
        // create(app, id, ip, ttl, d)
        (
            "PUT",
            "/myapp/create/u1".into(),
            None,
            "missingParameter",
            "No ip supplied".into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=".into(),
            None,
            "missingParameter",
            "No ip supplied".into(),
        ),
        (
            "PUT",
            "/ab/create/u1?ip=1.2.3.4".into(),
            None,
            "invalidFormat",
            "Invalid app format".into(),
        ),
        (
            "PUT",
            "/my%20app/create/u1?ip=1".into(),
            None,
            "invalidFormat",
            "Invalid app format".into(),
        ),
        (
            "PUT",
            format!("/{}/create/u1?ip=1", "a".repeat(21)),
            None,
            "invalidFormat",
            "Invalid app format".into(),
        ),
        // Order: the app is checked before the ip, ttl and body.
        (
            "PUT",
            "/ab/create/u1?ttl=abc".into(),
            b("{oops"),
            "invalidFormat",
            "Invalid app format".into(),
        ),
        (
            "PUT",
            "/myapp/create/abc%0A?ip=1".into(),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        (
            "PUT",
            "/myapp/create/%0D?ip=1".into(),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        (
            "PUT",
            format!("/myapp/create/{long_id}?ip=1"),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        (
            "PUT",
            format!("/myapp/create/{long_korean}?ip=1"),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        (
            "PUT",
            "/myapp/create/%FF%FE?ip=1".into(),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        (
            "PUT",
            format!("/myapp/create/u1?ip={}", "1".repeat(40)),
            None,
            "invalidFormat",
            "Invalid ip format".into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1&ttl=5".into(),
            None,
            "invalidValue",
            ttl.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1&ttl=abc".into(),
            None,
            "invalidValue",
            ttl.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1&ttl=10.5".into(),
            None,
            "invalidValue",
            ttl.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1&ttl=-20".into(),
            None,
            "invalidValue",
            ttl.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1&ttl=".into(),
            None,
            "invalidValue",
            ttl.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1&ttl=5".into(),
            b("{oops"),
            "invalidValue",
            ttl.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            b("[1,2]"),
            "invalidValue",
            not_object.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            b("\"text\""),
            "invalidValue",
            not_object.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            b("42"),
            "invalidValue",
            not_object.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            b("null"),
            "invalidValue",
            not_object.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            b("{oops"),
            "invalidValue",
            not_object.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            Some(vec![0xff, 0xfe, b'{', 0x80]),
            "invalidValue",
            not_object.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            Some(deep.clone().into_bytes()),
            "invalidValue",
            not_object.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            b(r#"{"a":[1]}"#),
            "invalidValue",
            forbidden.into(),
        ),
        (
            "PUT",
            "/myapp/create/u1?ip=1".into(),
            b(r#"{"a":{"b":1}}"#),
            "invalidValue",
            forbidden.into(),
        ),
        // get / kill (app, token)
        (
            "GET",
            "/myapp/get/short".into(),
            None,
            "invalidFormat",
            "Invalid token format".into(),
        ),
        (
            "GET",
            format!("/myapp/get/{token}x"),
            None,
            "invalidFormat",
            "Invalid token format".into(),
        ),
        (
            "GET",
            format!("/ab/get/{token}"),
            None,
            "invalidFormat",
            "Invalid app format".into(),
        ),
        (
            "GET",
            "/ab/get/short".into(),
            None,
            "invalidFormat",
            "Invalid app format".into(),
        ),
        (
            "GET",
            "/myapp/get/%FF".into(),
            None,
            "invalidFormat",
            "Invalid token format".into(),
        ),
        (
            "DELETE",
            "/myapp/kill/bad-token".into(),
            None,
            "invalidFormat",
            "Invalid token format".into(),
        ),
        (
            "DELETE",
            format!("/a!b/kill/{token}"),
            None,
            "invalidFormat",
            "Invalid app format".into(),
        ),
        // set (app, token, d)
        (
            "POST",
            format!("/myapp/set/{token}"),
            None,
            "missingParameter",
            "No d supplied".into(),
        ),
        (
            "POST",
            format!("/myapp/set/{token}"),
            b("null"),
            "missingParameter",
            "No d supplied".into(),
        ),
        (
            "POST",
            format!("/myapp/set/{token}"),
            b("{}"),
            "invalidValue",
            "d must containt at least one key.".into(),
        ),
        (
            "POST",
            format!("/myapp/set/{token}"),
            b("[1]"),
            "invalidValue",
            not_object.into(),
        ),
        (
            "POST",
            format!("/myapp/set/{token}"),
            b("\"s\""),
            "invalidValue",
            not_object.into(),
        ),
        (
            "POST",
            format!("/myapp/set/{token}"),
            b("{\"a\":"),
            "invalidValue",
            not_object.into(),
        ),
        (
            "POST",
            format!("/myapp/set/{token}"),
            Some(vec![b'{', 0xc3, 0x28, b'}']),
            "invalidValue",
            not_object.into(),
        ),
        (
            "POST",
            format!("/myapp/set/{token}"),
            Some(deep.into_bytes()),
            "invalidValue",
            not_object.into(),
        ),
        (
            "POST",
            format!("/myapp/set/{token}"),
            b(r#"{"a":[]}"#),
            "invalidValue",
            forbidden.into(),
        ),
        (
            "POST",
            "/myapp/set/short".into(),
            b("{oops"),
            "invalidFormat",
            "Invalid token format".into(),
        ),
        // activity / soapp (app, deltaTime)
        (
            "GET",
            "/myapp/activity".into(),
            None,
            "invalidValue",
            dt.into(),
        ),
        (
            "GET",
            "/myapp/activity?dt=5".into(),
            None,
            "invalidValue",
            dt.into(),
        ),
        (
            "GET",
            "/myapp/activity?dt=abc".into(),
            None,
            "invalidValue",
            dt.into(),
        ),
        (
            "GET",
            "/ab/activity?dt=abc".into(),
            None,
            "invalidFormat",
            "Invalid app format".into(),
        ),
        (
            "GET",
            "/myapp/soapp".into(),
            None,
            "invalidValue",
            dt.into(),
        ),
        (
            "GET",
            "/myapp/soapp?dt=9".into(),
            None,
            "invalidValue",
            dt.into(),
        ),
        (
            "GET",
            "/myapp/soapp?dt=1e3".into(),
            None,
            "invalidValue",
            dt.into(),
        ),
        // soid / killsoid (app, id)
        (
            "GET",
            "/myapp/soid/%0A".into(),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        (
            "GET",
            format!("/myapp/soid/{long_id}"),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        (
            "DELETE",
            format!("/myapp/killsoid/{long_id}"),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        (
            "DELETE",
            "/myapp/killsoid/a%E2%80%A8b".into(),
            None,
            "invalidFormat",
            "Invalid id format".into(),
        ),
        // killall (app)
        (
            "DELETE",
            "/m/killall".into(),
            None,
            "invalidFormat",
            "Invalid app format".into(),
        ),
    ];

    for (method, path, body, name, message) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = http.request(method.clone(), server.url(&path));
        if let Some(body) = body {
            request = request.body(body);
        }
        let started = std::time::Instant::now();
        let (status, reply) = json(request.send().await.unwrap()).await;
        assert!(
            started.elapsed().as_millis() < 500,
            "{method} {path} was slow"
        );
        assert_eq!(status, 400, "{method} {path}: {reply}");
        assert_eq!(
            reply,
            json!({"error": name, "message": message}),
            "{method} {path}"
        );
    }

    // The boundaries are accepted.
    let ok_id = "x".repeat(128);
    let (status, _) = json(
        http.put(server.url(&format!("/myapp/create/{ok_id}?ip=1&ttl=10")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = json(
        http.get(server.url("/myapp/activity?dt=10"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_404_and_405() {
    let server = Server::in_memory(&[]);
    let http = client();
    for (method, path, status) in [
        ("GET", "/", 404),
        ("GET", "/nope", 404),
        ("GET", "/myapp/create", 404),
        ("GET", "/myapp/get/", 404),
        ("GET", "/myapp/unknown/x", 404),
        ("GET", "/myapp/create/u1", 405),
        ("POST", "/ping", 405),
        ("PUT", "/myapp/get/x", 405),
        ("GET", "/myapp/killall", 405),
        ("DELETE", "/myapp/soapp", 405),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (got, body) = json(
            http.request(method.clone(), server.url(path))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got, status, "{method} {path}");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
        assert!(body["message"].is_string());
    }
}

#[tokio::test]
async fn percent_encoded_ids_and_ids_with_colons() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[]);
    let http = client();
    for (encoded, id) in [
        ("a%40b.com", "a@b.com"),
        ("%EA%B9%80", "김"),
        ("user:42", "user:42"),
        ("a%3Ab%3Ac", "a:b:c"),
        ("a%2Fb", "a/b"),
        ("with%20space", "with space"),
    ] {
        let token = create(&http, &server, "encapp", encoded).await;
        let (_, s) = json(
            http.get(server.url(&format!("/encapp/get/{token}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s["id"], id, "{encoded}");
        let (_, so) = json(
            http.get(server.url(&format!("/encapp/soid/{encoded}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let sessions = so["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 1, "{encoded}: {so}");
        assert_eq!(sessions[0]["id"], id);
        let (_, k) = json(
            http.delete(server.url(&format!("/encapp/killsoid/{encoded}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(k, json!({"kill": 1}), "{encoded}");
    }
    let users = redis.command(&["ZCARD", "rs:encapp:_users"]).unwrap();
    assert_eq!(users.trim(), ":0");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let small = Server::in_memory(&[("RS_BODY_LIMIT", "1000")]);
    let http = client();
    let token = create(&http, &small, "limitapp", "u1").await;
    let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(2000));
    for request in [
        http.put(small.url("/limitapp/create/u2?ip=1")),
        http.post(small.url(&format!("/limitapp/set/{token}"))),
    ] {
        let (status, body) = json(request.body(big.clone()).send().await.unwrap()).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"], "payloadTooLarge");
    }
    // Under the limit still works.
    let (status, _) = json(
        http.post(small.url(&format!("/limitapp/set/{token}")))
            .body(r#"{"a":"small"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);

    // The default (1 MB) takes a body of 100 KB, and the store's bound on a session's
    // data (64 KiB of JSON) decides: 60 KB of data is stored, 100 KB is dataTooLarge.
    let default = Server::in_memory(&[]);
    let hundred_kb = format!(r#"{{"blob":"{}"}}"#, "y".repeat(100 * 1024));
    let (status, body) = json(
        http.put(default.url("/limitapp/create/u1?ip=1"))
            .body(hundred_kb)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (413, &json!("dataTooLarge")),
        "{body}"
    );
    let sixty_kb = format!(r#"{{"blob":"{}"}}"#, "y".repeat(60 * 1024));
    let (status, body) = json(
        http.put(default.url("/limitapp/create/u1?ip=1"))
            .body(sixty_kb)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let (_, s) = json(
        http.get(default.url(&format!("/limitapp/get/{token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s["d"]["blob"].as_str().unwrap().len(), 60 * 1024);
    let two_mb = format!(r#"{{"blob":"{}"}}"#, "y".repeat(2 * 1024 * 1024));
    if let Ok(response) = http
        .put(default.url("/limitapp/create/u1?ip=1"))
        .body(two_mb)
        .send()
        .await
    {
        // The server may also close the connection before the whole body is sent.
        assert_eq!(response.status().as_u16(), 413);
    }
}

#[tokio::test]
async fn memory_store_end_to_end() {
    let server = Server::in_memory(&[]);
    let http = client();
    let token = create(&http, &server, "memapp", "alice").await;
    let (status, s) = json(
        http.get(server.url(&format!("/memapp/get/{token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(s["id"], "alice");
    let (status, h) = json(http.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(
        (status, h),
        (200, json!({"status": "ok", "store": "memory"}))
    );
}

#[tokio::test]
async fn metrics_and_openapi() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[]);
    let http = client();
    let token = create(&http, &server, "metricsapp", "u1").await;
    http.get(server.url(&format!("/metricsapp/get/{token}")))
        .send()
        .await
        .unwrap();
    http.get(server.url("/metricsapp/get/bad"))
        .send()
        .await
        .unwrap();

    let (status, h) = json(http.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(
        (status, h),
        (200, json!({"status": "ok", "store": "redis"}))
    );

    let response = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            r#"rest_sessions_http_requests_total{method="PUT",route="/:app/create/:id",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="/:app/get/:token",status="400",error="invalidFormat""#));
    assert!(text.contains("rest_sessions_http_request_duration_seconds_bucket"));
    assert!(!text.contains(&token), "tokens never become labels");

    let (status, doc) = json(http.get(server.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/ping", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/{app}/create/{id}", "put"),
        ("/{app}/get/{token}", "get"),
        ("/{app}/set/{token}", "post"),
        ("/{app}/activity", "get"),
        ("/{app}/soapp", "get"),
        ("/{app}/soid/{id}", "get"),
        ("/{app}/kill/{token}", "delete"),
        ("/{app}/killsoid/{id}", "delete"),
        ("/{app}/killdevice/{id}/{handle}", "delete"),
        ("/{app}/killall", "delete"),
        ("/{app}/events", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    assert!(doc["components"]["schemas"]["Session"].is_object());
}

async fn text(request: reqwest::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

/// Numbers go in and come out as the Node server writes them (issue: a float lost its
/// last digit): the double nearest to what was sent, in ECMAScript's form, and array-index
/// keys first, on both stores.
#[tokio::test]
async fn numbers_and_keys_come_back_as_node_writes_them() {
    let redis = RedisServer::start();
    for server in [Server::with_redis(&redis, &[]), Server::in_memory(&[])] {
        let http = client();
        let app = "numapp";
        let body = text(
            http.put(server.url(&format!("/{app}/create/u1?ip=127.0.0.1")))
                .body(
                    r#"{"x":3.7998950481414795,"big":12345678901234567890,"e":1e21,"z":-0,"b":1}"#,
                ),
        )
        .await;
        let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let set = text(
            http.post(server.url(&format!("/{app}/set/{token}")))
                .body(r#"{"y":0.0000001,"1":true,"b":null}"#),
        )
        .await;
        let expected = r#""d":{"1":true,"x":3.7998950481414795,"big":12345678901234567000,"e":1e+21,"z":0,"y":1e-7}"#;
        assert!(set.contains(expected), "set reply: {set}");
        let get = text(http.get(server.url(&format!("/{app}/get/{token}")))).await;
        assert!(get.contains(expected), "get reply: {get}");
    }
}

/// What Node's JSON.parse accepts, we accept and store as Node stores it (issue 19): lone
/// surrogates come back as the `\ud83d` escapes JSON.stringify writes, `1e400` (Infinity in
/// JavaScript) is stored as `null`; data past the store's bounds is a 413 that writes
/// nothing. On both stores.
#[tokio::test]
async fn javascript_strings_and_numbers_round_trip_and_oversized_data_is_413() {
    let redis = RedisServer::start();
    for server in [Server::with_redis(&redis, &[]), Server::in_memory(&[])] {
        let http = client();
        let app = "jsapp";
        let body = text(
            http.put(server.url(&format!("/{app}/create/u1?ip=127.0.0.1")))
                .body(r#"{"name":"\ud83d","big":1e400,"k\udc00":"\uffff"}"#),
        )
        .await;
        let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap_or_else(|| panic!("create: {body}"))
            .to_owned();
        let get = text(http.get(server.url(&format!("/{app}/get/{token}")))).await;
        assert!(
            get.contains(r#""d":{"name":"\ud83d","big":null,"k\udc00":"￿"}"#),
            "get reply: {get}"
        );
        let set = text(
            http.post(server.url(&format!("/{app}/set/{token}")))
                .body(r#"{"x":"a\ude00","neg":-1e400}"#),
        )
        .await;
        let expected = r#""d":{"name":"\ud83d","big":null,"k\udc00":"￿","x":"a\ude00","neg":null}"#;
        assert!(set.contains(expected), "set reply: {set}");
        let listed = text(http.get(server.url(&format!("/{app}/soid/u1")))).await;
        assert!(
            listed.contains(r#""name":"\ud83d""#),
            "soid reply: {listed}"
        );

        // Over the bounds: 413 dataTooLarge, and nothing written.
        let many: serde_json::Map<String, Value> = (0..=redis_sessions::limits::MAX_KEYS)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        let reply = http
            .post(server.url(&format!("/{app}/set/{token}")))
            .body(Value::Object(many).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 413);
        let (_, error) = json(reply).await;
        assert_eq!(error["error"], "dataTooLarge");
        let after = text(http.get(server.url(&format!("/{app}/get/{token}")))).await;
        assert!(
            after.contains(expected) && after.contains(r#""w":2"#),
            "unchanged: {after}"
        );
    }
}

/// A set at the store's bounds holds Redis about a millisecond: `/ping`, which asks
/// Redis, is answered throughout a stream of such sets (issue 19: one 100k-key session
/// used to stall Redis for a second and `/ping` answered 503).
#[tokio::test]
async fn ping_is_served_while_sets_at_the_bound_run() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[]);
    let http = client();
    let full: serde_json::Map<String, Value> = (0..redis_sessions::limits::MAX_KEYS - 1)
        .map(|i| (format!("key{i}"), json!(i)))
        .collect();
    let body = text(
        http.put(server.url("/pingapp/create/u1?ip=127.0.0.1"))
            .body(Value::Object(full).to_string()),
    )
    .await;
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap_or_else(|| panic!("create: {body}"))
        .to_owned();
    let setter = {
        let (http, url) = (http.clone(), server.url(&format!("/pingapp/set/{token}")));
        tokio::spawn(async move {
            for i in 0..60 {
                let reply = http
                    .post(&url)
                    .body(format!(r#"{{"key5":{i}}}"#))
                    .send()
                    .await;
                assert_eq!(reply.expect("set").status().as_u16(), 200);
            }
        })
    };
    let mut slowest = std::time::Duration::ZERO;
    for _ in 0..60 {
        let started = std::time::Instant::now();
        let ping = http.get(server.url("/ping")).send().await.expect("ping");
        assert_eq!(ping.status().as_u16(), 200);
        slowest = slowest.max(started.elapsed());
    }
    setter.await.expect("sets");
    assert!(
        slowest < std::time::Duration::from_secs(1),
        "a ping took {slowest:?}"
    );
}

#[tokio::test]
async fn invalid_percent_encoding_is_a_400_on_every_route() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[]);
    let http = client();
    let token = create(&http, &server, "pctapp", "u1").await;
    // (method, path with {app} and {p} for the second parameter, its name, body)
    let routes = [
        ("PUT", "/{app}/create/{p}?ip=1.2.3.4", "id", ""),
        ("GET", "/{app}/get/{p}", "token", ""),
        ("POST", "/{app}/set/{p}", "token", r#"{"a":1}"#),
        ("GET", "/{app}/soid/{p}", "id", ""),
        ("DELETE", "/{app}/kill/{p}", "token", ""),
        ("DELETE", "/{app}/killsoid/{p}", "id", ""),
        ("GET", "/{app}/activity?dt=60", "", ""),
        ("GET", "/{app}/soapp?dt=60", "", ""),
        ("DELETE", "/{app}/killall", "", ""),
    ];
    let bad = ["%ZZ", "u%", "u%4", "%E0%A4", "%FF", "%C3%28", "%ED%A0%80"];
    let send = |method: &str, path: &str, body: &str| {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let reply = raw_request(server.port(), request.as_bytes()).expect("a reply");
        let status: u16 = reply
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = reply
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    for (method, template, second, body) in routes {
        for encoding in bad {
            // A badly encoded app.
            let path = template
                .replace("{app}", &format!("pct{encoding}"))
                .replace("{p}", &token);
            let (status, reply) = send(method, &path, body);
            assert_eq!(status, 400, "{method} {path}: {reply}");
            assert_eq!(reply["error"], "invalidFormat", "{method} {path}");
            assert_eq!(reply["message"], "Invalid app format", "{method} {path}");
            if second.is_empty() {
                continue;
            }
            // A badly encoded token or id after a valid app.
            let path = template.replace("{app}", "pctapp").replace("{p}", encoding);
            let (status, reply) = send(method, &path, body);
            assert_eq!(status, 400, "{method} {path}: {reply}");
            assert_eq!(reply["error"], "invalidFormat", "{method} {path}");
            assert_eq!(
                reply["message"],
                format!("Invalid {second} format"),
                "{method} {path}"
            );
        }
    }
    // Nothing was written: the one session is still there, and alone.
    let (status, s) = json(
        http.get(server.url(&format!("/pctapp/get/{token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, s["id"].clone()), (200, json!("u1")));
    let count = redis.command(&["ZCARD", "rs:pctapp:_sessions"]).unwrap();
    assert_eq!(count.trim(), ":1");
}

/// Devices over REST: soid lists a handle per session (never a token); killdevice ends one
/// session by it, killsoid with `keep` every other one; both stores.
#[tokio::test]
async fn devices_are_listed_and_ended_by_handle() {
    let redis = RedisServer::start();
    for server in [Server::with_redis(&redis, &[]), Server::in_memory(&[])] {
        let http = client();
        let app = "devapp";
        let tokens = [
            create(&http, &server, app, "carol").await,
            create(&http, &server, app, "carol").await,
            create(&http, &server, app, "carol").await,
        ];
        let soid = text(http.get(server.url(&format!("/{app}/soid/carol")))).await;
        for t in &tokens {
            assert!(!soid.contains(t.as_str()), "a token in soid: {soid}");
            assert!(soid.contains(&redis_sessions::device_handle(t)), "{soid}");
        }
        let kill = |path: String| {
            let http = http.clone();
            let url = server.url(&path);
            async move { json(http.delete(url).send().await.unwrap()).await }
        };
        let handle = redis_sessions::device_handle(&tokens[1]);
        let (status, body) = kill(format!("/{app}/killdevice/carol/{handle}")).await;
        assert_eq!((status, body), (200, json!({"kill": 1})));
        let (status, body) = kill(format!("/{app}/killdevice/carol/{handle}")).await;
        assert_eq!((status, body), (200, json!({"kill": 0})));
        let (status, body) = kill(format!("/{app}/killdevice/carol/nothex")).await;
        assert_eq!(status, 400);
        assert_eq!(body["message"], "Invalid handle format");
        let keep = &tokens[0];
        let (status, body) = kill(format!("/{app}/killsoid/carol?keep={keep}")).await;
        assert_eq!((status, body), (200, json!({"kill": 1})));
        let (_, s) = json(
            http.get(server.url(&format!("/{app}/soid/carol")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let sessions = s["sessions"].as_array().expect("sessions");
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            sessions[0]["handle"],
            json!(redis_sessions::device_handle(keep))
        );
    }
}
