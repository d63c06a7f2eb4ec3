//! Test harness: the real daemon (in-process, real SQLite file, YAML
//! registry) on 127.0.0.1 with the fake index and the PyPA advisory
//! snapshot behind it, and the real `lex-align-client` binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use lex_align_daemon::{build_app, Config};
use lex_align_fakes::{pypa_snapshot_dir, FakeIndex, FakeOsv};
use lex_align_upstream::{IndexKind, IndexSetting};

/// The shared registry, at version 1.0 and with an approved `click`.
pub static REGISTRY_YAML: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    lex_align_fakes::fixtures::registry()
        .version("1.0")
        .package("click", "status: approved\nreason: CLI framework.")
        .yaml()
});

pub struct Daemon {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub index: FakeIndex,
    _osv: FakeOsv,
    _rt: tokio::runtime::Runtime,
}

/// Boots the daemon on 127.0.0.1:0.
pub fn daemon() -> Daemon {
    daemon_with(Vec::new(), |_| {})
}

/// [`daemon`] on an audit log that already holds `rows`, with the last
/// word on its configuration.
pub fn daemon_with(
    rows: Vec<lex_align_store::AuditRow>,
    tweak: impl FnOnce(&mut Config),
) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.yml");
    std::fs::write(&registry, &*REGISTRY_YAML).unwrap();
    let index = FakeIndex::start();
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let mut config = Config::new(dir.path().join("data"));
    config.registry_path = Some(registry);
    config.index = Some(IndexSetting {
        url: index.json_url(),
        kind: IndexKind::Json,
        source: "test".into(),
    });
    config.osv_url = Some(osv.url());
    config.watch_registry = false;
    config.reload_interval = None;
    tweak(&mut config);
    if !rows.is_empty() {
        std::fs::create_dir_all(config.database_path.parent().unwrap()).unwrap();
        let store = lex_align_store::Store::open(&config.database_path).unwrap();
        for row in rows {
            store.append_audit_blocking(row).unwrap();
        }
        store.flush().unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(async {
        let (router, handle) = build_app(config).await.expect("daemon builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _keep = handle;
            lex_align_daemon::serve_on(listener, router).await.unwrap();
        });
        format!("http://{addr}")
    });
    Daemon {
        url,
        dir,
        index,
        _osv: osv,
        _rt: rt,
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lex-align-client")
}

/// Runs the client binary in `dir` with `stdin`.
pub fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    run_with_env(dir, args, stdin, &[])
}

/// [`run`] with more environment for the child.
pub fn run_with_env(dir: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env("LEXALIGN_NO_AUTOSTART", "1")
        .env("LEXALIGN_HOOK_PROGRAM", bin())
        .env_remove("LEXALIGN_AGENT_MODEL")
        .env_remove("LEXALIGN_AGENT_VERSION")
        .env_remove("CLAUDE_ENV_FILE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A project directory with `.lexalign.toml` pointing at `server_url`.
pub fn project(server_url: &str, fail_open: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".lexalign.toml"),
        format!(
            "project = \"svc\"\nserver_url = \"{server_url}\"\nmode = \"single-user\"\nfail_open = {fail_open}\napi_key_env_var = \"LEXALIGN_API_KEY\"\nauto_request_approval = true\n"
        ),
    )
    .unwrap();
    dir
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A recorded event with `${PROJECT}` replaced by the project directory.
pub fn event(name: &str, project: &Path) -> String {
    std::fs::read_to_string(data(name))
        .unwrap()
        .replace("${PROJECT}", &project.to_string_lossy())
}
