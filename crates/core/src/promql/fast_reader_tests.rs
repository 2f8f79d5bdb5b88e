//! The vendored promql-parser reads common forms with a hand-written reader before its LR
//! parser (vendor/README.md). Wherever the reader answers, it must answer exactly as the
//! grammar does: the published parser is its oracle.

use super::Enforcer;
use crate::Policy;
use promql_parser::parser::{parse_fast, parse_with_grammar};
use proptest::prelude::*;
use proptest::sample::select;

fn same_as_grammar(text: &str) -> Result<bool, TestCaseError> {
    let Some(fast) = parse_fast(text) else {
        return Ok(false);
    };
    prop_assert_eq!(Ok(fast), parse_with_grammar(text), "{:?}", text);
    Ok(true)
}

const DASHBOARD_QUERIES: &str = include_str!("../../benches/dashboard_queries.promql");

/// The point of the reader: dashboard queries and their rewrites (what the verification parses
/// again) take it.
#[test]
fn dashboard_queries_and_their_rewrites_take_the_fast_reader() {
    let policy = Policy::parse(r#"{kube_namespace="prometheus", env=~"prod|staging"}"#).unwrap();
    let enforcer = Enforcer::new(&policy).unwrap().unwrap();
    for query in DASHBOARD_QUERIES.lines() {
        let rewritten = enforcer.rewrite_query_afresh(query).unwrap();
        for text in [query, rewritten.as_str()] {
            assert!(same_as_grammar(text).unwrap(), "not read fast: {text}");
        }
    }
}

/// Every seed of the PromQL fuzz target, whole and line by line.
#[test]
fn fuzz_seeds_read_as_the_grammar_reads_them() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/promql");
    let mut read = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        // Seeds start with a policy digit and a kind byte.
        let Some(text) = bytes.get(2..).and_then(|t| std::str::from_utf8(t).ok()) else {
            continue;
        };
        for text in std::iter::once(text).chain(text.lines()) {
            if super::text::bounds("query", text).is_ok() {
                read += usize::from(same_as_grammar(text).unwrap());
            }
        }
    }
    assert!(read > 0, "no seed took the fast reader");
}

/// Tokens near the reader's edges: keywords in every role and case, names with `:`, numbers
/// and durations in the forms the lexer reads differently, strings with escapes and other
/// quotes, modifiers the reader leaves to the grammar.
fn word() -> impl Strategy<Value = &'static str> {
    select(vec![
        "up",
        "x",
        "a:b",
        ":x",
        "_y",
        "x1",
        "rate",
        "sum",
        "SUM",
        "Sum",
        "topk",
        "by",
        "BY",
        "without",
        "on",
        "bool",
        "offset",
        "and",
        "or",
        "OR",
        "unless",
        "atan2",
        "inf",
        "NaN",
        "fill",
        "start",
        "end",
        "group",
        "count_values",
        "quantile",
        "absent",
        "info",
        "histogram_quantile",
        "label_replace",
        "vector",
        "time",
        "le",
        "job",
        "orx",
        "nosuchfn",
    ])
}

fn value() -> impl Strategy<Value = &'static str> {
    select(vec![
        r#""a""#,
        r#""""#,
        r#""5..""#,
        r#""(""#,
        r#""a|b""#,
        r#""x.*""#,
        "'a'",
        "`a`",
        r#""a\"b""#,
        r#""\n""#,
        r#""é""#,
        r#""}""#,
        r#""{,}""#,
    ])
}

fn name() -> impl Strategy<Value = &'static str> {
    select(vec![
        "job", "__name__", "or", "Or", "origin", "a_1", "_", "by", "sum", "1a", "a:b", "le",
    ])
}

fn op() -> impl Strategy<Value = &'static str> {
    select(vec!["=", "!=", "=~", "!~", "==", "=!", " = ", "", "~"])
}

fn space() -> impl Strategy<Value = &'static str> {
    select(vec!["", "", "", " ", "  ", "\n", "\t", "# c\n"])
}

