//! What a signed verdict costs.
//!
//! 1. In process, one thread: serialise a realistic verdict (baseline),
//!    then build the signed payload, sign it (Ed25519 over the DSSE PAE) and
//!    serialise the envelope; the VSA form; and verifying one.
//! 2. In process, 64 threads at once (c=64 on this machine's cores).
//! 3. Over HTTP, c=64: the real app on 127.0.0.1 (fake upstreams, verdicts
//!    memoised after the first), `GET /api/v1/evaluate` plain vs
//!    `?envelope=dsse`, 64 concurrent clients in the same process.
//!
//! Run: `cargo bench -p lex-align-daemon --bench signing`.
//! `LEXALIGN_BENCH_SIGN_N` sets the in-process iterations (default 20000),
//! `LEXALIGN_BENCH_HTTP_N` the HTTP requests per mode (default 20000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lex_align_daemon::signing::{
    check_verdict, verify_envelope, DaemonKey, EnvelopeKind, KeySet, VerdictContext,
};
use lex_align_engine::verdict::Verdict;
use time::OffsetDateTime;

fn verdict() -> Verdict {
    serde_json::from_value(serde_json::json!({
        "verdict": "DENIED",
        "reason": "pyyaml 5.3.1 has known vulnerabilities (max CVSS 9.8 >= threshold 9.0): GHSA-8q59-q68h-6hv4, GHSA-6757-jp84-gxfx",
        "package": "pyyaml", "version": "5.3.1", "resolved_version": "5.3.1",
        "registry_status": null, "replacement": null, "version_constraint": null,
        "license": "MIT", "cve_ids": ["CVE-2020-14343", "CVE-2020-1747"], "max_cvss": 9.8,
        "is_requestable": false, "needs_rationale": false, "auto_request_approval": false,
        "denial_category": "cve", "requirement": null, "suggested_requirement": "pyyaml>=5.4",
        "fixed_versions": [{"id": "GHSA-8q59-q68h-6hv4", "fixed": "5.4"}, {"id": "GHSA-6757-jp84-gxfx", "fixed": "5.4"}],
        "advisories": [
            {"id": "GHSA-8q59-q68h-6hv4", "aliases": ["CVE-2020-14343", "PYSEC-2021-142"], "score": 9.8, "fixed_version": "5.4", "malicious": false},
            {"id": "GHSA-6757-jp84-gxfx", "aliases": ["CVE-2020-1747", "PYSEC-2020-96"], "score": 9.8, "fixed_version": "5.4", "malicious": false}
        ],
        "upstream_error": null, "override": null
    }))
    .expect("a verdict")
}

fn per(label: &str, n: usize, el: Duration, bytes: usize) {
    println!(
        "{label}: {:.2} µs/verdict ({:.0}/s), {bytes} bytes",
        el.as_secs_f64() * 1e6 / n as f64,
        n as f64 / el.as_secs_f64()
    );
}

