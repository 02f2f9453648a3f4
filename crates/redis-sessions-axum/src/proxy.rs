//! Which proxies in front of the app are trusted, and what they say about the client: its
//! address (stored with a new session) and whether it came over HTTPS (for `Secure`).
//!
//! Each proxy appends the address it received the request from, so the client address is
//! found by walking the forwarding chain **from the right** over the trusted proxies only:
//! whatever a client writes itself lands on the left and is never taken. The chain is
//! RFC 7239 `Forwarded` (`for=`, `proto=` per element) when present, else
//! `X-Forwarded-For` / `X-Forwarded-Proto`. The address taken must parse as an IP (ports,
//! brackets and quotes removed); anything else (`unknown`, an obfuscated name, markup) is
//! no address.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Which header the trusted proxies write the forwarding chain to. Only that one is read:
/// a client can send the other one too, and no trusted proxy would append to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `X-Forwarded-For` (the client address) and `X-Forwarded-Proto` (the scheme): what
    /// nginx, HAProxy, cloud load balancers and most proxies write (the default).
    #[default]
    XForwarded,
    /// RFC 7239 `Forwarded` (`for=`, `proto=` per hop).
    Forwarded,
}

/// Which proxies in front of the app are trusted (see
/// [`SessionLayer::trusted_proxy_hops`](crate::SessionLayer::trusted_proxy_hops) and
/// [`SessionLayer::trusted_proxies`](crate::SessionLayer::trusted_proxies)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Proxies {
    /// None: forwarding headers are ignored, the address is the peer's.
    #[default]
    None,
    /// This many proxies, every one of them appending to the chain.
    Hops(usize),
    /// The proxies at these addresses: the peer must be one, and so is every address
    /// skipped from the right of the chain.
    List(Vec<IpNet>),
}

/// What the trusted proxies say about the client.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Forwarded {
    /// The client address, when the chain names a valid one.
    pub ip: Option<IpAddr>,
    /// The scheme the client used, as the outermost trusted proxy saw it.
    pub https: bool,
    /// True when a trusted forwarding chain named the client (its address is `ip`).
    pub used: bool,
}

/// One hop of the forwarding chain: the address a proxy received from, and the scheme.
#[derive(Debug, Default)]
struct Hop {
    addr: Option<IpAddr>,
    proto: Option<String>,
    /// The hop names a client (a `for=`, valid or not); without, the peer's address is kept.
    named: bool,
}

/// The address in a `for=` / `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:80`,
/// `"[2001:db8::1]:4711"`, `2001:db8::1`. None for anything else.
pub(crate) fn parse_addr(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"');
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    // `[v6]` without a port (`[v6]:port` parsed above as a socket address).
    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The chain from `Forwarded` (RFC 7239), left (client side) to right (nearest proxy).
fn forwarded_chain(values: &[&str]) -> Vec<Hop> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            let mut hop = Hop::default();
            for pair in element.split(';') {
                if let Some((k, v)) = pair.split_once('=') {
                    let k = k.trim();
                    if k.eq_ignore_ascii_case("for") {
                        hop.addr = parse_addr(v);
                        hop.named = true;
                    } else if k.eq_ignore_ascii_case("proto") {
                        hop.proto = Some(v.trim().trim_matches('"').to_ascii_lowercase());
                    }
                }
            }
            hop
        })
        .collect()
}

/// The chain from `X-Forwarded-For`, with `X-Forwarded-Proto`'s values lined up from the
/// right (proxies that overwrite it leave one value: it then belongs to every hop).
fn x_forwarded_chain(fors: &[&str], protos: &[&str]) -> Vec<Hop> {
    let addrs: Vec<&str> = fors.iter().flat_map(|v| v.split(',')).collect();
    let protos: Vec<String> = protos
        .iter()
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    let n = addrs.len();
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            // Align from the right; a shorter proto list gives its leftmost to the rest.
            let from_right = n - 1 - i;
            let proto = protos
                .len()
                .checked_sub(1 + from_right)
                .map_or_else(|| protos.first().cloned(), |j| protos.get(j).cloned());
            Hop {
                addr: parse_addr(a),
                proto,
                named: true,
            }
        })
        .collect()
}

