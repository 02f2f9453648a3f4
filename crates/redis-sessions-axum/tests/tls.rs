//! `Secure` on HTTP/1.1 over TLS, end to end: a real TLS listener (tokio-rustls) serving the
//! app over HTTP/1.1, a real TLS client, a real redis-server. HTTP/1.1 requests carry no
//! scheme, so only the listener can say the connection was TLS: the app marks its requests
//! with the `Tls` extension, as the README shows.
//!
//! The certificate is made for the test by the `openssl` command line tool.

use axum::routing::post;
use axum::Router;
use redis_sessions_axum::redis_sessions::{Options, RedisSessions};
use redis_sessions_axum::{CookieSecure, Session, SessionError, SessionLayer, Tls};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use test_support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const APP: &str = "tlsapp";

/// A self-signed certificate for `localhost` (made by test-support with openssl).
fn certificate(dir: &Path) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let made = test_support::tls::self_signed(dir);
    (
        CertificateDer::from_pem_file(&made.cert).expect("certificate PEM"),
        PrivateKeyDer::from_pem_file(&made.key).expect("key PEM"),
    )
}

/// Serves `app` over HTTP/1.1 on `listener`, each connection through TLS when `tls` is set.
fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let app = app.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(app);
                let http = hyper::server::conn::http1::Builder::new();
                let _ = match tls {
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => {
                            http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await
                        }
                        Err(_) => return,
                    },
                    None => {
                        http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                            .await
                    }
                };
            });
        }
    })
}

/// Sends one HTTP/1.1 request and returns the whole raw response.
async fn request<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
) -> String {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // A TLS peer may close without close_notify; what was read is the response.
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn set_cookie(response: &str) -> &str {
    response
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no Set-Cookie in {response:?}"))
}

#[tokio::test]
async fn secure_cookie_on_http1_over_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("rsa-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate(&dir);
    let _ = std::fs::remove_dir_all(&dir);

    let redis = RedisServer::start();
    let store = RedisSessions::connect(Options::default().url(redis.url()))
        .await
        .unwrap();
    async fn login(s: Session, uri: axum::http::Uri) -> Result<String, SessionError> {
        s.upgrade("alice").await?;
        Ok(format!("scheme={:?}", uri.scheme_str()))
    }
    let routes = || Router::new().route("/login", post(login));

    // The TLS listener marks its requests; the plain one serves the same routes unmarked.
    let server_config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    // Auto: the mixed setup, where the layer needs the mark (the default, Always, needs none).
    let tls_app = routes()
        .layer(SessionLayer::new(store.clone(), APP).secure(CookieSecure::Auto))
        .layer(axum::Extension(Tls));
    let plain_app =
        routes().layer(SessionLayer::new(store.clone(), APP).secure(CookieSecure::Auto));
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tls_addr, plain_addr) = (
        tls_listener.local_addr().unwrap(),
        plain_listener.local_addr().unwrap(),
    );
    // The default (Secure always) behind the app's own TLS, with no mark at all.
    let default_app = routes().layer(SessionLayer::new(store.clone(), APP));
    let default_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let default_addr = default_listener.local_addr().unwrap();
    let servers = [
        serve(tls_listener, tls_app, Some(acceptor.clone())),
        serve(plain_listener, plain_app, None),
        serve(default_listener, default_app, Some(acceptor.clone())),
    ];

    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(client));
    let https = async {
        let tcp = TcpStream::connect(tls_addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        request(tls, "/login").await
    };
    let response = tokio::time::timeout(Duration::from_secs(20), https)
        .await
        .expect("in time");
    let default_https = async {
        let tcp = TcpStream::connect(default_addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        request(tls, "/login").await
    };
    let by_default = tokio::time::timeout(Duration::from_secs(20), default_https)
        .await
        .expect("in time");
    assert!(by_default.ends_with("scheme=None"), "{by_default}");
    assert!(set_cookie(&by_default).contains("; Secure"), "{by_default}");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The request really was HTTP/1.1 without a scheme: only the extension told the layer.
    assert!(response.ends_with("scheme=None"), "{response}");
    let cookie = set_cookie(&response);
    assert!(cookie.starts_with(&format!("{APP}=")), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");

    // Plain HTTP/1.1 to the same routes: no Secure, so local development keeps working.
    let tcp = TcpStream::connect(plain_addr).await.unwrap();
    let response = request(tcp, "/login").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(!set_cookie(&response).contains("Secure"), "{response}");
    for server in servers {
        server.abort();
    }
}
