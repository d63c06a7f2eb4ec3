//! `lex-align lsp` end to end: the real binary speaking LSP on its stdio,
//! bridged to a real daemon (fake index and OSV upstreams on 127.0.0.1).

mod lsp_daemon;
#[path = "../../daemon/server/tests/lsp_support/mod.rs"]
mod lsp_support;

use std::path::Path;
use std::process::Stdio;

use lex_align_fakes::{pypa_snapshot_dir, FakeIndex, FakeOsv};
use lsp_daemon::Daemon;
use lsp_support::{diag, file_uri, has_code, summary, LspClient, ERROR, WAIT, WARNING};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_lex-align");

/// The shared registry as the editor tests use it: `requests` banned, a
/// stricter CVE threshold.
static REGISTRY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    lex_align_fakes::fixtures::registry()
        .version("1")
        .policy("auto_approve_licenses", "[MIT, Apache-2.0, BSD-3-Clause]")
        .policy("hard_ban_licenses", "[GPL-3.0, AGPL-3.0]")
        .policy("cve_threshold", "0.7")
        .only(&["httpx", "requests"])
        .package(
            "requests",
            "status: banned\nreplacement: httpx\nreason: Sync HTTP is banned in services.",
        )
        .yaml()
});

const PYPROJECT: &str = lex_align_fakes::pyproject!("svc"; "requests>=2.28", "click>=8.1", "no-such-package-lexalign>=1.0");

/// `lex-align lsp` in `cwd` with a clean environment for lex-align.
fn lsp_command(cwd: &Path, envs: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("lsp")
        .args(args)
        .current_dir(cwd)
        .env_remove("LEXALIGN_SERVER_URL")
        .env_remove("LEXALIGN_INDEX_URL")
        .env_remove("LEXALIGN_OSV_URL")
        .env("LEXALIGN_NO_AUTOSTART", "1")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn client_for(child: &mut Child) -> LspClient {
    LspClient::new(child.stdout.take().unwrap(), child.stdin.take().unwrap())
}

async fn exit_of(mut child: Child) -> (std::process::ExitStatus, String) {
    let mut stderr = child.stderr.take().unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("lex-align lsp exits instead of hanging")
        .unwrap();
    let mut text = String::new();
    stderr.read_to_string(&mut text).await.unwrap();
    (status, text)
}

async fn open_and_wait(client: &mut LspClient, project: &Path) -> serde_json::Value {
    let uri = file_uri(&project.join("pyproject.toml"));
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "toml", "version": 1, "text": PYPROJECT}}),
        )
        .await;
    client
        .diagnostics_until(&uri, |p| has_code(p, "not-found"))
        .await
        .pop()
        .expect("a publish")
}

