//! `--only reports`: every report on an audit log of a million rows.
//!
//! The log is filled through the store's batch append (the inbox and the
//! writer thread, as the daemon files rows), with a deterministic mix that
//! looks like a team's: 40 projects of uneven size, 1,500 packages with a
//! long tail and a few spellings each, the registry's packages among the
//! most used, licences per package, advisories on some packages, a dozen
//! agent identities plus unknown ones, scanner alerts, approval requests in
//! every status, over 90 days. Then an in-process daemon opens the file and
//! each report is asked over HTTP on 127.0.0.1, warm once, then `--samples`
//! times; the figure is the median.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lex_align_fakes::{FakeIndex, FakeOsv};
use lex_align_store::{AuditRow, NewApprovalRequest, Store, StoreOptions, Synchronous};

use crate::daemon::Daemon;
use crate::{figure, median, spread, Args, Figure};

/// splitmix64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Skewed towards 0: a few values take most draws (the long tail of
    /// packages and projects).
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64) * u.powi(3)) as u64 % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const PROJECTS: u64 = 40;
const PACKAGES: u64 = 1500;
const DAYS: i64 = 90;
/// The bench registry's packages (daemon.rs), used by most projects.
const REGISTRY: [&str; 7] = [
    "httpx",
    "flask",
    "django",
    "requests",
    "pyqt5",
    "cryptography",
    "jinja2",
];
const LICENSES: [&str; 12] = [
    "MIT",
    "Apache-2.0",
    "BSD-3-Clause",
    "BSD-2-Clause",
    "ISC",
    "MPL-2.0",
    "PSF-2.0",
    "LGPL-2.1",
    "GPL-3.0",
    "AGPL-3.0",
    "GPL-2.0",
    "UNKNOWN",
];
const AGENTS: [(&str, &str); 12] = [
    ("claude-code", "1.0.31"),
    ("claude-code", "1.0.44"),
    ("claude-code", "1.1.2"),
    ("cursor", "0.48"),
    ("cursor", "0.50"),
    ("codex", "0.1.9"),
    ("codex", "0.2.0"),
    ("aider", "0.82"),
    ("copilot", "1.290"),
    ("windsurf", "1.9"),
    ("gemini-cli", "0.1"),
    ("goose", "1.0"),
];

/// The package of index `i`: the registry's first, then a tail. Some are
/// written in several spellings (`Foo_Bar`, `foo-bar`, `foo.bar`).
fn package_name(i: u64, rng: &mut Rng) -> String {
    if let Some(r) = REGISTRY.get(i as usize) {
        return match (i, rng.below(4)) {
            (1, 0) => "Flask".into(),
            (6, 0) => "Jinja2".into(),
            (4, 0) => "PyQt5".into(),
            _ => (*r).into(),
        };
    }
    match (i % 5, rng.below(3)) {
        (0, 0) => format!("Pkg_Tail{i}"),
        (0, 1) => format!("pkg.tail{i}"),
        _ => format!("pkg-tail{i}"),
    }
}

fn license_of(i: u64) -> &'static str {
    // Mostly permissive; every 17th copyleft, every 23rd unknown.
    if i % 23 == 5 {
        "UNKNOWN"
    } else if i % 17 == 3 {
        LICENSES[8 + (i as usize / 17) % 3]
    } else {
        LICENSES[(i as usize * 7) % 8]
    }
}

/// Advisories of package `i` (about one in twelve has some), and a score.
fn advisories_of(i: u64) -> Option<(Vec<String>, Option<f64>)> {
    if i % 12 != 7 && i != 5 {
        return None;
    }
    let n = 1 + (i % 3) as usize;
    let ids = (0..n)
        .map(|k| format!("GHSA-{:04x}-{:04x}-bnch", (i * 31 + k as u64) % 400, k))
        .collect();
    let score = match i % 5 {
        0 => None,
        1 => Some(9.8),
        2 => Some(7.5),
        3 => Some(5.3),
        _ => Some(3.1),
    };
    Some((ids, score))
}

