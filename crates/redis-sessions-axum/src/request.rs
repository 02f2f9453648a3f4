//! What the layer learns about the connection from a request: whether it came over HTTPS
//! (for the cookie's `Secure`) and the client's address (stored with a new session).

use crate::config::ReportedOnce;
use crate::proxy::Forwarded;
use axum::extract::ConnectInfo;
use http::request::Parts;
use std::net::{IpAddr, SocketAddr};

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

/// The peer's address, when the server gives it (`ConnectInfo<SocketAddr>`).
pub(crate) fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// True when the request came over HTTPS, as far as the layer can know: the URI's scheme,
/// the [`Tls`] mark, or the trusted proxies.
pub(crate) fn is_https(parts: &Parts, forwarded: &Forwarded) -> bool {
    parts.uri.scheme_str() == Some("https")
        || parts.extensions.get::<Tls>().is_some()
        || forwarded.https
}

/// The client's address as given to the store, or None when axum was not told the peer
/// address and no trusted proxy named a valid one.
pub(crate) fn client_ip(parts: &Parts, forwarded: &Forwarded) -> Option<String> {
    let ip = if forwarded.used {
        forwarded.ip
    } else {
        peer(parts)
    };
    ip.map(|ip| ip.to_string())
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
    use crate::proxy::Proxies;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::builder().uri("/x");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    fn https(parts: &Parts, proxies: &Proxies) -> bool {
        let header = if parts.headers.contains_key("forwarded") {
            crate::proxy::ProxyHeader::Forwarded
        } else {
            crate::proxy::ProxyHeader::XForwarded
        };
        is_https(parts, &proxies.read(header, &parts.headers, peer(parts)))
    }

    #[test]
    fn https_from_proxy_headers_only_when_trusted() {
        let one = Proxies::Hops(1);
        let xfp = parts(&[("x-forwarded-proto", "HTTPS, http")]);
        assert!(https(&xfp, &one));
        assert!(!https(&xfp, &Proxies::None));
        let fwd = parts(&[("forwarded", "for=1.2.3.4;Proto=\"https\";by=x")]);
        assert!(https(&fwd, &one));
        assert!(!https(&fwd, &Proxies::None));
        assert!(!https(&parts(&[("forwarded", "proto=http")]), &one));
        let mut tls = parts(&[]);
        assert!(!https(&tls, &Proxies::None));
        tls.extensions.insert(Tls);
        assert!(https(&tls, &Proxies::None));
    }
}
