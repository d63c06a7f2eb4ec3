//! What a plugin call costs: one authenticate through the host (request
//! JSON, hand-off to a pool thread, the native call, answer checks, hand-back)
//! for the C authenticator and the Rust SDK one, one caller and eight.
//!
//!     cargo bench -p lex-align-plugin-host --bench calls
//!
//! Prints figures; asserts nothing about speed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lex_align_plugin_host::{Answer, AuthCall, HostSettings, Kind, Op, PluginHost};
use lex_align_plugin_testkit::{c_plugin, install, rust_plugin, CSource, TEST_AUTH};

fn op(token: &str) -> Op {
    let mut headers = BTreeMap::new();
    headers.insert("authorization".to_string(), format!("Bearer {token}"));
    headers.insert("x-lexalign-project".to_string(), "web".to_string());
    headers.insert("user-agent".to_string(), "lex-align-client/0.1".to_string());
    Op::Authenticate(AuthCall {
        method: "GET".into(),
        path: "/api/v1/evaluate".into(),
        headers,
        peer: Some("127.0.0.1:50000".into()),
    })
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    c_plugin(CSource::Auth, &[], tmp.path(), "c-auth");
    install(&rust_plugin(TEST_AUTH), tmp.path(), "test-auth", None);
    let host = PluginHost::load(HostSettings {
        dirs: vec![tmp.path().to_path_buf()],
        timeout: Duration::from_secs(2),
    });
    const N: usize = 50_000;
    for (name, token) in [("c-auth", "c.ann"), ("test-auth", "ok.ann")] {
        let p = host.select(name, Kind::Authenticator).unwrap();
        let request = op(token);
        for _ in 0..1000 {
            assert!(matches!(p.call(&request), Ok(Answer::Identity(_))));
        }
        let start = Instant::now();
        for _ in 0..N {
            assert!(matches!(p.call(&request), Ok(Answer::Identity(_))));
        }
        let one = start.elapsed();
        println!(
            "{name}: 1 caller:  {:.1} µs per call ({N} calls)",
            one.as_secs_f64() * 1e6 / N as f64
        );
        let threads = 8;
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let p = p.clone();
                let request = request.clone();
                s.spawn(move || {
                    for _ in 0..N / threads {
                        assert!(matches!(p.call(&request), Ok(Answer::Identity(_))));
                    }
                });
            }
        });
        let all = start.elapsed();
        println!(
            "{name}: {threads} callers: {:.0} calls/s",
            N as f64 / all.as_secs_f64()
        );
    }
}