fn audit_row(rng: &mut Rng) -> AuditRow {
    let project = rng.skewed(PROJECTS);
    // Each project leans on its own slice of the tail, and on the registry.
    let pkg = if rng.chance(25) {
        rng.below(REGISTRY.len() as u64)
    } else {
        REGISTRY.len() as u64
            + (project * 37 + rng.skewed(PACKAGES - REGISTRY.len() as u64))
                % (PACKAGES - REGISTRY.len() as u64)
    };
    let package = package_name(pkg, rng);
    let canonical = lex_align_store::canonical_name(&package);
    let version = format!("{}.{}.{}", 1 + pkg % 4, rng.below(12), rng.below(5));
    let pinned = rng.chance(70);
    let license = license_of(pkg);
    let copyleft = matches!(license, "GPL-3.0" | "AGPL-3.0" | "GPL-2.0");
    let advisories = advisories_of(pkg);
    let registered = (pkg as usize) < REGISTRY.len();
    let (verdict, category, reason, registry_status, license_col) = if registered {
        match pkg {
            3 => (
                "DENIED",
                "registry",
                "requests is deprecated; use httpx.",
                "deprecated",
                None,
            ),
            4 => (
                "DENIED",
                "registry",
                "pyqt5 is banned: GPL-licensed.",
                "banned",
                None,
            ),
            5 if rng.chance(30) => (
                "DENIED",
                "cve",
                "cryptography has known vulnerabilities.",
                "version-constrained",
                None,
            ),
            0 => (
                "ALLOWED",
                "",
                "httpx is preferred.",
                "preferred",
                (!pinned).then_some(license),
            ),
            5 | 6 => (
                "ALLOWED",
                "",
                "Within the registry's version window.",
                "version-constrained",
                None,
            ),
            _ => (
                "ALLOWED",
                "",
                "Approved in the registry.",
                "approved",
                (!pinned).then_some(license),
            ),
        }
    } else if copyleft {
        (
            "DENIED",
            "license",
            "License is on the hard-ban list.",
            "",
            Some(license),
        )
    } else if advisories.is_some() && rng.chance(60) {
        (
            "DENIED",
            "cve",
            "Known vulnerabilities at or above the threshold.",
            "",
            Some(license),
        )
    } else if license == "UNKNOWN" || rng.chance(8) {
        (
            "PROVISIONALLY_ALLOWED",
            "",
            "Not in the registry; provisionally allowed.",
            "",
            Some(license),
        )
    } else {
        (
            "ALLOWED",
            "",
            "License is on the auto-approve list.",
            "",
            Some(license),
        )
    };
    let with_cves = category == "cve" || (verdict == "PROVISIONALLY_ALLOWED" && rng.chance(20));
    let (cve_ids, max_cvss) = match (&advisories, with_cves) {
        (Some((ids, score)), true) => (ids.clone(), *score),
        _ => (Vec::new(), None),
    };
    let agent = (!rng.chance(30)).then(|| AGENTS[rng.skewed(AGENTS.len() as u64) as usize]);
    AuditRow {
        project: format!("svc-{project:02}"),
        requester: format!("dev{}", rng.below(60)),
        package,
        canonical,
        version: pinned.then(|| version.clone()),
        requirement: None,
        resolved_version: (category != "registry").then_some(version),
        verdict: verdict.into(),
        denial_category: category.into(),
        reason: Some(reason.into()),
        license: license_col.map(str::to_string),
        cve_ids,
        max_cvss,
        registry_status: (!registry_status.is_empty()).then(|| registry_status.to_string()),
        agent_model: agent.map(|a| a.0.to_string()),
        agent_version: agent.map(|a| a.1.to_string()),
        source: ["api", "precommit", "hook", "lsp", "batch"][rng.below(5) as usize].into(),
        auth_method: Some("anonymous".into()),
    }
}