fn selector() -> impl Strategy<Value = String> {
    let matcher = (name(), op(), value(), space()).prop_map(|(n, o, v, s)| format!("{n}{o}{s}{v}"));
    let separator = select(vec![", ", ",", " ,", " or ", ",,", " "]);
    (
        prop_oneof![Just(""), word()],
        proptest::collection::vec((matcher, separator), 0..3),
        select(vec!["{", "", "{ "]),
        select(vec!["}", ",}", "", " }"]),
    )
        .prop_map(|(w, matchers, open, close)| {
            if matchers.is_empty() && open.is_empty() {
                return w.to_owned();
            }
            let mut text = format!("{w}{open}");
            let count = matchers.len();
            for (i, (m, sep)) in matchers.into_iter().enumerate() {
                text.push_str(&m);
                if i + 1 < count {
                    text.push_str(sep);
                }
            }
            text.push_str(close);
            text
        })
}

fn duration() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => select(vec!["5m", "1h30m", "30s", "5ms", "1d", "1w", "2y", "1h:1m", "5m:", "10m: 30s", "1y2w3d4h5m6s7ms"]),
        1 => duration_edges(),
    ]
}

fn duration_edges() -> impl Strategy<Value = &'static str> {
    select(vec![
        "5m",
        "1h30m",
        "0s",
        "5ms",
        "1y2y",
        "1m1h",
        "5",
        "5 m",
        "1h1",
        "5x",
        "5m_",
        "5ys",
        "1e5m",
        "0x5m",
        " 5m ",
        "99999999999y",
        "5m:",
        "5m:1m",
        "5m: 1m",
        ":5m",
        "5m::",
    ])
}

fn number() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => select(vec!["1", "0.5", "2", "10", "0.99", "100", "3.25"]),
        1 => number_edges(),
    ]
}

fn number_edges() -> impl Strategy<Value = &'static str> {
    select(vec![
        "1", "0.5", "010", "1e3", "0x1f", "1.", ".5", "5m", "1.2.3", "2", "10", "0", "1_0",
    ])
}

fn binary() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => select(vec![
            " + ", "-", " * ", "/", " % ", "^", " == ", "!=", " > ", "<", ">=", " <= ", " and ",
            " or ", " unless ", " atan2 ", "+", " - ",
        ]),
        1 => select(vec![" = ", "!", " AND ", " bool ", " > bool ", " / on(job) ",
            " * ignoring(le) group_left ", " offset ", " Or "]),
    ]
}

fn metric() -> impl Strategy<Value = String> {
    let plain = prop_oneof![
        6 => select(vec!["up", "x", "a:b", "_y", "x1", "http_requests_total", "rate", ":x"]),
        1 => select(vec!["Inf", "nan", "NaN", "BY", "Offset", "sum", "by", "bool", "start", "orx"]),
    ];
    let matcher = (
        select(vec![
            "job", "__name__", "origin", "a_1", "_", "by", "sum", "le", "or", "Or", "OR",
        ]),
        select(vec!["=", "!=", "=~", "!~", " = ", "= ", " =~ "]),
        select(vec![
            r#""a""#, r#""""#, r#""5..""#, r#""a|b""#, r#""x.*""#, r#""{,}""#, r#""x""#,
        ]),
    )
        .prop_map(|(n, o, v)| format!("{n}{o}{v}"));
    prop_oneof![
        6 => (plain.clone(), proptest::collection::vec(matcher.clone(), 0..3), select(vec!["", ","]))
            .prop_map(|(n, ms, t)| if ms.is_empty() { n.to_owned() } else { format!("{n}{{{}{t}}}", ms.join(", ")) }),
        2 => (proptest::collection::vec(matcher, 1..3), select(vec!["", ",", " "]))
            .prop_map(|(ms, t)| format!("{{{}{t}}}", ms.join(","))),
        1 => selector(),
    ]
}

