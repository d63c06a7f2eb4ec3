//! Client latency against a warm daemon (in-process, loopback, fake index and
//! the PyPA advisory snapshot): `check --package httpx`, `audit` and
//! `precommit` of 40 direct dependencies, `audit` with a 150-package uv.lock,
//! and `hook pre-tool-use` on an Edit of pyproject.toml and on `uv add`.
//! Each figure is the median (and p90) of whole-process runs of the real binary.
//!
//! Run: cargo bench -p lex-align-client --bench latency
//! With `LEXALIGN_BENCH_HOLD=1` the daemon and project stay up afterwards
//! (paths printed on stderr) for profiling by hand with perf or strace.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PKGS: &[&str] = &[
    "httpx",
    "requests",
    "cryptography",
    "Django",
    "Jinja2",
    "PyYAML",
    "python-dateutil",
    "typing_extensions",
    "charset-normalizer",
    "urllib3",
    "numpy",
    "Flask",
    "Werkzeug",
    "pillow",
    "attrs",
    "certifi",
    "idna",
    "six",
    "packaging",
    "setuptools",
    "pip",
    "wheel",
    "click",
    "MarkupSafe",
    "SQLAlchemy",
    "pydantic",
    "aiohttp",
    "paramiko",
    "tqdm",
    "h11",
    "pycparser",
    "ansible-core",
    "mutagen",
    "wasmtime",
    "psycopg2-binary",
    "PyMuPDF",
    "mysql-connector-python",
    "PyQt5",
    "Django",
    "Flask",
];

fn time(dir: &Path, args: &[&str], stdin: &str, runs: usize) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs + 3 {
        let start = Instant::now();
        let mut child = Command::new(common::bin())
            .args(args)
            .current_dir(dir)
            .env("LEXALIGN_NO_AUTOSTART", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait().unwrap();
        if i >= 3 {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    (samples[runs / 2], samples[runs * 9 / 10])
}

fn report(name: &str, (p50, p90): (Duration, Duration)) {
    println!(
        "{name:<52} median {:>7.2} ms   p90 {:>7.2} ms",
        p50.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3
    );
}

fn main() {
    let d = common::daemon();
    let p = common::project(&d.url, true);
    let root = p.path();
    common::git(root, &["init", "-q"]);
    let mut py = String::from("[project]\nname = \"bench\"\nversion = \"0\"\ndependencies = [\n");
    let mut seen = std::collections::BTreeSet::new();
    for (i, name) in PKGS.iter().enumerate() {
        // 40 entries; repeated names get a distinct specifier.
        if seen.insert(*name) {
            py.push_str(&format!("  \"{name}\",\n"));
        } else {
            py.push_str(&format!("  \"{name}>=0.{i}\",\n"));
        }
    }
    py.push_str("]\n");
    std::fs::write(root.join("pyproject.toml"), &py).unwrap();
    common::git(root, &["add", "pyproject.toml"]);
    let runs = 30;

    report(
        "check --package httpx",
        time(root, &["check", "--package", "httpx"], "", runs),
    );
    report(
        "audit --json (40 direct)",
        time(root, &["audit", "--json"], "", runs),
    );
    report(
        "precommit (40 direct, staged)",
        time(root, &["precommit"], "", runs),
    );
    // Working tree differs from the index: the staged blob comes from git.
    std::fs::write(
        root.join("pyproject.toml"),
        format!("{py}# unstaged edit\n"),
    )
    .unwrap();
    report(
        "precommit (40 direct, partly staged: git cat-file)",
        time(root, &["precommit"], "", runs),
    );
    std::fs::write(root.join("pyproject.toml"), &py).unwrap();

    let edit = format!(
        r#"{{"cwd":"{0}","hook_event_name":"PreToolUse","tool_name":"Edit","tool_input":{{"file_path":"{0}/pyproject.toml","old_string":"  \"httpx\",\n","new_string":"  \"httpx\",\n  \"click>=8\",\n"}}}}"#,
        root.display()
    );
    report(
        "hook pre-tool-use (Edit pyproject.toml)",
        time(root, &["hook", "pre-tool-use"], &edit, runs),
    );
    let uv = format!(
        r#"{{"cwd":"{}","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{{"command":"uv add httpx 'click>=8'"}}}}"#,
        root.display()
    );
    report(
        "hook pre-tool-use (uv add)",
        time(root, &["hook", "pre-tool-use"], &uv, runs),
    );

    // A uv.lock of 150 packages: the 40 direct ones plus 110 transitive
    // entries that reuse real package names at other versions.
    let mut lock = String::from("version = 1\nrequires-python = \">=3.9\"\n\n[[package]]\nname = \"bench\"\nversion = \"0\"\nsource = { editable = \".\" }\ndependencies = [\n");
    let direct: Vec<&str> = seen.iter().copied().collect();
    for n in &direct {
        lock.push_str(&format!("  {{ name = \"{}\" }},\n", n.to_lowercase()));
    }
    lock.push_str("]\n");
    for (i, n) in direct.iter().enumerate() {
        lock.push_str(&format!(
            "\n[[package]]\nname = \"{}\"\nversion = \"1.0.{i}\"\nsource = {{ registry = \"http://127.0.0.1/simple\" }}\ndependencies = [{{ name = \"dep-{i}-a\" }}, {{ name = \"dep-{i}-b\" }}, {{ name = \"dep-{i}-c\" }}]\n",
            n.to_lowercase()
        ));
    }
    let mut count = direct.len();
    for i in 0..direct.len() {
        for s in ["a", "b", "c"] {
            if count >= 150 {
                break;
            }
            lock.push_str(&format!(
                "\n[[package]]\nname = \"dep-{i}-{s}\"\nversion = \"0.1.0\"\nsource = {{ registry = \"http://127.0.0.1/simple\" }}\n"
            ));
            count += 1;
        }
    }
    std::fs::write(root.join("uv.lock"), lock).unwrap();
    common::git(root, &["add", "uv.lock"]);
    report(
        "audit --json (uv.lock, 150 packages)",
        time(root, &["audit", "--json"], "", runs),
    );
    report(
        "precommit (uv.lock, 150 packages)",
        time(root, &["precommit"], "", runs),
    );
    // For profiling by hand (strace, perf) against the same warm daemon.
    if std::env::var_os("LEXALIGN_BENCH_HOLD").is_some() {
        eprintln!("holding: project {} daemon {}", root.display(), d.url);
        std::thread::sleep(Duration::from_secs(3600));
    }
}
