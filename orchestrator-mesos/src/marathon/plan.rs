//! Deployment plans: what to do to move an app from its current state to
//! its target, as pure functions so that every bound is property-tested.
//!
//! A plan is a list of [`Step`]s, as Marathon computes them: a new app is
//! started then scaled, a removed app is stopped, a change of `instances`
//! alone is a scale, any other change is a rolling restart. The rolling
//! restart itself is driven by [`replace_step`], called again every time an
//! instance starts, becomes healthy or dies. It follows Marathon's
//! `TaskReplaceActor`:
//!
//! - `minHealthy = ceil(n × minimumHealthCapacity)` and
//!   `maxCapacity = floor(n × (1 + maximumOverCapacity))`;
//! - old instances are killed only while at least `minHealthy` instances
//!   (old, or new and ready) stay up;
//! - new instances are started only while the total stays within
//!   `maxCapacity`;
//! - when `minHealthy == maxCapacity` nothing could ever move, so one extra
//!   instance is allowed (Marathon's exception).

use serde::Serialize;

use super::app::{AppDefinition, UpgradeStrategy};

/// One step of a deployment.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action")]
pub enum Step {
    /// Create the app with no instance.
    StartApplication {
        /// App id.
        app: String,
    },
    /// Bring the instance count to `instances` (kill selection decides who goes).
    ScaleApplication {
        /// App id.
        app: String,
        /// Target count (not on the wire: Marathon's `DeploymentAction` is
        /// `{action, app}`).
        #[serde(skip_serializing)]
        instances: u32,
    },
    /// Replace every instance with one of the new version, within the upgrade bounds.
    RestartApplication {
        /// App id.
        app: String,
    },
    /// Kill every instance and forget the app.
    StopApplication {
        /// App id.
        app: String,
    },
}

/// The steps that take an app from `current` to `target` (`None`: absent).
pub fn plan(current: Option<&AppDefinition>, target: Option<&AppDefinition>) -> Vec<Step> {
    match (current, target) {
        (None, None) => Vec::new(),
        (None, Some(t)) => vec![
            Step::StartApplication { app: t.id.clone() },
            Step::ScaleApplication {
                app: t.id.clone(),
                instances: t.instances,
            },
        ],
        (Some(c), None) => vec![Step::StopApplication { app: c.id.clone() }],
        (Some(c), Some(t)) if t.only_scaled_from(c) => {
            if c.instances == t.instances {
                Vec::new()
            } else {
                vec![Step::ScaleApplication {
                    app: t.id.clone(),
                    instances: t.instances,
                }]
            }
        }
        (Some(_), Some(t)) => vec![Step::RestartApplication { app: t.id.clone() }],
    }
}

/// The bounds of one rolling restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Instances that must stay healthy.
    pub min_healthy: u32,
    /// Most instances (old and new) at once.
    pub max_capacity: u32,
}

impl Bounds {
    /// Marathon's bounds for `instances` target instances.
    pub fn new(instances: u32, strategy: &UpgradeStrategy) -> Self {
        let n = f64::from(instances);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let min_healthy = (n * strategy.minimum_health_capacity).ceil().max(0.0) as u32;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut max_capacity = (n * (1.0 + strategy.maximum_over_capacity)).floor().max(0.0) as u32;
        if min_healthy == max_capacity && instances > 0 {
            // Neither a kill nor a start could ever happen: allow one more.
            max_capacity += 1;
        }
        Bounds {
            min_healthy,
            max_capacity,
        }
    }
}

/// Where a rolling restart stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaceState {
    /// Instances of the new version wanted.
    pub target: u32,
    /// Old-version instances still running (counted as healthy: unhealthy
    /// ones are replaced by the health checks anyway).
    pub old: u32,
    /// New-version instances launched and not dead.
    pub new_started: u32,
    /// New-version instances healthy and ready.
    pub new_ready: u32,
}

/// What to do now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaceActions {
    /// Old instances to kill.
    pub kill_old: u32,
    /// New instances to launch.
    pub launch: u32,
}

impl ReplaceState {
    /// Whether the restart is over.
    pub fn done(&self) -> bool {
        self.old == 0 && self.new_ready >= self.target
    }
}

