//! A second estimate of what each route keeps, that needs no probe: the change of a retained
//! signal per interval (the targets' resident memory) against how many requests of each route
//! ended in that interval, fitted by non-negative least squares. A route that keeps memory
//! makes the signal rise with its count; one whose memory is freed (or reused) does not.
//!
//! It rests on nothing but the samples and the request counts, so it covers runtimes no hook
//! reaches and checks the origin figures when a runtime's allocator changes. It needs the
//! routes' counts to vary independently across intervals: routes always hit together cannot be
//! told apart, and it says so.

/// One route's estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficient {
    /// Bytes the signal rises by per request of the route (0 when the fit pins it at 0).
    pub per_request: f64,
    /// The 95% interval (1.96 standard errors), from the fit's residuals; `None` when the
    /// route's column is too collinear with the others to have one.
    pub interval: Option<(f64, f64)>,
}

/// What a fit found.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub coefficients: Vec<Coefficient>,
    /// Intervals fitted.
    pub intervals: usize,
    /// The share of the signal's variation the fit explains (R², 0 to 1): below about a half,
    /// the signal moves mostly with something else (collections, caches) and the figures are
    /// not to be leaned on.
    pub explained: f64,
    /// Columns (routes) whose counts are too collinear with another's to be separated: for
    /// each, the index of the column it moves with. Their figures are not to be trusted.
    pub collinear: Vec<(usize, usize)>,
}

/// Non-negative least squares (Lawson and Hanson's active-set method) of `y ≈ X β`, β ≥ 0.
/// `x` is row-major, `rows × cols`. Small problems only (cols is the number of routes).
pub fn nnls(x: &[f64], rows: usize, cols: usize, y: &[f64]) -> Vec<f64> {
    let mut beta = vec![0.0; cols];
    let mut passive = vec![false; cols];
    let gradient = |beta: &[f64]| -> Vec<f64> {
        // Xᵀ (y − X β)
        let mut r = y.to_vec();
        for (i, ri) in r.iter_mut().enumerate() {
            for j in 0..cols {
                *ri -= x[i * cols + j] * beta[j];
            }
        }
        (0..cols)
            .map(|j| (0..rows).map(|i| x[i * cols + j] * r[i]).sum())
            .collect()
    };
    let tol = 1e-10 * (1.0 + y.iter().map(|v| v.abs()).fold(0.0, f64::max));
    for _ in 0..(3 * cols + 10) {
        let w = gradient(&beta);
        let Some((j, &wj)) = w
            .iter()
            .enumerate()
            .filter(|(j, _)| !passive[*j])
            .max_by(|a, b| a.1.total_cmp(b.1))
        else {
            break;
        };
        if wj <= tol {
            break;
        }
        passive[j] = true;
        loop {
            let set: Vec<usize> = (0..cols).filter(|&j| passive[j]).collect();
            let Some(z) = least_squares(x, rows, cols, y, &set) else {
                passive[j] = false;
                return beta;
            };
            if z.iter().all(|&v| v > 0.0) {
                for (k, &j) in set.iter().enumerate() {
                    beta[j] = z[k];
                }
                break;
            }
            // Step toward z as far as β stays non-negative, then drop what reached 0.
            let mut alpha = f64::INFINITY;
            for (k, &j) in set.iter().enumerate() {
                if z[k] <= 0.0 {
                    let d = beta[j] - z[k];
                    if d > 0.0 {
                        alpha = alpha.min(beta[j] / d);
                    }
                }
            }
            if !alpha.is_finite() {
                alpha = 0.0;
            }
            for (k, &j) in set.iter().enumerate() {
                beta[j] += alpha * (z[k] - beta[j]);
                if beta[j] <= tol {
                    beta[j] = 0.0;
                    passive[j] = false;
                }
            }
        }
    }
    beta
}

