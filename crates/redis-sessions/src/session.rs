//! The session object that every method returns, and the stored record it comes from.

use crate::data::{initial_data, Data};
use crate::error::{Error, Result};
use crate::options::CreateOptions;
use crate::validate::DEFAULT_TTL;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A live session as the Node module returns it: exactly the keys `id, r, w, ttl, idle, ip`,
/// plus `d` when data exists and `no_resave: true` for sessions that end at a fixed time.
///
/// The fields keep the contract's names (`r`, `w`, `d`, …): they are the keys of the JSON
/// that Node services and REST clients see, and the names the spec uses. Non-exhaustive:
/// the store makes sessions; [`Session::created`] makes the one a `create` leaves.
///
/// With the `utoipa` feature it implements `utoipa::ToSchema` (schema name `Session`), so
/// an OpenAPI document describes the very type a server serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "utoipa",
    schema(
        description = "A live session: the keys id, r, w, ttl, idle and ip, plus d when \
        it has data, no_resave (true) for a session that ends at a fixed time, and handle \
        and created_ms in the sessions soid lists."
    )
)]
#[non_exhaustive]
pub struct Session {
    /// The user id the session belongs to.
    pub id: String,
    /// Reads so far (before the read that returned this object).
    pub r: u64,
    /// Writes so far.
    pub w: u64,
    /// Seconds of life: the idle timeout, or for a `no_resave` session the time left.
    pub ttl: i64,
    /// Seconds since the last activity.
    pub idle: i64,
    /// The client address given at create.
    pub ip: String,
    /// The session's data, absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = std::collections::BTreeMap<String, Scalar>))]
    pub d: Option<Data>,
    /// True for a session that ends at create time + ttl, however often it is read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_resave: bool,
    /// The session's device handle (32 hex digits, a one-way hash of its token: see
    /// `device_handle`), in the sessions `soid` lists: names this session for `kill_device`
    /// without its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(pattern = "^[0-9a-f]{32}$"))]
    pub handle: Option<String>,
    /// When the session was created (ms since the epoch, read from its token), in the
    /// sessions `soid` lists: a devices page shows it, and the token stays in the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
    /// True for a session whose stored data is unreadable (written by a foreign program:
    /// not a JSON object), in the lists soid and soapp return: shown without `d`, so the
    /// user's other sessions are still listed and this one can be signed out. A call on
    /// this one session (get, set) answers `corruptSession`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub corrupt: bool,
}

impl Session {
    /// Reads one data value as `T`, by the library's one value encoding (see
    /// [`value`](crate::value)): `Ok(None)` when the key is absent, structured values
    /// (stored as [`JSON_MARKER`](crate::value::JSON_MARKER) text) decoded.
    ///
    /// ```
    /// # let session: redis_sessions::Session = serde_json::from_str(
    /// #   r#"{"id":"u","r":1,"w":1,"ttl":60,"idle":0,"ip":"::1","d":{"visits":3,"tags":"$json:[\"a\"]"}}"#).unwrap();
    /// let visits: Option<u32> = session.get("visits")?;
    /// assert_eq!(visits, Some(3));
    /// assert_eq!(session.get::<Vec<String>>("tags")?, Some(vec!["a".to_string()]));
    /// assert!(session.get::<String>("visits").is_err(), "a number is no string");
    /// # Ok::<(), redis_sessions::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::WrongType`] when the value does not read as `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        crate::value::read(self.d.as_ref().and_then(|d| d.get(key)), key)
    }

    /// The session that [`create`](crate::store::RedisSessions::create) has just made of `id`,
    /// `ip` and `options` under `token`, as a `get` would answer it at once (read and
    /// written once, idle 0), without asking the store: for a middleware that answers
    /// the request that logged in. Its data is the data given, as stored (null values
    /// dropped); its handle and creation time are the token's.
    ///
    /// ```
    /// use redis_sessions::{CreateOptions, Session};
    /// let token = format!("{}Z{}", "a".repeat(55), "mhm5z1a8");
    /// let options = CreateOptions::default()
    ///     .ttl(std::time::Duration::from_secs(60))
    ///     .data(serde_json::json!({"cart": 2}));
    /// let session = Session::created(&token, "alice", "::1", &options);
    /// assert_eq!((session.r, session.w, session.ttl, session.idle), (1, 1, 60, 0));
    /// assert_eq!(session.get::<u32>("cart").unwrap(), Some(2));
    /// assert_eq!(session.handle, Some(redis_sessions::device_handle(&token)));
    /// ```
    pub fn created(token: &str, id: &str, ip: &str, options: &CreateOptions) -> Session {
        Session {
            id: id.to_owned(),
            r: CREATED_COUNT,
            w: CREATED_COUNT,
            ttl: options.ttl.unwrap_or(DEFAULT_TTL),
            idle: 0,
            ip: ip.to_owned(),
            d: options
                .data
                .as_ref()
                .and_then(Value::as_object)
                .and_then(initial_data),
            no_resave: options.no_resave,
            handle: Some(crate::device::device_handle(token)),
            created_ms: crate::token::token_created_ms(token),
            corrupt: false,
        }
    }
}

