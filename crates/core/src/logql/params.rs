//! The LogQL parameters of a query string or a form body, by endpoint: rewritten with a
//! [`LogqlEnforcer`], or checked against a policy.

use super::{LogqlEnforcer, LogqlError, check_within};
use crate::form::FormPair;
use crate::promql::ParamRewrite;
use crate::selector::Policy;

/// Which parameters carry LogQL on a Loki endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogqlParams {
    /// `query`, required by Loki (query, query_range, tail): rewritten when present.
    Query,
    /// `query`, optional (labels, label values, index and detected endpoints): rewritten, and
    /// the policy's selector added when absent, since Loki then answers for every stream.
    OptionalQuery,
    /// `match[]` stream selectors (series; Loki also reads `match`): rewritten, one added when
    /// none is given.
    Series,
}

impl LogqlParams {
    /// The keys that carry LogQL, and whether they hold only a selector.
    pub fn keys(self) -> (&'static [&'static str], bool) {
        match self {
            LogqlParams::Query | LogqlParams::OptionalQuery => (&["query"], false),
            LogqlParams::Series => (&["match[]", "match"], true),
        }
    }
}

fn param_name(key: &str) -> &'static str {
    if key == "query" { "query" } else { "match[]" }
}

/// Rewrites the LogQL parameters among `pairs` (a query string or a form body).
pub fn rewrite_params(
    enforcer: &LogqlEnforcer<'_>,
    params: LogqlParams,
    pairs: &[FormPair<'_>],
) -> Result<ParamRewrite, LogqlError> {
    let (keys, selector_only) = params.keys();
    let found: Vec<&FormPair<'_>> = pairs
        .iter()
        .filter(|p| keys.contains(&p.key.as_str()))
        .collect();
    let mut rewrite = ParamRewrite::default();
    for pair in &found {
        if pair.raw_key != pair.key && !rewrite.remove_raw.iter().any(|r| r == pair.raw_key) {
            rewrite.remove_raw.push(pair.raw_key.to_owned());
        }
    }
    if !selector_only && found.len() > 1 {
        // Go's FormValue takes the first of several; refuse rather than guess which.
        return Err(LogqlError::Repeated { param: "query" });
    }
    if found.is_empty() {
        if params != LogqlParams::Query {
            rewrite
                .set
                .push((keys[0].to_owned(), enforcer.default_selector()));
        }
        return Ok(rewrite);
    }
    for pair in found {
        let param = param_name(&pair.key);
        let value = if selector_only {
            enforcer.rewrite_selector(param, &pair.value)?
        } else {
            enforcer.rewrite_query(param, &pair.value)?
        };
        rewrite.set.push((pair.key.clone(), value));
    }
    Ok(rewrite)
}

/// Checks, without rewriting, that the LogQL parameters among `pairs` lie within `policy`.
pub fn check_params_within(
    policy: &Policy,
    params: LogqlParams,
    pairs: &[FormPair<'_>],
) -> Result<(), LogqlError> {
    let (keys, selector_only) = params.keys();
    let found: Vec<&FormPair<'_>> = pairs
        .iter()
        .filter(|p| keys.contains(&p.key.as_str()))
        .collect();
    // As `rewrite_params`: one answer whichever part decides.
    if !selector_only && found.len() > 1 {
        return Err(LogqlError::Repeated { param: "query" });
    }
    for pair in found {
        check_within(policy, param_name(&pair.key), &pair.value, selector_only)?;
    }
    Ok(())
}
