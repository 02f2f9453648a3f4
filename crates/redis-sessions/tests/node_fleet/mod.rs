//! One Redis with the npm module and our store on it, and a plain connection to look at
//! the bytes: the setup of the tests that compare what Node and we store.
#![allow(dead_code)]

use redis_sessions::{Options, RedisSessions};
use std::time::Duration;
use test_support::node::NodePeer;
use test_support::RedisServer;

/// The npm module, our store and a raw connection, all on one fresh redis-server.
pub struct Fleet {
    pub node: NodePeer,
    pub rs: RedisSessions,
    pub raw: redis::Connection,
    pub server: RedisServer,
}

impl Fleet {
    /// Starts the server, the Node peer (namespace `rs`, no sweep) and our store.
    pub async fn start() -> Fleet {
        let server = RedisServer::start();
        let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
            .await
            .expect("connect");
        let node = NodePeer::start(&format!(
            r#"{{"port":{},"namespace":"rs","wipe":0}}"#,
            server.port()
        ));
        let raw = redis::Client::open(server.url())
            .and_then(|c| c.get_connection())
            .expect("raw");
        Fleet {
            node,
            rs,
            raw,
            server,
        }
    }
}