/// A value of a session's data: a string, a number or a boolean.
#[cfg(feature = "utoipa")]
#[derive(utoipa::ToSchema, Serialize)]
#[serde(untagged)] // for the schema: one of the three, untagged as in JSON
#[allow(dead_code)] // a schema only: never built
enum Scalar {
    /// A string.
    Text(String),
    /// A number, any JSON number.
    Number(f64),
    /// A boolean.
    Flag(bool),
}

/// A validated create request: what a backend stores as a new session.
#[derive(Debug)]
pub(crate) struct NewSession<'a> {
    pub app: &'a str,
    pub id: &'a str,
    pub ip: &'a str,
    pub ttl: i64,
    /// The data without null values; None when nothing is left.
    pub d: Option<Data>,
    pub no_resave: bool,
}

/// A session as stored: the fields of the `{ns}:{app}:{token}` hash.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub id: String,
    pub r: u64,
    pub w: u64,
    pub ttl: i64,
    pub la: i64,
    pub ip: String,
    pub d: Option<Data>,
    pub no_resave: bool,
    /// The stored `d` is not a JSON object (a foreign writer): `d` is None.
    pub corrupt: bool,
}

impl Record {
    /// Seconds since the last activity.
    pub(crate) fn idle(&self, now: i64) -> i64 {
        now - self.la
    }

    /// A session is dead once it has been idle for longer than its ttl.
    pub(crate) fn is_live(&self, now: i64) -> bool {
        self.ttl >= self.idle(now)
    }

    /// The reply for this record at `now`, or None when it is dead.
    pub(crate) fn into_session(self, now: i64) -> Option<Session> {
        let idle = self.idle(now);
        if self.ttl < idle {
            return None;
        }
        Some(Session {
            id: self.id,
            r: self.r,
            w: self.w,
            ttl: if self.no_resave {
                self.ttl - idle
            } else {
                self.ttl
            },
            idle,
            ip: self.ip,
            d: self.d,
            no_resave: self.no_resave,
            handle: None,
            created_ms: None,
            corrupt: self.corrupt,
        })
    }

    /// Builds a record from the hash's values in the order of [`FIELDS`], as the scripts'
    /// `read_fields` (an HMGET of that list) returns them.
    pub(crate) fn from_fields(fields: Vec<Option<FieldText>>) -> Result<Option<Record>> {
        let mut values: [Option<String>; FIELDS.len()] = Default::default();
        for (slot, value) in values.iter_mut().zip(fields) {
            *slot = value.map(|v| v.0);
        }
        let mut take = |name: &str| values.get_mut(field(name)).and_then(Option::take);
        let Some(id) = take("id") else {
            return Ok(None);
        };
        let r = parse_number(take("r"), "r")?;
        let w = parse_number(take("w"), "w")?;
        let ttl = parse_number(take("ttl"), "ttl")?;
        // Unreadable data is reported per session (`corrupt`): a listing still shows the
        // user's other sessions, and this one can be killed.
        let (d, corrupt) = match take("d").map(|text| parse_data(&text)).transpose() {
            Ok(d) => (d.flatten(), false),
            Err(_) => (None, true),
        };
        let la = parse_number(take("la"), "la")?;
        let ip = take("ip").unwrap_or_default();
        let no_resave = take("no_resave").as_deref() == Some("1");
        Ok(Some(Record {
            id,
            r,
            w,
            ttl,
            la,
            ip,
            d,
            no_resave,
            corrupt,
        }))
    }

