//! The operator console (`RS_CONSOLE`, issue 26): one HTML page with its CSS and script
//! inline, served from the binary, that drives the REST routes every client uses (apps'
//! counts, a user's devices, signing them out, the live event feed).
//!
//! The page itself holds no data and no secret, so it is served without the bearer token
//! (a browser's navigation cannot send one); it asks the operator for the token and sends
//! it with each of its requests, like any other client. Everything it shows comes from
//! routes behind the token. Its Content-Security-Policy allows only its own inline style
//! and script, by their SHA-256 hashes, and requests to this server: no other script can
//! run in it (a user agent stored in a session is shown as text, never as markup), and it
//! loads nothing from elsewhere.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

/// The page's style sheet, inlined in its `<style>` element.
const CSS: &str = include_str!("console/console.css");
/// The page's script, inlined in its `<script>` element.
const SCRIPT: &str = include_str!("console/console.js");
/// The page's markup between `<body>` and the script.
const BODY: &str = include_str!("console/body.html");

/// The console's page and the apps it lists, built once at start.
#[derive(Debug)]
pub(crate) struct Console {
    /// The whole page.
    html: String,
    /// Its Content-Security-Policy.
    csp: HeaderValue,
    /// `RS_CONSOLE_APPS`: trimmed, without empty names or repeats, in the given order.
    apps: Vec<String>,
}

impl Console {
    /// The page, its policy, and the apps of `RS_CONSOLE_APPS`.
    pub(crate) fn new(apps: &[String]) -> Console {
        let mut listed: Vec<String> = Vec::new();
        for app in apps.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
            if !listed.iter().any(|a| a == app) {
                listed.push(app.to_owned());
            }
        }
        let html = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"referrer\" content=\"no-referrer\">\n\
             <title>rest-sessions console</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
             {BODY}<script>{SCRIPT}</script>\n</body>\n</html>\n"
        );
        Console {
            html,
            csp: policy(),
            apps: listed,
        }
    }

    /// `GET /console`: the page, with headers that keep it out of caches and frames.
    pub(crate) fn page(&self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CONTENT_SECURITY_POLICY, self.csp.clone()),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
            ],
            self.html.clone(),
        )
            .into_response()
    }

    /// `GET /console/apps` (behind the token): the apps the console lists.
    pub(crate) fn apps(&self) -> Response {
        (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(serde_json::json!({ "apps": self.apps })),
        )
            .into_response()
    }
}

/// The page's Content-Security-Policy: nothing by default; its own inline style and
/// script by hash (no `'unsafe-inline'`: an injected `<script>` or `style` attribute does
/// not run); requests only to this server; no framing (clickjacking of the sign-out
/// buttons), no `<base>`, no form posts anywhere.
fn policy() -> HeaderValue {
    let policy = format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
         connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        base64(&Sha256::digest(SCRIPT.as_bytes())),
        base64(&Sha256::digest(CSS.as_bytes())),
    );
    // Hashes are base64 and the rest is ASCII, so this never fails; were it to, the
    // fallback forbids everything rather than serving the page unprotected.
    HeaderValue::try_from(policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// Standard base64 with padding (what CSP hashes are written in); a dozen lines rather
/// than a crate for one use.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn apps_are_trimmed_and_deduplicated() {
        let console = Console::new(&[" a".into(), "".into(), "b".into(), "a".into()]);
        assert_eq!(console.apps, ["a", "b"]);
    }

    #[test]
    fn policy_names_the_inline_script_and_nothing_external() {
        let console = Console::new(&[]);
        let csp = console.csp.to_str().unwrap_or_default().to_owned();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(console.html.contains(SCRIPT) && console.html.contains(CSS));
        // The page loads nothing: no URL of another origin, no src/href attributes.
        // (The SVG namespace is a name, not a request.)
        let html = console.html.replace("\"http://www.w3.org/2000/svg\"", "");
        for needle in [
            "http://", "https://", "//cdn", " src=", "<link", "@import", "url(",
        ] {
            assert!(!html.contains(needle), "the page contains {needle:?}");
        }
    }
}
