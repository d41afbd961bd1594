//! Facts about the host the probe runs on, read from procfs.

use std::path::Path;

use procfs::Current;
use serde::Serialize;

use crate::{Error, Result};

/// What the probe reports about its host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostInfo {
    /// The kernel's host name.
    pub hostname: String,
    /// `PRETTY_NAME` of `/etc/os-release`, or `Linux`.
    pub os: String,
    /// Kernel release (`uname -r`).
    pub kernel_version: String,
    /// CPU architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Total memory in bytes.
    pub mem_total_bytes: u64,
    /// Memory available to new processes, in bytes.
    pub mem_available_bytes: Option<u64>,
    /// 1, 5 and 15 minute load averages.
    pub load: [f32; 3],
    /// Seconds since boot.
    pub uptime_secs: f64,
}

fn read_trimmed(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn os_pretty_name(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

impl HostInfo {
    /// Reads the host's facts from `/proc` and `/etc/os-release`.
    ///
    /// # Errors
    /// [`Error::Read`] or [`Error::Proc`] when procfs cannot be read.
    pub fn collect() -> Result<HostInfo> {
        let proc_err = |what: &'static str| move |source: procfs::ProcError| Error::Proc { what, source };
        let mem = procfs::Meminfo::current().map_err(proc_err("meminfo"))?;
        let load = procfs::LoadAverage::current().map_err(proc_err("loadavg"))?;
        let uptime = procfs::Uptime::current().map_err(proc_err("uptime"))?;
        let cpus = procfs::CpuInfo::current().map_err(proc_err("cpuinfo"))?.num_cores();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| os_pretty_name(&t))
            .unwrap_or_else(|| "Linux".to_string());
        Ok(HostInfo {
            hostname: read_trimmed(Path::new("/proc/sys/kernel/hostname"))?,
            os,
            kernel_version: read_trimmed(Path::new("/proc/sys/kernel/osrelease"))?,
            arch: std::env::consts::ARCH.to_string(),
            cpus,
            mem_total_bytes: mem.mem_total,
            mem_available_bytes: mem.mem_available,
            load: [load.one, load.five, load.fifteen],
            uptime_secs: uptime.uptime,
        })
    }
}

/// Counters read at the previous cycle, for rates.
#[derive(Clone, Debug, Default)]
struct Counters {
    at_ms: u64,
    cpu_busy: u64,
    cpu_total: u64,
    net_rx: u64,
    net_tx: u64,
    disk_read: u64,
    disk_write: u64,
}

/// Collects the host topology: facts, addresses, disks and usage rates.
#[derive(Debug)]
pub struct HostCollector {
    host: String,
    prev: Option<Counters>,
}

/// Busy and total jiffies from the `cpu` line of `/proc/stat`.
pub fn parse_cpu_line(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Received and sent bytes over all interfaces but loopback, from `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = rest.split_ascii_whitespace().filter_map(|x| x.parse().ok()).collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

/// Bytes read and written by whole disks (not partitions), from `/proc/diskstats`.
pub fn parse_diskstats(text: &str) -> (u64, u64) {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            let name = *f.get(2)?;
            let virtual_dev = name.starts_with("loop") || name.starts_with("ram") || name.starts_with("dm-");
            let whole_disk = std::path::Path::new(&format!("/sys/block/{name}")).exists();
            if virtual_dev || !whole_disk {
                return None;
            }
            Some((
                f.get(5)?.parse::<u64>().ok()? * 512,
                f.get(9)?.parse::<u64>().ok()? * 512,
            ))
        })
        .fold((0, 0), |(r, w), (a, b)| (r + a, w + b))
}

/// Mounted local filesystems: (mount point, type), from `/proc/mounts`.
pub fn parse_mounts(text: &str) -> Vec<(String, String)> {
    const REAL: [&str; 8] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat"];
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            let (point, fstype) = (*f.get(1)?, *f.get(2)?);
            REAL.contains(&fstype)
                .then(|| (point.replace("\\040", " "), fstype.to_string()))
        })
        .collect()
}

impl HostCollector {
    /// Collects for the host named `host`.
    pub fn new(host: &str) -> HostCollector {
        HostCollector {
            host: host.to_string(),
            prev: None,
        }
    }

    /// One cycle: adds the host node to `report`.
    ///
    /// # Errors
    /// [`Error::Read`] or [`Error::Proc`] when procfs cannot be read.
    pub fn collect_into(&mut self, report: &mut orchestrator_core::report::Report, now_ms: u64) -> Result<()> {
        use orchestrator_core::report::{ids, Node};
        let info = HostInfo::collect()?;
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let (cpu_busy, cpu_total) = parse_cpu_line(&read("/proc/stat")).unwrap_or((0, 0));
        let (net_rx, net_tx) = parse_net_dev(&read("/proc/net/dev"));
        let (disk_read, disk_write) = parse_diskstats(&read("/proc/diskstats"));
        let now = Counters {
            at_ms: now_ms,
            cpu_busy,
            cpu_total,
            net_rx,
            net_tx,
            disk_read,
            disk_write,
        };
        let mut n = Node::default()
            .with_latest("hostname", info.hostname.clone(), now_ms)
            .with_latest("os", info.os.clone(), now_ms)
            .with_latest("kernel_version", info.kernel_version.clone(), now_ms)
            .with_latest("arch", info.arch.clone(), now_ms)
            .with_latest("cpus", info.cpus.to_string(), now_ms)
            .with_latest("mem_total_bytes", info.mem_total_bytes.to_string(), now_ms)
            .with_latest("uptime_secs", format!("{:.0}", info.uptime_secs), now_ms)
            .with_latest(
                "load",
                format!("{:.2} {:.2} {:.2}", info.load[0], info.load[1], info.load[2]),
                now_ms,
            );
        n.set_metric("load1", now_ms, f64::from(info.load[0]));
        if let Some(avail) = info.mem_available_bytes {
            let used = info.mem_total_bytes.saturating_sub(avail);
            n.set_metric("memory_usage_bytes", now_ms, used as f64);
            n.set_metric(
                "memory_usage_percent",
                now_ms,
                used as f64 * 100.0 / info.mem_total_bytes.max(1) as f64,
            );
        }
        if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
            for a in addrs {
                let Some(addr) = a.address else { continue };
                let ip = addr
                    .as_sockaddr_in()
                    .map(|s| std::net::IpAddr::V4(s.ip()))
                    .or_else(|| addr.as_sockaddr_in6().map(|s| std::net::IpAddr::V6(s.ip())));
                if let Some(ip) = ip.filter(|ip| !ip.is_loopback()) {
                    n.add_to_set("local_networks", format!("{}:{ip}", a.interface_name));
                    n.add_to_set("ips", ip.to_string());
                }
            }
        }
        for (point, fstype) in parse_mounts(&read("/proc/mounts")) {
            if let Ok(v) = nix::sys::statvfs::statvfs(point.as_str()) {
                // Block counts are `fsblkcnt_t`: u64 here, narrower on some targets.
                #[allow(clippy::useless_conversion)]
                let (frag, blocks, avail) = (
                    u64::from(v.fragment_size()),
                    u64::from(v.blocks()),
                    u64::from(v.blocks_available()),
                );
                let total = blocks * frag;
                let free = avail * frag;
                if total == 0 {
                    continue;
                }
                n.add_to_set("disks", format!("{point} ({fstype})"));
                n.set_latest(&format!("disk_total_bytes:{point}"), total.to_string(), now_ms);
                n.set_metric(
                    &format!("disk_used_percent:{point}"),
                    now_ms,
                    total.saturating_sub(free) as f64 * 100.0 / total as f64,
                );
            }
        }
        if let Some(p) = &self.prev {
            let secs = now_ms.saturating_sub(p.at_ms) as f64 / 1000.0;
            let dt = now.cpu_total.saturating_sub(p.cpu_total);
            if dt > 0 {
                let busy = now.cpu_busy.saturating_sub(p.cpu_busy);
                n.set_metric("cpu_usage_percent", now_ms, busy as f64 * 100.0 / dt as f64);
            }
            if secs > 0.0 {
                let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                n.set_metric("network_rx_bytes_per_second", now_ms, rate(now.net_rx, p.net_rx));
                n.set_metric("network_tx_bytes_per_second", now_ms, rate(now.net_tx, p.net_tx));
                n.set_metric("disk_read_bytes_per_second", now_ms, rate(now.disk_read, p.disk_read));
                n.set_metric(
                    "disk_write_bytes_per_second",
                    now_ms,
                    rate(now.disk_write, p.disk_write),
                );
            }
        }
        self.prev = Some(now);
        report.topologies.host.insert(ids::host(&self.host), n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let h = HostInfo::collect().unwrap();
        let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        assert!(!h.hostname.is_empty());
        if !hostname.trim().is_empty() {
            assert_eq!(h.hostname, hostname.trim());
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        assert!(h.cpus >= cores, "{} < {cores}", h.cpus);
        assert!(h.mem_total_bytes > 64 << 20);
        assert!(h.uptime_secs > 0.0);
        assert!(h.kernel_version.chars().next().is_some_and(|c| c.is_ascii_digit()));
    }

    #[test]
    fn counters_parse() {
        assert_eq!(
            parse_cpu_line("cpu  10 0 10 70 10 0 0 0 0 0\ncpu0 1 1 1 1\n"),
            Some((20, 100))
        );
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 500 5 0 0 0 0 0 0 700 7 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(dev), (500, 700));
        let mounts = "/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /data\\040x xfs rw 0 0\n";
        assert_eq!(
            parse_mounts(mounts),
            vec![
                ("/".to_string(), "ext4".to_string()),
                ("/data x".to_string(), "xfs".to_string())
            ]
        );
    }

    #[test]
    fn collects_this_host_with_rates_on_the_second_cycle() {
        let mut c = HostCollector::new("h");
        let mut r = orchestrator_core::report::Report::new("p", "h", 0);
        c.collect_into(&mut r, 1_000).unwrap();
        // CPU counters move in 10 ms jiffies.
        std::thread::sleep(std::time::Duration::from_millis(60));
        c.collect_into(&mut r, 2_000).unwrap();
        let n = &r.topologies.host.nodes["h"];
        assert!(n.latest("kernel_version").is_some());
        assert!(n.metrics.contains_key("cpu_usage_percent"));
        assert!(n.metrics.contains_key("memory_usage_percent"));
        assert!(n.metrics.contains_key("network_rx_bytes_per_second"));
    }

    #[test]
    fn os_release_parsing() {
        let t = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(os_pretty_name(t).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(os_pretty_name("ID=x\n"), None);
    }
}
