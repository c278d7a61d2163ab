//! Training data: byte-level tokens from a multi-group corpus.
//!
//! The builtin `builtin:multidomain` corpus has four groups of deliberately different structure,
//! each generated deterministically from `data.seed` (and the group's name), with disjoint
//! train/validation/test streams:
//! - `arithmetic`: `37+58=95;` — exact, locally checkable facts;
//! - `brackets`: nested code-like expressions `f(x,[1,{y}])` — long-range bracket matching;
//! - `records`: `id=812;name=mara;city=oslo;age=41` — fixed schema, high-entropy values;
//! - `markov`: sentences from a random first-order Markov chain over invented words.
//!
//! The `builtin:mixing` corpus ([`mixing`]) has three groups built for data-mixing studies: `easy`
//! (saturates early), `hard` (keeps improving) and `shared` (half of `hard`'s structure).
//!
//! `file:PATH` groups read a user's text file, split 90/5/5 in order (train, validation, test).

pub mod mixing;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use orrery_core::spec::DataSpec;

/// Byte-level tokenizer: every byte is a token.
pub const VOCAB_SIZE: i64 = 256;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data group {group}: cannot read {path}: {source}")]
    Read {
        group: String,
        path: String,
        source: std::io::Error,
    },
    #[error("data group {group}: its {split} split has {len} bytes, fewer than seq_len + 1 = {need}; give it more text")]
    TooSmall {
        group: String,
        split: &'static str,
        len: usize,
        need: usize,
    },
    #[error("unknown data group \"{0}\"")]
    Unknown(String),
    /// A dml trial whose mixture was never resolved (the server sets it at registration).
    #[error("method dml without params.proportions: the server sets them from the mixing law of experiment \"{0}\" when it registers the experiment, and this configuration did not pass through it")]
    UnresolvedMixture(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

/// One group's bytes in its three splits.
pub struct Group {
    pub name: String,
    pub train: Vec<u8>,
    pub validation: Vec<u8>,
    pub test: Vec<u8>,
}

impl Group {
    pub fn split(&self, s: Split) -> &[u8] {
        match s {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        }
    }
}

/// FNV-1a, to derive a stable per-group seed from its name.
fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn rng_for(seed: u64, group: &str, split: Split) -> ChaCha8Rng {
    let stream = match split {
        Split::Train => 1,
        Split::Validation => 2,
        Split::Test => 3,
    };
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ name_hash(group));
    r.set_stream(stream);
    r
}

fn gen_arithmetic(rng: &mut ChaCha8Rng, out: &mut String) {
    let a: u32 = rng.gen_range(0..100);
    let b: u32 = rng.gen_range(0..100);
    match rng.gen_range(0..3) {
        0 => out.push_str(&format!("{a}+{b}={};", a + b)),
        1 if a >= b => out.push_str(&format!("{a}-{b}={};", a - b)),
        1 => out.push_str(&format!("{b}-{a}={};", b - a)),
        _ => out.push_str(&format!("{}*{}={};", a % 13, b % 13, (a % 13) * (b % 13))),
    }
}

fn gen_bracket_expr(rng: &mut ChaCha8Rng, depth: u32, out: &mut String) {
    const IDENTS: &[&str] = &["x", "y", "z", "n", "acc", "i", "k"];
    if depth == 0 || rng.gen_bool(0.3) {
        if rng.gen_bool(0.5) {
            out.push_str(IDENTS[rng.gen_range(0..IDENTS.len())]);
        } else {
            out.push_str(&rng.gen_range(0..10).to_string());
        }
        return;
    }
    let (open, close) = [("(", ")"), ("[", "]"), ("{", "}")][rng.gen_range(0..3)];
    if open == "(" {
        out.push_str(["f", "g", "h"][rng.gen_range(0..3)]);
    }
    out.push_str(open);
    let n = rng.gen_range(1..4);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        gen_bracket_expr(rng, depth - 1, out);
    }
    out.push_str(close);
}

