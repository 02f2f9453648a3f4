//! The TLS crypto provider of `rediss://` connections.
//!
//! redis-rs builds its rustls configuration with the process-wide default provider, and
//! rustls panics on the first handshake when none was chosen (no provider feature, or two
//! crates of the program enabling different ones). The store installs ring, unless the
//! program chose a provider first.

/// Makes sure a process-wide rustls provider exists before the first connection.
pub(crate) fn install_crypto_provider() {
    #[cfg(feature = "tls")]
    {
        // Err means the program installed its own first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
