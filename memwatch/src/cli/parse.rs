//! The value parsers of the command line, and the values they return: a bad value is refused
//! with a message that shows it and says what is accepted (clap adds the option's name).

use std::{net::SocketAddr, time::Duration};

use crate::private::Secret;

/// A time on the command line: from the recording's start, or a wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// This long after the recording started.
    FromStart(Duration),
    /// Nanoseconds since the Unix epoch.
    At(i64),
}

impl TimeArg {
    /// Nanoseconds since the Unix epoch, given when the recording started; `None` when the time
    /// is relative and the start is not known.
    pub fn resolve(self, started_ns: Option<i64>) -> Option<i64> {
        match self {
            Self::At(ns) => Some(ns),
            Self::FromStart(d) => started_ns
                .map(|s| s.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))),
        }
    }
}

/// Seconds from a recording's start (`90`, `1.5`, `500ms`, `2m`, `0`) or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<TimeArg, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t
            .timestamp_nanos_opt()
            .map(TimeArg::At)
            .ok_or_else(|| format!("{s:?} is outside the years 1677 to 2262"));
    }
    let bad = || {
        format!(
            "{s:?} is neither seconds from the recording's start (90, 1.5, 500ms, 2m) nor an \
             RFC 3339 time (2026-05-19T08:00:00Z)"
        )
    };
    match s.parse::<f64>() {
        Ok(secs) if (0.0..1e9).contains(&secs) => {
            Ok(TimeArg::FromStart(Duration::from_secs_f64(secs)))
        }
        Ok(_) => Err(bad()),
        Err(_) => humantime::parse_duration(s)
            .map(TimeArg::FromStart)
            .map_err(|_| bad()),
    }
}

pub(super) fn parse_secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() {
        Err("an empty token guards nothing: give a long random one (openssl rand -hex 16)".into())
    } else {
        Ok(Secret::new(s))
    }
}

pub(super) fn parse_allow_host(s: &str) -> Result<String, String> {
    match crate::views::server::guard::split_host(s) {
        Some(_) => Ok(s.trim().to_owned()),
        None => Err(format!(
            "{s:?} is not a host name: give NAME or NAME:PORT (memwatch.example, \
             10.0.0.5:7070, [fd00::5]:7070), no scheme or path"
        )),
    }
}

pub(super) fn parse_max_routes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?}: the route bound must be a number from 1 to 10000"
        )),
    }
}

/// A share of one core: `2%`, `0.5%` (or `2`, a percentage too), from 0.1% to 100%; returned
/// as a fraction.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    match number.parse::<f64>() {
        Ok(p) if (0.1..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!(
            "{s:?} is not a share of one core from 0.1% to 100% (2%, 0.5%); to follow no heap \
             at all, use --no-heap"
        )),
    }
}

/// The longest duration any option takes, in seconds (about 31 years).
pub const MAX_DURATION_SECS: u64 = 999_999_999;

/// Seconds as a number (`10`, `0.5`) or a duration with a unit (`500ms`, `2m`), greater than
/// zero and at most [`MAX_DURATION_SECS`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let too_long = || {
        format!(
            "{s:?} is longer than the longest duration memwatch takes, {MAX_DURATION_SECS} \
             seconds (about 31 years); give a shorter one, or none to stop with Ctrl-C"
        )
    };
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_nan() => {
            return Err(format!(
                "{s:?} is not a duration; use e.g. 10, 1.5, 500ms or 2m"
            ));
        }
        Ok(secs) if secs < 0.0 => {
            return Err(format!(
                "{s:?} is negative: give a duration greater than zero (10, 1.5, 500ms, 2m)"
            ));
        }
        // `MAX_DURATION_SECS` is exact as an f64; infinity is above it.
        Ok(secs) if secs > MAX_DURATION_SECS as f64 => return Err(too_long()),
        Ok(secs) => Duration::from_secs_f64(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration ({e}); use e.g. 10, 1.5, 500ms or 2m"))?,
    };
    if d > Duration::from_secs(MAX_DURATION_SECS) {
        return Err(too_long());
    }
    if d.is_zero() {
        return Err(format!("{s:?}: the duration must be greater than zero"));
    }
    Ok(d)
}

/// The shortest `--sample-interval`.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// `--sample-interval`: a duration of at least [`MIN_SAMPLE_INTERVAL`].
pub fn parse_sample_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_SAMPLE_INTERVAL {
        return Err(format!(
            "{:?} is shorter than the shortest sample interval, 10ms: each sample reads /proc \
             for every traced process, and more than 100 samples a second cost the machine CPU \
             without showing more; give 10ms or more (the default is 100ms)",
            s.trim()
        ));
    }
    Ok(d)
}

/// A PID: a positive integer (whether it names a process is checked before recording).
pub fn parse_pid(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(format!(
            "PID must be a positive integer, got {s}; `pgrep NAME` or `ps -e` shows PIDs"
        )),
    }
}

