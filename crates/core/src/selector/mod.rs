//! Label policies: Prometheus-style selectors such as `{ns="a", env=~"prod|staging"}`, OR-ed with
//! `or`. An empty policy is unrestricted.
//!
//! Parsing never panics and reports typed errors; the canonical text ([`fmt::Display`]) parses
//! back to an equal value. [`Policy::contains`] is *sound* (it never claims containment that does
//! not hold) and may be conservative: it lets a client narrow its scope, never widen it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod matcher;
mod parse;

pub use matcher::{LabelName, MatchOp, Matcher, is_label_name};
use parse::Parser;

/// Longest label value accepted, in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 1024;
/// Longest label name accepted, in bytes.
pub const MAX_LABEL_NAME_LEN: usize = 128;

/// Why a label name, matcher or policy text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "invalid label name {name:?}: a label name must start with an ASCII letter or `_` and contain only ASCII letters, digits and `_`"
    )]
    InvalidLabelName { name: String },
    #[error("label name is {len} bytes long; at most {max} bytes are allowed", max = MAX_LABEL_NAME_LEN)]
    LabelNameTooLong { len: usize },
    #[error(
        "the value for label `{label}` contains a control character; label values may not contain control characters"
    )]
    ControlCharacter { label: String },
    #[error(
        "the value for label `{label}` contains U+FFFD, the replacement character, which Prometheus refuses in queries"
    )]
    ReplacementCharacter { label: String },
    #[error("the value for label `{label}` is {len} bytes long; at most {max} bytes are allowed", max = MAX_LABEL_VALUE_LEN)]
    ValueTooLong { label: String, len: usize },
    #[error("invalid regular expression for label `{label}`: {message}")]
    InvalidRegex { label: String, message: String },
    /// Valid for Rust but outside the subset Go's RE2 (which the upstream runs) reads alike.
    #[error(
        "regular expression for label `{label}`: {error} (Prometheus runs label regexes with Go's RE2; Tollgate accepts only what RE2 and its own checker read alike)"
    )]
    UnsupportedRegex {
        label: String,
        error: crate::regex_dialect::DialectError,
    },
    /// `position` is a byte offset into the policy text.
    #[error("syntax error at byte {position}: expected {expected}")]
    Syntax {
        position: usize,
        expected: &'static str,
    },
    #[error(
        "empty selector `{{}}` at byte {position}: a selector needs at least one matcher (for unrestricted access use an empty policy)"
    )]
    EmptySelector { position: usize },
    #[error("unterminated string starting at byte {position}")]
    UnterminatedString { position: usize },
    #[error(
        "unsupported escape sequence at byte {position} (backslash followed by {escape:?}): only `\\\\`, `\\\"` and `\\'` are allowed, and label values may not contain control characters"
    )]
    InvalidEscape { position: usize, escape: char },
}

impl SelectorError {
    /// The byte offset into the policy text the error points at, for the errors the parser
    /// places (syntax, strings, escapes); `None` for errors about a whole name or value.
    pub fn position(&self) -> Option<usize> {
        match self {
            SelectorError::Syntax { position, .. }
            | SelectorError::EmptySelector { position }
            | SelectorError::UnterminatedString { position }
            | SelectorError::InvalidEscape { position, .. } => Some(*position),
            _ => None,
        }
    }
}

/// A policy that parses but exceeds the configured [`PolicyLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the policy has {count} selectors; at most {max} are allowed")]
    TooManySelectors { count: usize, max: usize },
    #[error("a selector has {count} matchers; at most {max} are allowed per selector")]
    TooManyMatchers { count: usize, max: usize },
    #[error(
        "label `{name}` appears in more than one matcher of the same selector; use a single matcher per label (a regex can express alternatives)"
    )]
    DuplicateLabelName { name: String },
    #[error(
        "selector {selector} can never match any series (its matchers contradict each other); an empty selector is refused"
    )]
    SelectsNothing { selector: String },
}

/// One `{...}`: matchers that must all hold. Kept canonical: sorted by `(name, op, value)`,
/// exact duplicates removed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    matchers: Vec<Matcher>,
}

impl Selector {
    pub fn new(mut matchers: Vec<Matcher>) -> Selector {
        matchers.sort();
        matchers.dedup();
        Selector { matchers }
    }

    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Whether a series with these labels is selected. An absent label is tested as `""`; if a
    /// name repeats, its first value counts.
    pub fn matches(&self, labels: &[(&str, &str)]) -> bool {
        self.matchers.iter().all(|m| {
            let value = labels
                .iter()
                .find(|(name, _)| *name == m.name.as_str())
                .map_or("", |(_, value)| *value);
            m.matches_value(value)
        })
    }

    /// Whether every series `other` selects is also selected by `self`. Sound; may answer
    /// `false` when it cannot tell.
    ///
    /// A selector that provably selects nothing is *not* taken as contained: callers refuse it
    /// (see [`Selector::selects_nothing`]) rather than let an engine disagreement about
    /// "nothing" turn into a wider selection.
    pub fn contains(&self, other: &Selector) -> bool {
        !other.selects_nothing()
            && self
                .matchers
                .iter()
                .all(|m| implies(other.on_label(&m.name), m))
    }

    /// The (contiguous, as they are sorted) matchers on one label.
    fn on_label(&self, name: &LabelName) -> &[Matcher] {
        let start = self.matchers.partition_point(|m| m.name < *name);
        let rest = self.matchers.get(start..).unwrap_or(&[]);
        let len = rest.partition_point(|m| m.name == *name);
        rest.get(..len).unwrap_or(&[])
    }

    /// Provably selects nothing, e.g. `{a="x", a="y"}`. Such a selector has no legitimate use
    /// as a narrowing or a policy, and is refused wherever a client or an admin supplies one.
    pub fn selects_nothing(&self) -> bool {
        self.matchers
            .chunk_by(|a, b| a.name == b.name)
            .any(|group| admitted_values(group).is_some_and(|values| values.is_empty()))
    }
}

