//! Advisories of a package: the OSV API (all of a package's records, no
//! version — matching is local — paged; many packages at once through
//! `querybatch` + `vulns/{id}`), or the offline source.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use lex_align_engine::advisory::OsvRecord;
use lex_align_engine::evaluate::AdvisoryFacts;
use reqwest::Url;
use serde_json::{json, Value};

use crate::cache::{Codec, Tier};
use crate::http::{Counters, Endpoint, Http};
use crate::offline::OfflineAdvisories;
use crate::{canonical_name, EndpointStats, PersistentCache, Upstream, UpstreamConfig};

/// `(id, modified)` of each advisory `querybatch` lists for a package.
type Listing = Vec<(String, Option<String>)>;

/// OSV's documented maximum number of queries per `querybatch` call.
const BATCH_CHUNK: usize = 1000;
/// Safety stop for a server that keeps handing out page tokens.
const MAX_PAGES: usize = 100;

pub(crate) struct AdvisorySource {
    http: Http,
    ep: Endpoint,
    base: Option<Url>,
    offline: Option<OfflineAdvisories>,
    lists: Tier<Vec<OsvRecord>>,
    vulns: Tier<OsvRecord>,
    advisory_ttl: Duration,
    /// Records are revalidated by their `modified` stamp, so they can live long.
    vuln_ttl: Duration,
}

/// `OSV_API_URL` in the original's form is the full `…/v1/query` endpoint;
/// we need the root that also serves `/v1/querybatch` and `/v1/vulns/{id}`.
pub fn osv_base(url: &str) -> Result<Url, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let base = ["/v1/query", "/v1/querybatch", "/v1"]
        .iter()
        .find_map(|suffix| trimmed.strip_suffix(suffix))
        .unwrap_or(trimmed);
    let parsed = Url::parse(base).map_err(|e| format!("invalid OSV API URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("OSV API URL {url:?} must be http or https"));
    }
    Ok(parsed)
}

impl AdvisorySource {
    pub(crate) fn new(
        cfg: &UpstreamConfig,
        http: Http,
        persistent: Option<Arc<dyn PersistentCache>>,
    ) -> Result<AdvisorySource, String> {
        let offline = cfg
            .offline_advisories
            .as_deref()
            .map(OfflineAdvisories::load)
            .transpose()?;
        let base = match (&offline, &cfg.osv_url) {
            (None, Some(url)) => Some(osv_base(url)?),
            _ => None,
        };
        Ok(AdvisorySource {
            http,
            ep: Endpoint::new(cfg.concurrency),
            base,
            offline,
            lists: Tier::new(cfg.memory_entries, persistent.clone()),
            vulns: Tier::new(cfg.memory_entries.saturating_mul(4), persistent),
            advisory_ttl: cfg.advisory_ttl,
            vuln_ttl: cfg.release_ttl,
        })
    }

    pub(crate) fn stats(&self) -> EndpointStats {
        self.ep.counters.snapshot()
    }

    pub(crate) fn offline_count(&self) -> Option<usize> {
        self.offline.as_ref().map(OfflineAdvisories::record_count)
    }

