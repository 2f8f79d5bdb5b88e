#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::form;
use crate::selector::Policy;

const NS: &str = r#"{namespace="team-a"}"#;

fn rewrite(policy: &str, query: &str) -> Result<String, LogqlError> {
    let policy = Policy::parse(policy).unwrap();
    LogqlEnforcer::new(&policy)
        .unwrap()
        .unwrap()
        .rewrite_query("query", query)
}

/// Queries from Loki's documentation (grafana/loki docs/sources/query/: log_queries/_index.md,
/// metric_queries.md, query_examples.md), each rewritten: the result differs from the query only
/// by the policy matcher inserted before each selector's `}`.
const LOKI_DOCS: &[&str] = &[
    r#"{container="query-frontend",namespace="loki-dev"} |= "metrics.go" | logfmt | duration > 10s and throughput_mb < 500"#,
    r#"{app="mysql",name="mysql-backup"}"#,
    r#"{name =~ "mysql.+"}"#,
    r#"{name !~ "mysql.+"}"#,
    r#"{name !~ `mysql-\d+`}"#,
    r#"{name =~ ".*mysql.*"}"#,
    r#"{job="mysql"} |= "error""#,
    r#"{instance=~"kafka-[23]",name="kafka"} != "kafka.server:type=ReplicaManager""#,
    r#"{name="kafka"} |~ "tsdb-ops.*io:2003""#,
    r#"{name="cassandra"} |~  `error=\w+`"#,
    r#"{job="mysql"} |= "error" != "timeout""#,
    r#"{job="mysql"} |= "error" | json | line_format "{{.err}}""#,
    r#"{job="mysql"} | json | line_format "{{.message}}" |= "error""#,
    r#"{job="example"} | decolorize"#,
    r#"{job="x"} | duration >= 20ms or size == 20KB and method!~"2..""#,
    r#"{job="x"} | duration >= 20ms or size == 20KB | method!~"2..""#,
    r#"{job="x"} | duration >= 20ms or size == 20KB , method!~"2..""#,
    r#"{job="x"} | duration >= 20ms or size == 20KB  method!~"2..""#,
    r#"{job="x"} | ((duration >= 20ms or method="GET") and size <= 20KB)"#,
    r#"{job="x"} | duration >= 20ms or (method="GET" and size <= 20KB)"#,
    r#"{job="x"} | json first_server="servers[0]", ua="request.headers[\"User-Agent\"]""#,
    r#"{job_name="myapp"} != ip("192.168.4.5-192.168.4.20")"#,
    "{job_name=\"myapp\"}\n\t\t| logfmt\n\t\t| addr = ip(\"192.168.4.5/16\")\n\t\t| addr != ip(\"192.168.4.2\")",
    r#"{job="security"} |~ "Invalid user.*" | regexp "(^(?P<user>\\S+ {1,2}){8})" | regexp "(^(?P<ip>\\S+ {1,2}){10})" | line_format "IP = {{.ip}}\tUSER = {{.user}}""#,
    r#"{job="security"} != "grafana_com" |= "session opened" != "sudo: " |regexp "(^(?P<user>\\S+ {1,2}){11})" | line_format "USER = {{.user}}""#,
    r#"sum by (host) (rate({job="mysql"} |= "error" != "timeout" | json | duration > 10s [1m]))"#,
    r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"} |= "metrics.go" != "out of order" | logfmt | duration > 30s or status_code != "200""#,
    r#"{job="loki-ops/query-frontend"} | logfmt | line_format "{{.msg}}" | regexp "(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)""#,
    "{cluster=\"ops-tools1\", name=\"querier\", namespace=\"loki-dev\"}\n  |= \"metrics.go\" != \"loki-canary\"\n  | logfmt\n  | query != \"\"\n  | label_format query=\"{{ Replace .query \\\"\\\\n\\\" \\\"\\\" -1 }}\"\n  | line_format \"{{ .ts}}\\t{{.duration}}\\ttraceID = {{.traceID}}\\t{{ printf \\\"%-100.100s\\\" .query }} \"",
    "quantile_over_time(0.99,\n  {cluster=\"ops-tools1\",container=\"ingress-nginx\"}\n    | json\n    | __error__ = \"\"\n    | unwrap request_time [1m]) by (path)",
    "sum by (org_id) (\n  sum_over_time(\n  {cluster=\"ops-tools1\",container=\"loki-dev\"}\n      |= \"metrics.go\"\n      | logfmt\n      | unwrap bytes_processed [1m])\n  )",
    r#"topk(10,sum(rate({region="us-east1"}[5m])) by (name))"#,
    r#"sum(count_over_time({job="mysql"}[5m])) by (level)"#,
    r#"avg(rate(({job="nginx"} |= "GET" | json | path="/home")[10s])) by (region)"#,
    r#"count_over_time({job="mysql"}[5m])"#,
    r#"count_over_time({job="mysql"}[5m] offset 5m)"#,
    "sum(count_over_time({namespace=\"traefik\"}[5m])) # will return nothing\n  or\nvector(0) # will return 0",
    r#"approx_topk(10, sum by (path) (rate({job="x"}[5m])))"#,
];

