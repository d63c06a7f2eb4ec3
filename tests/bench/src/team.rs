//! `--only team` (issue 11): a team server and a personal daemon following
//! it, both release binaries as children, beside a standalone daemon:
//! - warm evaluate through the personal daemon vs the standalone, in
//!   interleaved rounds at each concurrency (target >= 0.9x);
//! - propagation of a registry change team -> personal (SSE follow), from
//!   the registry file write and reload on the team to the personal health naming
//!   the new version (target p99 < 500 ms);
//! - drain rate of a queue of audit rows after an outage (team SIGSTOPped,
//!   the personal daemon answering on, then SIGCONT).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lex_align_fakes::{FakeIndex, FakeOsv};
use serde_json::Value;

use crate::daemon::{self, Daemon};
use crate::{figure, fmt_us, median, wrk, Args, Figure};

/// Every wait of this part is bounded by it.
const DEADLINE: Duration = Duration::from_secs(300);

struct Team {
    team: Daemon,
    personal: Daemon,
    operator_key: String,
}

async fn health_team(client: &reqwest::Client, d: &Daemon) -> anyhow::Result<Value> {
    let v: Value = client
        .get(format!("{}/api/v1/health", d.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["team"].clone())
}

/// Polls the personal daemon's team health every `every` until `cond`.
async fn wait_team(
    client: &reqwest::Client,
    d: &Daemon,
    what: &str,
    every: Duration,
    cond: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let start = Instant::now();
    loop {
        let t = health_team(client, d).await?;
        if cond(&t) {
            return Ok(t);
        }
        if start.elapsed() > DEADLINE {
            bail!("{what}: not reached within {DEADLINE:?}; team health {t}");
        }
        tokio::time::sleep(every).await;
    }
}

async fn start(bin: &Path, index: &FakeIndex, osv: &FakeOsv) -> anyhow::Result<Team> {
    let mut keys = None;
    let team = Daemon::child_with(
        bin,
        index,
        osv,
        &[
            ("AUTH_ENABLED".into(), "true".into()),
            ("AUTH_BACKEND".into(), "apikey".into()),
        ],
        |db| {
            let access = lex_align_store::AccessDb::open(db)?;
            let agent = access.create_key("bench-laptop", "agent", None, None)?;
            let ops = access.create_key("bench-ops", "operator", None, None)?;
            keys = Some((agent.key, ops.key));
            Ok(())
        },
    )
    .await?;
    let (agent_key, operator_key) = keys.context("no keys were made")?;
    let personal = Daemon::child_with(
        bin,
        index,
        osv,
        &[
            ("LEXALIGN_TEAM_URL".into(), team.base.clone()),
            ("LEXALIGN_API_KEY".into(), agent_key),
            // The SSE stream carries changes; the poll is the fallback.
            ("LEXALIGN_TEAM_POLL_SECONDS".into(), "3".into()),
            ("LEXALIGN_TEAM_TIMEOUT_SECONDS".into(), "2".into()),
        ],
        |_| Ok(()),
    )
    .await?;
    let client = reqwest::Client::new();
    wait_team(
        &client,
        &personal,
        "first sync",
        Duration::from_millis(50),
        |t| t["state"] == "following" && t["events_connected"] == true,
    )
    .await?;
    Ok(Team {
        team,
        personal,
        operator_key,
    })
}

pub async fn run(
    args: &Args,
    bin: &Path,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    let client = reqwest::Client::new();
    let t = start(bin, index, osv).await?;
    let standalone = Daemon::child(bin, index, osv).await?;
    eprintln!(
        "team: team server {}, personal {}, standalone {}",
        t.team.base, t.personal.base, standalone.base
    );
    let wrk_cpus = isolate(&args.team_isolation, &t, &standalone)?;
    throughput(args, &client, &t, &standalone, wrk_cpus.as_deref(), figures).await?;
    standalone.stop().await;
    // Propagation and drain on the whole machine again.
    let all = format!("0-{}", cpus()? - 1);
    for d in [&t.team, &t.personal] {
        d.pin(&all)?;
        d.renice(0)?;
    }
    propagation(args, &client, &t, figures).await?;
    drain(&client, &t, figures).await?;
    t.personal.stop().await;
    t.team.stop().await;
    Ok(())
}

fn cpus() -> anyhow::Result<usize> {
    Ok(std::thread::available_parallelism()?.get())
}

/// Keeps the team server off the measured side's CPU (see `--team-isolation`);
/// returns the CPUs wrk is to run on.
fn isolate(how: &str, t: &Team, standalone: &Daemon) -> anyhow::Result<Option<String>> {
    match how {
        "cpu" => {
            let n = cpus()?;
            if n < 2 {
                bail!("--team-isolation cpu needs 2 CPUs (this machine has {n}); use nice or none");
            }
            let measured = if n == 2 {
                "0".to_string()
            } else {
                format!("0-{}", n - 2)
            };
            t.team.pin(&(n - 1).to_string())?;
            t.personal.pin(&measured)?;
            standalone.pin(&measured)?;
            eprintln!(
                "team: team server on CPU {}, personal, standalone and wrk on CPU {measured}",
                n - 1
            );
            Ok(Some(measured))
        }
        "nice" => {
            t.team.renice(19)?;
            eprintln!("team: the team server runs at nice 19");
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn isolation_label(how: &str) -> String {
    match how {
        "cpu" => "team server on a core of its own".into(),
        "nice" => "team server at nice 19".into(),
        _ => "team server sharing every core".into(),
    }
}

async fn throughput(
    args: &Args,
    client: &reqwest::Client,
    t: &Team,
    standalone: &Daemon,
    wrk_cpus: Option<&str>,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let paths = daemon::mixed_paths();
    let targets = [("standalone", standalone), ("personal", &t.personal)];
    // Same verdicts first: the personal daemon answers with the team's
    // registry (the same file) and the team's upstream answers.
    for p in &paths {
        let mut got = Vec::new();
        for (name, d) in targets {
            let r = client
                .get(format!("{}{p}", d.base))
                .header("X-LexAlign-Project", "bench")
                .send()
                .await?;
            if r.status() != 200 {
                bail!("{name} warm-up {p}: HTTP {}", r.status());
            }
            let v: Value = r.json().await?;
            got.push((v["verdict"].clone(), v["reason"].clone()));
        }
        if got[0] != got[1] {
            bail!("{p}: standalone {:?} but personal {:?}", got[0], got[1]);
        }
    }
    figures.push(figure(
        "team: personal vs standalone verdicts on the warm mix",
        format!("{} URLs, verdict and reason identical", paths.len()),
        "identical",
        Some(true),
    ));
    let scripts = [
        wrk::write_script(&standalone.dir, &paths)?,
        wrk::write_script(&t.personal.dir, &paths)?,
    ];
    let rounds = args.rounds.max(1);
    for &c in &args.concurrency {
        let mut results: Vec<Vec<wrk::WrkResult>> = vec![Vec::new(), Vec::new()];
        for round in 0..rounds {
            for k in 0..2 {
                let i = (k + round) % 2;
                let (name, d) = targets[i];
                // Each run starts on a quiet machine: the team server has
                // ingested what the last personal run queued (it shares
                // these cores; on a real team it has its own).
                wait_team(
                    client,
                    &t.personal,
                    "queue drained before a run",
                    Duration::from_millis(20),
                    |h| h["outbox"]["depth"] == 0,
                )
                .await?;
                let res = wrk::run_on(&d.base, &scripts[i], c, args.duration, wrk_cpus).await?;
                eprintln!(
                    "team c={c} round {} {name}: {:.0} req/s, p99 {}, {} errors",
                    round + 1,
                    res.rps,
                    fmt_us(res.p99_us),
                    res.errors()
                );
                results[i].push(res);
            }
        }
        let rps = |i: usize| results[i].iter().map(|r| r.rps).collect::<Vec<_>>();
        for (i, (name, _)) in targets.iter().enumerate() {
            let p99 = median(results[i].iter().map(|r| r.p99_us).collect());
            let errors: u64 = results[i].iter().map(|r| r.errors()).sum();
            let requests: u64 = results[i].iter().map(|r| r.requests).sum();
            figures.push(figure(
                format!("team c={c} {name}: throughput / p99 (median of {rounds})"),
                format!("{:.0} req/s / {}", median(rps(i)), fmt_us(p99)),
                "",
                None,
            ));
            figures.push(figure(
                format!("team c={c} {name}: errors"),
                format!("{errors} of {requests}"),
                "0",
                Some(errors == 0),
            ));
        }
        let paired: Vec<f64> = rps(1).iter().zip(rps(0)).map(|(a, b)| a / b).collect();
        let ratio = median(paired.clone());
        figures.push(figure(
            format!(
                "team c={c}: personal/standalone throughput, {} (median of per-round ratios)",
                isolation_label(&args.team_isolation)
            ),
            format!(
                "{ratio:.3} (per round {})",
                paired
                    .iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ">= 0.9",
            Some(ratio >= 0.9),
        ));
    }
    Ok(())
}

/// Registry changes on the team, each timed until the personal daemon's
/// health names the new version (polled every 2 ms: the resolution).
async fn propagation(
    args: &Args,
    client: &reqwest::Client,
    t: &Team,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let samples = args.samples.max(5) * 2;
    let mut ms = Vec::new();
    for n in 0..samples {
        let version = format!("bench-{n}");
        // From the file write: the team may also pick the change up itself.
        let started = Instant::now();
        std::fs::write(
            t.team.registry_path(),
            daemon::registry_yaml_versioned(&version),
        )?;
        let r = client
            .post(format!("{}/api/v1/registry/reload", t.team.base))
            .bearer_auth(&t.operator_key)
            .send()
            .await?;
        if r.status() != 200 {
            bail!(
                "reload on the team: HTTP {} {}",
                r.status(),
                r.text().await?
            );
        }
        wait_team(
            client,
            &t.personal,
            "registry change",
            Duration::from_millis(2),
            |h| h["registry_version"] == version.as_str(),
        )
        .await?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    // The nearest-rank p99 of a few dozen samples is their maximum.
    let rank = ((0.99 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    let p99 = sorted[rank - 1];
    figures.push(figure(
        format!("team: registry change team -> personal ({samples} changes)"),
        format!(
            "p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
            median(ms.clone()),
            sorted[sorted.len() - 1]
        ),
        "p99 < 500 ms",
        Some(p99 < 500.0),
    ));
    Ok(())
}

/// Rows queued on the personal daemon while the team is stopped, then the
/// time the queue takes to empty once it is back.
async fn drain(
    client: &reqwest::Client,
    t: &Team,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    const ROWS: u64 = 100_000;
    t.team.signal("STOP")?;
    let outcome = async {
        wait_team(
            client,
            &t.personal,
            "outage seen",
            Duration::from_millis(50),
            |h| !h["degraded"].is_null(),
        )
        .await?;
        let paths = daemon::mixed_paths();
        let script = wrk::write_script_with(&t.personal.dir, "drain.lua", &paths, &[])?;
        let mut depth = 0;
        let start = Instant::now();
        while depth < ROWS {
            let res = wrk::run(&t.personal.base, &script, 64, 5).await?;
            if res.errors() > 0 {
                bail!("load in the outage: {} errors", res.errors());
            }
            let h = health_team(client, &t.personal).await?;
            depth = h["outbox"]["depth"].as_u64().unwrap_or(0);
            eprintln!("team drain: queue {depth} rows after {:?}", start.elapsed());
            if start.elapsed() > DEADLINE {
                bail!("the queue reached only {depth} rows");
            }
        }
        Ok(depth)
    }
    .await;
    // The team comes back whatever happened above.
    t.team.signal("CONT")?;
    let depth = outcome?;
    let resumed = Instant::now();
    wait_team(
        client,
        &t.personal,
        "queue drained",
        Duration::from_millis(20),
        |h| h["outbox"]["depth"] == 0,
    )
    .await?;
    let total = resumed.elapsed().as_secs_f64();
    figures.push(figure(
        format!("team: drain of {depth} queued audit rows after an outage (SIGSTOP/SIGCONT)"),
        format!(
            "{:.0} rows/s ({depth} rows in {total:.1} s from SIGCONT to an empty queue)",
            depth as f64 / total
        ),
        "",
        None,
    ));
    Ok(())
}
