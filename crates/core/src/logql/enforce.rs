//! The rewrite (policy matchers inserted into every stream selector, by span), its
//! verification, and the check of a query that cannot be rewritten (ext_authz bodies).

use super::LogqlError;
use super::parse::{QueryMatcher, Shape, StreamSelector, parse};
use crate::regex_dialect;
use crate::selector::{MatchOp, Matcher, Policy, Selector, SelectorError};

/// A restricted policy ready to confine LogQL: the policy as one selector's matchers (shared
/// with the policy's PromQL enforcer, compiled once per policy value).
#[derive(Debug, Clone, Copy)]
pub struct LogqlEnforcer<'a> {
    matchers: &'a [Matcher],
    policy: &'a str,
}

impl<'a> LogqlEnforcer<'a> {
    /// `None` for an unrestricted policy: there is nothing to enforce.
    pub fn new(policy: &'a Policy) -> Result<Option<LogqlEnforcer<'a>>, LogqlError> {
        match policy.enforcer() {
            Ok(None) => Ok(None),
            Ok(Some(enforcer)) => Ok(Some(LogqlEnforcer {
                matchers: enforcer.matchers(),
                policy: enforcer.policy(),
            })),
            Err(_) => Err(LogqlError::PolicyNotExpressible {
                policy: policy.to_string(),
            }),
        }
    }

    /// The policy as one stream selector, for a parameter the client did not send.
    pub fn default_selector(&self) -> String {
        let mut out = String::from("{");
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&m.to_string());
        }
        out.push('}');
        out
    }

    /// Adds the policy's matchers to every stream selector of a log or metric query.
    pub fn rewrite_query(&self, param: &'static str, query: &str) -> Result<String, LogqlError> {
        self.rewrite(param, query, Shape::Query)
    }

    /// Adds the policy's matchers to a bare stream selector (`match[]`).
    pub fn rewrite_selector(
        &self,
        param: &'static str,
        selector: &str,
    ) -> Result<String, LogqlError> {
        self.rewrite(param, selector, Shape::Selector)
    }

    fn rewrite(&self, param: &'static str, text: &str, shape: Shape) -> Result<String, LogqlError> {
        let selectors = parse(param, text, shape)?;
        let mut out = String::with_capacity(text.len() + selectors.len() * 32);
        let mut copied = 0;
        for selector in &selectors {
            self.restrict(param, text, selector)?;
            let mut first = selector.matchers.is_empty();
            // The parser's offsets are token boundaries of `text`, in increasing order.
            out.push_str(text.get(copied..selector.close).unwrap_or(""));
            for m in self.matchers {
                if selector.matchers.iter().any(|q| same(q, m)) {
                    continue;
                }
                if !first {
                    out.push_str(", ");
                }
                first = false;
                out.push_str(&m.to_string());
            }
            copied = selector.close;
        }
        out.push_str(text.get(copied..).unwrap_or(""));
        // Past the length the parser reads, the verification would fail as if our rewrite were
        // wrong (500): it is the client's query grown too long.
        if out.len() > super::MAX_QUERY_BYTES {
            return Err(LogqlError::RewrittenTooLong { param });
        }
        self.verify(param, &out, shape)?;
        Ok(out)
    }

    /// Refuses a selector whose regexes are outside the shared dialect, or whose own matcher on
    /// a policy label excludes every value the policy allows.
    fn restrict(
        &self,
        param: &'static str,
        text: &str,
        selector: &StreamSelector,
    ) -> Result<(), LogqlError> {
        for q in &selector.matchers {
            if matches!(q.op, MatchOp::Re | MatchOp::Nre) {
                regex_dialect::to_rust(&q.value).map_err(|err| LogqlError::UnsupportedRegex {
                    param,
                    message: format!("regular expression for label `{}`: {err}", q.name),
                })?;
            }
        }
        for policy in self.matchers {
            let label = policy.name().as_str();
            if selector
                .matchers
                .iter()
                .filter(|q| q.name == label)
                .any(|q| disjoint(policy, q))
            {
                return Err(LogqlError::Conflict {
                    selector: spelled(text, selector),
                    label: label.to_owned(),
                    policy: self.policy.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Every selector of the re-parsed text carries every policy matcher.
    fn verify(&self, param: &'static str, rewritten: &str, shape: Shape) -> Result<(), LogqlError> {
        let selectors =
            parse(param, rewritten, shape).map_err(|_| LogqlError::VerificationFailed)?;
        let complete = selectors.iter().all(|s| {
            self.matchers
                .iter()
                .all(|m| s.matchers.iter().any(|q| same(q, m)))
        });
        if complete {
            Ok(())
        } else {
            Err(LogqlError::VerificationFailed)
        }
    }
}

fn same(q: &QueryMatcher, m: &Matcher) -> bool {
    q.name == m.name().as_str() && q.op == m.op() && q.value == m.value()
}

fn spelled(text: &str, selector: &StreamSelector) -> String {
    text.get(selector.open..=selector.close)
        .unwrap_or("{...}")
        .to_owned()
}

/// Whether no value satisfies both (decidable when either is an equality). A query matcher
/// our policies could not hold (control characters, huge values) is left undecided: the AND
/// still confines it.
fn disjoint(policy: &Matcher, q: &QueryMatcher) -> bool {
    match (policy.op(), q.op) {
        (MatchOp::Eq, _) => {
            Matcher::new(&q.name, q.op, &q.value).is_ok_and(|q| !q.matches_value(policy.value()))
        }
        (_, MatchOp::Eq) => !policy.matches_value(&q.value),
        _ => false,
    }
}

/// Whether every stream selector of `query` already lies within `policy` (for bodies that
/// cannot be rewritten). `selector_only` for `match[]`.
pub fn check_within(
    policy: &Policy,
    param: &'static str,
    query: &str,
    selector_only: bool,
) -> Result<(), LogqlError> {
    if policy.is_unrestricted() {
        return Ok(());
    }
    let shape = if selector_only {
        Shape::Selector
    } else {
        Shape::Query
    };
    for selector in parse(param, query, shape)? {
        let outside = || LogqlError::BodyOutsidePolicy {
            selector: spelled(query, &selector),
            policy: policy.to_string(),
        };
        let mut matchers = Vec::with_capacity(selector.matchers.len());
        for q in &selector.matchers {
            matchers.push(
                Matcher::new(&q.name, q.op, &q.value).map_err(|err| match err {
                    SelectorError::UnsupportedRegex { .. } | SelectorError::InvalidRegex { .. } => {
                        LogqlError::UnsupportedRegex {
                            param,
                            message: err.to_string(),
                        }
                    }
                    // Values our policies cannot hold are simply not within any policy.
                    _ => outside(),
                })?,
            );
        }
        let candidate = Selector::new(matchers);
        if candidate.selects_nothing() {
            return Err(LogqlError::SelectsNothing {
                selector: spelled(query, &selector),
            });
        }
        if !policy.contains(&Policy::new(vec![candidate])) {
            return Err(outside());
        }
    }
    Ok(())
}
