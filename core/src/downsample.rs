//! Downsampling a long metric series for display: the series is cut into equal buckets of steps and
//! each bucket keeps its smallest and largest value (and its first non-finite one), so spikes and
//! divergence survive, unlike with averaging or every-k-th-point thinning. The first and last points
//! are always kept: a curve's final value is what a leaderboard compares.

use crate::dto::MetricPoint;

/// At most about `max_points` points of `points` (sorted by step), or all of them when they fit.
/// `max_points` below 4 is treated as 4.
pub fn min_max(points: &[MetricPoint], max_points: usize) -> Vec<MetricPoint> {
    let max_points = max_points.max(4);
    if points.len() <= max_points {
        return points.to_vec();
    }
    let (first, last) = (0, points.len() - 1);
    let inner = &points[1..last];
    // Two points a bucket (min and max), the first and last points besides.
    let buckets = (max_points - 2) / 2;
    let size = inner.len().div_ceil(buckets);
    let mut keep: Vec<usize> = vec![first];
    for (b, chunk) in inner.chunks(size).enumerate() {
        let offset = 1 + b * size;
        let finite = chunk
            .iter()
            .enumerate()
            .filter(|(_, p)| p.value.is_finite());
        let lo = finite
            .clone()
            .min_by(|a, b| a.1.value.total_cmp(&b.1.value))
            .map(|(i, _)| i);
        let hi = finite
            .max_by(|a, b| a.1.value.total_cmp(&b.1.value))
            .map(|(i, _)| i);
        let odd = chunk.iter().position(|p| !p.value.is_finite());
        // A bucket with a non-finite point shows it in place of its maximum: the budget holds.
        let picks = [lo, odd.or(hi)];
        let mut picks: Vec<usize> = picks.into_iter().flatten().map(|i| offset + i).collect();
        picks.sort_unstable();
        picks.dedup();
        keep.extend(picks);
    }
    keep.push(last);
    keep.into_iter().map(|i| points[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<MetricPoint> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| MetricPoint {
                name: "m".into(),
                step: i as i64 * 10,
                value,
                wall_time: 0.0,
            })
            .collect()
    }

    #[test]
    fn short_series_are_returned_whole() {
        let s = series(&[1.0, 2.0, 3.0]);
        assert_eq!(min_max(&s, 10), s);
    }

    #[test]
    fn extremes_first_and_last_survive_in_step_order() {
        let mut values: Vec<f64> = (0..10_000).map(|i| (i % 100) as f64 / 100.0).collect();
        values[5_000] = 50.0; // a spike
        values[7_777] = f64::NAN; // a divergence
        let s = series(&values);
        let d = min_max(&s, 200);
        assert!(d.len() <= 200, "{}", d.len());
        assert!(d.len() >= 150, "{}", d.len());
        assert_eq!(d.first().unwrap().step, 0);
        assert_eq!(d.last().unwrap().step, 99_990);
        assert!(d.iter().any(|p| p.value == 50.0), "the spike is kept");
        assert!(d.iter().any(|p| p.value.is_nan()), "the NaN is kept");
        assert!(
            d.windows(2).all(|w| w[0].step < w[1].step),
            "sorted, no repeats"
        );
        // Every bucket keeps its minimum, so the series' floor is there.
        assert!(d.iter().filter(|p| p.value == 0.0).count() >= 90);
    }
}
