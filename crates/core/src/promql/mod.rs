//! PromQL label enforcement, as prom-label-proxy does it but inside the authorization decision
//! and for policies with several labels.
//!
//! Every vector and matrix selector of a query, wherever it sits, gets the policy's matchers
//! added (AND), so a rewritten query can only narrow. A query whose own matcher on a policy
//! label provably cannot overlap the policy is refused rather than silently answered empty.
//!
//! A policy that is an OR of selectors is applied as one selector when the selectors differ in
//! one label only, each by `=` or `=~`: their values become one regex union
//! (`{ns="a"} or {ns="b"}` → `ns=~"a|b"`). Any other OR is refused with a message that says to
//! narrow the request with `x-tollgate-labels` to one of its selectors.
//!
//! The rewritten text is parsed again and checked before it is used: a printer bug can never
//! turn into a widened query.

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod fast_reader_tests;
mod params;
mod text;
mod walk;

pub use params::{ParamRewrite, PromParams, check_params_within, rewrite_params};
use text::{parse, parse_rewritten, unprintable};
use walk::{complete_info_calls, groups, has_bare_info, visit};

use crate::selector::{MatchOp, Matcher, Policy, Selector, SelectorError};
use promql_parser::label::{MatchOp as PromOp, Matcher as PromMatcher};
use promql_parser::parser::{Expr, VectorSelector};

/// Deeper nesting than this is refused before parsing: parsing, walking and dropping a query
/// are recursive, and a request must not be able to exhaust a worker's stack.
pub const MAX_NESTING: usize = 128;
/// Longer queries are refused before parsing.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// More binary and unary operators than this are refused before parsing: a chain of them
/// (`a+a+...+a`, `---a`) nests the parsed query as deep as it is long, and parsing, checking,
/// printing and dropping it recurse on that depth (a 16 KB chain overflowed a 2 MiB thread
/// stack, which aborts the server or Envoy's wasm VM), besides promql-parser's type check
/// costing the square of its length.
pub const MAX_OPERATORS: usize = 256;
/// More regex matchers (`=~`, `!~`) in a client's query are refused before parsing: the
/// parser compiles each, and one the dialect allows (`.{1000}`) takes milliseconds.
pub const MAX_REGEX_MATCHERS: usize = 64;
const NAME_LABEL: &str = "__name__";
/// Prometheus 3's `info(v [, data-label-selector])`.
const INFO: &str = "info";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{param}: cannot parse PromQL: {message}")]
    Unparsable {
        param: &'static str,
        message: String,
    },
    #[error("{param}: must be a series selector such as up{{job=\"x\"}}")]
    NotASelector { param: &'static str },
    #[error("{param}: given more than once")]
    Repeated { param: &'static str },
    #[error(
        "selector {selector} can never match the label policy {policy}: its matcher on \"{label}\" excludes every value the policy allows"
    )]
    Conflict {
        selector: String,
        label: String,
        policy: String,
    },
    #[error(
        "the label policy {policy} is an OR of selectors that differ in more than one label, which one PromQL selector cannot express; narrow the request to one of them with x-tollgate-labels"
    )]
    PolicyNotExpressible { policy: String },
    #[error(
        "selector {selector} in the request body is not within the label policy {policy}: add the policy's matchers to every selector of the query, or send it as a URL parameter so that Tollgate adds them"
    )]
    BodyOutsidePolicy { selector: String, policy: String },
    #[error("the rewritten query did not verify; the request is refused")]
    VerificationFailed,
    #[error(
        "{param}: with the label policy's matchers added the query is longer than {limit} bytes, the longest Tollgate reads; shorten it",
        limit = MAX_QUERY_BYTES
    )]
    RewrittenTooLong { param: &'static str },
    #[error("{param}: {message}")]
    UnsupportedRegex {
        param: &'static str,
        message: String,
    },
    #[error(
        "{param}: the string escape {escape} encodes a value at or above 0x80, which Prometheus (Go) reads as a raw byte and Tollgate as a character; write the character itself, or \\u00XX"
    )]
    AmbiguousEscape { param: &'static str, escape: String },
    #[error(
        "selector {selector} can never match any series (its matchers contradict each other); an empty selector is refused"
    )]
    SelectsNothing { selector: String },
    #[error(
        "info() without its second argument joins info series outside the label policy; pass the policy's matchers as its second argument, e.g. info(v, {{...}})"
    )]
    BareInfo,
}

impl QueryError {
    /// 400 for a request no Prometheus would accept, 403 for one the policy forbids, 500 when
    /// our own rewrite failed its check.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::Unparsable { .. }
            | QueryError::NotASelector { .. }
            | QueryError::Repeated { .. }
            | QueryError::UnsupportedRegex { .. }
            | QueryError::AmbiguousEscape { .. }
            | QueryError::RewrittenTooLong { .. } => 400,
            QueryError::Conflict { .. }
            | QueryError::SelectsNothing { .. }
            | QueryError::BareInfo
            | QueryError::PolicyNotExpressible { .. }
            | QueryError::BodyOutsidePolicy { .. } => 403,
            QueryError::VerificationFailed => 500,
        }
    }
}

/// Rewrites remembered per policy.
const REMEMBERED_REWRITES: usize = 256;
/// Longer queries are rewritten every time (they are rarely repeated, and would hold memory).
const REMEMBERED_QUERY_BYTES: usize = 4096;

/// A restricted policy compiled for rewriting queries: one selector's matchers.
#[derive(Debug)]
pub struct Enforcer {
    matchers: Vec<Matcher>,
    prom: Vec<PromMatcher>,
    policy: String,
    /// The policy as one selector, printed once.
    default_match: String,
    /// The last rewrites (and refusals) of this policy, by parameter and text. A rewrite is a
    /// pure function of policy and text, and dashboards send the same queries on every
    /// refresh; a rewrite costs two parses, and promql-parser compiles every regex matcher on
    /// each (tens of microseconds for one `.`).
    remembered: std::sync::Mutex<[Remembered; 2]>,
}

type Remembered = lru::LruCache<Box<str>, Result<String, QueryError>>;

/// Which parameter a remembered rewrite was for (an index into `Enforcer::remembered`).
#[derive(Clone, Copy)]
enum Rewritten {
    Query = 0,
    Match = 1,
}

impl Enforcer {
    /// `None` for an unrestricted policy: there is nothing to enforce.
    pub fn new(policy: &Policy) -> Result<Option<Enforcer>, QueryError> {
        if policy.is_unrestricted() {
            return Ok(None);
        }
        let not_expressible = || QueryError::PolicyNotExpressible {
            policy: policy.to_string(),
        };
        let matchers = merge(policy.selectors()).ok_or_else(not_expressible)?;
        let prom = matchers
            .iter()
            .map(to_prom)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(not_expressible)?;
        let default_match =
            VectorSelector::new(None, promql_parser::label::Matchers::new(prom.clone()))
                .to_string();
        Ok(Some(Enforcer {
            matchers,
            prom,
            policy: policy.to_string(),
            default_match,
            // Unbounded in type, bounded by `remember`: no allocation until first used.
            remembered: std::sync::Mutex::new([
                lru::LruCache::unbounded(),
                lru::LruCache::unbounded(),
            ]),
        }))
    }

