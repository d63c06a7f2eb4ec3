//! Advisories and metadata from the package index alone: a fresh
//! `quickstart` that finds only an index denies a release the index lists
//! a critical vulnerability for; the daemon reads licences through every
//! index fallback (missing JSON page → simple JSON + core metadata, no JSON
//! API → simple HTML + PEP 658 metadata, no core metadata → the wheel's
//! METADATA, sdist only → PKG-INFO); `lex-align advisories sync` brings the
//! OSV export in and the daemon uses it offline.

use std::path::Path;

use lex_align_e2e::{free_port, wait_healthy, Daemon};
use lex_align_fakes::{
    pypa_snapshot_dir, CoreMetadata, FakeIndex, FakeOsv, FakeProject, FakeRelease,
    FakeVulnerability,
};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::{daemon_cmd, lex, STARTER};

/// `fastjsonx` 1.2.0 carries a critical advisory (as the index lists it:
/// no score), fixed in 1.3.0, the latest.
fn vulnerable_project() -> FakeProject {
    FakeProject::new("fastjsonx")
        .release(
            FakeRelease::new("1.2.0")
                .license_expression("MIT")
                .vulnerability(
                    FakeVulnerability::new("PYSEC-2024-301")
                        .alias("CVE-2024-30101")
                        .summary("Remote code execution when parsing untrusted input (critical)")
                        .fixed_in("1.3.0"),
                ),
        )
        .release(FakeRelease::new("1.3.0").license_expression("MIT"))
}