impl Proxies {
    /// What the trusted proxies say, given the request's headers (`forwarded`, and
    /// `x-forwarded-for` / `x-forwarded-proto`) and the peer address when known.
    pub(crate) fn read(
        &self,
        header: ProxyHeader,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Forwarded {
        let values = |name: &str| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        if *self == Proxies::None {
            return Forwarded::default();
        }
        let chain = match header {
            ProxyHeader::Forwarded => forwarded_chain(&values("forwarded")),
            ProxyHeader::XForwarded => {
                let fors = values("x-forwarded-for");
                let protos = values("x-forwarded-proto");
                if fors.is_empty() {
                    // A proxy may say the scheme without a chain.
                    let https = self.trusts_peer(peer)
                        && protos.first().is_some_and(|p| {
                            p.split(',')
                                .next()
                                .unwrap_or("")
                                .trim()
                                .eq_ignore_ascii_case("https")
                        });
                    return Forwarded {
                        ip: None,
                        https,
                        used: false,
                    };
                }
                x_forwarded_chain(&fors, &protos)
            }
        };
        if chain.is_empty() || !self.trusts_peer(peer) {
            return Forwarded::default();
        }
        // How many entries from the right the client's is (1: the last one).
        let from_right = match self {
            Proxies::None => return Forwarded::default(),
            Proxies::Hops(hops) => (*hops).min(chain.len()),
            Proxies::List(nets) => {
                let trusted = |hop: &Hop| {
                    hop.addr
                        .is_some_and(|a| nets.iter().any(|n| n.contains(&a)))
                };
                let skipped = chain.iter().rev().take_while(|hop| trusted(hop)).count();
                (skipped + 1).min(chain.len())
            }
        };
        let hop = &chain[chain.len() - from_right];
        Forwarded {
            ip: hop.addr,
            https: hop.proto.as_deref() == Some("https"),
            used: hop.named,
        }
    }

    /// True when the peer is a trusted proxy: any peer with a hop count (the app is
    /// reachable through its proxies only), a listed one otherwise.
    fn trusts_peer(&self, peer: Option<IpAddr>) -> bool {
        match self {
            Proxies::None => false,
            Proxies::Hops(_) => true,
            Proxies::List(nets) => peer.is_some_and(|p| nets.iter().any(|n| n.contains(&p))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn addresses_are_validated() {
        assert_eq!(parse_addr(" 203.0.113.7 "), ip("203.0.113.7"));
        assert_eq!(parse_addr("203.0.113.7:8080"), ip("203.0.113.7"));
        assert_eq!(parse_addr("\"[2001:db8::1]:4711\""), ip("2001:db8::1"));
        assert_eq!(parse_addr("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(parse_addr("2001:db8::1"), ip("2001:db8::1"));
        for bad in [
            "unknown",
            "_hidden",
            "<script>alert(1)</script>",
            "",
            "1.2.3",
            "[::1",
        ] {
            assert_eq!(parse_addr(bad), None, "{bad}");
        }
    }

    #[test]
    fn hops_take_the_entry_their_proxies_appended() {
        let spoofed = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        assert_eq!(
            Proxies::Hops(1)
                .read(ProxyHeader::XForwarded, &spoofed, None)
                .ip,
            ip("10.0.0.2")
        );
        assert_eq!(
            Proxies::Hops(2)
                .read(ProxyHeader::XForwarded, &spoofed, None)
                .ip,
            ip("203.0.113.7")
        );
        assert_eq!(
            Proxies::Hops(9)
                .read(ProxyHeader::XForwarded, &spoofed, None)
                .ip,
            ip("6.6.6.6")
        );
        assert_eq!(
            Proxies::None.read(ProxyHeader::XForwarded, &spoofed, None),
            Forwarded::default()
        );
        let evil = headers(&[("x-forwarded-for", "<script>")]);
        assert_eq!(
            Proxies::Hops(1)
                .read(ProxyHeader::XForwarded, &evil, None)
                .ip,
            None
        );
    }

    #[test]
    fn a_list_trusts_its_proxies_only() {
        let list = Proxies::List(vec!["10.0.0.0/8".parse().unwrap()]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        assert_eq!(
            list.read(ProxyHeader::XForwarded, &h, ip("10.0.0.1")).ip,
            ip("203.0.113.7")
        );
        // A peer that is not a trusted proxy: its headers are the client's own words.
        assert_eq!(
            list.read(ProxyHeader::XForwarded, &h, ip("198.51.100.1")),
            Forwarded::default()
        );
        assert_eq!(
            list.read(ProxyHeader::XForwarded, &h, None),
            Forwarded::default()
        );
    }

    #[test]
    fn forwarded_carries_the_proto_of_the_clients_hop() {
        let h = headers(&[
            (
                "forwarded",
                "for=6.6.6.6;proto=http, for=\"[2001:db8::7]:1234\";proto=https",
            ),
            ("forwarded", "for=10.0.0.2;proto=http"),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        let two = Proxies::Hops(2).read(ProxyHeader::Forwarded, &h, None);
        assert_eq!((two.ip, two.https), (ip("2001:db8::7"), true));
        let one = Proxies::Hops(1).read(ProxyHeader::Forwarded, &h, None);
        assert_eq!((one.ip, one.https), (ip("10.0.0.2"), false));
        // The header the proxies do not write is the client's own: never read.
        let x = Proxies::Hops(1).read(ProxyHeader::XForwarded, &h, None);
        assert_eq!(x.ip, ip("1.1.1.1"));
        let spoof = headers(&[("forwarded", "for=6.6.6.6;proto=https")]);
        assert_eq!(
            Proxies::Hops(1).read(ProxyHeader::XForwarded, &spoof, None),
            Forwarded::default()
        );
    }

    #[test]
    fn x_forwarded_proto_lines_up_from_the_right() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]);
        assert!(
            Proxies::Hops(2)
                .read(ProxyHeader::XForwarded, &h, None)
                .https
        );
        assert!(
            Proxies::Hops(1)
                .read(ProxyHeader::XForwarded, &h, None)
                .https,
            "one value: every hop's"
        );
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
            ("x-forwarded-proto", "https, http"),
        ]);
        assert!(
            Proxies::Hops(2)
                .read(ProxyHeader::XForwarded, &h, None)
                .https
        );
        assert!(
            !Proxies::Hops(1)
                .read(ProxyHeader::XForwarded, &h, None)
                .https
        );
        let proto_only = headers(&[("x-forwarded-proto", "HTTPS")]);
        assert!(
            Proxies::Hops(1)
                .read(ProxyHeader::XForwarded, &proto_only, None)
                .https
        );
        assert!(
            !Proxies::None
                .read(ProxyHeader::XForwarded, &proto_only, None)
                .https
        );
    }
}
