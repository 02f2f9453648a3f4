//! The HTTP client of webhook deliveries: one POST per connection, over hyper's HTTP/1
//! client connection (already built for the server), with rustls for `https://` URLs.
//!
//! A connection per delivery keeps the client trivially bounded (no pool to size or to
//! clean after a receiver's restart) at the cost of a handshake per batch, which the
//! batches (`RS_WEBHOOK_BATCH` events per POST) amortise.

use axum::http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// Why an attempt failed before the receiver answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// No TCP connection (refused, unreachable, DNS).
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake failed (certificate, protocol).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))] // no https without the feature
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// The HTTP exchange failed (connection closed, malformed reply).
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// No answer within `RS_WEBHOOK_TIMEOUT`.
    #[error("no answer in time")]
    Timeout,
}

impl PostError {
    /// The metric label of the failure.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            PostError::Connect(_) => "connect",
            PostError::Tls(_) => "tls",
            PostError::Http(_) => "http",
            PostError::Timeout => "timeout",
        }
    }
}

/// A parsed receiver URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    uri: Uri,
    host: String,
    port: u16,
    tls: bool,
}

impl Target {
    /// Parses `http://host[:port]/path` or `https://…` (with the `tls` feature).
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("not a URL: {}", crate::redact::redact_url(url)))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") if cfg!(feature = "tls") => true,
            Some("https") => return Err("https webhook URLs need the `tls` feature".into()),
            _ => return Err("a webhook URL starts with http:// or https://".into()),
        };
        let host = uri
            .host()
            .ok_or("a webhook URL needs a host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            uri,
            host,
            port,
            tls,
        })
    }

    /// POSTs `body` as JSON with `headers`; the receiver's status, or why there was none.
    pub(crate) async fn post(
        &self,
        headers: &[(&str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<StatusCode, PostError> {
        tokio::time::timeout(timeout, self.exchange(headers, body))
            .await
            .unwrap_or(Err(PostError::Timeout))
    }

    async fn exchange(
        &self,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<StatusCode, PostError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(PostError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let path = self
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let authority = self
            .uri
            .authority()
            .map_or_else(|| self.host.clone(), |a| a.as_str().to_owned());
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("rest-sessions/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        // The builder fails only on an invalid header; ours are fixed names and ASCII.
        let Ok(request) = request.body(Full::new(body)) else {
            return Err(PostError::Connect(std::io::Error::other("invalid request")));
        };
        if self.tls {
            #[cfg(feature = "tls")]
            {
                let stream = tls::connect(&self.host, tcp)
                    .await
                    .map_err(PostError::Tls)?;
                return send(TokioIo::new(stream), request).await;
            }
        }
        send(TokioIo::new(tcp), request).await
    }
}

/// One request over a fresh HTTP/1 connection; the reply's body is read and dropped so
/// the receiver sees a clean close.
async fn send<I>(io: I, request: Request<Full<Bytes>>) -> Result<StatusCode, PostError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(connection);
    let reply = sender.send_request(request).await;
    let status = match reply {
        Ok(reply) => {
            let status = reply.status();
            // The body is not ours to keep: bounded by the timeout around the exchange.
            let _ = reply.into_body().collect().await;
            Ok(status)
        }
        Err(err) => Err(PostError::Http(err)),
    };
    driver.abort();
    status
}

#[cfg(feature = "tls")]
mod tls {
    use std::io;
    use std::sync::{Arc, OnceLock};
    use tokio::net::TcpStream;
    use tokio_rustls::rustls::{self, pki_types::ServerName};
    use tokio_rustls::{client::TlsStream, TlsConnector};

    /// The client configuration: the webpki roots, ring (the provider the Redis client
    /// uses), built once.
    fn connector() -> io::Result<TlsConnector> {
        static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
        let config = CONFIG.get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(Arc::new(config))
        });
        config
            .clone()
            .map(TlsConnector::from)
            .ok_or_else(|| io::Error::other("no TLS configuration"))
    }

    /// The TLS session over `tcp` with `host`, its certificate checked against the roots.
    pub(super) async fn connect(host: &str, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned()).map_err(io::Error::other)?;
        connector()?.connect(name, tcp).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:9000/hook?x=1").expect("http");
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 9000, false));
        let t = Target::parse("http://[::1]/h").expect("v6");
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        for bad in ["ftp://x/", "nope", "/path"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        #[cfg(feature = "tls")]
        assert_eq!(
            Target::parse("https://example.com/h").expect("https").port,
            443
        );
    }
}
