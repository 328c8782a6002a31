//! The heap probes' budget: what they cost the targets stays within a share of one core
//! (`--heap-budget`, 2% by default).
//!
//! A uprobe costs its target a trap on every call, followed block or not: about 0.5 µs on an
//! emulated instruction here, and a Node.js server calls malloc and free about 60 times per
//! trivial request. No per-call hook can follow every call of a busy server, however well it is
//! placed. So the cost is measured (hits on each probe, counted by the kernel side, times what
//! a hit costs on this machine, [`super::calibrate`]) and kept within the budget by attaching
//! the probes only part of the time, with a token bucket:
//!
//! - tokens accrue at the budget's rate, up to [`BURST`] of it; while the probes are on, every
//!   hit spends its cost;
//! - when the tokens run out, memwatch stops following *new* requests ([`Action::Close`]), and
//!   detaches the probes once the requests it follows have ended, or after [`GRACE`]
//!   ([`Action::Detach`]);
//! - it attaches them again ([`Action::Attach`]) once the tokens pay for a window of at least
//!   [`MIN_WINDOW`] at the rate the probes last cost.
//!
//! A server whose heap calls cost less than the budget keeps the probes on throughout, and its
//! figures are exact. One that costs more is followed in windows: the requests that started in
//! one are followed whole, the others are sampled out, and the summary says what fraction of
//! the time and of the requests was followed.

use std::time::Duration;

use memwatch_common::heap::HEAP_SITES;

/// The default share of one core the heap probes may cost.
pub const DEFAULT_SHARE: f64 = 0.02;
/// How much of the budget can be saved up: this long at the budget's rate. Each window pays a
/// fixed toll besides its hits (attaching takes the targets' memory-map locks, and detaching
/// leaves breakpoints trapping for a few grace periods), so fewer, longer windows cost less.
pub const BURST: Duration = Duration::from_secs(10);
/// What the budget starts with, at its rate: a busy server is sampled from its first fraction
/// of a second (at ten times the budget, after 0.2 s), and a quiet one is followed throughout
/// anyway. Two seconds' worth, so that a server whose probes cost just under the budget on
/// average is not cut off by its first burst: with 250 ms' worth, Starlette under uvicorn at
/// 300 requests a second from 8 clients (90% of the budget, with bursts above it) lost its
/// probes in its first seconds on a loaded machine, and was sampled for the rest.
pub const START: Duration = Duration::from_secs(2);
/// What attaching and detaching one probe costs besides its hits, in CPU ns: the kernel
/// registers and unregisters a uprobe under a global lock, walking every process that maps the
/// file and waiting out an RCU grace period, and the targets (every process mapping glibc,
/// in fact) run slower meanwhile. Measured here: toggling five glibc probes on an idle process
/// cost a Node.js server at full speed 18% of its throughput for the 0.6 s it took, and over
/// 35-second runs at full speed each window on the server itself cost it about a second of
/// its throughput besides its hits (BENCHMARKS.md). Charged at each detach, so windows are
/// few and long.
pub const TOLL_PER_PROBE_NS: f64 = 250_000_000.0;

/// The shortest window worth opening.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);
/// How long, after the budget is spent, the probes stay on for the requests they follow (most
/// end within milliseconds; this bounds a long one's cost).
pub const GRACE: Duration = Duration::from_millis(100);

const N: usize = HEAP_SITES as usize;

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop following new requests (the probes stay on for the followed ones).
    Close,
    /// Detach the probes.
    Detach,
    /// Attach the probes and follow new requests again.
    Attach,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    On,
    Closing { since_ns: u64 },
    Off,
}

/// What the budget did, for the recording.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// Time the probes were attached, and time recorded, in ns.
    pub on_ns: u64,
    pub total_ns: u64,
    /// The probes' cost to the targets, in ns of CPU, estimated from their hits.
    pub cost_ns: f64,
    /// Hits on the probes, all sites together.
    pub hits: u64,
    /// Times the budget had the probes detached.
    pub pauses: u64,
}

impl Spent {
    /// The share of the time the probes were on (1 when nothing was recorded).
    pub fn on_fraction(&self) -> f64 {
        if self.total_ns == 0 {
            1.0
        } else {
            self.on_ns as f64 / self.total_ns as f64
        }
    }

