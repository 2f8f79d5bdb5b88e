//! The built `tollgate` binary driven against a real server: the README's seed workflow,
//! both output formats, and one-line errors with a non-zero exit code.

use crate::harness::TestServer;
use serde_json::Value;
use std::process::{Command, Output};

struct Cli<'a> {
    server: &'a TestServer,
    token: String,
}

impl Cli<'_> {
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .args(args)
            .env("TOLLGATE_URL", &self.server.url)
            .env("TOLLGATE_TOKEN", &self.token);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `input` on stdin (`apply -f -`); asserts success and returns stdout.
    async fn ok_with_stdin(&self, args: &[&str], input: String) -> String {
        use std::io::Write;
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .args(args)
            .env("TOLLGATE_URL", &self.server.url)
            .env("TOLLGATE_TOKEN", &self.token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr}");
        stderr
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_workflow_with_the_cli() {
    let server = TestServer::start().await;
    let cli = Cli {
        server: &server,
        token: server.admin_token.clone(),
    };

    let table = cli
        .ok(&[
            "sa",
            "create",
            "ci-reader",
            "--role",
            "viewer",
            "--label-policy",
            r#"{kube_namespace="prometheus"}"#,
            "--description",
            "CI dashboards",
        ])
        .await;
    assert!(
        table.starts_with("ID") && table.contains("ci-reader") && table.contains("viewer"),
        "{table}"
    );

    let issued = cli
        .json(&[
            "token",
            "create",
            "ci-reader",
            "main",
            "--expires-in",
            "30d",
        ])
        .await;
    let token = issued["token"].as_str().unwrap().to_owned();
    let token_id = issued["id"].as_i64().unwrap().to_string();
    // Token hygiene: the tokens about to lapse, and the metric to alert on.
    let soon = cli
        .json(&["token", "create", "ci-reader", "soon", "--expires-in", "2d"])
        .await;
    let expiring = cli
        .json(&["token", "list", "ci-reader", "--expiring", "7d"])
        .await;
    let names: Vec<&str> = expiring["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["soon"],
        "only the 2-day token expires within 7 days"
    );
    let all = cli.json(&["token", "list", "ci-reader"]).await;
    assert_eq!(all["tokens"].as_array().unwrap().len(), 2);
    let paged = cli
        .ok(&[
            "token",
            "list",
            "ci-reader",
            "--page",
            "2",
            "--page-size",
            "1",
        ])
        .await;
    assert!(
        paged.contains("soon") && !paged.contains("main") && paged.contains("page 2 of 2"),
        "{paged}"
    );
    let bad = cli
        .fails(&["token", "list", "ci-reader", "--expiring", "soon"])
        .await;
    assert!(bad.contains("expiringWithin"), "{bad}");
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tollgate_tokens_expiring_seconds{tenant=\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    let seconds: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (2 * 86_400 - 120..=2 * 86_400).contains(&seconds),
        "the 2-day token is the tenant's next expiry: {line}"
    );
    cli.ok(&["token", "revoke", "ci-reader", &soon["id"].to_string()])
        .await;

    let shown = cli.ok(&["token", "create", "ci-reader", "second"]).await;
    assert!(
        shown.contains("shown once") && shown.contains("tgsa_"),
        "{shown}"
    );

    let listed = cli.ok(&["token", "list", "ci-reader"]).await;
    assert!(
        listed.contains("main") && listed.contains("second") && listed.contains("tgsa_…"),
        "{listed}"
    );
    assert!(
        !listed.contains(&token[5..37]),
        "listing shows metadata only"
    );

    let yes = cli
        .ok(&["can-i", "GET", "/api/v1/query", "--as", "ci-reader"])
        .await;
    assert!(yes.starts_with("yes"), "{yes}");
    // "No" exits 1 after printing the answer, as kubectl auth can-i does.
    let no = cli
        .run(&[
            "can-i",
            "post",
            "/api/v1/write",
            "--as",
            "ci-reader",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(no.status.code(), Some(1), "no: exit status 1");
    assert!(no.stderr.is_empty(), "no error line for a no");
    let no: Value = serde_json::from_slice(&no.stdout).unwrap();
    assert_eq!(
        (no["allowed"].as_bool(), no["reason"].as_str()),
        (Some(false), Some("missing_scope"))
    );
    let wider = cli
        .run(&[
            "can-i",
            "GET",
            "/api/v1/query",
            "--as",
            "ci-reader",
            "--labels",
            r#"{kube_namespace="default"}"#,
        ])
        .await;
    assert_eq!(wider.status.code(), Some(1));
    let wider = String::from_utf8(wider.stdout).unwrap();
    assert!(
        wider.starts_with("no") && wider.contains("label_policy_violation"),
        "{wider}"
    );

    // Per route family; a restricted writer may write (its bodies are confined, so the review
    // judges a well-formed body of the route's format).
    let families = cli.json(&["can-i", "--list", "--as", "ci-reader"]).await;
    let row = |family: &str| {
        families
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["family"] == family)
            .cloned()
            .unwrap_or_else(|| panic!("{family} in {families}"))
    };
    assert_eq!(row("metrics query")["allowed"], true);
    assert_eq!(row("metrics remote write")["reason"], "missing_scope");
    assert_eq!(
        row("metrics metadata, rules, targets")["reason"],
        "labels_not_enforceable"
    );
    let table = cli.ok(&["can-i", "--list", "--as", "ci-reader"]).await;
    assert!(
        table.starts_with("FAMILY") && table.contains("GET /api/v1/query"),
        "{table}"
    );
    cli.ok(&[
        "sa",
        "create",
        "loader",
        "--role",
        "writer",
        "--label-policy",
        r#"{kube_namespace="prometheus"}"#,
    ])
    .await;
    for (method, path) in [
        ("POST", "/api/v1/write"),
        ("POST", "/v1/logs"),
        ("POST", "/loki/api/v1/push"),
    ] {
        let yes = cli.ok(&["can-i", method, path, "--as", "loader"]).await;
        assert!(yes.starts_with("yes"), "{method} {path}: {yes}");
    }

    let regenerated = cli
        .json(&["token", "regenerate", "ci-reader", &token_id])
        .await;
    assert_ne!(regenerated["token"].as_str().unwrap(), token);
    cli.ok(&["token", "rename", "ci-reader", &token_id, "primary"])
        .await;
    assert!(
        cli.ok(&["token", "revoke", "ci-reader", &token_id])
            .await
            .contains("revoked")
    );
    assert_eq!(
        cli.json(&["token", "list", "ci-reader"]).await["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let updated = cli
        .json(&[
            "sa",
            "update",
            "ci-reader",
            "--role",
            "editor",
            "--display-name",
            "CI",
        ])
        .await;
    assert_eq!(
        (updated["role"].as_str(), updated["displayName"].as_str()),
        (Some("editor"), Some("CI"))
    );
    let got = cli.json(&["sa", "get", &updated["id"].to_string()]).await;
    assert_eq!(got["name"], "ci-reader");
    let list = cli.json(&["sa", "list", "--search", "ci"]).await;
    assert_eq!(list["totalCount"], 1);

    // Several names at once; one that does not exist is reported and the rest still go.
    for name in ["ci-extra-1", "ci-extra-2"] {
        cli.ok(&["sa", "create", name, "--role", "viewer"]).await;
    }
    let out = cli
        .run(&[
            "sa",
            "delete",
            "ci-extra-1",
            "no-such-account",
            "ci-extra-2",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1), "one of three failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout.matches("deleted service account").count(),
        2,
        "{stdout}"
    );
    assert!(
        stderr.contains("no-such-account") && stderr.contains("1 of 3 accounts not deleted"),
        "{stderr}"
    );
    let left = cli.json(&["sa", "list", "--search", "ci-extra"]).await;
    assert_eq!(left["totalCount"], 0, "both deleted");
    cli.ok(&["sa", "delete", "ci-reader"]).await;
    let audit = cli.ok(&["audit"]).await;
    for action in [
        "serviceaccount.delete",
        "token.regenerate",
        "token.create",
        "serviceaccount.create",
    ] {
        assert!(audit.contains(action), "{audit}");
    }
    assert!(!audit.contains(&token[5..37]));

    // Failures: one line naming the cause, non-zero exit.
    let missing = cli.fails(&["sa", "get", "ci-reader"]).await;
    assert!(
        missing.contains("no service account named \"ci-reader\""),
        "{missing}"
    );
    let bad_role = cli.fails(&["sa", "create", "x", "--role", "root"]).await;
    assert!(
        bad_role.contains("role") && bad_role.contains("HTTP 400"),
        "{bad_role}"
    );
    let nothing = cli.fails(&["sa", "update", "1"]).await;
    assert!(nothing.contains("nothing to update"), "{nothing}");
    let unauth = Cli {
        server: &server,
        token: "tgsa_wrong".into(),
    }
    .fails(&["sa", "list"])
    .await;
    assert!(
        unauth.contains("HTTP 401") && !unauth.contains("tgsa_wrong"),
        "{unauth}"
    );
    let no_token = Cli {
        server: &server,
        token: String::new(),
    }
    .fails(&["sa", "list"])
    .await;
    assert!(no_token.contains("TOLLGATE_TOKEN"), "{no_token}");
    server.stop().await;
}

/// A name is looked up exactly: an account is found however many others contain its name
/// (more than the API's largest page of 1000 here), and names that merely contain it, or
/// display names equal to it, never stand in for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_looked_up_by_exact_name() {
    let server = TestServer::start().await;
    let cli = Cli {
        server: &server,
        token: server.admin_token.clone(),
    };
    // 1000 accounts whose names contain "x", created before "x" itself (lists are by id).
    let http = reqwest::Client::new();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (http, token) = (http.clone(), server.admin_token.clone());
        let url = format!("{}/api/v1/serviceaccounts", server.url);
        workers.spawn(async move {
            for i in (worker..1000).step_by(8) {
                let reply = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"name": format!("x-{i:04}"), "role": "viewer"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status(), 201);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    cli.ok(&["sa", "create", "x", "--role", "viewer"]).await;
    cli.ok(&[
        "sa",
        "create",
        "xy",
        "--role",
        "editor",
        "--display-name",
        "x",
    ])
    .await;
    let found = cli.json(&["sa", "get", "x"]).await;
    assert_eq!(
        (found["name"].as_str(), found["role"].as_str()),
        (Some("x"), Some("viewer"))
    );
    let issued = cli.json(&["token", "create", "x", "first"]).await;
    assert_eq!(issued["name"], "first");
    let listed = cli.json(&["token", "list", "x"]).await;
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(
        cli.json(&["token", "list", "xy"]).await["tokens"],
        serde_json::json!([])
    );
    let missing = cli.fails(&["sa", "get", "x-"]).await;
    assert!(
        missing.contains("no service account named \"x-\""),
        "{missing}"
    );
    server.stop().await;
}

/// Same-named accounts in two tenants: an all-tenant admin picks one with --tenant, on `sa` and
/// `token` commands alike; without it the error names the tenants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_picks_among_same_named_accounts() {
    let server = TestServer::start().await;
    let cli = Cli {
        server: &server,
        token: server.admin_token.clone(),
    };
    for tenant in ["acme", "globex"] {
        cli.ok(&["sa", "create", "ci", "--role", "viewer", "--tenant", tenant])
            .await;
    }

    let ambiguous = cli.fails(&["sa", "get", "ci"]).await;
    assert!(
        ambiguous.contains("several service accounts are named \"ci\"")
            && ambiguous.contains("acme")
            && ambiguous.contains("globex")
            && ambiguous.contains("--tenant"),
        "{ambiguous}"
    );
    let ambiguous = cli.fails(&["token", "list", "ci"]).await;
    assert!(ambiguous.contains("acme, globex"), "{ambiguous}");
    let elsewhere = cli.fails(&["sa", "get", "ci", "--tenant", "initech"]).await;
    assert!(
        elsewhere.contains("no service account named \"ci\" in tenant \"initech\""),
        "{elsewhere}"
    );

    let acme = cli.json(&["sa", "get", "ci", "--tenant", "acme"]).await;
    assert_eq!(acme["tenant"], "acme");
    let table = cli.ok(&["sa", "get", "ci", "--tenant", "globex"]).await;
    assert!(
        table.contains("globex") && !table.contains("acme"),
        "{table}"
    );

    let issued = cli
        .json(&["token", "create", "ci", "deploy", "--tenant", "globex"])
        .await;
    let token_id = issued["id"].to_string();
    let names = |page: Value| -> Vec<String> {
        page["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(
            cli.json(&["token", "list", "ci", "--tenant", "globex"])
                .await
        ),
        ["deploy"]
    );
    assert!(names(cli.json(&["token", "list", "ci", "--tenant", "acme"]).await).is_empty());
    cli.ok(&[
        "token", "rename", "ci", &token_id, "ship", "--tenant", "globex",
    ])
    .await;
    cli.json(&["token", "regenerate", "ci", &token_id, "--tenant", "globex"])
        .await;
    // The token belongs to globex's account: acme's has no such token.
    let wrong = cli
        .fails(&["token", "revoke", "ci", &token_id, "--tenant", "acme"])
        .await;
    assert!(wrong.contains("HTTP 404"), "{wrong}");
    cli.ok(&["token", "revoke", "ci", &token_id, "--tenant", "globex"])
        .await;

    let updated = cli
        .json(&[
            "sa",
            "update",
            "ci",
            "--tenant",
            "acme",
            "--display-name",
            "Acme CI",
        ])
        .await;
    assert_eq!(
        (updated["tenant"].as_str(), updated["displayName"].as_str()),
        (Some("acme"), Some("Acme CI"))
    );
    let globex = cli.json(&["sa", "get", "ci", "--tenant", "globex"]).await;
    assert_eq!(globex["displayName"], "ci");

    cli.ok(&["sa", "delete", "ci", "--tenant", "globex"]).await;
    // One left: the name alone is enough again.
    assert_eq!(cli.json(&["sa", "get", "ci"]).await["tenant"], "acme");

    // Tenants: listed with counts; deleted with every account (all-tenant admins only).
    cli.ok(&[
        "sa", "create", "deployer", "--role", "admin", "--tenant", "acme",
    ])
    .await;
    let tenants = cli.json(&["tenant", "list"]).await;
    let acme = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme")
        .cloned()
        .unwrap_or_else(|| panic!("{tenants}"));
    assert_eq!(acme["accounts"], 2, "{tenants}");
    let table = cli.ok(&["tenant", "list"]).await;
    assert!(
        table.starts_with("TENANT") && table.contains("acme"),
        "{table}"
    );
    let protected = cli.fails(&["tenant", "delete", "default"]).await;
    assert!(
        protected.contains("HTTP 409"),
        "the admin's tenant stays: {protected}"
    );
    let issued = cli
        .json(&["token", "create", "deployer", "t", "--tenant", "acme"])
        .await;
    let acme_token = issued["token"].as_str().unwrap().to_owned();
    let as_acme = Cli {
        server: &server,
        token: acme_token.clone(),
    };
    let forbidden = as_acme.fails(&["tenant", "list"]).await;
    assert!(forbidden.contains("all_tenants_only"), "{forbidden}");
    let deleted = cli.json(&["tenant", "delete", "acme"]).await;
    assert_eq!(deleted["deletedAccounts"], 2);
    let gone = cli.fails(&["sa", "get", "ci"]).await;
    assert!(
        gone.contains("HTTP 404") || gone.contains("no service account"),
        "{gone}"
    );
    let audit = cli.ok(&["audit", "--target", "tenant/acme"]).await;
    assert!(audit.contains("tenant.delete"), "{audit}");
    // The deleted tenant's tokens stop working.
    let after = as_acme.fails(&["sa", "list"]).await;
    assert!(after.contains("HTTP 401"), "{after}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_bad_configuration_and_stores_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, vec![b'x'; 8192]).unwrap();
    let cases = [
        (
            vec![format!("--store=sqlite://{}", corrupt.display())],
            "not a database",
        ),
        (
            vec!["--store=mysql://u:hunter2@db/x".into()],
            "not supported",
        ),
        (
            vec!["--store=postgres://u:hunter2@db.invalid/x".into()],
            "cannot open store",
        ),
        (vec!["--max-token-lifetime=3w".into()], "unknown unit"),
        (
            vec![format!(
                "--config={}",
                dir.path().join("missing.toml").display()
            )],
            "cannot read config file",
        ),
    ];
    for (args, want) in cases {
        let mut with_ports = args.clone();
        with_ports.extend([
            "--http-listen=127.0.0.1:0".into(),
            "--grpc-listen=127.0.0.1:0".into(),
        ]);
        let (out, _) = serve_with(&[], with_ports).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "a URL's password is never shown: {stderr}"
        );
    }
}

/// Runs `tollgate serve` on `store` with free ports; returns its output and how long it took.
async fn serve_store(store: String) -> (Output, std::time::Duration) {
    serve_store_as(&[], store).await
}

/// Same, run through `prefix` (such as `setpriv` to drop root) when it is not empty.
async fn serve_store_as(prefix: &[String], store: String) -> (Output, std::time::Duration) {
    let args = [
        "--store".to_owned(),
        store,
        "--http-listen=127.0.0.1:0".into(),
        "--grpc-listen=127.0.0.1:0".into(),
    ];
    serve_with(prefix, args.to_vec()).await
}

/// `tollgate serve ARGS`, run through `prefix` when it is not empty, killed after 30 s: a server
/// that hangs (or, after a regression, starts) fails the test instead of stalling it.
async fn serve_with(prefix: &[String], args: Vec<String>) -> (Output, std::time::Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(env!("CARGO_BIN_EXE_tollgate"));
            command
        }
        None => Command::new(env!("CARGO_BIN_EXE_tollgate")),
    };
    command
        .arg("serve")
        .args(&args)
        .env_remove("TOLLGATE_STORE")
        .env_remove("TOLLGATE_CONFIG")
        .env("TOLLGATE_BOOTSTRAP_TOKEN_FILE", dir.path().join("token"));
    let started = std::time::Instant::now();
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await;
    match output {
        Ok(output) => (output.unwrap(), started.elapsed()),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("tollgate serve {args:?} still running after 30 s");
        }
    }
}

#[track_caller]
fn assert_clear_failure(out: &Output, took: std::time::Duration, path: &str, causes: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One error line (log lines from the attempt may come before or after it).
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert!(!out.status.success(), "{path}: exit 0: {stderr}");
    assert!(!stderr.contains("panicked"), "{path}: {stderr}");
    assert_eq!(errors.len(), 1, "{path}: {} {stderr}", out.status);
    let last = errors[0];
    assert!(
        last.contains(path),
        "{path}: the error names the file: {last}"
    );
    assert!(
        causes.iter().any(|cause| last.contains(cause)),
        "{path}: the error names the cause ({causes:?}): {last}"
    );
    assert!(
        took < std::time::Duration::from_secs(20),
        "{path}: took {took:?}"
    );
}

/// Stores that cannot be written: a directory where the file should be, a file as its parent
/// directory, and a place the kernel refuses files in (/proc): these fail for root too. Then
/// file modes, which root ignores (CAP_DAC_OVERRIDE): see below. Each case must exit non-zero
/// within the bound, with one error line naming the file and the operating system's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fails_clearly_on_an_unwritable_store() {
    let dir = tempfile::tempdir().unwrap();
    let as_dir = dir.path().join("store-is-a-dir.db");
    std::fs::create_dir(&as_dir).unwrap();
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let cases = [
        (as_dir.display().to_string(), vec!["is a directory"]),
        (
            not_a_dir.join("tollgate.db").display().to_string(),
            vec!["not a directory", "Not a directory"],
        ),
        (
            "/proc/tollgate-test.db".to_owned(),
            vec!["cannot create", "ermission denied", "No such file"],
        ),
    ];

    for (path, causes) in cases {
        let (out, took) = serve_store(format!("sqlite://{path}")).await;
        assert_clear_failure(&out, took, &path, &causes);
    }

    // Permissions: a store made read-only (SQLite then opens it read-only without a word, and
    // the server used to start and fail every write later), a directory made read-only with
    // no store yet, and a writable store in a read-only directory (SQLite must create the -wal
    // and -shm files next to it). Root ignores these modes, so as root the server runs as
    // `nobody` through setpriv; without either, these cases are skipped with a note.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let Some(prefix) = unprivileged(dir.path()) else {
        eprintln!("skipped: permissions are not enforced and setpriv is unavailable");
        return;
    };
    mode(dir.path(), 0o755);
    let server = TestServer::start().await;
    let stored = server.store_path.clone();
    let ro_file = dir.path().join("ro-file.db");
    std::fs::copy(&stored, &ro_file).unwrap();
    mode(&ro_file, 0o444);
    let ro_bytes = std::fs::read(&ro_file).unwrap();
    let ro_dir = dir.path().join("ro-dir");
    std::fs::create_dir(&ro_dir).unwrap();
    mode(&ro_dir, 0o555);
    let rw_in_ro_dir = dir.path().join("ro-dir-with-store");
    std::fs::create_dir(&rw_in_ro_dir).unwrap();
    std::fs::copy(&stored, rw_in_ro_dir.join("tollgate.db")).unwrap();
    mode(&rw_in_ro_dir.join("tollgate.db"), 0o666);
    mode(&rw_in_ro_dir, 0o555);
    server.stop().await;
    for (path, causes) in [
        (ro_file.clone(), vec!["Permission denied"]),
        (
            ro_dir.join("tollgate.db"),
            vec!["cannot create", "Permission denied"],
        ),
        (
            rw_in_ro_dir.join("tollgate.db"),
            vec!["-wal: Permission denied"],
        ),
    ] {
        let path = path.display().to_string();
        let (out, took) = serve_store_as(&prefix, format!("sqlite://{path}")).await;
        assert_clear_failure(&out, took, &path, &causes);
    }
    // The failed attempts changed nothing.
    assert_eq!(std::fs::read(&ro_file).unwrap(), ro_bytes);
    mode(&rw_in_ro_dir, 0o755);
}

