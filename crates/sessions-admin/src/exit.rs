//! The exit codes scripts test: 0 done or consistent, 1 findings, 2 an error.

/// Exit code: done; for `check`, the namespace is consistent.
pub const EXIT_OK: i32 = 0;
/// Exit code: `check` found inconsistencies (mended with `--repair`).
pub const EXIT_FINDINGS: i32 = 1;
/// Exit code: an error (Redis unreachable, bad arguments, not confirmed).
pub const EXIT_ERROR: i32 = 2;