    /// `rewrite(text)`, or what it returned for the same parameter and text before.
    fn remember(
        &self,
        param: Rewritten,
        text: &str,
        rewrite: impl FnOnce() -> Result<String, QueryError>,
    ) -> Result<String, QueryError> {
        if text.len() > REMEMBERED_QUERY_BYTES {
            return rewrite();
        }
        let lock = || {
            self.remembered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let slot = param as usize;
        if let Some(known) = lock()[slot].get(text) {
            return known.clone();
        }
        let result = rewrite();
        let remembered = &mut lock()[slot];
        if remembered.len() >= REMEMBERED_REWRITES {
            remembered.pop_lru();
        }
        remembered.put(text.into(), result.clone());
        result
    }

    /// The policy's matchers as one selector (an OR merged into a regex union): what LogQL
    /// enforcement adds to each stream selector too.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// The policy's canonical text, for messages.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The policy as one selector, for a `match[]` the client did not send.
    pub fn default_match(&self) -> String {
        self.default_match.clone()
    }

    /// Adds the policy's matchers to every selector of `query`.
    pub fn rewrite_query(&self, query: &str) -> Result<String, QueryError> {
        self.remember(Rewritten::Query, query, || self.rewrite_query_afresh(query))
    }

    /// [`Self::rewrite_query`] without the remembered rewrites: what a new query costs.
    pub fn rewrite_query_afresh(&self, query: &str) -> Result<String, QueryError> {
        let mut expr = parse("query", query)?;
        complete_info_calls(&mut expr);
        visit(&mut expr, &mut |vs| self.restrict(vs))?;
        let rewritten = print("query", &expr, query.len())?;
        self.verify(&rewritten)
            .map_err(|err| unprintable("query", query).unwrap_or(err))?;
        Ok(rewritten)
    }

    /// Adds the policy's matchers to a `match[]` series selector.
    pub fn rewrite_match(&self, selector: &str) -> Result<String, QueryError> {
        self.remember(Rewritten::Match, selector, || {
            self.rewrite_match_now(selector)
        })
    }

    fn rewrite_match_now(&self, selector: &str) -> Result<String, QueryError> {
        let mut expr = parse("match[]", selector)?;
        let Expr::VectorSelector(vs) = &mut expr else {
            return Err(QueryError::NotASelector { param: "match[]" });
        };
        self.restrict(vs)?;
        let rewritten = print("match[]", &expr, selector.len())?;
        self.verify(&rewritten)
            .map_err(|err| unprintable("match[]", selector).unwrap_or(err))?;
        Ok(rewritten)
    }

    fn restrict(&self, vs: &mut VectorSelector) -> Result<(), QueryError> {
        // The policy's matchers are ANDed in, so the query's own regexes cannot widen it; they
        // were held to the shared dialect before parsing (`text::parse`), so both modes refuse
        // the same queries.
        for group in groups(vs) {
            for policy_matcher in &self.matchers {
                let label = policy_matcher.name().as_str();
                let disjoint = group
                    .iter()
                    .filter(|m| m.name == label)
                    .any(|m| disjoint(policy_matcher, m))
                    || (label == NAME_LABEL
                        && vs
                            .name
                            .as_deref()
                            .is_some_and(|name| !policy_matcher.matches_value(name)));
                if disjoint {
                    return Err(QueryError::Conflict {
                        selector: vs.to_string(),
                        label: label.to_owned(),
                        policy: self.policy.clone(),
                    });
                }
            }
        }
        let matchers = &mut vs.matchers;
        let targets: Vec<&mut Vec<PromMatcher>> = if matchers.or_matchers.is_empty() {
            vec![&mut matchers.matchers]
        } else {
            matchers.or_matchers.iter_mut().collect()
        };
        // A named selector (`up{...}`) may not also carry a `__name__` matcher; the conflict
        // check above proved the name lies within the policy's.
        let named = vs.name.is_some();
        for group in targets {
            for m in &self.prom {
                if named && m.name == NAME_LABEL {
                    continue;
                }
                if !group.contains(m) {
                    group.push(m.clone());
                }
            }
        }
        Ok(())
    }

    /// Every selector of the re-parsed text must carry every policy matcher, and every `info()`
    /// its selector argument.
    fn verify(&self, rewritten: &str) -> Result<(), QueryError> {
        let mut expr = parse_rewritten(rewritten).map_err(|_| QueryError::VerificationFailed)?;
        if has_bare_info(&expr) {
            return Err(QueryError::VerificationFailed);
        }
        visit(&mut expr, &mut |vs| {
            let named = vs.name.is_some();
            let complete = groups(vs).iter().all(|group| {
                self.prom
                    .iter()
                    .filter(|want| !(named && want.name == NAME_LABEL))
                    .all(|want| {
                        group.iter().any(|m| {
                            m.name == want.name && m.value == want.value && same_op(&m.op, &want.op)
                        })
                    })
            });
            if complete {
                Ok(())
            } else {
                Err(QueryError::VerificationFailed)
            }
        })
    }
}

/// The rewritten query's text, in a buffer sized once for the usual growth (the policy's
/// matchers on a few selectors; `to_string` grew it from empty, five copies for a dashboard
/// query). A printer that fails is a rewrite that did not verify. A rewrite past the length
/// Tollgate reads is the client's query grown too long (400), not a failed verification (500).
fn print(param: &'static str, expr: &Expr, original_len: usize) -> Result<String, QueryError> {
    use std::fmt::Write;
    let mut text = String::with_capacity(original_len.saturating_mul(2).saturating_add(64));
    write!(text, "{expr}").map_err(|_| QueryError::VerificationFailed)?;
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError::RewrittenTooLong { param });
    }
    Ok(text)
}

/// Whether every selector of `query` already lies within `policy` (for bodies that cannot be
/// rewritten).
pub fn check_within(policy: &Policy, param: &'static str, query: &str) -> Result<(), QueryError> {
    if policy.is_unrestricted() {
        return Ok(());
    }
    let mut expr = parse(param, query)?;
    if has_bare_info(&expr) {
        return Err(QueryError::BareInfo);
    }
    visit(&mut expr, &mut |vs| {
        let outside = || QueryError::BodyOutsidePolicy {
            selector: vs.to_string(),
            policy: policy.to_string(),
        };
        let mut selectors = Vec::new();
        for group in groups(vs) {
            let mut matchers = Vec::with_capacity(group.len() + 1);
            for m in group.iter() {
                matchers.push(from_prom(m).map_err(|err| match err {
                    SelectorError::UnsupportedRegex { .. } | SelectorError::InvalidRegex { .. } => {
                        QueryError::UnsupportedRegex {
                            param,
                            message: err.to_string(),
                        }
                    }
                    // Values our policies cannot hold (control characters, huge values) are
                    // simply not within any policy.
                    _ => outside(),
                })?);
            }
            if let Some(name) = &vs.name {
                matchers.push(Matcher::new(NAME_LABEL, MatchOp::Eq, name).map_err(|_| outside())?);
            }
            let selector = Selector::new(matchers);
            if selector.selects_nothing() {
                return Err(QueryError::SelectsNothing {
                    selector: vs.to_string(),
                });
            }
            selectors.push(selector);
        }
        if policy.contains(&Policy::new(selectors)) {
            Ok(())
        } else {
            Err(outside())
        }
    })
}

