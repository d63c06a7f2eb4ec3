//! Advisory lookups: the fake OSV API serving the real PyPA snapshot, and
//! the offline source loading that same snapshot (directory and zip).

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use lex_align_engine::advisory::OsvRecord;
use lex_align_engine::evaluate::AdvisoryFacts;
use lex_align_fakes::{pypa_snapshot_dir, FakeOsv};
use lex_align_upstream::{OfflineAdvisories, Upstream, UpstreamConfig};

/// Packages with advisories in the snapshot, plus one without any (sniffio).
const PACKAGES: [&str; 6] = [
    "jinja2",
    "django",
    "requests",
    "cryptography",
    "httpx",
    "sniffio",
];

fn api_upstream(osv: &FakeOsv) -> Upstream {
    let mut cfg = UpstreamConfig::default_with("http://127.0.0.1:9/pypi");
    // The original's form: the full `…/v1/query` endpoint.
    cfg.osv_url = Some(osv.query_url());
    Upstream::new(cfg, None).unwrap()
}

fn ids(records: &[OsvRecord]) -> BTreeSet<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn found(f: &AdvisoryFacts) -> &[OsvRecord] {
    match f {
        AdvisoryFacts::Found(r) => r,
        AdvisoryFacts::Unavailable(e) => panic!("advisories unavailable: {e}"),
    }
}

#[tokio::test]
async fn single_queries_return_every_record_of_the_package() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let up = api_upstream(&osv);
    for name in PACKAGES {
        let facts = up.advisories(name).await;
        let got = found(&facts);
        let want = osv.records_for(name);
        assert_eq!(ids(got), ids(&want), "{name}");
        // Full records, not just ids.
        for r in got {
            let w = want.iter().find(|w| w.id == r.id).unwrap();
            assert_eq!(r, w);
        }
    }
    assert!(!found(&up.advisories("Jinja2").await).is_empty());
    assert!(found(&up.advisories("sniffio").await).is_empty());
    assert_eq!(
        osv.requests_to("/v1/query"),
        PACKAGES.len() as u64,
        "repeats served from cache"
    );
}

#[tokio::test]
async fn batch_uses_querybatch_once_then_fetches_records() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let up = api_upstream(&osv);
    let names: Vec<String> = PACKAGES
        .iter()
        .map(|s| s.to_string())
        .chain(["PyYAML".to_owned()])
        .collect();
    let batch = up.advisories_batch(&names).await;
    assert_eq!(batch.len(), names.len());
    assert_eq!(osv.requests_to("/v1/querybatch"), 1);
    assert_eq!(osv.requests_to("/v1/query"), 0);
    let mut all_ids = BTreeSet::new();
    for name in &names {
        let want = osv.records_for(name);
        let got = found(&batch[name]);
        assert_eq!(ids(got), ids(&want), "{name}");
        all_ids.extend(ids(got));
    }
    assert!(all_ids.len() > 10);
    let vuln_requests: u64 = osv
        .request_counts()
        .iter()
        .filter(|(p, _)| p.starts_with("/v1/vulns/"))
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(
        vuln_requests,
        all_ids.len() as u64,
        "each record fetched once"
    );

    // The batch filled the per-package cache.
    let single = up.advisories("django").await;
    assert_eq!(ids(found(&single)), ids(&osv.records_for("django")));
    let again = up.advisories_batch(&names).await;
    assert_eq!(again.len(), names.len());
    assert_eq!(osv.requests_to("/v1/querybatch"), 1);
    assert_eq!(osv.requests_to("/v1/query"), 0);
}

#[tokio::test]
async fn batches_larger_than_one_chunk_are_split() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let up = api_upstream(&osv);
    let mut names: Vec<String> = (0..1500).map(|i| format!("no-such-package-{i}")).collect();
    names.push("jinja2".to_owned());
    let batch = up.advisories_batch(&names).await;
    assert_eq!(osv.requests_to("/v1/querybatch"), 2);
    assert_eq!(
        ids(found(&batch["jinja2"])),
        ids(&osv.records_for("jinja2"))
    );
    assert!(found(&batch["no-such-package-7"]).is_empty());
}

#[tokio::test]
async fn outage_is_reported_and_not_cached() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let up = api_upstream(&osv);
    osv.set_down(true);
    assert!(matches!(
        up.advisories("jinja2").await,
        AdvisoryFacts::Unavailable(_)
    ));
    let batch = up.advisories_batch(&["django".to_owned()]).await;
    assert!(matches!(batch["django"], AdvisoryFacts::Unavailable(_)));
    osv.set_down(false);
    assert_eq!(
        ids(found(&up.advisories("jinja2").await)),
        ids(&osv.records_for("jinja2"))
    );
    let batch = up.advisories_batch(&["django".to_owned()]).await;
    assert_eq!(
        ids(found(&batch["django"])),
        ids(&osv.records_for("django"))
    );
    assert!(up.stats().advisories.errors >= 2);
}

