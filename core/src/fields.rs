//! Field declarations. Every section of a trial's configuration — `model`, `data`, `training` and
//! each workload's `params` — is declared once, with [`declare_fields!`]: the struct serde reads,
//! its defaults, and a table of [`Field`]s (type, accepted range, one line of meaning). That one
//! table serves the validator (values written in place and values a sweep assigns), the list of
//! sweepable paths, the CRD schema and `orrery fields`; the defaults are read back from the
//! struct's `Default`, so they cannot drift from what a worker runs.

use serde_json::Value;

/// What type a field has and which values it accepts.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// An integer in `[min, max]`.
    Int {
        min: i64,
        max: i64,
    },
    /// A finite number; `gt`/`ge`/`lt`/`le` are optional bounds.
    Num {
        gt: Option<f64>,
        ge: Option<f64>,
        lt: Option<f64>,
        le: Option<f64>,
    },
    Bool,
    Str,
    OneOf(&'static [&'static str]),
    StrList,
    /// A nested mapping with fields of its own (swept as `params.group.field`).
    Group(&'static [Field]),
    /// `null` (unset) or a value of the inner type (a Rust `Option`).
    Opt(&'static Ty),
    /// `best` or a trial id (a positive integer): `model.init_from.trial`.
    TrialRef,
    /// `null` or a mixture over data groups: `{group: weight}`, weights ≥ 0 summing to 1 (within
    /// [`MIXTURE_TOLERANCE`]); which groups it may name is a rule across sections (the workload's).
    Mixture,
}

/// How far a mixture's weights may sum from 1.
pub const MIXTURE_TOLERANCE: f64 = 1e-6;

/// An integer in `[min, max]`.
pub const fn int(min: i64, max: i64) -> Ty {
    Ty::Int { min, max }
}

/// A finite number with no bound yet; add bounds with [`Ty::gt`], [`Ty::ge`], [`Ty::lt`], [`Ty::le`].
pub const NUM: Ty = Ty::Num {
    gt: None,
    ge: None,
    lt: None,
    le: None,
};

impl Ty {
    pub const fn gt(self, b: f64) -> Ty {
        match self {
            Ty::Num { ge, lt, le, .. } => Ty::Num {
                gt: Some(b),
                ge,
                lt,
                le,
            },
            other => other,
        }
    }
    pub const fn ge(self, b: f64) -> Ty {
        match self {
            Ty::Num { gt, lt, le, .. } => Ty::Num {
                gt,
                ge: Some(b),
                lt,
                le,
            },
            other => other,
        }
    }
    pub const fn lt(self, b: f64) -> Ty {
        match self {
            Ty::Num { gt, ge, le, .. } => Ty::Num {
                gt,
                ge,
                lt: Some(b),
                le,
            },
            other => other,
        }
    }
    pub const fn le(self, b: f64) -> Ty {
        match self {
            Ty::Num { gt, ge, lt, .. } => Ty::Num {
                gt,
                ge,
                lt,
                le: Some(b),
            },
            other => other,
        }
    }

    /// True for the types a `range`/`log_range` dimension can span.
    pub fn is_numeric(self) -> bool {
        matches!(self, Ty::Int { .. } | Ty::Num { .. })
    }

    /// The type's name as `orrery fields` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Ty::Int { .. } => "integer",
            Ty::Num { .. } => "number",
            Ty::Bool => "boolean",
            Ty::Str => "string",
            Ty::OneOf(_) => "string",
            Ty::StrList => "list of strings",
            Ty::Group(_) => "mapping",
            Ty::Opt(inner) => inner.name(),
            Ty::Mixture => "mixture",
            Ty::TrialRef => "string or integer",
        }
    }

    /// The accepted values in words: `> 0, ≤ 100`, `1 … 64`, `coupled | independent`.
    pub fn range(self) -> String {
        match self {
            Ty::Int { min, max } if max == i64::MAX => format!("≥ {min}"),
            Ty::Int { min, max } => format!("{min} … {max}"),
            Ty::Num { gt, ge, lt, le } => {
                let parts: Vec<String> = [(gt, ">"), (ge, "≥"), (lt, "<"), (le, "≤")]
                    .into_iter()
                    .filter_map(|(b, op)| b.map(|b| format!("{op} {b}")))
                    .collect();
                if parts.is_empty() {
                    "any finite number".into()
                } else {
                    parts.join(", ")
                }
            }
            Ty::Bool => "true | false".into(),
            Ty::Str | Ty::StrList | Ty::Group(_) => String::new(),
            Ty::OneOf(options) => options.join(" | "),
            Ty::Opt(inner) => match inner.range() {
                r if r.is_empty() => format!("a {}, or null", inner.name()),
                r => format!("{r}, or null"),
            },
            Ty::Mixture => "{group: weight ≥ 0}, summing to 1, or null".into(),
            Ty::TrialRef => "best | a trial id".into(),
        }
    }
}

