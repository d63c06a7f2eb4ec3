//! Harness for the end-to-end suite (`tests/e2e/suite`, run as the `e2e`
//! test target of the `lex-align` package): run the real binary with a
//! clean environment, spawn the daemon on a free loopback port, and start
//! the fake upstreams.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use lex_align_fakes::{FakeIndex, FakeOsv};

/// A command line for the binary with a hermetic environment: only PATH,
/// a private HOME (so the machine's pip/uv settings cannot leak in) and the
/// variables the test sets.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>, home: &Path) -> Cmd {
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        );
        env.insert("HOME".to_string(), home.display().to_string());
        env.insert("RUST_LOG".to_string(), "warn".to_string());
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env,
            cwd: None,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Cmd {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn envs(mut self, vars: &[(String, String)]) -> Cmd {
        for (k, v) in vars {
            self.env.insert(k.clone(), v.clone());
        }
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Cmd {
        self.cwd = Some(dir.into());
        self
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.args(&self.args).env_clear().envs(&self.env);
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }

    /// Runs to completion (60 s deadline so a hang fails instead of blocking CI).
    pub async fn output(&self) -> Run {
        let mut c = self.command();
        c.stdin(Stdio::null()).kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), c.output())
            .await
            .unwrap_or_else(|_| panic!("{self:?} did not finish within 60 s"))
            .unwrap_or_else(|e| panic!("cannot run {self:?}: {e}"));
        Run::from(out)
    }

    /// Like [`Cmd::spawn`], with stdin piped too: for processes that speak
    /// a protocol on their stdio (`lex-align lsp`).
    pub fn spawn_stdio(&self) -> tokio::process::Child {
        let mut c = self.command();
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c.spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {self:?}: {e}"))
    }

    pub fn spawn(&self) -> tokio::process::Child {
        let mut c = self.command();
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c.spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {self:?}: {e}"))
    }
}

/// A finished process: exit code and decoded output.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A port nothing listens on right now (the OS picks it; released at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls `<base>/api/v1/health` until it answers 200 or the process exits.
pub async fn wait_healthy(base: &str, child: &mut tokio::process::Child) {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/health");
    for _ in 0..300 {
        if let Ok(r) = client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            if r.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut err).await;
            }
            panic!("daemon exited with {status} before answering {url}:\n{err}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("daemon never answered {url}");
}

/// The daemon as a child process on a free loopback port; killed on drop.
pub struct Daemon {
    pub child: tokio::process::Child,
    pub port: u16,
    pub base: String,
}

impl Daemon {
    /// `cmd` is the `lex-align daemon` command line without the bind settings.
    pub async fn start(cmd: Cmd) -> Daemon {
        Daemon::start_on(cmd, free_port()).await
    }

    /// Like [`Daemon::start`] on a given port (a restart that its clients
    /// must find at the same address).
    pub async fn start_on(cmd: Cmd, port: u16) -> Daemon {
        let cmd = cmd
            .env("BIND_HOST", "127.0.0.1")
            .env("BIND_PORT", port.to_string());
        let mut child = cmd.spawn();
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(&base, &mut child).await;
        Daemon { child, port, base }
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the daemon is running");
        let ok = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} {pid} failed");
    }

    /// SIGKILL, no chance to flush anything.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }
}

/// The fake package index and OSV server (PyPA snapshot) on loopback.
pub struct Upstreams {
    pub index: FakeIndex,
    pub osv: FakeOsv,
}

impl Upstreams {
    /// Both servers run on their own threads, so this is sync.
    pub fn start() -> Upstreams {
        let index = FakeIndex::start();
        let osv = FakeOsv::start(&lex_align_fakes::pypa_snapshot_dir());
        Upstreams { index, osv }
    }

    /// The daemon's upstream settings pointing at the fakes.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LEXALIGN_INDEX_URL".into(), self.index.json_url()),
            ("LEXALIGN_OSV_URL".into(), self.osv.url()),
        ]
    }
}