/// Mostly well-typed queries of the shapes dashboards send, so that both readers answer often.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => metric(),
        1 => number().prop_map(str::to_owned),
    ];
    let typed = leaf.prop_recursive(5, 32, 4, |vector| {
        let labels = (
            select(vec!["by", "without", "by", "BY", "on"]),
            proptest::collection::vec(
                select(vec![
                    "job", "le", "instance", "a:b", "sum", "_x", "inf", "Offset", "bool",
                ]),
                0..3,
            ),
            select(vec!["", "", ","]),
        )
            .prop_map(|(k, labels, trailing)| format!("{k} ({}{trailing})", labels.join(", ")));
        let aggregation = select(vec!["sum", "avg", "max", "count", "group", "stddev", "Sum"]);
        prop_oneof![
            (
                select(vec!["rate", "increase", "max_over_time", "irate", "abs"]),
                vector.clone(),
                duration()
            )
                .prop_map(|(f, e, d)| format!("{f}({e}[{d}])")),
            (vector.clone(), duration()).prop_map(|(e, d)| format!("max_over_time(({e})[{d}])")),
            (aggregation.clone(), labels.clone(), vector.clone())
                .prop_map(|(a, g, e)| format!("{a} {g} ({e})")),
            (aggregation, vector.clone(), labels.clone())
                .prop_map(|(a, e, g)| format!("{a}({e}) {g}")),
            (
                select(vec!["topk", "bottomk", "quantile"]),
                number(),
                vector.clone(),
                labels
            )
                .prop_map(|(a, n, e, g)| format!("{a}({n}, {e}) {g}")),
            (number(), vector.clone()).prop_map(|(n, e)| format!("histogram_quantile({n}, {e})")),
            vector.clone().prop_map(|e| format!("absent({e})")),
            vector
                .clone()
                .prop_map(|e| format!("label_replace({e}, \"dst\", \"$1\", \"src\", \"(.*)\")")),
            (vector.clone(), binary(), space(), vector.clone())
                .prop_map(|(l, o, s, r)| format!("{l}{o}{s}{r}")),
            vector.clone().prop_map(|e| format!("({e})")),
            (
                word(),
                proptest::collection::vec(vector.clone(), 0..3),
                select(vec!["", "", ","])
            )
                .prop_map(|(f, args, trailing)| format!("{f}({}{trailing})", args.join(", "))),
            vector.clone().prop_map(|e| format!("-{e}")),
            (
                vector,
                select(vec![
                    " offset 5m",
                    " @ 100",
                    "[5m] offset 1h",
                    "[5m:]",
                    "[1h:5m]"
                ])
            )
                .prop_map(|(e, m)| format!("{e}{m}")),
        ]
    });
    // Now and then a byte changed, so the readers also meet what is almost a query.
    let noise = prop_oneof![
        12 => Just(""),
        1 => select(vec!["(", ")", "{", "]", ",", " ", "\"", "#", "x", ":", "5", "-", "'"]),
    ];
    (typed, any::<prop::sample::Index>(), noise).prop_map(|(text, at, noise)| {
        if noise.is_empty() || text.is_empty() {
            return text;
        }
        let mut at = at.index(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        format!("{}{noise}{}", &text[..at], &text[at..])
    })
}

/// Operator chains: precedence and associativity, every binary operator.
fn chain() -> impl Strategy<Value = String> {
    let operand = select(vec![
        "x",
        "y{a=\"b\"}",
        "sum(z)",
        "(w)",
        "rate(v[5m])",
        "1",
        "2",
    ]);
    let operator = select(vec![
        "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless",
        "atan2",
    ]);
    (
        operand.clone(),
        proptest::collection::vec((operator, operand), 1..6),
    )
        .prop_map(|(first, rest)| {
            let mut text = first.to_owned();
            for (op, operand) in rest {
                text.push_str(&format!(" {op} {operand}"));
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Chains of operators group as the grammar's precedence declarations say.
    #[test]
    fn operator_chains_group_as_the_grammar_groups_them(text in chain()) {
        same_as_grammar(&text)?;
    }

    /// Wherever the fast reader answers, the grammar answers the same `Expr`.
    #[test]
    fn the_fast_reader_answers_as_the_grammar(text in expression()) {
        same_as_grammar(&text)?;
    }
}

/// A long operator chain is left to the grammar: `check_ast` costs the square of a chain's
/// length, and a text the lexer refuses at its end must not cost that twice.
#[test]
fn long_operator_chains_are_left_to_the_grammar() {
    let chain = |n: usize| format!("a{}", "+a".repeat(n));
    assert!(same_as_grammar(&chain(200)).unwrap());
    assert!(parse_fast(&chain(300)).is_none());
    assert!(parse_with_grammar(&chain(300)).is_ok());
    assert!(parse_fast(&format!("{} ~", chain(300))).is_none());
}
