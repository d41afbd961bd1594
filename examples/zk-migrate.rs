//! `zk-migrate`: move a live ZooKeeper tree to another ensemble.
//!
//! ```text
//! zk-migrate copy|sync|verify|migrate|rollback|status \
//!     --source HOST:PORT[/chroot] --target HOST:PORT[/chroot] [--path /]
//! ```
//!
//! Exit codes: 0 done; 1 unexpected failure; 2 bad arguments or a phase
//! refused (the message says why); 3 verify found differences; 4 a
//! ZooKeeper ensemble failed or could not be reached; 5 nodes could not be
//! read with the credentials given (nothing was written).

#[path = "support/mod.rs"]
mod support;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use orchestrator::zkmigrate::{
    self as zkm, ConflictPolicy, CopyOptions, Credential, Endpoint, EphemeralPolicy, MigrateOptions, Migration,
    NodeRules, Phase, Progress, SaslLogin, SyncHandle, SyncOptions, Tls,
};

#[derive(Parser)]
#[command(
    version,
    about = "Copy, sync, verify and cut over a live ZooKeeper tree to another ensemble"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Source ensemble: `HOST:PORT[,HOST:PORT…][/chroot]`.
    #[arg(long, global = true, default_value = "")]
    source: String,
    /// Target ensemble: `HOST:PORT[,HOST:PORT…][/chroot]`.
    #[arg(long, global = true, default_value = "")]
    target: String,
    /// The subtree to migrate, below each chroot.
    #[arg(long, global = true, default_value = "/")]
    path: String,
    /// Ephemeral nodes: skip them, or copy them as persistent markers.
    #[arg(long, global = true, value_enum, default_value = "skip")]
    ephemerals: Ephemerals,
    /// A container node pattern (`*` one component, trailing `**` any);
    /// repeatable. ZooKeeper shows containers to clients as persistent.
    #[arg(long = "container", global = true)]
    containers: Vec<String>,
    /// A TTL node pattern with its TTL, `PATTERN=DURATION`; repeatable.
    #[arg(long = "ttl", global = true, value_parser = parse_ttl)]
    ttls: Vec<(String, u64)>,
    /// Keep target nodes the source does not have (copy deletes them otherwise).
    #[arg(long = "no-delete", global = true)]
    no_delete: bool,
    /// Conflict policy for sync.
    #[arg(long, global = true, value_enum, default_value = "source-wins")]
    conflicts: Conflicts,
    /// Show what would change; write nothing.
    #[arg(long = "dry-run", global = true)]
    dry_run: bool,
    /// Serve Prometheus metrics (sync lag, counters) on this address.
    #[arg(long = "metrics-listen", global = true)]
    metrics_listen: Option<SocketAddr>,
    /// The migration's state file (kept outside the synced tree).
    #[arg(long, global = true, default_value = "zk-migrate.state.json")]
    state: PathBuf,
    /// How long to keep trying to reach an ensemble.
    #[arg(long = "connect-timeout", global = true, default_value = "30s", value_parser = support::parse_duration)]
    connect_timeout: Duration,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// A credential for the source, `SCHEME:AUTH` as `addauth` takes it
    /// (`digest:USER:PASSWORD`); repeatable. Keep passwords off the
    /// command line with the environment variable or --source-auth-file.
    #[arg(
        long = "source-auth",
        global = true,
        env = "ZK_MIGRATE_SOURCE_AUTH",
        hide_env_values = true
    )]
    source_auth: Vec<String>,
    /// A file of source credentials, one `SCHEME:AUTH` per line.
    #[arg(long = "source-auth-file", global = true)]
    source_auth_file: Option<PathBuf>,
    /// A credential for the target (as --source-auth); repeatable.
    #[arg(
        long = "target-auth",
        global = true,
        env = "ZK_MIGRATE_TARGET_AUTH",
        hide_env_values = true
    )]
    target_auth: Vec<String>,
    /// A file of target credentials, one `SCHEME:AUTH` per line.
    #[arg(long = "target-auth-file", global = true)]
    target_auth_file: Option<PathBuf>,
    /// SASL DIGEST-MD5 login to the source, from this JAAS file's section
    /// (--jaas-section, `Client` as ZooKeeper clients read it):
    /// `org.apache.zookeeper.server.auth.DigestLoginModule required
    /// username="…" password="…";`. Kerberos is not supported.
    #[arg(long = "source-jaas", global = true)]
    source_jaas: Option<PathBuf>,
    /// SASL DIGEST-MD5 login to the target (as --source-jaas).
    #[arg(long = "target-jaas", global = true)]
    target_jaas: Option<PathBuf>,
    /// The JAAS section the logins are read from.
    #[arg(long = "jaas-section", global = true, default_value = "Client")]
    jaas_section: String,
    /// The session timeout asked of both ensembles.
    #[arg(long = "session-timeout", global = true, default_value = "10s", value_parser = support::parse_duration)]
    session_timeout: Duration,
    /// TLS to the source's secure client port: the CA (PEM) that signed
    /// its servers' certificates.
    #[arg(long = "source-tls-ca", global = true)]
    source_tls_ca: Option<PathBuf>,
    /// The client certificate (PEM) for a source that asks for one.
    #[arg(long = "source-tls-cert", global = true, requires = "source_tls_ca")]
    source_tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long = "source-tls-key", global = true, requires = "source_tls_cert")]
    source_tls_key: Option<PathBuf>,
    /// TLS to the target's secure client port (as --source-tls-ca).
    #[arg(long = "target-tls-ca", global = true)]
    target_tls_ca: Option<PathBuf>,
    /// The client certificate (PEM) for a target that asks for one.
    #[arg(long = "target-tls-cert", global = true, requires = "target_tls_ca")]
    target_tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long = "target-tls-key", global = true, requires = "target_tls_cert")]
    target_tls_key: Option<PathBuf>,
    /// Where each side's ACLs are remembered between runs (by node stat:
    /// a re-run reads only the ACLs that can have changed). Default
    /// `$XDG_CACHE_HOME/zk-migrate`, else `~/.cache/zk-migrate`.
    #[arg(long = "acl-memo", global = true)]
    acl_memo: Option<PathBuf>,
    /// Read every ACL every time; remember none.
    #[arg(long = "no-acl-memo", global = true, conflicts_with = "acl_memo")]
    no_acl_memo: bool,
    /// Leave out (and list) nodes a side may not read, and all below them,
    /// instead of stopping before any write (exit code 5).
    #[arg(long = "skip-unreadable", global = true)]
    skip_unreadable: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Copy the source subtree to the target (only what differs).
    Copy,
    /// Copy, then keep both sides in sync in both directions until Ctrl-C.
    Sync,
    /// Compare checksums of both sides; exit 3 when they differ.
    Verify,
    /// Run the phases plan → copy → sync → verify → cutover → finalize.
    Migrate {
        /// The last phase to run (`plan`, `copy`, `sync`, `verify`, `cutover`, `finalize`).
        #[arg(long, default_value = "cutover")]
        to: String,
        /// Cutover refuses while the sync's p99 lag is above this.
        #[arg(long = "max-lag", default_value = "1s", value_parser = support::parse_duration)]
        max_lag: Duration,
        /// Exit once the phase is reached instead of syncing until Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Make the source authoritative again (until finalize).
    Rollback {
        /// Also delete the copied subtree from the target.
        #[arg(long = "clean-target")]
        clean_target: bool,
    },
    /// Show the recorded phase and history.
    Status,
}

