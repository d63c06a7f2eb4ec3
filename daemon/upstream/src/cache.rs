//! Two cache tiers with single-flight: a bounded in-memory TTL map in front
//! of the optional [`PersistentCache`]. Only successes (and not-found, which
//! the caller encodes as a value with a short TTL) are stored; failures are
//! shared with the callers waiting on the same flight and then forgotten.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::http::Counters;
use crate::PersistentCache;

/// How a cached value is written to, and read back from, the persistent tier.
pub(crate) trait Codec: Sized {
    fn to_json(&self) -> Value;
    fn from_json(v: Value) -> Option<Self>;
}

type Flight<V> = Arc<OnceCell<Result<V, String>>>;

pub(crate) struct Tier<V> {
    mem: Mutex<Mem<V>>,
    inflight: Mutex<HashMap<String, Flight<V>>>,
    persistent: Option<Arc<dyn PersistentCache>>,
}

struct Mem<V> {
    map: HashMap<String, (Instant, V)>,
    cap: usize,
}

impl<V> Mem<V> {
    fn get(&mut self, key: &str) -> Option<&V> {
        let expired = self
            .map
            .get(key)
            .is_some_and(|(exp, _)| *exp <= Instant::now());
        if expired {
            self.map.remove(key);
            return None;
        }
        self.map.get(key).map(|(_, v)| v)
    }

    fn put(&mut self, key: String, v: V, ttl: Duration) {
        if self.map.len() >= self.cap && !self.map.contains_key(&key) {
            let now = Instant::now();
            self.map.retain(|_, (exp, _)| *exp > now);
            if self.map.len() >= self.cap {
                // Still full of live entries: drop the tenth closest to expiry,
                // so eviction work is amortised over many inserts.
                let mut exps: Vec<Instant> = self.map.values().map(|(e, _)| *e).collect();
                exps.sort_unstable();
                let cut = exps[(exps.len() / 10).min(exps.len() - 1)];
                self.map.retain(|_, (exp, _)| *exp > cut);
            }
        }
        self.map.insert(key, (Instant::now() + ttl, v));
    }
}

impl<V: Clone + Codec> Tier<V> {
    pub(crate) fn new(cap: usize, persistent: Option<Arc<dyn PersistentCache>>) -> Tier<V> {
        Tier {
            mem: Mutex::new(Mem {
                map: HashMap::new(),
                cap: cap.max(1),
            }),
            inflight: Mutex::new(HashMap::new()),
            persistent,
        }
    }

    /// A cached value from either tier, without going upstream.
    pub(crate) fn peek(&self, key: &str) -> Option<V> {
        if let Some(v) = self.mem.lock().unwrap().get(key) {
            return Some(v.clone());
        }
        let (v, remaining) = self.persistent_get(key)?;
        self.mem
            .lock()
            .unwrap()
            .put(key.to_owned(), v.clone(), remaining);
        Some(v)
    }

    /// Stores in both tiers; a zero TTL stores nothing.
    pub(crate) fn put(&self, key: &str, v: &V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        self.mem.lock().unwrap().put(key.to_owned(), v.clone(), ttl);
        if let Some(p) = &self.persistent {
            let exp = unix_now().saturating_add(ttl.as_secs());
            let envelope = json!({"exp": exp, "v": v.to_json()});
            p.put(key, envelope.to_string().as_bytes(), ttl);
        }
    }

    fn persistent_get(&self, key: &str) -> Option<(V, Duration)> {
        let bytes = self.persistent.as_ref()?.get(key)?;
        // The expiry travels inside the value so a store that keeps entries
        // past their TTL cannot serve stale data; a malformed entry is a miss.
        let mut envelope: Value = serde_json::from_slice(&bytes).ok()?;
        let exp = envelope.get("exp")?.as_u64()?;
        let remaining = exp.checked_sub(unix_now()).filter(|r| *r > 0)?;
        let v = V::from_json(envelope.get_mut("v")?.take())?;
        Some((v, Duration::from_secs(remaining)))
    }

