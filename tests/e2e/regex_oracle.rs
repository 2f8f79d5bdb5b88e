//! The differential test against Prometheus's own Go engine (issue 11, section 1): label-matcher
//! regexes must mean in Tollgate what they mean in Prometheus, which runs them with Go's RE2.
//!
//! One metric, `oracle_probe`, is written to a real Prometheus (remote write) with a label `v`
//! taking every value of a corpus chosen to expose dialect differences (the empty value is a
//! series without `v`), and a second label `w` (`x`, `y` or absent) for selectors over two labels.
//! Then Prometheus is asked directly, with `/api/v1/series`, which series each selector selects:
//!
//! * Regexes (`tests/data/regex-corpus.txt`, and the regex fuzz target's kept inputs in
//!   `fuzz/regressions/regex/` and its seeds): for every regex `Matcher::new` accepts, `=~` and
//!   `!~` must give Go's answer on every seeded value. Go refusing a regex Tollgate accepts is a
//!   failure too. Tollgate refusing a regex is always allowed (counted in the report).
//! * Containment: for pairs (policy, narrowing) where `Policy::contains` says yes (the issue's
//!   examples, all pairs of about 60 matchers, conjunctions, and seeded random combinations),
//!   every series Go selects for the narrowing must be one Go selects for the policy.
//!   Go's answer for a selector is the intersection of its matchers' answers (one query per
//!   matcher), checked by querying the examples and a seeded sample of the conjunctions as such.
//! * Every selector queried is also compared, series by series, with `Selector::matches`.
//!
//! On failure the message lists each disagreement; the full report (with the regexes Tollgate
//! refuses) is written to `target/tmp/regex-oracle.txt`.

#[allow(dead_code)]
#[path = "../../fuzz/src/regex_gen.rs"]
mod regex_gen;

use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;
use tollgate_core::Policy;
use tollgate_core::selector::{MatchOp, Matcher, Selector};
use tollgate_e2e::{Prometheus, remote_write, repo_root};

const METRIC: &str = "oracle_probe";
/// Values of the second label, cyclically; `""` = absent.
const W_VALUES: [&str; 3] = ["x", "y", ""];
/// Concurrent series queries.
const PARALLEL: usize = 6;
/// Failures listed in the panic message (all of them go to the report file).
const LISTED: usize = 300;
/// Selectors of more than one matcher queried as such (the rest are derived from their
/// matchers' answers).
const CONJUNCTIONS_QUERIED: usize = 300;
/// Random (policy, narrowing) pairs.
const RANDOM_PAIRS: usize = 20_000;

/// Matchers for the containment pairs, in policy syntax (`\\` is one backslash in the regex).
const MATCHERS: &[&str] = &[
    r#"v="prometheus""#,
    r#"v="other""#,
    r#"v="secret""#,
    r#"v="[s]ecret""#,
    r#"v="é""#,
    r#"v="""#,
    r#"v!="secret""#,
    r#"v!="prometheus""#,
    r#"v!="""#,
    r#"v=~"other|prometheus""#,
    r#"v=~"secret|other""#,
    r#"v=~"[o&&p]ther""#,
    r#"v!~"[o&&p]ther""#,
    r#"v=~"[[o]]ther""#,
    r#"v=~"[o~~p]ther""#,
    r#"v=~"[o--p]ther""#,
    r#"v!~"[[s]]ecret""#,
    r#"v=~"[[s]]ecret""#,
    r#"v!~"secret""#,
    r#"v!~"secret|s""#,
    r#"v=~"o.*""#,
    r#"v=~"p.*""#,
    r#"v!~"s.*""#,
    r#"v=~".*ther""#,
    r#"v=~".*""#,
    r#"v!~".*""#,
    r#"v=~".+""#,
    r#"v=~"(?s:.*)""#,
    r#"v!~"(?s:.*)""#,
    r#"v=~"(?s).+""#,
    r#"v=~"""#,
    r#"v!~"""#,
    r#"v=~"a|""#,
    r#"v=~"\\d+""#,
    r#"v!~"\\d""#,
    r#"v=~"\\w+""#,
    r#"v=~"\\S+""#,
    r#"v=~"\\D+""#,
    r#"v=~"\\s""#,
    r#"v!~"\\s""#,
    r#"v=~"[[:alpha:]]+""#,
    r#"v=~"[[:^digit:]]+""#,
    r#"v=~"\\pL+""#,
    r#"v=~"(?i)secret""#,
    r#"v!~"(?i)secret""#,
    r#"v=~"(?i)prometheus""#,
    r#"v=~"\\x{e9}""#,
    r#"v=~"\\xe9""#,
    r#"v=~"é|ß""#,
    r#"v!~"é""#,
    r#"v=~"[\\x80-\\xff]""#,
    r#"v=~"[^a]""#,
    r#"v=~"\\bsecret\\b""#,
    r#"v=~"a\\b.*""#,
    r#"v=~"a\\nb""#,
    r#"v=~"a.b""#,
    r#"v=~"\\u0041""#,
    r#"w="x""#,
    r#"w!="x""#,
    r#"w=~"x|y""#,
    r#"w!~"y""#,
    r#"w=~"""#,
    r#"w=~".+""#,
    r#"w=~"[[x]]""#,
    r#"w!="""#,
];

