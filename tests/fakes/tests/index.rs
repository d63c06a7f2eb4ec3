//! The fake index serves the JSON API, the PEP 691 simple API and wheel
//! METADATA as an index does, from its fixtures.

use std::collections::HashSet;

use lex_align_engine::advisory::{assess, parse_osv_yaml};
use lex_align_fakes::{fixture_projects, pypa_snapshot_dir, FakeIndex, FakeProject, FakeRelease};
use serde_json::Value;

/// A client that does not follow redirects, to see them.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn simple_json(index: &FakeIndex, name: &str) -> (u16, String, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/{name}/", index.simple_url()))
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.json().await.unwrap())
}

#[test]
fn fixtures_cover_the_license_shapes() {
    let projects = fixture_projects();
    assert!(
        projects.len() >= 45,
        "only {} fixture projects",
        projects.len()
    );
    let names: HashSet<String> = projects.iter().map(|p| p.canonical_name()).collect();
    for must in [
        "httpx",
        "requests",
        "cryptography",
        "pyqt5",
        "django",
        "jinja2",
        "pyyaml",
        "python-dateutil",
        "typing-extensions",
        "charset-normalizer",
        "urllib3",
        "numpy",
        "flask",
    ] {
        assert!(names.contains(must), "fixtures lack {must}");
    }
    let releases = || projects.iter().flat_map(|p| p.releases.iter());
    assert!(releases().any(|r| r.license_expression.as_deref() == Some("MIT")));
    assert!(releases().any(|r| r
        .license_expression
        .as_deref()
        .is_some_and(|e| e.contains(" OR "))));
    assert!(releases().any(|r| r
        .license_expression
        .as_deref()
        .is_some_and(|e| e.contains(" WITH "))));
    assert!(releases().any(|r| r
        .license
        .as_deref()
        .is_some_and(|l| l.contains("Permission is hereby granted"))));
    assert!(releases().any(|r| r.license.is_none()
        && r.license_expression.is_none()
        && r.classifiers
            .iter()
            .any(|c| c == "License :: OSI Approved :: BSD License")));
    assert!(releases().any(|r| r.classifiers.iter().any(|c| c.contains("Affero"))));
    assert!(releases().any(|r| r
        .classifiers
        .iter()
        .any(|c| c.contains("GNU General Public License"))));
    assert!(releases().any(|r| r.license.is_none()
        && r.license_expression.is_none()
        && !r.classifiers.iter().any(|c| c.starts_with("License ::"))));
    assert!(releases().any(|r| r.yanked));
    assert!(releases().any(|r| pep440_is_pre(&r.version)));
    let crypto = projects.iter().find(|p| p.name == "cryptography").unwrap();
    let versions: Vec<&str> = crypto.releases.iter().map(|r| r.version.as_str()).collect();
    for v in ["40.0.0", "41.0.7", "42.0.0", "43.0.1", "44.0.0"] {
        assert!(versions.contains(&v), "cryptography {v}");
    }
}

fn pep440_is_pre(v: &str) -> bool {
    v.parse::<pep440_rs::Version>()
        .is_ok_and(|v| v.any_prerelease())
}