/// The exact set of values a conjunction of matchers on one label admits, when one of them pins
/// the label to finitely many values.
fn admitted_values(group: &[Matcher]) -> Option<Vec<&str>> {
    let candidates = group.iter().find_map(Matcher::admitted_literals)?;
    Some(
        candidates
            .into_iter()
            .filter(|v| group.iter().all(|m| m.matches_value(v)))
            .collect(),
    )
}

/// Does the conjunction `xs` (all on `m`'s label, possibly empty = label unconstrained) admit only
/// values that `m` admits? Every branch is either exact or a syntactic identity; unknown = false.
fn implies(xs: &[Matcher], m: &Matcher) -> bool {
    if let Some(values) = admitted_values(xs) {
        return values.iter().all(|v| m.matches_value(v));
    }
    if let Some(rejected) = m.rejected_literals() {
        // m fails only on these values; implied iff xs rejects each of them.
        return rejected
            .iter()
            .all(|r| xs.iter().any(|x| !x.matches_value(r)));
    }
    xs.contains(m)
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

/// Bounds an admin may put on stored policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLimits {
    pub max_selectors: usize,
    pub max_matchers_per_selector: usize,
    /// Reject a selector that names the same label in two matchers.
    pub unique_label_names: bool,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits {
            max_selectors: 8,
            max_matchers_per_selector: 10,
            unique_label_names: true,
        }
    }
}

/// A label policy: selectors OR-ed together; no selectors = unrestricted. Kept canonical:
/// selectors sorted and deduplicated. Serialized as its canonical text. Equality and hashing
/// are by selectors only.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Policy {
    // Shared: grants of one account, and every request's effective policy, clone it.
    selectors: std::sync::Arc<[Selector]>,
    /// What is derived from the selectors on first use and shared by every clone: a grant's
    /// policy is enforced and sent upstream on every request it makes, so this is done once
    /// per grant (per snapshot in the server, per cache entry in the filter), not per request.
    derived: std::sync::Arc<Derived>,
}

#[derive(Default)]
struct Derived {
    /// The PromQL enforcer.
    enforcer: std::sync::OnceLock<CompiledEnforcer>,
    /// The canonical text ([`Policy::text`]).
    text: std::sync::OnceLock<String>,
}

type CompiledEnforcer = Result<Option<crate::promql::Enforcer>, crate::promql::QueryError>;

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.selectors == other.selectors
    }
}

impl Eq for Policy {}

impl std::hash::Hash for Policy {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.selectors.hash(state);
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("selectors", &self.selectors)
            .finish()
    }
}

impl Policy {
    fn from_selectors(selectors: std::sync::Arc<[Selector]>) -> Policy {
        Policy {
            selectors,
            derived: std::sync::Arc::default(),
        }
    }

    pub fn unrestricted() -> Policy {
        Policy::from_selectors(std::sync::Arc::from(Vec::new()))
    }

    /// The PromQL enforcer of this policy (`None` when unrestricted), built once per policy
    /// value and shared by its clones.
    pub fn enforcer(&self) -> Result<Option<&crate::promql::Enforcer>, crate::promql::QueryError> {
        match self
            .derived
            .enforcer
            .get_or_init(|| crate::promql::Enforcer::new(self))
        {
            Ok(enforcer) => Ok(enforcer.as_ref()),
            Err(err) => Err(err.clone()),
        }
    }

    /// The canonical text (what `to_string` prints), printed once per policy: it is sent
    /// upstream as `x-tollgate-labels` on every restricted request.
    pub fn text(&self) -> &str {
        self.derived.text.get_or_init(|| self.to_string())
    }

    /// Canonicalises. A selector without matchers selects everything, so a policy containing
    /// one is unrestricted (this also keeps `{}` out of the canonical text).
    pub fn new(mut selectors: Vec<Selector>) -> Policy {
        if selectors.iter().any(|s| s.matchers.is_empty()) {
            return Policy::unrestricted();
        }
        selectors.sort();
        selectors.dedup();
        Policy::from_selectors(selectors.into())
    }

    /// Parses `{...} or {...}`; empty or whitespace-only text is unrestricted.
    pub fn parse(text: &str) -> Result<Policy, SelectorError> {
        Parser { src: text, pos: 0 }.policy().map(Policy::new)
    }

    pub fn is_unrestricted(&self) -> bool {
        self.selectors.is_empty()
    }

    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// Whether a series with these labels is within the policy.
    pub fn matches(&self, labels: &[(&str, &str)]) -> bool {
        self.is_unrestricted() || self.selectors.iter().any(|s| s.matches(labels))
    }

    /// Whether every series `other` admits is also admitted by `self`. Sound (never `true`
    /// wrongly), conservative: each of `other`'s selectors must lie within one of ours.
    pub fn contains(&self, other: &Policy) -> bool {
        if self.is_unrestricted() {
            return true;
        }
        if other.is_unrestricted() {
            return false;
        }
        other
            .selectors
            .iter()
            .all(|x| self.selectors.iter().any(|p| p.contains(x)))
    }

    /// The client's narrowing `requested` as an effective policy, or `None` when it is not
    /// within this one. Each requested selector is ANDed with the policy selector that contains
    /// it: the upstream still evaluates the policy's own matchers, so the containment check is
    /// never the only thing between a client and a wider selection.
    pub fn narrowed_by(&self, requested: &Policy) -> Option<Policy> {
        if self.is_unrestricted() {
            return Some(requested.clone());
        }
        if requested.is_unrestricted() {
            return None;
        }
        let mut narrowed = Vec::with_capacity(requested.selectors.len());
        for wanted in requested.selectors.iter() {
            let within = self.selectors.iter().find(|p| p.contains(wanted))?;
            let mut matchers = wanted.matchers.clone();
            matchers.extend(within.matchers.iter().cloned());
            narrowed.push(Selector::new(matchers));
        }
        Some(Policy::new(narrowed))
    }

