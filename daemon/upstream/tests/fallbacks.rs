//! Index fallbacks (JSON API → simple index → core metadata → wheel
//! METADATA → sdist PKG-INFO), the index's own per-release
//! `vulnerabilities` as the advisory source, and the synced OSV export —
//! each against the fake index and fake OSV on 127.0.0.1.

use std::time::Duration;

use lex_align_engine::advisory::assess;
use lex_align_engine::evaluate::AdvisoryFacts;
use lex_align_fakes::{
    pypa_snapshot_dir, CoreMetadata, FakeIndex, FakeOsv, FakeProject, FakeRelease,
    FakeVulnerability,
};
use lex_align_upstream::export::{export_path, read_meta, sync_export};
use lex_align_upstream::{AdvisorySourceKind, IndexError, IndexKind, Upstream, UpstreamConfig};

fn upstream(url: String, kind: IndexKind) -> Upstream {
    let mut cfg = UpstreamConfig::default_with(url);
    cfg.index_kind = kind;
    Upstream::new(cfg, None).unwrap()
}

/// `demo` 1.0 (MIT, a wheel and an sdist), 2.0 (Apache-2.0), 3.0 (sdist only, BSD-3-Clause).
fn demo_index() -> FakeIndex {
    let index = FakeIndex::empty();
    index.add_project(
        FakeProject::new("demo")
            .release(FakeRelease::new("1.0").license_expression("MIT"))
            .release(FakeRelease::new("2.0").license_expression("Apache-2.0"))
            .release(
                FakeRelease::new("3.0")
                    .license("BSD-3-Clause")
                    .files(["demo-3.0.tar.gz"]),
            ),
    );
    index
}

async fn license_of(up: &Upstream, version: &str) -> Option<String> {
    let m = up.release_metadata("demo", version).await.unwrap();
    m.license_expression.or(m.license)
}

#[tokio::test]
async fn a_release_the_json_api_lacks_comes_from_the_simple_index() {
    let index = demo_index();
    index.hide_release_json("demo", "1.0");
    let up = upstream(index.json_url(), IndexKind::Json);
    // The project page still lists 1.0; its own page answers 404.
    let p = up.project("demo").await.unwrap();
    assert_eq!(p.releases.len(), 3);
    assert_eq!(license_of(&up, "1.0").await.as_deref(), Some("MIT"));
    assert_eq!(index.requests_to("/pypi/demo/1.0/json"), 1);
    assert_eq!(index.requests_to("/simple/demo/"), 1);
    assert_eq!(
        index.requests_to("/files/demo/demo-1.0-py3-none-any.whl.metadata"),
        1
    );
    // Releases the JSON API has do not touch the simple index.
    assert_eq!(license_of(&up, "2.0").await.as_deref(), Some("Apache-2.0"));
    assert_eq!(index.requests_to("/simple/demo/"), 1);
}

#[tokio::test]
async fn a_mirror_without_a_json_api_is_read_through_its_simple_index() {
    let index = demo_index();
    index.set_json_api(false);
    // Configured as a JSON root (`…/pypi`): every JSON URL answers 404.
    let up = upstream(index.json_url(), IndexKind::Json);
    let p = up.project("demo").await.unwrap();
    let versions: Vec<&str> = p.releases.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(versions, ["1.0", "2.0", "3.0"]);
    assert_eq!(p.latest, None);
    assert_eq!(license_of(&up, "2.0").await.as_deref(), Some("Apache-2.0"));
    // A project neither knows is missing, not unavailable.
    assert_eq!(up.project("nope").await, Err(IndexError::NotFound));

    // The same mirror found as `…/simple` (uv/pip settings): settles on the
    // simple index after one JSON probe.
    let auto = upstream(index.simple_url(), IndexKind::Auto);
    assert_eq!(license_of(&auto, "1.0").await.as_deref(), Some("MIT"));
}

