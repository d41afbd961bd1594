//! `--masters N`: the replicated masters as processes of their own (this
//! binary again, with the hidden `--run-master PORT`), so a user can kill
//! the leader and watch the agent and the scheduler follow the next one.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orchestrator::mesos::{MasterConfig, MasterHandle, MasterInfo, ReplicaConfig};
use orchestrator::platform::PlatformConfig;

use crate::args::Args;
use crate::support;

/// The masters this process started; killed when dropped.
pub struct Children(Vec<(String, Child)>);

impl Children {
    /// Starts `config.masters` masters when there is more than one.
    pub fn start(args: &Args, config: &PlatformConfig) -> anyhow::Result<Children> {
        let mut children = Vec::new();
        if config.masters < 2 {
            return Ok(Children(children));
        }
        let exe = std::env::current_exe()?;
        for i in 0..config.masters {
            let port = config.master_port.saturating_add(i);
            let mut cmd = Command::new(&exe);
            cmd.args(["--run-master", &port.to_string(), "--ip", &config.ip.to_string()])
                .args([
                    "--zk-session-timeout",
                    &format!("{}ms", args.zk_session_timeout.as_millis()),
                ])
                .stdin(Stdio::null());
            if let Some(zk) = &args.zk {
                cmd.args(["--zk", zk]);
            }
            let child = cmd.spawn()?;
            children.push((format!("http://{}", SocketAddr::new(config.ip, port)), child));
        }
        Ok(Children(children))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each master's URL and pid.
    pub fn list(&self) -> Vec<(String, u32)> {
        self.0.iter().map(|(url, c)| (url.clone(), c.id())).collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `--run-master PORT`: one replicated master, until a signal or until the
/// all-in-one that started it is gone.
pub async fn run_one(args: &Args, port: u16) -> anyhow::Result<()> {
    let Some((servers, root)) = args.zk.as_deref().map(|u| support::parse_zk_url(u, "/orchestrator")) else {
        anyhow::bail!("--run-master needs --zk");
    };
    let url = orchestrator::platform::masters_zk(&servers, &root);
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.ip, port)).await?;
    let bound = listener.local_addr()?;
    let info = MasterInfo::new(format!("master-{port}-{}", std::process::id()), bound, None);
    let replica = ReplicaConfig {
        zk: url,
        session_timeout: args.zk_session_timeout,
        reregister_timeout: Duration::from_secs(600),
    };
    let master = MasterConfig {
        master_id: format!("m{port}"),
        ..MasterConfig::default()
    };
    let (handle, run) = MasterHandle::start_replicated(replica, info, master, Duration::from_secs(1)).await?;
    let parent = std::os::unix::process::parent_id();
    let orphaned = async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if std::os::unix::process::parent_id() != parent {
                return;
            }
        }
    };
    // Streams to agents and frameworks never end on their own: stop
    // serving at once (they reconnect to the next leader).
    tokio::select! {
        r = axum::serve(listener, handle.router()).into_future() => r?,
        () = support::shutdown_signal() => {}
        () = orphaned => {}
    }
    run.abort();
    Ok(())
}
