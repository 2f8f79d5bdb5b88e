//! The differential test of PromQL reading against Prometheus's own parser: what Tollgate checks
//! and rewrites must be the query Prometheus runs. promql-parser (with the fast reader vendored
//! into it, issue 18) is held to Prometheus here, as the fast reader is held to promql-parser's
//! grammar in `crates/core/src/promql/fast_reader_tests.rs`.
//!
//! Each text of a corpus (the dashboard queries, the PromQL fuzz target's seeds and kept
//! regressions, a seeded set of generated queries, and the rewrite of each under two label
//! policies, which is the text Prometheus receives) is sent to a real Prometheus's
//! `/api/v1/format_query`, which parses it and prints it back in its pretty form, and read by
//! `promql_parser::parser::parse`, whose `prettify` prints the same form:
//!
//! * both read it: the printed forms must be equal (same selectors, matchers, values, ranges,
//!   functions, grouping and operators), but for layout (`compact`);
//! * only Prometheus reads it: listed in the report (Tollgate refuses it: not a bypass; today
//!   only a label named `or` before a space, which promql-parser reads as the `or` of
//!   Prometheus 3's `{a="b" or c="d"}`);
//! * only Tollgate reads it: listed in the report (syntax newer than this Prometheus, 2.42,
//!   such as that `or` and ranges without a unit: a query Prometheus refuses is not run).
//!
//! The full report is written to `target/tmp/promql-oracle.txt`.

use promql_parser::parser;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use tollgate_core::Policy;
use tollgate_core::promql::{Enforcer, canonical};
use tollgate_e2e::{Prometheus, repo_root};

const DASHBOARD_QUERIES: &str = include_str!("../../crates/core/benches/dashboard_queries.promql");
const GENERATED: usize = 3000;
const PARALLEL: usize = 8;
const LISTED: usize = 40;

/// xorshift64*: a fixed seed, so every run asks the same queries.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn selector(rng: &mut Rng) -> String {
    let name = rng.pick(&[
        "up",
        "x",
        "a:b",
        "_y",
        "http_requests_total",
        "rate",
        "sum",
        "by",
        "Inf",
        "nan",
        "",
    ]);
    let count = rng.below(4);
    let mut matchers = Vec::new();
    for _ in 0..count {
        let label = rng.pick(&[
            "job", "__name__", "origin", "le", "by", "or", "Or", "_", "a1",
        ]);
        let op = rng.pick(&["=", "!=", "=~", "!~", " = "]);
        let value = rng.pick(&[
            r#""a""#,
            r#""""#,
            r#""5..""#,
            r#""a|b""#,
            r#""x.*""#,
            r#""{,}""#,
            r#""a\"b""#,
            r#""\\d+""#,
            r#""é""#,
            "'a'",
            "`a`",
            r#""\x41""#,
            r#""\u00e9""#,
            r#""a\nb""#,
        ]);
        matchers.push(format!("{label}{op}{value}"));
    }
    let trailing = rng.pick(&["", "", ","]);
    if matchers.is_empty() && !name.is_empty() && rng.below(2) == 0 {
        return name.to_owned();
    }
    format!(
        "{name}{{{}{trailing}}}",
        matchers.join(rng.pick(&[", ", ",", " or "]))
    )
}

fn duration(rng: &mut Rng) -> &'static str {
    rng.pick(&[
        "5m", "1h30m", "30s", "5ms", "1d", "1w", "2y", "300", "1.5", "0s", "1m1h", "5m:", "1h:5m",
        "10m: 30s",
    ])
}

fn number(rng: &mut Rng) -> &'static str {
    rng.pick(&[
        "1", "0.5", "2", "10", "0.99", "1e3", "0x1f", ".5", "010", "Inf", "-1", "1_000",
    ])
}