fn gen_record(rng: &mut ChaCha8Rng, out: &mut String) {
    const NAMES: &[&str] = &[
        "mara", "ivo", "lena", "tomas", "ada", "yuki", "omar", "sina", "paul", "rosa",
    ];
    const CITIES: &[&str] = &[
        "oslo", "lima", "kyiv", "pune", "bonn", "nice", "cork", "graz",
    ];
    out.push_str(&format!(
        "id={};name={};city={};age={}\n",
        rng.gen_range(100..1000),
        NAMES[rng.gen_range(0..NAMES.len())],
        CITIES[rng.gen_range(0..CITIES.len())],
        rng.gen_range(18..90)
    ));
}

/// A random first-order Markov chain over invented words; the chain itself depends only on the
/// corpus seed, so all splits share it.
struct Markov {
    words: Vec<String>,
    next: Vec<Vec<usize>>,
}

impl Markov {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d61_726b_6f76);
        const SYL: &[&str] = &[
            "ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "da", "pe", "zu", "ri",
        ];
        let words: Vec<String> = (0..120)
            .map(|_| {
                (0..rng.gen_range(1..4))
                    .map(|_| SYL[rng.gen_range(0..SYL.len())])
                    .collect()
            })
            .collect();
        // Each word has a few likely successors: low entropy, learnable structure.
        let next = (0..words.len())
            .map(|_| (0..4).map(|_| rng.gen_range(0..words.len())).collect())
            .collect();
        Markov { words, next }
    }

    fn sentence(&self, rng: &mut ChaCha8Rng, out: &mut String) {
        let mut w = rng.gen_range(0..self.words.len());
        let n = rng.gen_range(4..12);
        for i in 0..n {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&self.words[w]);
            let succ = &self.next[w];
            w = if rng.gen_bool(0.9) {
                succ[rng.gen_range(0..succ.len())]
            } else {
                rng.gen_range(0..self.words.len())
            };
        }
        out.push_str(". ");
    }
}

fn generate(group: &str, seed: u64, split: Split, bytes: usize) -> Result<Vec<u8>, DataError> {
    let mut rng = rng_for(seed, group, split);
    let markov = (group == "markov").then(|| Markov::new(seed));
    let mixing = matches!(group, "easy" | "hard" | "shared").then(|| mixing::Mixing::new(seed));
    let mut out = String::with_capacity(bytes + 64);
    while out.len() < bytes {
        match group {
            "arithmetic" => gen_arithmetic(&mut rng, &mut out),
            "brackets" => {
                gen_bracket_expr(&mut rng, 4, &mut out);
                out.push(';');
            }
            "records" => gen_record(&mut rng, &mut out),
            "markov" => markov
                .as_ref()
                .map(|m| m.sentence(&mut rng, &mut out))
                .unwrap_or(()),
            "easy" | "hard" | "shared" => mixing
                .as_ref()
                .map(|m| m.sentence(group, &mut rng, &mut out))
                .unwrap_or(()),
            other => return Err(DataError::Unknown(other.to_string())),
        }
    }
    out.truncate(bytes);
    Ok(out.into_bytes())
}

/// All groups of a data spec, each checked to be long enough for `seq_len`.
pub fn load_groups(spec: &DataSpec, seq_len: usize) -> Result<Vec<Group>, DataError> {
    let eval_bytes = (spec.group_bytes as usize / 10).max(seq_len + 1);
    let mut groups = Vec::new();
    for (g, name) in spec.group_list().into_iter().zip(spec.group_names()) {
        let group = if let Some(path) = g.strip_prefix("file:") {
            let bytes = std::fs::read(path).map_err(|source| DataError::Read {
                group: g.clone(),
                path: path.into(),
                source,
            })?;
            let n = bytes.len();
            let (a, b) = (n * 90 / 100, n * 95 / 100);
            Group {
                name,
                train: bytes[..a].to_vec(),
                validation: bytes[a..b].to_vec(),
                test: bytes[b..].to_vec(),
            }
        } else {
            Group {
                name,
                train: generate(&g, spec.seed, Split::Train, spec.group_bytes as usize)?,
                validation: generate(&g, spec.seed, Split::Validation, eval_bytes)?,
                test: generate(&g, spec.seed, Split::Test, eval_bytes)?,
            }
        };
        for (split, name) in [
            (Split::Train, "train"),
            (Split::Validation, "validation"),
            (Split::Test, "test"),
        ] {
            let len = group.split(split).len();
            if len < seq_len + 1 {
                return Err(DataError::TooSmall {
                    group: g.clone(),
                    split: name,
                    len,
                    need: seq_len + 1,
                });
            }
        }
        groups.push(group);
    }
    Ok(groups)
}