/// A command prefix under which file modes are enforced: none when they already are for this
/// process, `setpriv` to `nobody` when it is root (CAP_DAC_OVERRIDE ignores them), else `None`.
fn unprivileged(scratch: &std::path::Path) -> Option<Vec<String>> {
    use std::os::unix::fs::PermissionsExt;
    let probe = scratch.join("probe");
    std::fs::write(&probe, b"").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o444)).unwrap();
    if std::fs::OpenOptions::new()
        .write(true)
        .open(&probe)
        .is_err()
    {
        return Some(Vec::new());
    }
    let prefix: Vec<String> = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ]
    .map(String::from)
    .to_vec();
    let works = Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    works.then_some(prefix)
}

/// A store another process holds an exclusive SQLite lock on: `serve` waits at most its busy
/// timeout, then exits non-zero naming the file and the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fails_clearly_on_a_locked_store() {
    use sqlx::Connection;
    // A store created by a server (WAL), and a fresh SQLite file (rollback journal).
    let server = TestServer::start().await;
    let wal_store = server.store_path.clone();
    let dir = wal_store.parent().unwrap().to_owned();
    server.stop_keep_dir().await;
    let fresh = dir.join("fresh.db");
    for (path, setup) in [
        (
            wal_store.clone(),
            // Exclusive locking mode plus a write: held until the connection closes, and no
            // reader gets in either.
            &[
                "PRAGMA locking_mode = EXCLUSIVE",
                "BEGIN EXCLUSIVE",
                "UPDATE meta SET value = value",
            ][..],
        ),
        (
            fresh.clone(),
            &[
                "CREATE TABLE t (x)",
                "BEGIN EXCLUSIVE",
                "INSERT INTO t VALUES (1)",
            ][..],
        ),
    ] {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut holder = sqlx::sqlite::SqliteConnection::connect(&url).await.unwrap();
        for statement in setup {
            sqlx::raw_sql(statement).execute(&mut holder).await.unwrap();
        }
        let (out, took) = serve_store(format!("sqlite://{}", path.display())).await;
        assert_clear_failure(&out, took, &path.display().to_string(), &["locked"]);
        holder.close().await.unwrap();
    }
    std::fs::remove_dir_all(dir).unwrap();
}

