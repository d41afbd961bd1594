//! A busy host for probe benchmarks: many processes, many loopback TCP
//! connections, many containers — all real, all removed on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// Raises the soft open-file limit to the hard one (children inherit it).
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((_, hard)) => {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
            hard
        }
        Err(_) => 1024,
    }
}

/// Processes and connections that live as long as this value.
#[derive(Debug)]
pub struct HostLoad {
    sleepers: Vec<Child>,
    server: Option<Child>,
    clients: Vec<TcpStream>,
    containers: Vec<String>,
    docker_host: Option<String>,
}

const SERVER: &str = r"
import socket, sys, time
n = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 0))
s.listen(4096)
print(s.getsockname()[1], flush=True)
conns = []
while len(conns) < n:
    c, _ = s.accept()
    conns.append(c)
print('ok', flush=True)
time.sleep(3600)
";

impl HostLoad {
    /// Starts `processes` sleeping processes and `connections` established
    /// loopback TCP connections (the server side in one Python process,
    /// the clients in this one).
    ///
    /// # Errors
    /// When processes cannot be spawned or connections not opened (the
    /// open-file limit is raised first; see [`raise_fd_limit`]).
    pub fn spawn(processes: usize, connections: usize) -> std::io::Result<HostLoad> {
        raise_fd_limit();
        let mut load = HostLoad {
            sleepers: Vec::with_capacity(processes),
            server: None,
            clients: Vec::with_capacity(connections),
            containers: Vec::new(),
            docker_host: None,
        };
        for _ in 0..processes {
            load.sleepers.push(
                Command::new("sleep")
                    .arg("3600")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()?,
            );
        }
        if connections > 0 {
            let mut server = Command::new("python3")
                .args(["-c", SERVER, &connections.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()?;
            let mut lines =
                BufReader::new(server.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?).lines();
            load.server = Some(server);
            let port: u16 = lines
                .next()
                .transpose()?
                .and_then(|l| l.trim().parse().ok())
                .ok_or_else(|| std::io::Error::other("the connection server did not start"))?;
            for _ in 0..connections {
                load.clients.push(TcpStream::connect(("127.0.0.1", port))?);
            }
            match lines.next().transpose()? {
                Some(l) if l.trim() == "ok" => {}
                _ => return Err(std::io::Error::other("the connection server did not accept them all")),
            }
        }
        Ok(load)
    }

    /// Also starts `n` busybox containers (`sleep 3600`, no network) on the
    /// engine at `docker_host`.
    ///
    /// # Errors
    /// When the Docker CLI fails.
    pub fn with_containers(mut self, docker_host: &str, image: &str, n: usize) -> std::io::Result<HostLoad> {
        self.docker_host = Some(docker_host.to_string());
        let tag = std::process::id();
        for i in 0..n {
            let name = format!("hostload-{tag}-{i}");
            let out = Command::new("/usr/bin/docker")
                .args(["-H", docker_host, "run", "-d", "--network", "none", "--name", &name])
                .args(["--label", &format!("orchestrator.app_id=/load/app{}", i % 5)])
                .args([image, "sleep", "3600"])
                .stdin(Stdio::null())
                .output()?;
            if !out.status.success() {
                return Err(std::io::Error::other(format!(
                    "docker run: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            self.containers.push(name);
        }
        Ok(self)
    }

    /// Containers started.
    pub fn containers(&self) -> usize {
        self.containers.len()
    }
}

impl Drop for HostLoad {
    fn drop(&mut self) {
        // Reset rather than close: ten thousand closed connections would
        // linger in TIME_WAIT for a minute and burden the next run's
        // socket dumps (a benchmark run straight after would measure them).
        let reset = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        for c in &self.clients {
            let _ = nix::sys::socket::setsockopt(c, nix::sys::socket::sockopt::Linger, &reset);
        }
        self.clients.clear();
        for c in self.sleepers.iter_mut().chain(self.server.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let (Some(host), false) = (&self.docker_host, self.containers.is_empty()) {
            let _ = Command::new("/usr/bin/docker")
                .args(["-H", host, "rm", "-f"])
                .args(&self.containers)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