    fn url(&self, segments: &[&str]) -> Result<Url, String> {
        let mut url = self.base.clone().ok_or(
            "no advisory source configured (set OSV_API_URL or an offline advisory database)",
        )?;
        url.path_segments_mut()
            .expect("http(s) URLs have path segments")
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn post(&self, url: &Url, body: &Value) -> Result<Value, String> {
        let fetched = self
            .http
            .send(&self.ep, || self.http.post(url.clone()).json(body))
            .await
            .map_err(|e| format!("advisory API: {e}"))?;
        serde_json::from_slice(&fetched.body)
            .map_err(|e| format!("advisory API {url}: response is not JSON: {e}"))
    }

    async fn advisories(&self, canonical: &str) -> AdvisoryFacts {
        if let Some(offline) = &self.offline {
            return AdvisoryFacts::Found(offline.for_package(canonical));
        }
        let result = self
            .lists
            .get_or_fetch(
                &format!("advisories:{canonical}"),
                &self.ep.counters,
                || async {
                    let records = self.query_all(canonical).await?;
                    Ok((records, self.advisory_ttl))
                },
            )
            .await;
        match result {
            Ok(records) => AdvisoryFacts::Found(records),
            Err(e) => AdvisoryFacts::Unavailable(e),
        }
    }

    /// Every record of the package, following `next_page_token`.
    async fn query_all(&self, canonical: &str) -> Result<Vec<OsvRecord>, String> {
        let url = self.url(&["v1", "query"])?;
        let mut records = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut body = json!({"package": {"name": canonical, "ecosystem": "PyPI"}});
            if let Some(t) = &token {
                body["page_token"] = Value::String(t.clone());
            }
            let doc = self.post(&url, &body).await?;
            for v in doc
                .get("vulns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match serde_json::from_value::<OsvRecord>(v.clone()) {
                    // Not stored per id: the list is cached as a whole, and
                    // a hundred persistent writes per lookup would cost more
                    // than the rare batch revalidation they could save.
                    Ok(record) => records.push(record),
                    // A record we cannot read must not pass as "no advisory".
                    Err(e) => {
                        return Err(format!(
                            "advisory API returned an unreadable record for {canonical}: {e}"
                        ))
                    }
                }
            }
            token = page_token(&doc);
            if token.is_none() {
                return Ok(records);
            }
        }
        Err(format!(
            "advisory API: more than {MAX_PAGES} pages for {canonical}"
        ))
    }

    async fn batch(&self, names: &[String]) -> HashMap<String, AdvisoryFacts> {
        let mut out = HashMap::new();
        let canon: Vec<(String, Option<String>)> = names
            .iter()
            .map(|n| (n.clone(), canonical_name(n)))
            .collect();
        if let Some(offline) = &self.offline {
            for (given, _) in canon {
                let facts = AdvisoryFacts::Found(offline.for_package(&given));
                out.insert(given, facts);
            }
            return out;
        }
        // Cached lists first; the rest go upstream in one batched round.
        let mut facts: HashMap<String, AdvisoryFacts> = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for c in canon.iter().filter_map(|(_, c)| c.clone()) {
            if !seen.insert(c.clone()) {
                continue;
            }
            match self.lists.peek(&format!("advisories:{c}")) {
                Some(records) => {
                    Counters::bump(&self.ep.counters.cache_hits);
                    facts.insert(c, AdvisoryFacts::Found(records));
                }
                None => {
                    Counters::bump(&self.ep.counters.cache_misses);
                    missing.push(c);
                }
            }
        }
        for chunk in missing.chunks(BATCH_CHUNK) {
            for (name, f) in self.batch_chunk(chunk).await {
                if matches!(f, AdvisoryFacts::Unavailable(_)) {
                    Counters::bump(&self.ep.counters.errors);
                }
                facts.insert(name, f);
            }
        }
        for (given, c) in canon {
            let f = match c {
                Some(c) => facts
                    .get(&c)
                    .cloned()
                    .unwrap_or_else(|| AdvisoryFacts::Found(Vec::new())),
                // Not a distribution name: nothing can be published under it.
                None => AdvisoryFacts::Found(Vec::new()),
            };
            out.insert(given, f);
        }
        out
    }

    async fn batch_chunk(&self, names: &[String]) -> Vec<(String, AdvisoryFacts)> {
        let url = match self.url(&["v1", "querybatch"]) {
            Ok(u) => u,
            Err(e) => {
                return names
                    .iter()
                    .map(|n| (n.clone(), AdvisoryFacts::Unavailable(e.clone())))
                    .collect()
            }
        };
        let queries: Vec<Value> = names
            .iter()
            .map(|n| json!({"package": {"name": n, "ecosystem": "PyPI"}}))
            .collect();
        let doc = match self.post(&url, &json!({"queries": queries})).await {
            Ok(doc) => doc,
            Err(e) => {
                return names
                    .iter()
                    .map(|n| (n.clone(), AdvisoryFacts::Unavailable(e.clone())))
                    .collect()
            }
        };
        let results = doc
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if results.len() != names.len() {
            let e = format!(
                "advisory API: querybatch answered {} results for {} queries",
                results.len(),
                names.len()
            );
            return names
                .iter()
                .map(|n| (n.clone(), AdvisoryFacts::Unavailable(e.clone())))
                .collect();
        }

        // (package, [(id, modified)]) for the packages answered in full; the
        // ones with more pages take the single-package path, which pages.
        let mut listed: Vec<(String, Listing)> = Vec::new();
        let mut paged: Vec<String> = Vec::new();
        for (name, result) in names.iter().zip(&results) {
            if page_token(result).is_some() {
                paged.push(name.clone());
                continue;
            }
            let ids = result
                .get("vulns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    let id = v.get("id")?.as_str()?.to_owned();
                    let modified = v.get("modified").and_then(Value::as_str).map(str::to_owned);
                    Some((id, modified))
                })
                .collect();
            listed.push((name.clone(), ids));
        }

        // Fetch each record we do not hold in its current revision, once.
        let mut to_fetch: Vec<String> = Vec::new();
        let mut records: HashMap<String, Result<OsvRecord, String>> = HashMap::new();
        for (id, modified) in listed.iter().flat_map(|(_, ids)| ids) {
            if records.contains_key(id) || to_fetch.contains(id) {
                continue;
            }
            match self.vulns.peek(&format!("vuln:{id}")) {
                Some(r) if modified.is_none() || r.modified == *modified => {
                    records.insert(id.clone(), Ok(r));
                }
                _ => to_fetch.push(id.clone()),
            }
        }
        let fetched = join_all(to_fetch.iter().map(|id| self.fetch_vuln(id))).await;
        records.extend(to_fetch.into_iter().zip(fetched));

        let mut out: Vec<(String, AdvisoryFacts)> = Vec::new();
        for (name, ids) in listed {
            let list: Result<Vec<OsvRecord>, String> =
                ids.iter().map(|(id, _)| records[id].clone()).collect();
            let f = match list {
                Ok(list) => {
                    self.lists
                        .put(&format!("advisories:{name}"), &list, self.advisory_ttl);
                    AdvisoryFacts::Found(list)
                }
                Err(e) => AdvisoryFacts::Unavailable(e),
            };
            out.push((name, f));
        }
        let paged_facts = join_all(paged.iter().map(|n| self.advisories(n))).await;
        out.extend(paged.into_iter().zip(paged_facts));
        out
    }

    async fn fetch_vuln(&self, id: &str) -> Result<OsvRecord, String> {
        let url = self.url(&["v1", "vulns", id])?;
        let fetched = self
            .http
            .send(&self.ep, || self.http.get(url.clone()))
            .await
            .map_err(|e| format!("advisory API: {e}"))?;
        let record: OsvRecord = serde_json::from_slice(&fetched.body)
            .map_err(|e| format!("advisory API {url}: unreadable OSV record: {e}"))?;
        self.vulns
            .put(&format!("vuln:{id}"), &record, self.vuln_ttl);
        Ok(record)
    }
}

