//! A Marathon-style scheduler for long-running apps.
//!
//! This first part holds the pure pieces the scheduler is built from, each
//! tested on its own:
//!
//! - [`app`]: Marathon's v2 app definition, with its defaults, and the
//!   validation behind 422 answers;
//! - [`plan`](mod@plan): deployment plans and the rolling-restart step, with
//!   proptested bounds;
//! - [`backoff`]: launch delays after failures;
//! - [`matcher`]: fitting instances into offers by resources, ports and
//!   placement constraints;
//! - [`scheduler`]: the state machine of apps, instances and deployments
//!   (scaling, kill selection, auto-healing with backoff, rolling restarts);
//! - [`framework`]: the loop that runs it against a master through a
//!   [`MasterClient`](crate::MasterClient);
//! - [`persist`]: what it keeps in a `StateStore`, and how stored apps that
//!   are no longer valid are kept apart instead of run;
//! - [`health`]: HTTP, HTTPS, TCP and command health checks;
//! - [`http`]: Marathon's `/v2` REST API over the framework (`/v2/groups` in
//!   `http_groups.rs`);
//! - [`ha`]: several schedulers, one elected leader on ZooKeeper, standbys
//!   proxying to it.

pub mod app;
pub mod backoff;
pub mod framework;
pub mod ha;
pub mod health;
pub mod http;
mod http_groups;
pub mod iso8601;
pub mod matcher;
pub mod persist;
pub mod plan;
pub mod scheduler;

pub use app::{AppDefinition, Invalid, Violation};
pub use backoff::LaunchDelay;
pub use framework::{Marathon, MarathonConfig};
pub use iso8601::Iso8601;
pub use persist::{Persistence, Unreadable};
pub use plan::{plan, replace_step, Bounds, ReplaceActions, ReplaceState, Step};
pub use scheduler::{Deployment, Instance, Locked, Scheduler, TaskFailure, WallClock};
