//! The `rest-sessions` binary: reads flags and `RS_*` variables, sets up logging and runs
//! the server. Everything else lives in the library, where tests can reach it.

use clap::Parser;
use rest_sessions::Config;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = Config::parse();
    rest_sessions::init_tracing(config.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.workers {
        runtime.worker_threads(workers.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("rest-sessions: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(rest_sessions::run(config)) {
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
