//! The `zk-migrate` example binary as scripts use it: exit codes, a copy
//! killed with SIGKILL and run again, the phased migration and rollback,
//! and a live sync with its metrics endpoint and clean Ctrl-C.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use orchestrator_testkit::{free_port, zookeeper_pair};
use zookeeper_client as zk;

fn binary() -> PathBuf {
    orchestrator_testkit::example_binary("zk-migrate")
}

/// `zk-migrate`, with its ACL memo in a directory of this test run's
/// (not the user's `~/.cache`).
fn zkm() -> Command {
    let mut c = Command::new(binary());
    c.env(
        "XDG_CACHE_HOME",
        std::env::temp_dir().join(format!("zkm-cache-{}", std::process::id())),
    );
    c
}

fn run(args: &[&str]) -> Output {
    zkm()
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running zk-migrate")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn client(addr: &str) -> zk::Client {
    zk::Client::connect(addr).await.expect("connect")
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn populate(c: &zk::Client, root: &str, folders: usize, leaves: usize) {
    c.mkdir(root, &open()).await.unwrap();
    let opts = open();
    let folder_paths: Vec<String> = (0..folders).map(|f| format!("{root}/f{f}")).collect();
    join_all(folder_paths.iter().map(|p| c.create(p, b"", &opts))).await;
    let leaf_paths: Vec<String> = (0..folders)
        .flat_map(|f| (0..leaves).map(move |l| format!("{root}/f{f}/n{l}")))
        .collect();
    for chunk in leaf_paths.chunks(5000) {
        for r in join_all(chunk.iter().map(|p| c.create(p, &[b'v'; 64], &opts))).await {
            r.unwrap();
        }
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_migrate_cli_copies_verifies_resumes_migrates_and_syncs() {
    let _beside = crate::HEAVY.read().await;
    let Some((a, b)) = zookeeper_pair("zk_migrate_cli") else {
        return;
    };
    let root = format!("/cli-{}", std::process::id());
    let (s, t) = (client(&a.address).await, client(&b.address).await);
    let base = ["--source", &a.address, "--target", &b.address, "--path", &root];
    let with = |extra: &[&str]| -> Vec<String> { extra.iter().chain(base.iter()).map(ToString::to_string).collect() };
    let run_with = |extra: &[&str]| {
        let args = with(extra);
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Usage and connection errors have their own exit codes.
    let bad = run(&["verify", "--source", "no-port", "--target", &b.address]);
    assert_eq!(code(&bad), 2, "{}", text(&bad));
    assert!(text(&bad).contains("has no port"), "{}", text(&bad));
    let closed = format!("127.0.0.1:{}", free_port());
    let down = run(&[
        "verify",
        "--source",
        &closed,
        "--target",
        &b.address,
        "--connect-timeout",
        "1s",
    ]);
    assert_eq!(code(&down), 4, "{}", text(&down));

    // A copy killed with SIGKILL halfway, then run again, converges.
    populate(&s, &root, 300, 100).await;
    let mut child = zkm()
        .args(with(&["copy"]))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = t.check_stat(&root).await.unwrap().map_or(0, |st| st.num_children);
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the copy never started writing");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    let killed = child.wait().unwrap();
    assert!(!killed.success(), "the copy finished before it was killed");
    let differs = run_with(&["verify"]);
    assert_eq!(code(&differs), 3, "{}", text(&differs));
    let again = run_with(&["copy", "--json"]);
    assert_eq!(code(&again), 0, "{}", text(&again));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(report["target_nodes_before"].as_u64().unwrap() > 0, "{report}");
    let equal = run_with(&["verify"]);
    assert_eq!(code(&equal), 0, "{}", text(&equal));
    assert!(String::from_utf8_lossy(&equal.stdout).ends_with("equal\n"));

    // A planted difference is listed, with exit code 3.
    t.set_data(&format!("{root}/f7/n7"), b"planted", None).await.unwrap();
    let planted = run_with(&["verify"]);
    assert_eq!(code(&planted), 3, "{}", text(&planted));
    assert!(
        String::from_utf8_lossy(&planted.stdout).contains("/f7/n7: data differs (64 bytes on source, 7 on target)"),
        "{}",
        text(&planted)
    );

    // Phases through cutover, recorded in the state file; then rollback.
    let dir = std::env::temp_dir().join(format!("zkm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let state = state.to_str().unwrap();
    let migrated = run_with(&["migrate", "--to", "cutover", "--exit", "--state", state, "--json"]);
    assert_eq!(code(&migrated), 0, "{}", text(&migrated));
    let status = run(&["status", "--state", state, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (st["phase"].as_str(), st["authoritative"].as_str()),
        (Some("cutover"), Some("target"))
    );
    assert_eq!(t.get_data(&format!("{root}/f7/n7")).await.unwrap().0, [b'v'; 64]);
    let back = run_with(&["rollback", "--state", state, "--json"]);
    assert_eq!(code(&back), 0, "{}", text(&back));
    let st: serde_json::Value = serde_json::from_slice(&back.stdout).unwrap();
    assert_eq!(
        (st["phase"].as_str(), st["authoritative"].as_str()),
        (Some("rolled_back"), Some("source"))
    );
    let refused = run_with(&["migrate", "--to", "launch", "--state", state]);
    assert_eq!(code(&refused), 2, "{}", text(&refused));

    // Live sync: changes cross over, metrics are served, SIGINT ends it cleanly.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut sync = Reaped(
        zkm()
            .args(with(&["sync", "--metrics-listen", &listen]))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    loop {
        i += 1;
        s.set_data(&format!("{root}/f1/n1"), format!("live {i}").as_bytes(), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let there = t.get_data(&format!("{root}/f1/n1")).await.unwrap().0;
        if there == format!("live {i}").as_bytes() {
            break;
        }
        assert!(Instant::now() < deadline, "sync never carried a change over");
    }
    // The change above may have crossed in the sync's first full read,
    // before its watches were set: each round makes one more, which only
    // a watch can carry (and `applied` counts). Generous: the whole suite
    // shares two cores with this process.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        i += 1;
        s.set_data(&format!("{root}/f1/n1"), format!("live {i}").as_bytes(), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let answer = tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
            .await
            .unwrap();
        match answer {
            Some(m) if m.contains("zkmigrate_sync_applied_total") && !m.contains("zkmigrate_sync_applied_total 0") => {
                break m
            }
            last if Instant::now() > deadline => panic!("no metrics on {listen}; last answer: {last:?}"),
            _ => {}
        }
    };
    assert!(
        metrics.contains("zkmigrate_sync_lag_seconds_bucket{le=\"+Inf\"}"),
        "{metrics}"
    );
    assert!(
        metrics
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    let body = metrics.split_once("\r\n\r\n").map_or(metrics.as_str(), |(_, b)| b);
    orchestrator_testkit::promtool_check(body, "zk-migrate sync --metrics-listen");
    nix_kill_int(sync.0.id());
    let status = sync.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A process the test stops itself; killed if the test fails first.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn nix_kill_int(pid: u32) {
    let status = Command::new("kill").arg("-INT").arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

/// A tree where part is protected by a digest ACL, as Mesos, Marathon and
/// Kafka deployments protect their znodes: without credentials nothing is
/// copied and the protected paths are named (exit 5); with
/// `--skip-unreadable` the rest is copied; with the credentials (from a
/// file for the source, the environment for the target) everything is,
/// ACLs exactly (the digest id's hash carries over), and verify agrees.
/// A target identity the copied ACLs would lock out is refused before any
/// write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_migrate_cli_copies_a_digest_protected_tree_with_credentials() {
    let _beside = crate::HEAVY.read().await;
    let Some((a, b)) = zookeeper_pair("zk_migrate_cli_digest") else {
        return;
    };
    let root = format!("/secured-{}", std::process::id());
    let alice = |addr: String| async move {
        zk::Client::connector()
            .with_auth("digest", b"alice:s3cret")
            .connect(&addr)
            .await
            .expect("connect as alice")
    };
    let s = alice(a.address.clone()).await;
    let (t_anyone, t_alice) = (client(&b.address).await, alice(b.address.clone()).await);
    // Open nodes, a node only alice may touch with a child of the same,
    // a read-only node and one open to an address range.
    let mine = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    s.create(&root, b"", &open()).await.unwrap();
    s.create(&format!("{root}/open"), b"public", &open()).await.unwrap();
    s.create(&format!("{root}/secure"), b"secret", &mine).await.unwrap();
    s.create(&format!("{root}/secure/child"), b"more", &mine).await.unwrap();
    let read_only = [zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())];
    let ro = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&read_only));
    s.create(&format!("{root}/readonly"), b"ro", &ro).await.unwrap();
    let by_ip = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("ip", "127.0.0.0/8"))];
    let ip = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&by_ip));
    s.create(&format!("{root}/by-ip"), b"local", &ip).await.unwrap();
    let (source_acl, _) = s.get_acl(&format!("{root}/secure")).await.unwrap();
    assert_eq!(source_acl[0].scheme(), "digest");

    let base = ["--source", &a.address, "--target", &b.address, "--path", &root];
    let cmd = |extra: &[&str]| {
        let mut c = zkm();
        c.args(extra).args(base).env("RUST_LOG", "warn");
        c
    };

    // No credentials: refused before any write, the protected path named.
    let refused = cmd(&["copy"]).output().unwrap();
    assert_eq!(code(&refused), 5, "{}", text(&refused));
    assert!(
        text(&refused).contains(&format!("source {root}/secure: not authorized")),
        "{}",
        text(&refused)
    );
    assert!(t_anyone.check_stat(&root).await.unwrap().is_none(), "nothing written");

    // Skipping what cannot be read copies the rest and lists it.
    let partial = cmd(&["copy", "--skip-unreadable", "--json"]).output().unwrap();
    assert_eq!(code(&partial), 0, "{}", text(&partial));
    let report: serde_json::Value = serde_json::from_slice(&partial.stdout).unwrap();
    assert_eq!(report["unreadable"].as_array().unwrap().len(), 1, "{report}");
    assert!(t_anyone.check_stat(&format!("{root}/open")).await.unwrap().is_some());
    assert!(t_anyone.check_stat(&format!("{root}/secure")).await.unwrap().is_none());

    // Source credentials only: the copied ACL would lock the target's
    // identity out of creating the child, so nothing is written.
    let dir = std::env::temp_dir().join(format!("zkm-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let creds = dir.join("source.auth");
    std::fs::write(&creds, "# alice\ndigest:alice:s3cret\n").unwrap();
    let creds = creds.display().to_string();
    let locked_out = cmd(&["copy", "--source-auth-file", &creds]).output().unwrap();
    assert_eq!(code(&locked_out), 5, "{}", text(&locked_out));
    assert!(
        text(&locked_out).contains(&format!(
            "{root}/secure/child: creating it needs CREATE on {root}/secure"
        )),
        "{}",
        text(&locked_out)
    );
    assert!(
        t_anyone.check_stat(&format!("{root}/secure")).await.unwrap().is_none(),
        "nothing written"
    );

    // Both credentials: everything, ACLs exactly.
    let full = cmd(&["copy", "--source-auth-file", &creds])
        .env("ZK_MIGRATE_TARGET_AUTH", "digest:alice:s3cret")
        .output()
        .unwrap();
    assert_eq!(code(&full), 0, "{}", text(&full));
    assert!(
        !text(&full).contains("s3cret"),
        "the password is never printed: {}",
        text(&full)
    );
    for rel in ["/secure", "/secure/child", "/readonly", "/by-ip", "/open"] {
        let p = format!("{root}{rel}");
        let (sa, _) = s.get_acl(&p).await.unwrap();
        let (ta, _) = t_alice.get_acl(&p).await.unwrap();
        assert_eq!(sa, ta, "{p}: the ACL copied exactly");
        let (sd, _) = s.get_data(&p).await.unwrap();
        let (td, _) = t_alice.get_data(&p).await.unwrap();
        assert_eq!(sd, td, "{p}");
    }
    assert!(
        matches!(
            t_anyone.get_data(&format!("{root}/secure")).await,
            Err(zk::Error::NoAuth)
        ),
        "still protected on the target"
    );

    // Verify: with credentials equal; without them, exit 5 naming both sides.
    let equal = cmd(&[
        "verify",
        "--source-auth",
        "digest:alice:s3cret",
        "--target-auth",
        "digest:alice:s3cret",
    ])
    .output()
    .unwrap();
    assert_eq!(code(&equal), 0, "{}", text(&equal));
    assert!(text(&equal).contains("equal"), "{}", text(&equal));
    let blind = cmd(&["verify"]).output().unwrap();
    assert_eq!(code(&blind), 5, "{}", text(&blind));
    assert!(text(&blind).contains("target"), "{}", text(&blind));
    let bad_cred = cmd(&["verify", "--source-auth", "digest"]).output().unwrap();
    assert_eq!(code(&bad_cred), 2, "{}", text(&bad_cred));

    let _ = std::fs::remove_dir_all(&dir);
    for c in [&s, &t_alice] {
        for rel in ["/secure/child", "/secure", "/open", "/readonly", "/by-ip", ""] {
            let _ = c.delete(&format!("{root}{rel}"), None).await;
        }
    }
}

/// `openssl` run in `dir`; panics with its output when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate,
/// made with openssl in `dir`.
fn certificates(dir: &std::path::Path) {
    let subj = |cn: &str| format!("/CN={cn}");
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &subj(ca),
            ],
        );
    }
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &subj(who),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.pem"),
                "-extfile",
                &format!("{who}.ext"),
            ],
        );
    }
    let keystore = [
        std::fs::read(dir.join("server.key")).unwrap(),
        std::fs::read(dir.join("server.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("server-keystore.pem"), keystore).unwrap();
}

/// An ensemble reached only over TLS: a real ZooKeeper with a
/// `secureClientPort` (Netty) that requires client certificates, made in
/// the test with openssl. The CLI copies and verifies over it with the CA
/// and a client certificate; without TLS, with another CA or without a
/// client certificate it cannot connect (exit 4), and a key without its
/// certificate is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_migrate_cli_copies_over_tls_with_a_client_certificate() {
    let _beside = crate::HEAVY.read().await;
    let Some((a, _)) = zookeeper_pair("zk_migrate_cli_tls") else {
        return;
    };
    let netty: Vec<String> = [
        "netty-buffer",
        "netty-codec",
        "netty-common",
        "netty-handler",
        "netty-resolver",
        "netty-transport",
        "netty-transport-native-epoll",
        "netty-transport-native-unix-common",
    ]
    .iter()
    .map(|j| format!("/usr/share/java/{j}.jar"))
    .collect();
    if netty.iter().any(|j| !std::path::Path::new(j).exists()) {
        orchestrator_testkit::missing(
            "Netty's jars (Debian's zookeeper depends on them)",
            "zk-migrate over TLS",
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("zkm-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let at = |f: &str| dir.join(f).display().to_string();
    let secure = free_port();
    let config = format!(
        "secureClientPort={secure}\nsecureClientPortAddress=127.0.0.1\n\
         serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
         ssl.keyStore.location={}\nssl.keyStore.type=PEM\nssl.trustStore.location={}\nssl.trustStore.type=PEM\n\
         ssl.clientAuth=need\n",
        at("server-keystore.pem"),
        at("ca.pem")
    );
    let jars: Vec<&str> = netty.iter().map(String::as_str).collect();
    let Some(_tls_server) = orchestrator_testkit::ZkServer::start_with("zk-migrate over TLS", &config, &jars, &[])
    else {
        return;
    };
    let root = format!("/tls-{}", std::process::id());
    let s = client(&a.address).await;
    populate(&s, &root, 20, 10).await;

    let target = format!("127.0.0.1:{secure}");
    let base = [
        "--source",
        &a.address,
        "--target",
        &target,
        "--path",
        &root,
        "--connect-timeout",
        "3s",
    ];
    let (ca, other_ca, cert, key) = (at("ca.pem"), at("other-ca.pem"), at("client.pem"), at("client.key"));
    let tls = [
        "--target-tls-ca",
        &ca,
        "--target-tls-cert",
        &cert,
        "--target-tls-key",
        &key,
    ];
    let cmd = |extra: &[&str]| zkm().args(extra).args(base).env("RUST_LOG", "warn").output().unwrap();

    let copied = cmd(&[&["copy", "--json"][..], &tls[..]].concat());
    assert_eq!(code(&copied), 0, "{}", text(&copied));
    let report: serde_json::Value = serde_json::from_slice(&copied.stdout).unwrap();
    assert_eq!(report["created"], 20 * 10 + 20 + 1, "{report}");
    let verified = cmd(&[&["verify"][..], &tls[..]].concat());
    assert_eq!(code(&verified), 0, "{}", text(&verified));
    assert!(text(&verified).contains("equal"), "{}", text(&verified));

    let plain = cmd(&["verify"]);
    assert_eq!(code(&plain), 4, "plaintext to the TLS port: {}", text(&plain));
    let wrong_ca = cmd(&[
        "verify",
        "--target-tls-ca",
        &other_ca,
        "--target-tls-cert",
        &cert,
        "--target-tls-key",
        &key,
    ]);
    assert_eq!(code(&wrong_ca), 4, "a server the CA did not sign: {}", text(&wrong_ca));
    let no_cert = cmd(&["verify", "--target-tls-ca", &ca]);
    assert_eq!(code(&no_cert), 4, "no client certificate: {}", text(&no_cert));
    let key_only = cmd(&["verify", "--target-tls-key", &key]);
    assert_eq!(code(&key_only), 2, "{}", text(&key_only));
    let missing_file = cmd(&["verify", "--target-tls-ca", &at("nope.pem")]);
    assert_eq!(code(&missing_file), 2, "{}", text(&missing_file));
    assert!(
        text(&missing_file).contains("cannot read the TLS CA"),
        "{}",
        text(&missing_file)
    );

    let _ = std::fs::remove_dir_all(&dir);
}

/// SASL DIGEST-MD5 as ensembles protected by a JAAS `Server` section use
/// it: a real ZooKeeper with the SASL provider, a node whose ACL is
/// `sasl:bob`. Without a login it cannot be read (exit 5); with bob's
/// login from a JAAS file (`Client` section, as ZooKeeper's own clients
/// read it) for the source only, the copied ACL would lock the target's
/// identity out (exit 5, nothing written); with it for both, everything
/// is copied, the ACL exactly, and verify agrees. A wrong password cannot
/// connect (exit 4); a Kerberos section is refused by name (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_migrate_cli_logs_in_with_sasl_digest_md5_from_a_jaas_file() {
    let _beside = crate::HEAVY.read().await;
    if zookeeper_pair("zk_migrate_cli_sasl").is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("zkm-sasl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let module = "org.apache.zookeeper.server.auth.DigestLoginModule required";
    let server_jaas = file(
        "server.jaas",
        &format!("Server {{\n  {module}\n  user_bob=\"bobsecret\";\n}};\n"),
    );
    let client_jaas = file(
        "client.jaas",
        &format!("Client {{\n  {module}\n  username=\"bob\"\n  password=\"bobsecret\";\n}};\n"),
    );
    let wrong_jaas = file(
        "wrong.jaas",
        &format!("Client {{\n  {module}\n  username=\"bob\"\n  password=\"guess\";\n}};\n"),
    );
    let kerberos = file(
        "krb.jaas",
        "Client {\n  com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;\n};\n",
    );
    let Some(server) = orchestrator_testkit::ZkServer::start_with(
        "zk-migrate with SASL",
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
        &[],
        &[&format!("-Djava.security.auth.login.config={server_jaas}")],
    ) else {
        return;
    };
    let bob = zk::Client::connector()
        .with_sasl(zk::SaslOptions::digest_md5("bob", "bobsecret"))
        .connect(&server.address())
        .await
        .expect("bob logs in");
    let only_bob = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("sasl", "bob"))];
    let bobs = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&only_bob));
    for p in ["/src", "/dst", "/src/tree"] {
        bob.create(p, b"", &open()).await.unwrap();
    }
    bob.create("/src/tree/secret", b"bob's", &bobs).await.unwrap();
    bob.create("/src/tree/secret/kid", b"also bob's", &bobs).await.unwrap();

    let (source, target) = (format!("{}/src", server.address()), format!("{}/dst", server.address()));
    let base = [
        "--source",
        &source,
        "--target",
        &target,
        "--path",
        "/tree",
        "--connect-timeout",
        "3s",
    ];
    let cmd = |extra: &[&str]| zkm().args(extra).args(base).env("RUST_LOG", "warn").output().unwrap();

    let blind = cmd(&["copy"]);
    assert_eq!(code(&blind), 5, "{}", text(&blind));
    assert!(
        text(&blind).contains("/src/tree/secret: not authorized"),
        "{}",
        text(&blind)
    );
    let half = cmd(&["copy", "--source-jaas", &client_jaas]);
    assert_eq!(code(&half), 5, "{}", text(&half));
    assert!(
        text(&half).contains("needs CREATE on /dst/tree/secret"),
        "{}",
        text(&half)
    );
    assert!(bob.check_stat("/dst/tree").await.unwrap().is_none(), "nothing written");

    let both = cmd(&["copy", "--source-jaas", &client_jaas, "--target-jaas", &client_jaas]);
    assert_eq!(code(&both), 0, "{}", text(&both));
    assert!(!text(&both).contains("bobsecret"), "{}", text(&both));
    for rel in ["/secret", "/secret/kid"] {
        let (sa, _) = bob.get_acl(&format!("/src/tree{rel}")).await.unwrap();
        let (ta, _) = bob.get_acl(&format!("/dst/tree{rel}")).await.unwrap();
        assert_eq!(sa, ta, "{rel}: the ACL copied exactly");
        let (sd, _) = bob.get_data(&format!("/src/tree{rel}")).await.unwrap();
        let (td, _) = bob.get_data(&format!("/dst/tree{rel}")).await.unwrap();
        assert_eq!(sd, td, "{rel}");
    }
    let verified = cmd(&["verify", "--source-jaas", &client_jaas, "--target-jaas", &client_jaas]);
    assert_eq!(code(&verified), 0, "{}", text(&verified));

    let wrong = cmd(&["verify", "--source-jaas", &wrong_jaas, "--target-jaas", &client_jaas]);
    assert_eq!(code(&wrong), 4, "a wrong password: {}", text(&wrong));
    let krb = cmd(&["verify", "--source-jaas", &kerberos]);
    assert_eq!(code(&krb), 2, "{}", text(&krb));
    assert!(text(&krb).contains("only DIGEST-MD5"), "{}", text(&krb));
    let _ = std::fs::remove_dir_all(&dir);
}
