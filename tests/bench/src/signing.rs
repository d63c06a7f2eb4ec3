//! `--only signing`: what a signed verdict costs under load. One
//! in-process daemon, the warm mix of evaluate URLs plain and with
//! `&envelope=dsse` (Ed25519 over the DSSE PAE per answer), wrk at each
//! `--concurrency`, interleaved `--rounds`; the figure is the median of the
//! per-round throughput ratios. (`cargo bench -p lex-align-daemon --bench
//! signing` breaks the cost down in process.)

use std::time::Duration;

use anyhow::bail;
use lex_align_fakes::{FakeIndex, FakeOsv};

use crate::daemon::{self, Daemon};
use crate::{figure, fmt_us, median, wrk, Args, Figure};

pub async fn signing(
    args: &Args,
    index: &FakeIndex,
    osv: &FakeOsv,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    let d = Daemon::in_process(index, osv).await?;
    let plain = daemon::mixed_paths();
    let signed: Vec<String> = plain.iter().map(|p| format!("{p}&envelope=dsse")).collect();
    let client = reqwest::Client::new();
    // Sanity: the signed URLs answer envelopes, the plain ones verdicts,
    // and every URL is warm (verdicts memoised) before the load.
    for (p, want_envelope) in plain
        .iter()
        .map(|p| (p, false))
        .chain(signed.iter().map(|p| (p, true)))
    {
        let r = client
            .get(format!("{}{p}", d.base))
            .header("X-LexAlign-Project", "bench")
            .send()
            .await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        let is_envelope = body.get("payloadType").is_some() && body.get("signatures").is_some();
        if status != 200 || is_envelope != want_envelope {
            bail!("signing sanity {p}: HTTP {status}, envelope {is_envelope}: {body}");
        }
    }
    let scripts = [
        ("plain", wrk::write_script(&d.dir, &plain)?),
        (
            "dsse",
            wrk::write_script_with(&d.dir, "dsse.lua", &signed, &[])?,
        ),
    ];
    let rounds = args.rounds.max(1);
    for &c in &args.concurrency {
        let mut res: [Vec<wrk::WrkResult>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for k in 0..2 {
                let i = (k + round) % 2;
                let r = wrk::run(&d.base, &scripts[i].1, c, args.duration).await?;
                eprintln!(
                    "signing c={c} round {} {}: {:.0} req/s, p99 {}, {} errors",
                    round + 1,
                    scripts[i].0,
                    r.rps,
                    fmt_us(r.p99_us),
                    r.errors()
                );
                if r.errors() > 0 {
                    bail!("signing load {}: {} errors", scripts[i].0, r.errors());
                }
                res[i].push(r);
            }
        }
        let rps = |i: usize| res[i].iter().map(|r| r.rps).collect::<Vec<_>>();
        let ratio = median(rps(1).iter().zip(rps(0)).map(|(s, p)| s / p).collect());
        for (i, (name, _)) in scripts.iter().enumerate() {
            figures.push(figure(
                format!("signing c={c} {name}: throughput / p99 (median of {rounds})"),
                format!(
                    "{:.0} req/s / {}",
                    median(rps(i)),
                    fmt_us(median(res[i].iter().map(|r| r.p99_us).collect()))
                ),
                "",
                None,
            ));
        }
        figures.push(figure(
            format!("signing c={c}: dsse / plain throughput (median of per-round ratios)"),
            format!("{ratio:.3}"),
            "",
            None,
        ));
    }
    d.stop().await;
    Ok(())
}