#[tokio::test]
async fn concurrent_cold_advisory_lookups_make_one_request() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    osv.set_latency(Duration::from_millis(200));
    let up = api_upstream(&osv);
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let up = up.clone();
            tokio::spawn(async move { up.advisories("django").await })
        })
        .collect();
    for c in calls {
        assert!(!found(&c.await.unwrap()).is_empty());
    }
    assert_eq!(osv.requests_to("/v1/query"), 1);
}

#[tokio::test]
async fn no_advisory_source_is_unavailable() {
    let mut cfg = UpstreamConfig::default_with("http://127.0.0.1:9/pypi");
    cfg.index_advisories = false;
    let up = Upstream::new(cfg, None).unwrap();
    assert!(!up.advisories_per_release());
    for facts in [
        up.advisories("jinja2").await,
        up.release_advisories("jinja2", "3.1.4").await,
    ] {
        match facts {
            AdvisoryFacts::Unavailable(msg) => {
                assert!(msg.contains("LEXALIGN_OSV_URL"), "{msg}");
                assert!(msg.contains("lex-align advisories sync"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(up.advisory_source().kind.as_str(), "none");
}

#[test]
fn offline_directory_loads_the_whole_snapshot() {
    let dir = pypa_snapshot_dir();
    let offline = OfflineAdvisories::load(&dir).unwrap();
    let files = count_files(&dir);
    assert!(files > 2000, "{files} snapshot files");
    assert_eq!(offline.record_count() + offline.skipped().len(), files);
    assert!(
        offline.skipped().is_empty(),
        "{:?}",
        &offline.skipped()[..offline.skipped().len().min(3)]
    );
    let osv = FakeOsv::start(&dir);
    assert_eq!(offline.record_count(), osv.record_count());
    for name in PACKAGES
        .iter()
        .copied()
        .chain(["PyYAML", "pillow", "urllib3"])
    {
        assert_eq!(
            ids(&offline.for_package(name)),
            ids(&osv.records_for(name)),
            "{name}"
        );
    }
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                count_files(&p)
            } else {
                usize::from(matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                ))
            }
        })
        .sum()
}

#[tokio::test]
async fn offline_source_replaces_the_api() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let mut cfg = UpstreamConfig::default_with("http://127.0.0.1:9/pypi");
    cfg.offline_advisories = Some(pypa_snapshot_dir());
    // Configured too, but the offline source wins and the API stays unused.
    cfg.osv_url = Some(osv.url());
    let up = Upstream::new(cfg, None).unwrap();
    assert!(up.stats().offline_records.unwrap() > 2000);
    let single = up.advisories("Django").await;
    assert_eq!(ids(found(&single)), ids(&osv.records_for("django")));
    let batch = up
        .advisories_batch(&["jinja2".to_owned(), "sniffio".to_owned()])
        .await;
    assert_eq!(
        ids(found(&batch["jinja2"])),
        ids(&osv.records_for("jinja2"))
    );
    assert_eq!(osv.requests(), 0);
}

#[test]
fn offline_zip_export_loads() {
    // An OSV export zip holds one JSON record per entry: build one from the
    // records the fake serves for a few packages.
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("all.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let mut written = BTreeSet::new();
    for name in ["jinja2", "django", "requests"] {
        for r in osv.records_for(name) {
            if written.insert(r.id.clone()) {
                zip.start_file(
                    format!("{}.json", r.id),
                    zip::write::SimpleFileOptions::default(),
                )
                .unwrap();
                zip.write_all(serde_json::to_string(&r).unwrap().as_bytes())
                    .unwrap();
            }
        }
    }
    zip.finish().unwrap();
    let offline = OfflineAdvisories::load(&path).unwrap();
    assert_eq!(offline.record_count(), written.len());
    for name in ["jinja2", "django", "requests"] {
        assert_eq!(offline.for_package(name), {
            let mut v = osv.records_for(name);
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        });
    }
    assert!(offline.for_package("sniffio").is_empty());
}

#[test]
fn offline_source_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let err = OfflineAdvisories::load(&tmp.path().join("missing")).unwrap_err();
    assert!(err.contains("missing"), "{err}");
    let err = OfflineAdvisories::load(tmp.path()).unwrap_err();
    assert!(err.contains("no OSV record"), "{err}");
    std::fs::write(tmp.path().join("all.zip"), b"not a zip").unwrap();
    let err = OfflineAdvisories::load(&tmp.path().join("all.zip")).unwrap_err();
    assert!(err.contains("not a zip"), "{err}");
}
