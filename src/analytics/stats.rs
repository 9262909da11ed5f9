//! Count, mean, median and 90th percentile, with `numpy.percentile`'s default (linear)
//! interpolation, so herald's numbers can be checked against a notebook.

/// Statistics of one set of durations (seconds); all `None` for an empty set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

/// Summarizes `values` (sorted in place).
pub fn summarize(values: &mut [f64]) -> Summary {
    values.sort_by(f64::total_cmp);
    let count = values.len();
    let mean = (count > 0).then(|| values.iter().sum::<f64>() / count as f64);
    Summary {
        count,
        mean,
        median: percentile(values, 0.5),
        p90: percentile(values, 0.9),
    }
}

/// The `p`-quantile (0..=1) of ascending `sorted`: rank `p·(n−1)`, interpolated linearly between
/// the values at its floor and ceiling, as numpy does by default.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p.clamp(0.0, 1.0) * last as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    let fraction = rank - low as f64;
    Some(sorted[low] + (sorted[high] - sorted[low]) * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|actual| (actual - expected).abs() < 1e-9)
    }

    #[test]
    fn matches_numpy_linear_interpolation() {
        // Each expected value worked by hand with rank = p·(n−1); the same as
        // numpy.percentile(values, 100·p):
        let cases: &[(&[f64], f64, f64)] = &[
            // rank 2.7: 3 + 0.7·(4−3)
            (&[1.0, 2.0, 3.0, 4.0], 0.9, 3.7),
            // rank 1.5: 2 + 0.5·(3−2)
            (&[1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
            // rank 3.6: 40 + 0.6·(100−40)
            (&[10.0, 20.0, 30.0, 40.0, 100.0], 0.9, 76.0),
            // rank 2: exactly the middle value
            (&[10.0, 20.0, 30.0, 40.0, 100.0], 0.5, 30.0),
            // rank 0.9: 5 + 0.9·(15−5)
            (&[5.0, 15.0], 0.9, 14.0),
            // a single value is every percentile
            (&[42.0], 0.9, 42.0),
            // rank 8.1 over 1..=10: 9 + 0.1·(10−9)
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                0.9,
                9.1,
            ),
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                0.0,
                1.0,
            ),
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                1.0,
                10.0,
            ),
        ];
        for (values, p, expected) in cases {
            let actual = percentile(values, *p);
            assert!(
                close(actual, *expected),
                "{values:?} p{p}: {actual:?} != {expected}"
            );
        }
    }

    #[test]
    fn summarizes_unsorted_input() {
        let mut values = [3600.0, 60.0, 86_400.0, 600.0];
        let summary = summarize(&mut values);
        assert_eq!(summary.count, 4);
        // (60 + 600 + 3600 + 86400) / 4
        assert!(close(summary.mean, 22_665.0));
        // rank 1.5 of [60, 600, 3600, 86400]: 600 + 0.5·3000
        assert!(close(summary.median, 2100.0));
        // rank 2.7: 3600 + 0.7·82800
        assert!(close(summary.p90, 61_560.0));
    }

    #[test]
    fn empty_sets_have_no_statistics() {
        assert_eq!(
            summarize(&mut []),
            Summary {
                count: 0,
                mean: None,
                median: None,
                p90: None
            }
        );
        assert_eq!(percentile(&[], 0.5), None);
    }
}
