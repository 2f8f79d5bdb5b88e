//! Answers an upstream sends to an account that hides its policy labels (filter mode): any
//! bytes, in each shape the filter rewrites. Rewriting never panics, its output is rewritten
//! again unchanged (nothing left to hide), and no series of a JSON answer keeps a hidden label.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_core::Policy;
use tollgate_core::answer::{Answer, HiddenLabels, hide};

const SHAPES: [&str; 8] = [
    "/api/v1/query",
    "/api/v1/series",
    "/api/v1/labels",
    "/api/v1/label/ns/values",
    "/api/v1/query_exemplars",
    "/federate",
    "/loki/api/v1/query_range",
    "/loki/api/v1/index/volume",
];

// Input: a shape byte, a status byte (even: 200, odd: 400), then the answer's body.
fuzz_target!(|data: &[u8]| {
    let [shape, status, body @ ..] = data else {
        return;
    };
    let Some(answer) = Answer::of(SHAPES[usize::from(*shape) % SHAPES.len()]) else {
        return;
    };
    let status = if status % 2 == 0 { 200 } else { 400 };
    let Ok(policy) = Policy::parse(r#"{ns="prod", team=~"a|b"}"#) else {
        return;
    };
    let hidden = HiddenLabels::of(&policy);
    let Ok(once) = hide(&answer, status, &hidden, body) else {
        return;
    };
    let twice = hide(&answer, status, &hidden, &once).expect("a rewritten answer reads again");
    assert_eq!(once, twice, "rewriting is idempotent");
    if status == 200
        && answer == Answer::QueryResult
        && let Ok(json) = serde_json::from_slice::<Value>(&once)
        && let Some(Value::Array(results)) = json.pointer("/data/result")
    {
        for result in results {
            for key in ["metric", "stream"] {
                assert!(
                    result.get(key).and_then(|m| m.get("ns")).is_none(),
                    "a hidden label is left: {result}"
                );
            }
        }
    }
});