/// A batch of inputs and next-byte targets, both `[batch, seq_len]` int64.
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
}

fn windows(
    groups: &[&Group],
    split: Split,
    offsets: &[(usize, usize)],
    seq_len: usize,
    device: Device,
) -> Batch {
    let b = offsets.len();
    let mut x = Vec::with_capacity(b * seq_len);
    let mut y = Vec::with_capacity(b * seq_len);
    for &(g, o) in offsets {
        let buf = groups[g].split(split);
        x.extend(buf[o..o + seq_len].iter().map(|&v| v as i64));
        y.extend(buf[o + 1..o + seq_len + 1].iter().map(|&v| v as i64));
    }
    let shape = [b as i64, seq_len as i64];
    Batch {
        inputs: Tensor::from_slice(&x).view(shape).to_device(device),
        targets: Tensor::from_slice(&y).view(shape).to_device(device),
    }
}

/// The group of row `row` in a round-robin (stratified) batch over `groups` groups.
pub fn round_robin_group(row: usize, groups: usize) -> usize {
    row % groups
}

/// The windows of step `step`'s training batch, `(group, offset)` per row: a function of (seed,
/// step) only, so a resumed run sees exactly the batches it would have seen. Groups are mixed
/// uniformly (round-robin rows).
/// `train_lens`: each group's training split's length.
fn train_offsets(
    train_lens: &[usize],
    seed: u64,
    step: u64,
    batch_size: usize,
    seq_len: usize,
) -> Vec<(usize, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    (0..batch_size)
        .map(|i| {
            let g = round_robin_group(i, train_lens.len());
            (g, rng.gen_range(0..train_lens[g] - seq_len))
        })
        .collect()
}

/// The windows of a batch whose rows follow the mixture `p`: group g gets ⌊p_g·B⌋ rows, and the
/// rows left over go to groups chosen with probability equal to their remainders (systematic
/// sampling: each gets ⌊p_g·B⌋ or ⌈p_g·B⌉ rows, p_g·B on average), so a batch's composition is
/// the mixture itself, as the reference's per-group counts are, not a multinomial draw around
/// it. Rows are then shuffled and each takes a random window of its group. A stream of its own,
/// so a mixed batch never repeats a round-robin one; a group of weight 0 never gets a row.
fn mixed_offsets(
    train_lens: &[usize],
    seed: u64,
    step: u64,
    batch_size: usize,
    seq_len: usize,
    p: &[f64],
) -> Vec<(usize, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d69_7865_6462_6174);
    rng.set_stream(step);
    let exact: Vec<f64> = p.iter().map(|w| w * batch_size as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let rest = batch_size.saturating_sub(counts.iter().sum());
    if rest > 0 {
        let rems: Vec<f64> = exact
            .iter()
            .zip(&counts)
            .map(|(x, c)| x - *c as f64)
            .collect();
        let last = rems.iter().rposition(|r| *r > 0.0).unwrap_or(0);
        let u: f64 = rng.gen();
        let mut g = 0;
        let mut upto = rems[0];
        for k in 0..rest {
            let point = u + k as f64;
            while point >= upto && g < last {
                g += 1;
                upto += rems[g];
            }
            counts[g] += 1;
        }
    }
    let mut rows: Vec<usize> = counts
        .iter()
        .enumerate()
        .flat_map(|(g, &c)| std::iter::repeat_n(g, c))
        .collect();
    rows.shuffle(&mut rng);
    rows.into_iter()
        .map(|g| (g, rng.gen_range(0..train_lens[g] - seq_len)))
        .collect()
}

/// The training batch of step `step`, built on the host (see [`TrainData`] for the training
/// loop's path, which gives the same batches).
pub fn train_batch(
    groups: &[Group],
    seed: u64,
    step: u64,
    batch_size: usize,
    seq_len: usize,
    device: Device,
) -> Batch {
    let refs: Vec<&Group> = groups.iter().collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.train.len()).collect();
    let offsets = train_offsets(&lens, seed, step, batch_size, seq_len);
    windows(&refs, Split::Train, &offsets, seq_len, device)
}