fn page_token(doc: &Value) -> Option<String> {
    doc.get("next_page_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

impl Upstream {
    /// Every advisory the source holds for the package (all versions; the
    /// engine matches them to the evaluated version). Never cached when
    /// the API fails.
    pub async fn advisories(&self, canonical: &str) -> AdvisoryFacts {
        match canonical_name(canonical) {
            Some(name) => self.inner.advisories.advisories(&name).await,
            None => AdvisoryFacts::Found(Vec::new()),
        }
    }

    /// [`Upstream::advisories`] for many packages in one batched round
    /// (`querybatch`, then the records not already cached). Keys are the
    /// names as given.
    pub async fn advisories_batch(&self, names: &[String]) -> HashMap<String, AdvisoryFacts> {
        self.inner.advisories.batch(names).await
    }
}

impl Codec for OsvRecord {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn from_json(v: Value) -> Option<Self> {
        serde_json::from_value(v).ok()
    }
}

impl Codec for Vec<OsvRecord> {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn from_json(v: Value) -> Option<Self> {
        serde_json::from_value(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osv_base_forms() {
        for url in [
            "http://127.0.0.1:9/v1/query",
            "http://127.0.0.1:9/v1/query/",
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/v1",
        ] {
            assert_eq!(
                osv_base(url).unwrap().as_str(),
                "http://127.0.0.1:9/",
                "{url}"
            );
        }
        assert_eq!(
            osv_base("http://127.0.0.1:9/osv/v1/query")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/osv"
        );
        assert!(osv_base("ftp://x/v1/query").is_err());
    }
}
