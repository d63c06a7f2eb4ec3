//! The daemon under test: in process (`build_app` on 127.0.0.1:0) or the
//! release binary as a child process, each with a fresh data directory, a
//! real SQLite file and a registry using every status.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lex_align_daemon::{build_app_serving, AppHandle, Config};
use lex_align_fakes::{FakeIndex, FakeOsv};
use lex_align_upstream::{IndexKind, IndexSetting};

/// Every registry status, with a constraint on each side: the shared
/// test registry plus approved and max-version rules and a laxer licence
/// policy (so the unregistered packages of the load pass the licence gate).
pub fn registry_yaml() -> String {
    registry_yaml_versioned("1.2")
}

/// [`registry_yaml`] with its `version:` set (each registry change of the
/// team part is a new version).
pub fn registry_yaml_versioned(version: &str) -> String {
    lex_align_fakes::fixtures::registry()
        .version(version)
        .policy(
            "auto_approve_licenses",
            "[MIT, Apache-2.0, BSD-3-Clause, BSD-2-Clause, ISC, MPL-2.0, HPND]",
        )
        .policy("unknown_license_policy", "warn")
        .package("flask", "status: approved\nreason: Web framework in use.")
        .package("django", "status: approved")
        .package(
            "jinja2",
            "status: version-constrained\nmax_version: \"3.1.4\"\nreason: Templates not yet checked against 3.1.5.",
        )
        .yaml()
}

/// The warm workload: every registry status, pinned and unpinned, with
/// requirements, unregistered packages the index has (licence and advisory
/// gates), and packages the index does not have.
pub fn mixed_paths() -> Vec<String> {
    let items: &[&str] = &[
        // preferred / approved
        "package=httpx",
        "package=httpx&version=0.28.1",
        "package=Flask",
        "package=flask&version=2.2.4",
        "package=Django&version=5.1.0",
        // deprecated
        "package=requests",
        "package=requests&version=2.31.0",
        // banned
        "package=PyQt5",
        "package=pyqt5&version=5.15.10",
        // version-constrained, both sides, pinned, unpinned, requirement
        "package=cryptography",
        "package=cryptography&version=41.0.7",
        "package=cryptography&version=43.0.1",
        "requirement=cryptography%3E%3D41%2C%3C44",
        "package=Jinja2&version=3.1.5",
        "package=jinja2&version=3.1.2",
        // unregistered, known to the index
        "package=urllib3",
        "package=urllib3&version=2.0.5",
        "package=numpy",
        "package=pillow&version=9.5.0",
        "package=attrs",
        "package=certifi&version=2022.9.24",
        "package=six",
        "package=lxml&version=4.6.2",
        "package=paramiko",
        "package=mutagen",
        "package=PyYAML&version=6.0.1",
        "package=aiohttp&version=3.8.4",
        "package=tqdm",
        "package=sniffio",
        "requirement=setuptools%3E%3D65",
        // unknown to the index
        "package=reqeusts",
        "package=no-such-package-xyz&version=1.0",
    ];
    items
        .iter()
        .map(|q| format!("/api/v1/evaluate?{q}"))
        .collect()
}

enum Kind {
    InProcess {
        task: tokio::task::JoinHandle<()>,
        _handle: AppHandle,
    },
    Child(tokio::process::Child),
}

pub struct Daemon {
    pub base: String,
    pub dir: PathBuf,
    pub db: PathBuf,
    kind: Kind,
    _tmp: tempfile::TempDir,
}

fn layout() -> anyhow::Result<(tempfile::TempDir, PathBuf, PathBuf)> {
    let tmp = tempfile::tempdir()?;
    let registry = tmp.path().join("registry.yml");
    std::fs::write(&registry, registry_yaml())?;
    let db = tmp.path().join("data").join("lexalign.sqlite");
    Ok((tmp, registry, db))
}

impl Daemon {
    pub async fn in_process(index: &FakeIndex, osv: &FakeOsv) -> anyhow::Result<Daemon> {
        Daemon::in_process_with(index, osv, |_| Ok(())).await
    }

    /// [`Daemon::in_process`] with `setup` adjusting the configuration (and
    /// preparing the data directory) before the daemon is built.
    pub async fn in_process_with(
        index: &FakeIndex,
        osv: &FakeOsv,
        setup: impl FnOnce(&mut Config) -> anyhow::Result<()>,
    ) -> anyhow::Result<Daemon> {
        Daemon::in_process_serving(index, osv, setup, None).await
    }