/// Unconstrained least squares on the columns `set`, by the normal equations (solved with
/// Gaussian elimination and partial pivoting); `None` when they are singular.
fn least_squares(
    x: &[f64],
    rows: usize,
    cols: usize,
    y: &[f64],
    set: &[usize],
) -> Option<Vec<f64>> {
    let (a, b) = normal_equations(x, rows, cols, y, set);
    solve(a, b)
}

/// XᵀX and Xᵀy restricted to `set`.
fn normal_equations(
    x: &[f64],
    rows: usize,
    cols: usize,
    y: &[f64],
    set: &[usize],
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let k = set.len();
    let mut a = vec![vec![0.0; k]; k];
    let mut b = vec![0.0; k];
    for i in 0..rows {
        for (p, &jp) in set.iter().enumerate() {
            let xp = x[i * cols + jp];
            b[p] += xp * y[i];
            for (q, &jq) in set.iter().enumerate() {
                a[p][q] += xp * x[i * cols + jq];
            }
        }
    }
    (a, b)
}

fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = a
        .iter()
        .flatten()
        .map(|v| v.abs())
        .fold(0.0, f64::max)
        .max(1.0);
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            let (upper, lower) = a.split_at_mut(r);
            for (x, pivot) in lower[0][c..n].iter_mut().zip(&upper[c][c..n]) {
                *x -= f * pivot;
            }
            b[r] -= f * b[c];
        }
    }
    let mut out = vec![0.0; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c][k] * out[k]).sum();
        out[c] = (b[c] - s) / a[c][c];
    }
    Some(out)
}

/// The inverse of `a` (small, symmetric positive definite in practice); `None` when singular.
fn inverse(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut cols = Vec::with_capacity(n);
    for c in 0..n {
        let mut e = vec![0.0; n];
        e[c] = 1.0;
        cols.push(solve(a.to_vec(), e)?);
    }
    Some(
        (0..n)
            .map(|r| (0..n).map(|c| cols[c][r]).collect())
            .collect(),
    )
}

