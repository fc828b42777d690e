//! The standard `process_*` families (as every Prometheus client names
//! them), read from `/proc/self` at each scrape. Elsewhere than Linux the
//! collector reports nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reports the server process's CPU time, memory and file descriptors.
#[derive(Debug)]
pub struct ProcessCollector;

/// What `/proc/self` says about the process.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time in seconds since the epoch.
    pub start_time_seconds: Option<f64>,
}

/// Parses the fields of `/proc/<pid>/stat` that [`ProcessStats`] needs:
/// (utime + stime in ticks, starttime in ticks since boot, vsize, rss pages).
fn parse_stat(stat: &str) -> Option<(u64, u64, u64, u64)> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(22)?, field(23)?, field(24)?))
}

/// The soft "Max open files" of `/proc/<pid>/limits`.
fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The process's figures now, or `None` where `/proc` is not there.
#[cfg(target_os = "linux")]
pub fn stats() -> Option<ProcessStats> {
    use nix::unistd::{SysconfVar, sysconf};
    let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten()? as f64;
    let page = sysconf(SysconfVar::PAGE_SIZE).ok().flatten()? as u64;
    let (cpu, start, vsize, rss) = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    Some(ProcessStats {
        cpu_seconds: cpu as f64 / ticks,
        resident_bytes: rss * page,
        virtual_bytes: vsize,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
        max_fds: std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| parse_max_fds(&l)),
        start_time_seconds: boot.map(|b| b + start as f64 / ticks),
    })
}

/// The process's figures now, or `None` where `/proc` is not there.
#[cfg(not(target_os = "linux"))]
pub fn stats() -> Option<ProcessStats> {
    None
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = stats() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauge = |name: &str, help: &str, v: f64| -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size, in bytes",
            s.resident_bytes as f64,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size, in bytes",
            s.virtual_bytes as f64,
        )?;
        gauge(
            "process_open_fds",
            "Open file descriptors",
            s.open_fds as f64,
        )?;
        if let Some(max) = s.max_fds {
            gauge(
                "process_max_fds",
                "The limit on open file descriptors",
                max as f64,
            )?;
        }
        if let Some(start) = s.start_time_seconds {
            gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                start,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_past_a_command_name_with_spaces() {
        // Fields 3.. of a real /proc/<pid>/stat line, command "(my (odd) cmd)".
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 9 0 123456 987654321 2500 18446744073709551615";
        assert_eq!(parse_stat(line), Some((200, 123456, 987654321, 2500)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_soft_fd_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_cpu_and_descriptors() {
        let s = stats().expect("/proc/self is readable");
        assert!(s.resident_bytes > 0 && s.virtual_bytes >= s.resident_bytes);
        assert!(s.open_fds >= 3, "{s:?}");
        assert!(s.max_fds.is_some_and(|m| m >= s.open_fds));
    }
}
