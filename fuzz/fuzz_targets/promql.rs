//! PromQL enforcement: the rewrite of `query` and `match[]`, the check of bodies, and parameter
//! parsing, under several label policies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promql_parser::parser::{self, Expr, VectorSelector};
use tollgate_core::Policy;
use tollgate_core::form;
use tollgate_core::promql::{self, Enforcer, QueryError, check_within};
use tollgate_core::selector::{MatchOp, Matcher};

const POLICIES: &[&str] = &[
    r#"{namespace="team-a"}"#,
    r#"{namespace=~"team-(a|b)", env!="prod"}"#,
    r#"{__name__=~"up|node_.*"}"#,
    r#"{cluster!~"x.*", job="api"}"#,
    r#"{job="a"} or {job="b"}"#,
];

/// Input: a policy digit (index into POLICIES), a kind (`q` query, `m` match[], `b` body check,
/// `l` a Loki label set, `f` form parsing), then the text. Seeds are readable: `0qsum(rate(x[5m]))`.
fn split(data: &[u8]) -> Option<(&'static str, u8, &str)> {
    let [policy, kind, text @ ..] = data else {
        return None;
    };
    let policy = POLICIES[usize::from(policy.wrapping_sub(b'0')) % POLICIES.len()];
    Some((policy, *kind, std::str::from_utf8(text).ok()?))
}

fuzz_target!(|data: &[u8]| {
    let Some((policy, kind, text)) = split(data) else {
        return;
    };
    // The vendored parser's fast reader answers as its grammar wherever it answers.
    if let Some(fast) = parser::parse_fast(text) {
        assert_eq!(Ok(fast), parser::parse_with_grammar(text), "{text:?}");
    }
    let policy = Policy::parse(policy).unwrap();
    let enforcer = Enforcer::new(&policy).unwrap().unwrap();
    let rewritten = match kind {
        b'q' => enforcer.rewrite_query(text),
        b'm' => enforcer.rewrite_match(text),
        b'b' => {
            let _ = check_within(&policy, "query", text);
            return;
        }
        b'l' => {
            // Loki's stream labels: the hand reader says what the parser says, when it answers.
            if let Some(labels) = promql::plain_label_set(text) {
                assert_eq!(
                    Ok(labels),
                    promql::parse_label_set_with_parser(text),
                    "{text:?}"
                );
            }
            return;
        }
        _ => {
            // Query strings and form bodies: decoding then encoding is lossless.
            if let Ok(pairs) = form::parse(text) {
                let encoded: Vec<String> = pairs
                    .iter()
                    .map(|p| format!("{}={}", form::encode(&p.key), form::encode(&p.value)))
                    .collect();
                let encoded = encoded.join("&");
                let again = form::parse(&encoded).unwrap();
                let pairs: Vec<_> = pairs.iter().map(|p| (&p.key, &p.value)).collect();
                let again: Vec<_> = again.iter().map(|p| (&p.key, &p.value)).collect();
                assert_eq!(pairs, again, "re-encoded as {encoded:?}");
            }
            if let Ok(decoded) = form::decode(text) {
                assert_eq!(form::decode(&form::encode(&decoded)).unwrap(), decoded);
            }
            return;
        }
    };
    match rewritten {
        Err(QueryError::VerificationFailed) => {
            panic!("the rewrite of {text:?} failed its own verification")
        }
        // What Tollgate sends upstream lies within the policy. Checked where the conservative
        // containment check can model the query: one policy selector (not an OR's merged
        // regex), and every matcher of the client's one that a policy could hold.
        // Each selector on its own: one whose own matchers contradict each other (two metric
        // names) selects nothing, so nothing outside the policy either (the body check refuses
        // it as pointless, the rewrite need not), and excuses no other selector.
        Ok(query) if policy.selectors().len() == 1 && modelled(text) => {
            match check_within(&policy, "query", &query) {
                Ok(()) => {}
                Err(QueryError::SelectsNothing { .. }) => {
                    for selector in selectors(&query) {
                        match check_within(&policy, "query", &selector) {
                            Ok(()) | Err(QueryError::SelectsNothing { .. }) => {}
                            Err(err) => panic!(
                                "rewrite of {text:?} to {query:?} is outside the policy at {selector}: {err}"
                            ),
                        }
                    }
                }
                Err(err) => panic!("rewrite of {text:?} to {query:?} is outside the policy: {err}"),
            }
        }
        _ => {}
    }
});

/// The vector selectors of `query` (those of range selectors included), parsed; none when it
/// does not parse.
fn vector_selectors(query: &str) -> Vec<VectorSelector> {
    fn walk(expr: &Expr, found: &mut Vec<VectorSelector>) {
        match expr {
            Expr::Aggregate(a) => {
                walk(&a.expr, found);
                if let Some(param) = &a.param {
                    walk(param, found);
                }
            }
            Expr::Unary(u) => walk(&u.expr, found),
            Expr::Binary(b) => {
                walk(&b.lhs, found);
                walk(&b.rhs, found);
            }
            Expr::Paren(p) => walk(&p.expr, found),
            Expr::Subquery(s) => walk(&s.expr, found),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, found)),
            Expr::VectorSelector(vs) => found.push(vs.clone()),
            Expr::MatrixSelector(ms) => found.push(ms.vs.clone()),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
    let mut found = Vec::new();
    if let Ok(expr) = parser::parse(query) {
        walk(&expr, &mut found);
    }
    found
}

/// Every vector selector of `query`, printed.
fn selectors(query: &str) -> Vec<String> {
    vector_selectors(query)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Whether every matcher of `query` is one Tollgate's own matcher accepts (label name rules,
/// lengths, no control characters, a regex both dialects read alike): containment is decided
/// only for those, and refuses the rest.
fn modelled(query: &str) -> bool {
    fn selector(vs: &VectorSelector) -> bool {
        use promql_parser::label::MatchOp as P;
        vs.matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten())
            .all(|m| {
                let op = match &m.op {
                    P::Equal => MatchOp::Eq,
                    P::NotEqual => MatchOp::Ne,
                    // Rust's and Go's regex dialects differ at the edges: leave regexes out.
                    P::Re(_) | P::NotRe(_) => return false,
                };
                Matcher::new(&m.name, op, &m.value).is_ok()
            })
    }
    parser::parse(query).is_ok() && vector_selectors(query).iter().all(selector)
}