const APPLY_FILE: &str = r#"
apiVersion: tollgate.dev/v1
kind: ServiceAccount
metadata: {name: ci-reader, tenant: acme}
spec:
  description: CI dashboards
  role: viewer
  labelPolicy: '{b="2", a="1"}'
  tokens:
    - name: main
      expiresIn: 30d
---
apiVersion: tollgate.dev/v1
kind: ServiceAccount
metadata: {name: pusher, tenant: acme}
spec:
  role: writer
"#;

/// Lines of a plan that change something.
fn diff_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.starts_with("+ ") || l.starts_with("~ ") || l.starts_with("- "))
        .collect()
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `tollgate apply`: a plan, --dry-run, an idempotent second run, updates, token values only in
/// a 0600 file, prune within the file's tenants, and `get -o yaml` read back as a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_plans_creates_updates_and_round_trips() {
    let server = TestServer::start().await;
    let cli = Cli {
        server: &server,
        token: server.admin_token.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let accounts = write("accounts.yaml", APPLY_FILE);
    let tokens = dir.path().join("tokens.txt");
    let tokens_arg = tokens.to_str().unwrap().to_owned();
    let acme_names = |listed: Value| -> Vec<String> {
        listed["serviceAccounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["tenant"] == "acme")
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let dry = cli.ok(&["apply", "-f", &accounts, "--dry-run"]).await;
    assert_eq!(
        diff_lines(&dry),
        [
            r#"+ serviceaccount acme/ci-reader (role viewer, labelPolicy {a="1", b="2"})"#,
            "+ serviceaccount acme/pusher (role writer)",
            "+ token acme/ci-reader/main (expires in 30d)",
        ],
        "{dry}"
    );
    assert!(dry.contains("dry run: nothing was changed"), "{dry}");
    assert!(
        acme_names(cli.json(&["sa", "list"]).await).is_empty(),
        "a dry run changes nothing"
    );

    let applied = cli
        .ok(&["apply", "-f", &accounts, "--token-output", &tokens_arg])
        .await;
    assert_eq!(diff_lines(&applied), diff_lines(&dry), "the same plan");
    assert!(applied.contains("applied 3 changes"), "{applied}");
    assert_eq!(mode(&tokens), 0o600, "the token file is private");
    let written = std::fs::read_to_string(&tokens).unwrap();
    let (object, value) = written.trim().split_once(' ').unwrap();
    assert_eq!(object, "acme/ci-reader/main");
    assert!(value.starts_with("tgsa_"), "{written}");
    assert!(!applied.contains(value), "the value is only in the file");
    assert_eq!(
        acme_names(cli.json(&["sa", "list"]).await),
        ["ci-reader", "pusher"]
    );

    let again = cli.ok(&["apply", "-f", &accounts]).await;
    assert!(
        diff_lines(&again).is_empty() && again.contains("no changes"),
        "idempotent: {again}"
    );

    // A change shows as `~`; a new token with an existing --token-output file is refused
    // before anything changes.
    let changed = write(
        "changed.yaml",
        &APPLY_FILE
            .replace("CI dashboards", "CI")
            .replace("expiresIn: 30d", "expiresIn: 30d\n    - name: second"),
    );
    let refused = cli
        .fails(&["apply", "-f", &changed, "--token-output", &tokens_arg])
        .await;
    assert!(refused.contains("--overwrite-token-output"), "{refused}");
    let ci = cli
        .json(&["sa", "get", "ci-reader", "--tenant", "acme"])
        .await;
    assert_eq!(ci["description"], "CI dashboards", "nothing was applied");
    let updated = cli
        .ok(&[
            "apply",
            "-f",
            &changed,
            "--token-output",
            &tokens_arg,
            "--overwrite-token-output",
        ])
        .await;
    assert_eq!(
        diff_lines(&updated),
        [
            r#"~ serviceaccount acme/ci-reader description: "CI dashboards" -> "CI""#,
            "+ token acme/ci-reader/second (server default expiry)",
        ],
        "{updated}"
    );
    assert_eq!(mode(&tokens), 0o600);
    let second = std::fs::read_to_string(&tokens).unwrap();
    assert!(
        second.starts_with("acme/ci-reader/second tgsa_"),
        "{second}"
    );

    // get -o yaml | apply: nothing to do, and no token value in the export.
    let exported = cli.ok(&["get", "serviceaccounts", "-o", "yaml"]).await;
    assert!(exported.contains("kind: ServiceAccount"), "{exported}");
    for secret in [
        value,
        second.trim().split(' ').nth(1).unwrap(),
        &server.admin_token,
    ] {
        assert!(!exported.contains(&secret[5..37]), "no token value in get");
    }
    let export = write("export.yaml", &exported);
    let round = cli.ok(&["apply", "-f", &export, "--prune"]).await;
    assert!(
        diff_lines(&round).is_empty() && round.contains("no changes"),
        "get then apply is a no-op: {round}"
    );
    let piped = cli
        .ok_with_stdin(&["apply", "-f", "-", "--prune"], exported.clone())
        .await;
    assert!(piped.contains("no changes"), "get | apply -f -: {piped}");

    // Prune: only the file's tenants lose what the file no longer lists.
    cli.ok(&[
        "sa", "create", "other", "--role", "viewer", "--tenant", "globex",
    ])
    .await;
    let only_ci = write(
        "only-ci.yaml",
        APPLY_FILE
            .replace("CI dashboards", "CI")
            .split("---")
            .next()
            .unwrap(),
    );
    let kept = cli.ok(&["apply", "-f", &only_ci]).await;
    assert!(kept.contains("no changes"), "without --prune: {kept}");
    let pruned = cli.ok(&["apply", "-f", &only_ci, "--prune"]).await;
    assert_eq!(
        diff_lines(&pruned),
        [
            "- token acme/ci-reader/second (id 3)",
            "- serviceaccount acme/pusher (revokes its tokens)",
        ],
        "{pruned}"
    );
    let listed = cli.json(&["sa", "list"]).await;
    assert_eq!(acme_names(listed.clone()), ["ci-reader"]);
    assert!(
        listed["serviceAccounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["tenant"] == "globex"),
        "another tenant is untouched"
    );

    // The caller's own tenant: the all-tenant admin is never pruned, and the plan says so.
    let mine = write(
        "mine.yaml",
        "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: local}\nspec: {role: viewer}\n",
    );
    let own = cli
        .ok(&["apply", "-f", &mine, "--prune", "--dry-run"])
        .await;
    assert_eq!(
        diff_lines(&own),
        ["+ serviceaccount default/local (role viewer)"]
    );
    assert!(own.contains("default/bootstrap-admin: not pruned"), "{own}");
    server.stop().await;
}

/// Files that cannot be applied: one-line errors naming the file, document and field (or the
/// object the API refused, and what was applied before it), exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_bad_files_clearly() {
    let server = TestServer::start().await;
    let cli = Cli {
        server: &server,
        token: server.admin_token.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: a}\nspec: {role: viewer, colour: blue}\n",
            &["bad.yaml, document 1", "unknown field `colour`", "line 4"][..],
        ),
        (
            "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: a\n",
            &["bad.yaml, document 1", "line"][..],
        ),
        (
            "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: a}\nspec: {role: viewer, labelPolicy: '{a='}\n",
            &["bad.yaml, document 1: spec.labelPolicy"][..],
        ),
        // The roles API's own checks: a scope it does not know.
        (
            "apiVersion: tollgate.dev/v1\nkind: Role\nmetadata: {name: r}\nspec: {scopes: [metrics:root]}\n",
            &["role default/r", "metrics:root", "HTTP 400"][..],
        ),
        // The API's own checks apply: an unknown role is refused by the server, named.
        (
            "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: a}\nspec: {role: wizard}\n",
            &[
                "cannot create serviceaccount default/a",
                "nothing was applied",
                "HTTP 4",
            ][..],
        ),
        // It stops at the first error, and says what was applied before it.
        (
            "apiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: ok}\nspec: {role: viewer}\n---\napiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: b}\nspec: {role: wizard}\n---\napiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {name: c}\nspec: {role: viewer}\n",
            &[
                "cannot create serviceaccount default/b",
                "the change above it was applied",
                "the rest were not",
            ][..],
        ),
    ];
    for (text, wants) in cases {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text).unwrap();
        let err = cli.fails(&["apply", "-f", path.to_str().unwrap()]).await;
        for want in wants {
            assert!(err.contains(want), "{err} lacks {want}");
        }
    }
    let listed = cli.json(&["sa", "list"]).await;
    let names: Vec<&str> = listed["serviceAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bootstrap-admin", "ok"],
        "only what came before the first error"
    );
    server.stop().await;
}

