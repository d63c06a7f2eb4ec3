//! A peer in front of the upstreams (team mode): asked on a miss, its
//! answers kept in the local tiers, its failures falling back to the
//! upstream itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use lex_align_engine::advisory::OsvRecord;
use lex_align_engine::evaluate::AdvisoryFacts;
use lex_align_engine::license::LicenseMetadata;
use lex_align_fakes::{pypa_snapshot_dir, FakeIndex, FakeOsv};
use lex_align_upstream::peer::{Peer, PeerFuture};
use lex_align_upstream::{IndexError, Project, Upstream, UpstreamConfig};

/// Answers from another `Upstream` (as a team server does), or fails.
struct Relay {
    inner: Upstream,
    down: AtomicBool,
    asked: AtomicU64,
}

impl Relay {
    fn check(&self) -> Result<(), String> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err("peer away".into());
        }
        Ok(())
    }
}

impl Peer for Relay {
    fn project<'a>(&'a self, canonical: &'a str) -> PeerFuture<'a, Option<Project>> {
        Box::pin(async move {
            self.check()?;
            match self.inner.project(canonical).await {
                Ok(p) => Ok(Some(p)),
                Err(IndexError::NotFound) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
    fn release<'a>(&'a self, c: &'a str, v: &'a str) -> PeerFuture<'a, Option<LicenseMetadata>> {
        Box::pin(async move {
            self.check()?;
            match self.inner.release_metadata(c, v).await {
                Ok(m) => Ok(Some(m)),
                Err(IndexError::NotFound) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
    fn release_vulns<'a>(&'a self, c: &'a str, v: &'a str) -> PeerFuture<'a, Vec<OsvRecord>> {
        Box::pin(async move {
            self.check()?;
            self.inner.index_release_vulns(c, v).await
        })
    }
    fn advisories<'a>(&'a self, c: &'a str) -> PeerFuture<'a, Vec<OsvRecord>> {
        Box::pin(async move {
            self.check()?;
            match self.inner.advisories(c).await {
                AdvisoryFacts::Found(r) => Ok(r),
                AdvisoryFacts::Unavailable(e) => Err(e),
            }
        })
    }
}

fn cfg(index: &FakeIndex, osv: &FakeOsv) -> UpstreamConfig {
    let mut c = UpstreamConfig::default_with(index.json_url());
    c.osv_url = Some(osv.url());
    c
}

#[tokio::test]
async fn the_peer_answers_once_and_its_failures_fall_back() {
    // The peer's upstream and ours are different servers: who was asked shows.
    let (team_index, team_osv) = (FakeIndex::start(), FakeOsv::start(&pypa_snapshot_dir()));
    let (own_index, own_osv) = (FakeIndex::start(), FakeOsv::start(&pypa_snapshot_dir()));
    let relay = Arc::new(Relay {
        inner: Upstream::new(cfg(&team_index, &team_osv), None).unwrap(),
        down: AtomicBool::new(false),
        asked: AtomicU64::new(0),
    });
    let up = Upstream::with_peer(cfg(&own_index, &own_osv), None, Some(relay.clone())).unwrap();

    let p = up.project("Django").await.unwrap();
    assert_eq!(p.name, "django");
    let again = up.project("django").await.unwrap();
    assert_eq!(again, p);
    assert_eq!(relay.asked.load(Ordering::SeqCst), 1, "kept locally");
    let latest = p.releases.first().unwrap().version.clone();
    up.release_metadata("django", &latest).await.unwrap();
    assert!(matches!(
        up.advisories("django").await,
        AdvisoryFacts::Found(_)
    ));
    let batch = up
        .advisories_batch(&["django".into(), "jinja2".into()])
        .await;
    assert!(batch.values().all(|f| matches!(f, AdvisoryFacts::Found(_))));
    assert!(matches!(
        up.project("no-such-project-anywhere").await,
        Err(IndexError::NotFound)
    ));
    assert_eq!(own_index.requests(), 0, "{:?}", own_index.request_counts());
    assert_eq!(own_osv.requests(), 0, "{:?}", own_osv.request_counts());
    assert!(up.stats().index.peer >= 3, "{:?}", up.stats());

    // The peer away: our own upstream answers, with the same facts.
    relay.down.store(true, Ordering::SeqCst);
    let flask = up.project("flask").await.unwrap();
    assert_eq!(flask, relay.inner.project("flask").await.unwrap());
    assert!(own_index.requests() > 0);
    assert!(matches!(
        up.advisories("flask").await,
        AdvisoryFacts::Found(_)
    ));
    assert!(own_osv.requests() > 0);
    assert_eq!(up.stats().index.errors, 0, "a peer failure is no error");
}
