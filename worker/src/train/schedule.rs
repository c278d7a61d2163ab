//! The learning-rate schedule: linear warm-up, then cosine decay to a floor.

use orrery_core::spec::TrainingSpec;

/// Learning rate at `step` (0-based): linear warm-up to `lr` over `warmup_steps`, then cosine decay
/// to `lr · min_lr_ratio` at the last step.
pub fn lr_at(t: &TrainingSpec, step: u64) -> f64 {
    if step < t.warmup_steps {
        return t.lr * (step + 1) as f64 / t.warmup_steps as f64;
    }
    // The peak is reached on the last warm-up step; decay starts on the next one and reaches the
    // minimum on the last step.
    let span = t.steps.saturating_sub(t.warmup_steps).max(1) as f64;
    let progress = ((step - t.warmup_steps + 1) as f64 / span).min(1.0);
    let min = t.lr * t.min_lr_ratio;
    min + 0.5 * (t.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_shape() {
        let t = TrainingSpec {
            steps: 100,
            warmup_steps: 10,
            lr: 1.0,
            min_lr_ratio: 0.1,
            ..TrainingSpec::default()
        };
        assert!((lr_at(&t, 0) - 0.1).abs() < 1e-12);
        assert!((lr_at(&t, 9) - 1.0).abs() < 1e-12);
        assert!(lr_at(&t, 10) < 1.0, "decay starts right after the peak");
        assert!((lr_at(&t, 99) - 0.1).abs() < 1e-12);
        assert!(lr_at(&t, 50) < 1.0 && lr_at(&t, 50) > 0.1);
    }
}