/// A query in the parser's canonical printed form, to compare queries by meaning.
pub fn canonical(query: &str) -> Result<String, QueryError> {
    Ok(parse("query", query)?.to_string())
}

/// A label set written as a selector, `{name="value", ...}` (Loki's stream labels, which Loki
/// reads with Prometheus's parser): every matcher an equality, no metric name outside the
/// braces, no modifier. The message of the refusal otherwise.
///
/// The form Loki's clients print is read by hand ([`plain_label_set`]); anything else by the
/// PromQL parser ([`parse_label_set_with_parser`]), which the hand reader is held to.
pub fn parse_label_set(text: &str) -> Result<Vec<(String, String)>, String> {
    match plain_label_set(text) {
        Some(labels) => Ok(labels),
        None => parse_label_set_with_parser(text),
    }
}

/// The label set as Prometheus's `labels.String()` prints it (how Loki's clients send stream
/// labels), read without the parser: `{name="value", ...}`, names `[a-zA-Z_][a-zA-Z0-9_]*`,
/// values of printable ASCII without `"` or `\` (no escapes), spaces only around the commas
/// and inside the braces, at least one value not empty (the parser refuses a selector without
/// one), within the parser's length and nesting bounds. `None` for anything else: the parser reads it, refusing where it must. Public for the
/// fuzz target that holds it to the parser.
pub fn plain_label_set(text: &str) -> Option<Vec<(String, String)>> {
    // The parser's length and nesting bounds first: they refuse before any label is read.
    text::bounds("labels", text).ok()?;
    let mut rest = text
        .strip_prefix('{')?
        .strip_suffix('}')?
        .trim_start_matches(' ');
    let mut labels = Vec::new();
    let mut any_value = false;
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_end);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let after = after.strip_prefix("=\"")?;
        let value_end = after.find('"')?;
        let (value, after) = after.split_at(value_end);
        if !value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'\\')
        {
            return None;
        }
        any_value |= !value.is_empty();
        labels.push((name.to_owned(), value.to_owned()));
        // Past the closing quote: the end, or a comma and another label.
        rest = after.get(1..)?.trim_start_matches(' ');
        if !rest.is_empty() {
            rest = rest.strip_prefix(',')?.trim_start_matches(' ');
            if rest.is_empty() {
                return None;
            }
        }
    }
    any_value.then_some(labels)
}

/// [`parse_label_set`] by the PromQL parser alone.
pub fn parse_label_set_with_parser(text: &str) -> Result<Vec<(String, String)>, String> {
    let expr = parse("labels", text).map_err(|err| err.to_string())?;
    let promql_parser::parser::Expr::VectorSelector(selector) = expr else {
        return Err("the labels are not a selector {name=\"value\", ...}".into());
    };
    if selector.name.is_some()
        || selector.offset.is_some()
        || selector.at.is_some()
        || !selector.matchers.or_matchers.is_empty()
    {
        return Err("the labels must be a bare selector {name=\"value\", ...}".into());
    }
    selector
        .matchers
        .matchers
        .into_iter()
        .map(|m| match m.op {
            PromOp::Equal => Ok((m.name, m.value)),
            _ => Err(format!("label \"{}\" is not set with =", m.name)),
        })
        .collect()
}

/// Whether no value can satisfy both matchers (decidable when either is an equality).
fn disjoint(policy: &Matcher, query: &PromMatcher) -> bool {
    match (policy.op(), &query.op) {
        (MatchOp::Eq, _) => !query.is_match(policy.value()),
        (_, PromOp::Equal) => !policy.matches_value(&query.value),
        _ => false,
    }
}

fn same_op(a: &PromOp, b: &PromOp) -> bool {
    matches!(
        (a, b),
        (PromOp::Equal, PromOp::Equal)
            | (PromOp::NotEqual, PromOp::NotEqual)
            | (PromOp::Re(_), PromOp::Re(_))
            | (PromOp::NotRe(_), PromOp::NotRe(_))
    )
}

fn to_prom(m: &Matcher) -> Option<PromMatcher> {
    let op = match (m.op(), m.regex()) {
        (MatchOp::Eq, _) => PromOp::Equal,
        (MatchOp::Ne, _) => PromOp::NotEqual,
        (MatchOp::Re, Some(re)) => PromOp::Re(re.clone()),
        (MatchOp::Nre, Some(re)) => PromOp::NotRe(re.clone()),
        _ => return None,
    };
    Some(PromMatcher::new(op, m.name().as_str(), m.value()))
}

fn from_prom(m: &PromMatcher) -> Result<Matcher, SelectorError> {
    let op = match m.op {
        PromOp::Equal => MatchOp::Eq,
        PromOp::NotEqual => MatchOp::Ne,
        PromOp::Re(_) => MatchOp::Re,
        PromOp::NotRe(_) => MatchOp::Nre,
    };
    Matcher::new(&m.name, op, &m.value)
}

/// One selector equivalent to the OR of `selectors`, when one exists in the supported shape.
fn merge(selectors: &[Selector]) -> Option<Vec<Matcher>> {
    // Drop selectors inside another one: `{a="x"} or {a="x", b="y"}` is just `{a="x"}`.
    let kept: Vec<&Selector> = selectors
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            !selectors
                .iter()
                .enumerate()
                .any(|(j, other)| j != *i && other.contains(s) && (!s.contains(other) || j < *i))
        })
        .map(|(_, s)| s)
        .collect();
    match kept.as_slice() {
        [] => None,
        [one] => Some(one.matchers().to_vec()),
        [first, rest @ ..] => {
            let common: Vec<&Matcher> = first
                .matchers()
                .iter()
                .filter(|m| rest.iter().all(|s| s.matchers().contains(m)))
                .collect();
            let mut label: Option<&str> = None;
            let mut alternatives = Vec::with_capacity(kept.len());
            for selector in &kept {
                let [own] = selector
                    .matchers()
                    .iter()
                    .filter(|m| !common.contains(m))
                    .collect::<Vec<_>>()[..]
                else {
                    return None;
                };
                if *label.get_or_insert(own.name().as_str()) != own.name().as_str() {
                    return None;
                }
                alternatives.push(match own.op() {
                    MatchOp::Eq => escape_regex(own.value()),
                    MatchOp::Re => format!("(?:{})", own.value()),
                    MatchOp::Ne | MatchOp::Nre => return None,
                });
            }
            let union = Matcher::new(label?, MatchOp::Re, &alternatives.join("|")).ok()?;
            let mut merged: Vec<Matcher> = common.into_iter().cloned().collect();
            merged.push(union);
            Some(merged)
        }
    }
}

