//! One label matcher (`name op "value"`) and its label name; regexes compiled with the upstream's
//! meaning (see [`crate::regex_dialect`]).

use super::{MAX_LABEL_NAME_LEN, MAX_LABEL_VALUE_LEN, SelectorError};
use regex::{Regex, RegexBuilder};
use std::fmt;

/// Compiled-program budget per regex. Bounds memory (this also runs inside Envoy's wasm VM) for
/// hostile patterns like `(a{100}){100}`, which are rejected rather than compiled.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Characters with a meaning in regex syntax outside a character class. A pattern free of them
/// (and without `(?x)`, which would need `(`) matches exactly its own text.
const REGEX_META: &[char] = &[
    '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
];

/// A label name following the Prometheus rule `[a-zA-Z_][a-zA-Z0-9_]*`, at most
/// [`MAX_LABEL_NAME_LEN`] bytes.
/// Whether `name` is a Prometheus label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelName(pub(super) String);

impl LabelName {
    pub fn new(name: &str) -> Result<Self, SelectorError> {
        // Length first, so an error never carries an unbounded name.
        if name.len() > MAX_LABEL_NAME_LEN {
            return Err(SelectorError::LabelNameTooLong { len: name.len() });
        }
        if is_label_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(SelectorError::InvalidLabelName {
                name: name.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for LabelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A matcher operator. The declaration order is the canonical sort order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operator together with what it needs to test a value, so a regex operator can never lack
/// its compiled regex.
#[derive(Clone)]
enum Test {
    Eq,
    Ne,
    Re(Regex),
    Nre(Regex),
}

/// One `name op "value"` condition on a label.
///
/// Equality, hashing and ordering use `(name, op, value)`; the compiled regex is derived data.
#[derive(Clone)]
pub struct Matcher {
    pub(super) name: LabelName,
    value: String,
    test: Test,
}

impl Matcher {
    /// Validates the name and the value (no control characters, at most
    /// [`MAX_LABEL_VALUE_LEN`] bytes, a valid regex for `=~`/`!~`).
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, SelectorError> {
        Self::with_name(LabelName::new(name)?, op, value)
    }

    pub(super) fn with_name(
        name: LabelName,
        op: MatchOp,
        value: &str,
    ) -> Result<Matcher, SelectorError> {
        if value.len() > MAX_LABEL_VALUE_LEN {
            return Err(SelectorError::ValueTooLong {
                label: name.0,
                len: value.len(),
            });
        }
        if value.chars().any(char::is_control) {
            return Err(SelectorError::ControlCharacter { label: name.0 });
        }
        // Prometheus's PromQL lexer refuses U+FFFD (it stands for bytes that were not UTF-8),
        // so a policy holding it could never be enforced in a query.
        if value.contains(char::REPLACEMENT_CHARACTER) {
            return Err(SelectorError::ReplacementCharacter { label: name.0 });
        }
        let test = match op {
            MatchOp::Eq => Test::Eq,
            MatchOp::Ne => Test::Ne,
            MatchOp::Re => Test::Re(compile_anchored(&name, value)?),
            MatchOp::Nre => Test::Nre(compile_anchored(&name, value)?),
        };
        Ok(Matcher {
            name,
            value: value.to_owned(),
            test,
        })
    }

    pub fn name(&self) -> &LabelName {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        match self.test {
            Test::Eq => MatchOp::Eq,
            Test::Ne => MatchOp::Ne,
            Test::Re(_) => MatchOp::Re,
            Test::Nre(_) => MatchOp::Nre,
        }
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// The compiled, anchored regex of a `=~` or `!~` matcher.
    pub fn regex(&self) -> Option<&regex::Regex> {
        match &self.test {
            Test::Re(re) | Test::Nre(re) => Some(re),
            Test::Eq | Test::Ne => None,
        }
    }

    /// Prometheus semantics: regexes are fully anchored, and an absent label is tested as `""`.
    pub fn matches_value(&self, v: &str) -> bool {
        match &self.test {
            Test::Eq => v == self.value,
            Test::Ne => v != self.value,
            Test::Re(re) => re.is_match(v),
            Test::Nre(re) => !re.is_match(v),
        }
    }

    /// The exact, finite set of values this matcher admits, when it has one.
    pub(super) fn admitted_literals(&self) -> Option<Vec<&str>> {
        match self.test {
            Test::Eq => Some(vec![self.value.as_str()]),
            Test::Re(_) => literal_alternation(&self.value),
            Test::Ne | Test::Nre(_) => None,
        }
    }

    /// The exact, finite set of values this matcher rejects, when it has one.
    pub(super) fn rejected_literals(&self) -> Option<Vec<&str>> {
        match self.test {
            Test::Ne => Some(vec![self.value.as_str()]),
            Test::Nre(_) => literal_alternation(&self.value),
            Test::Eq | Test::Re(_) => None,
        }
    }
}

/// Compiles `value` as a fully anchored regex with Go's meaning (see [`crate::regex_dialect`]),
/// as Prometheus runs it. Prometheus 2 anchors as `^(?:…)$`, 3 as `^(?s:…)$`, so `.` matches a
/// newline in one and not the other; the wrapper here is 3's. No decision depends on the
/// difference: Tollgate only ever tests values it parsed itself, which never contain a control
/// character, and it draws no conclusion from a regex it cannot reduce to literals (such as
/// taking `.*` for "every value").
fn compile_anchored(name: &LabelName, value: &str) -> Result<Regex, SelectorError> {
    let value = &crate::regex_dialect::to_rust(value).map_err(|err| match err {
        crate::regex_dialect::PatternError::Syntax(message) => SelectorError::InvalidRegex {
            label: name.0.clone(),
            message,
        },
        crate::regex_dialect::PatternError::Dialect(error) => SelectorError::UnsupportedRegex {
            label: name.0.clone(),
            error,
        },
    })?;
    let build = |pattern: &str| {
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|err| SelectorError::InvalidRegex {
                label: name.0.clone(),
                message: one_line(&err),
            })
    };
    // Validate the pattern on its own first: `a)|(b` is invalid alone but would parse once
    // wrapped, with a different, unanchored meaning.
    build(value)?;
    build(&format!("^(?s:{value})$"))
}

/// regex's parse errors span several lines (pattern, caret, reason); errors end up in HTTP
/// bodies and logs, so keep just the reason.
fn one_line(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `a|b|c` where every part is non-empty plain text: the exact set of strings the anchored regex
/// matches. Empty parts are refused (they would admit an absent label) to keep this simple.
fn literal_alternation(pattern: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = pattern.split('|').collect();
    parts
        .iter()
        .all(|part| !part.is_empty() && !part.contains(REGEX_META))
        .then_some(parts)
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op() == other.op() && self.value == other.value
    }
}

impl Eq for Matcher {}

impl std::hash::Hash for Matcher {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.op().hash(state);
        self.value.hash(state);
    }
}

impl PartialOrd for Matcher {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Matcher {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name
            .cmp(&other.name)
            .then(self.op().cmp(&other.op()))
            .then_with(|| self.value.cmp(&other.value))
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("name", &self.name.0)
            .field("op", &self.op())
            .field("value", &self.value)
            .finish()
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op())?;
        for c in self.value.chars() {
            if c == '\\' || c == '"' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}