#[derive(Clone, Copy, ValueEnum)]
enum Ephemerals {
    Skip,
    Persistent,
}

#[derive(Clone, Copy, ValueEnum)]
enum Conflicts {
    SourceWins,
    NewestWins,
    ReportOnly,
}

fn parse_ttl(s: &str) -> Result<(String, u64), String> {
    let (pattern, d) = s
        .split_once('=')
        .ok_or("expected PATTERN=DURATION, e.g. /leases/*=30s")?;
    let ms = support::parse_duration(d)?.as_millis();
    Ok((pattern.to_string(), u64::try_from(ms).map_err(|e| e.to_string())?))
}

fn rules(args: &Args) -> NodeRules {
    NodeRules {
        ephemerals: match args.ephemerals {
            Ephemerals::Skip => EphemeralPolicy::Skip,
            Ephemerals::Persistent => EphemeralPolicy::Persistent,
        },
        containers: args.containers.clone(),
        ttls: args.ttls.clone(),
    }
}

/// The credentials given inline (or by the environment) and in a file.
fn credentials(inline: &[String], file: Option<&PathBuf>) -> zkm::Result<Vec<Credential>> {
    let mut out = inline
        .iter()
        .map(|c| Credential::parse(c))
        .collect::<zkm::Result<Vec<_>>>()?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| zkm::Error::Endpoint {
            endpoint: path.display().to_string(),
            reason: format!("cannot read the credentials file: {e}"),
        })?;
        out.extend(Credential::parse_lines(&text)?);
    }
    Ok(out)
}