    /// The probes' cost as a share of one core over the recording.
    pub fn cost_share(&self) -> f64 {
        if self.total_ns == 0 {
            0.0
        } else {
            self.cost_ns / self.total_ns as f64
        }
    }
}

/// The token bucket that keeps the heap probes within their budget.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The share of one core the probes may cost.
    share: f64,
    /// What a hit on each site costs the target, in ns.
    cost_ns: [f64; N],
    /// CPU ns the probes may still spend, and the most that can be saved up.
    tokens: f64,
    cap: f64,
    phase: Phase,
    last: Option<(u64, [u64; N])>,
    /// What the probes cost per ns of wall time while on, smoothed: how long a window the
    /// tokens pay for.
    rate_on: f64,
    /// Hits per ns of wall time on each site while on, smoothed: what a lingering breakpoint
    /// costs after a detach.
    site_rate: [f64; N],
    /// What a hit really costs the target, as a multiple of the calibrated cost: measured from
    /// the targets' own CPU time per request with the probes on and off ([`Budget::observed`]).
    /// A trap in a busy server finds its caches cold: here it cost 2 to 3 times what it costs
    /// in the calibration's tight loop.
    factor: f64,
    /// Estimated cost (calibrated, before `factor`) since the probes were last attached, the
    /// lingering breakpoints' included.
    window_cost: f64,
    spent: Spent,
}

impl Budget {
    /// A budget of `share` of one core, with the cost of a hit on each site.
    pub fn new(share: f64, cost_ns: [f64; N]) -> Self {
        let cap = share * BURST.as_nanos() as f64;
        Self {
            share,
            cost_ns,
            tokens: share * START.as_nanos() as f64,
            cap,
            phase: Phase::On,
            last: None,
            rate_on: 0.0,
            site_rate: [0.0; N],
            factor: 1.0,
            window_cost: 0.0,
            spent: Spent::default(),
        }
    }

    /// What a hit costs, as a multiple of the calibrated figure, as observed so far.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// A window ended and settled: the targets used `cpu_on` ns of CPU for `req_on` requests
    /// from the attach until the last breakpoint was surely gone, and `cpu_off` for `req_off`
    /// in the quiet period before it. (Attaching and detaching disturb the targets too, and are
    /// counted in this way.) The CPU a request
    /// took beyond its cost without probes is what the probes really cost: the calibrated
    /// estimate is corrected by it (smoothed, within 1 to 20 times), and the window's cost is
    /// charged again at the corrected rate.
    pub fn observed(&mut self, (cpu_on, req_on): (u64, u64), (cpu_off, req_off): (u64, u64)) {
        const MIN_REQUESTS: u64 = 50;
        let estimated = std::mem::take(&mut self.window_cost);
        if req_on < MIN_REQUESTS || req_off < MIN_REQUESTS || estimated <= 0.0 {
            return;
        }
        let per_request_off = cpu_off as f64 / req_off as f64;
        let extra = cpu_on as f64 - per_request_off * req_on as f64;
        let measured = (extra / estimated).clamp(1.0, 20.0);
        let old = self.factor;
        self.factor = 0.5 * old + 0.5 * measured;
        // The window was charged at the old factor: the difference now.
        let correction = estimated * (self.factor - old);
        self.tokens -= correction;
        self.spent.cost_ns += correction;
        tracing::debug!(
            measured,
            factor = self.factor,
            "what a heap probe's hit costs the targets, against its calibration"
        );
    }

    /// The probes were detached: the kernel removes their breakpoints one grace period
    /// (`grace_ns`) after another, in the order of `sites`, and until then each traps at its
    /// rate, with no program left to count it. What that costs is charged now, estimated.
    pub fn detached(&mut self, sites: &[memwatch_common::heap::HeapSite], grace_ns: u64) {
        let mut cost = 0.0;
        for (k, site) in sites.iter().enumerate() {
            let i = *site as usize;
            // Each of a site's probes (one per process) takes its share of the site's hits.
            let per_probe = sites.iter().filter(|s| **s == *site).count().max(1) as f64;
            cost += self.site_rate[i] / per_probe
                * self.cost_ns[i]
                * (k as f64 + 0.5)
                * grace_ns as f64;
        }
        self.window_cost += cost;
        let toll = TOLL_PER_PROBE_NS * sites.len() as f64;
        let cost = cost * self.factor + toll;
        self.tokens -= cost;
        self.spent.cost_ns += cost;
    }