/// `tollgate role`: define a role, give it to an account, change it, and delete it once no
/// account holds it; `--read-tenants` on `sa create` and `sa update`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_read_tenants_with_the_cli() {
    let server = TestServer::start().await;
    let cli = Cli {
        server: &server,
        token: server.admin_token.clone(),
    };
    let created = cli
        .ok(&[
            "role",
            "create",
            "collector-manager",
            "--scopes",
            "accounts:read,accounts:write,metrics:write",
            "--description",
            "manages collectors' accounts",
        ])
        .await;
    assert!(
        created.contains("metrics:write,accounts:read,accounts:write"),
        "{created}"
    );
    let listed = cli.ok(&["role", "list"]).await;
    assert!(
        listed.contains("(built in)") && listed.contains("collector-manager"),
        "{listed}"
    );
    cli.ok(&["sa", "create", "otel", "--role", "collector-manager"])
        .await;
    let in_use = cli.fails(&["role", "delete", "collector-manager"]).await;
    assert!(
        in_use.contains("role_in_use") && in_use.contains("HTTP 409"),
        "{in_use}"
    );
    let updated = cli
        .json(&[
            "role",
            "update",
            "collector-manager",
            "--scopes",
            "accounts:read,metrics:write",
        ])
        .await;
    assert_eq!(
        updated["scopes"],
        serde_json::json!(["metrics:write", "accounts:read"])
    );
    let builtin = cli
        .fails(&["role", "update", "viewer", "--description", "x"])
        .await;
    assert!(builtin.contains("builtin_role"), "{builtin}");
    cli.ok(&["sa", "update", "otel", "--role", "writer"]).await;
    cli.ok(&["role", "delete", "collector-manager"]).await;
    let gone = cli.fails(&["role", "get", "collector-manager"]).await;
    assert!(gone.contains("HTTP 404"), "{gone}");

    let monitoring = cli
        .json(&[
            "sa",
            "create",
            "monitoring",
            "--role",
            "viewer",
            "--read-tenants",
            "dev,prod",
        ])
        .await;
    assert_eq!(
        monitoring["readTenants"],
        serde_json::json!(["dev", "prod"])
    );
    let shown = cli.ok(&["sa", "get", "monitoring"]).await;
    assert!(shown.contains("Also reads tenants: dev,prod"), "{shown}");
    let cleared = cli
        .json(&["sa", "update", "monitoring", "--read-tenants", ""])
        .await;
    assert_eq!(cleared["readTenants"], serde_json::json!([]));
    server.stop().await;
}

