//! Index lookups against the fake index on 127.0.0.1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lex_align_engine::evaluate::LicenseMetadata;
use lex_align_fakes::{fixture_projects, FakeIndex, FakeProject, FakeRelease};
use lex_align_upstream::{IndexError, IndexKind, PersistentCache, Upstream, UpstreamConfig};

fn upstream(url: String, kind: IndexKind) -> Upstream {
    let mut cfg = UpstreamConfig::default_with(url);
    cfg.index_kind = kind;
    Upstream::new(cfg, None).unwrap()
}

fn expected_metadata(r: &FakeRelease) -> LicenseMetadata {
    LicenseMetadata {
        license_expression: r.license_expression.clone(),
        license: r.license.clone().map(|l| l.trim().to_owned()),
        classifiers: r.classifiers.clone(),
    }
}

fn fixture(name: &str) -> FakeProject {
    fixture_projects()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("fixture {name} missing"))
}

#[tokio::test]
async fn json_api_and_simple_index_give_the_same_facts() {
    let index = FakeIndex::start();
    let json = upstream(index.json_url(), IndexKind::Json);
    let simple = upstream(index.simple_url(), IndexKind::Simple);
    let projects = fixture_projects();
    assert!(projects.len() > 10);
    for p in &projects {
        let canonical = p.canonical_name();
        let from_json = json.project(&canonical).await.unwrap();
        let from_simple = simple.project(&canonical).await.unwrap();
        assert_eq!(from_json.name, canonical);
        assert_eq!(from_json.releases, from_simple.releases, "{canonical}");
        assert_eq!(from_json.display_name.as_deref(), Some(p.name.as_str()));
        // Only the JSON API hands out the latest release's metadata for free.
        let latest = p.latest().unwrap();
        assert_eq!(
            from_json.latest,
            Some((latest.version.clone(), expected_metadata(latest)))
        );
        assert_eq!(from_simple.latest, None);

        let mut want: Vec<(String, bool)> = p
            .releases
            .iter()
            .map(|r| (r.version.clone(), r.yanked))
            .collect();
        want.sort();
        let mut got: Vec<(String, bool)> = from_json
            .releases
            .iter()
            .map(|r| (r.version.clone(), r.yanked))
            .collect();
        got.sort();
        assert_eq!(got, want, "{canonical}");

        for r in &p.releases {
            let a = json.release_metadata(&canonical, &r.version).await.unwrap();
            let b = simple
                .release_metadata(&canonical, &r.version)
                .await
                .unwrap();
            assert_eq!(
                a,
                expected_metadata(r),
                "{canonical} {} via JSON",
                r.version
            );
            assert_eq!(b, a, "{canonical} {} via simple + METADATA", r.version);
        }
    }
}

#[tokio::test]
async fn releases_are_in_pep440_order_with_yanked_flags() {
    let index = FakeIndex::start();
    let up = upstream(index.json_url(), IndexKind::Json);
    for name in ["httpx", "Django", "PyYAML", "typing_extensions"] {
        let got = up.project(name).await.unwrap();
        let mut want: Vec<(pep440_rs::Version, bool)> = fixture(name)
            .releases
            .iter()
            .map(|r| (r.version.parse().unwrap(), r.yanked))
            .collect();
        want.sort();
        let got: Vec<(pep440_rs::Version, bool)> = got
            .releases
            .iter()
            .map(|r| (r.version.parse().unwrap(), r.yanked))
            .collect();
        assert_eq!(got, want, "{name}");
    }
    // httpx 0.28.0 is yanked in the fixtures; nothing else of it is.
    let httpx = up.project("httpx").await.unwrap();
    let yanked: Vec<&str> = httpx
        .releases
        .iter()
        .filter(|r| r.yanked)
        .map(|r| r.version.as_str())
        .collect();
    assert_eq!(yanked, ["0.28.0"]);
}

#[tokio::test]
async fn non_canonical_names_resolve() {
    let index = FakeIndex::start();
    for (url, kind) in [
        (index.json_url(), IndexKind::Json),
        (index.simple_url(), IndexKind::Simple),
    ] {
        let up = upstream(url, kind);
        for (asked, canonical) in [
            ("PyYAML", "pyyaml"),
            ("python_dateutil", "python-dateutil"),
            ("Typing.Extensions", "typing-extensions"),
            ("jinja2", "jinja2"),
        ] {
            let p = up
                .project(asked)
                .await
                .unwrap_or_else(|e| panic!("{asked} via {kind:?}: {e}"));
            assert_eq!(p.name, canonical);
            assert!(!p.releases.is_empty());
            let v = &p.releases[0].version;
            up.release_metadata(asked, v).await.unwrap();
        }
    }
    // The canonical form is what went over the wire, so no redirect was needed.
    assert_eq!(index.requests_to("/pypi/PyYAML/json"), 0);
    assert_eq!(index.requests_to("/pypi/pyyaml/json"), 1);
}

#[tokio::test]
async fn auto_on_a_simple_url_probes_the_json_api_once() {
    let index = FakeIndex::start();
    let up = upstream(index.simple_url(), IndexKind::Auto);
    let p = up.project("requests").await.unwrap();
    // The JSON API answered, so the latest metadata came along.
    assert!(p.latest.is_some());
    up.project("django").await.unwrap();
    assert_eq!(index.requests_to("/pypi/requests/json"), 1);
    assert_eq!(index.requests_to("/pypi/django/json"), 1);
    assert_eq!(index.requests_to("/simple/requests/"), 0);
    assert_eq!(index.requests_to("/simple/django/"), 0);
}