/// A scanner alert, as the CVE re-scan writes it.
fn alert_row(rng: &mut Rng) -> AuditRow {
    let pkg = [0u64, 1, 2, 5, 6][rng.below(5) as usize];
    let (ids, score) =
        advisories_of(pkg).unwrap_or((vec!["GHSA-0000-0000-scan".into()], Some(8.1)));
    AuditRow {
        project: "lex-align-server".into(),
        requester: "cve-scanner".into(),
        package: REGISTRY[pkg as usize].into(),
        canonical: REGISTRY[pkg as usize].into(),
        version: Some("1.0.0".into()),
        verdict: "CVE_ALERT".into(),
        denial_category: "cve_alert".into(),
        reason: Some("New advisory on a registered package.".into()),
        cve_ids: ids,
        max_cvss: score,
        registry_status: Some("approved".into()),
        source: "scanner".into(),
        ..Default::default()
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// Fills `path` with `rows` audit rows (plus approval requests); returns
/// the seconds the store took to take and file them.
pub fn seed(path: &Path, rows: u64) -> anyhow::Result<f64> {
    let store = Store::open_with(
        path,
        StoreOptions {
            synchronous: Synchronous::Normal,
            ..StoreOptions::default()
        },
    )?;
    let mut rng = Rng(0x1e7a_11a1);
    let now = time::OffsetDateTime::now_utc();
    let start = now - time::Duration::days(DAYS);
    let step = time::Duration::days(DAYS) / rows.max(1) as f64;
    const BATCH: u64 = 2_000;
    let t = Instant::now();
    let mut i = 0u64;
    while i < rows {
        let n = BATCH.min(rows - i);
        let batch: Vec<(AuditRow, String)> = (i..i + n)
            .map(|k| {
                // One row in 2,000 is a scanner alert.
                let row = if k % 2_000 == 1_999 {
                    alert_row(&mut rng)
                } else {
                    audit_row(&mut rng)
                };
                (row, rfc3339(start + step * k as f64))
            })
            .collect();
        store.append_audit_batch_at_blocking(batch)?;
        i += n;
    }
    store.flush()?;
    let took = t.elapsed().as_secs_f64();
    // Approval requests: every project asks for some of its tail packages;
    // a third are decided.
    let mut ids = Vec::new();
    for k in 0..3_000u64 {
        let pkg = REGISTRY.len() as u64 + rng.skewed(PACKAGES - REGISTRY.len() as u64);
        let req = store.upsert_approval_request_blocking(NewApprovalRequest {
            project: format!("svc-{:02}", rng.skewed(PROJECTS)),
            requester: format!("dev{}", rng.below(60)),
            package: package_name(pkg, &mut rng),
            rationale: format!("Needed for feature {k}."),
            agent_model: Some("claude-code".into()),
            agent_version: Some("1.1.2".into()),
            last_audit_id: None,
        })?;
        ids.push(req.id);
    }
    for (k, id) in ids.iter().enumerate() {
        let status = match k % 6 {
            0 => lex_align_store::APPROVED,
            1 => lex_align_store::REJECTED,
            _ => continue,
        };
        // A request asked twice keeps its first decision.
        let _ = store.set_request_status_blocking(id, status, "bench", Some("decided"));
    }
    store.flush()?;
    let n = store.row_count()?;
    if n != rows {
        bail!("seeded {n} rows, expected {rows}");
    }
    Ok(took)
}

/// The report URLs: every report, with and without `?project=`.
fn report_paths() -> Vec<(&'static str, String)> {
    let p = "project=svc-03";
    let mut v = Vec::new();
    for (name, path) in [
        ("legal", "/api/v1/reports/legal"),
        ("security", "/api/v1/reports/security"),
        ("agents", "/api/v1/reports/agents"),
        ("approval requests", "/api/v1/reports/approval-requests"),
    ] {
        v.push((name, path.to_string()));
        v.push((name, format!("{path}?{p}")));
    }
    v.push(("projects", "/api/v1/reports/projects".into()));
    v.push(("pending", "/api/v1/registry/pending".into()));
    v
}

pub async fn reports(
    args: &Args,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let rows = args.report_rows;
    let dir = tempfile::tempdir()?;
    let db = match &args.keep_db {
        Some(p) => p.clone(),
        None => dir.path().join("reports.sqlite"),
    };
    if db.exists() {
        eprintln!("reports: reusing {}", db.display());
    } else {
        eprintln!("reports: seeding {rows} rows into {}", db.display());
        let path = db.clone();
        let took = tokio::task::spawn_blocking(move || seed(&path, rows)).await??;
        figures.push(figure(
            format!("reports: seeding {rows} rows through the batch append (inbox + writer)"),
            format!("{took:.1} s = {:.0} rows/s", rows as f64 / took),
            "",
            None,
        ));
    }
    let d = Daemon::in_process_with(index, osv, |config| {
        config.database_path = db.clone();
        Ok(())
    })
    .await?;
    let client = reqwest::Client::new();
    let samples = args.samples.max(1);
    for (name, path) in report_paths() {
        let url = format!("{}{path}", d.base);
        let mut took = Vec::new();
        let mut size = 0;
        for k in 0..=samples {
            let start = Instant::now();
            let r = client
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {path}"))?;
            let status = r.status();
            let body = r.bytes().await?;
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            if status != 200 {
                bail!(
                    "GET {path}: HTTP {status} {}",
                    String::from_utf8_lossy(&body)
                );
            }
            size = body.len();
            // The first request fills the connection pool and caches.
            if k > 0 {
                took.push(ms);
            }
        }
        let m = median(took.clone());
        eprintln!("report {path}: {m:.1} ms ({}), {size} bytes", spread(&took));
        figures.push(figure(
            format!("report {name}: GET {path} on {rows} rows (median of {samples})"),
            format!("{m:.1} ms ({}; {size} bytes)", spread(&took)),
            "< 100 ms",
            Some(m < 100.0),
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.stop().await;
    Ok(())
}
