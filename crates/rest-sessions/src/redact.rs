//! Redis URLs without their passwords, for every message and `Debug` that names a Redis
//! (the main store's settings in config.rs, the old store's in migrate.rs).

/// A Redis URL with its user info removed, so a password never reaches a log.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "<redis url>".to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_string(),
    }
}