/// Escapes RE2 metacharacters so a value matches itself literally.
fn escape_regex(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::text::{Scan, lexed_oversized_duration, may_spell_a_large_number};
    use super::*;
    use promql_parser::parser;

    fn enforcer(policy: &str) -> Enforcer {
        Enforcer::new(&Policy::parse(policy).unwrap())
            .unwrap()
            .unwrap()
    }

    /// A query within the length Tollgate reads whose rewrite is not: 400 for the client's
    /// query, not 500 for a failed verification.
    #[test]
    fn a_rewrite_past_the_length_bound_is_the_clients_query_too_long() {
        let enforcer = enforcer(r#"{kube_namespace="prometheus"}"#);
        let at_the_bound = format!(r#"{{a="{}"}}"#, "x".repeat(MAX_QUERY_BYTES - 6));
        assert_eq!(at_the_bound.len(), MAX_QUERY_BYTES);
        for (param, err) in [
            ("query", enforcer.rewrite_query(&at_the_bound).unwrap_err()),
            (
                "match[]",
                enforcer.rewrite_match(&at_the_bound).unwrap_err(),
            ),
        ] {
            assert_eq!(err, QueryError::RewrittenTooLong { param });
            assert_eq!(err.status(), 400);
        }
        let shorter = format!(r#"{{a="{}"}}"#, "x".repeat(MAX_QUERY_BYTES - 100));
        assert!(enforcer.rewrite_query(&shorter).is_ok());
    }

    /// Compares parsed forms: `Display` normalises spacing and order.
    fn assert_same_query(got: &str, want: &str, why: &str) {
        let canonical = |q: &str| parser::parse(q).unwrap().to_string();
        assert_eq!(canonical(got), canonical(want), "{why}: got {got}");
    }

    const NS: &str = r#"{kube_namespace="prometheus"}"#;

    proptest::proptest! {
        /// The cheap pre-filter never hides a number the lexer-based check would refuse.
        #[test]
        fn the_prefilter_misses_no_oversized_duration(
            text in "(x|\\[|\\]|:|offset |-|\\+|[0-9]{1,14}|\\.|e|E|0x|[a-f]|Inf|NaN|infinity| |m|s|#|\r|`)*"
        ) {
            if lexed_oversized_duration(&text).is_some() {
                proptest::prop_assert!(may_spell_a_large_number(&text), "{:?}", text);
            }
        }

        /// The one pass before parsing answers as the three checks it replaced: the nesting
        /// bound, the large-number pre-filter, and a search for `\x`, `\2`, `\3`.
        #[test]
        fn one_scan_answers_as_the_separate_checks(
            open in proptest::prop_oneof![0usize..8, 120usize..136],
            text in "(\\(|\\[|\\{|\\)|\\]|\\}|\\\\|x|X|2|3|[0-9]{1,13}|\\.|e|E|0x|Inf|nan|iNf|i|n|\"| |a|é|\\+|-|\\*|/|%|\\^|=|!|<|>|~)*"
        ) {
            let text = format!("{}{text}", "(".repeat(open));
            // The nesting bound as it was checked before the scan.
            let mut depth = 0usize;
            let mut too_deep = false;
            for c in text.bytes() {
                match c {
                    b'(' | b'[' | b'{' => {
                        depth += 1;
                        too_deep |= depth > MAX_NESTING;
                    }
                    b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            let separate = Scan {
                too_deep,
                operator_bytes: text.bytes().filter(|b| b"+-*/%^=!<>".contains(b)).count(),
                may_hold_a_regex: text.contains('~'),
                may_spell_a_large_number: may_spell_a_large_number(&text),
                may_hold_an_escape: text
                    .as_bytes()
                    .windows(2)
                    .any(|w| w[0] == b'\\' && matches!(w[1], b'x' | b'2' | b'3')),
            };
            proptest::prop_assert_eq!(Scan::of(&text), separate, "{:?}", text);
        }

        /// The vendored promql-parser reads durations by hand (vendor/README.md): it must
        /// answer as the published crate's regex did, errors included.
        #[test]
        fn durations_read_as_the_published_regex_reads_them(
            text in "(([0-9]{1,2}|4294967296)(y|w|d|h|m|s|ms)?|y|m|s|\\.|x|µ|١){0,6}"
        ) {
            same_duration_as_published(&text)?;
        }

        /// The same, for texts made only of units (repeated, out of order, in order).
        #[test]
        fn unit_durations_read_as_the_published_regex_reads_them(
            text in "(([0-9]{1,2}|4294967296)(y|w|d|h|m|s|ms)){1,4}"
        ) {
            same_duration_as_published(&text)?;
        }
    }

    /// Texts near the printed form of a label set: mostly `{a="b", c="d"}`, with spaces,
    /// commas, quotes, escapes, keywords as names, empty values, `or`, a `#` comment, non-ASCII.
    fn label_set_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::sample::select;
        use proptest::strategy::Strategy;
        let name = proptest::prop_oneof![
            2 => "[a-zA-Z_][a-zA-Z0-9_]{0,3}",
            1 => select(vec!["or", "OR", "sum", "by", "offset", "__name__", "1a", "a:b", "é", ""])
                .prop_map(str::to_owned),
        ];
        let equals = select(vec!["=", "=", "=", "=", " =", "= ", "=~", "!="]);
        let value = "([a-z0-9 #{}=,~!]|\\\\|\\\\\"|\\\\n|\\\\x|é|\t|\n|\x01|\x7f|\"){0,4}";
        let separator = select(vec![", ", ", ", ",", " , ", ",,", " or ", ""]);
        let open = select(vec!["{", "{", "{ ", "x{", ""]);
        let close = select(vec!["}", "}", "}", " }", ",}", "} ", "}#", ""]);
        (
            open,
            proptest::collection::vec((name, equals, value, separator), 0..4),
            close,
        )
            .prop_map(|(open, labels, close)| {
                let mut text = open.to_owned();
                for (i, (name, equals, value, separator)) in labels.iter().enumerate() {
                    if i > 0 {
                        text.push_str(separator);
                    }
                    text.push_str(&format!("{name}{equals}\"{value}\""));
                }
                text + close
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]

        /// The hand reader of Loki's stream labels says what the parser says, whenever it
        /// answers.
        #[test]
        fn plain_label_sets_read_as_the_parser_reads_them(text in label_set_text()) {
            if let Some(labels) = plain_label_set(&text) {
                proptest::prop_assert_eq!(Ok(labels), parse_label_set_with_parser(&text), "{:?}", text);
            }
        }
    }

    #[test]
    fn plain_label_sets_take_the_printed_form() {
        for (text, labels) in [
            (
                r#"{app="api-0", level="info"}"#,
                vec![("app", "api-0"), ("level", "info")],
            ),
            (r#"{a="b",c="d"}"#, vec![("a", "b"), ("c", "d")]),
            (r#"{ sum="x y", a="" }"#, vec![("sum", "x y"), ("a", "")]),
            (
                r#"{__name__="up", a="b", a="c"}"#,
                vec![("__name__", "up"), ("a", "b"), ("a", "c")],
            ),
        ] {
            let want: Vec<(String, String)> = labels
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(plain_label_set(text).as_ref(), Some(&want), "{text}");
            assert_eq!(parse_label_set_with_parser(text), Ok(want), "{text}");
        }
        // Left to the parser: escapes, spaces around `=`, a trailing comma, no non-empty value,
        // `or`, a comment, text after the braces, non-ASCII, a newline, a name the lexer reads
        // as a number.
        for text in [
            r#"{a="b\"c"}"#,
            r#"{a = "b"}"#,
            r#"{a="b",}"#,
            r#"{a=""}"#,
            "{}",
            r#"{a="b" or c="d"}"#,
            r#"{a="b"} # x"#,
            r#"{a="b"} "#,
            r#"{a="é"}"#,
            "{a=\"b\nc\"}",
            r#"{1a="b"}"#,
            r#"x{a="b"}"#,
            &format!(r#"{{a="{}"}}"#, "(".repeat(MAX_NESTING)),
            &format!(r#"{{a="{}"}}"#, "x".repeat(MAX_QUERY_BYTES)),
        ] {
            assert_eq!(plain_label_set(text), None, "{text}");
        }
        assert!(parse_label_set(r#"{a="b",}"#).is_ok());
        assert!(parse_label_set(r#"{a=""}"#).is_err());
    }

    fn same_duration_as_published(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        // Both panic on a plain number of seconds out of `Duration`'s range; the parser's
        // callers refuse those first (`lexed_oversized_duration`).
        if let Ok(seconds) = text.parse::<f64>() {
            proptest::prop_assume!(seconds < 1e12);
        }
        proptest::prop_assert_eq!(
            promql_parser::util::parse_duration(text),
            published_parse_duration(text),
            "{:?}",
            text
        );
        Ok(())
    }

    /// promql-parser 0.11.1's `parse_duration` as published (Apache-2.0, Greptime Team): the
    /// oracle of the vendored copy's hand-written reader.
    fn published_parse_duration(ds: &str) -> Result<std::time::Duration, String> {
        use std::time::Duration;
        let re = regex::Regex::new(
            r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$",
        )
        .unwrap();
        if ds.is_empty() {
            return Err("empty duration string".into());
        }
        if ds == "0" {
            return Err("duration must be greater than 0".into());
        }
        if let Ok(float_duration) = ds.parse::<f64>() {
            return Ok(Duration::from_secs_f64(float_duration));
        }
        let Some(caps) = re.captures(ds) else {
            return Err(format!("not a valid duration string: {ds}"));
        };
        let units = [
            365 * 86400 * 1000,
            7 * 86400 * 1000,
            86400 * 1000,
            3600 * 1000,
            60 * 1000,
            1000,
            1,
        ];
        let dur = units
            .into_iter()
            .enumerate()
            .map(|(i, millis)| {
                caps.get(2 * i + 2)
                    .and_then(|cap| cap.as_str().parse::<u32>().ok())
                    .and_then(|v| Duration::from_millis(millis).checked_mul(v))
            })
            .try_fold(Duration::ZERO, |acc, x| {
                acc.checked_add(x.unwrap_or(Duration::ZERO))
                    .ok_or_else(|| String::from("duration overflowed"))
            });
        if matches!(dur, Ok(d) if d == Duration::ZERO) {
            Err("duration must be greater than 0".into())
        } else {
            dur
        }
    }

    #[test]
    fn durations_read_as_before_on_known_spellings() {
        for text in [
            "5m",
            "5ms",
            "1m5ms",
            "1y2w3d4h5m6s7ms",
            "1m1m",
            "1s1m",
            "0s",
            "0",
            "00",
            "1.5",
            "",
            "1e3",
            "5",
            "4294967296s",
            "4294967295y",
            "4294967296m1s",
            "1h1",
            "h",
            "1x",
            "1M",
        ] {
            assert_eq!(
                promql_parser::util::parse_duration(text),
                published_parse_duration(text),
                "{text:?}"
            );
        }
    }

    /// Inputs found by `make fuzz` (fuzz/fuzz_targets/promql.rs) and by review, each with the
    /// answer it must get. Before the fixes they panicked promql-parser or answered 500.
    #[test]
    fn fuzz_regressions() {
        let e = enforcer(NS);
        let panicked_promql_parser = [
            // Found in review of the first guard, a hand-written lexer:
            "up offset Inf",
            "up offset NaN",
            "up offset -Inf",
            "up #\r offset 1e300",
            "up{a=`\\``} offset 1e300",
            // Did not panic, but printed back shorter (days overflowed): a narrower range upstream.
            "rate(up[0x7FFFFFFFFFFFFFFF])",
            "e[97777777767777677715]",
            "e[1e30]",
            "rate(e[.5e400])",
            "e offset 1e300",
            "e offset -1e300",
            "e OFFSET 1E+20",
            "e[5m:1e300]",
            "sum(x)[1e13:]",
        ];
        for query in panicked_promql_parser {
            let err = e.rewrite_query(query).unwrap_err();
            assert_eq!(err.status(), 400, "{query}: {err}");
        }
        // Large numbers elsewhere, in strings and in comments are not durations.
        for query in [
            "x > 1e300",
            r#"x{a="[1e300]"} offset 5m"#,
            "x # [1e300\n > 2",
            "x @ 1e10",
            "x[1h30m] offset 1y",
        ] {
            assert!(e.rewrite_query(query).is_ok(), "{query}");
        }
        for (query, status) in [("e[0]", 400), ("rate(e[0])", 400), ("e[5m:0]", 400)] {
            let err = e.rewrite_query(query).unwrap_err();
            assert_eq!(err.status(), status, "{query}: {err}");
        }
        let err = e.rewrite_match("e[0]").unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
    }

    #[test]
    fn rewrites_every_selector() {
        let cases = [
            ("up", r#"up{kube_namespace="prometheus"}"#, "simple"),
            (
                r#"up{job="api"}"#,
                r#"up{job="api", kube_namespace="prometheus"}"#,
                "keeps own matchers",
            ),
            (
                "rate(http_requests_total[5m])",
                r#"rate(http_requests_total{kube_namespace="prometheus"}[5m])"#,
                "matrix in a function",
            ),
            (
                "sum by (job) (rate(x[1m]))",
                r#"sum by (job) (rate(x{kube_namespace="prometheus"}[1m]))"#,
                "aggregation",
            ),
            (
                "sum without (kube_namespace) (x)",
                r#"sum without (kube_namespace) (x{kube_namespace="prometheus"})"#,
                "aggregation dropping the label",
            ),
            (
                "a / on(job) b",
                r#"a{kube_namespace="prometheus"} / on(job) b{kube_namespace="prometheus"}"#,
                "binary",
            ),
            (
                "a or b",
                r#"a{kube_namespace="prometheus"} or b{kube_namespace="prometheus"}"#,
                "or",
            ),
            (
                "a unless b",
                r#"a{kube_namespace="prometheus"} unless b{kube_namespace="prometheus"}"#,
                "unless",
            ),
            (
                "max_over_time(rate(x[1m])[1h:5m])",
                r#"max_over_time(rate(x{kube_namespace="prometheus"}[1m])[1h:5m])"#,
                "subquery",
            ),
            (
                "x offset 5m",
                r#"x{kube_namespace="prometheus"} offset 5m"#,
                "offset",
            ),
            (
                "x @ 1700000000",
                r#"x{kube_namespace="prometheus"} @ 1700000000"#,
                "at",
            ),
            (
                "rate(x[5m] offset 1h)",
                r#"rate(x{kube_namespace="prometheus"}[5m] offset 1h)"#,
                "matrix offset",
            ),
            (
                "topk(3, x)",
                r#"topk(3, x{kube_namespace="prometheus"})"#,
                "aggregation with a parameter",
            ),
            (
                r#"count_values("v", x)"#,
                r#"count_values("v", x{kube_namespace="prometheus"})"#,
                "string parameter",
            ),
            (
                r#"label_replace(x, "a", "$1", "b", "(.*)")"#,
                r#"label_replace(x{kube_namespace="prometheus"}, "a", "$1", "b", "(.*)")"#,
                "string arguments untouched",
            ),
            ("-x", r#"-x{kube_namespace="prometheus"}"#, "unary"),
            ("(x)", r#"(x{kube_namespace="prometheus"})"#, "paren"),
            ("1 + 2", "1 + 2", "no selector"),
            (
                r#"{__name__=~"node_.*"}"#,
                r#"{__name__=~"node_.*", kube_namespace="prometheus"}"#,
                "selector by __name__ only",
            ),
            (
                r#"x{kube_namespace=~"prom.*"}"#,
                r#"x{kube_namespace=~"prom.*", kube_namespace="prometheus"}"#,
                "regex on the policy label is ANDed",
            ),
            (
                r#"x{kube_namespace=~".*"}"#,
                r#"x{kube_namespace=~".*", kube_namespace="prometheus"}"#,
                "escape attempt is ANDed away",
            ),
            (
                r#"x{kube_namespace="prometheus"}"#,
                r#"x{kube_namespace="prometheus"}"#,
                "already present: not duplicated",
            ),
            (
                r#"x{kube_namespace!="other"}"#,
                r#"x{kube_namespace!="other", kube_namespace="prometheus"}"#,
                "compatible negative",
            ),
        ];
        let e = enforcer(NS);
        for (query, want, why) in cases {
            let got = e
                .rewrite_query(query)
                .unwrap_or_else(|err| panic!("{why}: {err}"));
            assert_same_query(&got, want, why);
        }
    }

    #[test]
    fn multi_label_regex_and_empty_policies() {
        let e = enforcer(r#"{tenant="a", env=~"prod|staging"}"#);
        assert_same_query(
            &e.rewrite_query("up").unwrap(),
            r#"up{env=~"prod|staging", tenant="a"}"#,
            "multi-label",
        );
        let err = e.rewrite_query(r#"up{env="dev"}"#).unwrap_err();
        assert!(
            matches!(err, QueryError::Conflict { ref label, .. } if label == "env"),
            "{err}"
        );
        assert!(
            Enforcer::new(&Policy::unrestricted()).unwrap().is_none(),
            "empty policy: nothing to enforce"
        );
        assert_eq!(e.default_match(), r#"{env=~"prod|staging",tenant="a"}"#);
    }

    #[test]
    fn conflicting_matchers_are_refused() {
        let e = enforcer(NS);
        let cases = [
            r#"x{kube_namespace="dd-trace-example"}"#,
            r#"x{kube_namespace=~"dd-.*"}"#,
            r#"x{kube_namespace!="prometheus"}"#,
            r#"x{kube_namespace!~"prom.*"}"#,
            r#"a or b{kube_namespace="other"}"#,
        ];
        for query in cases {
            let err = e.rewrite_query(query).unwrap_err();
            assert!(matches!(err, QueryError::Conflict { .. }), "{query}: {err}");
            assert_eq!(err.status(), 403);
        }
        let regex_policy = enforcer(r#"{team=~"a|b"}"#);
        assert!(matches!(
            regex_policy.rewrite_query(r#"x{team="c"}"#),
            Err(QueryError::Conflict { .. })
        ));
        assert!(regex_policy.rewrite_query(r#"x{team="a"}"#).is_ok());
        let name_policy = enforcer(r#"{__name__=~"node_.*"}"#);
        assert!(
            matches!(
                name_policy.rewrite_query("up"),
                Err(QueryError::Conflict { .. })
            ),
            "metric name outside the policy"
        );
        assert_same_query(
            &name_policy.rewrite_query("node_load1").unwrap(),
            "node_load1",
            "a name within the policy needs no matcher",
        );
        assert_same_query(
            &name_policy.rewrite_query(r#"{job="x"}"#).unwrap(),
            r#"{job="x", __name__=~"node_.*"}"#,
            "unnamed selectors get it",
        );
    }

    #[test]
    fn or_policies() {
        let union = enforcer(r#"{ns="a"} or {ns="b.c"}"#);
        assert_same_query(
            &union.rewrite_query("up").unwrap(),
            r#"up{ns=~"a|b\\.c"}"#,
            "equalities become an escaped union",
        );
        let with_common = enforcer(r#"{env="prod", ns="a"} or {env="prod", ns=~"b.*"}"#);
        assert_same_query(
            &with_common.rewrite_query("up").unwrap(),
            r#"up{env="prod", ns=~"a|(?:b.*)"}"#,
            "common matchers kept",
        );
        let subsumed = enforcer(r#"{ns="a"} or {ns="a", job="x"}"#);
        assert_same_query(
            &subsumed.rewrite_query("up").unwrap(),
            r#"up{ns="a"}"#,
            "a selector inside another adds nothing",
        );
        let negative = enforcer(r#"{ns!="a"} or {ns="b"}"#);
        assert_same_query(
            &negative.rewrite_query("up").unwrap(),
            r#"up{ns!="a"}"#,
            "{ns=\"b\"} lies within {ns!=\"a\"}",
        );
        for policy in [
            r#"{ns="a"} or {team="b"}"#,
            r#"{ns="a", env="x"} or {ns="b", env="y"}"#,
            r#"{ns!="a"} or {ns="a", team="x"}"#,
        ] {
            let err = Enforcer::new(&Policy::parse(policy).unwrap()).unwrap_err();
            assert!(
                matches!(err, QueryError::PolicyNotExpressible { .. }),
                "{policy}"
            );
            assert_eq!(err.status(), 403);
        }
    }

    #[test]
    fn bad_queries_are_400() {
        let e = enforcer(NS);
        let deep = format!(
            "{}x{}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        for query in ["up{", "sum(", "", "x[5m", deep.as_str()] {
            let err = e.rewrite_query(query).unwrap_err();
            assert_eq!(err.status(), 400, "{query:.40}: {err}");
        }
        assert!(matches!(
            e.rewrite_match("sum(up)"),
            Err(QueryError::NotASelector { .. })
        ));
        assert_same_query(
            &e.rewrite_match(r#"up{job="a"}"#).unwrap(),
            r#"up{job="a", kube_namespace="prometheus"}"#,
            "match[]",
        );
    }

    /// Operator chains nest the parsed query as deep as they are long: beyond
    /// [`MAX_OPERATORS`] they are refused before parsing (a 16 KB `a+a+...` overflowed a 2 MiB
    /// stack). Operators inside strings do not count.
    #[test]
    fn long_operator_chains_are_refused_before_parsing() {
        let e = enforcer(NS);
        let binary = |n: usize| format!("a{}", "+a".repeat(n));
        let too_many = format!("more than {MAX_OPERATORS} operators");
        for text in [
            binary(MAX_OPERATORS + 1),
            binary(20_000),
            format!("{}a", "-".repeat(MAX_OPERATORS + 1)),
            format!("a{}", " or a".repeat(MAX_OPERATORS + 1)),
        ] {
            match e.rewrite_query_afresh(&text) {
                Err(QueryError::Unparsable { message, .. }) => assert_eq!(message, too_many),
                other => panic!("{}...: {other:?}", &text[..20]),
            }
        }
        // At the bound, with the deepest nesting allowed around it, in a thread with a tokio
        // worker's stack, in a debug build (a release build needs under 256 KiB).
        let at_bound = format!(
            "{}{}{}",
            "sum(".repeat(MAX_NESTING - 1),
            binary(MAX_OPERATORS),
            ")".repeat(MAX_NESTING - 1)
        );
        let rewritten = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || enforcer(NS).rewrite_query_afresh(&at_bound))
            .unwrap()
            .join()
            .unwrap();
        assert!(rewritten.is_ok(), "{rewritten:?}");
        let dashes = format!(r#"up{{pod=~"{}"}} + up"#, "a-".repeat(2000));
        assert!(e.rewrite_query_afresh(&dashes).is_ok());
    }

    /// Regexes are held to the dialect and counted before the parser compiles them: a budget
    /// of repetitions the dialect refuses (`(?:.{1000}){10}`) never reaches the compiler, and
    /// more than [`MAX_REGEX_MATCHERS`] are refused. The rewrite's own verification does not
    /// count the policy's regexes.
    #[test]
    fn regexes_are_checked_before_parsing() {
        let e = enforcer(NS);
        match e.rewrite_query_afresh(r#"up{job=~"(?:.{1000}){10}x"}"#) {
            Err(QueryError::UnsupportedRegex { message, .. }) => {
                assert!(message.contains("label `job`"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let many = |n: usize| {
            let selectors: Vec<String> = (0..n).map(|i| format!(r#"up{{a=~"x{i}"}}"#)).collect();
            selectors.join(" or ")
        };
        assert!(e.rewrite_query_afresh(&many(MAX_REGEX_MATCHERS)).is_ok());
        match e.rewrite_query_afresh(&many(MAX_REGEX_MATCHERS + 1)) {
            Err(QueryError::Unparsable { message, .. }) => {
                assert_eq!(
                    message,
                    format!("more than {MAX_REGEX_MATCHERS} regex matchers")
                )
            }
            other => panic!("{other:?}"),
        }
        let regex_policy = enforcer(r#"{kube_namespace=~"prom.*"}"#);
        assert!(
            regex_policy
                .rewrite_query_afresh(&many(MAX_REGEX_MATCHERS))
                .is_ok()
        );
        // `=~` inside a string is not a matcher.
        let quoted = format!(r#"up{{a="{}"}}"#, "=~".repeat(100));
        assert!(e.rewrite_query_afresh(&quoted).is_ok());
    }

    /// Two metric names in one selector (`{"a", "b"}`) select nothing: the rewrite passes it on
    /// with the policy added (Prometheus answers it empty), the body check refuses it (fuzz
    /// regression `two-metric-names-select-nothing`).
    #[test]
    fn a_selector_of_two_metric_names_selects_nothing() {
        let policy = Policy::parse(NS).unwrap();
        let rewritten = enforcer(NS).rewrite_query(r#"{"a", "b"}"#).unwrap();
        assert!(matches!(
            check_within(&policy, "query", &rewritten),
            Err(QueryError::SelectsNothing { .. })
        ));
    }

    #[test]
    fn tricky_values_survive_the_round_trip() {
        let e = enforcer(r#"{team="a\"b\\c", path=~"/x/.*"}"#);
        let got = e.rewrite_query(r#"up{label="\"}"}"#).unwrap();
        let reparsed = parser::parse(&got).unwrap();
        let Expr::VectorSelector(vs) = reparsed else {
            panic!("selector")
        };
        let values: Vec<(&str, &str)> = vs
            .matchers
            .matchers
            .iter()
            .map(|m| (m.name.as_str(), m.value.as_str()))
            .collect();
        assert!(
            values.contains(&("team", "a\"b\\c")) && values.contains(&("label", "\"}")),
            "{values:?}"
        );
    }

    #[test]
    fn bodies_are_checked_not_rewritten() {
        let policy = Policy::parse(NS).unwrap();
        let cases = [
            (r#"up{kube_namespace="prometheus"}"#, true, "already within"),
            (
                r#"sum(rate(x{kube_namespace="prometheus", job="a"}[5m]))"#,
                true,
                "narrower, nested",
            ),
            ("up", false, "missing the policy matcher"),
            (
                r#"up{kube_namespace="prometheus"} or down"#,
                false,
                "one selector outside",
            ),
            (
                r#"up{kube_namespace=~"prom.*"}"#,
                false,
                "regex wider than the policy",
            ),
        ];
        for (query, ok, why) in cases {
            let got = check_within(&policy, "query", query);
            assert_eq!(got.is_ok(), ok, "{why}: {got:?}");
            if let Err(err) = got {
                assert_eq!(err.status(), 403);
                assert!(
                    err.to_string().contains("add the policy's matchers"),
                    "says how to comply"
                );
            }
        }
        let or_policy = Policy::parse(r#"{ns="a"} or {team="b"}"#).unwrap();
        assert!(
            check_within(&or_policy, "query", r#"x{ns="a"} + y{team="b"}"#).is_ok(),
            "each selector within one branch"
        );
        assert!(check_within(&Policy::unrestricted(), "query", "up").is_ok());
    }

    /// Issue 11: bodies passed through unrewritten are judged as Prometheus (Go) reads them.
    #[test]
    fn bodies_are_judged_in_the_upstream_dialect() {
        let policy = Policy::parse(NS).unwrap();
        let cases: &[(&str, u16, &str)] = &[
            (
                r#"{kube_namespace="other", kube_namespace=~"[o&&p]ther"}"#,
                400,
                "class set operation",
            ),
            (
                r#"up{kube_namespace=~"[[p]]rometheus"}"#,
                400,
                "nested class",
            ),
            (
                r#"up{kube_namespace=~"(?i)PROMETHEUS"}"#,
                400,
                "case-insensitive",
            ),
            (
                r#"{kube_namespace="prometheus", kube_namespace="other"}"#,
                403,
                "can never match",
            ),
            (
                r#"up{kube_namespace="prometheus", kube_namespace!~"prometheus|x"}"#,
                403,
                "can never match",
            ),
            (r#"up{kube_namespace="prometh\xc3\xa9us"}"#, 400, "\\xc3"),
            (r#"up{kube_namespace="prometheus", a='\303'}"#, 400, "\\303"),
            ("info(up{kube_namespace=\"prometheus\"})", 403, "info()"),
        ];
        for (query, status, says) in cases {
            let err = check_within(&policy, "query", query).expect_err(query);
            assert_eq!(err.status(), *status, "{query}: {err}");
            assert!(err.to_string().contains(says), "{query}: {err}");
        }
        for query in [
            r#"up{kube_namespace="prometheus", a="\x41\101\u00e9"}"#,
            r#"up{kube_namespace="prometheus", a=`\xc3`}"#,
            r#"up{kube_namespace="prometheus", a="\\xc3"}"#,
            r#"up{kube_namespace="prometheus", job=~"web-\\d+"}"#,
            r#"info(up{kube_namespace="prometheus"}, {kube_namespace="prometheus"})"#,
        ] {
            assert!(check_within(&policy, "query", query).is_ok(), "{query}");
        }
    }

    #[test]
    fn a_policy_compiles_its_enforcer_once_for_all_its_clones() {
        let policy = Policy::parse(NS).unwrap();
        let first = policy.enforcer().unwrap().unwrap() as *const Enforcer;
        let clone = policy.clone();
        let second = clone.enforcer().unwrap().unwrap() as *const Enforcer;
        assert_eq!(first, second, "shared by clones");
        assert!(Policy::unrestricted().enforcer().unwrap().is_none());
        let or = Policy::parse(r#"{a="x"} or {b="y"}"#).unwrap();
        assert_eq!(
            or.enforcer().unwrap_err().status(),
            403,
            "errors are kept too"
        );
        assert_eq!(or.enforcer().unwrap_err().status(), 403);
    }

    #[test]
    fn rewrites_and_refusals_are_remembered_per_parameter() {
        let e = enforcer(NS);
        for _ in 0..2 {
            assert_eq!(
                e.rewrite_query("up").unwrap(),
                e.rewrite_query_afresh("up").unwrap()
            );
            assert_eq!(
                e.rewrite_query("sum(").unwrap_err(),
                e.rewrite_query_afresh("sum(").unwrap_err()
            );
            // The same text as a match[] is judged as one, not as the query it was before.
            assert!(e.rewrite_match("up").is_ok());
            assert_eq!(
                e.rewrite_match("sum(up)").unwrap_err(),
                QueryError::NotASelector { param: "match[]" }
            );
        }
        // Bounded: many distinct queries keep at most the last REMEMBERED_REWRITES.
        for i in 0..REMEMBERED_REWRITES + 10 {
            e.rewrite_query(&format!("up{{i=\"{i}\"}}")).unwrap();
        }
        let remembered = e.remembered.lock().unwrap();
        assert_eq!(
            remembered[Rewritten::Query as usize].len(),
            REMEMBERED_REWRITES
        );
        assert_eq!(remembered[Rewritten::Match as usize].len(), 2);
    }

    #[test]
    fn rewrites_hold_the_same_dialect_and_complete_info() {
        let e = enforcer(NS);
        let err = e.rewrite_query(r#"up{job=~"[a&&b]"}"#).unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
        let err = e.rewrite_query(r#"up{job="\xff"}"#).unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
        assert_same_query(
            &e.rewrite_query("info(rate(up[5m]))").unwrap(),
            r#"info(rate(up{kube_namespace="prometheus"}[5m]), {kube_namespace="prometheus"})"#,
            "info() gains the policy as its selector",
        );
        assert_same_query(
            &e.rewrite_query(r#"info(up, {k8s_cluster=~".+"})"#).unwrap(),
            r#"info(up{kube_namespace="prometheus"}, {k8s_cluster=~".+", kube_namespace="prometheus"})"#,
            "a given info selector gains the policy",
        );
    }

    #[test]
    fn params() {
        let e = enforcer(NS);
        let pairs = crate::form::parse("query=up&time=1").unwrap();
        let rewrite = rewrite_params(&e, PromParams::Query, &pairs).unwrap();
        assert_eq!(rewrite.set.len(), 1);
        assert_same_query(
            &rewrite.set[0].1,
            r#"up{kube_namespace="prometheus"}"#,
            "query param",
        );
        assert!(rewrite.remove_raw.is_empty());

        let pairs = crate::form::parse("match%5B%5D=up&match[]=down").unwrap();
        let rewrite = rewrite_params(&e, PromParams::Match, &pairs).unwrap();
        assert_eq!(rewrite.set.len(), 2);
        assert_eq!(
            rewrite.remove_raw,
            ["match%5B%5D"],
            "raw spelling must be removed"
        );

        assert!(rewrite.has_repeated_key());
        let rebuilt = rewrite.apply("match%5B%5D=up&start=1&match[]=down");
        let reparsed = crate::form::parse(&rebuilt).unwrap();
        let keys: Vec<(&str, &str)> = reparsed
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(keys.len(), 3, "{rebuilt}");
        assert_eq!(keys[0], ("start", "1"), "other parameters kept");
        assert!(
            keys[1..]
                .iter()
                .all(|(k, v)| *k == "match[]" && v.contains("kube_namespace")),
            "{rebuilt}"
        );

        let none = rewrite_params(&e, PromParams::Match, &[]).unwrap();
        assert!(!none.has_repeated_key());
        assert_eq!(
            none.set,
            [(
                "match[]".to_owned(),
                r#"{kube_namespace="prometheus"}"#.to_owned()
            )]
        );

        let twice = crate::form::parse("query=a&query=b").unwrap();
        assert_eq!(
            rewrite_params(&e, PromParams::Query, &twice),
            Err(QueryError::Repeated { param: "query" })
        );

        let policy = Policy::parse(NS).unwrap();
        let body = crate::form::parse("match[]=sum(x)").unwrap();
        assert!(matches!(
            check_params_within(&policy, PromParams::Match, &body),
            Err(QueryError::NotASelector { .. })
        ));
        let text = format!(
            "query={}",
            crate::form::encode(r#"up{kube_namespace="prometheus"}"#)
        );
        let body = crate::form::parse(&text).unwrap();
        assert!(check_params_within(&policy, PromParams::Query, &body).is_ok());

        // A repeated query is refused as rewrite_params refuses it, inside the policy or not.
        for repeated in [format!("{text}&{text}"), format!("{text}&query=up")] {
            let body = crate::form::parse(&repeated).unwrap();
            assert_eq!(
                check_params_within(&policy, PromParams::Query, &body),
                Err(QueryError::Repeated { param: "query" }),
                "{repeated}"
            );
            assert_eq!(
                rewrite_params(&e, PromParams::Query, &body),
                Err(QueryError::Repeated { param: "query" })
            );
        }
    }
}
