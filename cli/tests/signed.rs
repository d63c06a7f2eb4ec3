//! The real binary with real files: `check --signed -o`, `verify` (valid,
//! tampered payload and signature, wrong key, expired), `audit export` in
//! every format and `audit verify-export` on honest and tampered exports
//! (edited, dropped, reordered rows; cut-off tail; no checkpoint), against
//! a daemon on loopback with the fake upstreams.

use std::path::{Path, PathBuf};

use base64::Engine;
use lex_align_e2e::{Cmd, Daemon, Run, Upstreams};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lex-align");

/// The shared registry without licence bans, CVE threshold or
/// `cryptography` rule.
fn registry() -> String {
    lex_align_fakes::fixtures::registry()
        .without_policy("hard_ban_licenses")
        .without_policy("cve_threshold")
        .without("cryptography")
        .yaml()
}

struct Setup {
    dir: tempfile::TempDir,
    upstreams: Upstreams,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("registry.yml"), registry()).unwrap();
        std::fs::create_dir_all(dir.path().join("proj")).unwrap();
        Setup {
            dir,
            upstreams: Upstreams::start(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn data(&self) -> PathBuf {
        self.path("data")
    }

    /// `lex-align …` with this setup's data directory.
    fn lex(&self) -> Cmd {
        Cmd::new(BIN, self.dir.path())
            .env("LEXALIGN_DATA_DIR", self.data().display().to_string())
            .env(
                "REGISTRY_PATH",
                self.path("registry.yml").display().to_string(),
            )
            .envs(&self.upstreams.env())
    }

    async fn daemon(&self, extra: &[(&str, &str)]) -> Daemon {
        let mut cmd = self.lex().args(["daemon"]);
        for (k, v) in extra {
            cmd = cmd.env(*k, *v);
        }
        let d = Daemon::start(cmd).await;
        std::fs::write(
            self.path("proj/.lexalign.toml"),
            format!("project = \"web\"\nserver_url = \"{}\"\n", d.base),
        )
        .unwrap();
        d
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.lex()
            .args(args.iter().copied())
            .cwd(self.path("proj"))
            .output()
            .await
    }
}

fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn b64e(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn edit_envelope(src: &Path, dst: &Path, f: impl FnOnce(&mut Value)) {
    let mut env: Value = serde_json::from_slice(&std::fs::read(src).unwrap()).unwrap();
    f(&mut env);
    std::fs::write(dst, serde_json::to_vec(&env).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_check_verifies_offline_and_tampering_is_refused() {
    let s = Setup::new();
    let d = s.daemon(&[]).await;
    let verdict = s.path("verdict.json");

    // check --signed -o: the verdict printed as usual, the envelope saved.
    let r = s
        .run(&[
            "check",
            "--package",
            "httpx",
            "--signed",
            "-o",
            &p(&verdict),
        ])
        .await;
    r.expect_code(0);
    let printed: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(printed["verdict"], "ALLOWED");
    let env: Value = serde_json::from_slice(&std::fs::read(&verdict).unwrap()).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.lex-align.verdict+json");

    // A denied package: exit 2 as `check` always does, still signed.
    let denied = s.path("denied.json");
    s.run(&["check", "--package", "pyqt5", "--signed", "-o", &p(&denied)])
        .await
        .expect_code(2);

    // Without -o the envelope itself is printed.
    let r = s.run(&["check", "--package", "httpx", "--signed"]).await;
    r.expect_code(0);
    let printed: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(printed["signatures"].is_array(), "{}", r.stdout);

    // verify with the local daemon's key (same data directory) ...
    let r = s.run(&["verify", &p(&verdict)]).await;
    r.expect_code(0);
    assert!(
        r.stdout.starts_with("Valid: ALLOWED httpx ")
            && r.stdout.contains(" for project web, signed by key "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("reason: Standard async HTTP client."));
    let r = s.run(&["verify", &p(&denied), "--json"]).await;
    r.expect_code(0);
    let j: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (j["valid"].clone(), j["verdict"].clone()),
        (true.into(), "DENIED".into())
    );

    // ... and with the keys document saved as is, elsewhere (no data dir).
    let keys = reqwest::get(format!("{}/api/v1/keys", d.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys_file = s.path("keys.json");
    std::fs::write(&keys_file, &keys).unwrap();
    let elsewhere = Cmd::new(BIN, s.dir.path()).env("LEXALIGN_DATA_DIR", p(&s.path("nowhere")));
    elsewhere
        .clone()
        .args([
            "verify".to_string(),
            p(&verdict),
            "--keys".into(),
            p(&keys_file),
        ])
        .output()
        .await
        .expect_code(0);
    let r = elsewhere
        .clone()
        .args(["verify".to_string(), p(&verdict)])
        .output()
        .await;
    r.expect_code(1);
    assert!(r.stderr.contains("pass --keys FILE"), "{}", r.stderr);

    // Tampered payload: DENIED turned into ALLOWED.
    let forged = s.path("forged.json");
    edit_envelope(&denied, &forged, |e| {
        let payload = String::from_utf8(b64d(e["payload"].as_str().unwrap())).unwrap();
        e["payload"] = b64e(payload.replacen("\"DENIED\"", "\"ALLOWED\"", 1).as_bytes()).into();
    });
    let r = s.run(&["verify", &p(&forged)]).await;
    r.expect_code(1);
    assert!(r.stderr.starts_with("Invalid: "), "{}", r.stderr);
    assert!(r.stderr.contains("does not verify"), "{}", r.stderr);

    // Tampered signature.
    let bad_sig = s.path("bad-sig.json");
    edit_envelope(&verdict, &bad_sig, |e| {
        let mut sig = b64d(e["signatures"][0]["sig"].as_str().unwrap());
        sig[0] ^= 0x80;
        e["signatures"][0]["sig"] = b64e(&sig).into();
    });
    let r = s.run(&["verify", &p(&bad_sig)]).await;
    r.expect_code(1);
    assert!(r.stderr.contains("does not verify"), "{}", r.stderr);

    // Another daemon's keys.
    let other = lex_align_daemon::signing::DaemonKey::from_seed(&[5u8; 32]);
    let other_keys = s.path("other-keys.json");
    std::fs::write(
        &other_keys,
        serde_json::to_vec(&other.keys_document()).unwrap(),
    )
    .unwrap();
    let r = s
        .run(&["verify", &p(&verdict), "--keys", &p(&other_keys)])
        .await;
    r.expect_code(1);
    assert!(
        r.stderr.contains("not among the trusted keys"),
        "{}",
        r.stderr
    );

    // Not an envelope at all.
    let junk = s.path("junk.json");
    std::fs::write(&junk, "{\"verdict\":\"ALLOWED\"}").unwrap();
    let r = s.run(&["verify", &p(&junk)]).await;
    r.expect_code(1);
    assert!(r.stderr.contains("not a DSSE envelope"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_verdict_is_refused_unless_allowed() {
    let s = Setup::new();
    // 0.0003 h ≈ 1 s.
    let _d = s.daemon(&[("LEXALIGN_VERDICT_TTL_HOURS", "0.0003")]).await;
    let verdict = s.path("verdict.json");
    s.run(&[
        "check",
        "--package",
        "httpx",
        "--signed",
        "-o",
        &p(&verdict),
    ])
    .await
    .expect_code(0);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let r = s.run(&["verify", &p(&verdict)]).await;
    r.expect_code(1);
    assert!(r.stderr.contains("expired at"), "{}", r.stderr);
    let r = s.run(&["verify", &p(&verdict), "--allow-expired"]).await;
    r.expect_code(0);
    assert!(r.stdout.contains("EXPIRED at"), "{}", r.stdout);
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, l: &[String]) {
    std::fs::write(path, l.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_verify_and_every_tampering_is_named() {
    let s = Setup::new();
    let mut d = s
        .daemon(&[("LEXALIGN_CHECKPOINT_INTERVAL_MINUTES", "0")])
        .await;
    for pkg in ["httpx", "pyqt5", "requests", "httpx", "pyqt5", "requests"] {
        s.run(&["check", "--package", pkg]).await;
    }
    // Another project's rows.
    let client = reqwest::Client::new();
    for pkg in ["httpx", "pyqt5"] {
        let r = client
            .get(format!("{}/api/v1/evaluate?package={pkg}", d.base))
            .header("X-LexAlign-Project", "api")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // Beside the running daemon (read-only snapshot).
    let exp = s.path("audit.jsonl");
    let r = s.run(&["audit", "export", "-o", &p(&exp)]).await;
    r.expect_code(0);
    assert!(
        r.stderr.contains("Exported 8 rows (seq 1–8)"),
        "{}",
        r.stderr
    );
    let l = lines(&exp);
    assert_eq!(l.len(), 10);
    let r = s.run(&["audit", "verify-export", &p(&exp)]).await;
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("8 rows checked (the whole log), hash chain OK"),
        "{}",
        r.stdout
    );
    // Its head is the log's.
    d.kill9().await;
    let v = s.run(&["audit", "verify"]).await;
    v.expect_code(0);
    let head = v
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .trim_start_matches("head: ")
        .to_string();
    assert!(r.stdout.contains(&head), "{} / {head}", r.stdout);
    // No leftovers of the atomic write.
    let names: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(names.is_empty(), "{names:?}");

    let check = |name: &str, l: Vec<String>| {
        let f = s.path(name);
        write_lines(&f, &l);
        f
    };
    let broken = |r: &Run, line: usize, seq: Option<u64>, why: &str| {
        r.expect_code(1);
        let head = match seq {
            Some(seq) => format!("BROKEN at line {line} (row seq {seq})"),
            None => format!("BROKEN at line {line};"),
        };
        assert!(r.stderr.contains(&head), "want {head}: {}", r.stderr);
        assert!(r.stderr.contains(why), "want {why}: {}", r.stderr);
    };

    // Edited.
    let mut e = l.clone();
    e[3] = e[3].replacen("\"verdict\":\"DENIED\"", "\"verdict\":\"ALLOWED\"", 1);
    assert_ne!(e[3], l[3]);
    let f = check("edited.jsonl", e);
    let r = s.run(&["audit", "verify-export", &p(&f)]).await;
    broken(&r, 4, Some(3), "the row was edited");
    assert!(r.stderr.contains("row id: "), "{}", r.stderr);

    // Dropped.
    let mut e = l.clone();
    e.remove(5);
    let f = check("dropped.jsonl", e);
    broken(
        &s.run(&["audit", "verify-export", &p(&f)]).await,
        6,
        Some(6),
        "expected seq 5, found seq 6",
    );

    // Reordered.
    let mut e = l.clone();
    e.swap(2, 3);
    let f = check("reordered.jsonl", e);
    broken(
        &s.run(&["audit", "verify-export", &p(&f)]).await,
        3,
        Some(3),
        "expected seq 2, found seq 3",
    );

    // Truncated: last row and checkpoint gone.
    let f = check("truncated.jsonl", l[..l.len() - 2].to_vec());
    broken(
        &s.run(&["audit", "verify-export", &p(&f)]).await,
        9,
        None,
        "no signed checkpoint",
    );
    // Only the last row gone.
    let mut e = l.clone();
    e.remove(l.len() - 2);
    let f = check("short.jsonl", e);
    broken(
        &s.run(&["audit", "verify-export", &p(&f)]).await,
        9,
        None,
        "signs 8 rows but the file has 7",
    );

    // A filtered export proves too, and names a dropped row.
    let api = s.path("api.jsonl");
    s.run(&["audit", "export", "--project", "api", "-o", &p(&api)])
        .await
        .expect_code(0);
    let w = lines(&api);
    assert_eq!(w.len(), 4);
    let r = s.run(&["audit", "verify-export", &p(&api)]).await;
    r.expect_code(0);
    assert!(r.stdout.contains("filters: project api"), "{}", r.stdout);
    let mut e = w.clone();
    e.remove(1);
    let f = check("api-dropped.jsonl", e);
    broken(
        &s.run(&["audit", "verify-export", &p(&f)]).await,
        2,
        Some(8),
        "row seq 7 is missing before it",
    );

    // Time filters: nothing before 2000, everything through today.
    let r = s.run(&["audit", "export", "--until", "2000-01-01"]).await;
    r.expect_code(0);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    let r = s.run(&["audit", "export", "--since", "last week"]).await;
    r.expect_code(1);
    assert!(r.stderr.contains("--since"), "{}", r.stderr);

    // CSV and Markdown.
    let r = s.run(&["audit", "export", "--format", "csv"]).await;
    r.expect_code(0);
    let csv: Vec<&str> = r.stdout.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(csv.len(), 9);
    assert!(csv[0].starts_with("seq,id,ts,project,"));
    assert!(csv[0].ends_with(",prev_hash,hash"));
    assert!(csv[8].ends_with(&head), "{}", csv[8]);
    let r = s.run(&["audit", "export", "--format", "md"]).await;
    r.expect_code(0);
    assert!(r.stdout.starts_with("# lex-align audit log export"));
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("| ")).count(), 9);

    // A verifier without the key refuses to guess.
    let r = Cmd::new(BIN, s.dir.path())
        .env("LEXALIGN_DATA_DIR", p(&s.path("nowhere")))
        .args(["audit".to_string(), "verify-export".into(), p(&exp)])
        .output()
        .await;
    r.expect_code(1);
    assert!(r.stderr.contains("--keys"), "{}", r.stderr);
}