/// Pearson correlation of two columns of `x` (0 when either is constant).
fn correlation(x: &[f64], rows: usize, cols: usize, a: usize, b: usize) -> f64 {
    let col = |j: usize| (0..rows).map(move |i| x[i * cols + j]);
    let n = rows as f64;
    let (ma, mb) = (col(a).sum::<f64>() / n, col(b).sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (va, vb) in col(a).zip(col(b)) {
        sab += (va - ma) * (vb - mb);
        saa += (va - ma) * (va - ma);
        sbb += (vb - mb) * (vb - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Columns more correlated than this move together: their effects cannot be told apart.
const COLLINEAR: f64 = 0.95;

/// [`fit`], made robust to intervals far off the fit (Huber's weights, by iteratively
/// reweighted least squares): a live heap moves in spikes besides the routes' steady effect
/// (a 2 MiB buffer of a request in flight at one collection, gone at the next, shows as
/// +2 MiB and −2 MiB in two neighbouring intervals), and squared errors let a few such
/// spikes pull every coefficient. Intervals whose residual exceeds 1.345 robust standard
/// deviations (the median absolute residual, scaled) weigh less, in proportion; the result is
/// the weighted fit, its intervals and R² those of the weighted problem.
pub fn fit_robust(x: &[f64], rows: usize, cols: usize, y: &[f64]) -> Fit {
    const ITERATIONS: usize = 20;
    const HUBER_K: f64 = 1.345;
    let mut weights: Vec<f64> = vec![1.0; rows];
    let mut wx = x.to_vec();
    let mut wy = y.to_vec();
    for _ in 0..ITERATIONS {
        for i in 0..rows {
            let w = weights[i].sqrt();
            for j in 0..cols {
                wx[i * cols + j] = x[i * cols + j] * w;
            }
            wy[i] = y[i] * w;
        }
        let beta = nnls(&wx, rows, cols, &wy);
        let residuals: Vec<f64> = (0..rows)
            .map(|i| y[i] - (0..cols).map(|j| x[i * cols + j] * beta[j]).sum::<f64>())
            .collect();
        let scale = 1.4826 * median(residuals.iter().map(|r| r.abs()).collect());
        if scale <= 0.0 {
            break;
        }
        let k = HUBER_K * scale;
        let next: Vec<f64> = residuals
            .iter()
            .map(|r| if r.abs() <= k { 1.0 } else { k / r.abs() })
            .collect();
        let settled = next.iter().zip(&weights).all(|(a, b)| (a - b).abs() < 1e-6);
        weights = next;
        if settled {
            break;
        }
    }
    for i in 0..rows {
        let w = weights[i].sqrt();
        for j in 0..cols {
            wx[i * cols + j] = x[i * cols + j] * w;
        }
        wy[i] = y[i] * w;
    }
    fit(&wx, rows, cols, &wy)
}

/// The median of `v` (0 when empty).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Fits `y` (the signal's change per interval) on `x` (requests per route per interval,
/// row-major, `rows × cols`) with non-negative coefficients, their 95% intervals, and the
/// routes too collinear to separate.
pub fn fit(x: &[f64], rows: usize, cols: usize, y: &[f64]) -> Fit {
    let beta = nnls(x, rows, cols, y);
    let mut collinear = Vec::new();
    for a in 0..cols {
        for b in a + 1..cols {
            if correlation(x, rows, cols, a, b).abs() > COLLINEAR {
                collinear.push((a, b));
                collinear.push((b, a));
            }
        }
    }
    // Residual variance with the non-zero coefficients as the fitted parameters.
    let set: Vec<usize> = (0..cols).filter(|&j| beta[j] > 0.0).collect();
    let all: Vec<usize> = (0..cols).collect();
    let dof = rows.saturating_sub(set.len().max(1));
    let rss: f64 = (0..rows)
        .map(|i| {
            let f: f64 = (0..cols).map(|j| x[i * cols + j] * beta[j]).sum();
            (y[i] - f).powi(2)
        })
        .sum();
    let sigma2 = if dof > 0 { rss / dof as f64 } else { f64::NAN };
    let mean = y.iter().sum::<f64>() / rows.max(1) as f64;
    let total: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let explained = if total > 0.0 {
        (1.0 - rss / total).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (a, _) = normal_equations(x, rows, cols, y, &all);
    let inv = inverse(&a);
    let coefficients = (0..cols)
        .map(|j| {
            let interval = inv
                .as_ref()
                .filter(|_| sigma2.is_finite() && !collinear.iter().any(|&(c, _)| c == j))
                .map(|inv| {
                    let se = (sigma2 * inv[j][j]).max(0.0).sqrt();
                    ((beta[j] - 1.96 * se).max(0.0), beta[j] + 1.96 * se)
                });
            Coefficient {
                per_request: beta[j],
                interval,
            }
        })
        .collect();
    Fit {
        coefficients,
        intervals: rows,
        explained,
        collinear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three routes hit in a varying mix: one keeps 256 KiB a request, one nothing, one
    /// frees what the signal says it would keep (a negative effect is pinned at 0).
    #[test]
    fn the_leak_is_found_and_the_rest_pinned_at_zero() {
        let kib = 1024.0;
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut seed = 7u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 40) as f64
        };
        for i in 0..60 {
            let (a, b, c) = (next(), next(), next());
            x.extend([a, b, c]);
            // Noise: a garbage collector's ±64 KiB.
            let noise = if i % 2 == 0 { 64.0 * kib } else { -64.0 * kib };
            y.push(256.0 * kib * a - 10.0 * kib * c + noise);
        }
        let f = fit(&x, 60, 3, &y);
        let leak = f.coefficients[0];
        assert!((leak.per_request - 256.0 * kib).abs() < 8.0 * kib, "{f:?}");
        let (lo, hi) = leak.interval.unwrap();
        assert!(
            lo < leak.per_request && hi > leak.per_request && hi - lo < 32.0 * kib,
            "{f:?}"
        );
        assert!(f.coefficients[1].per_request < 4.0 * kib, "{f:?}");
        assert_eq!(f.coefficients[2].per_request, 0.0, "{f:?}");
        assert!(f.collinear.is_empty());
    }

    /// Two routes always hit together cannot be separated: said, and no interval given.
    #[test]
    fn routes_hit_together_are_collinear() {
        let x: Vec<f64> = (0..20)
            .flat_map(|i| [f64::from(i), f64::from(i) * 2.0])
            .collect();
        let y: Vec<f64> = (0..20).map(|i| 1000.0 * f64::from(i)).collect();
        let f = fit(&x, 20, 2, &y);
        assert_eq!(f.collinear, vec![(0, 1), (1, 0)]);
        assert!(f.coefficients.iter().all(|c| c.interval.is_none()), "{f:?}");
    }

    /// A leak of 256 KiB a request and a churn of 2 MiB whose buffers, in flight at a few
    /// collections, show as +2 MiB then −2 MiB in neighbouring intervals: the plain fit is
    /// pulled off by the spikes, the robust one is not.
    #[test]
    fn spikes_of_memory_in_flight_do_not_pull_the_robust_fit() {
        let kib = 1024.0;
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut seed = 11u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 20) as f64 + 20.0
        };
        for i in 0..24 {
            let (leak, churn) = (next(), next());
            x.extend([leak, churn]);
            let spike = match i % 8 {
                2 => 2048.0 * kib,
                3 => -2048.0 * kib,
                _ => 0.0,
            };
            y.push(256.0 * kib * leak + spike);
        }
        let robust = fit_robust(&x, 24, 2, &y);
        let leak = robust.coefficients[0].per_request;
        assert!((leak - 256.0 * kib).abs() < 2.0 * kib, "{robust:?}");
        assert!(robust.coefficients[1].per_request < 2.0 * kib, "{robust:?}");
    }

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn nnls_matches_least_squares_when_nothing_is_negative() {
        // y = 2 a + 3 b exactly.
        let x = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0];
        let y = [2.0, 3.0, 5.0, 7.0];
        let b = nnls(&x, 4, 2, &y);
        assert!(
            (b[0] - 2.0).abs() < 1e-9 && (b[1] - 3.0).abs() < 1e-9,
            "{b:?}"
        );
    }
}

/// The regression estimate over a range of a recording, per route.
pub mod over_recording {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::{fit, fit_robust};
    use crate::{
        error::RecordingError,
        model::meta,
        recording::{
            Recording,
            query::{Range, requests::rollup_seconds},
        },
        units::NS_PER_SEC,
        views::report::{EXACT_LIMIT, Endpoint},
    };

    /// At most this many routes get a column of their own; the rest are one column.
    const MAX_ROUTES: usize = 12;
    /// Intervals the range is cut into, at most.
    const MAX_INTERVALS: i64 = 120;
    /// The shortest interval. An allocator grows the heap when a request needs room that
    /// freed memory cannot give, often a request that keeps nothing, while a leaking one
    /// fills freed room without growing it: over short intervals the resident set moves with
    /// whoever faults pages in, as the page-fault origin does. Longer intervals lessen that
    /// bias without removing it: on the resident set, a heap's reuse misleads the regression
    /// as it misleads page faults (seen on gunicorn with `--no-heap`); a live-heap signal
    /// would not.
    const MIN_INTERVAL_NS: i64 = NS_PER_SEC;
    /// Fewer intervals than this cannot be fitted with any confidence: 30 of a second at
    /// least.
    const MIN_INTERVALS: usize = 30;
    /// Fewer collections than this (less one) are too few to fit on a live heap. Its changes
    /// are far cleaner than the resident set's (a collected runtime's live heap moves with
    /// what is kept and little else), so a few intervals beyond the routes' count suffice.
    const MIN_GC_INTERVALS: usize = 5;
    /// Followed-heap samples further apart than this many sample intervals do not make an
    /// interval: the heap probes were off between them, and blocks changed hands unseen.
    const HEAP_GAP: i64 = 3;
    /// Below this share of the signal's variation explained, the estimates are shown but not
    /// set against the origin figures.
    const MIN_EXPLAINED: f64 = 0.5;

    /// One route's regression figure (the report's `regression` of an endpoint).
    #[derive(Debug, Clone, Copy, PartialEq, Serialize)]
    pub struct RouteEstimate {
        /// Bytes of resident memory each further request of the route keeps, by regression.
        pub kept_per_request_bytes: i64,
        /// Its 95% interval; `None` when the route cannot be separated from another.
        pub kept_per_request_high_bytes: Option<i64>,
        pub kept_per_request_low_bytes: Option<i64>,
    }

    /// The fit as a whole (the report's `retained.regression`).
    #[derive(Debug, Clone, Default, PartialEq, Serialize)]
    pub struct Summary {
        /// Routes whose request counts moved together with another's, too closely to tell
        /// their effects apart: `"GET /a ~ GET /b"`.
        pub collinear: Vec<String>,
        /// Where the origin figure and the regression disagree beyond their bounds, and which
        /// to trust.
        pub disagreements: Vec<Disagreement>,
        /// The share of the signal's variation the fit explains (R²).
        pub explained: f64,
        /// Intervals fitted, and their length.
        pub interval_ms: i64,
        pub intervals: usize,
        /// What was regressed: `live_heap`, what collected runtimes report live after each
        /// collection, from one collection to the next; `heap`, the blocks the heap probes
        /// followed, sampled while they were on; `rss`, the targets' summed resident set over
        /// even intervals.
        pub signal: &'static str,
        /// Whether the regression is each route's figure (`kept_from: regression`): the
        /// recording's live heap is a JVM's, whose objects neither page faults nor the heap
        /// probes see one by one.
        pub primary: bool,
    }

    /// A route whose two estimates disagree.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct Disagreement {
        pub method: String,
        pub origin_bytes: i64,
        pub regression_bytes: i64,
        pub route: String,
        /// `origin` or `regression`.
        pub trust: &'static str,
        /// Why that one.
        pub why: &'static str,
    }

    type Q<T> = Result<T, RecordingError>;

    /// Fits the range's retained signal against its routes' request counts and sets each
    /// endpoint's `regression`; `None` when the range has too few intervals or no samples.
    ///
    /// The signal is the live heap that collected runtimes report after each collection where
    /// the range has one ([`live_heap_rows`]): each row is one process's change from one
    /// collection to the next, against the requests it served in between. Otherwise it is the
    /// targets' summed resident set over even intervals ([`rss_rows`]).
    pub fn estimate(
        rec: &Recording,
        range: Range,
        endpoints: &mut [Endpoint],
        origin_trusted: bool,
    ) -> Q<Option<Summary>> {
        let (from, to) = range.bounds();
        // The routes with a column: the most requested.
        let mut order: Vec<usize> = (0..endpoints.len()).collect();
        order.sort_by(|&a, &b| endpoints[b].requests.cmp(&endpoints[a].requests));
        order.truncate(MAX_ROUTES);
        if order.is_empty() {
            return Ok(None);
        }
        // One column more for the other routes, when there are any.
        let others = endpoints.len() > order.len();
        let columns = Columns {
            index: order
                .iter()
                .enumerate()
                .map(|(c, &i)| ((endpoints[i].method.clone(), endpoints[i].route.clone()), c))
                .collect(),
            count: order.len() + usize::from(others),
            others,
        };
        let rows = match live_heap_rows(rec, from, to, &columns)? {
            Some(rows) => Some(rows),
            None => rss_rows(rec, from, to, &columns)?,
        };
        let Some(rows) = rows else {
            return Ok(None);
        };
        let f = if rows.signal == "rss" {
            fit(&rows.x, rows.n, rows.cols, &rows.y)
        } else {
            fit_robust(&rows.x, rows.n, rows.cols, &rows.y)
        };
        let name = |c: usize| {
            let e = &endpoints[order[c]];
            format!("{} {}", e.method, e.route)
        };
        let mut summary = Summary {
            collinear: f
                .collinear
                .iter()
                .filter(|(a, b)| a < b && *b < order.len())
                .map(|&(a, b)| format!("{} ~ {}", name(a), name(b)))
                .collect(),
            disagreements: Vec::new(),
            explained: (f.explained * 1000.0).round() / 1000.0,
            interval_ms: rows.interval_ns / 1_000_000,
            intervals: rows.n,
            signal: rows.signal,
            primary: rows.primary,
        };
        for (c, &i) in order.iter().enumerate() {
            let k = f.coefficients[c];
            let e = &mut endpoints[i];
            let est = RouteEstimate {
                kept_per_request_bytes: k.per_request.round() as i64,
                kept_per_request_low_bytes: k.interval.map(|(lo, _)| lo.round() as i64),
                kept_per_request_high_bytes: k.interval.map(|(_, hi)| hi.round() as i64),
            };
            if !rows.primary
                && f.explained >= MIN_EXPLAINED
                && let Some(d) = disagreement(e, &est, origin_trusted)
            {
                summary.disagreements.push(d);
            }
            e.regression = Some(est);
        }
        Ok(Some(summary))
    }

    /// Which column each route's requests count in.
    struct Columns {
        index: BTreeMap<(String, String), usize>,
        /// Columns in all, the others' included.
        count: usize,
        /// Whether the last column takes the routes without one of their own.
        others: bool,
    }

    impl Columns {
        fn of(&self, method: &str, route: &str) -> Option<usize> {
            self.index
                .get(&(method.to_owned(), route.to_owned()))
                .copied()
                .or(self.others.then_some(self.count - 1))
        }
    }

    /// What is fitted: `n` rows of the signal's change `y`, against each column's requests `x`
    /// (row-major).
    struct Rows {
        x: Vec<f64>,
        y: Vec<f64>,
        n: usize,
        /// Columns of `x`: the routes' first, then any the fit needs besides (set aside).
        cols: usize,
        /// The rows' mean length.
        interval_ns: i64,
        signal: &'static str,
        /// The regression is each route's figure: the runtime's objects are not seen one by one.
        primary: bool,
    }

    /// Rows from a live heap: for each process, from one report to the next, the change of its
    /// live heap against the requests it served in between. `None` when the range has too few
    /// such intervals.
    ///
    /// Where a runtime reports its collections (`jvm`, `go`), those reports are the signal;
    /// otherwise the followed heap, sampled while the heap probes were on (`heap`). A request
    /// counts in the interval it ended in. What requests in flight hold at a report is
    /// modelled where reports come at moments that have nothing to do with the requests (Go's
    /// concurrent collector ends its marking on its own schedule; the heap is sampled on a
    /// timer): each route has a second column, the change in how many of its requests were
    /// running at the interval's two ends, whose coefficient (what a request holds while it
    /// runs) is fitted and set aside. This is what separates requests that share a thread (an
    /// event loop), whose memory the origin cannot tell apart. Not on a JVM, whose collections
    /// stop the world when an allocation finds no room: the request in flight then is mostly
    /// the one whose allocation started it, before it holds anything, and modelling it fitted
    /// worse (at -c8: 200 to 270 KiB of 256, against 264 to 274). What the model misses (a
    /// buffer still referenced just after its request's last write) shows as spikes (+2 MiB,
    /// then −2 MiB) that the robust fit ([`fit_robust`]) weighs down. A gap of more than
    /// [`HEAP_GAP`] sample intervals between followed-heap samples (the probes off) starts a
    /// new series.
    fn live_heap_rows(rec: &Recording, from: i64, to: i64, columns: &Columns) -> Q<Option<Rows>> {
        let points = rec.live_heap(from, to)?;
        let collected = points.iter().any(|p| p.source != "heap");
        let jvm = points.iter().any(|p| p.source == "jvm");
        let gap = rec
            .meta_i64(meta::SAMPLE_INTERVAL_MS)?
            .unwrap_or(100)
            .saturating_mul(1_000_000)
            .saturating_mul(HEAP_GAP);
        // Series of one process's reports, in time order (the query orders them by process
        // and time).
        let mut series: Vec<(u32, Vec<(i64, i64)>)> = Vec::new();
        for p in points.iter().filter(|p| (p.source != "heap") == collected) {
            match series.last_mut() {
                Some((pid, v))
                    if *pid == p.pid
                        && (collected || v.last().is_some_and(|l| p.ts_ns - l.0 <= gap)) =>
                {
                    v.push((p.ts_ns, p.bytes));
                }
                _ => series.push((p.pid, vec![(p.ts_ns, p.bytes)])),
            }
        }
        series.retain(|(_, v)| v.len() >= 2);
        // Each process's series, and the row of each series' first interval.
        let mut of_pid: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        let mut first_row = Vec::with_capacity(series.len());
        let mut n = 0;
        for (i, (pid, v)) in series.iter().enumerate() {
            of_pid.entry(*pid).or_default().push(i);
            first_row.push(n);
            n += v.len() - 1;
        }
        let routes = columns.count;
        let (Some(t0), Some(t1)) = (
            series.iter().map(|(_, v)| v[0].0).min(),
            series.iter().map(|(_, v)| v[v.len() - 1].0).max(),
        ) else {
            return Ok(None);
        };
        let (first_s, last_s) = rollup_seconds(t0, t1);
        let exact = rec.rollup_request_count(first_s, last_s)? <= EXACT_LIMIT;
        // Requests in flight are known from each request's start and end alone.
        let in_flight = exact && !jvm;
        let cols = if in_flight { 2 * routes } else { routes };
        if n < MIN_GC_INTERVALS.max(cols + 3) {
            return Ok(None);
        }
        let mut x = vec![0.0; n * cols];
        if exact {
            rec.request_ends(t0, t1, |r| {
                let (Some(list), Some(c)) = (of_pid.get(&r.pid), columns.of(&r.method, &r.route))
                else {
                    return;
                };
                for &i in list {
                    let v = &series[i].1;
                    let row = first_row[i];
                    // The interval (a, b] it ended in.
                    let k = v.partition_point(|&(ts, _)| ts < r.end_ns);
                    if k >= 1 && k < v.len() {
                        x[(row + k - 1) * cols + c] += 1.0;
                    }
                    if !in_flight {
                        continue;
                    }
                    // The moments that found it running: moment j ends row j - 1 (where it
                    // adds) and begins row j (where it takes away).
                    let first = v.partition_point(|&(ts, _)| ts < r.start_ns);
                    for j in first..k.min(v.len()) {
                        if j >= 1 {
                            x[(row + j - 1) * cols + routes + c] += 1.0;
                        }
                        if j + 1 < v.len() {
                            x[(row + j) * cols + routes + c] -= 1.0;
                        }
                    }
                }
            })?;
        } else if let [(_, v)] = series.as_slice() {
            // Too many requests to read one by one: whole seconds from the rollup, each
            // second's requests at its middle, all of them the one reporting process's.
            for (second, method, route, count) in rec.route_counts_per_second(first_s, last_s)? {
                let t = second * NS_PER_SEC + 500_000_000;
                let k = v.partition_point(|&(ts, _)| ts < t);
                if let Some(c) = columns.of(&method, &route)
                    && k >= 1
                    && k < v.len()
                {
                    x[(k - 1) * cols + c] += count as f64;
                }
            }
        } else {
            return Ok(None);
        }
        let y: Vec<f64> = series
            .iter()
            .flat_map(|(_, v)| v.windows(2).map(|w| (w[1].1 - w[0].1) as f64))
            .collect();
        Ok(Some(Rows {
            x,
            y,
            n,
            cols,
            interval_ns: (t1 - t0) / n as i64,
            signal: if collected { "live_heap" } else { "heap" },
            primary: jvm,
        }))
    }

    /// Rows from the targets' summed resident set, over even intervals of at least
    /// [`MIN_INTERVAL_NS`]. `None` when the range has too few.
    fn rss_rows(rec: &Recording, from: i64, to: i64, columns: &Columns) -> Q<Option<Rows>> {
        let samples = rec.sample_series(Some((from, to)))?.rows;
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return Ok(None);
        };
        let (t0, t1) = (first.ts_ns, last.ts_ns);
        let width = ((t1 - t0) / MAX_INTERVALS).max(MIN_INTERVAL_NS);
        let n = usize::try_from((t1 - t0) / width).unwrap_or(0);
        let cols = columns.count;
        if n < MIN_INTERVALS.max(cols * 3) {
            return Ok(None);
        }
        let bucket = |t: i64| -> Option<usize> {
            if t <= t0 {
                return None;
            }
            let k = usize::try_from((t - t0 - 1) / width).ok()?;
            (k < n).then_some(k)
        };
        let mut x = vec![0.0; n * cols];
        let mut add = |t: i64, method: &str, route: &str, count: f64| {
            if let (Some(k), Some(c)) = (bucket(t), columns.of(method, route)) {
                x[k * cols + c] += count;
            }
        };
        let (first_s, last_s) = rollup_seconds(t0, t1);
        if rec.rollup_request_count(first_s, last_s)? <= EXACT_LIMIT {
            rec.each_request_figures(t0, t1, 1, |r| add(r.end_ns, &r.method, &r.route, 1.0))?;
        } else {
            // Whole seconds from the rollup: each second's requests at its middle.
            for (second, method, route, count) in rec.route_counts_per_second(first_s, last_s)? {
                add(
                    second * NS_PER_SEC + 500_000_000,
                    &method,
                    &route,
                    count as f64,
                );
            }
        }
        // The resident set at each interval's end: the last sample at or before it.
        let mut at_end = Vec::with_capacity(n + 1);
        let mut i = 0;
        for k in 0..=n {
            let edge = t0 + k as i64 * width;
            while i + 1 < samples.len() && samples[i + 1].ts_ns <= edge {
                i += 1;
            }
            at_end.push(samples[i].rss_bytes as f64);
        }
        let y: Vec<f64> = at_end.windows(2).map(|w| w[1] - w[0]).collect();
        Ok(Some(Rows {
            x,
            y,
            n,
            cols,
            interval_ns: width,
            signal: "rss",
            primary: false,
        }))
    }

    /// Whether `e`'s origin figure lies outside the regression's interval by more than either's
    /// slack, and which to trust: the origin where it followed every request's memory (the heap
    /// followed throughout, each request on a thread of its own), the regression otherwise.
    fn disagreement(e: &Endpoint, r: &RouteEstimate, origin_trusted: bool) -> Option<Disagreement> {
        let (lo, hi) = (
            r.kept_per_request_low_bytes?,
            r.kept_per_request_high_bytes?,
        );
        let o = e.kept_per_request_bytes;
        let slack = (o.abs().max(hi.abs()) / 5).max(16 * 1024);
        if o >= lo - slack && o <= hi + slack {
            return None;
        }
        let followed = origin_trusted && e.sampled.is_none() && e.approximate == 0;
        Some(Disagreement {
            method: e.method.clone(),
            route: e.route.clone(),
            origin_bytes: o,
            regression_bytes: r.kept_per_request_bytes,
            trust: if followed { "origin" } else { "regression" },
            why: if followed {
                "the heap was followed throughout and each request ran on a thread of its own: \
                 the origin figure saw every page change hands, while the resident set also moves \
                 with collections and allocator caches"
            } else if e.sampled.is_some() {
                "the heap probes followed part of this route's requests (their budget was spent), \
                 and the regression counts all of them"
            } else if e.approximate > 0 {
                "requests shared a thread (an event loop), so the origin figure had to guess whose \
                 memory was whose; the regression needs no such guess"
            } else {
                "the heap was not followed, so memory reused inside the allocator stayed with the \
                 request that first made it resident"
            },
        })
    }
}