    /// The first selector that provably selects nothing, if any.
    pub fn selector_selecting_nothing(&self) -> Option<&Selector> {
        self.selectors.iter().find(|s| s.selects_nothing())
    }

    pub fn validate(&self, limits: &PolicyLimits) -> Result<(), LimitError> {
        if self.selectors.len() > limits.max_selectors {
            return Err(LimitError::TooManySelectors {
                count: self.selectors.len(),
                max: limits.max_selectors,
            });
        }
        for selector in self.selectors.iter() {
            if selector.matchers.len() > limits.max_matchers_per_selector {
                return Err(LimitError::TooManyMatchers {
                    count: selector.matchers.len(),
                    max: limits.max_matchers_per_selector,
                });
            }
            if limits.unique_label_names {
                let repeated = selector
                    .matchers
                    .chunk_by(|a, b| a.name == b.name)
                    .find(|group| group.len() > 1)
                    .and_then(|group| group.first());
                if let Some(m) = repeated {
                    return Err(LimitError::DuplicateLabelName {
                        name: m.name.0.clone(),
                    });
                }
            }
        }
        if let Some(empty) = self.selector_selecting_nothing() {
            return Err(LimitError::SelectsNothing {
                selector: empty.to_string(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.selectors.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl FromStr for Policy {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Policy::parse(text)
    }
}

impl TryFrom<String> for Policy {
    type Error = SelectorError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Policy::parse(&text)
    }
}

impl From<Policy> for String {
    fn from(policy: Policy) -> String {
        policy.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(text: &str) -> Policy {
        Policy::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    #[test]
    fn regexes_outside_the_shared_dialect_are_refused() {
        for text in [
            r#"{ns=~"[o&&p]ther"}"#,
            r#"{team!~"[[s]]ecret"}"#,
            r#"{ns=~"(?i)prod"}"#,
            r#"{ns=~"\\pL+"}"#,
        ] {
            let err = Policy::parse(text).unwrap_err();
            assert!(
                matches!(err, SelectorError::UnsupportedRegex { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().contains("Go's RE2"), "{text}: {err}");
        }
        // `\d` is read as Go reads it (ASCII digits), not as Rust's Unicode digits.
        let m = Matcher::new("a", MatchOp::Re, r"\d+").unwrap();
        assert!(m.matches_value("42"));
        assert!(!m.matches_value("٣"), "Arabic-Indic digit");
        let m = Matcher::new("a", MatchOp::Re, r"\s").unwrap();
        assert!(!m.matches_value("\u{a0}"), "no-break space");
        assert!(!m.matches_value("\u{b}"), "Go's \\s has no vertical tab");
    }

    #[test]
    fn selectors_selecting_nothing_fail_validation() {
        let limits = PolicyLimits {
            unique_label_names: false,
            ..PolicyLimits::default()
        };
        for text in [
            r#"{a="x", a="y"}"#,
            r#"{b="1"} or {a="x", a!~"x|y"}"#,
            r#"{a=~"x|y", a!="x", a!="y"}"#,
        ] {
            let err = p(text).validate(&limits).unwrap_err();
            assert!(
                matches!(err, LimitError::SelectsNothing { .. }),
                "{text}: {err}"
            );
        }
        assert!(p(r#"{a=~"x|y", a!="x"}"#).validate(&limits).is_ok());
    }

    #[test]
    fn parse_canonical() {
        const CASES: &[(&str, &str, &str)] = &[
            (r#"{a="x"}"#, r#"{a="x"}"#, "simplest selector"),
            ("", "", "empty text is unrestricted"),
            ("  \n\t ", "", "whitespace-only text is unrestricted"),
            (
                r#"  { a = "x" , }  "#,
                r#"{a="x"}"#,
                "whitespace and trailing comma",
            ),
            (
                r#"{b="y",a="x"}"#,
                r#"{a="x", b="y"}"#,
                "matchers sorted by name",
            ),
            (
                r#"{a="x", a="x"}"#,
                r#"{a="x"}"#,
                "duplicate matchers removed",
            ),
            (
                r#"{a!~"y.*", a=~"z|w", a!="x", a="v"}"#,
                r#"{a="v", a!="x", a=~"z|w", a!~"y.*"}"#,
                "same name sorted by operator = != =~ !~",
            ),
            (
                r#"{a="y", a="x"}"#,
                r#"{a="x", a="y"}"#,
                "same name and op sorted by value",
            ),
            (
                r#"{b="1"} or {a="2"}"#,
                r#"{a="2"} or {b="1"}"#,
                "selectors sorted",
            ),
            (
                r#"{a="x"} or {a="x"}"#,
                r#"{a="x"}"#,
                "duplicate selectors removed",
            ),
            (
                r#"{b="y", a="x"} or {a="x",b="y",}"#,
                r#"{a="x", b="y"}"#,
                "selectors equal after canonicalisation are deduplicated",
            ),
            (
                r#"{a="x"}or{b="y"}"#,
                r#"{a="x"} or {b="y"}"#,
                "`or` without spaces",
            ),
            (r#"{a='x'}"#, r#"{a="x"}"#, "single-quoted value"),
            (
                r#"{a='it\'s "q"'}"#,
                r#"{a="it's \"q\""}"#,
                "single quotes with escapes",
            ),
            (
                r#"{a="q\"b\\s"}"#,
                r#"{a="q\"b\\s"}"#,
                "escaped quote and backslash kept",
            ),
            (
                r#"{a=~"x\\.y"}"#,
                r#"{a=~"x\\.y"}"#,
                "regex with escaped dot",
            ),
            (r#"{a=~`x\.y`}"#, r#"{a=~"x\\.y"}"#, "raw backtick string"),
            (
                r#"{__name__="up", _a1=""}"#,
                r#"{__name__="up", _a1=""}"#,
                "underscore names",
            ),
            (
                r#"{a="é€ x"}"#,
                r#"{a="é€ x"}"#,
                "unicode and spaces in values",
            ),
            (
                r#"{kube_namespace="prometheus"} or {team="a", env=~"prod|staging"}"#,
                r#"{env=~"prod|staging", team="a"} or {kube_namespace="prometheus"}"#,
                "example from the design",
            ),
        ];
        for (input, want, why) in CASES {
            let got = Policy::parse(input)
                .unwrap_or_else(|e| panic!("{why}: {input:?} should parse: {e}"));
            assert_eq!(got.to_string(), *want, "{why}: {input:?}");
            assert_eq!(p(want), got, "{why}: canonical text parses back");
        }
    }

    /// `InvalidRegex` messages come from the regex crate; compare everything else.
    fn comparable(err: SelectorError) -> SelectorError {
        match err {
            SelectorError::InvalidRegex { label, .. } => SelectorError::InvalidRegex {
                label,
                message: String::new(),
            },
            other => other,
        }
    }

    #[test]
    fn parse_errors() {
        use SelectorError::*;
        let long_name = "a".repeat(MAX_LABEL_NAME_LEN + 1);
        let long_value = "v".repeat(MAX_LABEL_VALUE_LEN + 1);
        let ok_value = "v".repeat(MAX_LABEL_VALUE_LEN);
        let re = |label: &str| InvalidRegex {
            label: label.into(),
            message: String::new(),
        };
        let syntax = |position, expected| Syntax { position, expected };
        let cases: Vec<(String, SelectorError, &str)> = vec![
            ("{}".into(), EmptySelector { position: 0 }, "empty selector"),
            (
                " { } ".into(),
                EmptySelector { position: 1 },
                "empty selector with spaces",
            ),
            (
                r#"{a="x"} or {}"#.into(),
                EmptySelector { position: 11 },
                "empty second selector",
            ),
            (
                r#"{1a="x"}"#.into(),
                InvalidLabelName { name: "1a".into() },
                "leading digit",
            ),
            (
                r#"{é="x"}"#.into(),
                InvalidLabelName { name: "é".into() },
                "non-ASCII name",
            ),
            (
                format!(r#"{{{long_name}="x"}}"#),
                LabelNameTooLong { len: 129 },
                "long name",
            ),
            (
                "{a=\"x\ny\"}".into(),
                ControlCharacter { label: "a".into() },
                "raw newline",
            ),
            (
                "{a=`x\ty`}".into(),
                ControlCharacter { label: "a".into() },
                "raw tab",
            ),
            (
                r#"{a="x\ny"}"#.into(),
                InvalidEscape {
                    position: 5,
                    escape: 'n',
                },
                "\\n escape",
            ),
            (
                r#"{a="\t"}"#.into(),
                InvalidEscape {
                    position: 4,
                    escape: 't',
                },
                "\\t escape",
            ),
            (
                r#"{a=~"x\.y"}"#.into(),
                InvalidEscape {
                    position: 6,
                    escape: '.',
                },
                "regex escape must be doubled",
            ),
            (
                format!(r#"{{a="{long_value}"}}"#),
                ValueTooLong {
                    label: "a".into(),
                    len: MAX_LABEL_VALUE_LEN + 1,
                },
                "value too long",
            ),
            (r#"{a=~"("}"#.into(), re("a"), "unclosed group"),
            (
                r#"{a=~"a)|(b"}"#.into(),
                re("a"),
                "anchor-escaping regex is rejected",
            ),
            (
                r#"{a!~"x\\"}"#.into(),
                re("a"),
                "trailing backslash in regex",
            ),
            (
                r#"{a=~"(a{1000}){1000}"}"#.into(),
                UnsupportedRegex {
                    label: "a".into(),
                    error: crate::regex_dialect::DialectError {
                        position: 2,
                        construct: "nested counted repetitions of more than 1000 copies in all",
                        advice: "Go's RE2 refuses them; repeat fewer times",
                    },
                },
                "regex too big for Go",
            ),
            (
                format!(r#"{{a=~"{}"}}"#, "(?:.{1000})|".repeat(80)),
                re("a"),
                "regex too big for the compiled-program budget",
            ),
            (
                r#"a="x""#.into(),
                syntax(0, "`{` starting a selector"),
                "missing brace",
            ),
            (
                r#"{a="x""#.into(),
                syntax(6, "`,` or `}`"),
                "unclosed selector",
            ),
            (
                r#"{a="x" b="y"}"#.into(),
                syntax(7, "`,` or `}`"),
                "missing comma",
            ),
            (
                r#"{a "x"}"#.into(),
                syntax(3, "matcher operator (`=`, `!=`, `=~` or `!~`)"),
                "missing operator",
            ),
            (
                r#"{a!"x"}"#.into(),
                syntax(2, "matcher operator (`=`, `!=`, `=~` or `!~`)"),
                "bad operator",
            ),
            (
                r#"{a==x}"#.into(),
                syntax(3, "quoted label value"),
                "double equals",
            ),
            (
                r#"{a=x}"#.into(),
                syntax(3, "quoted label value"),
                "unquoted value",
            ),
            (
                r#"{a="x}"#.into(),
                UnterminatedString { position: 3 },
                "unterminated string",
            ),
            (
                r#"{a="x\"#.into(),
                UnterminatedString { position: 3 },
                "backslash at end",
            ),
            (r#"{,}"#.into(), syntax(1, "label name"), "leading comma"),
            (
                r#"{a="x",,}"#.into(),
                syntax(7, "label name or `}`"),
                "double comma",
            ),
            (
                r#"{a-b="x"}"#.into(),
                syntax(2, "matcher operator (`=`, `!=`, `=~` or `!~`)"),
                "dash in name",
            ),
            (
                r#"{a="x"} and {b="y"}"#.into(),
                syntax(8, "`or` or end of input"),
                "unknown keyword",
            ),
            (
                r#"{a="x"} OR {b="y"}"#.into(),
                syntax(8, "`or` or end of input"),
                "`or` is case-sensitive",
            ),
            (
                r#"{a="x"} {b="y"}"#.into(),
                syntax(8, "`or` or end of input"),
                "missing `or`",
            ),
            (
                r#"{a="x"} or"#.into(),
                syntax(10, "`{` starting a selector"),
                "dangling `or`",
            ),
            (
                r#"or {a="x"}"#.into(),
                syntax(0, "`{` starting a selector"),
                "leading `or`",
            ),
            (
                r#"up{a="x"}"#.into(),
                syntax(0, "`{` starting a selector"),
                "metric name prefix",
            ),
        ];
        for (input, want, why) in cases {
            let got = Policy::parse(&input)
                .map(|p| p.to_string())
                .map_err(comparable);
            assert_eq!(got, Err(want), "{why}: {input:?}");
        }
        assert!(
            Policy::parse(&format!(r#"{{a="{ok_value}"}}"#)).is_ok(),
            "value of exactly the maximum length"
        );
    }

    #[test]
    fn error_messages_are_readable() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "{}",
                "use an empty policy",
                "empty selector says how to get unrestricted",
            ),
            (
                r#"{a="x\n"}"#,
                r#"only `\\`, `\"` and `\'` are allowed"#,
                "escape list",
            ),
            (
                r#"{a=~"("}"#,
                "invalid regular expression for label `a`: ",
                "regex error names the label",
            ),
            (
                r#"{a="x""#,
                "syntax error at byte 6: expected `,` or `}`",
                "syntax error",
            ),
        ];
        for (input, want, why) in cases {
            let message = Policy::parse(input).unwrap_err().to_string();
            assert!(
                message.contains(want),
                "{why}: {message:?} should contain {want:?}"
            );
            assert!(!message.contains('\n'), "{why}: single line: {message:?}");
        }
    }

    #[test]
    fn matcher_constructor_validates() {
        use SelectorError::*;
        type Case<'a> = (
            &'a str,
            MatchOp,
            &'a str,
            Result<(), SelectorError>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            ("a", MatchOp::Eq, "x", Ok(()), "plain"),
            (
                "",
                MatchOp::Eq,
                "x",
                Err(InvalidLabelName {
                    name: String::new(),
                }),
                "empty name",
            ),
            (
                "a b",
                MatchOp::Eq,
                "x",
                Err(InvalidLabelName { name: "a b".into() }),
                "space in name",
            ),
            (
                "a",
                MatchOp::Ne,
                "\u{7f}",
                Err(ControlCharacter { label: "a".into() }),
                "DEL",
            ),
            (
                "a",
                MatchOp::Re,
                "\u{85}",
                Err(ControlCharacter { label: "a".into() }),
                "C1 control",
            ),
            (
                "a",
                MatchOp::Nre,
                "[",
                Err(InvalidRegex {
                    label: "a".into(),
                    message: String::new(),
                }),
                "bad regex",
            ),
        ];
        for (name, op, value, want, why) in cases {
            let got = Matcher::new(name, op, value)
                .map(|_| ())
                .map_err(comparable);
            assert_eq!(got, want, "{why}");
        }
        let m = Matcher::new("a", MatchOp::Re, "x|y").unwrap();
        assert_eq!(
            (m.name().as_str(), m.op(), m.value()),
            ("a", MatchOp::Re, "x|y")
        );
        assert_eq!(m.to_string(), r#"a=~"x|y""#);
    }

    #[test]
    fn matching() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool, &'a str);
        let cases: &[Case] = &[
            (r#"{a="x"}"#, &[("a", "x")], true, "equal"),
            (r#"{a="x"}"#, &[("a", "xx")], false, "equality is exact"),
            (r#"{a=""}"#, &[], true, "absent label equals empty"),
            (r#"{a=""}"#, &[("a", "")], true, "empty value is absent"),
            (r#"{a!=""}"#, &[], false, "!= empty requires the label"),
            (r#"{a!="x"}"#, &[], true, "absent label is not x"),
            (
                r#"{a=~"x"}"#,
                &[("a", "xx")],
                false,
                "regex is anchored at the end",
            ),
            (
                r#"{a=~"x"}"#,
                &[("a", "yx")],
                false,
                "regex is anchored at the start",
            ),
            (
                r#"{a=~"x|y"}"#,
                &[("a", "y")],
                true,
                "alternation inside anchors",
            ),
            (
                r#"{a=~"x|"}"#,
                &[],
                true,
                "regex matching empty admits absent label",
            ),
            (r#"{a=~".+"}"#, &[], false, ".+ needs the label"),
            (
                r#"{a=~".*"}"#,
                &[("a", "x\ny")],
                true,
                "dot matches newline as in Prometheus 3",
            ),
            (r#"{a!~"x.*"}"#, &[("a", "yx")], true, "negative regex"),
            (
                r#"{a="x", b="y"}"#,
                &[("b", "y"), ("a", "x")],
                true,
                "all matchers hold",
            ),
            (
                r#"{a="x", b="y"}"#,
                &[("a", "x")],
                false,
                "one matcher fails",
            ),
            (r#"{a="x"} or {b="y"}"#, &[("b", "y")], true, "any selector"),
            (r#"{a="x"} or {b="y"}"#, &[("c", "z")], false, "no selector"),
            ("", &[("c", "z")], true, "unrestricted matches everything"),
            (
                r#"{a="x"}"#,
                &[("a", "x"), ("a", "y")],
                true,
                "first value of a repeated name",
            ),
        ];
        for (policy, labels, want, why) in cases {
            assert_eq!(
                p(policy).matches(labels),
                *want,
                "{why}: {policy} vs {labels:?}"
            );
        }
    }

    #[test]
    fn containment() {
        // (policy P, requested X, P.contains(X), why)
        const CASES: &[(&str, &str, bool, &str)] = &[
            ("", "", true, "unrestricted within unrestricted"),
            ("", r#"{ns="a"}"#, true, "anything within unrestricted"),
            (
                r#"{ns="a"}"#,
                "",
                false,
                "unrestricted is never within a restriction",
            ),
            (
                r#"{ns=~".*"}"#,
                "",
                false,
                "unrestricted only within unrestricted",
            ),
            (r#"{ns="a"}"#, r#"{ns="a"}"#, true, "identical"),
            (
                r#"{ns=~"a|b"}"#,
                r#"{ns="a"}"#,
                true,
                "equality within alternation",
            ),
            (
                r#"{ns="a"}"#,
                r#"{ns="a", team="x"}"#,
                true,
                "extra matcher narrows",
            ),
            (
                r#"{ns="a"}"#,
                r#"{ns=~"a|b"}"#,
                false,
                "alternation widens equality",
            ),
            (
                r#"{ns="a"}"#,
                r#"{ns=~"a"}"#,
                true,
                "single-literal regex equals equality",
            ),
            (r#"{ns="a"}"#, r#"{team="x"}"#, false, "different label"),
            (
                r#"{ns="a"}"#,
                r#"{ns=~".*"}"#,
                false,
                "match-all regex widens",
            ),
            (
                r#"{ns="a"}"#,
                r#"{ns=~"a.*"}"#,
                false,
                "prefix regex widens",
            ),
            (r#"{ns="a"}"#, r#"{ns!="b"}"#, false, "negative widens"),
            (
                r#"{ns=~"a.*"}"#,
                r#"{ns="abc"}"#,
                true,
                "literal matched by regex",
            ),
            (
                r#"{ns=~"a.*"}"#,
                r#"{ns=~"ab|ac"}"#,
                true,
                "literal alternation matched by regex",
            ),
            (
                r#"{ns=~"a.*"}"#,
                r#"{ns=~"ab|b"}"#,
                false,
                "one literal not matched",
            ),
            (r#"{ns=~"a.*"}"#, r#"{ns=~"a.*"}"#, true, "identical regex"),
            (
                r#"{ns=~"a.*"}"#,
                r#"{ns=~"ab.*"}"#,
                false,
                "regex inclusion is not decided",
            ),
            (
                r#"{ns=~"a|b"}"#,
                r#"{ns=~"a|b|c"}"#,
                false,
                "bigger alternation",
            ),
            (
                r#"{ns=~"a|b|c"}"#,
                r#"{ns=~"c|a"}"#,
                true,
                "smaller alternation",
            ),
            (
                r#"{ns=~".*"}"#,
                r#"{team="x"}"#,
                false,
                "`.*` misses values with a newline in Prometheus 2: not taken as match-all",
            ),
            (
                r#"{ns=~".+"}"#,
                r#"{team="x"}"#,
                false,
                ".+ requires the label",
            ),
            (
                r#"{ns=~"a|"}"#,
                r#"{ns="a"}"#,
                true,
                "empty alternative still admits a",
            ),
            (
                r#"{ns="a"}"#,
                r#"{ns=~"a|"}"#,
                false,
                "empty alternative admits absent label",
            ),
            (r#"{ns!="a"}"#, r#"{ns!="a"}"#, true, "identical !="),
            (r#"{ns!="a"}"#, r#"{ns="b"}"#, true, "other value"),
            (r#"{ns!="a"}"#, r#"{ns="a"}"#, false, "excluded value"),
            (
                r#"{ns!="a"}"#,
                r#"{team="x"}"#,
                false,
                "label unconstrained",
            ),
            (
                r#"{ns!="a"}"#,
                r#"{ns=~"b|c"}"#,
                true,
                "alternation avoids the value",
            ),
            (
                r#"{ns!="a"}"#,
                r#"{ns=~"b.*"}"#,
                true,
                "regex not matching the value",
            ),
            (
                r#"{ns!="a"}"#,
                r#"{ns=~"a.*"}"#,
                false,
                "regex matching the value",
            ),
            (r#"{ns!="a"}"#, r#"{ns!~"a|b"}"#, true, "!~ excluding more"),
            (
                r#"{ns!="a"}"#,
                r#"{ns!~"b.*"}"#,
                false,
                "!~ not excluding the value",
            ),
            (r#"{ns!="a"}"#, r#"{ns!="b"}"#, false, "different !="),
            (
                r#"{ns!=""}"#,
                r#"{ns="x"}"#,
                true,
                "label required and present",
            ),
            (
                r#"{ns!=""}"#,
                r#"{ns!="x"}"#,
                false,
                "!= admits absent label",
            ),
            (r#"{ns!~"a.*"}"#, r#"{ns!~"a.*"}"#, true, "identical !~"),
            (
                r#"{ns!~"a.*"}"#,
                r#"{ns=~"b|c"}"#,
                true,
                "alternation outside excluded regex",
            ),
            (
                r#"{ns!~"a.*"}"#,
                r#"{ns=~"b|ab"}"#,
                false,
                "alternation hits excluded regex",
            ),
            (r#"{ns!~"a.*"}"#, r#"{ns!~"a"}"#, false, "excludes less"),
            (
                r#"{ns!~"a|b"}"#,
                r#"{ns!~"a|b|c"}"#,
                true,
                "excludes more literals",
            ),
            (
                r#"{ns!~"a|b"}"#,
                r#"{ns!~"[ab]"}"#,
                true,
                "regex superset of literals",
            ),
            (
                r#"{ns!~"a|b"}"#,
                r#"{ns!~"a"}"#,
                false,
                "excludes fewer literals",
            ),
            (
                r#"{ns!~"a|b"}"#,
                r#"{ns!="a", ns!="b"}"#,
                true,
                "excluded one by one",
            ),
            (
                r#"{ns!~"a"}"#,
                r#"{ns!="a"}"#,
                true,
                "!= same as single-literal !~",
            ),
            (
                r#"{ns="a"}"#,
                r#"{ns=~"a|b", ns!="b"}"#,
                true,
                "conjunction pins the value",
            ),
            (
                r#"{ns="a"}"#,
                r#"{ns="a", ns="b"}"#,
                false,
                "a contradiction selects nothing, and is refused rather than taken as contained",
            ),
            (
                r#"{ns="a"}"#,
                r#"{team="x"} or {ns="a"}"#,
                false,
                "one requested selector outside",
            ),
            (
                r#"{ns="a"} or {ns="b"}"#,
                r#"{ns="b", team="x"}"#,
                true,
                "within the second selector",
            ),
            (
                r#"{ns="a"} or {ns="b"}"#,
                r#"{ns="a"} or {ns="b"}"#,
                true,
                "same OR",
            ),
            (
                r#"{ns="a"} or {ns="b"}"#,
                r#"{ns=~"a|b"}"#,
                false,
                "spanning selectors is not decided",
            ),
            (
                r#"{ns=~"a|b"}"#,
                r#"{ns="a"} or {ns="b"}"#,
                true,
                "each OR branch within",
            ),
            (r#"{ns="a"}"#, r#"{ns="a"} or {ns="b"}"#, false, "OR widens"),
            (
                r#"{ns="a", team="x"}"#,
                r#"{ns="a"}"#,
                false,
                "missing matcher widens",
            ),
        ];
        for (policy, requested, want, why) in CASES {
            assert_eq!(
                p(policy).contains(&p(requested)),
                *want,
                "{why}: {policy:?} contains {requested:?}"
            );
        }
    }

    #[test]
    fn limits() {
        use LimitError::*;
        let strict = PolicyLimits::default();
        assert_eq!(
            strict,
            PolicyLimits {
                max_selectors: 8,
                max_matchers_per_selector: 10,
                unique_label_names: true
            }
        );
        let lenient = PolicyLimits {
            unique_label_names: false,
            ..PolicyLimits::default()
        };
        let selectors = |n: usize| {
            (0..n)
                .map(|i| format!(r#"{{a="{i}"}}"#))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let matchers = |n: usize| {
            let body: Vec<_> = (0..n).map(|i| format!(r#"l{i}="x""#)).collect();
            format!("{{{}}}", body.join(", "))
        };
        let cases: Vec<(String, &PolicyLimits, Result<(), LimitError>, &str)> = vec![
            (String::new(), &strict, Ok(()), "unrestricted"),
            (selectors(8), &strict, Ok(()), "maximum selectors"),
            (
                selectors(9),
                &strict,
                Err(TooManySelectors { count: 9, max: 8 }),
                "too many selectors",
            ),
            (matchers(10), &strict, Ok(()), "maximum matchers"),
            (
                matchers(11),
                &strict,
                Err(TooManyMatchers { count: 11, max: 10 }),
                "too many matchers",
            ),
            (
                r#"{a="x", a="x"}"#.into(),
                &strict,
                Ok(()),
                "exact duplicates are merged first",
            ),
            (
                r#"{b="y", a=~"x.*", a!="xy"}"#.into(),
                &strict,
                Err(DuplicateLabelName { name: "a".into() }),
                "same label twice",
            ),
            (
                r#"{a="x"} or {a="y"}"#.into(),
                &strict,
                Ok(()),
                "same label in different selectors",
            ),
            (
                r#"{b="y", a=~"x.*", a!="xy"}"#.into(),
                &lenient,
                Ok(()),
                "allowed when not unique",
            ),
        ];
        for (input, limits, want, why) in cases {
            assert_eq!(p(&input).validate(limits), want, "{why}: {input}");
        }
    }

    #[test]
    fn constructors_and_serde() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error as DeError, StringDeserializer};

        assert!(Policy::unrestricted().is_unrestricted());
        assert_eq!(Policy::unrestricted().to_string(), "");
        assert!(
            Policy::new(vec![
                Selector::new(vec![]),
                p(r#"{a="x"}"#).selectors()[0].clone()
            ])
            .is_unrestricted(),
            "a selector without matchers admits everything"
        );
        let b = Matcher::new("b", MatchOp::Eq, "y").unwrap();
        let a = Matcher::new("a", MatchOp::Re, "x").unwrap();
        let s = Selector::new(vec![b.clone(), a.clone(), b.clone()]);
        assert_eq!(s.matchers(), &[a, b]);
        assert_eq!(s.to_string(), r#"{a=~"x", b="y"}"#);
        assert_eq!(r#"{a="x"}"#.parse::<Policy>(), Ok(p(r#"{a="x"}"#)));

        let de = |text: &str| -> Result<Policy, DeError> {
            let d: StringDeserializer<DeError> = text.to_owned().into_deserializer();
            Policy::deserialize(d)
        };
        assert_eq!(de(r#"{b="y",a="x"}"#).unwrap(), p(r#"{a="x", b="y"}"#));
        assert_eq!(de("").unwrap(), Policy::unrestricted());
        assert!(de("{}").unwrap_err().to_string().contains("empty selector"));
        assert_eq!(String::from(p(r#"{b="y",a="x"}"#)), r#"{a="x", b="y"}"#);
    }

    // ---- property tests ----

    const NAMES: &[&str] = &["a", "b"];
    const VALUES: &[&str] = &["x", "y", "z", ""];
    const REGEXES: &[&str] = &[
        "x|y", ".*", "x.*", "x", "y|z", ".+", "x|", "", "z|x|y", "[xy]", "x|y|z", ".", "y",
    ];
    /// Label values tried per label: absent, the alphabet, and values the regexes treat
    /// differently (prefixes, newlines, unrelated text).
    const SERIES_VALUES: &[Option<&str>] = &[
        None,
        Some(""),
        Some("x"),
        Some("y"),
        Some("z"),
        Some("xy"),
        Some("x\n"),
        Some("w"),
    ];

    fn small_matcher() -> impl Strategy<Value = Matcher> {
        let plain = (
            prop::sample::select(NAMES),
            prop::sample::select(&[MatchOp::Eq, MatchOp::Ne][..]),
            prop::sample::select(VALUES),
        );
        let regex = (
            prop::sample::select(NAMES),
            prop::sample::select(&[MatchOp::Re, MatchOp::Nre][..]),
            prop::sample::select(REGEXES),
        );
        prop_oneof![plain, regex].prop_map(|(n, op, v)| Matcher::new(n, op, v).unwrap())
    }

    fn small_selector() -> impl Strategy<Value = Selector> {
        prop::collection::vec(small_matcher(), 1..=3).prop_map(Selector::new)
    }

    fn small_policy() -> impl Strategy<Value = Policy> {
        prop::collection::vec(small_selector(), 0..=3).prop_map(Policy::new)
    }

    /// A policy and one derived from it by adding matchers (often, but not always, narrower).
    fn policy_and_narrowing() -> impl Strategy<Value = (Policy, Policy)> {
        (
            small_policy(),
            prop::collection::vec(prop::collection::vec(small_matcher(), 0..=2), 1..=3),
        )
            .prop_map(|(policy, extras)| {
                let base = policy.selectors().to_vec();
                if base.is_empty() {
                    return (policy, Policy::unrestricted());
                }
                let derived = extras
                    .into_iter()
                    .enumerate()
                    .map(|(i, extra)| {
                        let mut matchers = base[i % base.len()].matchers().to_vec();
                        matchers.extend(extra);
                        Selector::new(matchers)
                    })
                    .collect();
                (policy, Policy::new(derived))
            })
    }

    fn all_series() -> Vec<Vec<(&'static str, &'static str)>> {
        let mut out = Vec::new();
        for a in SERIES_VALUES {
            for b in SERIES_VALUES {
                let labels: Vec<_> = [("a", a), ("b", b)]
                    .into_iter()
                    .filter_map(|(name, value)| value.map(|v| (name, v)))
                    .collect();
                out.push(labels);
            }
        }
        out
    }

    /// Soundness against the ground truth: if P contains X, no series is admitted by X but not P.
    fn check_sound(policy: &Policy, requested: &Policy) -> Result<(), TestCaseError> {
        if policy.contains(requested) {
            for labels in all_series() {
                prop_assert!(
                    !requested.matches(&labels) || policy.matches(&labels),
                    "{policy} claimed to contain {requested}, but {labels:?} is admitted only by the latter"
                );
            }
        }
        Ok(())
    }

    fn any_value() -> impl Strategy<Value = String> {
        "[^\\p{Cc}\u{FFFD}]{0,12}"
    }

    fn any_regex() -> impl Strategy<Value = &'static str> {
        prop::sample::select(
            &[
                "x|y", ".*", "", "a\"b", "it's", "\\\\", "\\.\\*", "[\"']+", "é|€", "a b", "\\|",
            ][..],
        )
    }

    fn any_matcher() -> impl Strategy<Value = Matcher> {
        let name = "[a-zA-Z_][a-zA-Z0-9_]{0,6}";
        prop_oneof![
            (
                name,
                prop::sample::select(&[MatchOp::Eq, MatchOp::Ne][..]),
                any_value()
            )
                .prop_map(|(n, op, v)| Matcher::new(&n, op, &v).unwrap()),
            (
                name,
                prop::sample::select(&[MatchOp::Re, MatchOp::Nre][..]),
                any_regex()
            )
                .prop_map(|(n, op, v)| Matcher::new(&n, op, v).unwrap()),
        ]
    }

    fn any_policy() -> impl Strategy<Value = Policy> {
        prop::collection::vec(
            prop::collection::vec(any_matcher(), 1..=4).prop_map(Selector::new),
            0..=4,
        )
        .prop_map(Policy::new)
    }

    proptest! {
        #[test]
        fn contains_is_sound((policy, narrowed) in policy_and_narrowing(), other in small_policy()) {
            check_sound(&policy, &narrowed)?;
            check_sound(&narrowed, &policy)?;
            check_sound(&policy, &other)?;
            check_sound(&other, &policy)?;
        }

        #[test]
        fn contains_is_reflexive(policy in small_policy()) {
            // Except a policy with an empty selector, which is never taken as contained.
            prop_assert_eq!(
                policy.contains(&policy),
                policy.selector_selecting_nothing().is_none(),
                "{} should contain itself", policy
            );
        }

        #[test]
        fn format_parse_round_trip(policy in any_policy()) {
            let text = policy.to_string();
            let parsed = Policy::parse(&text);
            prop_assert_eq!(parsed.as_ref(), Ok(&policy), "text: {}", text);
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = Policy::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_selector_like_text(
            text in "[{}ab_1é=!~\"'`, |or.*+?()\\[\\]\\\\\n]{0,40}"
        ) {
            if let Ok(policy) = Policy::parse(&text) {
                prop_assert_eq!(Policy::parse(&policy.to_string()), Ok(policy));
            }
        }
    }
}
