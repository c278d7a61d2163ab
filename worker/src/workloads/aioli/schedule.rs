//! What each training step of an Aioli trial does: hold the prior, train one LearnParams segment,
//! or train on the learned mixture. A pure function of the step (and the trial's seed, which
//! orders the segments), so a resumed trial picks up mid-round exactly where it stopped.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use orrery_core::workloads::aioli::AioliSettings;

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// The first `prior_steps`: the given proportions.
    Prior,
    /// LearnParams segment `segment` of this round (probing group `order[segment]`), step
    /// `within` of it.
    Segment {
        segment: usize,
        within: u64,
        order: Vec<usize>,
    },
    /// Training on the learned mixture; `first` for the round's first such step, where the last
    /// segment (which probed `last_probe`) is measured and the mixture updated.
    Train {
        first: bool,
        last_probe: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub struct Schedule {
    prior_steps: u64,
    update_steps: u64,
    lp_rounds: usize,
    lp_steps: u64,
    groups: usize,
    seed: u64,
}

impl Schedule {
    pub fn new(s: &AioliSettings, prior_steps: u64, groups: usize, seed: u64) -> Self {
        Schedule {
            prior_steps,
            update_steps: s.update_steps,
            lp_rounds: s.lp_rounds as usize,
            lp_steps: s.lp_steps as u64,
            groups,
            seed,
        }
    }

    /// Steps of one round's LearnParams.
    pub fn lp_len(&self) -> u64 {
        self.lp_rounds as u64 * self.groups as u64 * self.lp_steps
    }

    /// The round step `step` (≥ prior_steps) belongs to.
    pub fn round_of(&self, step: u64) -> u64 {
        step.saturating_sub(self.prior_steps) / self.update_steps
    }

    /// Round `round`'s segment order: `lp_rounds` random permutations of the groups, one after
    /// the other.
    pub fn order(&self, round: u64) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x6c65_6172_6e70_6172);
        rng.set_stream(round);
        let mut out = Vec::with_capacity(self.lp_rounds * self.groups);
        for _ in 0..self.lp_rounds {
            let mut perm: Vec<usize> = (0..self.groups).collect();
            perm.shuffle(&mut rng);
            out.extend(perm);
        }
        out
    }

    pub fn phase(&self, step: u64) -> Phase {
        if step < self.prior_steps {
            return Phase::Prior;
        }
        let k = step - self.prior_steps;
        let (round, i) = (k / self.update_steps, k % self.update_steps);
        let order = self.order(round);
        if i < self.lp_len() {
            Phase::Segment {
                segment: (i / self.lp_steps) as usize,
                within: i % self.lp_steps,
                order,
            }
        } else {
            Phase::Train {
                first: i == self.lp_len(),
                last_probe: order.last().copied(),
            }
        }
    }

    /// How many of the steps before `step` were LearnParams steps.
    pub fn lp_steps_before(&self, step: u64) -> u64 {
        let k = step.saturating_sub(self.prior_steps);
        (k / self.update_steps) * self.lp_len() + (k % self.update_steps).min(self.lp_len())
    }

    /// The fraction of the steps before `step` (> 0) that were LearnParams steps.
    pub fn lp_fraction(&self, step: u64) -> f64 {
        self.lp_steps_before(step) as f64 / step as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        let s = AioliSettings {
            update_steps: 20,
            lp_rounds: 2,
            lp_steps: 3,
            ..AioliSettings::default()
        };
        Schedule::new(&s, 5, 2, 7)
    }

    #[test]
    fn rounds_segments_and_training() {
        let s = schedule();
        assert_eq!(s.lp_len(), 12);
        assert_eq!(s.phase(4), Phase::Prior);
        // Step 5 opens round 0; segments of 3 steps; the 4 segments probe each group twice.
        let order = s.order(0);
        assert_eq!(order.len(), 4);
        let mut first_pass = order[..2].to_vec();
        first_pass.sort();
        assert_eq!(first_pass, vec![0, 1]);
        assert_eq!(
            s.phase(5),
            Phase::Segment {
                segment: 0,
                within: 0,
                order: order.clone()
            }
        );
        assert_eq!(
            s.phase(9),
            Phase::Segment {
                segment: 1,
                within: 1,
                order: order.clone()
            }
        );
        assert_eq!(
            s.phase(17),
            Phase::Train {
                first: true,
                last_probe: Some(order[3])
            }
        );
        assert_eq!(
            s.phase(18),
            Phase::Train {
                first: false,
                last_probe: Some(order[3])
            }
        );
        // Round 1 starts at 25 with its own order.
        assert!(matches!(
            s.phase(25),
            Phase::Segment {
                segment: 0,
                within: 0,
                ..
            }
        ));
        assert_eq!(s.round_of(25), 1);
        assert_eq!(
            s.order(0),
            schedule().order(0),
            "a function of seed and round"
        );
    }

    #[test]
    fn learnparams_steps_are_counted() {
        let s = schedule();
        assert_eq!(s.lp_steps_before(5), 0);
        assert_eq!(s.lp_steps_before(10), 5);
        assert_eq!(s.lp_steps_before(25), 12);
        assert_eq!(s.lp_steps_before(30), 17);
        assert_eq!(s.lp_steps_before(45), 24);
    }
}