#[tokio::test]
async fn not_found_is_cached_briefly_and_an_outage_is_not_cached() {
    let index = FakeIndex::start();
    let up = upstream(index.json_url(), IndexKind::Json);
    assert_eq!(
        up.project("no-such-project").await,
        Err(IndexError::NotFound)
    );
    assert_eq!(
        up.project("No_Such.Project").await,
        Err(IndexError::NotFound)
    );
    assert_eq!(
        index.requests_to("/pypi/no-such-project/json"),
        1,
        "404 served from cache"
    );
    assert_eq!(
        up.release_metadata("httpx", "9.9.9").await,
        Err(IndexError::NotFound),
        "unknown release"
    );

    // Something fetched before the outage keeps being served from cache.
    up.project("httpx").await.unwrap();
    index.set_down(true);
    up.project("httpx").await.unwrap();
    let down = up.project("requests").await;
    assert!(
        matches!(down, Err(IndexError::Unavailable(ref m)) if m.contains("503")),
        "{down:?}"
    );
    // Two retries after the first attempt.
    assert_eq!(index.requests_to("/pypi/requests/json"), 3);
    index.set_down(false);
    let back = up.project("requests").await.unwrap();
    assert_eq!(back.name, "requests");
    assert_eq!(
        index.requests_to("/pypi/requests/json"),
        4,
        "the failure was not cached"
    );
    let stats = up.stats().index;
    assert!(
        stats.errors >= 1 && stats.retries >= 2 && stats.cache_hits >= 2,
        "{stats:?}"
    );
}

#[tokio::test]
async fn an_unreachable_index_is_unavailable_not_missing() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = UpstreamConfig::default_with(format!("http://127.0.0.1:{port}/pypi"));
    cfg.retries = 0;
    let up = Upstream::new(cfg, None).unwrap();
    match up.project("httpx").await {
        Err(IndexError::Unavailable(msg)) => assert!(!msg.is_empty()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_cold_lookups_make_one_request() {
    let index = FakeIndex::start();
    index.set_latency(Duration::from_millis(200));
    for (url, kind, path) in [
        (index.json_url(), IndexKind::Json, "/pypi/cryptography/json"),
        (
            index.simple_url(),
            IndexKind::Simple,
            "/simple/cryptography/",
        ),
    ] {
        let up = upstream(url, kind);
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let up = up.clone();
                tokio::spawn(async move { up.project("cryptography").await })
            })
            .collect();
        let mut results = Vec::new();
        for c in calls {
            results.push(c.await.unwrap().unwrap());
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(index.requests_to(path), 1, "{kind:?}");
        let stats = up.stats().index;
        assert_eq!((stats.cache_misses, stats.cache_hits), (1, 19), "{kind:?}");
    }
}

#[derive(Default)]
struct MapStore(Mutex<HashMap<String, Vec<u8>>>);

impl PersistentCache for MapStore {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(key).cloned()
    }
    fn put(&self, key: &str, value: &[u8], _ttl: Duration) {
        self.0
            .lock()
            .unwrap()
            .insert(key.to_owned(), value.to_vec());
    }
}

#[tokio::test]
async fn the_persistent_tier_serves_a_fresh_process() {
    let index = FakeIndex::start();
    let store = Arc::new(MapStore::default());
    let cfg = UpstreamConfig::default_with(index.simple_url());
    let first = Upstream::new(cfg.clone(), Some(store.clone())).unwrap();
    let p = first.project("PyYAML").await.unwrap();
    let v = p.releases.last().unwrap().version.clone();
    let meta = first.release_metadata("pyyaml", &v).await.unwrap();
    assert_eq!(
        first.project("no-such-thing").await,
        Err(IndexError::NotFound)
    );
    let before = index.requests();
    {
        let keys = store.0.lock().unwrap();
        assert!(keys.contains_key("project:pyyaml"), "{:?}", keys.keys());
        assert!(keys.contains_key(&format!("release:pyyaml@{v}")));
    }

    let second = Upstream::new(cfg, Some(store.clone())).unwrap();
    assert_eq!(second.project("pyyaml").await.unwrap(), p);
    assert_eq!(second.release_metadata("PyYAML", &v).await.unwrap(), meta);
    assert_eq!(
        second.project("no-such-thing").await,
        Err(IndexError::NotFound)
    );
    assert_eq!(
        index.requests(),
        before,
        "everything came from the persistent tier"
    );
}

#[tokio::test]
async fn an_sdist_only_release_is_read_from_its_pkg_info() {
    // The fake serves `.metadata` for wheels only, so an sdist-only release
    // publishes no core metadata: its PKG-INFO is read out of the tar.gz.
    let index = FakeIndex::empty();
    let mut r = FakeRelease::new("1.0").license_expression("MIT");
    r.files = Some(vec!["demo-1.0.tar.gz".to_owned()]);
    index.add_project(FakeProject::new("demo").release(r));
    let up = upstream(index.simple_url(), IndexKind::Simple);
    let p = up.project("demo").await.unwrap();
    assert_eq!(p.releases.len(), 1);
    let meta = up.release_metadata("demo", "1.0").await.unwrap();
    assert_eq!(meta.license_expression.as_deref(), Some("MIT"));
    assert_eq!(index.requests_to("/files/demo/demo-1.0.tar.gz"), 1);
    assert_eq!(index.requests_to("/files/demo/demo-1.0.tar.gz.metadata"), 0);
}

#[tokio::test]
async fn no_index_configured_is_unavailable_with_the_variable_to_set() {
    let up = Upstream::new(UpstreamConfig::default_with(""), None).unwrap();
    for result in [
        up.project("httpx").await.map(|_| ()),
        up.release_metadata("httpx", "0.28.1").await.map(|_| ()),
    ] {
        match result {
            Err(IndexError::Unavailable(msg)) => {
                assert!(msg.contains("LEXALIGN_INDEX_URL"), "{msg}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