/// One declared field.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    /// One line of meaning (what `orrery fields` and the CRD's `description` say).
    pub doc: &'static str,
}

/// A section declared with [`declare_fields!`]: its fields, and its defaults as JSON.
pub trait Declared: Default + serde::Serialize {
    const FIELDS: &'static [Field];

    /// The defaults as a JSON value (unset optional fields are absent or `null`).
    fn defaults() -> Value {
        serde_json::to_value(Self::default()).unwrap_or(Value::Null)
    }
}

/// Declares a configuration section once: the struct (serde, defaults, docs) and its [`Field`]
/// table. Each field is written `name: RustType = default, Ty, "one line of meaning";`, with any
/// extra attributes (`#[serde(...)]`) before it.
///
/// ```
/// orrery_core::declare_fields! {
///     /// A toy section.
///     pub struct Toy {
///         /// ignored: the string at the end is the documentation
///         steps: u32 = 10, orrery_core::fields::int(1, 100), "how many steps";
///     }
/// }
/// use orrery_core::fields::Declared;
/// assert_eq!(Toy::default().steps, 10);
/// assert_eq!(Toy::FIELDS[0].name, "steps");
/// ```
#[macro_export]
macro_rules! declare_fields {
    (
        $(#[$smeta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $fty:ty = $default:expr, $check:expr, $doc:literal;
            )*
        }
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(default)]
        $vis struct $name {
            $(
                #[doc = $doc]
                $(#[$fmeta])*
                pub $field: $fty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $($field: $default,)* }
            }
        }

        impl $crate::fields::Declared for $name {
            const FIELDS: &'static [$crate::fields::Field] = &[
                $($crate::fields::Field { name: stringify!($field), ty: $check, doc: $doc },)*
            ];
        }
    };
}

/// The field at a dotted path inside a table (`eta`, or `aioli.eta` through a group).
pub fn lookup(fields: &'static [Field], path: &str) -> Option<&'static Field> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let f = fields.iter().find(|f| f.name == head)?;
    match (rest, f.ty) {
        (None, _) => Some(f),
        (Some(r), Ty::Group(inner)) => lookup(inner, r),
        (Some(_), _) => None,
    }
}

/// Every leaf field of a table with its dotted path under `prefix` (groups are walked into; a
/// group itself is not a leaf).
pub fn leaves(fields: &'static [Field], prefix: &str) -> Vec<(String, &'static Field)> {
    let mut out = Vec::new();
    for f in fields {
        let path = format!("{prefix}.{}", f.name);
        match f.ty {
            Ty::Group(inner) => out.extend(leaves(inner, &path)),
            _ => out.push((path, f)),
        }
    }
    out
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// Checks one value against a field type; the message says what was expected and what was found.
/// A group is checked as a mapping only: its members are checked one by one by the validator.
pub fn check_value(ty: Ty, v: &Value) -> Result<(), String> {
    match ty {
        Ty::Int { min, max } => {
            // Strictly integers: `1e3` is a float in YAML 1.2 and would not convert to a count.
            let Some(i) = v.as_i64() else {
                return Err(format!("expected an integer, got {}", describe(v)));
            };
            if i < min {
                return Err(format!("must be ≥ {min} (got {i})"));
            }
            if i > max {
                return Err(format!("must be ≤ {max} (got {i})"));
            }
            Ok(())
        }
        Ty::Num { gt, ge, lt, le } => {
            let Some(x) = v.as_f64() else {
                return Err(format!("expected a number, got {}", describe(v)));
            };
            if let Some(b) = gt.filter(|b| x <= *b) {
                return Err(format!("must be > {b} (got {x})"));
            }
            if let Some(b) = ge.filter(|b| x < *b) {
                return Err(format!("must be ≥ {b} (got {x})"));
            }
            if let Some(b) = lt.filter(|b| x >= *b) {
                return Err(format!("must be < {b} (got {x})"));
            }
            if let Some(b) = le.filter(|b| x > *b) {
                return Err(format!("must be ≤ {b} (got {x})"));
            }
            Ok(())
        }
        Ty::Bool => match v {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("expected true or false, got {}", describe(v))),
        },
        Ty::Str => match v {
            Value::String(s) if !s.is_empty() => Ok(()),
            _ => Err(format!("expected a non-empty string, got {}", describe(v))),
        },
        Ty::OneOf(options) => match v {
            Value::String(s) if options.contains(&s.as_str()) => Ok(()),
            _ => Err(format!(
                "expected one of {}, got {}",
                options.join(", "),
                describe(v)
            )),
        },
        Ty::StrList => match v {
            Value::Array(items)
                if items
                    .iter()
                    .all(|i| matches!(i, Value::String(s) if !s.is_empty())) =>
            {
                Ok(())
            }
            _ => Err(format!("expected a list of strings, got {}", describe(v))),
        },
        Ty::Group(_) => match v {
            Value::Object(_) => Ok(()),
            _ => Err(format!("expected a mapping, got {}", describe(v))),
        },
        Ty::Opt(inner) => match v {
            Value::Null => Ok(()),
            v => check_value(*inner, v),
        },
        Ty::TrialRef => match v {
            Value::String(s) if s == "best" => Ok(()),
            Value::Number(n) if n.as_i64().is_some_and(|n| n >= 1) => Ok(()),
            _ => Err(format!(
                "expected best or a trial id (an integer ≥ 1), got {}",
                describe(v)
            )),
        },
        Ty::Mixture => match v {
            Value::Null => Ok(()),
            Value::Object(m) => check_mixture(m),
            _ => Err(format!(
                "expected a mixture {{group: weight}} or null, got {}",
                describe(v)
            )),
        },
    }
}

