//! Mesos-DNS's HTTP API: `/v1/version`, `/v1/config`, `/v1/hosts/{host}`
//! and `/v1/services/{service}`, in its shapes (a name without records
//! answers one entry of empty strings, as Mesos-DNS does).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::config::Config;
use crate::names::canonical;
use crate::records::RecordSet;

#[derive(Clone)]
struct Api {
    records: watch::Receiver<Arc<RecordSet>>,
    config: Arc<Config>,
    dns_port: u16,
    http_port: u16,
}

/// The API's routes, answering from `records`.
pub fn router(records: watch::Receiver<Arc<RecordSet>>, config: Arc<Config>, dns_port: u16, http_port: u16) -> Router {
    Router::new()
        .route("/v1/version", get(version))
        .route("/v1/config", get(config_json))
        .route("/v1/hosts/{host}", get(hosts))
        .route("/v1/services/{service}", get(services))
        .route("/health", get(|| async { "ok" }))
        .with_state(Api {
            records,
            config,
            dns_port,
            http_port,
        })
}

async fn version() -> Json<Value> {
    Json(json!({
        "Service": "Mesos-DNS",
        "URL": "https://github.com/mesosphere/mesos-dns",
        "Version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn config_json(State(api): State<Api>) -> Json<Value> {
    Json(api.config.to_mesos_dns_json(api.dns_port, api.http_port))
}

async fn hosts(State(api): State<Api>, Path(host): Path<String>) -> Json<Value> {
    let set = Arc::clone(&api.records.borrow());
    let name = canonical(&host);
    let found: Vec<Value> = set
        .a
        .get(&name)
        .into_iter()
        .flatten()
        .map(|ip| json!({"host": name, "ip": ip.to_string()}))
        .collect();
    if found.is_empty() {
        return Json(json!([{"host": "", "ip": ""}]));
    }
    Json(Value::Array(found))
}

async fn services(State(api): State<Api>, Path(service): Path<String>) -> Json<Value> {
    let set = Arc::clone(&api.records.borrow());
    let name = canonical(&service);
    let mut found = Vec::new();
    for target in set.srv.get(&name).into_iter().flatten() {
        for ip in set.a.get(&target.host).into_iter().flatten() {
            found.push(json!({
                "service": name,
                "host": target.host,
                "ip": ip.to_string(),
                "port": target.port.to_string(),
            }));
        }
    }
    if found.is_empty() {
        return Json(json!([{"service": "", "host": "", "ip": "", "port": ""}]));
    }
    Json(Value::Array(found))
}
