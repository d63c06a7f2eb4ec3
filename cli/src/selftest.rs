//! `selftest`: probe `/api/v1/health` and report whether the daemon is alive.

use std::time::Duration;

use crate::fail;

pub fn run(url: &str, timeout: f64) -> u8 {
    let health = format!("{}/api/v1/health", url.trim_end_matches('/'));
    if !(timeout.is_finite() && timeout > 0.0) {
        return fail(format!(
            "--timeout must be a positive number of seconds, got {timeout}"
        ));
    }
    let rt = runtime();
    let result = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(timeout))
            .build()?;
        let resp = client.get(&health).send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    });
    let (status, body) = match result {
        Ok(r) => r,
        Err(e) => {
            return fail(format!(
                "Server unreachable at {health}: {}",
                error_chain(&e)
            ))
        }
    };
    if status.as_u16() != 200 {
        return fail(format!(
            "Health check failed: HTTP {} from {health}",
            status.as_u16()
        ));
    }
    println!("OK  {health}");
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON values always serialize")
        ),
        Err(_) => println!("{body}"),
    }
    0
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// reqwest's top-level message ("error sending request") hides the cause
/// (connection refused, timeout); show the whole chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// `GET <health>` with `LEXALIGN_API_KEY` as the bearer token when set:
/// (status, body). Shared by `team status` and `plugins list`.
pub(crate) fn get_health(health: &str) -> Result<(u16, String), reqwest::Error> {
    let key = std::env::var("LEXALIGN_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        let mut req = client.get(health);
        if let Some(k) = &key {
            req = req.bearer_auth(k.trim());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    })
}
