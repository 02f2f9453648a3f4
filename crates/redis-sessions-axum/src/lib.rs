//! Sessions for axum and tower, kept by [`redis_sessions`]: the Rust counterpart of the
//! Express middleware `connect-redis-sessions`.
//!
//! Add a [`SessionLayer`] to the router and take a [`Session`] in handlers:
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use redis_sessions::{Options, RedisSessions};
//! use redis_sessions_axum::{Session, SessionError, SessionLayer};
//!
//! async fn login(s: Session) -> Result<&'static str, SessionError> {
//!     s.upgrade("alice").await?; // a new session for the user, cookie set
//!     Ok("logged in")
//! }
//! async fn count(s: Session) -> Result<String, SessionError> {
//!     let visits = s.get::<u64>("visits").unwrap_or(0) + 1;
//!     s.insert("visits", visits)?; // written once, after the handler
//!     Ok(format!("visit number {visits}"))
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = RedisSessions::in_memory(Options::default()); // or RedisSessions::connect(..)
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .route("/", get(count))
//!     .layer(SessionLayer::new(store, "myapp"));
//! # let _ = app; }
//! ```
//!
//! What the middleware does for each request:
//! - It takes the token from the cookie (named after the app by default) or from
//!   `Authorization: Bearer <token>`. Only a well-formed token (64 characters
//!   `[A-Za-z0-9]`) leads to a store call, and only when a handler asks for the
//!   [`Session`]: visitors and routes that do not use sessions cost nothing.
//! - [`Session::upgrade`] logs a visitor in: a new session with a new token (the old one,
//!   if any, is killed), and the cookie is set. [`Session::destroy`] logs out and clears the
//!   cookie; [`Session::destroyall`] logs the user out on every device.
//! - Changed data is written once, after the handler, in one store call; a request that
//!   changes nothing writes nothing. Data of a visitor who is not upgraded lasts for the
//!   request only.
//! - Store failures become responses, never panics: 503 while Redis is unreachable, 500
//!   otherwise (see [`SessionError`]).
//!
//! Sessions live in Redis with the layout of the Node.js `redis-sessions` module, so a
//! Node.js service and this one can share logins. `examples/demo.rs` is a complete app:
//! `cargo run -p redis-sessions-axum --example demo`.

#![warn(missing_docs)]

mod config;
mod cookie;
mod error;
mod request;
mod service;
mod session;
mod value;
mod visitor;

pub use config::{CookieSecure, SameSite, SessionLayer};
pub use error::{SessionError, RETRY_AFTER_SECONDS};
pub use request::Tls;
pub use service::SessionService;
pub use session::{Carry, Session};
pub use value::JSON_MARKER;
pub use visitor::{is_visitor_id, VISITOR_PREFIX};

/// A session as the store keeps and lists it (`redis_sessions::Session`): what
/// [`Session::soid`] and [`Session::soapp`] return. Named apart from the extractor
/// [`Session`], which is a request's live session.
pub type SessionInfo = redis_sessions::Session;

/// The session library, re-exported so that apps need one dependency and one version.
pub use redis_sessions;