/// The next actions of a rolling restart: kill old instances as far as the
/// healthy floor allows, then launch new ones as far as the capacity
/// ceiling allows.
pub fn replace_step(state: &ReplaceState, bounds: &Bounds) -> ReplaceActions {
    let healthy = state.old + state.new_ready;
    let kill_old = state.old.min(healthy.saturating_sub(bounds.min_healthy));
    let running = state.old - kill_old + state.new_started;
    let launch = state
        .target
        .saturating_sub(state.new_started)
        .min(bounds.max_capacity.saturating_sub(running));
    ReplaceActions { kill_old, launch }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strategy(min: f64, over: f64) -> UpgradeStrategy {
        UpgradeStrategy {
            minimum_health_capacity: min,
            maximum_over_capacity: over,
        }
    }

    #[test]
    fn bounds_follow_marathon() {
        assert_eq!(
            Bounds::new(10, &strategy(0.5, 0.2)),
            Bounds {
                min_healthy: 5,
                max_capacity: 12
            }
        );
        assert_eq!(
            Bounds::new(3, &strategy(0.5, 0.0)),
            Bounds {
                min_healthy: 2,
                max_capacity: 3
            }
        );
        // The default (1.0, 1.0): all stay up, double capacity.
        assert_eq!(
            Bounds::new(4, &UpgradeStrategy::default()),
            Bounds {
                min_healthy: 4,
                max_capacity: 8
            }
        );
        // (1.0, 0.0): the one-extra exception.
        assert_eq!(
            Bounds::new(4, &strategy(1.0, 0.0)),
            Bounds {
                min_healthy: 4,
                max_capacity: 5
            }
        );
    }

    #[test]
    fn plans_start_scale_restart_and_stop() {
        let a = AppDefinition::from_json(br#"{"id": "w", "cmd": "x", "instances": 2}"#).unwrap();
        assert_eq!(plan(None, Some(&a)).len(), 2);
        let mut b = a.clone();
        b.instances = 5;
        assert_eq!(
            plan(Some(&a), Some(&b)),
            vec![Step::ScaleApplication {
                app: "/w".into(),
                instances: 5
            }]
        );
        b.cmd = Some("y".into());
        assert_eq!(
            plan(Some(&a), Some(&b)),
            vec![Step::RestartApplication { app: "/w".into() }]
        );
        assert_eq!(plan(Some(&a), None), vec![Step::StopApplication { app: "/w".into() }]);
        assert!(plan(Some(&a), Some(&a)).is_empty());
    }

    proptest! {
        /// At every step of a restart, healthy instances never drop below
        /// the floor (or below what was healthy at the start, if that was
        /// already less), the total never exceeds the ceiling (with the
        /// one-extra exception), and the restart always finishes.
        #[test]
        fn rolling_restart_keeps_its_bounds_and_finishes(
            target in 0u32..60,
            old in 0u32..90,
            min in 0.0f64..=1.0,
            over in 0.0f64..=1.0,
            readiness in prop::collection::vec(0u32..4, 1..400),
        ) {
            let bounds = Bounds::new(target, &strategy(min, over));
            let mut s = ReplaceState { target, old, new_started: 0, new_ready: 0 };
            let floor = bounds.min_healthy.min(old);
            let ceiling = bounds.max_capacity.max(old);
            let mut steps = 0usize;
            while !s.done() {
                let a = replace_step(&s, &bounds);
                s.old -= a.kill_old;
                prop_assert!(s.old + s.new_ready >= floor, "healthy {} < {} in {:?}", s.old + s.new_ready, floor, s);
                s.new_started += a.launch;
                prop_assert!(s.old + s.new_started <= ceiling, "total {} > {} in {:?}", s.old + s.new_started, ceiling, s);
                prop_assert!(s.new_started <= target);
                // Some of the started instances become ready (at least one
                // when nothing else can move, so the restart can finish).
                let waiting = s.new_started - s.new_ready;
                let r = readiness[steps % readiness.len()].min(waiting);
                let r = if r == 0 && a == ReplaceActions::default() { waiting.min(1) } else { r };
                s.new_ready += r;
                steps += 1;
                prop_assert!(steps < 10_000, "no progress: {:?} with {:?}", s, bounds);
                if a == ReplaceActions::default() && r == 0 {
                    prop_assert!(s.done(), "stuck at {:?} with {:?}", s, bounds);
                }
            }
        }
    }
}
