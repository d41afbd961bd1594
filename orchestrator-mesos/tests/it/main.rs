//! The integration tests of `orchestrator-mesos`, in one binary: one link
//! instead of nine, and the tests of every area run side by side. Each
//! module is one area; they share the fixtures of the crate's `testing`
//! module (loopback master, process agent, event stream) and
//! `orchestrator_testkit`.

mod allocator;
mod docker_containerizer;
mod end_to_end;
mod fuzz;
mod marathon;
mod master;
mod master_http;
mod process_containerizer;
mod scheduler_api;
mod update_burst;
mod zk_store;

/// GET `url` and its JSON body (the test fails on a transport error or a
/// body that is not JSON).
pub(crate) async fn get_json(url: String) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}
