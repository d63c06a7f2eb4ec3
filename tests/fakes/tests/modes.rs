//! The fake index's real distribution files, its switches (no JSON API, a
//! missing version page, HTML-only simple pages, core-metadata markers) and
//! its `vulnerabilities`; the fake OSV's export zip.

use std::io::Read;

use lex_align_fakes::{
    pypa_snapshot_dir, CoreMetadata, FakeIndex, FakeOsv, FakeProject, FakeRelease,
    FakeVulnerability,
};
use serde_json::Value;

fn demo() -> FakeIndex {
    let index = FakeIndex::empty();
    index.add_project(
        FakeProject::new("Demo_Pkg")
            .release(
                FakeRelease::new("1.0")
                    .license_expression("MIT")
                    .vulnerability(
                        FakeVulnerability::new("PYSEC-2024-7")
                            .alias("CVE-2024-7")
                            .summary("Bad thing")
                            .fixed_in("1.1"),
                    ),
            )
            .release(
                FakeRelease::new("1.1")
                    .license("BSD")
                    .files(["demo_pkg-1.1.zip"]),
            ),
    );
    index
}

async fn get(url: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut rb = reqwest::Client::new().get(url);
    if let Some(a) = accept {
        rb = rb.header("Accept", a);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

const JSON: &str = "application/vnd.pypi.simple.v1+json";

#[tokio::test]
async fn files_are_real_wheels_and_sdists() {
    let index = demo();
    let base = format!("{}/files/demo-pkg", index.url());
    let (status, _, meta) = get(
        &format!("{base}/demo_pkg-1.0-py3-none-any.whl.metadata"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let meta = String::from_utf8(meta).unwrap();
    assert!(meta.contains("License-Expression: MIT\n"), "{meta}");

    let (_, _, wheel) = get(&format!("{base}/demo_pkg-1.0-py3-none-any.whl"), None).await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel)).unwrap();
    let mut inside = String::new();
    zip.by_name("demo_pkg-1.0.dist-info/METADATA")
        .unwrap()
        .read_to_string(&mut inside)
        .unwrap();
    assert_eq!(inside, meta);

    let (_, _, sdist) = get(&format!("{base}/demo_pkg-1.0.tar.gz"), None).await;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&sdist[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(&tar[..21], &b"demo_pkg-1.0/PKG-INFO"[..]);
    assert_eq!(&tar[257..262], b"ustar");
    let text = String::from_utf8_lossy(&tar[512..512 + meta.len()]);
    assert_eq!(text, meta);

    // A legacy zip sdist.
    let (_, _, z) = get(&format!("{base}/demo_pkg-1.1.zip"), None).await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
    let mut inside = String::new();
    zip.by_name("demo_pkg-1.1/PKG-INFO")
        .unwrap()
        .read_to_string(&mut inside)
        .unwrap();
    assert!(inside.contains("License: BSD\n"), "{inside}");
}

#[tokio::test]
async fn vulnerabilities_are_listed_per_release() {
    let index = demo();
    let (_, _, body) = get(&format!("{}/demo-pkg/1.0/json", index.json_url()), None).await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let v = &doc["vulnerabilities"][0];
    assert_eq!(v["id"], "PYSEC-2024-7");
    assert_eq!(v["aliases"][0], "CVE-2024-7");
    assert_eq!(v["fixed_in"][0], "1.1");
    assert_eq!(v["summary"], "Bad thing");
    assert!(v["withdrawn"].is_null());
    // The project page lists the latest release's (none here).
    let (_, _, body) = get(&format!("{}/demo-pkg/json", index.json_url()), None).await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["info"]["version"], "1.1");
    assert_eq!(doc["vulnerabilities"], serde_json::json!([]));
}

#[tokio::test]
async fn switches_turn_parts_of_the_index_off() {
    let index = demo();
    index.hide_release_json("demo-pkg", "1.0");
    let (status, _, _) = get(&format!("{}/demo-pkg/1.0/json", index.json_url()), None).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&format!("{}/demo-pkg/json", index.json_url()), None).await;
    assert_eq!(status, 200);

    index.set_json_api(false);
    let (status, _, _) = get(&format!("{}/demo-pkg/json", index.json_url()), None).await;
    assert_eq!(status, 404);
    index.set_json_api(true);

    let page = format!("{}/demo-pkg/", index.simple_url());
    let (_, ct, _) = get(&page, Some(JSON)).await;
    assert_eq!(ct, JSON);
    index.set_simple_json(false);
    let (_, ct, html) = get(&page, Some(JSON)).await;
    assert_eq!(ct, "application/vnd.pypi.simple.v1+html");
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("data-core-metadata=\"true\""), "{html}");
    index.set_simple_json(true);

    index.set_core_metadata(CoreMetadata::Pep714);
    let (_, _, body) = get(&page, Some(JSON)).await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let wheel = &doc["files"][0];
    assert!(wheel["core-metadata"]["sha256"].is_string(), "{wheel}");
    assert!(wheel.get("data-dist-info-metadata").is_none(), "{wheel}");

    index.set_core_metadata(CoreMetadata::Pep658);
    index.set_simple_json(false);
    let (_, _, html) = get(&page, None).await;
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("data-dist-info-metadata=\"sha256="), "{html}");
    assert!(!html.contains("data-core-metadata"), "{html}");

    index.set_core_metadata(CoreMetadata::Off);
    let (_, _, html) = get(&page, None).await;
    assert!(!String::from_utf8(html).unwrap().contains("metadata="));
    let (status, _, _) = get(
        &format!(
            "{}/files/demo-pkg/demo_pkg-1.0-py3-none-any.whl.metadata",
            index.url()
        ),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_osv_fake_serves_its_export() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let (status, ct, body) = get(&osv.export_url(), None).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/zip");
    let zip = zip::ZipArchive::new(std::io::Cursor::new(body)).unwrap();
    assert_eq!(zip.len(), osv.record_count());
    assert!(zip.file_names().all(|n| n.ends_with(".json")));
    osv.set_export_broken(true);
    let (_, _, body) = get(&osv.export_url(), None).await;
    assert!(zip::ZipArchive::new(std::io::Cursor::new(body)).is_err());
}
