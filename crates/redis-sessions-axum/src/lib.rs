//! Sessions for axum and tower, kept by [`redis_sessions`]: the Rust counterpart of the
//! Express middleware `connect-redis-sessions`, sharing logins with Node.js services.
//!
//! Add a [`SessionLayer`] to the router and take a [`Session`] in handlers:
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use redis_sessions_axum::redis_sessions::{Options, RedisSessions};
//! use redis_sessions_axum::{Session, SessionError, SessionLayer};
//!
//! async fn add_to_cart(s: Session) -> Result<String, SessionError> {
//!     let mut cart: Vec<String> = s.get("cart")?.unwrap_or_default();
//!     cart.push("tea".into());
//!     s.insert("cart", &cart)?; // any serde value, written once after the handler
//!     Ok(format!("{} item(s)", cart.len()))
//! }
//! async fn login(s: Session) -> Result<&'static str, SessionError> {
//!     s.upgrade("alice").await?; // a new token, the visitor's cart kept, cookie set
//!     Ok("signed in")
//! }
//! async fn count(s: Session) -> Result<String, SessionError> {
//!     let visits = s.get::<u64>("visits")?.unwrap_or(0) + 1;
//!     s.insert("visits", visits)?;
//!     Ok(format!("visit number {visits}"))
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = RedisSessions::in_memory(Options::default()); // or RedisSessions::connect(..)
//! let app: Router = Router::new()
//!     .route("/cart", post(add_to_cart))
//!     .route("/login", post(login))
//!     .route("/", get(count))
//!     .layer(SessionLayer::new(store, "myapp").visitors(true));
//! # let _ = app; }
//! ```
//!
//! The README has a complete app with its `Cargo.toml` lines, and a comparison with
//! tower-sessions and actix-session; `examples/demo.rs` is a small shop
//! (`cargo run -p redis-sessions-axum --example demo`).
//!
//! # What the middleware does for each request
//! - It takes the token from the cookie (named after the app by default) or from
//!   `Authorization: Bearer <token>`. Only a well-formed token (64 characters
//!   `[A-Za-z0-9]`) leads to a store call, and only when a handler asks for the
//!   [`Session`]: routes that do not use sessions cost nothing.
//! - Changed data is written once, after the handler, in one store call; a request that
//!   changes nothing writes nothing.
//! - Store failures become responses, never panics (see [`SessionError`]).
//!
//! # Values
//! Any `Serialize` value can be stored and read back with [`Session::get`], which reports a
//! value of another type as [`redis_sessions::Error::WrongType`] (in
//! [`SessionError::Store`]). Values are stored by the library's one encoding,
//! [`redis_sessions::value`] (its rules are there), so the library, the REST server's
//! clients and this middleware read the same data alike: the stored data stays the flat
//! object of strings, numbers and booleans that the Node.js module reads; scalars are
//! stored as themselves, lists, maps and structs as a string
//! [`JSON_MARKER`](redis_sessions::value::JSON_MARKER) + their JSON text. Every integer
//! comes back exactly (those a JavaScript double cannot carry are stored as marked decimal
//! text); NaN and infinities are refused at [`Session::insert`]. A session whose stored
//! data is corrupt is no session for the request, and login, logout and
//! [`Session::clear`] replace it, so it never locks its user out.
//!
//! # Visitors and logins
//! With [`SessionLayer::visitors`], a visitor's first write creates a visitor session
//! (user id [`VISITOR_PREFIX`] + 24 random characters), so a cart or the state of a login
//! form survives to the next request. [`Session::upgrade`] turns the request into a user's
//! session with a new token; it keeps a visitor's data and the same user's, and never
//! another user's ([`Carry`] and [`Session::upgrade_with`] for other choices,
//! [`Session::upgrade_clear`] to start empty).
//!
//! # Security defaults (OWASP session management cheat sheet)
//! - **New session id on every privilege change**: [`Session::upgrade`] always creates a
//!   new token and kills the previous one (session fixation); [`Session::rotate`] for
//!   privilege changes within a login. Unknown tokens are never adopted.
//! - **Idle timeout**: the session ttl ([`SessionLayer::ttl`], default 7200 s), renewed by
//!   each request. **Absolute timeout**: [`SessionLayer::absolute_timeout`] (off by default;
//!   4 to 8 hours is OWASP's suggestion), counted from the first login and kept across
//!   rotations. **Rolling cookies** and a per-session lifetime ([`Session::set_expiry`],
//!   "remember me").
//! - **Logins under concurrency**: a request carrying a token that a concurrent login
//!   replaced answers 409 ([`SessionError::Rotated`]) and never clears or overwrites the
//!   new cookie ([`SessionLayer::rotation_grace`]).
//! - **Nothing of a failed request is saved** (5xx; [`SessionLayer::save_on_server_error`]).
//! - **Proxies**: trusted by hop count or address list, the client address read from the
//!   right of `Forwarded` / `X-Forwarded-For` and validated as an IP
//!   ([`SessionLayer::trusted_proxy_hops`], [`SessionLayer::trusted_proxies`]).
//! - **The cookie carries the token only** (64 characters from the OS CSPRNG, over 300
//!   bits), `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, no `Max-Age` (a
//!   browser-session cookie) unless [`SessionLayer::max_age`] is set, and `Secure`
//!   ([`CookieSecure::Always`], the default; `.secure(false)` for plain-HTTP development is
//!   logged; [`CookieSecure::Auto`] follows the URI scheme, the [`Tls`] extension and
//!   trusted proxy headers). `SameSite=None` without `Secure` is refused at configuration.
//! - **Logout ends the session in the store**, not just in the browser
//!   ([`Session::destroy`]); [`Session::kill_device`] signs out one other device by its
//!   handle (a one-way hash of its token, listed by [`Session::devices`]; never the
//!   token), [`Session::destroy_others`] all the other devices in one atomic store call
//!   (this one keeps its session and token), [`Session::destroyall`] every device.
//! - Tokens and session data never reach logs; errors name keys and types only.

#![warn(missing_docs)]
// `pub` only for what the crate exports: an item visible only inside says so
// (`pub(crate)`), so the public API is what the code declares public.
#![warn(unreachable_pub)]

mod config;
mod cookie;
mod device;
mod error;
mod layer;
mod proxy;
mod request;
mod reserved;
mod service;
mod session;
mod visitor;

pub use config::{CookieSecure, SameSite};
pub use device::{Device, USER_AGENT_KEY};
pub use error::{SessionError, RETRY_AFTER_SECONDS};
pub use layer::{SessionLayer, DEFAULT_ROTATION_GRACE};
pub use proxy::ProxyHeader;
pub use request::Tls;
pub use reserved::RESERVED_PREFIX;
pub use service::SessionService;
pub use session::login::Carry;
pub use session::{Session, SessionInfo};
pub use visitor::{is_visitor_id, ROTATED_PREFIX, VISITOR_PREFIX};

/// The session library, re-exported so that apps need one dependency and one version:
/// `use redis_sessions_axum::redis_sessions::{Options, RedisSessions};`.
pub use redis_sessions;

/// The README's code blocks, compiled as doctests so its first app keeps compiling.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
