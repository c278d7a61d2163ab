//! YAML with positions.
//!
//! serde_yaml forgets where a value came from once it parsed, and stops at the first error. Spec
//! validation needs every problem at once, each with its line and column, so the spec is first read
//! into a [`serde_json::Value`] together with a [`Locations`] table (path → where the key and the
//! value start). Validation then walks the plain value and looks positions up by path.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in the spec's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Loc {
    fn from_marker(m: Marker) -> Self {
        // yaml-rust2 lines are 1-based and columns 0-based.
        Loc {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// One step of a path into the document: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub type Path = Vec<Seg>;

/// Renders a path the way a user writes it: `spec.training.lr`, `spec.search.trials[2].training.lr`.
pub fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Where each node of the document starts: `value` is the node itself, `key` the mapping key that
/// names it (for sequence items, the item).
#[derive(Debug, Default, Clone)]
pub struct Locations {
    value: HashMap<Path, Loc>,
    key: HashMap<Path, Loc>,
}

impl Locations {
    /// Where the value at `path` starts; falls back to the nearest ancestor that is known.
    pub fn value(&self, path: &[Seg]) -> Option<Loc> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.value.get(&path[..n]).copied())
    }

    /// Where the key naming `path` starts (for an unknown field); falls back like [`Self::value`].
    pub fn key(&self, path: &[Seg]) -> Option<Loc> {
        self.key.get(path).copied().or_else(|| self.value(path))
    }
}

/// A YAML document that could not be read at all (bad syntax, anchors, several documents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

enum Frame {
    // `first`: where the first item or key starts. Block collections report their start marker one
    // column late, so a container's position is the earlier of the marker and its first child.
    Seq {
        path: Path,
        items: Vec<Value>,
        first: Option<Loc>,
    },
    Map {
        path: Path,
        map: Map<String, Value>,
        pending_key: Option<(String, Loc)>,
        first: Option<Loc>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
    locs: Locations,
    error: Option<SyntaxError>,
}

impl Builder {
    fn fail(&mut self, loc: Loc, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                loc,
                message: message.into(),
            });
        }
    }

    /// The path the next node will have, and whether it is a mapping key.
    fn next_path(&self) -> (Path, bool) {
        match self.stack.last() {
            None => (Vec::new(), false),
            Some(Frame::Seq { path, items, .. }) => {
                let mut p = path.clone();
                p.push(Seg::Index(items.len()));
                (p, false)
            }
            Some(Frame::Map {
                path, pending_key, ..
            }) => match pending_key {
                None => (path.clone(), true),
                Some((k, _)) => {
                    let mut p = path.clone();
                    p.push(Seg::Key(k.clone()));
                    (p, false)
                }
            },
        }
    }

    fn push_value(&mut self, value: Value, loc: Loc) {
        let (path, _) = self.next_path();
        self.locs.value.insert(path.clone(), loc);
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, first, .. }) => {
                self.locs.key.insert(path, loc);
                first.get_or_insert(loc);
                items.push(value)
            }
            Some(Frame::Map {
                map, pending_key, ..
            }) => {
                if let Some((k, kloc)) = pending_key.take() {
                    self.locs.key.insert(path, kloc);
                    map.insert(k, value);
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let loc = Loc::from_marker(mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(
                        loc,
                        "a spec file holds one YAML document; found a second `---`",
                    );
                }
            }
            Event::Alias(_) => self.fail(loc, "YAML aliases (*name) are not supported in specs"),
            Event::Scalar(text, style, anchor, _tag) => {
                if anchor != 0 {
                    self.fail(loc, "YAML anchors (&name) are not supported in specs");
                    return;
                }
                let (path, is_key) = self.next_path();
                if is_key {
                    if let Some(Frame::Map {
                        map,
                        pending_key,
                        first,
                        ..
                    }) = self.stack.last_mut()
                    {
                        first.get_or_insert(loc);
                        if map.contains_key(&text) {
                            let mut p = path;
                            p.push(Seg::Key(text.clone()));
                            let shown = display_path(&p);
                            self.fail(loc, format!("{shown}: duplicate key `{text}`"));
                            return;
                        }
                        *pending_key = Some((text, loc));
                    }
                    return;
                }
                let value = resolve_scalar(&text, style);
                self.push_value(value, loc);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor != 0 {
                    self.fail(loc, "YAML anchors (&name) are not supported in specs");
                    return;
                }
                let (path, is_key) = self.next_path();
                if is_key {
                    self.fail(loc, "mapping keys must be plain strings");
                    return;
                }
                self.locs.value.insert(path.clone(), loc);
                if let Some(Frame::Seq { .. }) = self.stack.last() {
                    self.locs.key.insert(path.clone(), loc);
                }
                if matches!(ev, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq {
                        path,
                        items: Vec::new(),
                        first: None,
                    });
                } else {
                    self.stack.push(Frame::Map {
                        path,
                        map: Map::new(),
                        pending_key: None,
                        first: None,
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return;
                };
                let (value, first) = match frame {
                    Frame::Seq { items, first, .. } => (Value::Array(items), first),
                    Frame::Map { map, first, .. } => (Value::Object(map), first),
                };
                let (path, _) = self.next_path();
                let marker = self.locs.value.get(&path).copied().unwrap_or(loc);
                let start = first.map_or(marker, |f| f.min(marker));
                self.push_value(value, start);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// YAML 1.2 core-schema resolution of a scalar. Quoted and block scalars are always strings.
fn resolve_scalar(text: &str, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let is_int = |s: &str| {
        let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if is_int(text) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            if let Some(n) = Number::from_f64(f) {
                return Value::Number(n);
            }
        }
    }
    // Non-finite numbers cannot live in JSON; keep them as strings so validation names them.
    Value::String(text.to_string())
}

/// Reads one YAML document into a JSON value and the position of every node in it.
pub fn parse(text: &str) -> Result<(Value, Locations), SyntaxError> {
    let mut b = Builder {
        stack: Vec::new(),
        root: None,
        documents: 0,
        locs: Locations::default(),
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        let m = e.marker();
        return Err(SyntaxError {
            loc: Loc::from_marker(*m),
            message: format!("invalid YAML: {}", e.info()),
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok((b.root.unwrap_or(Value::Null), b.locs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Path {
        path.split('.').map(|s| Seg::Key(s.to_string())).collect()
    }

    #[test]
    fn values_and_positions() {
        let text = "a:\n  b: 1e-3\n  c: [1, two, true]\nd: 'x'\n";
        let (v, locs) = parse(text).unwrap();
        assert_eq!(v["a"]["b"], serde_json::json!(0.001));
        assert_eq!(v["a"]["c"], serde_json::json!([1, "two", true]));
        assert_eq!(v["d"], serde_json::json!("x"));
        assert_eq!(locs.value(&key("a.b")), Some(Loc { line: 2, col: 6 }));
        assert_eq!(locs.key(&key("a.b")), Some(Loc { line: 2, col: 3 }));
        let mut c1 = key("a.c");
        c1.push(Seg::Index(1));
        assert_eq!(locs.value(&c1), Some(Loc { line: 3, col: 10 }));
        assert_eq!(locs.value(&key("a")), Some(Loc { line: 2, col: 3 }));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.to_string(), "2:1: a: duplicate key `a`");
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let (v, _) = parse("a: '1'\nb: .inf\nc: -3\n").unwrap();
        assert_eq!(v["a"], serde_json::json!("1"));
        assert_eq!(v["b"], serde_json::json!(".inf"));
        assert_eq!(v["c"], serde_json::json!(-3));
    }
}
