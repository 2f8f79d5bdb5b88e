//! The PromQL parameters of a query string or a form body (`query`, `match[]`): rewritten with
//! an [`Enforcer`], or checked against a policy.

use super::text::parse;
use super::{Enforcer, QueryError, check_within};
use crate::form::FormPair;
use crate::selector::Policy;
use promql_parser::parser::Expr;

/// The URL parameters to set after enforcement, and the raw key spellings to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamRewrite {
    /// Decoded key and decoded new value, in order.
    pub set: Vec<(String, String)>,
    /// Raw spellings of enforced keys that differ from the canonical key (`match%5B%5D`): an
    /// Envoy that matches keys raw must remove them, or the upstream would see both.
    pub remove_raw: Vec<String>,
}

impl ParamRewrite {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove_raw.is_empty()
    }

    /// Whether a key is set more than once (several `match[]`): Envoy's
    /// `query_parameters_to_set` keeps only one value per key, so such a rewrite must replace
    /// the whole query string.
    pub fn has_repeated_key(&self) -> bool {
        let mut seen = std::collections::HashSet::with_capacity(self.set.len());
        self.set.iter().any(|(key, _)| !seen.insert(key.as_str()))
    }

    /// The query string with every enforced key (in any spelling) replaced by the rewritten
    /// values, other parameters kept as sent.
    pub fn apply(&self, query_string: &str) -> String {
        // Linear in the parts: each part's key is decoded once and looked up (a scan of every
        // set value per part made a 400 KB form body of `match[]`s cost 34 s).
        let mut keys: Vec<&str> = Vec::new();
        for (key, _) in &self.set {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        // Usually empty: no set (and no hasher) for it then.
        let removed: Option<std::collections::HashSet<&str>> = (!self.remove_raw.is_empty())
            .then(|| self.remove_raw.iter().map(String::as_str).collect());
        let enforced = |raw_key: &str| {
            removed.as_ref().is_some_and(|r| r.contains(raw_key))
                || keys.contains(&raw_key)
                // Only `%` and `+` decode to something else: other keys were just looked up.
                || (raw_key.contains(['%', '+'])
                    && crate::form::decode(raw_key).is_ok_and(|k| keys.contains(&k.as_str())))
        };
        // Built in one string: this runs on every restricted query.
        let mut out = String::with_capacity(query_string.len() + 16);
        let separate = |out: &mut String| {
            if !out.is_empty() {
                out.push('&');
            }
        };
        for part in query_string.split('&') {
            if !part.is_empty() && !enforced(part.split_once('=').map_or(part, |(k, _)| k)) {
                separate(&mut out);
                out.push_str(part);
            }
        }
        for (key, value) in &self.set {
            separate(&mut out);
            crate::form::encode_into(key, &mut out);
            out.push('=');
            crate::form::encode_into(value, &mut out);
        }
        out
    }
}

/// Which parameters carry PromQL on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromParams {
    /// `query` (instant, range, exemplars).
    Query,
    /// `match[]` series selectors; one carrying the policy is added when none is given.
    Match,
}

/// Rewrites the PromQL parameters among `pairs` (a query string or a form body).
pub fn rewrite_params(
    enforcer: &Enforcer,
    params: PromParams,
    pairs: &[FormPair<'_>],
) -> Result<ParamRewrite, QueryError> {
    let mut rewrite = ParamRewrite::default();
    let key = match params {
        PromParams::Query => "query",
        PromParams::Match => "match[]",
    };
    let found: Vec<&FormPair<'_>> = pairs.iter().filter(|p| p.key == key).collect();
    for pair in &found {
        if pair.raw_key != key && !rewrite.remove_raw.iter().any(|r| r == pair.raw_key) {
            rewrite.remove_raw.push(pair.raw_key.to_owned());
        }
    }
    match params {
        PromParams::Query => match found.as_slice() {
            [] => {}
            [one] => rewrite
                .set
                .push((key.to_owned(), enforcer.rewrite_query(&one.value)?)),
            _ => return Err(QueryError::Repeated { param: "query" }),
        },
        PromParams::Match if found.is_empty() => {
            rewrite.set.push((key.to_owned(), enforcer.default_match()))
        }
        PromParams::Match => {
            for pair in found {
                rewrite
                    .set
                    .push((key.to_owned(), enforcer.rewrite_match(&pair.value)?));
            }
        }
    }
    Ok(rewrite)
}

/// Checks, without rewriting, that the PromQL parameters among `pairs` lie within `policy`.
pub fn check_params_within(
    policy: &Policy,
    params: PromParams,
    pairs: &[FormPair<'_>],
) -> Result<(), QueryError> {
    // As `rewrite_params`: one answer whichever part decides.
    if matches!(params, PromParams::Query) && pairs.iter().filter(|p| p.key == "query").count() > 1
    {
        return Err(QueryError::Repeated { param: "query" });
    }
    for pair in pairs {
        match (params, pair.key.as_str()) {
            (PromParams::Query, "query") => check_within(policy, "query", &pair.value)?,
            (PromParams::Match, "match[]") => {
                if !matches!(parse("match[]", &pair.value)?, Expr::VectorSelector(_)) {
                    return Err(QueryError::NotASelector { param: "match[]" });
                }
                check_within(policy, "match[]", &pair.value)?
            }
            _ => {}
        }
    }
    Ok(())
}