async fn evaluate(base: &str, package: &str, version: Option<&str>) -> Value {
    let mut q = vec![("package", package)];
    if let Some(v) = version {
        q.push(("version", v));
    }
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/evaluate"))
        .query(&q)
        .header("X-LexAlign-Project", "fallbacks")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn health(base: &str) -> Value {
    reqwest::get(format!("{base}/api/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn assert_unscored_denial(v: &Value) {
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["denial_category"], "cve", "{v}");
    assert_eq!(v["cve_ids"], serde_json::json!(["PYSEC-2024-301"]), "{v}");
    assert!(v["max_cvss"].is_null(), "{v}");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("unknown severity"), "{reason}");
    assert!(reason.contains("CVE-2024-30101"), "{reason}");
    assert!(reason.contains("move to `fastjsonx>=1.3.0`"), "{reason}");
    assert_eq!(v["fixed_versions"][0]["fixed"], "1.3.0", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_denies_a_critical_release_with_only_the_index_it_finds() {
    let home = tempfile::tempdir().unwrap();
    let index = FakeIndex::start();
    index.add_project(vulnerable_project());
    let port = free_port();
    // No OSV, no offline data: only pip's index setting, as on a fresh
    // machine (a `…/simple` URL; the JSON API next to it is found).
    let mut child = lex(home.path())
        .args(["quickstart", "--target"])
        .args([home.path().join("data").display().to_string()])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("PIP_INDEX_URL", index.simple_url())
        .spawn();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut child).await;

    assert_unscored_denial(&evaluate(&base, "fastjsonx", Some("1.2.0")).await);
    // The latest release is clean: judged on its licence.
    let v = evaluate(&base, "fastjsonx", None).await;
    assert_eq!(v["verdict"], "PROVISIONALLY_ALLOWED", "{v}");
    assert_eq!(v["resolved_version"], "1.3.0", "{v}");
    assert_eq!(v["license"], "MIT", "{v}");
    assert!(v["upstream_error"].is_null(), "{v}");

    let h = health(&base).await;
    let adv = &h["upstreams"]["advisories"];
    assert_eq!(adv["source"], "package-index", "{h}");
    assert_eq!(adv["unscored"], "deny", "{h}");
    assert!(
        adv["summary"].as_str().unwrap().contains("per-release"),
        "{h}"
    );

    child.start_kill().unwrap();
    let _ = child.wait().await;
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert!(
        out.contains("advisories: the package index's own per-release `vulnerabilities`"),
        "{out}"
    );
}

/// One daemon, only `LEXALIGN_INDEX_URL` (a JSON root), the fake index's
/// switches changed between evaluations so each fallback is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_index_fallback_gives_the_licence() {
    let dir = tempfile::tempdir().unwrap();
    let index = FakeIndex::empty();
    index.add_project(vulnerable_project());
    let two = |name: &str, lic: &str| {
        FakeProject::new(name)
            .release(FakeRelease::new("1.0").license_expression(lic))
            .release(FakeRelease::new("2.0").license_expression("GPL-3.0-only"))
    };
    index.add_project(two("alpha", "MIT"));
    index.add_project(two("beta", "Apache-2.0"));
    index.add_project(two("gamma", "BSD-3-Clause"));
    index.add_project(
        FakeProject::new("delta")
            .release(
                FakeRelease::new("1.0")
                    .license("ISC")
                    .files(["delta-1.0.tar.gz"]),
            )
            .release(FakeRelease::new("2.0").license_expression("GPL-3.0-only")),
    );
    let env = vec![("LEXALIGN_INDEX_URL".to_string(), index.json_url())];
    let d = Daemon::start(daemon_cmd(dir.path(), STARTER, &env)).await;

    // The index's own advisory list denies the critical release.
    assert_unscored_denial(&evaluate(&d.base, "fastjsonx", Some("1.2.0")).await);

    let check = |v: &Value, license: &str| {
        assert_eq!(v["license"], license, "{v}");
        assert_eq!(v["resolved_version"], "1.0", "{v}");
        assert_eq!(v["verdict"], "PROVISIONALLY_ALLOWED", "{v}");
    };

    // 1. The JSON API knows the project but not the version: PEP 691 JSON
    //    page, then the wheel's PEP 714 core metadata.
    index.hide_release_json("alpha", "1.0");
    let v = evaluate(&d.base, "alpha", Some("1.0")).await;
    check(&v, "MIT");
    assert_eq!(
        index.requests_to("/pypi/alpha/1.0/json"),
        2,
        "metadata, then advisories"
    );
    assert_eq!(index.requests_to("/simple/alpha/"), 1);
    assert_eq!(
        index.requests_to("/files/alpha/alpha-1.0-py3-none-any.whl.metadata"),
        1
    );
    // Its advisories cannot be known from the index: the verdict says so.
    let err = v["upstream_error"].as_str().unwrap();
    assert!(err.contains("advisory source unavailable"), "{err}");

    // 2. A mirror with no JSON API and HTML-only simple pages (PEP 503),
    //    PEP 658 `data-dist-info-metadata`.
    index.set_json_api(false);
    index.set_simple_json(false);
    index.set_core_metadata(CoreMetadata::Pep658);
    let v = evaluate(&d.base, "beta", Some("1.0")).await;
    check(&v, "Apache-2.0");
    assert_eq!(index.requests_to("/pypi/beta/json"), 1);
    assert_eq!(
        index.requests_to("/files/beta/beta-1.0-py3-none-any.whl.metadata"),
        1
    );

    // 3. No core metadata at all: the wheel's own METADATA.
    index.set_core_metadata(CoreMetadata::Off);
    let v = evaluate(&d.base, "gamma", Some("1.0")).await;
    check(&v, "BSD-3-Clause");
    assert_eq!(
        index.requests_to("/files/gamma/gamma-1.0-py3-none-any.whl"),
        1
    );
    assert_eq!(index.requests_to("/files/gamma/gamma-1.0.tar.gz"), 0);

    // 4. Only an sdist: its PKG-INFO.
    let v = evaluate(&d.base, "delta", Some("1.0")).await;
    check(&v, "ISC");
    assert_eq!(index.requests_to("/files/delta/delta-1.0.tar.gz"), 1);

    // Unknown to the index through every path: not found, not "unavailable".
    let v = evaluate(&d.base, "no-such-project-zz", None).await;
    assert_eq!(v["denial_category"], "not-found", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisories_sync_brings_the_osv_export_for_offline_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let index = FakeIndex::start();

    let sync = |data: &Path| {
        lex(dir.path())
            .args(["advisories", "sync", "--dir"])
            .args([data.display().to_string()])
            .env("LEXALIGN_ADVISORY_EXPORT_URL", osv.export_url())
    };
    let run = sync(&data).output().await;
    run.expect_code(0);
    assert!(run.stderr.contains(&osv.export_url()), "{}", run.stderr);
    assert!(run.stderr.contains("100%"), "{}", run.stderr);
    let verified = format!("Verified {} advisories", osv.record_count());
    assert!(run.stdout.contains(&verified), "{}", run.stdout);
    assert!(run.stdout.contains("every 24 h"), "{}", run.stdout);
    let export = data.join("advisories/osv-pypi.zip");
    assert!(export.is_file());

    // A broken download fails, names the fix, and keeps the good copy.
    osv.set_export_broken(true);
    let bad = sync(&data).output().await;
    bad.expect_code(1);
    assert!(
        bad.stderr.contains("not a usable OSV export"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("previous export is kept"),
        "{}",
        bad.stderr
    );
    assert!(export.is_file());
    osv.set_export_broken(false);

    let env = vec![
        ("LEXALIGN_INDEX_URL".to_string(), index.json_url()),
        ("LEXALIGN_DATA_DIR".to_string(), data.display().to_string()),
    ];
    let d = Daemon::start(daemon_cmd(dir.path(), STARTER, &env)).await;
    let h = health(&d.base).await;
    let adv = &h["upstreams"]["advisories"];
    assert_eq!(adv["source"], "export", "{h}");
    assert_eq!(adv["records"], osv.record_count(), "{h}");
    assert_eq!(adv["resync_every_hours"], 24.0, "{h}");
    assert!(adv["age_seconds"].as_u64().unwrap() < 600, "{h}");
    assert!(adv["next_sync_at"].is_string(), "{h}");

    let v = evaluate(&d.base, "jinja2", Some("2.10")).await;
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["denial_category"], "cve", "{v}");
    assert!(v["upstream_error"].is_null(), "{v}");
    let v = evaluate(&d.base, "jinja2", Some("3.1.5")).await;
    assert_ne!(v["denial_category"], "cve", "{v}");
    // Matched locally: no advisory request left the machine for either.
    assert_eq!(osv.requests_to("/v1/query"), 0);
    assert_eq!(osv.requests_to("/PyPI/all.zip"), 2);
}