#[tokio::test]
async fn html_pages_with_pep658_markers() {
    let index = demo_index();
    index.set_json_api(false);
    index.set_simple_json(false);
    index.set_core_metadata(CoreMetadata::Pep658);
    let up = upstream(index.simple_url(), IndexKind::Simple);
    assert_eq!(license_of(&up, "1.0").await.as_deref(), Some("MIT"));
    assert_eq!(
        index.requests_to("/files/demo/demo-1.0-py3-none-any.whl.metadata"),
        1
    );
    // PEP 714's marker with a hash value, in JSON.
    let index = demo_index();
    index.set_core_metadata(CoreMetadata::Pep714);
    let up = upstream(index.simple_url(), IndexKind::Simple);
    assert_eq!(license_of(&up, "2.0").await.as_deref(), Some("Apache-2.0"));
    assert_eq!(
        index.requests_to("/files/demo/demo-2.0-py3-none-any.whl.metadata"),
        1
    );
}

#[tokio::test]
async fn without_core_metadata_the_wheel_then_the_sdist_is_read() {
    let index = demo_index();
    index.set_core_metadata(CoreMetadata::Off);
    let up = upstream(index.simple_url(), IndexKind::Simple);
    assert_eq!(license_of(&up, "1.0").await.as_deref(), Some("MIT"));
    assert_eq!(
        index.requests_to("/files/demo/demo-1.0-py3-none-any.whl"),
        1
    );
    assert_eq!(index.requests_to("/files/demo/demo-1.0.tar.gz"), 0);
    assert_eq!(
        index.requests_to("/files/demo/demo-1.0-py3-none-any.whl.metadata"),
        0
    );
    // Only an sdist: its PKG-INFO.
    assert_eq!(
        license_of(&up, "3.0").await.as_deref(),
        Some("BSD-3-Clause")
    );
    assert_eq!(index.requests_to("/files/demo/demo-3.0.tar.gz"), 1);
}

