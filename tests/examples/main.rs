//! The example binaries driven as users run them, in one test binary (one
//! link of the whole facade instead of three): the all-in-one, the web UI
//! in Chromium against `app-server` and `probe`, the `zk-migrate` CLI, and
//! the container image of `deploy/docker`.

mod aio;
mod all_in_one;
mod dns;
mod ha;
mod image;
mod lb;
mod ui;
mod zk_migrate_cli;

/// The UI test runs Chromium, an app server, a probe and containers, and
/// types into a terminal against a deadline: it runs alone (write); the
/// all-in-one and zk-migrate tests run beside each other (read).
pub(crate) static HEAVY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
