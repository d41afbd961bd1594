//! The L4 proxy: a listener per service port, each connection sent to a
//! backend (round robin or least connections), a backend that refuses or
//! does not answer skipped for the next. A backend that leaves the set
//! gets no new connections; its open ones run to their end (drain).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::services::{Backend, Balance, Service, Services};

/// A backend with its open connections.
#[derive(Debug)]
struct Slot {
    backend: Backend,
    open: AtomicUsize,
}

/// What one listener balances over; replaced as the service changes.
#[derive(Debug)]
struct Pool {
    balance: Balance,
    slots: Vec<Arc<Slot>>,
}

/// Counters of one service port.
#[derive(Debug, Default)]
pub struct PortStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections that reached a backend.
    pub proxied: AtomicU64,
    /// Connections no backend took (closed at once).
    pub failed: AtomicU64,
    /// Backend attempts that failed and were passed over.
    pub skipped: AtomicU64,
}

struct Listener {
    pool: Arc<RwLock<Arc<Pool>>>,
    stats: Arc<PortStats>,
    accept: JoinHandle<()>,
}

/// The listeners, kept in step with the services.
pub struct Proxy {
    bind: IpAddr,
    connect_timeout: Duration,
    listeners: HashMap<u16, Listener>,
    next: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listeners will bind on `bind`; a backend that has not accepted a
    /// connection within `connect_timeout` is passed over.
    pub fn new(bind: IpAddr, connect_timeout: Duration) -> Proxy {
        Proxy {
            bind,
            connect_timeout,
            listeners: HashMap::new(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The service ports listened on.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.listeners.keys().copied().collect();
        ports.sort_unstable();
        ports
    }

    /// The counters of a service port.
    pub fn stats(&self, port: u16) -> Option<Arc<PortStats>> {
        self.listeners.get(&port).map(|l| Arc::clone(&l.stats))
    }

    /// Brings the listeners in step with `services`: new ports bound
    /// (a port that cannot be bound is logged and tried again on the next
    /// update), gone ones closed, backend sets replaced in place.
    pub async fn update(&mut self, services: &Services) {
        self.listeners.retain(|port, l| {
            let keep = services.contains_key(port);
            if !keep {
                l.accept.abort();
            }
            keep
        });
        for (port, service) in services {
            if let Some(l) = self.listeners.get(port) {
                let old = Arc::clone(&l.pool.read().unwrap_or_else(|e| e.into_inner()));
                let pool = Arc::new(pool_of(service, &old));
                *l.pool.write().unwrap_or_else(|e| e.into_inner()) = pool;
                continue;
            }
            let addr = SocketAddr::new(self.bind, *port);
            let socket = match TcpListener::bind(addr).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%addr, app = %service.app_id, error = %e, "cannot listen on a service port");
                    continue;
                }
            };
            let empty = Pool {
                balance: service.balance,
                slots: Vec::new(),
            };
            let pool = Arc::new(RwLock::new(Arc::new(pool_of(service, &empty))));
            let stats = Arc::new(PortStats::default());
            let accept = tokio::spawn(accept_loop(
                socket,
                Arc::clone(&pool),
                Arc::clone(&stats),
                Arc::clone(&self.next),
                self.connect_timeout,
            ));
            self.listeners.insert(*port, Listener { pool, stats, accept });
        }
    }

    /// Closes every listener (open connections run to their end).
    pub fn close(&mut self) {
        for (_, l) in self.listeners.drain() {
            l.accept.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.close();
    }
}

/// The pool of `service`, keeping the open-connection counts of backends
/// that were in `old`.
fn pool_of(service: &Service, old: &Pool) -> Pool {
    let slots = service
        .backends
        .iter()
        .map(|b| match old.slots.iter().find(|s| s.backend == *b) {
            Some(s) => Arc::clone(s),
            None => Arc::new(Slot {
                backend: b.clone(),
                open: AtomicUsize::new(0),
            }),
        })
        .collect();
    Pool {
        balance: service.balance,
        slots,
    }
}

async fn accept_loop(
    socket: TcpListener,
    pool: Arc<RwLock<Arc<Pool>>>,
    stats: Arc<PortStats>,
    next: Arc<AtomicUsize>,
    connect_timeout: Duration,
) {
    loop {
        let client = match socket.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of descriptors and the like: wait a little, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let pool = Arc::clone(&pool.read().unwrap_or_else(|e| e.into_inner()));
        let turn = next.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            for slot in order(&pool, turn) {
                let b = &slot.backend;
                let up = tokio::time::timeout(connect_timeout, TcpStream::connect((b.host.as_str(), b.port))).await;
                let Ok(Ok(mut up)) = up else {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let _ = up.set_nodelay(true);
                stats.proxied.fetch_add(1, Ordering::Relaxed);
                slot.open.fetch_add(1, Ordering::Relaxed);
                let mut client = client;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                slot.open.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            stats.failed.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// The backends in the order they are tried for connection number `turn`.
fn order(pool: &Pool, turn: usize) -> Vec<Arc<Slot>> {
    let n = pool.slots.len();
    if n == 0 {
        return Vec::new();
    }
    let mut out: Vec<Arc<Slot>> = (0..n).map(|i| Arc::clone(&pool.slots[(turn + i) % n])).collect();
    if pool.balance == Balance::LeastConn {
        // Stable: among equals, round robin still decides.
        out.sort_by_key(|s| s.open.load(Ordering::Relaxed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(balance: Balance, open: &[usize]) -> Pool {
        Pool {
            balance,
            slots: open
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    Arc::new(Slot {
                        backend: Backend {
                            task_id: format!("t{i}"),
                            host: "h".into(),
                            port: u16::try_from(i).unwrap(),
                        },
                        open: AtomicUsize::new(*o),
                    })
                })
                .collect(),
        }
    }

    fn ids(order: &[Arc<Slot>]) -> Vec<&str> {
        order.iter().map(|s| s.backend.task_id.as_str()).collect()
    }

    #[test]
    fn round_robin_turns_and_least_conn_prefers_the_idle() {
        let rr = pool(Balance::RoundRobin, &[5, 0, 0]);
        assert_eq!(ids(&order(&rr, 0)), ["t0", "t1", "t2"]);
        assert_eq!(ids(&order(&rr, 4)), ["t1", "t2", "t0"]);
        let lc = pool(Balance::LeastConn, &[5, 0, 1]);
        assert_eq!(ids(&order(&lc, 0)), ["t1", "t2", "t0"]);
        assert!(order(&pool(Balance::RoundRobin, &[]), 3).is_empty());
    }
}
