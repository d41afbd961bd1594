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
    fn os_release_parsing() {
        let t = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(os_pretty_name(t).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(os_pretty_name("ID=x\n"), None);
    }
}
