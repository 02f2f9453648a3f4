//! A self-signed certificate for loopback TLS tests (a TLS listener of the middleware, a
//! redis-server or sentinel with `tls-port`), made by the `openssl` command line tool,
//! which `scripts/test.sh` installs when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// PEM files of a certificate for `localhost` and `127.0.0.1`, and its key.
#[derive(Clone)]
pub struct Certificate {
    /// The certificate (self-signed: also the CA a client may trust).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Makes a self-signed end-entity certificate in `dir` (rustls refuses a CA certificate as
/// a server's, which is what openssl makes by default).
pub fn self_signed(dir: &Path) -> Certificate {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("TLS tests need the `openssl` command (Debian package openssl)");
    assert!(
        output.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Certificate { cert, key }
}

/// The server arguments that add a TLS listener on `port` beside the plain one (clients
/// need no certificate of their own).
pub fn server_args(certificate: &Certificate, port: u16) -> Vec<String> {
    vec![
        "--tls-port".into(),
        port.to_string(),
        "--tls-cert-file".into(),
        certificate.cert.display().to_string(),
        "--tls-key-file".into(),
        certificate.key.display().to_string(),
        "--tls-ca-cert-file".into(),
        certificate.cert.display().to_string(),
        "--tls-auth-clients".into(),
        "no".into(),
    ]
}
