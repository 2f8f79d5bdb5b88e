//! Hiding an account's policy labels from the answers it reads (filter mode only).
//!
//! An account confined to `{kube_namespace="prometheus"}` knows the value of `kube_namespace`
//! on every series it can see, so removing that label from answers loses nothing, and the
//! restriction itself stays invisible (as Chronosphere does). The labels hidden are those an
//! equality matcher fixes to one value in every selector of the policy.
//!
//! Answers are rewritten whole: the Prometheus HTTP API's JSON (`query`, `query_range`,
//! `series`, `labels`, `label/<name>/values`, `query_exemplars`), `/federate`'s text format, and
//! Loki's JSON (streams and metric results, `series`, `labels`, `label/<name>/values`). A read
//! route that answers with labels in any other shape cannot be hidden, so the decision refuses it.

use crate::selector::{MatchOp, Policy};
use serde_json::Value;

/// What the filter needs to rewrite one answer: its shape and the labels to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenAnswer {
    pub shape: Answer,
    pub hidden: HiddenLabels,
}

/// Query functions and LogQL stages that copy a label's value into another label or the line:
/// a hiding account may not apply them to a hidden label, whose value would survive the rewrite
/// under another name.
const COPYING: [&str; 4] = ["label_replace", "label_join", "label_format", "line_format"];

/// Label names to remove from answers, with the one value each has under the policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HiddenLabels {
    labels: Vec<(String, String)>,
}

impl HiddenLabels {
    /// The labels every selector of `policy` fixes to the same value with `=`.
    pub fn of(policy: &Policy) -> HiddenLabels {
        let mut selectors = policy.selectors().iter();
        let Some(first) = selectors.next() else {
            return HiddenLabels::default();
        };
        let mut labels: Vec<(String, String)> = first
            .matchers()
            .iter()
            .filter(|m| m.op() == MatchOp::Eq && !m.value().is_empty())
            .map(|m| (m.name().as_str().to_owned(), m.value().to_owned()))
            .collect();
        for selector in selectors {
            labels.retain(|(name, value)| {
                selector.matchers().iter().any(|m| {
                    m.op() == MatchOp::Eq && m.name().as_str() == name && m.value() == value
                })
            });
        }
        HiddenLabels { labels }
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn hides(&self, name: &str) -> bool {
        self.labels.iter().any(|(n, _)| n == name)
    }

    /// Whether query text may copy a hidden label's value elsewhere: it uses a copying function
    /// or stage and names a hidden label. Conservative (the text, not the syntax tree): it may
    /// refuse a query that copies another label while it also names a hidden one.
    pub fn may_be_copied_by(&self, query: &str) -> bool {
        COPYING.iter().any(|f| query.contains(f))
            && self
                .labels
                .iter()
                .any(|(name, _)| query.contains(name.as_str()))
    }

    /// Replaces each hidden name and value in free text (an upstream error that echoes the
    /// rewritten query, or our own denial that names the policy) with `<hidden>`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.labels {
            for secret in [value, name] {
                if !secret.is_empty() {
                    out = out.replace(secret.as_str(), "<hidden>");
                }
            }
        }
        out
    }
}

/// The shape of an answer that can be rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `data.result[]` with `metric` (Prometheus, Loki metric queries, Loki's index volume) or
    /// `stream` (Loki log queries) label sets.
    QueryResult,
    /// `data[]` of label sets (`series`).
    LabelSets,
    /// `data[]` of label names (`labels`).
    LabelNames,
    /// `data[]` of values of one label (`label/<name>/values`); none for a hidden label.
    LabelValues(String),
    /// `data[].seriesLabels` (`query_exemplars`).
    Exemplars,
    /// The text exposition format of `/federate`.
    Federate,
}