/// An address to listen on: `IP:PORT`, or `HOST:PORT` with a name this machine resolves (its
/// first loopback address if it has one, as `localhost` does, else its first address).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let t = s.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let accepted = "give IP:PORT (127.0.0.1:7070, [::1]:7070, 0.0.0.0:7070) or HOST:PORT with a \
                    name this machine resolves (localhost:7070); port 0 picks a free port";
    let port_given = t
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_given {
        return Err(format!("{t:?} has no port: {accepted}"));
    }
    let addrs: Vec<SocketAddr> = match t.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Err(format!("{t:?} does not resolve ({e}): {accepted}")),
    };
    addrs
        .iter()
        .find(|a| a.ip().is_loopback() && a.is_ipv4())
        .or_else(|| addrs.iter().find(|a| a.ip().is_loopback()))
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{t:?} resolves to no address: {accepted}"))
}

/// A byte count from 4 KiB to 1 GiB: a number, or with a unit (`64KiB`, `1MiB`, `4k`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?} is not a size; use e.g. 65536, 64KiB or 1MiB"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; use e.g. 65536, 64KiB or 1MiB"))?;
    let bytes = n.saturating_mul(unit_bytes);
    if !(4096..=1 << 30).contains(&bytes) {
        return Err(format!("{s:?}: the size must be from 4KiB to 1GiB"));
    }
    Ok(bytes)
}

pub(super) fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of MiB"))?;
    if !(1..=1024).contains(&n) || !n.is_power_of_two() {
        return Err(format!(
            "{n} MiB: the ring buffer must be a power of two from 1 to 1024 MiB"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("\"soon\""));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(
            parse_size("1k").unwrap_err(),
            "\"1k\": the size must be from 4KiB to 1GiB"
        );
        assert!(parse_size("lots").unwrap_err().contains("\"lots\""));
    }

    #[test]
    fn times() {
        let secs = |s: u64| Ok(TimeArg::FromStart(Duration::from_secs(s)));
        assert_eq!(parse_time("90"), secs(90));
        assert_eq!(parse_time("0"), secs(0));
        assert_eq!(parse_time("2m"), secs(120));
        assert_eq!(
            parse_time("1.5"),
            Ok(TimeArg::FromStart(Duration::from_millis(1500)))
        );
        assert_eq!(
            parse_time("2027-01-15T08:00:00Z"),
            Ok(TimeArg::At(1_800_000_000_000_000_000))
        );
        assert_eq!(
            parse_time("2027-01-15T09:00:00.5+01:00"),
            Ok(TimeArg::At(1_800_000_000_500_000_000))
        );
        for bad in ["-1", "soon", "2027-01-15"] {
            assert_eq!(
                parse_time(bad),
                Err(format!(
                    "{bad:?} is neither seconds from the recording's start (90, 1.5, 500ms, 2m) \
                     nor an RFC 3339 time (2026-05-19T08:00:00Z)"
                ))
            );
        }
        let later = TimeArg::FromStart(Duration::from_millis(1500));
        assert_eq!(later.resolve(Some(10)), Some(1_500_000_010));
        assert_eq!(later.resolve(None), None);
        assert_eq!(TimeArg::At(5).resolve(None), Some(5));
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_mib("8"), Ok(8));
        assert!(parse_ring_mib("3").is_err());
        assert!(parse_ring_mib("0").is_err());
    }

    #[test]
    fn durations_have_a_limit_and_intervals_a_floor() {
        let too_long = "\"1e9\" is longer than the longest duration memwatch takes, 999999999 \
                        seconds (about 31 years); give a shorter one, or none to stop with Ctrl-C";
        assert_eq!(parse_duration("1e9").unwrap_err(), too_long);
        assert!(parse_duration("inf").unwrap_err().contains("longer than"));
        assert!(
            parse_duration("NaN")
                .unwrap_err()
                .contains("is not a duration")
        );
        assert!(
            parse_duration("100years")
                .unwrap_err()
                .contains("longer than")
        );
        assert_eq!(
            parse_duration("999999999"),
            Ok(Duration::from_secs(MAX_DURATION_SECS))
        );
        assert_eq!(
            parse_sample_interval("1ns").unwrap_err(),
            "\"1ns\" is shorter than the shortest sample interval, 10ms: each sample reads /proc \
             for every traced process, and more than 100 samples a second cost the machine CPU \
             without showing more; give 10ms or more (the default is 100ms)"
        );
        assert_eq!(parse_sample_interval("10ms"), Ok(MIN_SAMPLE_INTERVAL));
    }

    #[test]
    fn listen_addresses_resolve_names() {
        let local = parse_listen("localhost:0").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 0, "{local}");
        assert_eq!(
            parse_listen("[::1]:7070"),
            Ok(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 7070)))
        );
        assert_eq!(
            parse_listen("localhost").unwrap_err(),
            "\"localhost\" has no port: give IP:PORT (127.0.0.1:7070, [::1]:7070, 0.0.0.0:7070) \
             or HOST:PORT with a name this machine resolves (localhost:7070); port 0 picks a free \
             port"
        );
        assert!(parse_listen(":7070").unwrap_err().contains("has no port"));
    }
}
