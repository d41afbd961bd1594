//! A view's name and its filters, as the API's paths and queries give them.

use std::str::FromStr;

use orchestrator_core::report::TopologyKind;

use crate::error::TopologyError;
use crate::search::Query;

/// The views the app serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    /// Processes, with connections between them.
    Processes,
    /// Containers (and uncontained processes per host).
    Containers,
    /// Containers grouped by image.
    ContainersByImage,
    /// Hosts.
    Hosts,
    /// Kubernetes pods.
    Pods,
    /// Kubernetes services and Marathon apps.
    Services,
}

impl View {
    /// Every view.
    pub const ALL: [View; 6] = [
        View::Processes,
        View::Containers,
        View::ContainersByImage,
        View::Hosts,
        View::Pods,
        View::Services,
    ];

    /// The URL name.
    pub fn id(self) -> &'static str {
        match self {
            View::Processes => "processes",
            View::Containers => "containers",
            View::ContainersByImage => "containers-by-image",
            View::Hosts => "hosts",
            View::Pods => "pods",
            View::Services => "services",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            View::Processes => "Processes",
            View::Containers => "Containers",
            View::ContainersByImage => "Container images",
            View::Hosts => "Hosts",
            View::Pods => "Pods",
            View::Services => "Services",
        }
    }

    /// The topology its nodes come from.
    pub fn kind(self) -> TopologyKind {
        match self {
            View::Processes => TopologyKind::Process,
            View::Containers => TopologyKind::Container,
            View::ContainersByImage => TopologyKind::ContainerImage,
            View::Hosts => TopologyKind::Host,
            View::Pods => TopologyKind::Pod,
            View::Services => TopologyKind::Service,
        }
    }
}

impl FromStr for View {
    type Err = TopologyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        View::ALL
            .into_iter()
            .find(|v| v.id() == s)
            .ok_or_else(|| TopologyError::UnknownView(s.chars().take(64).collect()))
    }
}

/// Three-way choices of the view filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    /// Only the first kind (application containers, running containers).
    #[default]
    Default,
    /// Only the other kind (system containers, stopped containers).
    Other,
    /// Both.
    Both,
}

/// What a view shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filters {
    /// Application (default), system or both kinds of containers.
    pub system: Choice,
    /// Running (default), stopped or both kinds of containers.
    pub stopped: Choice,
    /// Hide nodes without edges.
    pub hide_unconnected: bool,
    /// Hide pseudo nodes.
    pub hide_pseudo: bool,
    /// Only nodes matching this query.
    pub query: Query,
}
