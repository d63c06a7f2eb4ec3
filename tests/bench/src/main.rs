//! `lex-align-bench`: the "Measured" figures of the daemon-core issue.
//!
//! Everything runs on 127.0.0.1: the fake index and fake OSV servers (the
//! fixture projects and the PyPA advisory snapshot), the daemon (in process,
//! or the release binary as a child for RSS), and `wrk` for the warm load.
//! Every loop is bounded in count and time.

mod daemon;
mod export;
mod reports;
mod signing;
mod team;
mod wrk;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::response::IntoResponse;
use clap::Parser;
use lex_align_fakes::{pypa_snapshot_dir, FakeIndex, FakeOsv};

use crate::daemon::Daemon;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks of the lex-align daemon against local fake upstreams")]
struct Args {
    /// The release `lex-align` binary: the warm load and RSS then measure
    /// it as a child process (`lex-align daemon`); without it the warm load
    /// runs against an in-process daemon and RSS is skipped.
    #[arg(long)]
    daemon_bin: Option<PathBuf>,
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// wrk connection counts.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<u32>,
    /// Samples for the cold single and batch figures (fresh daemon each).
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Artificial upstream latency for the cold figures, in ms.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Which parts to run: warm, cold, batch, kill, and, not in the default
    /// set, auth (the cost of authentication on the warm path), limit
    /// (warm evaluate against a fixed-verdict handler behind the same stack),
    /// team (a personal daemon following a team server vs a standalone;
    /// registry propagation; audit queue drain; needs --daemon-bin),
    /// reports (every report on a large audit log), export (`lex-align
    /// audit export` of that log: rows/s and peak RSS; needs --daemon-bin)
    /// and signing (evaluate plain vs `&envelope=dsse` under load).
    #[arg(long, value_delimiter = ',', default_value = "warm,cold,batch,kill")]
    only: Vec<String>,
    /// Interleaved rounds of the auth and limit parts: each round runs
    /// every configuration once at each concurrency.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// How the team part keeps the team server off the measured daemons'
    /// CPU (on a real team it has a machine of its own): `cpu` pins it to
    /// the last core and the personal daemon, the standalone and wrk to the
    /// others (both sides measured on the same cores); `nice` runs it at
    /// nice 19; `none` lets it compete as an equal.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "nice", "none"])]
    team_isolation: String,
    /// Audit rows of the reports part.
    #[arg(long, default_value_t = 1_000_000)]
    report_rows: u64,
    /// The reports part's database: seeded when missing, reused (and
    /// kept) when present, e.g. to look at query plans with `sqlite3`.
    #[arg(long)]
    keep_db: Option<PathBuf>,
}

/// One line of the final table.
struct Figure {
    what: String,
    value: String,
    target: String,
    ok: Option<bool>,
}

