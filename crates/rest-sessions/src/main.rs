//! The `rest-sessions` binary: reads flags and `RS_*` variables, sets up logging and runs
//! the server. Everything else lives in the library, where tests can reach it.

use clap::Parser;
use rest_sessions::config::Config;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    rest_sessions::init_tracing(config.log_format);
    match rest_sessions::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Straight to stderr as well: a start-up failure must be seen even when logs
            // are filtered or shipped elsewhere.
            tracing::error!("{err}");
            eprintln!("rest-sessions: {err}");
            ExitCode::FAILURE
        }
    }
}
