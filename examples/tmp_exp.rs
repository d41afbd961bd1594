use zookeeper_client as zk;

#[tokio::main]
async fn main() {
    let c = zk::Client::connect("127.0.0.1:21811").await.unwrap();
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let _ = c.create("/zx", b"", &opts).await;
    let mut w = c.watch("/zx", zk::AddWatchMode::PersistentRecursive).await.unwrap();
    let (st, _) = c.create("/zx/a", b"1", &opts).await.unwrap();
    let ev = w.changed().await;
    println!("create mzxid {} event {:?}", st.mzxid, ev);
    let st = c.set_data("/zx/a", b"2", None).await.unwrap();
    let ev = w.changed().await;
    println!("set mzxid {} event {:?}", st.mzxid, ev);
    c.delete("/zx/a", None).await.unwrap();
    println!("{:?}", w.changed().await);
}
