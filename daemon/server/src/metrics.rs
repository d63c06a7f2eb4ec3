//! Prometheus counters, lock-free on the hot path (relaxed atomics), rendered
//! as text exposition format on `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use lex_align_engine::verdict::{Decision, DenialCategory, Verdict};
use lex_align_upstream::UpstreamStats;

/// Upper bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

pub const ROUTES: [&str; 4] = ["evaluate", "batch", "approval_requests", "other"];

const DECISIONS: [Decision; 3] = [
    Decision::Allowed,
    Decision::ProvisionallyAllowed,
    Decision::Denied,
];
const CATEGORIES: [DenialCategory; 6] = [
    DenialCategory::Registry,
    DenialCategory::License,
    DenialCategory::Cve,
    DenialCategory::Malicious,
    DenialCategory::NotFound,
    DenialCategory::Upstream,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    evaluations: [AtomicU64; 3],
    denials: [AtomicU64; 6],
    upstream_degraded: AtomicU64,
    audit_rows: AtomicU64,
    audit_errors: AtomicU64,
    auth_failures: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    latency: [Histogram; 4],
    responses_5xx: AtomicU64,
    responses_4xx: AtomicU64,
}

fn decision_idx(d: Decision) -> usize {
    match d {
        Decision::Allowed => 0,
        Decision::ProvisionallyAllowed => 1,
        Decision::Denied => 2,
    }
}

fn category_idx(c: DenialCategory) -> usize {
    CATEGORIES.iter().position(|x| *x == c).unwrap_or(0)
}

impl Metrics {
    pub fn verdict(&self, v: &Verdict) {
        self.evaluations[decision_idx(v.verdict)].fetch_add(1, Relaxed);
        if let Some(c) = v.denial_category {
            self.denials[category_idx(c)].fetch_add(1, Relaxed);
        }
        if v.upstream_error.is_some() {
            self.upstream_degraded.fetch_add(1, Relaxed);
        }
    }

    pub fn audit_rows(&self, n: u64) {
        self.audit_rows.fetch_add(n, Relaxed);
    }

