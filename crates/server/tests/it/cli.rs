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
    let no = cli
        .json(&["can-i", "post", "/api/v1/write", "--as", "ci-reader"])
        .await;
    assert_eq!(
        (no["allowed"].as_bool(), no["reason"].as_str()),
        (Some(false), Some("missing_scope"))
    );
    let wider = cli
        .json(&[
            "can-i",
            "GET",
            "/api/v1/query",
            "--as",
            "ci-reader",
            "--labels",
            r#"{kube_namespace="default"}"#,
        ])
        .await;
    assert_eq!(wider["reason"], "label_policy_violation");

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
        cli.json(&["token", "list", "ci-reader"])
            .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_bad_configuration_and_stores_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |args: Vec<String>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command.arg("serve").args(args).env_remove("TOLLGATE_STORE");
        async move {
            tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap()
        }
    };
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, vec![b'x'; 8192]).unwrap();
    let cases = [
        (
            vec![format!("--store=sqlite://{}", corrupt.display())],
            "not a database",
        ),
        (vec!["--store=postgres://db".into()], "not supported"),
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
        let out = serve(args.clone()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