/// Copies a small host tensor to `device` without making the host wait: through pinned memory
/// and a non-blocking copy on CUDA (the pinned buffer is PyTorch's caching host allocator's, which
/// keeps it until the copy is done); as is on the CPU.
pub fn to_device_async(t: Tensor, device: Device) -> Tensor {
    if device.is_cuda() {
        t.pin_memory(device)
            .to_device_(device, t.kind(), true, false)
    } else {
        t
    }
}

/// Every group's training split resident on the device as one byte tensor, from which each
/// step's batch is gathered: only the batch's window offsets cross from the host, and the batches
/// are exactly [`train_batch`]'s.
pub struct TrainData {
    /// Where each group's split starts in `bytes`, and its length.
    starts: Vec<usize>,
    lens: Vec<usize>,
    bytes: Tensor,
    /// `0..=seq_len`, int64 on the device.
    window: Tensor,
    seq_len: usize,
    device: Device,
}

impl TrainData {
    pub fn new(groups: &[Group], seq_len: usize, device: Device) -> Self {
        let lens: Vec<usize> = groups.iter().map(|g| g.train.len()).collect();
        let mut all = Vec::with_capacity(lens.iter().sum());
        let mut starts = Vec::with_capacity(groups.len());
        for g in groups {
            starts.push(all.len());
            all.extend_from_slice(&g.train);
        }
        TrainData {
            starts,
            lens,
            bytes: Tensor::from_slice(&all).to_device(device),
            window: Tensor::arange(seq_len as i64 + 1, (Kind::Int64, device)),
            seq_len,
            device,
        }
    }

    /// Step `step`'s batch (a function of (seed, step) only, as [`train_batch`]).
    pub fn batch(&self, seed: u64, step: u64, batch_size: usize) -> Batch {
        self.gather(&train_offsets(
            &self.lens,
            seed,
            step,
            batch_size,
            self.seq_len,
        ))
    }

    /// Step `step`'s batch with each row's group drawn from the mixture `p` (one weight per
    /// group, summing to 1), then a window of it: a function of (seed, step, p) only.
    pub fn mixed_batch(&self, seed: u64, step: u64, batch_size: usize, p: &[f64]) -> Batch {
        self.gather(&mixed_offsets(
            &self.lens,
            seed,
            step,
            batch_size,
            self.seq_len,
            p,
        ))
    }

    fn gather(&self, offsets: &[(usize, usize)]) -> Batch {
        let starts: Vec<i64> = offsets
            .iter()
            .map(|&(g, o)| (self.starts[g] + o) as i64)
            .collect();
        let starts = to_device_async(Tensor::from_slice(&starts), self.device);
        let rows = self
            .bytes
            .take(&(starts.unsqueeze(1) + &self.window))
            .to_kind(Kind::Int64);
        let t = self.seq_len as i64;
        Batch {
            inputs: rows.narrow(1, 0, t),
            targets: rows.narrow(1, 1, t).contiguous(),
        }
    }
}

/// Fixed evaluation batches of one group: the same windows every time, spread evenly over the split.
pub fn eval_batches(
    group: &Group,
    split: Split,
    batches: usize,
    batch_size: usize,
    seq_len: usize,
    device: Device,
) -> Vec<Batch> {
    let buf = group.split(split);
    let span = buf.len() - seq_len;
    let total = batches * batch_size;
    let refs = [group];
    (0..batches)
        .map(|bi| {
            let offsets: Vec<(usize, usize)> = (0..batch_size)
                .map(|i| (0, ((bi * batch_size + i) * span) / total.max(1)))
                .collect();
            windows(&refs, split, &offsets, seq_len, device)
        })
        .collect()
}

