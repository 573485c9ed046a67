//! The agent of a managed machine (the seeds' software updates client agent and WUA):
//! enrolls with a site, polls machine policy, scans the local dpkg database against the
//! site's catalog on the seeds' schedule and triggers (C2–C6), and sends a state message for
//! every update whose state changed (C4) — queued durably, in batches, retried with backoff.
//!
//! Everything the agent knows lives in one SQLite file in its state folder, so a crash or
//! `kill -9` loses nothing that was queued.

pub mod db;
pub mod deploy;
pub mod dp;
pub mod dpkg;
pub mod enroll;
pub mod install;
pub mod inventory;
pub mod inventory_classes;
pub mod mp;
pub mod offline;
pub mod runner;
pub mod scan;
pub mod send;

/// Default folder of the agent's state.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/koshin-agent";
/// C4: state messages go to the management point in batches every 15 minutes.
pub const DEFAULT_SEND_INTERVAL_MINUTES: u64 = 15;
/// The most state messages one batch carries.
pub const BATCH_SIZE: usize = 20_000;

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

pub fn ts(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Lets a command whose output is cut short (`| head`) end quietly, as Unix tools do,
/// instead of failing on a broken pipe.
pub fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting SIGPIPE to its default action at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