/// The ACL memo's directory, unless turned off.
fn acl_memo_dir(args: &Args) -> Option<PathBuf> {
    if args.no_acl_memo {
        return None;
    }
    args.acl_memo.clone().or_else(|| {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("zk-migrate"))
    })
}

fn tls(ca: Option<&PathBuf>, cert: Option<&PathBuf>, key: Option<&PathBuf>) -> Option<Tls> {
    ca.map(|ca| Tls {
        ca: ca.clone(),
        cert: cert.cloned(),
        key: key.cloned(),
    })
}

/// The SASL login in a JAAS file, if one is given.
fn sasl(file: Option<&PathBuf>, section: &str) -> zkm::Result<Option<SaslLogin>> {
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| zkm::Error::Endpoint {
        endpoint: path.display().to_string(),
        reason: format!("cannot read the JAAS file: {e}"),
    })?;
    SaslLogin::from_jaas(&text, section).map(Some)
}

fn endpoints(args: &Args) -> zkm::Result<(Endpoint, Endpoint)> {
    let source_tls = tls(
        args.source_tls_ca.as_ref(),
        args.source_tls_cert.as_ref(),
        args.source_tls_key.as_ref(),
    );
    let target_tls = tls(
        args.target_tls_ca.as_ref(),
        args.target_tls_cert.as_ref(),
        args.target_tls_key.as_ref(),
    );
    for t in source_tls.iter().chain(&target_tls) {
        t.options()?; // unreadable files are a usage error, before connecting
    }
    Ok((
        Endpoint::parse("source", &args.source, &args.path)?
            .with_credentials(credentials(&args.source_auth, args.source_auth_file.as_ref())?)
            .with_tls(source_tls)
            .with_sasl(sasl(args.source_jaas.as_ref(), &args.jaas_section)?)
            .with_session_timeout(args.session_timeout),
        Endpoint::parse("target", &args.target, &args.path)?
            .with_credentials(credentials(&args.target_auth, args.target_auth_file.as_ref())?)
            .with_tls(target_tls)
            .with_sasl(sasl(args.target_jaas.as_ref(), &args.jaas_section)?)
            .with_session_timeout(args.session_timeout),
    ))
}

fn print<T: serde::Serialize + std::fmt::Debug>(json: bool, value: &T) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{value:#?}");
    }
}

/// A progress bar on a terminal, a plain line every few seconds otherwise.
fn show_progress(progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tty = std::io::stderr().is_terminal();
        let mut tick = tokio::time::interval(if tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(2)
        });
        loop {
            tick.tick().await;
            let (read, planned, written) = (
                progress.read.load(Ordering::Relaxed),
                progress.planned.load(Ordering::Relaxed),
                progress.written.load(Ordering::Relaxed),
            );
            if tty {
                let done = (written * 30).checked_div(planned).unwrap_or(0);
                let bar: String = (0..30).map(|i| if i < done { '#' } else { '.' }).collect();
                eprint!("\r[{bar}] read {read} nodes, wrote {written}/{planned}   ");
            } else {
                eprintln!("progress: read {read} nodes, wrote {written}/{planned}");
            }
        }
    })
}

async fn serve_metrics(addr: SocketAddr, sync: Arc<stats_slot::Slot>) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let sync = sync.clone();
            async move { support::metrics_response(&headers, sync.render()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

/// Where the metrics endpoint finds the running sync's numbers.
mod stats_slot {
    use std::sync::Mutex;

    use orchestrator::zkmigrate::{metrics, SyncStats};

    #[derive(Default)]
    pub struct Slot(Mutex<Option<SyncStats>>);

    impl Slot {
        pub fn set(&self, stats: SyncStats) {
            *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stats);
        }

        pub fn render(&self) -> String {
            let stats = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            metrics::render(&stats.unwrap_or_default())
        }
    }
}

/// Keeps the metrics slot fresh and logs the sync's state every 10 s until Ctrl-C.
async fn follow(sync: &SyncHandle, slot: &stats_slot::Slot) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    let stop = support::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let stats = sync.stats();
                if n % 10 == 0 {
                    eprintln!(
                        "sync: {} applied, {} conflicts, {} pending, lag p50 {} µs p99 {} µs",
                        stats.applied, stats.conflicts, stats.pending, stats.lag_p50_us, stats.lag_p99_us
                    );
                }
                n += 1;
                slot.set(stats);
            }
        }
    }
    eprintln!("stopping: {:?}", sync.stats());
}

