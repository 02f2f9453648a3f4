//! What the layer learns about the connection from a request: whether it came over HTTPS
//! (for the cookie's `Secure`) and the client's address (stored with a new session).

use crate::config::ReportedOnce;
use axum::extract::ConnectInfo;
use http::request::Parts;
use std::net::SocketAddr;

/// A request extension that says "this request came over TLS".
///
/// HTTP/1.1 requests do not carry their scheme, so behind a TLS acceptor of the app's own
/// (axum-server with rustls, tokio-rustls) the layer cannot tell HTTPS from HTTP. Add this
/// extension to the service of the TLS listener, outside the [`SessionLayer`] — e.g.
/// `router.layer(axum::Extension(Tls))` after `.layer(SessionLayer::new(..))` — and
/// [`CookieSecure::Auto`] marks the cookie `Secure` on those requests. A server that
/// serves HTTPS only can use `.secure(true)` instead.
///
/// [`SessionLayer`]: crate::SessionLayer
/// [`CookieSecure::Auto`]: crate::CookieSecure::Auto
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tls;

/// The first value of a comma-separated proxy header, when proxies are trusted.
fn forwarded<'a>(parts: &'a Parts, name: &str, trust_proxy: bool) -> Option<&'a str> {
    if !trust_proxy {
        return None;
    }
    let value = parts.headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

/// `proto=https` in the first element of an RFC 7239 `Forwarded` header.
fn forwarded_proto_https(parts: &Parts, trust_proxy: bool) -> bool {
    forwarded(parts, "forwarded", trust_proxy).is_some_and(|element| {
        element.split(';').any(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("proto")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
            })
        })
    })
}

/// True when the request came over HTTPS, as far as the layer can know.
pub(crate) fn is_https(parts: &Parts, trust_proxy: bool) -> bool {
    parts.uri.scheme_str() == Some("https")
        || parts.extensions.get::<Tls>().is_some()
        || forwarded(parts, "x-forwarded-proto", trust_proxy)
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || forwarded_proto_https(parts, trust_proxy)
}

/// The client's address as given to the store (1..39 characters, as it requires), or None
/// when axum was not told the peer address and no trusted proxy named it.
pub(crate) fn client_ip(parts: &Parts, trust_proxy: bool) -> Option<String> {
    let ip = forwarded(parts, "x-forwarded-for", trust_proxy)
        .map(str::to_owned)
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
        })?;
    Some(ip.chars().take(39).collect())
}

/// The ip stored with a new session: the client's, or `"unknown"` (the store needs one),
/// which is logged once since it usually means a missing `ConnectInfo`.
pub(crate) fn ip_for_new_session(ip: Option<&str>, reported: &ReportedOnce) -> String {
    if let Some(ip) = ip {
        return ip.to_owned();
    }
    if ReportedOnce::first(&reported.no_peer_address) {
        tracing::warn!(
            "a session was created with ip \"unknown\": serve the app with \
             `into_make_service_with_connect_info::<SocketAddr>()` (or trust a proxy that \
             sets X-Forwarded-For) so sessions record the client address"
        );
    }
    "unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::builder().uri("/x");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn https_from_proxy_headers_only_when_trusted() {
        let xfp = parts(&[("x-forwarded-proto", "HTTPS, http")]);
        assert!(is_https(&xfp, true));
        assert!(!is_https(&xfp, false));
        let fwd = parts(&[("forwarded", "for=1.2.3.4;Proto=\"https\";by=x, proto=http")]);
        assert!(is_https(&fwd, true));
        assert!(!is_https(&fwd, false));
        assert!(!is_https(&parts(&[("forwarded", "proto=http")]), true));
        let mut tls = parts(&[]);
        assert!(!is_https(&tls, false));
        tls.extensions.insert(Tls);
        assert!(is_https(&tls, false));
    }
}
