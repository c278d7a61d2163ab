//! The `builtin:mixing` corpus: three groups built so that the mixture over them matters for a
//! small model on a fixed token budget (the aioli workload's data; `docs/workloads/aioli.md`).
//! A pilot with three unrelated Markov groups found every mixture near-equivalent; these groups
//! differ in what more of their data is worth:
//!
//! - `easy`: a cycle of 12 upper-case words, each followed by the next (2 % of the time by a
//!   random one). Learned within a few hundred steps at any weight; more of it is wasted.
//! - `hard`: sentences of a first-order Markov chain over 256 lower-case words, each with four
//!   successors of probabilities 0.4, 0.3, 0.2, 0.1. A thousand transitions and 256 spellings to
//!   learn: its loss keeps falling with more data.
//! - `shared`: the same 256 words; after a word of the first half (indices 0–127) the successor
//!   follows `hard`'s table, after one of the second half a table of its own. Half its structure
//!   is `hard`'s (planted transfer): training on either helps the other.
//!
//! Every table depends on the corpus seed only, so all splits (and every trial of a corpus seed)
//! share them; the splits are different draws from them.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Words of `hard` and `shared`.
const WORDS: usize = 256;
/// Successors per word, and their probabilities.
const SUCCESSORS: [f64; 4] = [0.4, 0.3, 0.2, 0.1];
/// Words of `easy`'s cycle.
const EASY_WORDS: usize = 12;
/// How often `easy` jumps to a random word of its cycle.
const EASY_NOISE: f64 = 0.02;

/// The tables of the three groups (from the corpus seed).
pub struct Mixing {
    words: Vec<String>,
    easy_words: Vec<String>,
    /// `hard`'s successors of each word.
    hard_next: Vec<[usize; 4]>,
    /// `shared`'s own successors (used after a word of the second half).
    shared_next: Vec<[usize; 4]>,
}

fn word(rng: &mut ChaCha8Rng, syllables: &[&str]) -> String {
    (0..rng.gen_range(1..=3))
        .map(|_| syllables[rng.gen_range(0..syllables.len())])
        .collect()
}

/// `n` distinct words.
fn vocabulary(rng: &mut ChaCha8Rng, syllables: &[&str], n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    while out.len() < n {
        let w = word(rng, syllables);
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

fn successors(rng: &mut ChaCha8Rng) -> Vec<[usize; 4]> {
    (0..WORDS)
        .map(|_| {
            let mut s = [0usize; 4];
            for x in &mut s {
                *x = rng.gen_range(0..WORDS);
            }
            s
        })
        .collect()
}

fn pick(rng: &mut ChaCha8Rng, next: &[usize; 4]) -> usize {
    let mut u: f64 = rng.gen();
    for (i, p) in SUCCESSORS.iter().enumerate() {
        if u < *p {
            return next[i];
        }
        u -= p;
    }
    next[SUCCESSORS.len() - 1]
}

impl Mixing {
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d69_7869_6e67);
        const LOWER: &[&str] = &[
            "ba", "ko", "mi", "tu", "le", "sa", "ni", "ro", "da", "pe", "zu", "fi", "go", "ha",
            "ju", "we",
        ];
        const UPPER: &[&str] = &["KA", "LO", "MU", "TE", "SI", "RA"];
        let words = vocabulary(&mut rng, LOWER, WORDS);
        let mut easy_words = vocabulary(&mut rng, UPPER, EASY_WORDS);
        easy_words.shuffle(&mut rng);
        let hard_next = successors(&mut rng);
        let shared_next = successors(&mut rng);
        Mixing {
            words,
            easy_words,
            hard_next,
            shared_next,
        }
    }

    /// Appends one sentence of `group` (`easy`, `hard` or `shared`) to `out`.
    pub fn sentence(&self, group: &str, rng: &mut ChaCha8Rng, out: &mut String) {
        let n = rng.gen_range(6..14);
        if group == "easy" {
            let mut w = rng.gen_range(0..EASY_WORDS);
            for i in 0..n {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&self.easy_words[w]);
                w = if rng.gen_bool(EASY_NOISE) {
                    rng.gen_range(0..EASY_WORDS)
                } else {
                    (w + 1) % EASY_WORDS
                };
            }
        } else {
            let mut w = rng.gen_range(0..WORDS);
            for i in 0..n {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&self.words[w]);
                let table = if group == "shared" && w >= WORDS / 2 {
                    &self.shared_next
                } else {
                    &self.hard_next
                };
                w = pick(rng, &table[w]);
            }
        }
        out.push_str(". ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Mixing, group: &str, seed: u64) -> String {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = String::new();
        while out.len() < 20_000 {
            m.sentence(group, &mut rng, &mut out);
        }
        out
    }

    /// (word, next word) pairs of a text.
    fn pairs(t: &str) -> std::collections::BTreeSet<(String, String)> {
        t.split(". ")
            .flat_map(|s| {
                let w: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
                w.windows(2)
                    .map(|p| (p[0].to_string(), p[1].to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn groups_share_what_they_should() {
        let m = Mixing::new(0);
        assert_eq!(
            Mixing::new(0).words,
            m.words,
            "tables depend on the seed only"
        );
        let (easy, hard, shared) = (
            text(&m, "easy", 1),
            text(&m, "hard", 2),
            text(&m, "shared", 3),
        );
        // easy: upper case, almost every transition the cycle's.
        assert!(easy.bytes().all(|b| !b.is_ascii_lowercase()));
        let cycle = (0..EASY_WORDS)
            .map(|i| {
                (
                    m.easy_words[i].clone(),
                    m.easy_words[(i + 1) % EASY_WORDS].clone(),
                )
            })
            .collect::<std::collections::BTreeSet<_>>();
        let steps: Vec<(String, String)> = easy
            .split(". ")
            .flat_map(|s| {
                let w: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
                w.windows(2)
                    .map(|p| (p[0].to_string(), p[1].to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let off = steps.iter().filter(|p| !cycle.contains(*p)).count() as f64;
        assert!(
            off / (steps.len() as f64) < 0.04,
            "{off} of {} off the cycle",
            steps.len()
        );
        // shared's transitions out of first-half words are hard's; out of the second half, mostly not.
        let first_half: std::collections::BTreeSet<&str> =
            m.words[..WORDS / 2].iter().map(String::as_str).collect();
        let (hp, sp) = (pairs(&hard), pairs(&shared));
        let (mut same, mut other) = ((0, 0), (0, 0));
        for p in &sp {
            let slot = if first_half.contains(p.0.as_str()) {
                &mut same
            } else {
                &mut other
            };
            slot.0 += 1;
            slot.1 += usize::from(hp.contains(p));
        }
        assert!(
            same.1 * 10 > same.0 * 6,
            "first half follows hard: {same:?}"
        );
        assert!(
            other.1 * 10 < other.0 * 3,
            "second half has its own table: {other:?}"
        );
    }
}