fn expected() -> Vec<(String, u64, u64, u64, u64, u64)> {
    let mut v = vec![
        diag(PYPROJECT, "requests>=2.28", "banned", ERROR),
        diag(PYPROJECT, "click>=8.1", "provisional", WARNING),
        diag(
            PYPROJECT,
            "no-such-package-lexalign>=1.0",
            "not-found",
            ERROR,
        ),
    ];
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lex_align_lsp_bridges_stdio_to_the_daemon() {
    let daemon = Daemon::start(&REGISTRY);
    let project = tempfile::tempdir().unwrap();
    let mut child = lsp_command(
        project.path(),
        &[("LEXALIGN_SERVER_URL", &daemon.base)],
        &["--project", "stdio-proj"],
    )
    .spawn()
    .unwrap();
    let mut client = client_for(&mut child);
    let init = client.initialize().await;
    assert_eq!(init["serverInfo"]["name"], "lex-align", "{init}");

    let p = open_and_wait(&mut client, project.path()).await;
    assert_eq!(summary(&p), expected(), "{p}");

    // The daemon recorded the session's verdicts under the --project name.
    let n = daemon.lsp_rows("stdio-proj", "requests");
    assert!(n >= 1, "an lsp audit row for requests");

    client.shutdown().await;
    let (status, stderr) = exit_of(child).await;
    assert!(status.success(), "exit {status:?}; stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_dies_mid_session_ends_lex_align_lsp_with_a_message() {
    let mut daemon = Daemon::start(&REGISTRY);
    let project = tempfile::tempdir().unwrap();
    let mut child = lsp_command(
        project.path(),
        &[("LEXALIGN_SERVER_URL", &daemon.base)],
        &[],
    )
    .spawn()
    .unwrap();
    let mut client = client_for(&mut child);
    client.initialize().await;
    open_and_wait(&mut client, project.path()).await;

    daemon.kill();
    // The editor is told in its own UI, not only in the server's log.
    let note = client.notification("window/showMessage").await;
    assert_eq!(note["type"], 1, "{note}");
    assert!(
        note["message"]
            .as_str()
            .unwrap()
            .contains("lost the lex-align daemon"),
        "{note}"
    );
    let (status, stderr) = exit_of(child).await;
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("lost the lex-align daemon at http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("Restart the language server"), "{stderr}");
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_daemon_that_is_down_is_reported_not_started() {
    let project = tempfile::tempdir().unwrap();
    // A documentation-range address: nothing answers, and it is not local.
    std::fs::write(
        project.path().join(".lexalign.toml"),
        "project = \"svc\"\nserver_url = \"http://192.0.2.1:1\"\n",
    )
    .unwrap();
    let mut child = lsp_command(project.path(), &[("LEXALIGN_NO_AUTOSTART", "0")], &[])
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let (status, stderr) = exit_of(child).await;
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot reach the lex-align daemon at http://192.0.2.1:1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(from server_url in "),
        "names where the URL came from: {stderr}"
    );
}

/// Stops the daemon a test caused `lex-align lsp` to start, even when the
/// test fails half-way.
struct StartedDaemon<'a>(&'a Path);

impl Drop for StartedDaemon<'_> {
    fn drop(&mut self) {
        if let Some(pid) = started_daemon_pid(self.0) {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}

/// The pid of the daemon `lex-align lsp` started for `data_dir` (found by
/// the environment it was given, so only that process is ever stopped).
fn started_daemon_pid(data_dir: &Path) -> Option<u32> {
    let wanted = format!("LEXALIGN_DATA_DIR={}", data_dir.display());
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.get(1) == Some(&&b"daemon"[..])
            && environ.split(|b| *b == 0).any(|e| e == wanted.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lex_align_lsp_starts_the_local_daemon_when_none_answers() {
    let index = FakeIndex::start();
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let registry = home.path().join("registry.yml");
    std::fs::write(&registry, &*REGISTRY).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let project = tempfile::tempdir().unwrap();
    let envs = [
        ("LEXALIGN_SERVER_URL", url.as_str()),
        ("LEXALIGN_NO_AUTOSTART", "0"),
        ("HOME", home.path().to_str().unwrap()),
        ("LEXALIGN_DATA_DIR", data.to_str().unwrap()),
        ("REGISTRY_PATH", registry.to_str().unwrap()),
        ("PYPI_API_URL", &index.json_url()),
        ("OSV_API_URL", &osv.query_url()),
    ];
    let _stop = StartedDaemon(&data);
    let mut child = lsp_command(project.path(), &envs, &[]).spawn().unwrap();
    let mut client = client_for(&mut child);
    client.initialize().await;
    let p = open_and_wait(&mut client, project.path()).await;
    let pid = started_daemon_pid(&data);
    client.shutdown().await;
    let (status, stderr) = exit_of(child).await;
    assert!(pid.is_some(), "a `lex-align daemon` process for {data:?}");
    assert_eq!(summary(&p), expected(), "{p}");
    assert!(status.success(), "exit {status:?}; stderr: {stderr}");
    assert!(
        stderr.contains(&format!("started the local daemon on 127.0.0.1:{port}")),
        "{stderr}"
    );
    let log = std::fs::read_to_string(data.join("daemon.log")).unwrap();
    assert!(log.contains("listening on"), "{log}");
}