#[tokio::test]
async fn an_index_that_fails_every_fallback_is_unavailable() {
    let index = demo_index();
    index.hide_release_json("demo", "1.0");
    let up = upstream(index.json_url(), IndexKind::Json);
    up.project("demo").await.unwrap();
    index.set_down(true);
    match up.release_metadata("demo", "1.0").await {
        Err(IndexError::Unavailable(msg)) => assert!(msg.contains("503"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn vulnerable_index() -> FakeIndex {
    let index = FakeIndex::empty();
    index.add_project(
        FakeProject::new("fastjson")
            .release(
                FakeRelease::new("1.2.0")
                    .license_expression("MIT")
                    .vulnerability(
                        FakeVulnerability::new("PYSEC-2024-1")
                            .alias("CVE-2024-0001")
                            .fixed_in("1.1.9")
                            .fixed_in("1.3.0"),
                    )
                    .vulnerability(
                        FakeVulnerability::new("PYSEC-2023-9").withdrawn("2024-01-01T00:00:00Z"),
                    ),
            )
            .release(FakeRelease::new("1.3.0").license_expression("MIT")),
    );
    index
}

#[tokio::test]
async fn the_index_lists_advisories_per_release() {
    let index = vulnerable_index();
    let up = upstream(index.json_url(), IndexKind::Json);
    assert!(up.advisories_per_release());
    assert_eq!(up.advisory_source().kind, AdvisorySourceKind::PackageIndex);

    // The latest release's list comes with the project page.
    let p = up.project("fastjson").await.unwrap();
    assert_eq!(p.latest.as_ref().unwrap().0, "1.3.0");
    match up.release_advisories("fastjson", "1.3.0").await {
        AdvisoryFacts::Found(r) => assert!(r.is_empty(), "{r:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(index.requests_to("/pypi/fastjson/1.3.0/json"), 0);

    // An older release: its page, once.
    let records = match up.release_advisories("fastjson", "1.2.0").await {
        AdvisoryFacts::Found(r) => r,
        other => panic!("{other:?}"),
    };
    up.release_advisories("fastjson", "1.2.0").await;
    assert_eq!(index.requests_to("/pypi/fastjson/1.2.0/json"), 1);
    // The withdrawn one is gone; no score; the fix above 1.2.0.
    assert_eq!(records.len(), 1);
    let hits = assess(&records, "fastjson", "1.2.0");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, "PYSEC-2024-1");
    assert_eq!(hits[0].aliases, ["CVE-2024-0001"]);
    assert_eq!(hits[0].score, None);
    assert_eq!(hits[0].fixed_version.as_deref(), Some("1.3.0"));
    assert!(assess(&records, "fastjson", "1.3.0").is_empty());
    // The page also gave the release's metadata.
    let m = up.release_metadata("fastjson", "1.2.0").await.unwrap();
    assert_eq!(m.license_expression.as_deref(), Some("MIT"));
    assert_eq!(index.requests_to("/pypi/fastjson/1.2.0/json"), 1);
}

#[tokio::test]
async fn no_json_page_means_no_advisories_and_says_why() {
    let index = vulnerable_index();
    index.hide_release_json("fastjson", "1.2.0");
    let up = upstream(index.json_url(), IndexKind::Json);
    match up.release_advisories("fastjson", "1.2.0").await {
        AdvisoryFacts::Unavailable(msg) => assert!(msg.contains("no page"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A simple-only index has none at all.
    let simple = upstream(index.simple_url(), IndexKind::Simple);
    assert_eq!(simple.advisory_source().kind, AdvisorySourceKind::None);
    match simple.release_advisories("fastjson", "1.3.0").await {
        AdvisoryFacts::Unavailable(msg) => {
            assert!(msg.contains("no JSON API"), "{msg}");
            assert!(msg.contains("lex-align advisories sync"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_export_is_downloaded_verified_and_used_offline() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let dir = tempfile::tempdir().unwrap();
    let path = export_path(dir.path());
    let mut calls = Vec::new();
    let synced = sync_export(
        &osv.export_url(),
        &path,
        Duration::from_secs(10),
        &mut |d, t| calls.push((d, t)),
    )
    .await
    .unwrap();
    assert_eq!(synced.meta.records, osv.record_count());
    assert!(synced.meta.packages > 100);
    let (done, total) = *calls.last().unwrap();
    assert_eq!(Some(done), total);
    assert_eq!(done, synced.meta.bytes);
    assert_eq!(read_meta(&path).unwrap(), synced.meta);

    // A broken download is refused and the good copy stays.
    osv.set_export_broken(true);
    let err = sync_export(
        &osv.export_url(),
        &path,
        Duration::from_secs(10),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(err.contains("not a usable OSV export"), "{err}");
    assert_eq!(read_meta(&path).unwrap(), synced.meta);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The daemon's configuration: no OSV API, no offline source, the export.
    let mut cfg = UpstreamConfig::default_with("http://127.0.0.1:9/pypi");
    cfg.advisory_export = Some(path.clone());
    cfg.export_resync = Some(Duration::from_secs(86_400));
    let up = Upstream::new(cfg, None).unwrap();
    assert!(!up.advisories_per_release());
    let info = up.advisory_source();
    assert_eq!(info.kind, AdvisorySourceKind::Export);
    assert_eq!(info.records, Some(osv.record_count()));
    assert!(info.age_secs().unwrap() < 60);
    assert!(
        info.summary().contains("re-synced every 24 h"),
        "{}",
        info.summary()
    );
    let want = osv.records_for("jinja2");
    match up.advisories("jinja2").await {
        AdvisoryFacts::Found(r) => assert_eq!(r.len(), want.len()),
        other => panic!("{other:?}"),
    }
    assert_eq!(osv.requests_to("/v1/query"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_picks_up_the_export_and_re_syncs_it() {
    let index = vulnerable_index();
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let dir = tempfile::tempdir().unwrap();
    let path = export_path(dir.path());
    let mut cfg = UpstreamConfig::default_with(index.json_url());
    cfg.index_kind = IndexKind::Json;
    cfg.advisory_export = Some(path.clone());
    cfg.export_url = Some(osv.export_url());
    cfg.export_resync = Some(Duration::from_secs(1));
    let up = Upstream::new(cfg, None).unwrap();
    let task = up.start_export_maintenance().unwrap();
    // Before any sync: the index's own lists, and nothing is downloaded.
    assert!(up.advisories_per_release());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(osv.requests_to("/PyPI/all.zip"), 0);

    // `lex-align advisories sync` elsewhere: the file appears.
    sync_export(
        &osv.export_url(),
        &path,
        Duration::from_secs(10),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let mut waited = 0;
    while up.advisories_per_release() {
        assert!(waited < 100, "the export was never picked up");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(up.advisory_source().kind, AdvisorySourceKind::Export);
    // Due again after a second: downloaded anew.
    let mut waited = 0;
    while osv.requests_to("/PyPI/all.zip") < 2 {
        assert!(waited < 100, "the export was never re-synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    task.abort();
}
