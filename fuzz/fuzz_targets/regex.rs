//! Label-matcher regexes (`=~`, `!~`) as clients and admins write them, generated from a small
//! grammar over the constructs where Go's RE2 and Rust's `regex` may differ (see
//! `tollgate_fuzz::regex_gen`). Agreement with Go itself is checked by the Go-oracle test
//! (`tests/e2e/regex_oracle.rs`, in `make test`) on `tests/data/regex-corpus.txt` and on the
//! inputs kept in `regressions/regex/`; here, the invariants that need no Go in process.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tollgate_core::Policy;
use tollgate_core::selector::{MatchOp, Matcher, Selector};
use tollgate_fuzz::regex_gen::{VALUES, generate};

/// Policies a narrowing built from the generated regex is checked against.
const POLICIES: &[&str] = &[
    r#"{v="prometheus"}"#,
    r#"{v!="secret"}"#,
    r#"{v=~"other|prometheus"}"#,
    r#"{v!~"secret|s"}"#,
    r#"{v=~"o.*"}"#,
    r#"{v="a"} or {v="b"}"#,
    r#"{v=~".*"}"#,
];

/// [`POLICIES`], parsed once (compiling regexes is most of an iteration's cost).
fn policies() -> &'static [Policy] {
    static PARSED: OnceLock<Vec<Policy>> = OnceLock::new();
    PARSED.get_or_init(|| POLICIES.iter().map(|p| Policy::parse(p).unwrap()).collect())
}

fn policy(matchers: Vec<Matcher>) -> Policy {
    Policy::new(vec![Selector::new(matchers)])
}

fuzz_target!(|data: &[u8]| {
    let generated = generate(data);
    let re = generated.regex.as_str();
    static PRINT: OnceLock<bool> = OnceLock::new();
    if *PRINT.get_or_init(|| std::env::var_os("REGEX_FUZZ_PRINT").is_some()) {
        eprintln!("regex: {re:?}");
    }
    // Never panics, and both operators accept the same patterns.
    let positive = Matcher::new("v", MatchOp::Re, re);
    let negative = Matcher::new("v", MatchOp::Nre, re);
    assert_eq!(
        positive.is_ok(),
        negative.is_ok(),
        "=~ and !~ disagree on accepting {re:?}: {positive:?} / {negative:?}"
    );
    let (Ok(positive), Ok(negative)) = (positive, negative) else {
        return;
    };

    let language = generated.language.as_ref();
    let mut values: Vec<&str> = VALUES.to_vec();
    if let Some(language) = language {
        values.extend(language.iter().map(String::as_str));
    }
    for v in &values {
        let yes = positive.matches_value(v);
        assert_eq!(!yes, negative.matches_value(v), "=~ and !~ {re:?} on {v:?}");
        // The naive reference: the pattern's exact language, for the subset every dialect
        // reads the same way (plain literals, escaped metacharacters, |, groups, ?, {n}).
        if let Some(language) = language {
            let expected = language.iter().any(|s| s == v);
            assert_eq!(
                yes, expected,
                "{re:?} on {v:?}: the matcher says {yes}, the reference language {language:?} says {expected}"
            );
        }
    }

    let other = Matcher::new("v", MatchOp::Eq, "other").unwrap();
    let w = Matcher::new("w", MatchOp::Eq, "x").unwrap();
    let narrowings = [
        policy(vec![positive.clone()]),
        policy(vec![negative.clone()]),
        policy(vec![positive.clone(), other.clone()]),
        policy(vec![negative.clone(), other]),
        policy(vec![positive.clone(), w]),
    ];
    for narrowing in &narrowings {
        // The canonical text (stored, and sent upstream) parses back to the same policy.
        let canonical = narrowing.to_string();
        let again = Policy::parse(&canonical)
            .unwrap_or_else(|err| panic!("canonical {canonical:?} does not reparse: {err}"));
        assert_eq!(&again, narrowing, "canonical {canonical:?}");
        assert_eq!(again.to_string(), canonical);
        // A provably empty selector is contained in nothing, itself included (it is refused).
        let empty = narrowing.selectors().iter().any(|s| s.selects_nothing());
        assert!(
            empty || narrowing.contains(narrowing),
            "{canonical} does not contain itself"
        );
        // Containment is sound under the matcher's own evaluation, on the value corpus.
        for p in policies() {
            if !p.contains(narrowing) {
                continue;
            }
            for v in &values {
                for w in ["x", "y", ""] {
                    let labels = [("v", *v), ("w", w)];
                    assert!(
                        !narrowing.matches(&labels) || p.matches(&labels),
                        "{p} is said to contain {canonical}, which selects v={v:?} w={w:?} outside it"
                    );
                }
            }
        }
    }
});
