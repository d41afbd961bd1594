//! The [`DrfAllocator`]'s settings, and the builder that validates them.

use std::time::Duration;

use orchestrator_core::{Error, Resources, Result, Value};

use super::DrfAllocator;

/// Settings of the [`DrfAllocator`], built with [`DrfAllocator::builder`].
#[derive(Clone, Debug)]
pub struct AllocatorConfig {
    /// The master's allocation interval; every filter lasts at least this long.
    pub allocation_interval: Duration,
    /// An agent is offered only if what it has for a role contains one of
    /// these quantities (Mesos `--min_allocatable_resources`, default
    /// `cpus:0.01|mem:32`).
    pub min_allocatable: Vec<Resources>,
    /// Resources left out of fair-share computation (Mesos
    /// `--fair_sharing_excluded_resource_names`, e.g. `gpus`).
    pub fair_sharing_excluded: Vec<String>,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            allocation_interval: Duration::from_secs(1),
            min_allocatable: vec![scalar("cpus", 0.01), scalar("mem", 32.0)],
            fair_sharing_excluded: Vec::new(),
        }
    }
}

fn scalar(name: &str, v: f64) -> Resources {
    // Both constants are valid scalars.
    orchestrator_core::Resource::scalar(name, v)
        .map(|r| [r].into_iter().collect())
        .unwrap_or_default()
}

/// Builds a [`DrfAllocator`], validating its settings.
#[derive(Debug, Default)]
pub struct AllocatorBuilder {
    config: AllocatorConfig,
    min_allocatable_text: Option<String>,
}

impl AllocatorBuilder {
    /// The allocation interval (default 1 s), the shortest any filter lasts.
    #[must_use]
    pub fn allocation_interval(mut self, interval: Duration) -> Self {
        self.config.allocation_interval = interval;
        self
    }

    /// Minimum allocatable quantities in the Mesos flag form:
    /// alternatives separated by `|`, e.g. `cpus:0.01|mem:32`.
    #[must_use]
    pub fn min_allocatable(mut self, spec: &str) -> Self {
        self.min_allocatable_text = Some(spec.to_string());
        self
    }

    /// Resource names left out of fair sharing.
    #[must_use]
    pub fn exclude_from_fair_sharing<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.config.fair_sharing_excluded = names.into_iter().map(Into::into).collect();
        self
    }

    /// The allocator.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero interval or minimum quantities that are
    /// not scalars.
    pub fn build(mut self) -> Result<DrfAllocator> {
        if self.config.allocation_interval.is_zero() {
            return Err(Error::Invalid {
                what: "allocation interval",
                reason: "must be positive".into(),
            });
        }
        if let Some(text) = self.min_allocatable_text.take() {
            let mut alternatives = Vec::new();
            for alt in text.split('|').map(str::trim).filter(|a| !a.is_empty()) {
                let r: Resources = alt.parse()?;
                if r.iter()
                    .any(|x| !matches!(x.value, Value::Scalar(_)) || x.is_reserved())
                {
                    return Err(Error::Invalid {
                        what: "min allocatable resources",
                        reason: format!("`{alt}` must be unreserved scalars"),
                    });
                }
                alternatives.push(r);
            }
            self.config.min_allocatable = alternatives;
        }
        Ok(DrfAllocator::with_config(self.config))
    }
}