/// The issue's examples: (policy, narrowing).
const EXAMPLES: &[(&str, &str)] = &[
    (r#"{v="prometheus"}"#, r#"{v="other", v=~"[o&&p]ther"}"#),
    (r#"{v!="secret"}"#, r#"{v!~"[[s]]ecret"}"#),
    (r#"{v="prometheus"}"#, r#"{v="other", v=~"[[o]]ther"}"#),
    (r#"{v="prometheus"}"#, r#"{v="other", v=~"[o~~p]ther"}"#),
    (r#"{v!="secret"}"#, r#"{v!~"[s&&s]ecret"}"#),
    (r#"{v=~"o.*"}"#, r#"{v=~"o.*", v="a"}"#),
];

/// A seeded series: the label values (empty = absent).
struct Series {
    v: &'static str,
    w: &'static str,
}

impl Series {
    fn labels(&self) -> Vec<(&str, &str)> {
        let mut labels = vec![("__name__", METRIC)];
        if !self.v.is_empty() {
            labels.push(("v", self.v));
        }
        if !self.w.is_empty() {
            labels.push(("w", self.w));
        }
        labels
    }
}

/// What Prometheus answered for one selector.
#[derive(Clone, Debug)]
enum Go {
    /// Indexes of the selected series.
    Selects(BTreeSet<usize>),
    /// HTTP 400: Go refused the selector (a bad regex).
    Refuses(String),
}

struct Oracle {
    client: reqwest::Client,
    url: String,
    start: String,
    end: String,
    ids: HashMap<String, usize>,
    cache: HashMap<String, Go>,
    queries: usize,
}

impl Oracle {
    /// Asks Prometheus about every selector not asked yet, `PARALLEL` at a time.
    async fn resolve(&mut self, selectors: Vec<String>) -> anyhow::Result<()> {
        let mut todo: Vec<String> = selectors
            .into_iter()
            .filter(|s| !self.cache.contains_key(s))
            .collect();
        todo.sort();
        todo.dedup();
        let ids = Arc::new(self.ids.clone());
        for chunk in todo.chunks(PARALLEL) {
            let mut set = JoinSet::new();
            for selector in chunk {
                let client = self.client.clone();
                let url = self.url.clone();
                let params = [
                    ("match[]", selector.clone()),
                    ("start", self.start.clone()),
                    ("end", self.end.clone()),
                ];
                let ids = Arc::clone(&ids);
                let selector = selector.clone();
                set.spawn(async move {
                    let answer = query(&client, &url, &params, &ids).await;
                    (selector, answer)
                });
            }
            while let Some(joined) = set.join_next().await {
                let (selector, answer) = joined?;
                let answer = answer.with_context(|| format!("asking Prometheus for {selector}"))?;
                self.queries += 1;
                self.cache.insert(selector, answer);
            }
        }
        Ok(())
    }

    fn get(&self, selector: &str) -> Option<&Go> {
        self.cache.get(selector)
    }
}

async fn query(
    client: &reqwest::Client,
    url: &str,
    params: &[(&str, String)],
    ids: &HashMap<String, usize>,
) -> anyhow::Result<Go> {
    let response = client.get(url).query(params).send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if status == 400 {
        return Ok(Go::Refuses(body["error"].as_str().unwrap_or("").to_owned()));
    }
    if !status.is_success() {
        bail!("HTTP {status}: {body}");
    }
    let mut selected = BTreeSet::new();
    for series in body["data"].as_array().context("no data array")? {
        let id = series["id"].as_str().context("a series without id")?;
        selected.insert(*ids.get(id).context("an unknown id")?);
    }
    Ok(Go::Selects(selected))
}

/// `text` as a PromQL double-quoted string, as Go's parser decodes it.
fn promql_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The regex corpus file: verbatim lines, JSON-quoted lines, comments (see its header).
fn read_corpus() -> Vec<String> {
    let path = repo_root().join("tests/data/regex-corpus.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let mut regexes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('"') {
            let decoded: String = serde_json::from_str(line).unwrap_or_else(|err| {
                panic!("{}:{}: not a JSON string: {err}", path.display(), n + 1)
            });
            regexes.push(decoded);
        } else {
            regexes.push(line.to_owned());
        }
    }
    regexes
}

/// The regex fuzz target's kept inputs (regressions, then seeds), as the regexes they generate.
fn read_fuzz_inputs() -> Vec<String> {
    let mut regexes = Vec::new();
    for dir in ["fuzz/regressions/regex", "fuzz/seeds/regex"] {
        let Ok(entries) = std::fs::read_dir(repo_root().join(dir)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if let Ok(bytes) = std::fs::read(&path) {
                regexes.push(regex_gen::generate(&bytes).regex);
            }
        }
    }
    regexes
}

/// A tiny xorshift generator: seeded, reproducible, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn go_selector(selector: &Selector) -> String {
    format!("{METRIC}{selector}")
}

/// Values containing a newline: Prometheus 2 anchors regexes as `^(?:…)$` and 3 as `^(?s:…)$`,
/// so whether `.` matches there depends on the upstream's version. Tollgate claims no answer on
/// them (it only ever tests values it parsed itself, which never hold a control character), so
/// its own evaluation is not compared there; containment is still checked on them in Go.
fn version_dependent(value: &str) -> bool {
    value.contains('\n')
}

/// Series indices Tollgate's evaluation is compared on (see [`version_dependent`]).
fn comparable(set: &BTreeSet<usize>, series: &[Series]) -> BTreeSet<usize> {
    set.iter()
        .copied()
        .filter(|&i| series.get(i).is_some_and(|s| !version_dependent(s.v)))
        .collect()
}

fn rust_selects(selector: &Selector, series: &[Series]) -> BTreeSet<usize> {
    series
        .iter()
        .enumerate()
        .filter(|(_, s)| selector.matches(&s.labels()))
        .map(|(i, _)| i)
        .collect()
}

/// A value for a failure message: quoted, long ones cut.
fn short(v: &str) -> String {
    if v.chars().count() <= 24 {
        format!("{v:?}")
    } else {
        let head: String = v.chars().take(12).collect();
        format!("{head:?}…({} chars)", v.chars().count())
    }
}

fn shorts(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| short(v))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(set: &BTreeSet<usize>, series: &[Series]) -> String {
    let items: Vec<String> = set
        .iter()
        .take(12)
        .map(|&i| {
            let s = &series[i];
            if s.w.is_empty() {
                format!("v={}", short(s.v))
            } else {
                format!("v={},w={:?}", short(s.v), s.w)
            }
        })
        .collect();
    let more = if set.len() > 12 {
        format!(" and {} more", set.len() - 12)
    } else {
        String::new()
    };
    format!("[{}]{more}", items.join(" "))
}

// Selectors as set keys: their order is (name, op, value) text; the compiled regex inside,
// which the lint sees as interior mutability, takes no part in it.
#[allow(clippy::mutable_key_type)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_oracle() {
    let began = Instant::now();

    // The value corpus, as series.
    let mut seen = BTreeSet::new();
    for v in regex_gen::VALUES {
        assert!(seen.insert(*v), "value {v:?} is listed twice");
    }
    let series: Vec<Series> = regex_gen::VALUES
        .iter()
        .enumerate()
        .map(|(i, v)| Series {
            v,
            w: W_VALUES[i % W_VALUES.len()],
        })
        .collect();

    // The regex corpus.
    let mut regexes = read_corpus();
    let from_file = regexes.len();
    let from_fuzz = read_fuzz_inputs();
    let fuzz_count = from_fuzz.len();
    regexes.extend(from_fuzz);
    let mut unique = BTreeSet::new();
    regexes.retain(|r| unique.insert(r.clone()));

    // Prometheus, seeded.
    let prometheus = Prometheus::start(&[]).await.unwrap();
    let ids: Vec<String> = (0..series.len()).map(|i| i.to_string()).collect();
    let labelled: Vec<Vec<(&str, &str)>> = series
        .iter()
        .zip(&ids)
        .map(|(s, id)| {
            let mut labels = s.labels();
            labels.insert(1, ("id", id.as_str()));
            labels
        })
        .collect();
    let refs: Vec<&[(&str, &str)]> = labelled.iter().map(Vec::as_slice).collect();
    let client = reqwest::Client::new();
    let written = client
        .post(format!("http://{}/api/v1/write", prometheus.addr))
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(remote_write::body(&refs, 1.0))
        .send()
        .await
        .unwrap();
    let status = written.status();
    assert!(
        status.is_success(),
        "remote write: {status}: {}",
        written.text().await.unwrap_or_default()
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut oracle = Oracle {
        client,
        url: format!("http://{}/api/v1/series", prometheus.addr),
        start: (now.as_secs() - 600).to_string(),
        end: (now.as_secs() + 600).to_string(),
        ids: ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect(),
        cache: HashMap::new(),
        queries: 0,
    };
    let everything = METRIC.to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        oracle.cache.clear();
        oracle.resolve(vec![everything.clone()]).await.unwrap();
        if let Some(Go::Selects(all)) = oracle.get(&everything)
            && all.len() == series.len()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never held the {} seeded series: {:?}\n{}",
            series.len(),
            oracle.get(&everything),
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Part 1: every regex, =~ and !~, on every value.
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for re in &regexes {
        let positive = Matcher::new("v", MatchOp::Re, re);
        let negative = Matcher::new("v", MatchOp::Nre, re);
        match (positive, negative) {
            (Ok(p), Ok(n)) => accepted.push((re.clone(), p, n)),
            (Err(err), _) | (_, Err(err)) => refused.push((re.clone(), err.to_string())),
        }
    }
    let regex_selector = |op: &str, re: &str| format!("{METRIC}{{v{op}{}}}", promql_quote(re));
    let mut wanted: Vec<String> = Vec::new();
    for (re, _, _) in &accepted {
        wanted.push(regex_selector("=~", re));
        wanted.push(regex_selector("!~", re));
    }
    for (re, _) in &refused {
        wanted.push(regex_selector("=~", re));
    }
    oracle.resolve(wanted).await.unwrap();

    let part1_secs = began.elapsed().as_secs_f64();
    let mut compared = 0usize;
    let mut go_refused = Vec::new();
    let mut value_failures = Vec::new();
    let mut value_mismatches = 0usize;
    let mut disagreeing_regexes = BTreeSet::new();
    for (re, positive, negative) in &accepted {
        for (op, matcher) in [("=~", positive), ("!~", negative)] {
            match oracle.get(&regex_selector(op, re)) {
                Some(Go::Refuses(err)) => {
                    if op == "=~" {
                        go_refused.push(format!(
                            "regex {re:?}: accepted by Tollgate, refused by Go: {err}"
                        ));
                    }
                }
                Some(Go::Selects(selected)) => {
                    let (mut only_rust, mut only_go) = (Vec::new(), Vec::new());
                    for (i, s) in series.iter().enumerate() {
                        if version_dependent(s.v) {
                            continue;
                        }
                        compared += 1;
                        match (matcher.matches_value(s.v), selected.contains(&i)) {
                            (true, false) => only_rust.push(s.v),
                            (false, true) => only_go.push(s.v),
                            _ => {}
                        }
                    }
                    if !only_rust.is_empty() || !only_go.is_empty() {
                        value_mismatches += only_rust.len() + only_go.len();
                        disagreeing_regexes.insert(re.clone());
                        value_failures.push(format!(
                            "v{op}{}: Rust true, Go false on [{}]; Rust false, Go true on [{}]",
                            promql_quote(re),
                            shorts(&only_rust),
                            shorts(&only_go)
                        ));
                    }
                }
                None => value_failures.push(format!("no answer for v{op}{re:?}")),
            }
        }
    }
    let refused_but_go_accepts = refused
        .iter()
        .filter(|(re, _)| matches!(oracle.get(&regex_selector("=~", re)), Some(Go::Selects(_))))
        .count();

    // Part 2: containment. Matchers are parsed once (compiling regexes is the slow part) and
    // combined into selectors and policies.
    let parse = |text: &str| Policy::parse(text).ok();
    let pool: Vec<Matcher> = MATCHERS
        .iter()
        .filter_map(|m| parse(&format!("{{{m}}}")))
        .filter_map(|p| p.selectors().first()?.matchers().first().cloned())
        .collect();
    let one = |ms: &[&Matcher]| Selector::new(ms.iter().map(|m| (*m).clone()).collect());
    let policy_of = |selectors: Vec<Selector>| Policy::new(selectors);
    let mut pairs: Vec<(Policy, Policy)> = Vec::new();
    let mut examples_refused = Vec::new();
    for (policy, narrowing) in EXAMPLES {
        match (parse(policy), parse(narrowing)) {
            (Some(p), Some(n)) => pairs.push((p, n)),
            _ => examples_refused.push(format!("{policy} / {narrowing}")),
        }
    }
    for p in &pool {
        let policy = policy_of(vec![one(&[p])]);
        for n in &pool {
            // Every pair of matchers, and each policy matcher narrowed by any other.
            pairs.push((policy.clone(), policy_of(vec![one(&[n])])));
            pairs.push((policy.clone(), policy_of(vec![one(&[p, n])])));
        }
    }
    // Seeded random policies and narrowings.
    let mut rng = XorShift(0x7011_6a7e_5eed_0011);
    let random_matchers = |rng: &mut XorShift, max: usize| -> Vec<&Matcher> {
        (0..1 + rng.below(max))
            .filter_map(|_| pool.get(rng.below(pool.len())))
            .collect()
    };
    for round in 0..RANDOM_PAIRS {
        let policy_selectors: Vec<Vec<&Matcher>> = (0..1 + rng.below(2))
            .map(|_| random_matchers(&mut rng, 2))
            .collect();
        let narrowing_selectors: Vec<Vec<&Matcher>> = if round % 2 == 0 {
            (0..1 + rng.below(2))
                .map(|_| random_matchers(&mut rng, 3))
                .collect()
        } else {
            // One of the policy's selectors with more matchers: often contained.
            let mut base = policy_selectors[rng.below(policy_selectors.len())].clone();
            base.extend(random_matchers(&mut rng, 2));
            vec![base]
        };
        let policy = policy_of(policy_selectors.iter().map(|ms| one(ms)).collect());
        let narrowing = policy_of(narrowing_selectors.iter().map(|ms| one(ms)).collect());
        pairs.push((policy, narrowing));
    }
    let total_pairs = pairs.len();
    let contained: Vec<&(Policy, Policy)> = pairs
        .iter()
        .filter(|(p, n)| !p.is_unrestricted() && p.contains(n))
        .collect();
    // Go's answer for every matcher in them, one query each; a selector's answer is then the
    // intersection of its matchers' (a series is selected when every matcher holds)...
    let mut selectors: BTreeSet<&Selector> = BTreeSet::new();
    for (p, n) in &contained {
        selectors.extend(p.selectors());
        selectors.extend(n.selectors());
    }
    let single = |m: &Matcher| format!("{METRIC}{{{m}}}");
    let mut wanted: Vec<String> = selectors
        .iter()
        .flat_map(|s| s.matchers().iter().map(single))
        .collect();
    // ...which real queries of the examples and of a seeded sample of the conjunctions check.
    let mut conjunctions: Vec<&Selector> = selectors
        .iter()
        .copied()
        .filter(|s| s.matchers().len() > 1)
        .collect();
    let mut sample: Vec<&Selector> = Vec::new();
    for (policy, narrowing) in EXAMPLES {
        for text in [policy, narrowing] {
            if let Some(p) = parse(text) {
                for s in selectors.iter().copied() {
                    if p.selectors().contains(s) && !sample.contains(&s) {
                        sample.push(s);
                    }
                }
            }
        }
    }
    while sample.len() < CONJUNCTIONS_QUERIED && !conjunctions.is_empty() {
        sample.push(conjunctions.swap_remove(rng.below(conjunctions.len())));
    }
    wanted.extend(sample.iter().map(|s| go_selector(s)));
    oracle.resolve(wanted).await.unwrap();
    let derived = |s: &Selector| -> Option<BTreeSet<usize>> {
        let mut result: BTreeSet<usize> = (0..series.len()).collect();
        for m in s.matchers() {
            match oracle.get(&single(m))? {
                Go::Selects(set) => result = result.intersection(set).copied().collect(),
                Go::Refuses(_) => return None,
            }
        }
        Some(result)
    };
    let go_selects = |s: &Selector| -> Option<BTreeSet<usize>> {
        match oracle.get(&go_selector(s)) {
            Some(Go::Selects(set)) => Some(set.clone()),
            Some(Go::Refuses(_)) => None,
            None => derived(s),
        }
    };

    let mut containment_failures: Vec<String> = Vec::new();
    let mut containment_checked = 0usize;
    'pairs: for (p, n) in &contained {
        let mut allowed = BTreeSet::new();
        for s in p.selectors() {
            // A regex Go refuses is reported below.
            let Some(set) = go_selects(s) else {
                continue 'pairs;
            };
            allowed.extend(set);
        }
        let mut outside = BTreeSet::new();
        for s in n.selectors() {
            let Some(set) = go_selects(s) else {
                continue 'pairs;
            };
            outside.extend(set.difference(&allowed).copied());
        }
        containment_checked += 1;
        if !outside.is_empty() {
            let line = format!(
                "policy {p} is said to contain {n}, but in Go the narrowing selects {} outside it",
                describe(&outside, &series)
            );
            if !containment_failures.contains(&line) {
                containment_failures.push(line);
            }
        }
    }

    // Part 3: series by series, Rust's Selector::matches against Go, for every selector asked
    // for in part 2: each matcher alone, and the sampled conjunctions (which also checks that
    // Prometheus's answer is the intersection of its matchers').
    let mut selector_failures = Vec::new();
    let mut asked: BTreeSet<Selector> = BTreeSet::new();
    for s in &selectors {
        asked.extend(s.matchers().iter().map(|m| Selector::new(vec![m.clone()])));
    }
    asked.extend(sample.iter().map(|s| (*s).clone()));
    let mut selectors_compared = 0usize;
    for s in &asked {
        let answer = if s.matchers().len() == 1 {
            s.matchers().first().and_then(|m| oracle.get(&single(m)))
        } else {
            oracle.get(&go_selector(s))
        };
        match answer {
            Some(Go::Selects(go)) => {
                selectors_compared += 1;
                let rust = comparable(&rust_selects(s, &series), &series);
                let go_comparable = comparable(go, &series);
                if rust != go_comparable {
                    selector_failures.push(format!(
                        "selector {s}: only Rust selects {}; only Go selects {}",
                        describe(&rust.difference(&go_comparable).copied().collect(), &series),
                        describe(&go_comparable.difference(&rust).copied().collect(), &series)
                    ));
                }
                if s.matchers().len() > 1 && derived(s).as_ref() != Some(go) {
                    selector_failures.push(format!(
                        "selector {s}: Prometheus does not select the intersection of its matchers"
                    ));
                }
            }
            Some(Go::Refuses(err)) => {
                selector_failures.push(format!(
                    "selector {s}: accepted by Tollgate, refused by Go: {err}"
                ));
            }
            None => selector_failures.push(format!("no answer for {s}")),
        }
    }

    let elapsed = began.elapsed();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "regex oracle: {} values ({} series), {} regexes ({from_file} in the corpus file, {fuzz_count} fuzz inputs; deduplicated)\n\
         \x20 regexes: {} accepted by Tollgate, {} refused ({refused_but_go_accepts} of those accepted by Go); \
         Go refuses {} accepted regexes\n\
         \x20 values compared: {compared} (=~ and !~ of each accepted regex on each value); \
         {value_mismatches} disagree, in {} regexes\n\
         \x20 containment: {} of {} matchers and {} of {} issue examples accepted by Tollgate; \
         {total_pairs} pairs, {} contained per Tollgate, {containment_checked} checked in Go, {} violations\n\
         \x20 selectors compared series by series: {selectors_compared}, {} disagree\n\
         \x20 {} Prometheus queries; {part1_secs:.1} s to the regex queries, {:.1} s in all",
        regex_gen::VALUES.len(),
        series.len(),
        regexes.len(),
        accepted.len(),
        refused.len(),
        go_refused.len(),
        disagreeing_regexes.len(),
        pool.len(),
        MATCHERS.len(),
        EXAMPLES.len() - examples_refused.len(),
        EXAMPLES.len(),
        contained.len(),
        containment_failures.len(),
        selector_failures.len(),
        oracle.queries,
        elapsed.as_secs_f64(),
    );
    let failures: Vec<String> = containment_failures
        .into_iter()
        .chain(go_refused)
        .chain(value_failures)
        .chain(selector_failures)
        .collect();
    let mut full = report.clone();
    let _ = writeln!(
        full,
        "\nissue examples refused by Tollgate: {examples_refused:?}"
    );
    let _ = writeln!(full, "\nfailures ({}):", failures.len());
    for f in &failures {
        let _ = writeln!(full, "  {f}");
    }
    let _ = writeln!(
        full,
        "\nrefused by Tollgate ({}), [Go accepts] marked:",
        refused.len()
    );
    for (re, err) in &refused {
        let go = matches!(oracle.get(&regex_selector("=~", re)), Some(Go::Selects(_)));
        let _ = writeln!(
            full,
            "  {re:?}{}: {err}",
            if go { " [Go accepts]" } else { "" }
        );
    }
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("regex-oracle.txt");
    let _ = std::fs::write(&report_path, &full);
    eprintln!("{report}(full report: {})", report_path.display());

    if !failures.is_empty() {
        let mut message = format!(
            "{report}{} disagreements between Tollgate and Prometheus (Go), containment first:\n",
            failures.len()
        );
        for f in failures.iter().take(LISTED) {
            let _ = writeln!(message, "  {f}");
        }
        if failures.len() > LISTED {
            let _ = writeln!(
                message,
                "  ... and {} more, see {}",
                failures.len() - LISTED,
                report_path.display()
            );
        }
        panic!("{message}");
    }
}
