//! Saved filters shared by the replicas of one app: with a
//! [`SharedStore`](super::SharedStore) (ZooKeeper under `--zk`), each
//! filter is a node `/filters/{id}` written before it is answered, and
//! every read of the filters first takes what the store holds, so a
//! filter saved on one replica is listed, and applies, on every other.
//! Without one, the local [`FilterStore`](crate::search::FilterStore)
//! (a file under `--data-dir`) is all there is.

use crate::error::Result;
use crate::search::SavedFilter;

use super::App;

const FILTERS: &str = "/filters";

impl App {
    /// Takes the filters the shared store holds (nothing without one).
    pub(super) async fn sync_filters(&self) -> Result<()> {
        let Some(shared) = &self.inner.config.shared else {
            return Ok(());
        };
        let store = &shared.0;
        let mut list = Vec::new();
        for id in store.children(FILTERS).await? {
            let path = format!("{FILTERS}/{id}");
            if let Some(v) = store.get(&path).await? {
                match serde_json::from_slice::<SavedFilter>(&v.data) {
                    Ok(f) if f.id == id => list.push(f),
                    Ok(_) | Err(_) => tracing::warn!(path, "a shared filter does not parse; skipped"),
                }
            }
        }
        self.inner.filters.lock().replace_all(list);
        Ok(())
    }

    /// Saves a filter: to the shared store first when there is one.
    pub(super) async fn save_filter(&self, f: SavedFilter, now_ms: u64) -> Result<SavedFilter> {
        let Some(shared) = &self.inner.config.shared else {
            return self.inner.filters.lock().save(f, now_ms);
        };
        self.sync_filters().await?;
        let f = self.inner.filters.lock().prepare(f, now_ms)?;
        let data = serde_json::to_vec(&f).map_err(|e| crate::error::TopologyError::Config(e.to_string()))?;
        shared.0.put(&format!("{FILTERS}/{}", f.id), data).await?;
        self.inner.filters.lock().insert(f.clone())?;
        Ok(f)
    }

    /// Deletes a filter (from the shared store first); whether it existed.
    pub(super) async fn delete_filter(&self, id: &str) -> Result<bool> {
        let Some(shared) = &self.inner.config.shared else {
            return self.inner.filters.lock().delete(id);
        };
        let existed = shared.0.delete(&format!("{FILTERS}/{id}"), None).await?;
        self.inner.filters.lock().delete(id)?;
        Ok(existed)
    }
}
