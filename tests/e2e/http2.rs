//! HTTP/2 cleartext with prior knowledge through Envoy, in filter mode and in ext_authz mode:
//! requests that end with trailers, bodies in several DATA frames, header names with
//! underscores (issue 11), and the bounds on queries and narrowings (the same cases over
//! HTTP/1.1 next to them). Envoy accepts h2c on the same listener as HTTP/1.1 and, unlike
//! HTTP/1.1 chunked trailers, hands HTTP/2 trailers to the filters: a filter callback that
//! returns Continue for them while the request waits for a decision releases the whole request.
//!
//! Every case tags its request with a [`MARKER`] and checks what the echo upstream received:
//! nothing when refused; when allowed, exactly one request, with Tollgate's identity, without
//! credentials or spoofed identity, and with every PromQL selector confined.

use serde_json::json;
use std::time::Duration;
use tollgate_core::form;
use tollgate_e2e::{
    EchoUpstream, Envoy, H2Outcome, H2Request, MARKER, Mode, Through, Tollgate, bootstrap, send,
    send_h2,
};

const NS: &str = r#"{kube_namespace="prometheus"}"#;
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
const FORM: &str = "application/x-www-form-urlencoded";
/// Enough for Envoy to read each frame on its own (and for a Resolve to come back between
/// frames).
const GAP: Duration = Duration::from_millis(30);

/// One Envoy in one mode, with its own server and upstream; every token unused so far (the
/// filter's cache is cold).
struct Side {
    name: &'static str,
    filter: bool,
    _tollgate: Tollgate,
    echo: EchoUpstream,
    envoy: Envoy,
    /// `dash`: a viewer confined to [`NS`].
    viewer: String,
    /// `collector`: a writer without a label policy.
    writer: String,
}

async fn side(mode: Mode) -> Side {
    let (name, filter) = match mode {
        Mode::Filter(_) => ("filter", true),
        Mode::ExtAuthz => ("ext_authz", false),
    };
    let tollgate = Tollgate::start().await.unwrap();
    let echo = EchoUpstream::start().await.unwrap();
    let envoy =
        Envoy::start(&bootstrap(&mode, tollgate.grpc_addr.port(), echo.addr.port()).unwrap())
            .await
            .unwrap();
    let (_, _, viewer) = tollgate
        .account_with_token(json!({"name": "dash", "role": "viewer", "labelPolicy": NS}))
        .await;
    let (_, _, writer) = tollgate
        .account_with_token(json!({"name": "collector", "role": "writer"}))
        .await;
    Side {
        name,
        filter,
        _tollgate: tollgate,
        echo,
        envoy,
        viewer,
        writer,
    }
}

/// Both modes, side by side.
async fn sides() -> [Side; 2] {
    [
        side(Mode::Filter(FAST.into())).await,
        side(Mode::ExtAuthz).await,
    ]
}