    /// The record, or the corruptSession error when its data is unreadable: what a call
    /// that returns one session answers.
    pub(crate) fn readable(self) -> Result<Record> {
        if self.corrupt {
            Err(Error::Corrupt("field d is not a JSON object".into()))
        } else {
            Ok(self)
        }
    }
}

/// A hash field's text as Node's client reads it: bytes that are not UTF-8 (a foreign
/// writer's) become U+FFFD instead of failing the whole reply, so one such session cannot
/// fail a listing of many.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldText(pub String);

impl redis::FromRedisValue for FieldText {
    fn from_redis_value(v: redis::Value) -> std::result::Result<Self, redis::ParsingError> {
        match v {
            redis::Value::BulkString(bytes) => Ok(FieldText(match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            })),
            other => String::from_redis_value(other).map(FieldText),
        }
    }
}

/// The fields of a session hash, in the order every script reads them (`read_fields`, which
/// scripts.rs makes from this list) and [`Record::from_fields`] takes them: the one place
/// the list is written. The Node module reads the same eight in the same order.
pub(crate) const FIELDS: [&str; 8] = [ID, R, W, TTL, D, LA, IP, NO_RESAVE];

/// The session hash's field names (the Node module's), one constant each: Rust code names
/// a field by these, Lua scripts by `FN_<NAME>` (scripts.rs writes the name in).
pub(crate) const ID: &str = "id";
/// Reads counted (see [`ID`]).
pub(crate) const R: &str = "r";
/// Writes counted.
pub(crate) const W: &str = "w";
/// Seconds the session lives past its last activity.
pub(crate) const TTL: &str = "ttl";
/// The data, as JSON text.
pub(crate) const D: &str = "d";
/// Last activity, Unix seconds.
pub(crate) const LA: &str = "la";
/// The ip given at create.
pub(crate) const IP: &str = "ip";
/// "1" when activity does not extend the session.
pub(crate) const NO_RESAVE: &str = "no_resave";

/// Reads and writes a new session starts with: the Node module counts its create as one
/// of each. Both stores and [`Session::created`] start from it.
pub(crate) const CREATED_COUNT: u64 = 1;

/// How much longer a session hash's Redis key TTL runs than the session (with
/// `expire_keys`): one second, because the session's end (`la + ttl`) is in whole seconds
/// and a read in that last second still finds it alive. Written into the scripts as
/// `KEY_TTL_MARGIN` (scripts.rs), and used by create's MULTI: the one place of the rule.
pub(crate) const KEY_TTL_MARGIN: i64 = 1;

/// The position of `name` in [`FIELDS`] (`FIELDS.len()` for a name not in it).
pub(crate) const fn field(name: &str) -> usize {
    let mut i = 0;
    while i < FIELDS.len() {
        let (a, b) = (FIELDS[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    FIELDS.len()
}

fn parse_number<T: std::str::FromStr>(text: Option<String>, field: &str) -> Result<T> {
    let text = text.unwrap_or_default();
    // Node writes integers; a float form ("1.0") can only come from a foreign writer.
    text.parse()
        .or_else(|_| {
            text.parse::<f64>()
                .ok()
                .and_then(|f| format!("{}", f as i64).parse().ok())
                .ok_or(())
        })
        .map_err(|_| Error::Corrupt(format!("field {field} is not a number")))
}

/// `d` as Node's get reads it (`JSON.parse`, so lone surrogates and numbers past a double
/// are read too); None for an empty text, which Node reads as no data.
fn parse_data(text: &str) -> Result<Option<Data>> {
    if text.is_empty() {
        return Ok(None);
    }
    match crate::node_json::parse(text, true) {
        Ok(Value::Object(d)) => Ok(Some(d)),
        _ => Err(Error::Corrupt("field d is not a JSON object".into())),
    }
}