    /// [`Daemon::in_process_with`], serving only `routes` (when given)
    /// behind the daemon's own middleware stack
    /// ([`lex_align_daemon::build_app_serving`]).
    pub async fn in_process_serving(
        index: &FakeIndex,
        osv: &FakeOsv,
        setup: impl FnOnce(&mut Config) -> anyhow::Result<()>,
        routes: Option<axum::Router<lex_align_daemon::http::Shared>>,
    ) -> anyhow::Result<Daemon> {
        let (tmp, registry, db) = layout()?;
        let mut config = Config::new(tmp.path().join("data"));
        config.database_path = db.clone();
        config.registry_path = Some(registry);
        config.index = Some(IndexSetting {
            url: index.json_url(),
            kind: IndexKind::Json,
            source: "bench".into(),
        });
        config.osv_url = Some(osv.url());
        config.watch_registry = false;
        config.reload_interval = None;
        setup(&mut config)?;
        let (router, handle) = build_app_serving(config, routes).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = lex_align_daemon::serve_on(listener, router).await;
        });
        Ok(Daemon {
            base: format!("http://{addr}"),
            dir: tmp.path().to_path_buf(),
            db,
            kind: Kind::InProcess {
                task,
                _handle: handle,
            },
            _tmp: tmp,
        })
    }

    /// `lex-align daemon` configured through the original's environment
    /// variables and lex-align's own.
    pub async fn child(bin: &Path, index: &FakeIndex, osv: &FakeOsv) -> anyhow::Result<Daemon> {
        Daemon::child_with(bin, index, osv, &[], |_| Ok(())).await
    }

    /// [`Daemon::child`] with more environment, and `before` preparing the
    /// database (API keys) before the daemon starts.
    pub async fn child_with(
        bin: &Path,
        index: &FakeIndex,
        osv: &FakeOsv,
        extra_env: &[(String, String)],
        before: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Daemon> {
        let (tmp, registry, db) = layout()?;
        if let Some(parent) = db.parent() {
            std::fs::create_dir_all(parent)?;
        }
        before(&db)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(tmp.path().join("daemon.log"))?;
        // LEXALIGN_BENCH_WRAP runs the daemon under a tool, e.g.
        // "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out".
        let wrap = std::env::var("LEXALIGN_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(tool) => {
                let mut c = tokio::process::Command::new(tool);
                c.args(words).arg(bin);
                c
            }
            None => tokio::process::Command::new(bin),
        };
        let child = cmd
            .arg("daemon")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", tmp.path())
            .env("LEXALIGN_DATA_DIR", tmp.path().join("data"))
            .env("DATABASE_PATH", &db)
            .env("REGISTRY_PATH", &registry)
            .env("LEXALIGN_INDEX_URL", index.json_url())
            .env("LEXALIGN_OSV_URL", osv.url())
            .env("BIND_HOST", "127.0.0.1")
            .env("BIND_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let d = Daemon {
            base: format!("http://127.0.0.1:{port}"),
            dir: tmp.path().to_path_buf(),
            db,
            kind: Kind::Child(child),
            _tmp: tmp,
        };
        // Bounded wait for the port to answer.
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/api/v1/health", d.base)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(d.dir.join("daemon.log")).unwrap_or_default();
                bail!("{} did not answer within 60 s:\n{log}", bin.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let start-up allocations settle before an idle RSS reading.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(d)
    }

    pub fn registry_path(&self) -> PathBuf {
        self.dir.join("registry.yml")
    }

    /// Sends a signal by name (`STOP`, `CONT`) to the child.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("not a child process")?;
        tool("kill", &[format!("-{name}"), pid.to_string()])
    }

    /// Sets the nice value of every thread of the child (threads started
    /// later inherit it from the thread that starts them).
    pub fn renice(&self, nice: i32) -> anyhow::Result<()> {
        let pid = self.pid().context("not a child process")?;
        let mut args = vec!["-n".to_string(), nice.to_string(), "-p".to_string()];
        for e in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            args.push(e?.file_name().to_string_lossy().into_owned());
        }
        tool("renice", &args)
    }

    /// Pins every thread of the child (and the threads it starts later) to
    /// `cpus`, a `taskset -c` list.
    pub fn pin(&self, cpus: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("not a child process")?;
        let args = ["-a", "-p", "-c", cpus].map(String::from);
        tool("taskset", &[&args[..], &[pid.to_string()]].concat())
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Child(c) => c.id(),
            Kind::InProcess { .. } => None,
        }
    }

    /// A `kB` line of `/proc/<pid>/status` of the child.
    pub fn status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    }

    pub fn rss_kb(&self) -> Option<u64> {
        self.status_kb("VmRSS")
    }

    pub async fn metrics(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        Ok(client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?)
    }

    /// Rows in the audit log, read from the file itself. After a crash,
    /// opening the store first files what the daemon left in its inbox
    /// (as the next daemon start would); beside a live daemon, the tables
    /// are read as they are.
    pub fn row_count(&self) -> anyhow::Result<u64> {
        match lex_align_store::Store::open(&self.db) {
            Ok(store) => return Ok(store.row_count()?),
            Err(lex_align_store::StoreError::InUse(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let conn = rusqlite::Connection::open(&self.db)?;
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    pub async fn stop(self) {
        match self.kind {
            Kind::InProcess { task, _handle } => {
                task.abort();
                let _ = task.await;
                // Dropping the handle drains the store's writer thread.
                tokio::task::spawn_blocking(move || drop(_handle))
                    .await
                    .ok();
            }
            Kind::Child(mut c) => {
                if let Some(pid) = c.id() {
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                }
                if tokio::time::timeout(Duration::from_secs(60), c.wait())
                    .await
                    .is_err()
                {
                    let _ = c.kill().await;
                }
            }
        }
    }
}

/// A sample's value from Prometheus text (`name` includes its labels).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Cumulative `(upper bound in seconds, count)` of the daemon's own latency
/// histogram for `GET /api/v1/evaluate` (handler time: no TCP, no wrk).
pub fn evaluate_buckets(text: &str) -> Vec<(f64, u64)> {
    const PREFIX: &str = "lexalign_http_request_duration_seconds_bucket{route=\"evaluate\",le=\"";
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(PREFIX)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Runs `program args…` (stdout dropped); an error unless it succeeds.
fn tool(program: &str, args: &[String]) -> anyhow::Result<()> {
    let ok = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run {program}"))?
        .success();
    if !ok {
        bail!("{program} {} failed", args.join(" "));
    }
    Ok(())
}