async fn run(args: Args) -> zkm::Result<i32> {
    let slot = Arc::new(stats_slot::Slot::default());
    if let Some(addr) = args.metrics_listen {
        serve_metrics(addr, slot.clone()).await.map_err(|e| zkm::Error::State {
            path: addr.to_string(),
            reason: format!("cannot listen for metrics: {e}"),
        })?;
    }
    if let Command::Status = args.command {
        match zkm::MigrationState::load(&args.state)? {
            Some(state) => print(args.json, &state),
            None => println!("no migration recorded in {}", args.state.display()),
        }
        return Ok(0);
    }
    let (source, target) = endpoints(&args)?;
    let copy_opts = CopyOptions {
        delete_extra: !args.no_delete,
        rules: rules(&args),
        skip_unreadable: args.skip_unreadable,
        acl_memo: acl_memo_dir(&args),
    };
    let sync_opts = SyncOptions {
        policy: match args.conflicts {
            Conflicts::SourceWins => ConflictPolicy::SourceWins,
            Conflicts::NewestWins => ConflictPolicy::NewestWins,
            Conflicts::ReportOnly => ConflictPolicy::ReportOnly,
        },
        rules: rules(&args),
        ..SyncOptions::default()
    };
    let timeout = args.connect_timeout;
    match &args.command {
        Command::Copy | Command::Sync => {
            let (s, t) = tokio::try_join!(source.connect(timeout), target.connect(timeout))?;
            let progress = Arc::new(Progress::default());
            let bar = show_progress(progress.clone());
            let result = zkm::copy::copy(&s, &source, &t, &target, &copy_opts, args.dry_run, Some(&progress)).await;
            bar.abort();
            eprintln!();
            let (plan, report) = result?;
            if args.dry_run {
                print(args.json, &plan);
                return Ok(0);
            }
            print(args.json, &report);
            if let Command::Sync = args.command {
                let sync = SyncHandle::start(source, target, sync_opts).await?;
                eprintln!("syncing both ways; Ctrl-C stops");
                follow(&sync, &slot).await;
            }
            Ok(0)
        }
        Command::Verify => {
            let (s, t) = tokio::try_join!(source.connect(timeout), target.connect(timeout))?;
            let report = zkm::verify(&s, &source, &t, &target, &copy_opts.rules, args.skip_unreadable).await?;
            if args.json {
                print(true, &report);
            } else {
                println!(
                    "source {} nodes, checksum {}\ntarget {} nodes, checksum {}",
                    report.source_nodes, report.source_checksum, report.target_nodes, report.target_checksum
                );
                for d in report.differences.iter().take(100) {
                    println!("  {d}");
                }
                if report.differences.len() > 100 {
                    println!("  … and {} more", report.differences.len() - 100);
                }
                for u in &report.unreadable {
                    println!("  left out, unreadable: {u}");
                }
                println!("{}", if report.equal() { "equal" } else { "DIFFERENT" });
            }
            Ok(if report.equal() { 0 } else { 3 })
        }
        Command::Migrate { to, max_lag, exit } => {
            let until = Phase::parse(to)?;
            let opts = MigrateOptions {
                copy: copy_opts,
                sync: sync_opts,
                max_lag: *max_lag,
                dry_run: args.dry_run,
                ..MigrateOptions::default()
            };
            let mut m = Migration::open(source, target, args.state.clone(), opts)?;
            let bar = show_progress(m.progress());
            let result = m.run_to(until).await;
            bar.abort();
            eprintln!();
            if args.dry_run {
                if let Some(plan) = m.last_plan() {
                    print(args.json, plan);
                }
            }
            result?;
            print(args.json, m.state());
            if let Some(sync) = m.sync() {
                if !*exit {
                    eprintln!(
                        "phase {}: syncing both ways; Ctrl-C stops (run again to go on)",
                        m.state().phase
                    );
                    follow(sync, &slot).await;
                }
            }
            Ok(0)
        }
        Command::Rollback { clean_target } => {
            let mut m = Migration::open(source, target, args.state.clone(), MigrateOptions::default())?;
            m.rollback(*clean_target).await?;
            print(args.json, m.state());
            Ok(0)
        }
        Command::Status => Ok(0),
    }
}

#[tokio::main]
async fn main() {
    support::init_tracing();
    let code = match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zk-migrate: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