/// A well-formed token (valid checksum) the server never issued.
fn unknown_token() -> String {
    tollgate_core::Token::generate()
        .unwrap()
        .expose_secret()
        .to_owned()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A POST of a PromQL form body, tagged, with its content-length.
fn post_query(token: &str, marker: &str, body: &str) -> H2Request {
    H2Request::new("POST", "/api/v1/query")
        .header("authorization", bearer(token))
        .header("content-type", FORM)
        .header("content-length", body.len().to_string())
        .header(MARKER, marker)
}

impl Side {
    async fn h2(&self, request: H2Request) -> Through {
        send_h2(self.envoy.listener, request)
            .await
            .unwrap()
            .response()
    }

    /// Checks what became of the request tagged `marker`, answered `status`, against the
    /// status this mode must give (`expected`). Refused: never seen upstream. Allowed: seen
    /// once, as `account`, without `authorization` or any client identity, every PromQL
    /// selector confined for `dash`, and a content-length that matches the body it carries.
    fn verify(&self, case: &str, marker: &str, reply: &Through, expected: u16, account: &str) {
        let name = self.name;
        let reached = self.echo.marked(marker);
        assert_eq!(
            reply.status,
            expected,
            "{name} {case}: {} (upstream received {reached:?})\n{}",
            reply.text,
            self.envoy.log()
        );
        if reply.status != 200 {
            assert!(
                reached.is_empty(),
                "{name} {case}: refused ({}) yet the upstream received it: {reached:?}",
                reply.status
            );
            return;
        }
        assert_eq!(reached.len(), 1, "{name} {case}: {reached:?}");
        let received = &reached[0];
        let headers = &received["headers"];
        assert_eq!(
            headers["x-tollgate-account"],
            json!([account]),
            "{name} {case}: {received}"
        );
        assert!(
            headers.get("authorization").is_none(),
            "{name} {case}: credentials upstream: {received}"
        );
        let body = received["body"].as_str().unwrap();
        if let Some(length) = headers.get("content-length") {
            assert_eq!(
                length,
                &json!([body.len().to_string()]),
                "{name} {case}: content-length does not match the body upstream: {received}"
            );
        }
        if account == "dash" {
            let query = received["query"].as_str().unwrap();
            let mut selectors = 0;
            for source in [query, body] {
                for pair in form::parse(source).unwrap_or_default() {
                    if pair.key == "query" || pair.key == "match[]" {
                        selectors += 1;
                        let canonical = tollgate_core::promql::canonical(&pair.value)
                            .unwrap_or_else(|e| panic!("{name} {case}: {e}"));
                        assert!(
                            canonical.contains(r#"kube_namespace="prometheus""#),
                            "{name} {case}: unconfined {canonical} upstream"
                        );
                    }
                }
            }
            assert!(
                selectors > 0,
                "{name} {case}: no PromQL upstream: {received}"
            );
        }
    }

    /// The body the upstream received for `marker`.
    fn body_upstream(&self, marker: &str) -> String {
        self.echo.marked(marker)[0]["body"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// One allowed GET over HTTP/1.1, so that the filter caches `token`.
    async fn warm(&self, token: &str) {
        let reply = send(
            reqwest::Client::new()
                .get(format!("{}/api/v1/query?query=up", self.envoy.url()))
                .bearer_auth(token),
        )
        .await;
        assert_eq!(reply.status, 200, "{}: {}", self.name, reply.text);
    }

    /// What `POST query=up` (outside the policy) by `dash` gets: filter mode rewrites the body
    /// (200); ext_authz mode cannot rewrite it and refuses it (403).
    fn confined_post_status(&self) -> u16 {
        if self.filter { 200 } else { 403 }
    }
}

fn query_of(body: &str) -> String {
    form::parse(body)
        .unwrap()
        .into_iter()
        .find(|p| p.key == "query")
        .map(|p| p.value)
        .unwrap_or_default()
}

#[tokio::test]
async fn trailers_on_a_cache_miss_hold_the_request_until_the_decision() {
    for s in sides().await {
        // A well-formed token the server never issued, a spoofed identity, one DATA frame and
        // trailers: all frames arrive while the filter still waits for the server.
        let unknown = unknown_token();
        let reply = s
            .h2(H2Request::new("POST", "/api/v1/write")
                .header("authorization", bearer(&unknown))
                .header("x-tollgate-account", "root")
                .header("content-type", "application/x-protobuf")
                .header(MARKER, "miss-unknown")
                .data(b"\x0a\x00".to_vec())
                .trailer("x-trailer", "1"))
            .await;
        s.verify("unknown token, trailers", "miss-unknown", &reply, 401, "");

        // The confined viewer's first request: POST query=up, trailers before its grant.
        let body = "query=up";
        let reply = s
            .h2(post_query(&s.viewer, "miss-post", body)
                .header("x-tollgate-account", "root")
                .data(body)
                .trailer("x-trailer", "1"))
            .await;
        s.verify(
            "miss, POST query=up, trailers",
            "miss-post",
            &reply,
            s.confined_post_status(),
            "dash",
        );
        if s.filter {
            assert_eq!(
                tollgate_core::promql::canonical(&query_of(&s.body_upstream("miss-post"))).unwrap(),
                tollgate_core::promql::canonical(r#"up{kube_namespace="prometheus"}"#).unwrap()
            );
        }

        // A writer's first write, with trailers: allowed, body intact, credentials gone.
        let reply = s
            .h2(H2Request::new("POST", "/api/v1/write")
                .header("authorization", bearer(&s.writer))
                .header("x-tollgate-account", "root")
                .header("content-type", "application/x-protobuf")
                .header(MARKER, "miss-write")
                .data(b"abc".to_vec())
                .trailer("x-trailer", "1"))
            .await;
        s.verify(
            "miss, write, trailers",
            "miss-write",
            &reply,
            200,
            "collector",
        );
        assert_eq!(s.body_upstream("miss-write"), "abc", "{}", s.name);
    }
}

#[tokio::test]
async fn trailers_on_a_cache_hit_end_the_body_and_it_is_confined() {
    for s in sides().await {
        s.warm(&s.viewer).await;
        let body = "query=up";
        let reply = s
            .h2(post_query(&s.viewer, "hit-post", body)
                .data(body)
                .trailer("x-trailer", "1"))
            .await;
        s.verify(
            "hit, POST query=up, trailers",
            "hit-post",
            &reply,
            s.confined_post_status(),
            "dash",
        );
        if s.filter {
            let upstream = s.body_upstream("hit-post");
            assert_eq!(
                tollgate_core::promql::canonical(&query_of(&upstream)).unwrap(),
                tollgate_core::promql::canonical(r#"up{kube_namespace="prometheus"}"#).unwrap(),
                "{upstream}"
            );
        }

        // A body already inside the policy: allowed in both modes, still confined upstream.
        let body = format!(
            "query={}&time=1",
            form::encode(r#"up{kube_namespace="prometheus"}"#)
        );
        let reply = s
            .h2(post_query(&s.viewer, "hit-inside", &body)
                .data(body.clone())
                .trailer("x-trailer", "1"))
            .await;
        s.verify(
            "hit, POST inside, trailers",
            "hit-inside",
            &reply,
            200,
            "dash",
        );

        // Trailers right after the headers, no DATA at all.
        let reply = s
            .h2(H2Request::new("POST", "/api/v1/query")
                .header("authorization", bearer(&s.viewer))
                .header("content-type", FORM)
                .header(MARKER, "hit-empty")
                .trailer("x-trailer", "1"))
            .await;
        let reached = s.echo.marked("hit-empty");
        if s.filter {
            // The filter sees the stream end: nothing to confine, so it goes on, empty, as it
            // came (Prometheus will ask for a query).
            assert_eq!(reply.status, 200, "{}: {}", s.name, reply.text);
            assert_eq!(reached.len(), 1, "{}", s.name);
            assert_eq!(reached[0]["body"], "", "{}", s.name);
            assert!(reached[0]["headers"].get("authorization").is_none());
        } else {
            // Envoy tells ext_authz nothing of a body it did not buffer, and HTTP/2 needs no
            // content-length: an empty POST may be a body left out of the check (Envoy without
            // with_request_body), so a restricted account's is refused, never passed unread.
            assert_eq!(reply.status, 403, "{}: {}", s.name, reply.text);
            assert_eq!(reply.json["reason"], "body_unavailable", "{}", reply.text);
            assert!(reached.is_empty(), "{}", s.name);
        }
    }
}

#[tokio::test]
async fn refused_requests_with_trailers_never_reach_the_upstream() {
    for s in sides().await {
        let unknown = unknown_token();
        let cases: [(&str, Option<&str>); 4] = [
            ("no token", None),
            ("malformed token", Some("tgsa_nope")),
            ("unknown token", Some(&unknown)),
            // Again: in filter mode now a negative cache entry, answered at the headers.
            ("unknown token again", Some(&unknown)),
        ];
        for (i, (case, token)) in cases.into_iter().enumerate() {
            let marker = format!("refused-{i}");
            let mut request = H2Request::new("POST", "/api/v1/write")
                .header("x-tollgate-account", "root")
                .header("x-scope-orgid", "other")
                .header(MARKER, &marker)
                .data(b"abc".to_vec())
                .trailer("x-trailer", "1");
            if let Some(token) = token {
                request = request.header("authorization", bearer(token));
            }
            let reply = s.h2(request).await;
            s.verify(case, &marker, &reply, 401, "");
            assert_eq!(
                reply.headers["www-authenticate"], "Bearer error=\"invalid_token\"",
                "{} {case}",
                s.name
            );
        }
    }
}

#[tokio::test]
async fn a_get_with_a_body_and_trailers() {
    // (A form body on a GET is not PromQL to Prometheus: Go's ParseForm reads such bodies of
    // POST, PUT and PATCH only. A multipart body it reads on any method, through FormValue:
    // so a GET's body is checked as a POST's is, and a multipart one refused.)
    for s in sides().await {
        let unknown = unknown_token();
        let reply = s
            .h2(H2Request::new("GET", "/api/v1/query?query=up")
                .header("authorization", bearer(&unknown))
                .header("x-tollgate-account", "root")
                .header(MARKER, "get-unknown")
                .data("query=up")
                .trailer("x-trailer", "1"))
            .await;
        s.verify("GET body, unknown token", "get-unknown", &reply, 401, "");

        // The viewer's first request (a miss in filter mode), then a hit.
        for marker in ["get-miss", "get-hit"] {
            let reply = s
                .h2(H2Request::new("GET", "/api/v1/query?query=up")
                    .header("authorization", bearer(&s.viewer))
                    .header("x-tollgate-account", "root")
                    .header("content-type", FORM)
                    .header(MARKER, marker)
                    .data("x=1")
                    .trailer("x-trailer", "1"))
                .await;
            s.verify("GET with a body and trailers", marker, &reply, 200, "dash");
            assert_eq!(s.body_upstream(marker), "x=1", "{}", s.name);
        }
        let multipart =
            "--x\r\ncontent-disposition: form-data; name=\"query\"\r\n\r\nup\r\n--x--\r\n";
        let reply = s
            .h2(H2Request::new("GET", "/api/v1/query")
                .header("authorization", bearer(&s.viewer))
                .header("content-type", "multipart/form-data; boundary=x")
                .header(MARKER, "get-multipart")
                .data(multipart)
                .trailer("x-trailer", "1"))
            .await;
        s.verify(
            "GET with a multipart body",
            "get-multipart",
            &reply,
            400,
            "",
        );
    }
}

#[tokio::test]
async fn bodies_in_several_data_frames() {
    for s in sides().await {
        let query = if s.filter {
            "sum(rate(x[5m]))".to_owned()
        } else {
            r#"sum(rate(x{kube_namespace="prometheus"}[5m]))"#.to_owned()
        };
        let body = format!("query={}&time=1&timeout=30s", form::encode(&query));
        let (a, rest) = body.split_at(7);
        let (b, c) = rest.split_at(rest.len() / 2);
        let chunks = [a.to_owned(), b.to_owned(), c.to_owned()];
        // All frames at once (a miss: they arrive before the grant), then frame by frame (a
        // hit: each frame read on its own), with trailers and without.
        for (marker, gap, trailers) in [
            ("frames-miss", Duration::ZERO, true),
            ("frames-hit", GAP, true),
            ("frames-hit-no-trailers", GAP, false),
        ] {
            let mut request = post_query(&s.viewer, marker, &body).gap(gap);
            for chunk in &chunks {
                request = request.data(chunk.clone());
            }
            if trailers {
                request = request.trailer("x-trailer", "1");
            }
            let reply = s.h2(request).await;
            s.verify("several DATA frames", marker, &reply, 200, "dash");
            let upstream = s.body_upstream(marker);
            let pairs = form::parse(&upstream).unwrap();
            assert!(
                pairs.iter().any(|p| p.key == "timeout" && p.value == "30s"),
                "{} {marker}: the last frame is missing upstream: {upstream}",
                s.name
            );
            assert_eq!(
                tollgate_core::promql::canonical(&query_of(&upstream)).unwrap(),
                tollgate_core::promql::canonical(
                    r#"sum(rate(x{kube_namespace="prometheus"}[5m]))"#
                )
                .unwrap(),
                "{} {marker}",
                s.name
            );
        }
    }
}

#[tokio::test]
async fn underscored_header_names_are_refused_before_the_upstream() {
    for s in sides().await {
        // An upstream that folds `_` into `-` would read this as Tollgate's identity header.
        let h1 = send(
            reqwest::Client::new()
                .get(format!("{}/api/v1/query?query=up", s.envoy.url()))
                .bearer_auth(&s.viewer)
                .header("x_tollgate_account", "root")
                .header(MARKER, "underscore-h1"),
        )
        .await;
        let h2 = send_h2(
            s.envoy.listener,
            H2Request::new("GET", "/api/v1/query?query=up")
                .header("authorization", bearer(&s.viewer))
                .header("x_tollgate_account", "root")
                .header(MARKER, "underscore-h2"),
        )
        .await
        .unwrap();
        for received in s.echo.received() {
            let headers = received["headers"].as_object().unwrap();
            assert!(
                headers.keys().all(|k| !k.contains('_')),
                "{}: a header name with an underscore upstream: {received}",
                s.name
            );
        }
        // Envoy refuses them before any filter: HTTP/1.1 with 400, HTTP/2 with a stream reset
        // (or 400); nothing reaches the upstream.
        assert_eq!(h1.status, 400, "{}: {}", s.name, h1.text);
        match h2 {
            H2Outcome::Reset(_) => {}
            H2Outcome::Response(reply) => assert_eq!(reply.status, 400, "{}", s.name),
        }
        for marker in ["underscore-h1", "underscore-h2"] {
            assert!(
                s.echo.marked(marker).is_empty(),
                "{} {marker}: {:?}",
                s.name,
                s.echo.marked(marker)
            );
        }
    }
}

/// The bounds on what a client sends, through a real Envoy in both modes, over HTTP/1.1 and
/// HTTP/2 (a body in several DATA frames with trailers): at most 64 regex matchers in a query,
/// and a narrowing `x-tollgate-labels` held to a stored policy's limits and 4096 bytes. Over
/// a bound: 400 with its reason, never upstream; at it: allowed and confined.
#[tokio::test]
async fn query_and_narrowing_bounds_hold_over_both_protocols() {
    let regexes = |n: usize| {
        let matchers: Vec<String> = (0..n).map(|i| format!("a=~\"x{i}\"")).collect();
        format!("up{{{}}}", matchers.join(","))
    };
    let nine_selectors = (0..9)
        .map(|i| format!("{{kube_namespace=\"prometheus\", l=\"{i}\"}}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let query = |q: &str| format!("/api/v1/query?query={}", form::encode(q));
    // (case, path, x-tollgate-labels, form body, status, reason)
    let cases: Vec<(
        &str,
        String,
        Option<String>,
        Option<String>,
        u16,
        Option<&str>,
    )> = vec![
        (
            "regexes-over-the-bound",
            query(&regexes(65)),
            None,
            None,
            400,
            Some("invalid_query"),
        ),
        (
            "regexes-at-the-bound",
            query(&regexes(64)),
            None,
            None,
            200,
            None,
        ),
        (
            "regexes-over-the-bound-in-a-body",
            "/api/v1/query".into(),
            None,
            Some(format!("query={}", form::encode(&regexes(65)))),
            400,
            Some("invalid_query"),
        ),
        (
            "narrowing-too-long",
            query("up"),
            Some(format!("{{kube_namespace=~\"{}\"}}", "a".repeat(5000))),
            None,
            400,
            Some("invalid_labels"),
        ),
        (
            "narrowing-too-many-matchers",
            query("up"),
            Some("{a=~\"x\"} or ".repeat(90) + "{a=\"x\"}"),
            None,
            400,
            Some("invalid_labels"),
        ),
        (
            "narrowing-nine-selectors",
            query("up"),
            Some(nine_selectors),
            None,
            400,
            Some("invalid_labels"),
        ),
        (
            "narrowing-within",
            query("up"),
            Some(r#"{kube_namespace="prometheus", job="x"}"#.into()),
            None,
            200,
            None,
        ),
    ];
    for s in sides().await {
        for (case, path, labels, body, status, reason) in &cases {
            let method = if body.is_some() { "POST" } else { "GET" };
            // HTTP/2: the body in three DATA frames, then trailers.
            let h2_marker = format!("{case}-h2");
            let mut request = H2Request::new(method, path)
                .header("authorization", bearer(&s.viewer))
                .header(MARKER, &h2_marker);
            if let Some(labels) = labels {
                request = request.header("x-tollgate-labels", labels);
            }
            if let Some(body) = body {
                let third = body.len() / 3;
                request = request
                    .header("content-type", FORM)
                    .data(&body.as_bytes()[..third])
                    .data(&body.as_bytes()[third..2 * third])
                    .data(&body.as_bytes()[2 * third..])
                    .trailer("x-trailer", "1");
            }
            let h2 = s.h2(request).await;
            // HTTP/1.1.
            let h1_marker = format!("{case}-h1");
            let url = format!("{}{path}", s.envoy.url());
            let http = reqwest::Client::new();
            let mut request = match body {
                Some(body) => http
                    .post(url)
                    .header("content-type", FORM)
                    .body(body.clone()),
                None => http.get(url),
            }
            .bearer_auth(&s.viewer)
            .header(MARKER, &h1_marker);
            if let Some(labels) = labels {
                request = request.header("x-tollgate-labels", labels);
            }
            let h1 = send(request).await;
            for (protocol, marker, reply) in
                [("HTTP/2", &h2_marker, &h2), ("HTTP/1.1", &h1_marker, &h1)]
            {
                let case = format!("{case} ({protocol})");
                s.verify(&case, marker, reply, *status, "dash");
                assert_eq!(
                    reply.json["reason"].as_str(),
                    *reason,
                    "{} {case}: {}",
                    s.name,
                    reply.text
                );
            }
        }
    }
}