/// Tokens of a text (for tests and examples).
pub fn encode(text: &str) -> Tensor {
    let v: Vec<i64> = text.bytes().map(|b| b as i64).collect();
    Tensor::from_slice(&v).to_kind(Kind::Int64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(groups: Vec<String>) -> DataSpec {
        DataSpec {
            groups,
            group_bytes: 5_000,
            ..DataSpec::default()
        }
    }

    #[test]
    fn builtin_groups_are_deterministic_and_distinct() {
        let a = load_groups(&spec(vec![]), 32).unwrap();
        let b = load_groups(&spec(vec![]), 32).unwrap();
        assert_eq!(a.len(), 4);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.train, y.train);
            assert_eq!(x.train.len(), 5_000);
            assert_ne!(
                x.train[..500],
                x.validation[..500],
                "splits come from different streams"
            );
        }
        let text = String::from_utf8(a[0].train[..40].to_vec()).unwrap();
        assert!(text.contains('=') && text.contains(';'), "{text}");
    }

    #[test]
    fn file_groups_split_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.txt");
        std::fs::write(&p, "abcdefghij".repeat(100)).unwrap();
        let g = load_groups(&spec(vec![format!("file:{}", p.display())]), 8).unwrap();
        assert_eq!(g[0].name, "notes");
        let odd = dir.path().join("my notes.txt");
        std::fs::copy(&p, &odd).unwrap();
        let both = vec![
            format!("file:{}", p.display()),
            format!("file:{}", odd.display()),
            format!("file:{}", p.display()),
        ];
        let names: Vec<String> = load_groups(&spec(both), 8)
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, vec!["notes", "my_notes", "notes-2"]);
        assert_eq!(
            (g[0].train.len(), g[0].validation.len(), g[0].test.len()),
            (900, 50, 50)
        );
        let err = load_groups(&spec(vec![format!("file:{}", p.display())]), 64)
            .err()
            .unwrap();
        assert!(err.to_string().contains("fewer than seq_len + 1"), "{err}");
    }

    #[test]
    fn device_batches_are_the_host_batches() {
        let g = load_groups(&spec(vec![]), 16).unwrap();
        let data = TrainData::new(&g, 16, Device::Cpu);
        for step in [0, 1, 77] {
            let host = train_batch(&g, 5, step, 9, 16, Device::Cpu);
            let dev = data.batch(5, step, 9);
            assert!(host.inputs.equal(&dev.inputs), "inputs at step {step}");
            assert!(host.targets.equal(&dev.targets), "targets at step {step}");
        }
    }

    #[test]
    fn mixed_batches_follow_their_mixture() {
        let g = load_groups(&spec(vec![]), 16).unwrap();
        let lens: Vec<usize> = g.iter().map(|x| x.train.len()).collect();
        let count =
            |rows: &[(usize, usize)], group: usize| rows.iter().filter(|r| r.0 == group).count();
        // p·B whole: exactly those counts in every batch, weight-0 groups never drawn.
        for step in 0..20 {
            let rows = mixed_offsets(&lens, 1, step, 20, 16, &[0.0, 0.7, 0.3, 0.0]);
            assert_eq!((count(&rows, 1), count(&rows, 2), rows.len()), (14, 6, 20));
        }
        // p·B = 3, 1.5, 1.5, 0: the left-over row goes to group 1 or 2, each half the time.
        let mut ones = 0;
        for step in 0..400 {
            let rows = mixed_offsets(&lens, 1, step, 6, 16, &[0.5, 0.25, 0.25, 0.0]);
            let c: Vec<usize> = (0..4).map(|k| count(&rows, k)).collect();
            assert!(c == [3, 2, 1, 0] || c == [3, 1, 2, 0], "{c:?}");
            ones += usize::from(c[1] == 2);
        }
        assert!((160..240).contains(&ones), "{ones} of 400");
        let data = TrainData::new(&g, 16, Device::Cpu);
        let p = [0.0, 0.7, 0.3, 0.0];
        let a = data.mixed_batch(1, 3, 8, &p);
        assert!(a.inputs.equal(&data.mixed_batch(1, 3, 8, &p).inputs));
        assert!(!a.inputs.equal(&data.mixed_batch(1, 4, 8, &p).inputs));
    }

    #[test]
    fn batches_depend_on_step_only() {
        let g = load_groups(&spec(vec![]), 16).unwrap();
        let a = train_batch(&g, 3, 10, 8, 16, Device::Cpu);
        let b = train_batch(&g, 3, 10, 8, 16, Device::Cpu);
        let c = train_batch(&g, 3, 11, 8, 16, Device::Cpu);
        assert!(a.inputs.equal(&b.inputs));
        assert!(!a.inputs.equal(&c.inputs));
        let shifted = a.inputs.narrow(1, 1, 15);
        assert!(
            shifted.equal(&a.targets.narrow(1, 0, 15)),
            "targets are inputs shifted by one"
        );
    }
}