    /// The cached value for `key`, or the result of `fetch` (which also gives
    /// the TTL to store it with). Concurrent callers for the same key share
    /// one `fetch`; errors reach all of them and are not stored.
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        key: &str,
        counters: &Counters,
        fetch: F,
    ) -> Result<V, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Duration), String>>,
    {
        if let Some(v) = self.mem.lock().unwrap().get(key) {
            Counters::bump(&counters.cache_hits);
            return Ok(v.clone());
        }
        let flight: Flight<V> = self
            .inflight
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .clone();
        let mut led = false;
        let result = flight
            .get_or_init(|| {
                led = true;
                async move {
                    // A flight that finished between our memory check and
                    // joining may already have filled the cache.
                    if let Some(v) = self.peek(key) {
                        Counters::bump(&counters.cache_hits);
                        return Ok(v);
                    }
                    Counters::bump(&counters.cache_misses);
                    match fetch().await {
                        Ok((v, ttl)) => {
                            self.put(key, &v, ttl);
                            Ok(v)
                        }
                        Err(e) => {
                            Counters::bump(&counters.errors);
                            Err(e)
                        }
                    }
                }
            })
            .await
            .clone();
        if !led {
            // Coalesced onto another caller's flight: no upstream work of ours.
            Counters::bump(&counters.cache_hits);
        }
        let mut inflight = self.inflight.lock().unwrap();
        if inflight.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            inflight.remove(key);
        }
        result
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A looked-up thing, or the index's word that it does not exist (cached
/// briefly so a burst of checks of a typo does not hammer the index).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry<T> {
    Found(T),
    NotFound,
}

impl<T: Codec> Codec for Entry<T> {
    fn to_json(&self) -> Value {
        match self {
            Entry::Found(t) => json!({"found": t.to_json()}),
            Entry::NotFound => json!({"not_found": true}),
        }
    }

    fn from_json(mut v: Value) -> Option<Self> {
        if v.get("not_found").and_then(Value::as_bool) == Some(true) {
            return Some(Entry::NotFound);
        }
        T::from_json(v.get_mut("found")?.take()).map(Entry::Found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    impl Codec for String {
        fn to_json(&self) -> Value {
            Value::String(self.clone())
        }
        fn from_json(v: Value) -> Option<Self> {
            v.as_str().map(str::to_owned)
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
    async fn failures_are_not_cached_and_successes_are() {
        let tier: Tier<String> = Tier::new(10, None);
        let counters = Counters::default();
        let calls = AtomicUsize::new(0);
        let fail = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(String, Duration), _>("down".to_owned())
        };
        assert_eq!(
            tier.get_or_fetch("k", &counters, fail).await,
            Err("down".to_owned())
        );
        assert_eq!(
            tier.get_or_fetch("k", &counters, fail).await,
            Err("down".to_owned())
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let ok = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(("v".to_owned(), Duration::from_secs(60)))
        };
        assert_eq!(tier.get_or_fetch("k", &counters, ok).await.unwrap(), "v");
        assert_eq!(tier.get_or_fetch("k", &counters, ok).await.unwrap(), "v");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(counters.snapshot().errors, 2);
    }

    #[tokio::test]
    async fn persistent_tier_survives_a_new_memory_tier() {
        let store: Arc<dyn PersistentCache> = Arc::new(MapStore::default());
        let counters = Counters::default();
        let first: Tier<String> = Tier::new(10, Some(store.clone()));
        first
            .get_or_fetch("k", &counters, || async {
                Ok(("v".to_owned(), Duration::from_secs(60)))
            })
            .await
            .unwrap();
        let second: Tier<String> = Tier::new(10, Some(store.clone()));
        let got = second
            .get_or_fetch("k", &counters, || async {
                Err::<(String, Duration), _>("must not fetch".to_owned())
            })
            .await;
        assert_eq!(got.unwrap(), "v");
        // An entry whose embedded expiry has passed is ignored.
        store.put("old", br#"{"exp":1,"v":"stale"}"#, Duration::from_secs(1));
        assert_eq!(second.peek("old"), None);
    }

    #[test]
    fn memory_tier_is_bounded() {
        let tier: Tier<String> = Tier::new(20, None);
        for i in 0..100 {
            tier.put(
                &format!("k{i}"),
                &i.to_string(),
                Duration::from_secs(60 + i),
            );
        }
        let len = tier.mem.lock().unwrap().map.len();
        assert!(len <= 20, "{len} entries kept");
        assert_eq!(tier.peek("k99").as_deref(), Some("99"));
    }
}
