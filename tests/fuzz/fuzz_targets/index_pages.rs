//! Package-index answers: the simple-index project page (PEP 691 JSON and
//! PEP 503 HTML, by content type and sniffed) and the JSON-API project
//! document with its `vulnerabilities`. Input: the project's canonical name
//! (first line), then the response body. No panic; releases are unique;
//! every file URL is absolute and takes the `.metadata` suffix; vulnerability
//! records affect the release they were read for.
#![no_main]

use std::str::FromStr;

use lex_align_engine::advisory::affects;
use lex_align_upstream::index::{fuzz, index_vulnerabilities};
use libfuzzer_sys::fuzz_target;
use pep440_rs::Version;
use url::Url;

const CONTENT_TYPES: [Option<&str>; 3] = [
    Some("application/vnd.pypi.simple.v1+json"),
    Some("text/html; charset=utf-8"),
    None,
];

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let (name, body) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (&b"demo"[..], data),
        };
        let Ok(canonical) = std::str::from_utf8(name) else {
            return;
        };
        for ct in CONTENT_TYPES {
            let page_url = format!("https://index.example/simple/{canonical}/");
            let Some((project, files)) = fuzz::simple_page(canonical, &page_url, ct, body) else {
                continue;
            };
            assert_eq!(project.name, canonical);
            let mut seen = std::collections::BTreeSet::new();
            for r in &project.releases {
                assert!(
                    seen.insert(r.version.clone()),
                    "release {} twice",
                    r.version
                );
            }
            for (version, filename, file_url, _) in files {
                let mut url = Url::parse(&file_url)
                    .unwrap_or_else(|e| panic!("URL {file_url:?} of {filename} {version}: {e}"));
                url.set_fragment(None);
                Url::parse(&format!("{url}.metadata"))
                    .unwrap_or_else(|e| panic!("metadata URL of {file_url:?}: {e}"));
            }
        }
        if let Some(p) = fuzz::json_project(canonical, body) {
            assert_eq!(p.name, canonical);
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
                panic!("json_project accepted a body that is not JSON");
            };
            let mut versions: Vec<String> = p.releases.iter().map(|r| r.version.clone()).collect();
            versions.extend(p.latest.iter().map(|(v, _)| v.clone()));
            versions.truncate(6);
            for v in versions {
                let Some(records) = index_vulnerabilities(canonical, &v, &doc) else {
                    continue;
                };
                let Ok(parsed) = Version::from_str(&v) else {
                    continue;
                };
                for r in &records {
                    assert!(
                        affects(r, canonical, &parsed),
                        "record {} read for {canonical} {v} does not affect it",
                        r.id
                    );
                }
            }
        }
    })
});