#[test]
fn fixture_versions_meet_real_advisories() {
    // The fixtures pick versions the PyPA snapshot has advisories for, so
    // CVE tests built on them are meaningful.
    let dir = pypa_snapshot_dir();
    let load = |pkg: &str| {
        std::fs::read_dir(dir.join(pkg))
            .unwrap()
            .map(|e| parse_osv_yaml(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap())
            .collect::<Vec<_>>()
    };
    let projects = fixture_projects();
    let has = |name: &str, v: &str| {
        projects
            .iter()
            .any(|p| p.canonical_name() == name && p.releases.iter().any(|r| r.version == v))
    };
    for (pkg, vulnerable, clean) in [
        ("cryptography", "40.0.0", "41.0.7"),
        ("requests", "2.25.1", "2.32.3"),
        ("urllib3", "2.0.5", "2.2.3"),
        ("jinja2", "2.10", "3.1.5"),
        ("pyyaml", "5.3.1", "6.0.2"),
        ("django", "4.2.0", "5.1.4"),
        ("flask", "2.2.4", "3.1.0"),
    ] {
        assert!(
            has(pkg, vulnerable) && has(pkg, clean),
            "{pkg} fixture versions"
        );
        let recs = load(pkg);
        assert!(
            !assess(&recs, pkg, vulnerable).is_empty(),
            "{pkg} {vulnerable} should be affected"
        );
        assert!(
            assess(&recs, pkg, clean).is_empty(),
            "{pkg} {clean} should be clean"
        );
    }
}

#[tokio::test]
async fn json_api_project_and_release() {
    let index = FakeIndex::start();
    let (status, body) = get_json(&format!("{}/pyyaml/json", index.json_url())).await;
    assert_eq!(status, 200);
    assert_eq!(body["info"]["name"], "PyYAML");
    // Latest final, non-yanked release; not the rc.
    assert_eq!(body["info"]["version"], "6.0.2");
    assert_eq!(body["info"]["license"], "MIT");
    assert!(body["info"]["license_expression"].is_null());
    assert!(body["info"]["classifiers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "License :: OSI Approved :: MIT License"));
    let releases = body["releases"].as_object().unwrap();
    assert!(releases.contains_key("6.0.2rc1"));
    assert_eq!(
        releases["6.0.1"][0]["filename"],
        "pyyaml-6.0.1-py3-none-any.whl"
    );
    assert_eq!(releases["6.0.1"][0]["yanked"], false);

    // requests 2.32.0 is yanked; the latest is 2.32.3.
    let (_, body) = get_json(&format!("{}/requests/json", index.json_url())).await;
    assert_eq!(body["info"]["version"], "2.32.3");
    assert_eq!(body["releases"]["2.32.0"][0]["yanked"], true);
    assert!(body["releases"]["2.32.0"][0]["yanked_reason"]
        .as_str()
        .unwrap()
        .contains("CVE-2024-35195"));

    // Per-version: cryptography 44.0.0 has a PEP 639 expression, 42.0.0 only
    // the legacy field.
    let (status, body) = get_json(&format!("{}/cryptography/44.0.0/json", index.json_url())).await;
    assert_eq!(status, 200);
    assert_eq!(body["info"]["version"], "44.0.0");
    assert_eq!(
        body["info"]["license_expression"],
        "Apache-2.0 OR BSD-3-Clause"
    );
    assert!(body.get("releases").is_none());
    assert_eq!(body["urls"].as_array().unwrap().len(), 2);
    let (_, body) = get_json(&format!("{}/cryptography/42.0.0/json", index.json_url())).await;
    assert!(body["info"]["license_expression"].is_null());
    assert_eq!(body["info"]["license"], "Apache-2.0 OR BSD-3-Clause");

    // No licence information at all.
    let (_, body) = get_json(&format!("{}/acme-internal-tools/json", index.json_url())).await;
    assert!(body["info"]["license"].is_null());
    assert!(body["info"]["license_expression"].is_null());

    // Unknown project / version.
    let (status, body) = get_json(&format!("{}/no-such-project-qq/json", index.json_url())).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Not Found");
    let (status, _) = get_json(&format!("{}/requests/9.9.9/json", index.json_url())).await;
    assert_eq!(status, 404);
    assert_eq!(index.requests_to("/pypi/requests/json"), 1);
}

#[tokio::test]
async fn non_canonical_names_redirect() {
    let index = FakeIndex::start();
    let resp = raw_client()
        .get(format!("{}/PyYAML/json", index.json_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("{}/pyyaml/json", index.json_url())
    );
    let resp = raw_client()
        .get(format!(
            "{}/Typing_Extensions/4.12.2/json",
            index.json_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert!(resp.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/pypi/typing-extensions/4.12.2/json"));
    // A redirect-following client lands on the data.
    let (status, body) = get_json(&format!("{}/Django/json", index.json_url())).await;
    assert_eq!(status, 200);
    assert_eq!(body["info"]["name"], "Django");
    assert_eq!(index.requests_to("/pypi/Django/json"), 1);
    assert_eq!(index.requests_to("/pypi/django/json"), 1);
    let resp = raw_client()
        .get(format!("{}/Python_Dateutil/", index.simple_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert!(resp.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/simple/python-dateutil/"));
}

#[tokio::test]
async fn simple_api_json_html_and_metadata() {
    let index = FakeIndex::start();
    let (status, ct, body) = simple_json(&index, "requests").await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/vnd.pypi.simple.v1+json");
    assert_eq!(body["meta"]["api-version"], "1.1");
    assert_eq!(body["name"], "requests");
    let versions: Vec<&str> = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        vec!["2.19.1", "2.25.1", "2.28.2", "2.31.0", "2.32.0", "2.32.3"]
    );
    let files = body["files"].as_array().unwrap();
    let yanked = files
        .iter()
        .find(|f| f["filename"] == "requests-2.32.0-py3-none-any.whl")
        .unwrap();
    assert!(yanked["yanked"]
        .as_str()
        .unwrap()
        .contains("CVE-2024-35195"));
    let wheel = files
        .iter()
        .find(|f| f["filename"] == "requests-2.32.3-py3-none-any.whl")
        .unwrap();
    assert_eq!(wheel["yanked"], false);
    assert_eq!(wheel["core-metadata"], true);
    let sdist = files
        .iter()
        .find(|f| f["filename"] == "requests-2.32.3.tar.gz")
        .unwrap();
    assert_eq!(sdist["core-metadata"], false);

    // The file itself hashes to the listed digest.
    let url = wheel["url"].as_str().unwrap();
    let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        wheel["hashes"]["sha256"].as_str().unwrap()
    );

    // METADATA of the wheel: RFC 822 with the legacy license field.
    let meta = reqwest::get(format!("{url}.metadata")).await.unwrap();
    assert_eq!(meta.status(), 200);
    let text = meta.text().await.unwrap();
    assert!(text.starts_with("Metadata-Version: 2.1\nName: requests\nVersion: 2.32.3\n"));
    assert!(text.contains("\nLicense: Apache 2.0\n"));
    assert!(text.contains("\nClassifier: License :: OSI Approved :: Apache Software License\n"));
    assert!(!text.contains("License-Expression"));

    // PEP 639 metadata and a multi-line licence text.
    let (_, _, body) = simple_json(&index, "cryptography").await;
    let url = body["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["filename"] == "cryptography-44.0.0-py3-none-any.whl")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = reqwest::get(format!("{url}.metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("Metadata-Version: 2.4\n"));
    assert!(text.contains("\nLicense-Expression: Apache-2.0 OR BSD-3-Clause\n"));
    let (_, _, body) = simple_json(&index, "h11").await;
    let url = body["files"][0]["url"].as_str().unwrap().to_owned();
    let text = reqwest::get(format!("{url}.metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\nLicense: The MIT License (MIT)\n        \n        Copyright"));
    assert!(text.contains("\n        Permission is hereby granted, free of charge"));

    // No metadata for an sdist; HTML by default; 404 for unknown.
    let resp = reqwest::get(format!(
        "{}/files/requests/requests-2.32.3.tar.gz.metadata",
        index.url()
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = reqwest::get(format!("{}/requests/", index.simple_url()))
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.pypi.simple.v1+html"
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("requests-2.32.0-py3-none-any.whl</a>"));
    assert!(html.contains("data-yanked=\"Yanked due to conflicts"));
    let (status, _, body) = simple_json(&index, "no-such-project-qq").await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Not Found");
}

#[test]
fn runtime_projects_outage_and_counters_from_sync_code() {
    let index = FakeIndex::empty();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (status, _) = get_json(&format!("{}/left-padx/json", index.json_url())).await;
        assert_eq!(status, 404);
        index.add_project(
            FakeProject::new("Left_Padx")
                .release(FakeRelease::new("0.9.0").license("WTFPL"))
                .release(
                    FakeRelease::new("1.0.0")
                        .license_expression("MIT")
                        .classifier("Framework :: Pytest"),
                )
                .release(FakeRelease::new("1.1.0").yanked(Some("broken build"))),
        );
        let (status, body) = get_json(&format!("{}/left-padx/json", index.json_url())).await;
        assert_eq!(status, 200);
        assert_eq!(body["info"]["name"], "Left_Padx");
        assert_eq!(body["info"]["version"], "1.0.0");
        assert_eq!(body["info"]["license_expression"], "MIT");
        assert_eq!(
            body["releases"]["1.1.0"][0]["filename"],
            "left_padx-1.1.0-py3-none-any.whl"
        );

        index.set_down(true);
        let resp = reqwest::get(format!("{}/left-padx/json", index.json_url()))
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        index.set_down(false);
        assert_eq!(index.requests_to("/pypi/left-padx/json"), 3);
        assert_eq!(index.requests(), 3);
    });
    assert!(index.remove_project("LEFT.PADX"));
    assert!(index.project("left-padx").is_none());
    index.reset_counters();
    assert!(index.request_counts().is_empty());
}
