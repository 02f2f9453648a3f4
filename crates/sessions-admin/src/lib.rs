//! `sessions-admin`: an operator's CLI for a redis-sessions namespace (one Redis,
//! Sentinel, or a cluster's sharded layout): counts, a user's devices, sign-outs through the library (so the
//! indexes stay right), and `check`, which finds where the indexes disagree with the
//! session hashes and, with `--repair`, mends them one atomic script at a time.
//!
//! The library part exists for the binary and its tests; see the README for the commands.

#![warn(missing_docs)]

// Layers, top down: `commands` (what each subcommand prints) over `check`, `repair`,
// `stats` over `deploy`, `scan`, `scripts`, `findings`, `table`, `config`, `error`, `exit`.
pub mod check;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod error;
pub mod exit;
pub mod findings;
pub mod repair;
pub mod scan;
pub mod scripts;
pub mod stats;
pub mod table;

pub use config::{Cli, Command, Progress, Target};
pub use error::{AdminError, Result};
pub use exit::{EXIT_ERROR, EXIT_FINDINGS, EXIT_OK};
