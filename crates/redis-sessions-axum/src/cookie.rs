//! Reading the token from a request and writing the `Set-Cookie` header. Done by hand: the
//! token alphabet needs no encoding, so a cookie crate would add nothing but weight.

use crate::config::CookieSettings;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};

/// True for a token of the store's format (the library's rule: 64 characters
/// `[A-Za-z0-9]`). Only such a token is worth a store round trip.
pub(crate) fn is_token(s: &str) -> bool {
    redis_sessions::validate::token(s).is_ok()
}

/// The first well-formed token in a cookie called `name` (several `Cookie` headers and
/// several cookies of that name may exist, e.g. with different paths).
pub(crate) fn from_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .find(|v| is_token(v))
        .map(str::to_owned)
}

/// A well-formed token from `Authorization: Bearer <token>`.
pub(crate) fn from_bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && is_token(token)).then(|| token.to_owned())
}

/// The `Set-Cookie` value that stores `token`, or clears the cookie when `token` is None.
pub(crate) fn set_cookie(
    settings: &CookieSettings,
    name: &str,
    token: Option<&str>,
    max_age: Option<std::time::Duration>,
    secure: bool,
) -> Option<HeaderValue> {
    let mut out = format!("{name}={}; Path={}", token.unwrap_or(""), settings.path);
    if let Some(domain) = &settings.domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    match (token, max_age) {
        (None, _) => out.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        (Some(_), Some(age)) => out.push_str(&format!("; Max-Age={}", age.as_secs())),
        (Some(_), None) => {}
    }
    if settings.http_only {
        out.push_str("; HttpOnly");
    }
    if secure {
        out.push_str("; Secure");
    }
    out.push_str("; SameSite=");
    out.push_str(settings.same_site.as_str());
    HeaderValue::from_str(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "abcdefghijABCDEFGHIJabcdefghijABCDEFGHIJabcdefghijABCDEFGHIJ0123";

    #[test]
    fn reads_the_first_well_formed_cookie() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("other=1; app=short"));
        h.append(
            COOKIE,
            HeaderValue::from_str(&format!("app=\"{T}\"; x=y")).unwrap(),
        );
        assert_eq!(from_cookie(&h, "app").as_deref(), Some(T));
        assert_eq!(from_cookie(&h, "other"), None);
        assert_eq!(from_cookie(&h, "ap"), None);
    }

    #[test]
    fn reads_bearer_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer {T}")).unwrap(),
        );
        assert_eq!(from_bearer(&h).as_deref(), Some(T));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {T}")).unwrap(),
        );
        assert_eq!(from_bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x;y"));
        assert_eq!(from_bearer(&h), None);
    }
}