impl Answer {
    /// The answer a read of `path` gets, if it is one that can be rewritten. Paths under
    /// Mimir's `/prometheus` prefix are the Prometheus API's.
    pub fn of(path: &str) -> Option<Answer> {
        let path = path.strip_prefix("/prometheus").unwrap_or(path);
        if path == "/federate" {
            return Some(Answer::Federate);
        }
        let rest = path
            .strip_prefix("/api/v1/")
            .or_else(|| path.strip_prefix("/loki/api/v1/"))?;
        let loki = path.starts_with("/loki/");
        Some(match rest {
            "query" | "query_range" => Answer::QueryResult,
            "index/volume" | "index/volume_range" if loki => Answer::QueryResult,
            "series" => Answer::LabelSets,
            "labels" => Answer::LabelNames,
            "query_exemplars" if !loki => Answer::Exemplars,
            _ => {
                let name = rest.strip_prefix("label/")?.strip_suffix("/values")?;
                // Only a plain label name: Prometheus and Mimir also read `U__`-escaped names
                // (and a percent-encoded one is another spelling), which would not compare equal
                // to the hidden name here but would to the upstream.
                let plain = name.bytes().enumerate().all(|(i, b)| {
                    b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
                });
                if name.is_empty() || !plain || name.starts_with("U__") {
                    return None;
                }
                Answer::LabelValues(name.to_owned())
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the upstream's answer is not the JSON this API returns: {0}")]
    NotJson(String),
    #[error("the upstream's answer is not UTF-8 text")]
    NotText,
    #[error("the upstream's answer is not in the exposition format: {0}")]
    BadExposition(String),
    #[error("the upstream's gzip answer does not decode: {0}")]
    Gzip(String),
    #[error("the upstream's answer is over the {max} bytes the filter buffers to hide labels")]
    TooLarge { max: usize },
    #[error("the upstream's answer has content-encoding \"{0}\", which the filter cannot read")]
    Encoding(String),
    #[error("the upstream's answer has content-type \"{0}\", not the format the filter rewrites")]
    ContentType(String),
}

/// A gzip answer's body, decoded to at most `max` bytes.
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, AnswerError> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut plain)
        .map_err(|err| AnswerError::Gzip(err.to_string()))?;
    if plain.len() > max {
        return Err(AnswerError::TooLarge { max });
    }
    Ok(plain)
}

/// Removes the hidden labels from `body`, an answer of shape `answer` with HTTP `status`. A
/// non-2xx JSON answer keeps its shape with hidden names and values scrubbed from its text.
pub fn hide(
    answer: &Answer,
    status: u16,
    hidden: &HiddenLabels,
    body: &[u8],
) -> Result<Vec<u8>, AnswerError> {
    if !(200..300).contains(&status) {
        // An error: JSON keeps its shape, any other text is scrubbed as text.
        if let Ok(mut json) = serde_json::from_slice::<Value>(body) {
            scrub_strings(hidden, &mut json);
            return serde_json::to_vec(&json).map_err(|err| AnswerError::NotJson(err.to_string()));
        }
        let text = std::str::from_utf8(body).map_err(|_| AnswerError::NotText)?;
        return Ok(hidden.scrub(text).into_bytes());
    }
    if *answer == Answer::Federate {
        return hide_exposition(hidden, body);
    }
    let mut json: Value =
        serde_json::from_slice(body).map_err(|err| AnswerError::NotJson(err.to_string()))?;
    hide_json(answer, hidden, &mut json);
    serde_json::to_vec(&json).map_err(|err| AnswerError::NotJson(err.to_string()))
}

fn scrub_strings(hidden: &HiddenLabels, value: &mut Value) {
    match value {
        Value::String(text) => *text = hidden.scrub(text),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_strings(hidden, v)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_strings(hidden, v)),
        _ => {}
    }
}

fn remove_hidden(hidden: &HiddenLabels, labels: Option<&mut Value>) {
    if let Some(Value::Object(map)) = labels {
        map.retain(|name, _| !hidden.hides(name));
    }
}

fn hide_json(answer: &Answer, hidden: &HiddenLabels, json: &mut Value) {
    let Some(data) = json.get_mut("data") else {
        return;
    };
    match answer {
        Answer::QueryResult => {
            if let Some(Value::Array(results)) = data.get_mut("result") {
                for result in results {
                    remove_hidden(hidden, result.get_mut("metric"));
                    remove_hidden(hidden, result.get_mut("stream"));
                }
            }
        }
        Answer::LabelSets => {
            if let Value::Array(sets) = data {
                sets.iter_mut()
                    .for_each(|set| remove_hidden(hidden, Some(set)));
            }
        }
        Answer::LabelNames => {
            if let Value::Array(names) = data {
                names.retain(|name| !name.as_str().is_some_and(|n| hidden.hides(n)));
            }
        }
        Answer::LabelValues(name) => {
            if hidden.hides(name)
                && let Value::Array(values) = data
            {
                values.clear();
            }
        }
        Answer::Exemplars => {
            if let Value::Array(series) = data {
                for one in series {
                    remove_hidden(hidden, one.get_mut("seriesLabels"));
                }
            }
        }
        Answer::Federate => {}
    }
}

/// `/federate`'s text format, line by line: comments and blank lines as they are, each sample's
/// label set without the hidden labels.
fn hide_exposition(hidden: &HiddenLabels, body: &[u8]) -> Result<Vec<u8>, AnswerError> {
    let text = std::str::from_utf8(body).map_err(|_| AnswerError::NotText)?;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.find('{') {
            Some(open) if !line.starts_with('#') => {
                let (name, rest) = line.split_at(open);
                let close = label_set_end(rest)
                    .ok_or_else(|| AnswerError::BadExposition(line.trim_end().to_owned()))?;
                let pairs = parse_label_pairs(&rest[1..close])
                    .ok_or_else(|| AnswerError::BadExposition(line.trim_end().to_owned()))?;
                out.push_str(name);
                out.push('{');
                let kept: Vec<&str> = pairs
                    .into_iter()
                    .filter(|(label, _)| !hidden.hides(label))
                    .map(|(_, pair)| pair)
                    .collect();
                out.push_str(&kept.join(","));
                out.push_str(&rest[close..]);
            }
            _ => out.push_str(line),
        }
    }
    Ok(out.into_bytes())
}

