//! The `sessions-admin` binary: parses the flags, runs one command, exits with its code
//! (0 done or consistent, 1 findings, 2 error).

use clap::Parser;
use sessions_admin::{commands, Cli, EXIT_ERROR};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match commands::run(&cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sessions-admin: {e}");
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}
