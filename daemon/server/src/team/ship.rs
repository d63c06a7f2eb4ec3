//! The shipper: every audit row a personal daemon writes goes to its team
//! server (`POST /api/v1/audit/ingest`), in order, in batches of up to
//! 500; the outbox cursor moves only on the team's 2xx, so nothing is lost
//! and a retried batch is deduplicated by the team.

use std::sync::{Arc, Weak};
use std::time::Duration;

use lex_align_store::outbox::SHIP_BATCH_MAX;

use super::follow::{classify, transport, Fail};
use super::forward::Forwarder;
use super::status::{now, LinkCell};
use super::{bearer, FollowSettings};
use crate::http::AppState;

const BACKOFF_START: Duration = Duration::from_millis(250);

/// Niceness of the shipper's lane.
const LANE_NICE: i32 = 10;

type LaneJob = Box<dyn FnOnce() + Send>;

/// The shipper's blocking work runs on one thread of its own at a lower CPU
/// priority: on a busy laptop the answers to editors, hooks and agents come
/// first, and the queue (durable in SQLite) waits for a free moment. When
/// the machine is idle the lane gets the CPU at once.
fn lane() -> &'static std::sync::mpsc::Sender<LaneJob> {
    static LANE: std::sync::OnceLock<std::sync::mpsc::Sender<LaneJob>> = std::sync::OnceLock::new();
    LANE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<LaneJob>();
        std::thread::Builder::new()
            .name("lex-align-ship".into())
            .spawn(move || {
                lower_priority();
                for job in rx {
                    // A panicking read must not take the lane (and every
                    // later delivery) with it; its caller sees the drop.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .expect("spawning the shipper's thread");
        tx
    })
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux a thread id names one thread for setpriority.
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), LANE_NICE) {
        tracing::debug!("lowering the shipper thread's priority failed: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Runs `f` on the lane and waits for its answer.
async fn on_lane<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, lex_align_store::StoreError> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    lane()
        .send(Box::new(move || {
            let _ = tx.send(f());
        }))
        .map_err(|_| "the shipper's thread is gone".to_string())?;
    rx.await
        .map_err(|_| "the shipper's thread dropped the read".to_string())?
        .map_err(|e| e.to_string())
}

/// One delivery attempt: `Ok(rows sent)` (0 when the queue was empty).
async fn ship_once(
    app: &AppState,
    link: &LinkCell,
    settings: &FollowSettings,
    client: &reqwest::Client,
) -> Result<usize, Fail> {
    // Read and serialised off the async workers (a 500-row body takes a
    // millisecond or two), on the low-priority lane.
    let store = app.store.clone();
    let (body, n, upto_seq) = on_lane(move || store.outbox_body(SHIP_BATCH_MAX))
        .await
        .map_err(|e| Fail::Away(format!("outbox read failed: {e}")))?;
    if n == 0 {
        return Ok(0);
    }
    let mut req = client
        .post(format!("{}/api/v1/audit/ingest", settings.url))
        .timeout(settings.timeout)
        .header("content-type", "application/json")
        .body(body);
    if let Some(b) = bearer(settings) {
        req = req.header("authorization", b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| transport(&e, settings.timeout))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let detail = resp.text().await.unwrap_or_default();
        return Err(match classify(status, "POST /api/v1/audit/ingest") {
            Fail::Away(m) => Fail::Away(format!(
                "{m}: {}",
                detail.chars().take(300).collect::<String>()
            )),
            auth => auth,
        });
    }
    app.store.outbox_ack(upto_seq).await.map_err(|e| {
        Fail::Away(format!(
            "outbox cursor not saved (the batch is sent again): {e}"
        ))
    })?;
    link.update(|l| {
        l.shipped_rows += n as u64;
        l.last_batch = n;
        l.last_contact_at = Some(now());
        l.ship_error = None;
    });
    Ok(n)
}

/// The shipper loop. Ends when the app is gone or the credential is refused.
pub async fn run(
    app: Weak<AppState>,
    link: Arc<LinkCell>,
    forwarder: Arc<Forwarder>,
    settings: FollowSettings,
    client: reqwest::Client,
) {
    let mut backoff = BACKOFF_START;
    loop {
        if link.is_revoked() {
            return;
        }
        let Some(state) = app.upgrade() else { return };
        let shipped = ship_once(&state, &link, &settings, &client).await;
        // The team answers: hand it the queued decisions too (a failure
        // there is recorded in its own slot by the forwarder).
        let forwarded = match &shipped {
            Ok(_) => forwarder.drain(&state).await.map(|_| ()),
            Err(_) => Ok(()),
        };
        drop(state);
        match (shipped, forwarded) {
            (Err(Fail::Auth(m)), _) => {
                link.revoke(m);
                return;
            }
            // The forwarder revoked the link itself.
            (_, Err(Fail::Auth(_))) => return,
            (Err(Fail::Away(m)), _) => {
                tracing::debug!("shipping audit rows failed: {m}");
                link.update(|l| LinkCell::set_error(&mut l.ship_error, m));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(settings.poll);
            }
            (Ok(_), Err(Fail::Away(m))) => {
                tracing::debug!("forwarding to the team failed: {m}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(settings.poll);
            }
            // A full batch: more are likely waiting.
            (Ok(n), Ok(())) if n == SHIP_BATCH_MAX => {
                backoff = BACKOFF_START;
            }
            (Ok(_), Ok(())) => {
                backoff = BACKOFF_START;
                tokio::time::sleep(settings.ship_every).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_lane_answers_at_a_lower_priority_and_survives_a_panic() {
        let seen = on_lane(|| Ok(std::fs::read_to_string("/proc/thread-self/stat").ok()))
            .await
            .unwrap();
        if cfg!(target_os = "linux") {
            // Field 19 of stat is the nice value; the comm field (2) is
            // "(lex-align-ship)", without spaces.
            let stat = seen.expect("/proc/thread-self/stat on Linux");
            let fields: Vec<&str> = stat.split_whitespace().collect();
            assert_eq!(fields[1], "(lex-align-ship)");
            assert_eq!(fields[18], LANE_NICE.to_string(), "{stat}");
        }
        let lost = on_lane::<()>(|| panic!("a read that panics")).await;
        assert!(lost.unwrap_err().contains("dropped"));
        assert_eq!(on_lane(|| Ok(7)).await.unwrap(), 7);
    }
}