/// Mostly well-typed queries of the shapes dashboards send, with the forms the readers treat
/// differently (keywords as names, other quotes and escapes, modifiers) mixed in.
fn expression(rng: &mut Rng, depth: usize) -> String {
    if depth == 0 || rng.below(4) == 0 {
        return if rng.below(5) == 0 {
            number(rng).to_owned()
        } else {
            selector(rng)
        };
    }
    let inner = |rng: &mut Rng| expression(rng, depth - 1);
    let grouping = |rng: &mut Rng| {
        let labels: Vec<&str> = (0..rng.below(3))
            .map(|_| rng.pick(&["job", "le", "instance", "sum", "_x"]))
            .collect();
        format!(
            "{} ({})",
            rng.pick(&["by", "without", "BY"]),
            labels.join(", ")
        )
    };
    match rng.below(12) {
        0 => {
            let f = rng.pick(&["rate", "increase", "irate", "max_over_time", "deriv"]);
            format!("{f}({}[{}])", selector(rng), duration(rng))
        }
        1 => format!("max_over_time(({})[{}])", inner(rng), duration(rng)),
        2 => {
            let a = rng.pick(&["sum", "avg", "max", "count", "group", "stddev"]);
            format!("{a} {} ({})", grouping(rng), inner(rng))
        }
        3 => {
            let a = rng.pick(&["sum", "avg", "min", "count"]);
            format!("{a}({}) {}", inner(rng), grouping(rng))
        }
        4 => {
            let a = rng.pick(&["topk", "bottomk", "quantile"]);
            format!("{a}({}, {})", number(rng), inner(rng))
        }
        5 => format!("histogram_quantile({}, {})", number(rng), inner(rng)),
        6 => format!("absent({})", inner(rng)),
        7 => format!(
            r#"label_replace({}, "dst", "$1", "src", "(.*)")"#,
            inner(rng)
        ),
        8 | 9 => {
            let op = rng.pick(&[
                "+",
                "-",
                "*",
                "/",
                "%",
                "^",
                "==",
                "!=",
                ">",
                "<",
                ">=",
                "<=",
                "and",
                "or",
                "unless",
                "atan2",
                "> bool",
                "/ on(job)",
                "* ignoring(le) group_left",
            ]);
            format!("{} {op} {}", inner(rng), inner(rng))
        }
        10 => format!("({})", inner(rng)),
        _ => {
            let modifier = rng.pick(&[" offset 5m", " offset -1h", " @ 100", " @ start()"]);
            format!("{}{modifier}", selector(rng))
        }
    }
}

fn corpus() -> Vec<String> {
    let mut texts: Vec<String> = DASHBOARD_QUERIES.lines().map(str::to_owned).collect();
    let kept = ["fuzz/seeds/promql", "fuzz/regressions/promql"];
    for entry in kept
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo_root().join(dir)).unwrap())
    {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        // A policy digit and a kind byte, then the text: queries, match[] and bodies only.
        if let [_, b'q' | b'm' | b'b', text @ ..] = bytes.as_slice()
            && let Ok(text) = std::str::from_utf8(text)
        {
            texts.push(text.to_owned());
        }
    }
    let mut rng = Rng(0x7011_6a7e_0f18);
    for _ in 0..GENERATED {
        texts.push(expression(&mut rng, 4));
    }
    // What Prometheus receives: each text rewritten under a policy.
    let policies = [
        r#"{namespace="team-a"}"#,
        r#"{namespace=~"team-(a|b)", env!="prod"}"#,
    ];
    let mut rewrites = Vec::new();
    for policy in policies {
        let enforcer = Enforcer::new(&Policy::parse(policy).unwrap())
            .unwrap()
            .unwrap();
        rewrites.extend(texts.iter().filter_map(|t| enforcer.rewrite_query(t).ok()));
    }
    texts.extend(rewrites);
    let mut unique = BTreeSet::new();
    texts.retain(|t| unique.insert(t.clone()));
    texts
}

/// Prometheus's pretty form of `text`, or its error.
async fn format_query(client: &reqwest::Client, url: &str, text: &str) -> Result<String, String> {
    let reply: Value = client
        .get(url)
        .query(&[("query", text)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    match reply["status"].as_str() {
        Some("success") => Ok(reply["data"].as_str().unwrap().to_owned()),
        _ => Err(reply["error"].as_str().unwrap_or("?").to_owned()),
    }
}

/// A printed query without what only the printers' layouts decide: whitespace outside quoted
/// strings (the pretty form breaks long lines at different points: Prometheus 2.42 does not
/// indent a parenthesised subquery, and prints `+Inf` where promql-parser prints `Inf`, which
/// moves its line breaks), the `+` of `+Inf`, and how a string's characters are escaped (Go
/// writes a control character as `\x01`, promql-parser as itself): each string is replaced by
/// its value, decoded with Go's escapes. Everything that selects anything (names, matchers,
/// values, ranges, functions, grouping, operators) stays.
fn compact(printed: &str) -> String {
    let mut out = String::with_capacity(printed.len());
    let mut chars = printed.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut value = Vec::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => decode_escape(&mut chars, &mut value),
                        c => value.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                let _ = write!(out, "{:?}", String::from_utf8_lossy(&value));
            }
            c if c.is_whitespace() => {}
            _ => out.push(c),
        }
    }
    out.replace("+Inf", "Inf")
}

