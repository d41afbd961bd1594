//! Views: the store's nodes of one kind as a petgraph graph, with edges
//! from network connections mapped up to that kind.
//!
//! Rendering walks each live probe's own nodes and its connection list
//! once; a connection's far end is found through the store's endpoint
//! owner index (an O(1) lookup by hashed id), so a view costs time in
//! proportion to its nodes and connections, never probes × probes.
//! Far ends nobody owns become pseudo nodes: the Internet (in for clients,
//! out for servers) for public addresses, one node per address otherwise;
//! processes outside containers gather in one pseudo node per host.

//!
//! `view.rs` names the views and their filters, `summary.rs` makes a node's
//! summary, `render.rs` builds the graph and `rendered.rs` is its served form.

mod details;
mod render;
mod rendered;
mod summary;
mod view;

pub use details::{details, NodeDetails};
pub use render::{render, render_all};
pub use rendered::{NodeJson, Rendered};
pub use summary::{is_system_container, NodeSummary};
pub use view::{Choice, Filters, View};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::search::Query;
    use crate::store::{ReportStore, StoreConfig};
    use crate::synthetic::{Cluster, ClusterSpec};

    /// A small synthetic cluster's first round (other modules' tests use it too).
    pub(crate) fn store() -> ReportStore {
        let cluster = Cluster::new(ClusterSpec {
            hosts: 4,
            containers: 8,
            processes: 40,
            connections: 80,
        });
        let mut store = ReportStore::new(StoreConfig::default());
        for r in cluster.round(1_000, 0) {
            store.ingest(r, 1_000).unwrap();
        }
        store
    }

    #[test]
    fn every_view_has_its_nodes_and_edges_between_hosts() {
        let store = store();
        let hosts = render(&store, View::Hosts, &Filters::default(), 1_000);
        assert_eq!(hosts.nodes().filter(|n| !n.pseudo).count(), 4);
        assert!(hosts.edge_count() > 0, "connections between hosts");
        assert!(
            hosts.node("pseudo;out-theinternet").is_some(),
            "public servers are the Internet"
        );
        let containers = render(&store, View::Containers, &Filters::default(), 1_000);
        assert_eq!(containers.nodes().filter(|n| !n.pseudo).count(), 8);
        assert!(containers.edge_count() > 0);
        let processes = render(&store, View::Processes, &Filters::default(), 1_000);
        assert_eq!(processes.nodes().filter(|n| !n.pseudo).count(), 40);
        let images = render(&store, View::ContainersByImage, &Filters::default(), 1_000);
        assert!(images.nodes().filter(|n| !n.pseudo).all(|n| n.count >= 1));
        let pods = render(&store, View::Pods, &Filters::default(), 1_000);
        assert_eq!(
            pods.nodes().filter(|n| !n.pseudo).count(),
            4,
            "every other container is in a pod"
        );
        let services = render(&store, View::Services, &Filters::default(), 1_000);
        assert!(services.nodes().filter(|n| !n.pseudo).count() > 0);
        // Every edge of a view joins two of its nodes.
        for r in [&hosts, &containers, &processes, &images, &pods, &services] {
            for n in r.nodes_json() {
                for a in &n.adjacency {
                    assert!(r.node(a).is_some(), "{} → {a}", n.summary.id);
                }
            }
        }
    }

    #[test]
    fn filters_hide_what_they_say() {
        let store = store();
        let q = |text: &str| Filters {
            query: Query::parse(text).unwrap(),
            ..Filters::default()
        };
        let db = render(&store, View::Containers, &q("tier=db"), 1_000);
        assert!(db.nodes().filter(|n| !n.pseudo).count() < 8);
        let none = render(&store, View::Containers, &q("nothing-has-this"), 1_000);
        assert!(none.is_empty());
        let stopped = Filters {
            stopped: Choice::Other,
            ..Filters::default()
        };
        assert_eq!(
            render(&store, View::Containers, &stopped, 1_000)
                .nodes()
                .filter(|n| !n.pseudo)
                .count(),
            0
        );
        let connected = Filters {
            hide_unconnected: true,
            hide_pseudo: true,
            ..Filters::default()
        };
        let r = render(&store, View::Processes, &connected, 1_000);
        assert!(r.len() < 40 && !r.is_empty());
        assert!(r.nodes().all(|n| !n.pseudo));
        // Probes silent past the stale-node threshold leave the views.
        assert!(render(&store, View::Hosts, &Filters::default(), 1_000 + 301_000).is_empty());
    }

    #[test]
    fn diffs_tell_what_changed() {
        let mut store = store();
        let before = render(&store, View::Containers, &Filters::default(), 1_000);
        let reset = crate::diff::diff(None, &before);
        assert!(reset.reset && reset.add.len() == before.len());
        let cluster = Cluster::new(ClusterSpec {
            hosts: 4,
            containers: 8,
            processes: 40,
            connections: 80,
        });
        let mut r = cluster.report(0, 2_000, 1);
        r.topologies.container.nodes.pop_first();
        store.ingest(r, 2_000).unwrap();
        let after = render(&store, View::Containers, &Filters::default(), 2_000);
        let d = crate::diff::diff(Some(&before), &after);
        assert_eq!(d.remove.len(), 1, "{d:?}");
        assert!(!d.update.is_empty(), "metrics changed");
        assert!(crate::diff::diff(Some(&after), &after).is_empty());
    }
}