/// Weights are numbers ≥ 0 that sum to 1 (names are checked against the data groups elsewhere).
fn check_mixture(m: &serde_json::Map<String, Value>) -> Result<(), String> {
    if m.is_empty() {
        return Err("a mixture names at least one group".into());
    }
    let mut sum = 0.0;
    for (g, w) in m {
        match w.as_f64() {
            Some(x) if x >= 0.0 && x.is_finite() => sum += x,
            _ => {
                return Err(format!(
                    "the weight of group `{g}` must be a number ≥ 0 (got {})",
                    describe(w)
                ))
            }
        }
    }
    if (sum - 1.0).abs() > MIXTURE_TOLERANCE {
        // To the tolerance's six digits: 0.9, not 0.8999999999999999.
        let shown = format!("{sum:.6}");
        let shown = shown.trim_end_matches('0').trim_end_matches('.');
        return Err(format!("the weights must sum to 1 (they sum to {shown})"));
    }
    Ok(())
}

/// Edit distance (insertions, deletions, substitutions, and swaps of two neighbours).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The candidate a misspelt `word` most likely meant: the closest one within a third of its
/// length (at least 2 edits), or else the one `word` is the last segment of (`lr` for
/// `training.lr`). `None` when nothing is close.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let limit = (word.chars().count() / 3).max(2);
    let close = candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    close.or_else(|| {
        let last = word.rsplit('.').next().unwrap_or(word);
        let mut by_tail = candidates
            .iter()
            .filter(|c| c.rsplit('.').next().is_some_and(|t| distance(t, last) <= 1));
        match (by_tail.next(), by_tail.next()) {
            (Some(one), None) => Some(*one),
            _ => None,
        }
    })
}

/// `` (did you mean `x`?)``, or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    suggest(word, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INNER: &[Field] = &[Field {
        name: "eta",
        ty: NUM.gt(0.0),
        doc: "step size",
    }];
    const TABLE: &[Field] = &[
        Field {
            name: "method",
            ty: Ty::OneOf(&["a", "b"]),
            doc: "which",
        },
        Field {
            name: "aioli",
            ty: Ty::Group(INNER),
            doc: "its settings",
        },
    ];

    #[test]
    fn nested_lookup_and_leaves() {
        assert_eq!(lookup(TABLE, "aioli.eta").unwrap().name, "eta");
        assert!(lookup(TABLE, "aioli").is_some());
        assert!(lookup(TABLE, "method.eta").is_none());
        assert!(lookup(TABLE, "aioli.nope").is_none());
        let paths: Vec<String> = leaves(TABLE, "params")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["params.method", "params.aioli.eta"]);
    }

    #[test]
    fn suggestions() {
        let fields = ["qk_layernorm", "z_loss", "mup_simple"];
        assert_eq!(suggest("qk_layernrm", fields), Some("qk_layernorm"));
        assert_eq!(suggest("zloss", fields), Some("z_loss"));
        assert_eq!(suggest("temperature", fields), None);
        let paths = ["training.lr", "training.steps", "params.qk_layernorm"];
        assert_eq!(suggest("trainig.lr", paths), Some("training.lr"));
        assert_eq!(
            suggest("params.qk_layer_norm", paths),
            Some("params.qk_layernorm")
        );
        // The section left out: found by its last segment.
        assert_eq!(suggest("qk_layernorm", paths), Some("params.qk_layernorm"));
        assert_eq!(did_you_mean("lrr", ["lr"]), " (did you mean `lr`?)");
    }

    #[test]
    fn ranges_in_words() {
        assert_eq!(NUM.gt(0.0).le(100.0).range(), "> 0, ≤ 100");
        assert_eq!(int(1, 64).range(), "1 … 64");
        assert_eq!(int(0, i64::MAX).range(), "≥ 0");
        assert_eq!(Ty::OneOf(&["x", "y"]).range(), "x | y");
    }
}
