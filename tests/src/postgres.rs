//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, `pg_ctl start`
//! on a free port of 127.0.0.1 with its socket in that directory, and `pg_ctl stop -m immediate`
//! when dropped, whether the test passed or not.
//!
//! PostgreSQL refuses to run as root: as root, the directory is handed to the `postgres` user
//! (Debian's package creates it) and every PostgreSQL program runs through `runuser`.
//!
//! Standard library and `tempfile` only: the server crate's own tests include this file too
//! (`#[path]`), so both test suites start clusters the same way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser's password: host connections use SCRAM, as a real deployment would.
pub const PASSWORD: &str = "tollgate-test-secret";

/// A running cluster; stopped (immediate mode) and deleted when dropped.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    /// `fsync` on: commits wait for the disk, as in production (benchmarks); off for tests.
    durable: bool,
}

/// Where the PostgreSQL server programs are: `TOLLGATE_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), or `initdb` on `PATH`.
pub fn pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TOLLGATE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

impl PgCluster {
    /// Starts a new cluster. `Ok(None)` when PostgreSQL is not installed and this is not CI
    /// (the caller skips, loudly); under `CI=true` a missing PostgreSQL is an error.
    pub fn start() -> Result<Option<PgCluster>, String> {
        PgCluster::start_with(false)
    }

    /// [`PgCluster::start`], with commits durable (`fsync=on`) when `durable`.
    pub fn start_with(durable: bool) -> Result<Option<PgCluster>, String> {
        let Some(bin) = pg_bin() else {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                return Err("PostgreSQL is not installed (run `make postgres`); CI=true".into());
            }
            eprintln!(
                "\n*** SKIPPED: PostgreSQL is not installed (run `make postgres`); the \
                 PostgreSQL tests did not run ***\n"
            );
            return Ok(None);
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("tollgate-pg-")
            .tempdir()
            .map_err(|err| format!("temporary directory: {err}"))?;
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).map_err(|err| format!("password file: {err}"))?;
        if as_postgres {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(dir.path()))?;
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            as_postgres,
            durable,
        };
        let data = cluster.data_dir();
        let out = cluster.pg("initdb", |cmd| {
            cmd.arg("-D")
                .arg(&data)
                .args(["-N", "-U", "postgres", "-E", "UTF8"]);
            cmd.args([
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ]);
            cmd.arg(format!("--pwfile={}", pwfile.display()));
        })?;
        check("initdb", out)?;
        cluster.port = free_port()?;
        cluster.start_again()?;
        Ok(Some(cluster))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster's unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A URL of database `db` over TCP, with the password in it.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Creates database `name` (a plain identifier).
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        let socket = self.socket_dir().to_path_buf();
        let port = self.port.to_string();
        let out = self.pg("psql", |cmd| {
            cmd.arg("-h")
                .arg(&socket)
                .args(["-p", &port, "-U", "postgres", "-X", "-q"]);
            cmd.args(["-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c"]);
            cmd.arg(format!("CREATE DATABASE \"{name}\""));
        })?;
        check("psql", out)
    }

    /// Stops the cluster at once (connections are cut; nothing is lost that was committed).
    pub fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        let out = self.pg("pg_ctl", |cmd| {
            cmd.arg("-D")
                .arg(&data)
                .args(["-s", "-m", "immediate", "stop"]);
        })?;
        check("pg_ctl stop", out)
    }

    /// Starts the (stopped) cluster again on the same port; waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync={} -c max_connections=100",
            self.port,
            self.socket_dir().display(),
            if self.durable { "on" } else { "off" }
        );
        let out = self.pg("pg_ctl", |cmd| {
            cmd.arg("-D").arg(&data).arg("-l").arg(&log);
            cmd.args(["-w", "-s", "-t", "30", "-o", &options, "start"]);
        })?;
        check("pg_ctl start", out).map_err(|err| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{err}\n{log}")
        })
    }

    /// Runs PostgreSQL program `name`, as `postgres` when running as root.
    fn pg(&self, name: &str, args: impl FnOnce(&mut Command)) -> Result<Output, String> {
        let program = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&program);
            cmd
        } else {
            Command::new(&program)
        };
        // Never inherit a developer's PG* settings into the test cluster's tools.
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGDATABASE",
            "PGDATA",
        ] {
            cmd.env_remove(var);
        }
        args(&mut cmd);
        cmd.current_dir(self.dir.path());
        cmd.output()
            .map_err(|err| format!("cannot run {}: {err}", program.display()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Already stopped by the test is fine: the error is ignored.
        let _ = self.stop();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|err| format!("free port: {err}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| format!("free port: {err}"))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|err| format!("{cmd:?}: {err}"))?;
    check(&format!("{cmd:?}"), out)
}

fn check(what: &str, out: Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
