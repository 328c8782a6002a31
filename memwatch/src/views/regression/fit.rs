//! Non-negative least squares of a signal's change per interval on the routes' request counts,
//! plain and robust, with intervals and the routes too collinear to separate.

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

/// Columns more correlated than this move together: their effects cannot be told apart, and
/// they get no interval. Below it, the covariance widens each interval by as much as its
/// column moves with the others, so the interval says how well they were told apart. (At
/// 0.95, Go's routes lost their intervals wherever its collections came at uneven intervals:
/// every route's count grows with an interval's length, so raw counts correlated above 0.95
/// while the fit explained 99.9% and put `/leak` within 1% of the truth.)
const COLLINEAR: f64 = 0.999;

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
    // The covariance over the columns with any requests: one that is 0 in every row (a
    // route never caught running at a report) says nothing and would make it singular, which
    // would take every route's interval away. Failing that, over the columns the fit uses.
    let nonzero: Vec<usize> = (0..cols)
        .filter(|&j| (0..rows).any(|i| x[i * cols + j] != 0.0))
        .collect();
    let covariance = |on: &[usize]| {
        let (a, _) = normal_equations(x, rows, cols, y, on);
        inverse(&a).map(|inv| (on.to_vec(), inv))
    };
    let inv = covariance(&nonzero).or_else(|| covariance(&set));
    let coefficients = (0..cols)
        .map(|j| {
            let interval = inv
                .as_ref()
                .filter(|_| sigma2.is_finite() && !collinear.iter().any(|&(c, _)| c == j))
                .and_then(|(on, inv)| {
                    let k = on.iter().position(|&c| c == j)?;
                    let se = (sigma2 * inv[k][k]).max(0.0).sqrt();
                    Some(((beta[j] - 1.96 * se).max(0.0), beta[j] + 1.96 * se))
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

    /// Routes whose counts grow together with uneven intervals (a collector's), correlated
    /// above 0.95 but mixed differently from one interval to the next, are told apart: each
    /// has its interval, and the leak's holds the truth.
    #[test]
    fn counts_that_grow_with_the_interval_are_still_told_apart() {
        let kib = 1024.0;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..30u32 {
            let length = f64::from(5 + (i * 7) % 23);
            let (a, b) = (
                10.0 * length + f64::from(i % 5) * 3.0,
                10.0 * length + f64::from((i * 2) % 7) * 3.0,
            );
            x.extend([a, b]);
            let noise = if i % 2 == 0 { 32.0 * kib } else { -32.0 * kib };
            y.push(256.0 * kib * a + noise);
        }
        let r = correlation(&x, 30, 2, 0, 1);
        assert!(r > 0.95 && r < COLLINEAR, "{r}");
        let f = fit(&x, 30, 2, &y);
        assert!(f.collinear.is_empty(), "{f:?}");
        let (lo, hi) = f.coefficients[0].interval.unwrap();
        assert!(
            lo < 256.0 * kib && hi > 256.0 * kib && hi - lo < 8.0 * kib,
            "{f:?}"
        );
        let (_, hi) = f.coefficients[1].interval.unwrap();
        assert!(hi < 8.0 * kib, "{f:?}");
    }

    /// A column that is 0 in every row (a route never caught running at a report) has no
    /// interval, and takes none away from the others.
    #[test]
    fn an_empty_column_leaves_the_others_their_intervals() {
        let kib = 1024.0;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..30u32 {
            let (a, b) = (f64::from(i % 7), f64::from((i * 3) % 5));
            x.extend([a, b, 0.0]);
            let noise = if i % 2 == 0 { 16.0 * kib } else { -16.0 * kib };
            y.push(256.0 * kib * a + noise);
        }
        let f = fit(&x, 30, 3, &y);
        let (lo, hi) = f.coefficients[0].interval.unwrap();
        assert!(lo > 240.0 * kib && hi < 272.0 * kib, "{f:?}");
        assert!(f.coefficients[1].interval.is_some(), "{f:?}");
        assert_eq!(f.coefficients[2].interval, None, "{f:?}");
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