/// One escape of Go's `strconv.Quote` (the backslash read), appended to `value` as bytes.
fn decode_escape(chars: &mut impl Iterator<Item = char>, value: &mut Vec<u8>) {
    let hex = |chars: &mut dyn Iterator<Item = char>, digits: usize| {
        let text: String = chars.take(digits).collect();
        u32::from_str_radix(&text, 16).unwrap_or(u32::MAX)
    };
    let decoded = match chars.next() {
        Some('a') => 7,
        Some('b') => 8,
        Some('f') => 12,
        Some('n') => 10,
        Some('r') => 13,
        Some('t') => 9,
        Some('v') => 11,
        Some('x') => {
            value.push(u8::try_from(hex(chars, 2)).unwrap_or(b'?'));
            return;
        }
        Some('u') => hex(chars, 4),
        Some('U') => hex(chars, 8),
        Some(other) => u32::from(other),
        None => return,
    };
    let c = char::from_u32(decoded).unwrap_or('\u{fffd}');
    value.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
}

/// Tollgate's reading: its refusals before parsing (`canonical`), then the parser's pretty form.
fn ours(text: &str) -> Result<String, String> {
    canonical(text).map_err(|e| e.to_string())?;
    parser::parse(text).map(|expr| expr.prettify())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_reads_as_prometheus_reads() {
    let texts = corpus();
    let prometheus = Prometheus::start(&[]).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/format_query", prometheus.addr);
    let mut theirs: Vec<Option<Result<String, String>>> = vec![None; texts.len()];
    for (chunk_index, chunk) in texts.chunks(PARALLEL).enumerate() {
        let mut asked = tokio::task::JoinSet::new();
        for (i, text) in chunk.iter().enumerate() {
            let (client, url, text) = (client.clone(), url.clone(), text.clone());
            let index = chunk_index * PARALLEL + i;
            asked.spawn(async move { (index, format_query(&client, &url, &text).await) });
        }
        while let Some(answer) = asked.join_next().await {
            let (index, answer) = answer.unwrap();
            theirs[index] = Some(answer);
        }
    }

    let (mut agreed, mut fast) = (0, 0);
    let (mut differ, mut only_prometheus, mut only_tollgate) = (Vec::new(), Vec::new(), Vec::new());
    for (text, theirs) in texts.iter().zip(theirs) {
        match (ours(text), theirs.unwrap()) {
            (Ok(ours), Ok(theirs)) if compact(&ours) == compact(&theirs) => {
                agreed += 1;
                fast += usize::from(parser::parse_fast(text).is_some());
            }
            (Ok(ours), Ok(theirs)) => differ.push(format!(
                "{text:?}\n  Tollgate:   {ours:?}\n  Prometheus: {theirs:?}"
            )),
            (Err(ours), Ok(_)) => only_prometheus.push(format!("{text:?}: {ours}")),
            (Ok(_), Err(theirs)) => only_tollgate.push(format!("{text:?}: {theirs}")),
            (Err(_), Err(_)) => {}
        }
    }

    let mut report = format!(
        "{} texts: {agreed} read alike ({fast} of them by the fast reader), {} read differently, {} refused by Tollgate only, {} refused by Prometheus only\n",
        texts.len(),
        differ.len(),
        only_prometheus.len(),
        only_tollgate.len()
    );
    for (title, list) in [
        ("read differently", &differ),
        ("refused by Tollgate only", &only_prometheus),
        ("refused by Prometheus only", &only_tollgate),
    ] {
        let _ = writeln!(report, "\n## {title}\n");
        for line in list {
            let _ = writeln!(report, "{line}");
        }
    }
    let path = repo_root().join("target/tmp/promql-oracle.txt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &report).unwrap();
    eprintln!("{}", report.lines().next().unwrap_or(""));

    assert!(
        differ.is_empty(),
        "{} texts read differently by Tollgate and Prometheus (report: {}):\n{}",
        differ.len(),
        path.display(),
        differ
            .iter()
            .take(LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The corpus must exercise the readers: half the texts read alike, a fifth of those by the
    // fast reader (2,739 and 617 of 4,824 when written).
    assert!(agreed > texts.len() / 2, "{report}");
    assert!(fast > agreed / 5, "{report}");
}