fn figure(
    what: impl Into<String>,
    value: impl Into<String>,
    target: &str,
    ok: Option<bool>,
) -> Figure {
    Figure {
        what: what.into(),
        value: value.into(),
        target: target.into(),
        ok,
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Two workers like the daemon binary on this machine; the bench's own
    // work (fakes aside, which run their own runtimes) is light.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let wants = |p: &str| args.only.iter().any(|o| o == p);
    let mut figures = Vec::new();
    let index = FakeIndex::start();
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    eprintln!(
        "fakes: index {} ({} projects), OSV {} ({} advisories)",
        index.json_url(),
        index.project_names().len(),
        osv.url(),
        osv.record_count()
    );

    if wants("warm") {
        warm(&args, &index, &osv, &mut figures).await?;
    }
    if wants("cold") {
        cold_single(&args, &index, &osv, &mut figures).await?;
    }
    if wants("batch") {
        cold_batch(&args, &index, &osv, &mut figures).await?;
    }
    if wants("reports") {
        reports::reports(&args, &index, &osv, &mut figures).await?;
    }
    if wants("export") {
        export::export(&args, &mut figures).await?;
    }
    if wants("signing") {
        signing::signing(&args, &index, &osv, &mut figures).await?;
    }
    if wants("auth") {
        auth_cost(&args, &index, &osv, &mut figures).await?;
    }
    if wants("limit") {
        limit(&args, &index, &osv, &mut figures).await?;
    }
    if wants("team") {
        match &args.daemon_bin {
            Some(bin) => team::run(&args, bin, &index, &osv, &mut figures).await?,
            None => eprintln!("team part skipped: needs --daemon-bin"),
        }
    }
    if wants("kill") {
        match &args.daemon_bin {
            Some(bin) => kill_under_load(bin, &index, &osv, &mut figures).await?,
            None => eprintln!("kill -9 check skipped: needs --daemon-bin"),
        }
    }

    println!();
    println!("| measurement | value | target | met |");
    println!("|---|---|---|---|");
    for f in &figures {
        let met = match f.ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!("| {} | {} | {} | {} |", f.what, f.value, f.target, met);
    }
    if figures.iter().any(|f| f.ok == Some(false)) {
        println!("\nsome targets were not met");
    }
    Ok(())
}

async fn warm(
    args: &Args,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    let d = match &args.daemon_bin {
        Some(bin) => Daemon::child(bin, index, osv).await?,
        None => Daemon::in_process(index, osv).await?,
    };
    let kind = if d.pid().is_some() {
        "release binary"
    } else {
        "in-process"
    };
    eprintln!("warm: daemon ({kind}) at {}", d.base);
    if let Some(rss) = d.rss_kb() {
        figures.push(rss_figure("RSS idle (after start)", rss));
    }

    // Fill the caches: every URL once, and check each answers 200.
    let client = reqwest::Client::new();
    let paths = daemon::mixed_paths();
    for p in &paths {
        let r = client
            .get(format!("{}{p}", d.base))
            .header("X-LexAlign-Project", "bench")
            .send()
            .await?;
        if r.status() != 200 {
            bail!("warm-up {p}: HTTP {} {}", r.status(), r.text().await?);
        }
    }
    let script = wrk::write_script(&d.dir, &paths)?;
    let mut wrk_completed = 0u64;
    for &c in &args.concurrency {
        let before = daemon::evaluate_buckets(&d.metrics(&client).await?);
        let res = wrk::run(&d.base, &script, c, args.duration).await?;
        let after = daemon::evaluate_buckets(&d.metrics(&client).await?);
        wrk_completed += res.requests;
        eprintln!("wrk c={c}: {res:?}");
        // Where the tail comes from: the daemon's own handler time against
        // what wrk saw (the difference is the kernel, scheduling and wrk).
        let share = |le: f64| {
            let at = |v: &[(f64, u64)]| v.iter().find(|(b, _)| *b == le).map(|(_, n)| *n);
            let total = |v: &[(f64, u64)]| v.last().map(|(_, n)| *n);
            match (at(&before), at(&after), total(&before), total(&after)) {
                (Some(b), Some(a), Some(tb), Some(ta)) if ta > tb => {
                    format!("{:.2} %", 100.0 * (a - b) as f64 / (ta - tb) as f64)
                }
                _ => "?".into(),
            }
        };
        figures.push(figure(
            format!("warm evaluate c={c}: handler time <= 1 ms / <= 2.5 ms (daemon histogram)"),
            format!("{} / {}", share(0.001), share(0.0025)),
            "",
            None,
        ));
        let errors = res.errors();
        figures.push(figure(
            format!("warm evaluate c={c}: throughput"),
            format!("{:.0} req/s", res.rps),
            if c == 64 { ">= 25,000/s" } else { "" },
            (c == 64).then_some(res.rps >= 25_000.0),
        ));
        figures.push(figure(
            format!("warm evaluate c={c}: p50 / p99"),
            format!("{} / {}", fmt_us(res.p50_us), fmt_us(res.p99_us)),
            if c == 8 { "p99 < 2 ms" } else { "" },
            (c == 8).then_some(res.p99_us < 2000.0),
        ));
        figures.push(figure(
            format!("warm evaluate c={c}: errors"),
            format!("{errors} of {}", res.requests),
            "0",
            Some(errors == 0),
        ));
    }
    if let Some(rss) = d.rss_kb() {
        figures.push(rss_figure("RSS after the load", rss));
        if let Some(hwm) = d.status_kb("VmHWM") {
            figures.push(rss_figure("RSS peak (VmHWM)", hwm));
        }
    }

    // Durability: every evaluation the daemon answered has its row.
    let metrics = d.metrics(&client).await?;
    let rows_metric = daemon::metric(&metrics, "lexalign_audit_rows_total").unwrap_or(-1.0) as u64;
    let answered = daemon::metric(
        &metrics,
        "lexalign_http_request_duration_seconds_count{route=\"evaluate\"}",
    )
    .unwrap_or(-1.0) as u64;
    let audit_errors = daemon::metric(&metrics, "lexalign_audit_errors_total").unwrap_or(-1.0);
    // Verifying makes the daemon file every acknowledged row first.
    let verify: serde_json::Value = client
        .get(format!("{}/api/v1/audit/verify", d.base))
        .send()
        .await?
        .json()
        .await?;
    let rows_db = d.row_count()?;
    let chain_ok = verify["ok"].as_bool() == Some(true);
    // Every answered evaluation has its row. A few more rows than answers
    // is expected: when wrk stops it drops connections whose rows were
    // already queued, and those rows commit without a response (at most one
    // per open connection).
    let in_flight_bound: u64 = args.concurrency.iter().map(|&c| u64::from(c)).sum();
    let durable = rows_db >= answered
        && rows_db >= rows_metric
        && rows_db <= answered + in_flight_bound
        && audit_errors == 0.0
        && rows_db >= wrk_completed + paths.len() as u64
        && chain_ok;
    figures.push(figure(
        "audit rows durable after the warm runs",
        format!(
            "{rows_db} rows in SQLite; daemon answered {answered} evaluations, \
             counted {rows_metric} rows, {audit_errors} audit errors; wrk saw {} + {} warm-up; chain {}",
            wrk_completed,
            paths.len(),
            if chain_ok { "verifies" } else { "BROKEN" }
        ),
        "rows >= answered, chain ok",
        Some(durable),
    ));
    d.stop().await;
    Ok(())
}

/// One daemon configuration of the auth part.
struct AuthTarget {
    name: &'static str,
    daemon: Daemon,
    /// Sent on every request (wrk and the warm-up).
    credentials: Vec<(String, String)>,
    script: PathBuf,
}

impl AuthTarget {
    fn request(&self, client: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        let mut r = client
            .get(format!("{}{path}", self.daemon.base))
            .header("X-LexAlign-Project", "bench");
        for (k, v) in &self.credentials {
            r = r.header(k.as_str(), v.as_str());
        }
        r
    }
}

/// An HTTP status, for the sanity checks.
async fn status_of(r: reqwest::RequestBuilder) -> anyhow::Result<u16> {
    Ok(r.send().await?.status().as_u16())
}

/// The cost of authentication on the warm evaluate path: the same load on
/// three daemons (authentication off, API keys, trusted-proxy headers),
/// run in interleaved rounds so that the machine's noise falls on all
/// three alike. The daemons are in process (`--daemon-bin` is not used):
/// only the ratios between them are the figure.
async fn auth_cost(
    args: &Args,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    use lex_align_daemon::auth::{AuthSettings, Backend};

    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    let paths = daemon::mixed_paths();
    let client = reqwest::Client::new();

    let anonymous = Daemon::in_process(index, osv).await?;
    let mut key = None;
    let apikey = Daemon::in_process_with(index, osv, |config| {
        config.auth.enabled = true;
        config.auth.backend = Backend::ApiKey;
        let created = lex_align_store::AccessDb::open(&config.database_path)?
            .create_key("bench", "agent", None, None)?;
        key = Some(created.key);
        Ok(())
    })
    .await?;
    let key = key.context("no API key was created")?;
    let header = Daemon::in_process_with(index, osv, |config| {
        config.auth.enabled = true;
        // The header backend with its defaults (trusts 127.0.0.1/32 and
        // ::1/128): `HeaderSettings` is not exported, and it is the default
        // settings' backend.
        config.auth.backend = AuthSettings::default().backend;
        if !matches!(config.auth.backend, Backend::Header(_)) {
            bail!("the default auth backend is no longer the header backend");
        }
        Ok(())
    })
    .await?;

    let mut targets = Vec::new();
    for (name, daemon, credentials) in [
        ("anonymous", anonymous, vec![]),
        (
            "apikey",
            apikey,
            vec![("Authorization".to_string(), format!("Bearer {key}"))],
        ),
        (
            "header",
            header,
            vec![
                ("X-Forwarded-User".to_string(), "bench".to_string()),
                ("X-Forwarded-Groups".to_string(), "bots".to_string()),
            ],
        ),
    ] {
        let script =
            wrk::write_script_with(&daemon.dir, &format!("{name}.lua"), &paths, &credentials)?;
        eprintln!("auth: {name} daemon (in-process) at {}", daemon.base);
        targets.push(AuthTarget {
            name,
            daemon,
            credentials,
            script,
        });
    }

    // Sanity: the authenticated daemons refuse a request without (or with
    // wrong) credentials and answer one with them, so a load of 200s is a
    // load of authenticated requests.
    let probe = "/api/v1/evaluate?package=httpx";
    let bare = |t: &AuthTarget| {
        client
            .get(format!("{}{probe}", t.daemon.base))
            .header("X-LexAlign-Project", "bench")
    };
    let wrong_key = format!("Bearer {}{}", lex_align_store::KEY_PREFIX, "0".repeat(43));
    let checks = [
        (
            "anonymous, no credentials",
            status_of(bare(&targets[0])).await?,
            200,
        ),
        (
            "apikey, no credentials",
            status_of(bare(&targets[1])).await?,
            401,
        ),
        (
            "apikey, wrong key",
            status_of(bare(&targets[1]).header("Authorization", wrong_key.as_str())).await?,
            401,
        ),
        (
            "apikey, the key",
            status_of(targets[1].request(&client, probe)).await?,
            200,
        ),
        (
            "header, no user header",
            status_of(bare(&targets[2])).await?,
            401,
        ),
        (
            "header, X-Forwarded-User",
            status_of(targets[2].request(&client, probe)).await?,
            200,
        ),
    ];
    for (what, got, want) in checks {
        eprintln!("auth sanity: {what}: HTTP {got}");
        if got != want {
            bail!("auth sanity check {what:?}: HTTP {got}, expected {want}");
        }
    }
    figures.push(figure(
        "auth sanity: apikey daemon without / with the key; header daemon without / with the user header",
        "401 / 200; 401 / 200",
        "401 / 200",
        Some(true),
    ));

    // Warm-up: every URL once (fills each daemon's caches), then a short
    // load at the highest concurrency.
    let top = args.concurrency.iter().copied().max().unwrap_or(64);
    for t in &targets {
        for p in &paths {
            let r = t.request(&client, p).send().await?;
            if r.status() != 200 {
                bail!(
                    "{} warm-up {p}: HTTP {} {}",
                    t.name,
                    r.status(),
                    r.text().await?
                );
            }
        }
        let res = wrk::run(&t.daemon.base, &t.script, top, args.duration.clamp(1, 3)).await?;
        eprintln!("auth warm-up {} c={top}: {res:?}", t.name);
        if res.errors() > 0 {
            bail!("{} warm-up load: {} errors", t.name, res.errors());
        }
    }

    let rounds = args.rounds.max(1);
    for &c in &args.concurrency {
        // results[target][round]
        let mut results: Vec<Vec<wrk::WrkResult>> = vec![Vec::new(); targets.len()];
        for round in 0..rounds {
            // Rotate the order too, so no configuration always runs first.
            for k in 0..targets.len() {
                let i = (k + round) % targets.len();
                let t = &targets[i];
                let res = wrk::run(&t.daemon.base, &t.script, c, args.duration).await?;
                eprintln!(
                    "auth c={c} round {} {}: {:.0} req/s, p99 {}, {} errors",
                    round + 1,
                    t.name,
                    res.rps,
                    fmt_us(res.p99_us),
                    res.errors()
                );
                results[i].push(res);
            }
        }
        let rps = |i: usize| results[i].iter().map(|r| r.rps).collect::<Vec<_>>();
        let base_rps = median(rps(0));
        for (i, t) in targets.iter().enumerate() {
            let v = rps(i);
            let p99 = median(results[i].iter().map(|r| r.p99_us).collect());
            let errors: u64 = results[i].iter().map(|r| r.errors()).sum();
            let requests: u64 = results[i].iter().map(|r| r.requests).sum();
            figures.push(figure(
                format!(
                    "auth c={c} {}: throughput / p99 (median of {rounds})",
                    t.name
                ),
                format!(
                    "{:.0} req/s / {} (req/s min {:.0}, max {:.0})",
                    median(v.clone()),
                    fmt_us(p99),
                    v.iter().cloned().fold(f64::INFINITY, f64::min),
                    v.iter().cloned().fold(0.0, f64::max),
                ),
                "",
                None,
            ));
            figures.push(figure(
                format!("auth c={c} {}: errors", t.name),
                format!("{errors} of {requests}"),
                "0",
                Some(errors == 0),
            ));
            if i == 0 {
                continue;
            }
            // Each round's ratio is against the anonymous run of the same
            // round (minutes apart at most, under the same background
            // load); the figure is their median, the ratio of the medians
            // is shown beside it.
            let paired: Vec<f64> = v.iter().zip(rps(0)).map(|(a, b)| a / b).collect();
            let ratio = median(paired.clone());
            let value = format!(
                "{ratio:.3} (cost {:.1} %; per round {}; ratio of medians {:.3})",
                100.0 * (1.0 - ratio),
                paired
                    .iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                median(v.clone()) / base_rps,
            );
            let is_target = c == 64 && t.name == "apikey";
            figures.push(figure(
                format!(
                    "auth c={c}: {}/anonymous throughput (median of per-round ratios)",
                    t.name
                ),
                value,
                if is_target {
                    "API key costs < 10% of anonymous throughput"
                } else {
                    ""
                },
                is_target.then_some(ratio > 0.90),
            ));
        }
    }
    for t in targets {
        t.daemon.stop().await;
    }
    Ok(())
}

/// Our evaluation path against the HTTP stack's limit. Two in-process
/// daemons from the same `build_app_serving`, so the same middleware
/// (authorization, with authentication off as in the warm part; request
/// metrics; body limit; panic guard; team status), the same hyper/axum
/// server and the same runtime:
/// - "evaluate": the real API: query parsing, registry, caches, the audit
///   row, the serialised verdict;
/// - "fixed": only `GET /api/v1/evaluate`, answering a verdict captured from
///   the first daemon (the one of median size among the load's URLs),
///   without reading the request and without an audit row: the limit;
/// - "fixed+audit": the same answer after appending one fixed audit row
///   through the store, as the real path does before it answers: what of
///   the gap is the audit log.
///
/// Same wrk script (same URLs and headers) for both, in interleaved rounds;
/// the figures are the medians of per-round ratios.
async fn limit(
    args: &Args,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    let paths = daemon::mixed_paths();
    let client = reqwest::Client::new();
    let evaluate = Daemon::in_process(index, osv).await?;

    // Warm the real daemon and keep its answers.
    let mut bodies = Vec::new();
    for p in &paths {
        let r = client
            .get(format!("{}{p}", evaluate.base))
            .header("X-LexAlign-Project", "bench")
            .send()
            .await?;
        if r.status() != 200 {
            bail!("limit warm-up {p}: HTTP {} {}", r.status(), r.text().await?);
        }
        bodies.push(r.bytes().await?);
    }
    bodies.sort_by_key(|b| b.len());
    let fixed_body = bodies[bodies.len() / 2].clone();
    let sizes = (
        bodies[0].len(),
        fixed_body.len(),
        bodies[bodies.len() - 1].len(),
    );

    use axum::http::{header::CONTENT_TYPE, HeaderValue};
    use lex_align_daemon::http::Shared;
    let json = HeaderValue::from_static("application/json");
    let body = fixed_body.clone();
    let ct = json.clone();
    let fixed_routes = axum::Router::new().route(
        "/api/v1/evaluate",
        axum::routing::get(move || {
            let (body, ct) = (body.clone(), ct.clone());
            async move { ([(CONTENT_TYPE, ct)], body) }
        }),
    );
    // The row an anonymous `package=httpx` evaluation writes.
    let row = lex_align_store::AuditRow {
        project: "bench".into(),
        requester: "anonymous".into(),
        package: "httpx".into(),
        canonical: "httpx".into(),
        resolved_version: Some("0.28.1".into()),
        verdict: "ALLOWED".into(),
        reason: Some("Standard async HTTP client.".into()),
        license: Some("BSD-3-Clause".into()),
        registry_status: Some("preferred".into()),
        agent_model: Some("wrk".into()),
        source: "api".into(),
        auth_method: Some("anonymous".into()),
        ..Default::default()
    };
    // Behind an Arc: axum clones the handler (and what it captures) for
    // every request, and a captured row would be copied twice per request
    // where the real path builds it once.
    let captured = std::sync::Arc::new((fixed_body.clone(), json, row));
    let audit_routes = axum::Router::new().route(
        "/api/v1/evaluate",
        axum::routing::get(
            move |axum::extract::State(app): axum::extract::State<Shared>| {
                let (body, ct, row) = (captured.0.clone(), captured.1.clone(), captured.2.clone());
                async move {
                    match app.store.append_audit(row).await {
                        Ok(_) => ([(CONTENT_TYPE, ct)], body).into_response(),
                        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            },
        ),
    );
    let fixed = Daemon::in_process_serving(index, osv, |_| Ok(()), Some(fixed_routes)).await?;
    let audited = Daemon::in_process_serving(index, osv, |_| Ok(()), Some(audit_routes)).await?;
    // Sanity: the fixed daemons answer the captured verdict behind the
    // same stack (its 404 fallback included), the audited one with a row.
    let rows_before = (fixed.row_count()?, audited.row_count()?);
    for d in [&fixed, &audited] {
        let got = client
            .get(format!("{}{}", d.base, paths[0]))
            .header("X-LexAlign-Project", "bench")
            .send()
            .await?;
        if got.status() != 200 || got.bytes().await? != fixed_body {
            bail!("a fixed-verdict daemon does not answer its verdict");
        }
        let missing = client
            .get(format!("{}/api/v1/health", d.base))
            .send()
            .await?
            .status();
        if missing != 404 {
            bail!("a fixed-verdict daemon serves more than its one route: HTTP {missing}");
        }
    }
    // The writer files inbox rows into SQLite a few ms after the answer.
    let mut rows = (0, 0);
    for _ in 0..40 {
        rows = (fixed.row_count()?, audited.row_count()?);
        if rows.1 > rows_before.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if rows != (rows_before.0, rows_before.1 + 1) {
        bail!(
            "audit rows before/after one request: fixed {rows_before:?} -> {rows:?} (want +0, +1)"
        );
    }
    eprintln!(
        "limit: evaluate at {}, fixed at {}, fixed+audit at {}; verdict bodies {}..{} bytes, the fixed one {} bytes",
        evaluate.base, fixed.base, audited.base, sizes.0, sizes.2, sizes.1
    );
    let targets = [
        ("evaluate", &evaluate),
        ("fixed", &fixed),
        ("fixed+audit", &audited),
    ];
    let mut scripts = Vec::new();
    for (name, d) in &targets {
        let script = wrk::write_script(&d.dir, &paths)?;
        let top = args.concurrency.iter().copied().max().unwrap_or(64);
        let res = wrk::run(&d.base, &script, top, args.duration.clamp(1, 3)).await?;
        eprintln!("limit warm-up {name} c={top}: {res:?}");
        if res.errors() > 0 {
            bail!("{name} warm-up load: {} errors", res.errors());
        }
        scripts.push(script);
    }

    let rounds = args.rounds.max(1);
    for &c in &args.concurrency {
        let mut results: Vec<Vec<wrk::WrkResult>> = vec![Vec::new(); targets.len()];
        for round in 0..rounds {
            // Rotate the order too, so no configuration always runs first.
            for k in 0..targets.len() {
                let i = (k + round) % targets.len();
                let (name, d) = targets[i];
                let res = wrk::run(&d.base, &scripts[i], c, args.duration).await?;
                eprintln!(
                    "limit c={c} round {} {name}: {:.0} req/s, p50 {}, p99 {}, {} errors",
                    round + 1,
                    res.rps,
                    fmt_us(res.p50_us),
                    fmt_us(res.p99_us),
                    res.errors()
                );
                results[i].push(res);
            }
        }
        for (i, (name, _)) in targets.iter().enumerate() {
            let rps: Vec<f64> = results[i].iter().map(|r| r.rps).collect();
            let p50 = median(results[i].iter().map(|r| r.p50_us).collect());
            let p99 = median(results[i].iter().map(|r| r.p99_us).collect());
            let errors: u64 = results[i].iter().map(|r| r.errors()).sum();
            let requests: u64 = results[i].iter().map(|r| r.requests).sum();
            figures.push(figure(
                format!("limit c={c} {name}: throughput, p50 / p99 (median of {rounds})"),
                format!(
                    "{:.0} req/s (min {:.0}, max {:.0}), {} / {}",
                    median(rps.clone()),
                    rps.iter().cloned().fold(f64::INFINITY, f64::min),
                    rps.iter().cloned().fold(0.0, f64::max),
                    fmt_us(p50),
                    fmt_us(p99)
                ),
                "",
                None,
            ));
            figures.push(figure(
                format!("limit c={c} {name}: errors"),
                format!("{errors} of {requests}"),
                "0",
                Some(errors == 0),
            ));
        }
        let per_round = |i: usize, f: fn(&wrk::WrkResult) -> f64| -> Vec<f64> {
            results[i]
                .iter()
                .zip(&results[1])
                .map(|(e, x)| f(e) / f(x))
                .collect()
        };
        let list = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let audit_share = per_round(2, |r| r.rps);
        figures.push(figure(
            format!("limit c={c}: fixed+audit/fixed throughput (median of per-round ratios)"),
            format!(
                "{:.2} (per round {})",
                median(audit_share.clone()),
                list(&audit_share)
            ),
            "",
            None,
        ));
        let tput = per_round(0, |r| r.rps);
        let ratio = median(tput.clone());
        figures.push(figure(
            format!("limit c={c}: evaluate/fixed throughput (median of per-round ratios)"),
            format!("{ratio:.2} (per round {})", list(&tput)),
            if c == 64 { ">= 0.7 at c=64" } else { "" },
            (c == 64).then_some(ratio >= 0.7),
        ));
        let tail = per_round(0, |r| r.p99_us);
        let p99_ratio = median(tail.clone());
        figures.push(figure(
            format!("limit c={c}: evaluate/fixed p99 (median of per-round ratios)"),
            format!("{p99_ratio:.2} (per round {})", list(&tail)),
            "<= 1.5",
            Some(p99_ratio <= 1.5),
        ));
    }
    evaluate.stop().await;
    fixed.stop().await;
    audited.stop().await;
    Ok(())
}

fn rss_figure(what: &str, kb: u64) -> Figure {
    figure(
        what,
        format!("{:.1} MB", kb as f64 / 1024.0),
        "< 30 MB",
        Some(kb < 30 * 1024),
    )
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spread(v: &[f64]) -> String {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(0.0, f64::max);
    format!("min {min:.1}, max {max:.1}, n={}", v.len())
}

/// Unregistered packages the index has: each cold sample asks one.
const COLD_PACKAGES: [&str; 10] = [
    "attrs", "rich", "tqdm", "urllib3", "numpy", "pillow", "lxml", "idna", "six", "click",
];

async fn cold_single(
    args: &Args,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let latency = Duration::from_millis(args.latency_ms);
    index.set_latency(latency);
    osv.set_latency(latency);
    let mut took = Vec::new();
    for i in 0..args.samples.max(1) {
        let pkg = COLD_PACKAGES[i % COLD_PACKAGES.len()];
        // Fresh daemon: fresh SQLite file, fresh memory caches.
        let d = Daemon::in_process(index, osv).await?;
        let client = reqwest::Client::new();
        // Open the connection first: the figure is the daemon's, not TCP's.
        client
            .get(format!("{}/api/v1/health", d.base))
            .send()
            .await?;
        let start = Instant::now();
        let r = client
            .get(format!("{}/api/v1/evaluate?package={pkg}", d.base))
            .header("X-LexAlign-Project", "bench")
            .send()
            .await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if status != 200 || !body["upstream_error"].is_null() {
            bail!("cold evaluate of {pkg}: HTTP {status} {body}");
        }
        eprintln!("cold {pkg}: {ms:.1} ms ({})", body["verdict"]);
        took.push(ms);
        d.stop().await;
    }
    let m = median(took.clone());
    figures.push(figure(
        format!(
            "cold evaluate, unknown package, {} ms upstream latency (median)",
            args.latency_ms
        ),
        format!("{m:.1} ms ({})", spread(&took)),
        "<= 60 ms",
        Some(m <= 60.0),
    ));
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    Ok(())
}

async fn cold_batch(
    args: &Args,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let latency = Duration::from_millis(args.latency_ms);
    index.set_latency(latency);
    osv.set_latency(latency);
    // 40 distinct packages the index has, registered or not.
    let mut names = index.project_names();
    names.sort();
    names.truncate(40);
    if names.len() < 40 {
        bail!("the fake index has only {} projects", names.len());
    }
    let body = serde_json::json!({ "packages": names });
    let mut took = Vec::new();
    for _ in 0..args.samples.max(1) {
        let d = Daemon::in_process(index, osv).await?;
        let client = reqwest::Client::new();
        client
            .get(format!("{}/api/v1/health", d.base))
            .send()
            .await?;
        let start = Instant::now();
        let r = client
            .post(format!("{}/api/v1/evaluate/batch", d.base))
            .header("X-LexAlign-Project", "bench")
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: serde_json::Value = r.json().await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let results = v["results"].as_array().context("batch: no results")?;
        let degraded = results
            .iter()
            .filter(|r| !r["upstream_error"].is_null())
            .count();
        if status != 200 || results.len() != 40 || degraded > 0 {
            bail!(
                "cold batch: HTTP {status}, {} results, {degraded} with upstream_error: {v}",
                results.len()
            );
        }
        eprintln!("cold batch of 40: {ms:.1} ms");
        took.push(ms);
        d.stop().await;
    }
    let m = median(took.clone());
    figures.push(figure(
        format!(
            "cold batch of 40, {} ms upstream latency (median)",
            args.latency_ms
        ),
        format!("{m:.1} ms ({})", spread(&took)),
        "< 300 ms",
        Some(m < 300.0),
    ));
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    Ok(())
}

/// `kill -9` under load: every response wrk received has its row.
async fn kill_under_load(
    bin: &std::path::Path,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let d = Daemon::child(bin, index, osv).await?;
    let paths = daemon::mixed_paths();
    let script = wrk::write_script(&d.dir, &paths)?;
    let pid = d.pid().context("child daemon has a pid")?;
    let base = d.base.clone();
    let load = tokio::spawn(async move { wrk::run(&base, &script, 64, 4).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SIGKILL: no shutdown path runs.
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -9 {pid} failed");
    }
    let res = load.await??;
    let acknowledged = res.requests.saturating_sub(res.non_2xx);
    let rows = d.row_count()?;
    figures.push(figure(
        "kill -9 under load (c=64): rows vs acknowledged",
        format!("{rows} rows in SQLite, wrk received {acknowledged} 200s"),
        "rows >= acknowledged",
        Some(rows >= acknowledged),
    ));
    d.stop().await;
    Ok(())
}