    /// A request refused with 401.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Relaxed);
    }

    pub fn audit_error(&self) {
        self.audit_errors.fetch_add(1, Relaxed);
    }

    pub fn reload(&self, ok: bool) {
        if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        }
        .fetch_add(1, Relaxed);
    }

    /// `route` is an index into [`ROUTES`].
    pub fn request(&self, route: usize, status: u16, took: Duration) {
        let h = &self.latency[route.min(ROUTES.len() - 1)];
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.buckets[i].fetch_add(1, Relaxed);
        }
        h.count.fetch_add(1, Relaxed);
        h.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
        if status >= 500 {
            self.responses_5xx.fetch_add(1, Relaxed);
        } else if status >= 400 {
            self.responses_4xx.fetch_add(1, Relaxed);
        }
    }

    pub fn render(&self, upstream: Option<&UpstreamStats>) -> String {
        let mut s = String::with_capacity(4096);
        let _ = self.render_into(&mut s, upstream);
        s
    }

    fn render_into(&self, s: &mut String, upstream: Option<&UpstreamStats>) -> std::fmt::Result {
        writeln!(
            s,
            "# HELP lexalign_evaluations_total Verdicts given, by verdict."
        )?;
        writeln!(s, "# TYPE lexalign_evaluations_total counter")?;
        for (i, d) in DECISIONS.iter().enumerate() {
            writeln!(
                s,
                "lexalign_evaluations_total{{verdict=\"{}\"}} {}",
                d.as_str(),
                self.evaluations[i].load(Relaxed)
            )?;
        }
        writeln!(
            s,
            "# HELP lexalign_denials_total DENIED verdicts, by denial category."
        )?;
        writeln!(s, "# TYPE lexalign_denials_total counter")?;
        for (i, c) in CATEGORIES.iter().enumerate() {
            writeln!(
                s,
                "lexalign_denials_total{{category=\"{}\"}} {}",
                c.as_str(),
                self.denials[i].load(Relaxed)
            )?;
        }
        writeln!(s, "# HELP lexalign_degraded_verdicts_total Verdicts given while an upstream was unavailable.")?;
        writeln!(s, "# TYPE lexalign_degraded_verdicts_total counter")?;
        writeln!(
            s,
            "lexalign_degraded_verdicts_total {}",
            self.upstream_degraded.load(Relaxed)
        )?;
        writeln!(
            s,
            "# HELP lexalign_audit_rows_total Audit rows made durable by this process."
        )?;
        writeln!(s, "# TYPE lexalign_audit_rows_total counter")?;
        writeln!(
            s,
            "lexalign_audit_rows_total {}",
            self.audit_rows.load(Relaxed)
        )?;
        writeln!(
            s,
            "# HELP lexalign_audit_errors_total Audit appends that failed."
        )?;
        writeln!(s, "# TYPE lexalign_audit_errors_total counter")?;
        writeln!(
            s,
            "lexalign_audit_errors_total {}",
            self.audit_errors.load(Relaxed)
        )?;
        writeln!(
            s,
            "# HELP lexalign_auth_failures_total Requests refused because the caller could not be authenticated."
        )?;
        writeln!(s, "# TYPE lexalign_auth_failures_total counter")?;
        writeln!(
            s,
            "lexalign_auth_failures_total {}",
            self.auth_failures.load(Relaxed)
        )?;
        writeln!(s, "# HELP lexalign_registry_reloads_total Registry reload attempts that changed or failed.")?;
        writeln!(s, "# TYPE lexalign_registry_reloads_total counter")?;
        writeln!(
            s,
            "lexalign_registry_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Relaxed)
        )?;
        writeln!(
            s,
            "lexalign_registry_reloads_total{{result=\"failed\"}} {}",
            self.reloads_failed.load(Relaxed)
        )?;
        writeln!(
            s,
            "# HELP lexalign_http_responses_errors_total Error responses, by class."
        )?;
        writeln!(s, "# TYPE lexalign_http_responses_errors_total counter")?;
        writeln!(
            s,
            "lexalign_http_responses_errors_total{{class=\"4xx\"}} {}",
            self.responses_4xx.load(Relaxed)
        )?;
        writeln!(
            s,
            "lexalign_http_responses_errors_total{{class=\"5xx\"}} {}",
            self.responses_5xx.load(Relaxed)
        )?;
        writeln!(
            s,
            "# HELP lexalign_http_request_duration_seconds Request latency, by route."
        )?;
        writeln!(s, "# TYPE lexalign_http_request_duration_seconds histogram")?;
        for (r, name) in ROUTES.iter().enumerate() {
            let h = &self.latency[r];
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Relaxed);
                writeln!(s, "lexalign_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"{b}\"}} {cumulative}")?;
            }
            let count = h.count.load(Relaxed);
            writeln!(s, "lexalign_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {count}")?;
            writeln!(
                s,
                "lexalign_http_request_duration_seconds_sum{{route=\"{name}\"}} {}",
                h.sum_micros.load(Relaxed) as f64 / 1e6
            )?;
            writeln!(
                s,
                "lexalign_http_request_duration_seconds_count{{route=\"{name}\"}} {count}"
            )?;
        }
        if let Some(u) = upstream {
            for (metric, help) in [
                (
                    "requests",
                    "HTTP requests sent upstream (retries included).",
                ),
                ("retries", "Upstream requests retried."),
                ("errors", "Upstream lookups that failed after retries."),
                ("cache_hits", "Upstream lookups answered from cache."),
                ("cache_misses", "Upstream lookups that went to the network."),
            ] {
                writeln!(s, "# HELP lexalign_upstream_{metric}_total {help}")?;
                writeln!(s, "# TYPE lexalign_upstream_{metric}_total counter")?;
                for (name, e) in [("index", &u.index), ("advisories", &u.advisories)] {
                    let v = match metric {
                        "requests" => e.requests,
                        "retries" => e.retries,
                        "errors" => e.errors,
                        "cache_hits" => e.cache_hits,
                        _ => e.cache_misses,
                    };
                    writeln!(
                        s,
                        "lexalign_upstream_{metric}_total{{upstream=\"{name}\"}} {v}"
                    )?;
                }
            }
        }
        Ok(())
    }
}
