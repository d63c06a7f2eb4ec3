//! Runs Debian's `wrk` with a Lua script rotating through the mixed URLs and
//! parses its summary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Requests are formatted once in `init`; `request` only rotates, so the Lua
/// side costs little of the machine's two cores.
pub fn write_script(dir: &Path, paths: &[String]) -> anyhow::Result<PathBuf> {
    write_script_with(dir, "mixed.lua", paths, &[])
}

/// [`write_script`] with `extra` headers on every request (credentials).
/// They go into the script, not to wrk's `-H`: `wrk.format` given its own
/// header table ignores `-H`.
pub fn write_script_with(
    dir: &Path,
    name: &str,
    paths: &[String],
    extra: &[(String, String)],
) -> anyhow::Result<PathBuf> {
    let headers = [
        ("X-LexAlign-Project", "bench"),
        ("X-LexAlign-Agent-Model", "wrk"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain(extra.iter().cloned())
    .map(|(k, v)| format!("[{}] = {}", lua_str(&k), lua_str(&v)))
    .collect::<Vec<_>>()
    .join(", ");
    let list = paths
        .iter()
        .map(|p| format!("  {},", lua_str(p)))
        .collect::<Vec<_>>()
        .join("\n");
    let script = format!(
        r#"local paths = {{
{list}
}}
local reqs = {{}}
local i = 0
function init(args)
  for k, p in ipairs(paths) do
    reqs[k] = wrk.format("GET", p, {{ {headers} }})
  end
  -- Threads start at different offsets so the mix is the same at any moment.
  i = math.random(#reqs)
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
"#
    );
    let path = dir.join(name);
    std::fs::write(&path, script)?;
    Ok(path)
}

/// A Lua string literal: printable ASCII as is, everything else escaped.
fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

#[derive(Debug, Default, Clone)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub non_2xx: u64,
    pub socket_errors: u64,
}

impl WrkResult {
    pub fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

pub async fn run(base: &str, script: &Path, conns: u32, secs: u64) -> anyhow::Result<WrkResult> {
    run_on(base, script, conns, secs, None).await
}

/// [`run`] with wrk pinned to `cpus` (a `taskset -c` list).
pub async fn run_on(
    base: &str,
    script: &Path,
    conns: u32,
    secs: u64,
    cpus: Option<&str>,
) -> anyhow::Result<WrkResult> {
    // LEXALIGN_BENCH_WRK_THREADS: wrk's own threads compete with the daemon
    // for the same cores, so the load generator's size is worth varying.
    let threads = std::env::var("LEXALIGN_BENCH_WRK_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| conns.clamp(1, 2));
    let mut cmd = match cpus {
        Some(list) => {
            let mut c = tokio::process::Command::new("taskset");
            c.args(["-c", list, "wrk"]);
            c
        }
        None => tokio::process::Command::new("wrk"),
    };
    let out = cmd
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("{base}/"))
        .output()
        .await
        .context("cannot run wrk (apt-get install -y wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

fn duration_us(s: &str) -> Option<f64> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))?;
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        "m" => n * 60e6,
        _ => return None,
    })
}

pub fn parse(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => r.p50_us = duration_us(v)?,
            ["99%", v] => r.p99_us = duration_us(v)?,
            [n, "requests", "in", ..] => r.requests = n.parse().ok()?,
            ["Requests/sec:", v] => r.rps = v.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                r.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    (r.requests > 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wrk_summary() {
        let text = "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 8 connections\n  Latency Distribution\n     50%  120.00us\n     75%  200.00us\n     90%  300.00us\n     99%    1.50ms\n  12345 requests in 1.00s, 9.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  12345.00\nTransfer/sec:      9.00MB\n";
        let r = parse(text).unwrap();
        assert_eq!(r.requests, 12345);
        assert_eq!(r.p50_us, 120.0);
        assert_eq!(r.p99_us, 1500.0);
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.non_2xx, 4);
        assert_eq!(r.errors(), 7);
        assert_eq!(r.rps, 12345.0);
    }

    #[test]
    fn scripts_carry_extra_headers() {
        let dir = tempfile::tempdir().unwrap();
        let extra = [("Authorization".to_string(), "Bearer lxa_a\"b".to_string())];
        let p = write_script_with(dir.path(), "k.lua", &["/x?a=1".into()], &extra).unwrap();
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            text.contains(r#"["Authorization"] = "Bearer lxa_a\"b""#),
            "{text}"
        );
        assert!(
            text.contains(r#"["X-LexAlign-Project"] = "bench""#),
            "{text}"
        );
        assert!(text.contains(r#"  "/x?a=1","#), "{text}");
        assert_eq!(lua_str("é"), r#""\195\169""#);
    }
}