/// The index of the `}` closing the label set that `text` opens, skipping quoted values.
fn label_set_end(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `a="x",b="y\"z"` as (name, `name="value"` text) pairs; `None` when malformed.
fn parse_label_pairs(text: &str) -> Option<Vec<(&str, &str)>> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let value_start = rest.len() - after.len();
        if !after.starts_with('"') {
            return None;
        }
        let mut escaped = false;
        let mut end = None;
        for (i, c) in after.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(value_start + i + 1);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        pairs.push((name, rest[..end].trim_start()));
        rest = rest[end..].trim_start();
        rest = match rest.strip_prefix(',') {
            Some(more) => more.trim_start(),
            None if rest.is_empty() => rest,
            None => return None,
        };
    }
    Some(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hidden(policy: &str) -> HiddenLabels {
        HiddenLabels::of(&Policy::parse(policy).unwrap())
    }

    fn run(path: &str, policy: &str, body: Value) -> Value {
        let answer = Answer::of(path).unwrap();
        let out = hide(&answer, 200, &hidden(policy), body.to_string().as_bytes()).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn hidden_labels_are_the_fixed_ones() {
        assert_eq!(
            hidden(r#"{ns="a", team=~"x|y", env!="dev"}"#).labels,
            [("ns".to_owned(), "a".to_owned())]
        );
        assert_eq!(
            hidden(r#"{ns="a", env="p"} or {ns="a", env="q"}"#).labels,
            [("ns".to_owned(), "a".to_owned())],
            "env has two values: it stays"
        );
        assert!(hidden(r#"{ns="a"} or {team="b"}"#).is_empty());
        assert!(hidden("").is_empty());
    }

    #[test]
    fn answers_by_path() {
        for (path, want) in [
            ("/api/v1/query", Some(Answer::QueryResult)),
            ("/prometheus/api/v1/query_range", Some(Answer::QueryResult)),
            ("/api/v1/series", Some(Answer::LabelSets)),
            ("/api/v1/labels", Some(Answer::LabelNames)),
            (
                "/api/v1/label/job/values",
                Some(Answer::LabelValues("job".into())),
            ),
            ("/api/v1/query_exemplars", Some(Answer::Exemplars)),
            ("/federate", Some(Answer::Federate)),
            ("/loki/api/v1/query_range", Some(Answer::QueryResult)),
            ("/loki/api/v1/index/volume", Some(Answer::QueryResult)),
            ("/api/v1/index/volume", None),
            ("/loki/api/v1/detected_labels", None),
            ("/loki/api/v1/patterns", None),
            ("/api/v1/label//values", None),
            ("/api/v1/label/U__kube__namespace/values", None),
            ("/api/v1/label/kube%5Fnamespace/values", None),
            ("/api/v1/label/0abc/values", None),
            ("/api/v1/metadata", None),
        ] {
            assert_eq!(Answer::of(path), want, "{path}");
        }
    }

    #[test]
    fn prometheus_json() {
        let policy = r#"{kube_namespace="prometheus"}"#;
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "kube_namespace": "prometheus", "job": "node"},
             "value": [1700000000.5, "1"]}]}});
        let out = run("/api/v1/query", policy, vector);
        assert_eq!(
            out["data"]["result"][0]["metric"],
            json!({"__name__": "up", "job": "node"})
        );
        assert_eq!(
            out["data"]["result"][0]["value"],
            json!([1700000000.5, "1"]),
            "numbers untouched"
        );
        let series = json!({"status": "success", "data": [{"__name__": "up", "kube_namespace": "prometheus"}]});
        assert_eq!(
            run("/api/v1/series", policy, series)["data"],
            json!([{"__name__": "up"}])
        );
        let labels = json!({"status": "success", "data": ["__name__", "job", "kube_namespace"]});
        assert_eq!(
            run("/api/v1/labels", policy, labels)["data"],
            json!(["__name__", "job"])
        );
        let values = json!({"status": "success", "data": ["prometheus"]});
        assert_eq!(
            run(
                "/api/v1/label/kube_namespace/values",
                policy,
                values.clone()
            )["data"],
            json!([])
        );
        assert_eq!(
            run("/api/v1/label/job/values", policy, values)["data"],
            json!(["prometheus"]),
            "another label's values stay, even if equal to the hidden value"
        );
        let exemplars = json!({"status": "success", "data": [{"seriesLabels": {"kube_namespace": "prometheus", "job": "a"},
            "exemplars": [{"labels": {"trace_id": "x"}, "value": "1", "timestamp": 1}]}]});
        let out = run("/api/v1/query_exemplars", policy, exemplars);
        assert_eq!(out["data"][0]["seriesLabels"], json!({"job": "a"}));
        assert_eq!(
            out["data"][0]["exemplars"][0]["labels"],
            json!({"trace_id": "x"})
        );
    }

    #[test]
    fn loki_json_and_errors() {
        let policy = r#"{namespace="shop"}"#;
        let streams = json!({"status": "success", "data": {"resultType": "streams", "result": [
            {"stream": {"namespace": "shop", "app": "cart"}, "values": [["1", "line"]]}]}});
        let out = run("/loki/api/v1/query_range", policy, streams);
        assert_eq!(out["data"]["result"][0]["stream"], json!({"app": "cart"}));
        assert_eq!(out["data"]["result"][0]["values"], json!([["1", "line"]]));

        let error = json!({"status": "error", "errorType": "bad_data",
            "error": "parse error in {namespace=\"shop\", app=\"x\"}"});
        let answer = Answer::of("/api/v1/query").unwrap();
        let out = hide(&answer, 400, &hidden(policy), error.to_string().as_bytes()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("shop") && !text.contains("namespace"),
            "{text}"
        );
        assert!(matches!(
            hide(&answer, 200, &hidden(policy), b"<html>"),
            Err(AnswerError::NotJson(_))
        ));
        let page = hide(&answer, 404, &hidden(policy), b"no shop here").unwrap();
        assert_eq!(page, b"no <hidden> here");
    }

    #[test]
    fn numbers_read_back_as_sent() {
        // Found by the `answers` fuzz target: without serde_json's float_roundtrip a number
        // could change in its last digit on the way through.
        let policy = r#"{ns="a"}"#;
        let answer = Answer::QueryResult;
        for body in [
            "4444444444444444444444444444444444",
            "1435781451.781",
            "0.1",
            "1e300",
        ] {
            let once = hide(&answer, 400, &hidden(policy), body.as_bytes()).unwrap();
            let twice = hide(&answer, 400, &hidden(policy), &once).unwrap();
            assert_eq!(once, twice, "{body}");
            let sent: f64 = body.parse().unwrap();
            let read: f64 = std::str::from_utf8(&once).unwrap().parse().unwrap();
            assert_eq!(sent, read, "{body}");
        }
    }

    #[test]
    fn federate_text() {
        let body = "# TYPE up untyped\nup{instance=\"a:9100\",kube_namespace=\"prometheus\",job=\"x\"} 1 1700000000000\nup{kube_namespace=\"prometheus\"} 0\nodd{a=\"}\\\"{\",kube_namespace=\"prometheus\"} 2\nplain 3\n";
        let out = hide(
            &Answer::Federate,
            200,
            &hidden(r#"{kube_namespace="prometheus"}"#),
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE up untyped\nup{instance=\"a:9100\",job=\"x\"} 1 1700000000000\nup{} 0\nodd{a=\"}\\\"{\"} 2\nplain 3\n"
        );
        for bad in ["up{a=\"x} 1\n", "up{a=x} 1\n", "up{a=\"x\" b=\"y\"} 1\n"] {
            assert!(
                matches!(
                    hide(
                        &Answer::Federate,
                        200,
                        &hidden(r#"{a="x"}"#),
                        bad.as_bytes()
                    ),
                    Err(AnswerError::BadExposition(_))
                ),
                "{bad}"
            );
        }
    }
}
