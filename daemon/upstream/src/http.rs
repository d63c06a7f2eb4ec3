//! The shared HTTP client: one connection pool, a semaphore per upstream,
//! retries with exponential backoff and jitter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode, Url};
use tokio::sync::Semaphore;

use crate::{EndpointStats, UpstreamConfig};

/// Base delay of the first retry; doubles each attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    retries: u32,
    max_retry_after: Duration,
}

/// One upstream (the index, or the advisory API): its concurrency bound and
/// its counters.
pub(crate) struct Endpoint {
    sem: Semaphore,
    pub(crate) counters: Counters,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) peer: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> EndpointStats {
        EndpointStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            peer: self.peer.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub(crate) fn new(concurrency: usize) -> Endpoint {
        Endpoint {
            sem: Semaphore::new(concurrency.max(1)),
            counters: Counters::default(),
        }
    }
}

/// A successful (2xx) response, fully read.
pub(crate) struct Fetched {
    /// The URL after redirects (relative links resolve against it).
    pub(crate) url: Url,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FetchError {
    /// The upstream answered with this non-success status (after retries for
    /// 5xx/429).
    Status(u16, String),
    /// No usable answer: connection, timeout, body read.
    Transport(String),
}

impl FetchError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status(404 | 410, _))
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Status(code, url) => write!(f, "HTTP {code} from {url}"),
            FetchError::Transport(msg) => f.write_str(msg),
        }
    }
}

impl Http {
    pub(crate) fn new(cfg: &UpstreamConfig) -> Result<Http, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("lex-align/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .gzip(true)
            .use_rustls_tls()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Http {
            client,
            retries: cfg.retries,
            max_retry_after: cfg.max_retry_after,
        })
    }

    pub(crate) fn get(&self, url: Url) -> RequestBuilder {
        self.client.get(url)
    }

    pub(crate) fn post(&self, url: Url) -> RequestBuilder {
        self.client.post(url)
    }

    /// Sends the request built by `build` (called once per attempt), holding
    /// one of the endpoint's permits only while a request is in flight.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Fetched, FetchError> {
        let mut attempt = 0u32;
        loop {
            let outcome = {
                let _permit = ep
                    .sem
                    .acquire()
                    .await
                    .expect("endpoint semaphore is never closed");
                Counters::bump(&ep.counters.requests);
                self.attempt(build()).await
            };
            let (error, retry_after) = match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retryable { error, retry_after } => (error, retry_after),
            };
            if attempt >= self.retries {
                return Err(error);
            }
            attempt += 1;
            Counters::bump(&ep.counters.retries);
            let delay = match retry_after {
                Some(wait) => wait.min(self.max_retry_after),
                None => backoff(attempt),
            };
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, req: RequestBuilder) -> Attempt {
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                return Attempt::Retryable {
                    error: FetchError::Transport(describe(&e)),
                    retry_after: None,
                }
            }
        };
        let status = resp.status();
        let url = resp.url().clone();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Attempt::Retryable {
                error: FetchError::Status(status.as_u16(), url.to_string()),
                retry_after,
            };
        }
        if !status.is_success() {
            return Attempt::Done(Err(FetchError::Status(status.as_u16(), url.to_string())));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match resp.bytes().await {
            Ok(body) => Attempt::Done(Ok(Fetched {
                url,
                content_type,
                body: body.to_vec(),
            })),
            // A body cut off mid-way is a transport problem: retry.
            Err(e) => Attempt::Retryable {
                error: FetchError::Transport(describe(&e)),
                retry_after: None,
            },
        }
    }
}

enum Attempt {
    Done(Result<Fetched, FetchError>),
    Retryable {
        error: FetchError,
        retry_after: Option<Duration>,
    },
}

/// `base * 2^(attempt-1)` plus up to 50 % jitter, so a burst of failing
/// callers does not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << (attempt - 1).min(10));
    let jitter = exp.mul_f64(fastrand::f64() * 0.5);
    exp + jitter
}

/// `Retry-After` is either delta-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// reqwest's Display hides the cause ("error sending request"); walk the
/// source chain so the operator sees "connection refused" or "timed out".
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows() {
        let first = backoff(1);
        let third = backoff(3);
        assert!(first >= BACKOFF_BASE && first <= BACKOFF_BASE.mul_f64(1.5));
        assert!(third >= BACKOFF_BASE * 4 && third <= BACKOFF_BASE.mul_f64(6.0));
    }
}