    /// What a hit on each site costs, anew (processes with other placements were followed).
    pub fn set_costs(&mut self, cost_ns: [f64; N]) {
        self.cost_ns = cost_ns;
    }

    /// What the budget has done so far.
    pub fn spent(&self) -> Spent {
        self.spent
    }

    /// Whether the probes are attached in the budget's view.
    pub fn attached(&self) -> bool {
        self.phase != Phase::Off
    }

    /// One look at the probes: `hits` are the kernel's cumulative counts per site at `now_ns`
    /// (monotonic), `followed` the requests in flight that the probes follow. Returns what to
    /// do, if anything.
    pub fn tick(&mut self, now_ns: u64, hits: [u64; N], followed: usize) -> Option<Action> {
        let (last_ns, last_hits) = self.last.replace((now_ns, hits))?;
        let dt = now_ns.saturating_sub(last_ns);
        let (mut cost, mut n) = (0.0, 0u64);
        for i in 0..N {
            let d = hits[i].saturating_sub(last_hits[i]);
            n += d;
            cost += d as f64 * self.cost_ns[i];
        }
        self.window_cost += cost;
        let cost = cost * self.factor;
        self.spent.total_ns += dt;
        self.spent.cost_ns += cost;
        self.spent.hits += n;
        self.tokens = (self.tokens + self.share * dt as f64 - cost).min(self.cap);
        if self.phase != Phase::Off {
            self.spent.on_ns += dt;
            if dt > 0 {
                for i in 0..N {
                    let r = hits[i].saturating_sub(last_hits[i]) as f64 / dt as f64;
                    self.site_rate[i] = if self.site_rate[i] == 0.0 {
                        r
                    } else {
                        0.7 * self.site_rate[i] + 0.3 * r
                    };
                }
                let rate = cost / dt as f64;
                self.rate_on = if self.rate_on == 0.0 {
                    rate
                } else {
                    0.7 * self.rate_on + 0.3 * rate
                };
            }
        }
        match self.phase {
            Phase::On if self.tokens < 0.0 => {
                self.phase = Phase::Closing { since_ns: now_ns };
                Some(Action::Close)
            }
            Phase::Closing { since_ns }
                if followed == 0 || now_ns.saturating_sub(since_ns) >= GRACE.as_nanos() as u64 =>
            {
                self.phase = Phase::Off;
                self.spent.pauses += 1;
                Some(Action::Detach)
            }
            Phase::Off
                if self.tokens
                    >= (self.rate_on * self.factor * MIN_WINDOW.as_nanos() as f64)
                        .min(self.cap) =>
            {
                self.phase = Phase::On;
                self.window_cost = 0.0;
                Some(Action::Attach)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::NS_PER_SEC;

    const MS: u64 = 1_000_000;

    /// One hit costs 1 µs on every site.
    fn budget(share: f64) -> Budget {
        Budget::new(share, [1000.0; N])
    }

    fn hits(n: u64) -> [u64; N] {
        let mut h = [0; N];
        h[0] = n;
        h
    }

    #[test]
    fn within_the_budget_the_probes_stay_on() {
        let mut b = budget(0.02);
        // 10,000 hits a second at 1 µs: 1% of a core.
        let mut total = 0;
        for t in 0..=100 {
            assert_eq!(b.tick(t * 50 * MS, hits(total), 3), None, "at {t}");
            total += 500;
        }
        let s = b.spent();
        assert_eq!(s.pauses, 0);
        assert_eq!(s.on_fraction(), 1.0);
        assert!((s.cost_share() - 0.01).abs() < 1e-3, "{s:?}");
    }

    #[test]
    fn past_the_budget_it_follows_in_windows_and_keeps_its_share() {
        use memwatch_common::heap::HeapSite;
        let mut b = budget(0.02);
        // 200,000 hits a second while on: 20% of a core, ten times the budget; one probe, so
        // one toll a window.
        let (mut total, mut closes, mut detaches, mut attaches) = (0u64, 0, 0, 0);
        let mut followed = 0;
        for t in 0..=6000u64 {
            match b.tick(t * 10 * MS, hits(total), followed) {
                Some(Action::Close) => {
                    closes += 1;
                    followed = 2;
                }
                Some(Action::Detach) => {
                    detaches += 1;
                    b.detached(&[HeapSite::Malloc], 100 * MS);
                }
                Some(Action::Attach) => attaches += 1,
                None => {}
            }
            // The followed requests end 30 ms after a close.
            if followed > 0
                && matches!(b.phase, Phase::Closing { since_ns } if t * 10 * MS >= since_ns + 30 * MS)
            {
                followed = 0;
            }
            if b.attached() {
                total += 2000;
            }
        }
        let s = b.spent();
        // Few, long windows: each costs a toll of its own.
        assert!(
            closes >= 3 && detaches == closes && attaches + 1 >= detaches,
            "{s:?}"
        );
        // 60 s recorded: at most the budget, plus what was saved up at the start and one
        // window's overshoot.
        let allowed = 0.02 * (60 * NS_PER_SEC) as f64
            + 0.02 * START.as_nanos() as f64
            + 0.2 * NS_PER_SEC as f64;
        assert!(s.cost_ns <= allowed, "{s:?}");
        assert!(s.cost_share() > 0.015, "the budget is used: {s:?}");
        assert!((0.02..0.10).contains(&s.on_fraction()), "{s:?}");
    }

    /// A detach is paid for the breakpoints that linger: the second site's for one grace period
    /// more than the first's.
    #[test]
    fn lingering_breakpoints_are_charged() {
        use memwatch_common::heap::HeapSite;
        let mut b = budget(0.02);
        b.tick(0, hits(0), 0);
        // 1,000 hits per ms on site 0 (Malloc's slot): 1 µs each, so 1 ns of cost per ns.
        let mut h = [0; N];
        h[HeapSite::Malloc as usize] = 10_000;
        b.tick(10 * MS, h, 0);
        let before = b.spent().cost_ns;
        b.detached(&[HeapSite::Free, HeapSite::Malloc], 100 * MS);
        // Malloc's breakpoint goes second: 1.5 grace periods of its rate.
        let charged = b.spent().cost_ns - before;
        let toll = 2.0 * TOLL_PER_PROBE_NS;
        assert!(
            (charged - 150.0 * MS as f64 - toll).abs() < 1.0,
            "{charged}"
        );
    }

    /// A server whose requests took 20 µs of CPU off and 40 µs on, while the probes' estimate
    /// said 10 µs a request: a hit costs twice (then, smoothed, 1.5 times) its calibration.
    #[test]
    fn what_a_hit_really_costs_is_learnt_from_the_targets_cpu() {
        let mut b = budget(0.02);
        b.tick(0, hits(0), 0);
        // 1,000 requests on, 10 hits each at 1 µs: 10 ms estimated.
        b.tick(100 * MS, hits(10_000), 0);
        let before = b.spent().cost_ns;
        b.observed((40 * MS, 1000), (20 * MS, 1000));
        assert!((b.factor() - 1.5).abs() < 1e-9, "{}", b.factor());
        let charged = b.spent().cost_ns - before;
        assert!((charged - 5.0 * MS as f64).abs() < 1.0, "{charged}");
        // Too few requests to judge: nothing changes.
        b.observed((40 * MS, 10), (20 * MS, 1000));
        assert!((b.factor() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn the_probes_stay_on_for_followed_requests_at_most_the_grace() {
        let mut b = budget(0.02);
        b.tick(0, hits(0), 1);
        assert_eq!(b.tick(10 * MS, hits(1_000_000), 1), Some(Action::Close));
        assert_eq!(b.tick(20 * MS, hits(1_000_000), 1), None);
        assert_eq!(
            b.tick(10 * MS + GRACE.as_nanos() as u64, hits(1_000_000), 1),
            Some(Action::Detach)
        );
        assert!(!b.attached());
    }
}
