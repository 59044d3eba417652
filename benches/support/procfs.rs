//! What a bench reads of a process from Linux's `/proc`: CPU time, by
//! thread too, and memory lines of `status`. `pid` is a number or `self`.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::process::Command;

use anyhow::Context as _;

/// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `/proc/.../stat` line: the command name and utime+stime in ticks.
fn stat_line(stat: &str) -> Option<(&str, f64)> {
    // The command name is in parentheses and may hold anything; the
    // fields after the last `)` cannot.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // utime and stime are fields 14 and 15; f[0] is field 3.
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((&stat[open + 1..close], ticks))
}

/// CPU seconds (user + system, all threads) the process has used so far.
pub fn cpu_secs(pid: impl Display, ticks_per_sec: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, ticks) = stat_line(&stat).context("unreadable /proc/PID/stat")?;
    Ok(ticks / ticks_per_sec)
}

/// CPU seconds so far by thread name, numbered threads of one kind
/// together (`sqlx-sqlite-wor` are SQLite's, `tokio-runtime-w` the async
/// workers).
#[allow(dead_code)]
pub fn cpu_by_thread(pid: impl Display, ticks_per_sec: f64) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = stat_line(&stat) {
            let kind = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
            *out.entry(kind.to_owned()).or_default() += ticks / ticks_per_sec;
        }
    }
    out
}

/// A `kB` line of `/proc/PID/status` (`VmHWM`, `VmRSS`), in KiB.
pub fn status_kib(pid: impl Display, key: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}
