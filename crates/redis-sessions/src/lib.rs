//! User sessions in Redis, shared by services in every language.
//!
//! This crate is the Rust implementation of the contract of the Node.js module
//! [`redis-sessions`](https://www.npmjs.com/package/redis-sessions) v4: the same methods,
//! the same errors and **the same Redis keys**, so a Node service and a Rust service
//! pointed at the same Redis and namespace read and write each other's sessions. It fixes
//! the module's defects: concurrent `set`s never lose each other's keys (every operation is
//! one atomic round trip), tokens come from a CSPRNG, ids may contain `:`, validation is
//! linear-time, and the expiry sweep is bounded and runs in one process of a fleet at a time.
//!
//! ```no_run
//! use redis_sessions::{CreateOptions, Options, RedisSessions};
//! use serde_json::json;
//!
//! # async fn demo() -> redis_sessions::Result<()> {
//! let rs = RedisSessions::connect(Options::default()).await?;
//! let token = rs
//!     .create("myapp", "user@example.com", "127.0.0.1", CreateOptions::default())
//!     .await?;
//! rs.set("myapp", &token, &json!({ "theme": "dark" })).await?;
//! let session = rs.get("myapp", &token).await?.expect("live session");
//! assert_eq!(session.get::<String>("theme")?.as_deref(), Some("dark"));
//! rs.kill("myapp", &token).await?;
//! # Ok(()) }
//! ```
//!
//! Without Redis, [`RedisSessions::in_memory`] gives the same behaviour in one process:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> redis_sessions::Result<()> {
//! use redis_sessions::{CreateOptions, Options, RedisSessions};
//! let rs = RedisSessions::in_memory(Options::default());
//! let token = rs.create("myapp", "alice", "::1", CreateOptions::default()).await?;
//! assert_eq!(rs.get("myapp", &token).await?.map(|s| s.id), Some("alice".to_string()));
//! # Ok(()) }
//! ```

//! # Values
//!
//! The stored data is the flat object of strings, numbers and booleans that the Node.js
//! module and the REST server read. Typed values go through one encoding, owned by the
//! [`value`] module and used by every crate of the project: [`Session::get`] reads a value
//! as any `serde` type (`Ok(None)` when absent, [`Error::WrongType`] on a mismatch),
//! [`RedisSessions::set_typed`] writes a struct or map, storing lists, maps, structs and
//! integers a JavaScript double cannot carry as [`value::JSON_MARKER`] text that reads
//! back exactly. [`RedisSessions::set`] stays the contract's `set`: scalars only.

#![warn(missing_docs)]
// `pub` only for what the crate exports: an item visible only inside says so
// (`pub(crate)`), so the public API is what the code declares public.
#![warn(unreachable_pub)]

// The crate's map. Every import points down this list's layers, never back up (checked by
// scripts/import-cycles.py):
// - the consumers of lifecycle events: `event_stream` (RedisSessions::events) and
//   `event_group` (a fleet's consumer group), over
// - the store users hold: `store` (RedisSessions, which may be migrating between two), over
//   `migration` (the rules of a move: which store, how answers merge), over
// - the backends: `backend` (the dispatcher), `redis_store` (scripts, connection, Sentinel,
//   durable writes) and `memory_store`, with `cache` and `sweeper` beside them, over
// - the contract: `session` (Session, Record, NewSession), `data`, `validate`, `error`,
//   `options`, `layout` (every key name), `token`, `device`, `node_json`, `value` (typed
//   values), `clock`, `events` (the event types and positions);
// - beside them, over `options` only: `cli_args` (the `clap` feature's flags).
mod app_stats;
mod backend;
/// The benchmark's hooks (`bench` feature, off by default): not part of the API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench_support;
mod cache;
// The flags and variables that say where a store is (`clap` feature, off by default).
#[cfg(feature = "clap")]
pub mod cli_args;
mod clock;
mod data;
mod device;
mod error;
mod event_group;
mod event_stream;
mod events;
pub mod keys;
mod layout;
pub mod limits;
mod memory_store;
pub mod metric_names;
mod migration;
pub mod node_json;
mod options;
mod redis_store;
mod session;
mod store;
mod sweeper;
mod token;
pub mod validate;
pub mod value;

pub use app_stats::{AppStats, ShardStats};
pub use cache::CacheStats;
pub use clock::{Clock, ManualClock, SystemClock};
pub use data::Data;
pub use device::{device_handle, HANDLE_LEN};
pub use error::{BackendError, Error, ErrorKind, Result};
pub use event_group::EventGroup;
pub use event_stream::{EventPage, POLL};
pub use events::{EndReason, Event, EventType, EventsFrom};
pub use layout::LayoutRecord;
pub use options::{
    CreateOptions, EventOptions, KeyLayout, MinReplicas, Options, DEFAULT_MAX_EVENTS,
    DEFAULT_SHARDS,
};
pub use redis_store::{ConnectionStats, NodeStatus};
pub use session::Session;
pub use store::RedisSessions;
pub use token::token_created_ms;
pub use validate::DEFAULT_TTL;

/// The README's code blocks, compiled as doctests so its example keeps compiling.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