fn in_process(n: usize) {
    let key = DaemonKey::from_seed(&[42u8; 32]);
    let v = verdict();
    let body = serde_json::to_vec(&v).unwrap();
    let ctx = VerdictContext {
        project: "web",
        registry_version: "1.2",
        registry_sha256: Some("b7b2c63549bf11dc7133cb0863d2d11c80fccaa1694aef14d34d89ae3a01a96c"),
    };
    let ttl = Duration::from_secs(86_400);

    let t = Instant::now();
    let mut size = 0;
    for _ in 0..n {
        size = std::hint::black_box(serde_json::to_vec(&v).unwrap()).len();
    }
    per("baseline: serialise the verdict", n, t.elapsed(), size);

    let t = Instant::now();
    for _ in 0..n {
        let env = key.sign_verdict(EnvelopeKind::Verdict, &v, &body, &ctx, ttl);
        size = std::hint::black_box(serde_json::to_vec(&env).unwrap()).len();
    }
    per(
        "signed: payload + Ed25519(PAE) + envelope JSON",
        n,
        t.elapsed(),
        size,
    );

    let t = Instant::now();
    for _ in 0..n {
        let env = key.sign_verdict(EnvelopeKind::Vsa, &v, &body, &ctx, ttl);
        size = std::hint::black_box(serde_json::to_vec(&env).unwrap()).len();
    }
    per("signed VSA form", n, t.elapsed(), size);

    let env =
        serde_json::to_vec(&key.sign_verdict(EnvelopeKind::Verdict, &v, &body, &ctx, ttl)).unwrap();
    let keys = KeySet::of(&key);
    let now = OffsetDateTime::now_utc();
    let t = Instant::now();
    for _ in 0..n {
        let ok = verify_envelope(&env, &keys).unwrap();
        std::hint::black_box(check_verdict(&ok, now, false).unwrap());
    }
    per(
        "verify (parse, Ed25519 verify_strict, claims)",
        n,
        t.elapsed(),
        env.len(),
    );

    // c=64: 64 threads signing at once.
    let key = Arc::new(key);
    let each = (n / 64).max(1);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..64 {
            let (key, v, body) = (key.clone(), v.clone(), body.clone());
            let ctx = VerdictContext {
                project: "web",
                registry_version: "1.2",
                registry_sha256: None,
            };
            s.spawn(move || {
                for _ in 0..each {
                    let env = key.sign_verdict(EnvelopeKind::Verdict, &v, &body, &ctx, ttl);
                    std::hint::black_box(serde_json::to_vec(&env).unwrap());
                }
            });
        }
    });
    let el = t.elapsed();
    let total = each * 64;
    println!(
        "signed, 64 threads at once: {total} verdicts in {:.3}s = {:.0}/s; {:.2} µs of wall time per verdict on {} cores",
        el.as_secs_f64(),
        total as f64 / el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / total as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}

/// The shared registry cut down to `httpx` and a licence allow-list.
fn registry() -> String {
    lex_align_fakes::fixtures::registry()
        .policy("auto_approve_licenses", "[MIT, Apache-2.0, BSD-3-Clause]")
        .without_policy("hard_ban_licenses")
        .without_policy("unknown_license_policy")
        .without_policy("cve_threshold")
        .only(&["httpx"])
        .yaml()
}

async fn http(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry.yml");
    std::fs::write(&reg, registry()).unwrap();
    let index = lex_align_fakes::FakeIndex::start();
    let osv = lex_align_fakes::FakeOsv::start(&lex_align_fakes::pypa_snapshot_dir());
    let mut config = lex_align_daemon::Config::new(dir.path().join("data"));
    config.registry_path = Some(reg);
    config.watch_registry = false;
    config.index = Some(lex_align_upstream::IndexSetting {
        url: index.json_url(),
        kind: lex_align_upstream::IndexKind::Json,
        source: "bench".into(),
    });
    config.osv_url = Some(osv.url());
    config.signing.checkpoint_interval = None;
    let (router, _handle) = lex_align_daemon::build_app(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        lex_align_daemon::serve_on(listener, router).await.unwrap();
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    for (label, query) in [
        ("plain", "package=pyyaml&version=5.3.1"),
        ("dsse", "package=pyyaml&version=5.3.1&envelope=dsse"),
        ("plain", "package=pyyaml&version=5.3.1"),
        ("dsse", "package=pyyaml&version=5.3.1&envelope=dsse"),
    ] {
        let url = format!("{base}/api/v1/evaluate?{query}");
        // Warm: the verdict memo, the connections.
        for _ in 0..64 {
            let r = client
                .get(&url)
                .header("X-LexAlign-Project", "bench")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
        let each = (n / 64).max(1);
        let t = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(each);
                    for _ in 0..each {
                        let s = Instant::now();
                        let r = client
                            .get(&url)
                            .header("X-LexAlign-Project", "bench")
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200);
                        r.bytes().await.unwrap();
                        lat.push(s.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let el = t.elapsed();
        lat.sort();
        let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "HTTP c=64 {label}: {} requests in {:.2}s = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms",
            lat.len(),
            el.as_secs_f64(),
            lat.len() as f64 / el.as_secs_f64(),
            q(0.50).as_secs_f64() * 1e3,
            q(0.99).as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let n: usize = std::env::var("LEXALIGN_BENCH_SIGN_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    in_process(n);
    let http_n: usize = std::env::var("LEXALIGN_BENCH_HTTP_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(http(http_n));
}