#[test]
fn loki_docs_examples_are_rewritten_byte_for_byte() {
    let policy = r#"{tenant="a"}"#;
    for query in LOKI_DOCS {
        let rewritten = rewrite(policy, query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let selectors = super::parse::parse("query", query, super::parse::Shape::Query).unwrap();
        assert!(!selectors.is_empty());
        assert_eq!(
            rewritten.matches(r#"tenant="a""#).count(),
            selectors.len(),
            "one insertion per selector: {rewritten}"
        );
        assert_eq!(
            rewritten.replace(r#", tenant="a""#, ""),
            *query,
            "nothing else changes"
        );
    }
}

#[test]
fn rewrites_every_selector() {
    let cases = [
        (r#"{app="x"}"#, r#"{app="x", namespace="team-a"}"#, "plain"),
        ("{}", r#"{namespace="team-a"}"#, "empty selector"),
        (
            r#"{app="x"} |= "{app=\"y\"}""#,
            r#"{app="x", namespace="team-a"} |= "{app=\"y\"}""#,
            "a selector inside a line filter string is not a selector",
        ),
        (
            "{app=\"x\"} |= `{app=\"y\"}` |~ \"}\" # {z=\"w\"}",
            "{app=\"x\", namespace=\"team-a\"} |= `{app=\"y\"}` |~ \"}\" # {z=\"w\"}",
            "backticks, a brace in a regex filter, a comment",
        ),
        (
            r#"sum(rate({a="1"}[5m])) / sum(rate({b="2"}[5m]))"#,
            r#"sum(rate({a="1", namespace="team-a"}[5m])) / sum(rate({b="2", namespace="team-a"}[5m]))"#,
            "binary operation",
        ),
        (
            r#"count_over_time({a="1"}[1m]) or on(x) group_left count_over_time({b="2"}[1m])"#,
            r#"count_over_time({a="1", namespace="team-a"}[1m]) or on(x) group_left count_over_time({b="2", namespace="team-a"}[1m])"#,
            "or",
        ),
        (
            r#"rate({a="1"}[1m]) unless rate({b="2"}[1m])"#,
            r#"rate({a="1", namespace="team-a"}[1m]) unless rate({b="2", namespace="team-a"}[1m])"#,
            "unless",
        ),
        (
            r#"label_replace(rate({a="1"}[1m]), "namespace", "team-b", "", "")"#,
            r#"label_replace(rate({a="1", namespace="team-a"}[1m]), "namespace", "team-b", "", "")"#,
            "label_replace onto the policy label: selection happens first",
        ),
        (
            r#"{a="1"} | label_format namespace=app | drop namespace"#,
            r#"{a="1", namespace="team-a"} | label_format namespace=app | drop namespace"#,
            "label_format onto the policy label, drop it: selection happens first",
        ),
        (
            r#"{namespace="team-a"}"#,
            r#"{namespace="team-a"}"#,
            "already there",
        ),
        (
            r#"{a="1"} | x="y" or {b="2"}"#,
            r#"{a="1", namespace="team-a"} | x="y" or {b="2", namespace="team-a"}"#,
            "an or of log queries (Loki refuses it) still confines both sides",
        ),
        (
            r#"{namespace=~"team-.*"}"#,
            r#"{namespace=~"team-.*", namespace="team-a"}"#,
            "a wider own matcher is ANDed",
        ),
        (
            r#"count_over_time({a="1"}[5m] | json)"#,
            r#"count_over_time({a="1", namespace="team-a"}[5m] | json)"#,
            "range before the pipeline",
        ),
        (
            r#"sum(count_over_time({a="1"}[5m] | unwrap x)) > bool 2 * -1"#,
            r#"sum(count_over_time({a="1", namespace="team-a"}[5m] | unwrap x)) > bool 2 * -1"#,
            "unwrap after the range, bool, unary",
        ),
    ];
    for (query, want, why) in cases {
        assert_eq!(rewrite(NS, query).as_deref(), Ok(want), "{why}");
    }
}

#[test]
fn or_policies() {
    let merged = r#"{namespace="a"} or {namespace="b"}"#;
    assert_eq!(
        rewrite(merged, r#"{app="x"}"#).as_deref(),
        Ok(r#"{app="x", namespace=~"a|b"}"#),
        "one label: a regex union"
    );
    let policy = Policy::parse(r#"{namespace="a"} or {team="b"}"#).unwrap();
    let err = LogqlEnforcer::new(&policy).unwrap_err();
    assert_eq!(err.status(), 403, "{err}");
}

#[test]
fn refusals() {
    let cases: &[(&str, u16, &str)] = &[
        (r#"{namespace="team-b"}"#, 403, "conflict"),
        (r#"rate({namespace="team-b"}[5m])"#, 403, "nested conflict"),
        (
            r#"rate({a="1"}[5m]) or rate({namespace!="team-a"}[5m])"#,
            403,
            "conflict on the right of an or",
        ),
        (r#"{namespace=~"other|x"}"#, 403, "regex conflict"),
        ("", 400, "empty"),
        (r#"{a="1""#, 400, "unclosed selector"),
        (r#"{a="1",}"#, 400, "trailing comma"),
        (r#"{a="1"} |= "x"#, 400, "unterminated string"),
        (r#"{a='1'}"#, 400, "single quotes"),
        (
            r#"{a="1"} | json {b="2"}"#,
            400,
            "a selector where none may be",
        ),
        (r#"{a=~"[a&&b]"}"#, 400, "regex outside the shared dialect"),
        (r#"{a="\xff"}"#, 400, "ambiguous escape"),
        (r#"{a="\q"}"#, 400, "bad escape"),
        (r#"rate({a="1"})"#, 400, "missing range"),
        (
            r#"count_over_time({a="1"}[5m]) offset 5m"#,
            400,
            "offset outside",
        ),
        (r#"unknown({a="1"})"#, 400, "unknown function"),
        ("1 +", 400, "dangling operator"),
        (r#"{a="1"} /* {b="2"} */"#, 400, "C comments are not LogQL"),
    ];
    for (query, status, why) in cases {
        let err = rewrite(NS, query).unwrap_err();
        assert_eq!(err.status(), *status, "{why}: {query}: {err}");
    }
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert_eq!(rewrite(NS, &deep).unwrap_err().status(), 400, "too deep");
    let long = format!(r#"{{a="{}"}}"#, "x".repeat(MAX_QUERY_BYTES));
    assert_eq!(rewrite(NS, &long).unwrap_err().status(), 400, "too long");
    // Within the bound, but not once the policy's matcher is added: the client's query is too
    // long (400), not our rewrite wrong (500).
    let at_the_bound = format!(r#"{{a="{}"}}"#, "x".repeat(MAX_QUERY_BYTES - 6));
    assert_eq!(at_the_bound.len(), MAX_QUERY_BYTES);
    let err = rewrite(NS, &at_the_bound).unwrap_err();
    assert_eq!(err, LogqlError::RewrittenTooLong { param: "query" });
    assert_eq!(err.status(), 400);
}

#[test]
fn bodies_are_checked_not_rewritten() {
    let policy = Policy::parse(NS).unwrap();
    let cases: &[(&str, Result<(), u16>, &str)] = &[
        (r#"{namespace="team-a", app="x"} |= "y""#, Ok(()), "within"),
        (
            r#"sum(rate({namespace="team-a"}[1m])) or rate({namespace="team-a", a="b"}[1m])"#,
            Ok(()),
            "every selector within",
        ),
        (r#"{app="x"}"#, Err(403), "outside"),
        (
            r#"rate({namespace="team-a"}[1m]) or rate({app="x"}[1m])"#,
            Err(403),
            "one selector outside",
        ),
        (
            r#"{namespace="team-a"} |= "{app=\"x\"}""#,
            Ok(()),
            "the string is no selector",
        ),
        (
            r#"{namespace="team-a", namespace="x"}"#,
            Err(403),
            "selects nothing",
        ),
        (r#"{namespace=~"[a&&b]"}"#, Err(400), "dialect"),
        ("{", Err(400), "unparsable"),
    ];
    for (query, want, why) in cases {
        let got = check_within(&policy, "query", query, false).map_err(|e| e.status());
        assert_eq!(got, *want, "{why}: {query}");
    }
    assert!(check_within(&Policy::unrestricted(), "query", "{", false).is_ok());
}

#[test]
fn params_by_endpoint() {
    let policy = Policy::parse(NS).unwrap();
    let enforcer = LogqlEnforcer::new(&policy).unwrap().unwrap();
    let run = |params, query: &str| {
        let pairs = form::parse(query).unwrap();
        rewrite_params(&enforcer, params, &pairs)
    };
    let q = form::encode(r#"{app="x"}"#);
    let got = run(LogqlParams::Query, &format!("query={q}&limit=5")).unwrap();
    assert_eq!(
        got.set,
        [("query".into(), r#"{app="x", namespace="team-a"}"#.into())]
    );
    assert!(
        run(LogqlParams::Query, "limit=5").unwrap().is_empty(),
        "Loki refuses it"
    );
    assert_eq!(
        run(LogqlParams::OptionalQuery, "start=1").unwrap().set,
        [("query".into(), NS.into())],
        "labels: the policy added when absent"
    );
    assert_eq!(
        run(LogqlParams::Query, &format!("query={q}&query={q}"))
            .unwrap_err()
            .status(),
        400
    );
    let got = run(LogqlParams::Series, &format!("match%5B%5D={q}&match={q}")).unwrap();
    assert_eq!(got.set.len(), 2, "both spellings Loki reads");
    assert_eq!(got.remove_raw, ["match%5B%5D"]);
    assert_eq!(
        run(LogqlParams::Series, "").unwrap().set,
        [("match[]".into(), NS.into())]
    );
    assert_eq!(
        run(
            LogqlParams::Series,
            &format!("match[]={}", form::encode(r#"rate({a="b"}[1m])"#))
        )
        .unwrap_err()
        .status(),
        400,
        "match[] is a selector"
    );
    let body = format!("query={q}");
    let pairs = form::parse(&body).unwrap();
    assert_eq!(
        check_params_within(&policy, LogqlParams::Query, &pairs)
            .unwrap_err()
            .status(),
        403
    );
}

/// A Go string literal for `value` (escapes for `\`, `"` and newlines).
fn go_quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

proptest::proptest! {
    /// Whatever the strings hold (braces, quotes, `#`, pipes), a query built of `n` selectors
    /// gets exactly `n` insertions and nothing else changes; rewriting again changes nothing.
    #[test]
    fn strings_never_hide_or_invent_selectors(
        values in proptest::collection::vec("[a-z{}\"#|=`\\\\ \n]{0,12}", 1..4),
        filter in "[a-z{}\"#|=`\\\\ ]{0,12}",
    ) {
        let parts: Vec<String> = values
            .iter()
            .map(|v| format!("count_over_time({{app={}}} |= {} [5m])", go_quote(v), go_quote(&filter)))
            .collect();
        let query = parts.join(" or ");
        let rewritten = rewrite(NS, &query).unwrap();
        let insertion = r#", namespace="team-a""#;
        proptest::prop_assert_eq!(rewritten.matches(insertion).count(), values.len());
        proptest::prop_assert_eq!(rewritten.replace(insertion, ""), query);
        proptest::prop_assert_eq!(rewrite(NS, &rewritten).unwrap(), rewritten);
    }
}