/// `tollgate apply` with roles against the real roles API: a role and an account holding it are
/// created in order, a second run changes nothing, a scope change is one `~` line, and `get all`
/// writes both back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_manages_roles_with_their_accounts() {
    let server = TestServer::start().await;
    let cli = Cli {
        server: &server,
        token: server.admin_token.clone(),
    };
    let file = |scopes: &str| {
        format!(
            "apiVersion: tollgate.dev/v1\nkind: Role\nmetadata: {{name: collector-manager, tenant: acme}}\nspec: {{description: collectors, scopes: [{scopes}]}}\n---\napiVersion: tollgate.dev/v1\nkind: ServiceAccount\nmetadata: {{name: otel, tenant: acme}}\nspec: {{role: collector-manager, readTenants: [dev], hidePolicyLabels: true, labelPolicy: '{{team=\"a\"}}'}}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.yaml");
    std::fs::write(&path, file("accounts:read, metrics:write")).unwrap();
    let path = path.to_str().unwrap().to_owned();
    let applied = cli.ok(&["apply", "-f", &path]).await;
    let role_line = applied
        .find("role acme/collector-manager")
        .unwrap_or(usize::MAX);
    let account_line = applied.find("serviceaccount acme/otel").unwrap_or(0);
    assert!(role_line < account_line, "roles first: {applied}");
    let otel = cli.json(&["sa", "get", "otel", "--tenant", "acme"]).await;
    assert_eq!(otel["role"], "collector-manager");
    assert_eq!(otel["readTenants"], serde_json::json!(["dev"]));
    assert_eq!(otel["hidePolicyLabels"], true);
    let again = cli.ok(&["apply", "-f", &path]).await;
    assert!(again.contains("no changes"), "{again}");
    std::fs::write(&path, file("accounts:read, accounts:write, metrics:write")).unwrap();
    let changed = cli.ok(&["apply", "-f", &path]).await;
    let changes: Vec<&str> = changed.lines().filter(|l| l.starts_with("~ ")).collect();
    assert_eq!(changes.len(), 1, "{changed}");
    assert!(
        changes[0].contains("role acme/collector-manager"),
        "{changed}"
    );
    let exported = cli
        .ok(&["get", "all", "--tenant", "acme", "-o", "yaml"])
        .await;
    assert!(
        exported.contains("kind: Role") && exported.contains("hidePolicyLabels: true"),
        "{exported}"
    );
    let export = dir.path().join("export.yaml");
    std::fs::write(&export, &exported).unwrap();
    let round = cli.ok(&["apply", "-f", export.to_str().unwrap()]).await;
    assert!(round.contains("no changes"), "{round}");
    server.stop().await;
}
