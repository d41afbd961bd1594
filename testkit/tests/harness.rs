//! Proof that the harness's servers are real: a ZooKeeper round trip with
//! `zookeeper-client` and a container run with `bollard`, against the servers
//! `scripts/test` starts.

use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;
use zookeeper_client as zk;

#[tokio::test]
async fn zookeeper_create_read_watch_delete() {
    let Some(env) = orchestrator_testkit::zookeeper("zookeeper_create_read_watch_delete") else {
        return;
    };
    let client = zk::Client::connect(&env.address).await.expect("connect to ZooKeeper");
    let path = format!("/harness-{}", std::process::id());
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

    let (stat, _) = client.create(&path, b"hello", &opts).await.expect("create");
    assert_eq!(stat.version, 0);
    let (data, _, watcher) = client.get_and_watch_data(&path).await.expect("get and watch");
    assert_eq!(data, b"hello");

    let mut recursive = client
        .watch(&path, zk::AddWatchMode::PersistentRecursive)
        .await
        .expect("watch");
    client.set_data(&path, b"world", Some(0)).await.expect("set");
    let event = tokio::time::timeout(Duration::from_secs(10), watcher.changed())
        .await
        .expect("watch fired");
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
    assert_eq!(event.path, path);
    let event = tokio::time::timeout(Duration::from_secs(10), recursive.changed())
        .await
        .expect("persistent");
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);

    client
        .create(&format!("{path}/child"), b"", &opts)
        .await
        .expect("create child");
    let event = tokio::time::timeout(Duration::from_secs(10), recursive.changed())
        .await
        .expect("child event");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeCreated, &*format!("{path}/child"))
    );

    client
        .delete(&format!("{path}/child"), None)
        .await
        .expect("delete child");
    client.delete(&path, Some(1)).await.expect("delete");
    assert!(matches!(client.get_data(&path).await, Err(zk::Error::NoNode)));
    println!("ZooKeeper at {} ran create/read/watch/delete for real", env.address);
}

#[tokio::test]
async fn docker_runs_busybox_and_reports_exit_codes() {
    let Some(env) = orchestrator_testkit::docker("docker_runs_busybox_and_reports_exit_codes") else {
        return;
    };
    let socket = env.socket.to_string_lossy();
    let docker = bollard::Docker::connect_with_unix(&socket, 30, bollard::API_DEFAULT_VERSION)
        .expect("docker client")
        .negotiate_version()
        .await
        .expect("negotiate API version");

    for (exit, expect) in [(0, None), (3, Some(3))] {
        let name = format!("harness-{}-{exit}", std::process::id());
        let body = bollard::models::ContainerCreateBody {
            image: Some(env.busybox_image.clone()),
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("echo hello from busybox; exit {exit}"),
            ]),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        docker.create_container(Some(opts), body).await.expect("create");
        docker.start_container(&name, None).await.expect("start");

        let waited = docker
            .wait_container(&name, None::<WaitContainerOptions>)
            .next()
            .await
            .expect("one answer");
        // A non-zero exit arrives as an error value, not as a normal result.
        let code = match waited {
            Ok(r) => {
                assert_eq!(r.status_code, 0);
                None
            }
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => Some(code),
            Err(e) => panic!("unexpected wait error: {e}"),
        };
        assert_eq!(code, expect);

        let logs: Vec<String> = docker
            .logs(
                &name,
                Some(LogsOptionsBuilder::default().stdout(true).stderr(true).build()),
            )
            .map(|chunk| chunk.expect("log chunk").to_string())
            .collect()
            .await;
        assert_eq!(logs.concat(), "hello from busybox\n");

        let rm = RemoveContainerOptionsBuilder::default().force(true).build();
        docker.remove_container(&name, Some(rm)).await.expect("remove");
        assert!(
            docker.inspect_container(&name, None).await.is_err(),
            "container is gone"
        );
    }
    println!("dockerd at {} ran {} for real", env.host, env.busybox_image);
}

#[test]
fn a_private_zookeeper_stops_and_restarts_with_its_data() {
    let Some(mut server) = orchestrator_testkit::ZkServer::start("a_private_zookeeper_stops_and_restarts") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = server.address();
    rt.block_on(async {
        let c = zk::Client::connect(&addr).await.expect("connect");
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        c.create("/kept", b"1", &opts).await.expect("create");
    });
    server.stop();
    assert!(
        orchestrator_testkit::four_letter_word(&addr, "ruok").is_err(),
        "server is down"
    );
    server.restart();
    rt.block_on(async {
        let c = zk::Client::connect(&addr).await.expect("reconnect");
        assert_eq!(c.get_data("/kept").await.expect("data survived").0, b"1");
    });
}
