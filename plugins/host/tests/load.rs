//! The host against real shared libraries: the Rust test plugins cargo
//! built, and C plugins compiled here with `cc`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lex_align_plugin_host::{
    Answer, AuthCall, CallError, HostSettings, Kind, LibraryReport, Op, PluginHost, PluginState,
    SelectError, MAX_STUCK,
};
use lex_align_plugin_testkit::{c_plugin, install, rust_plugin, CSource, TEST_AUTH};

fn host(dirs: &[&Path], timeout_ms: u64) -> PluginHost {
    PluginHost::load(HostSettings {
        dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
        timeout: Duration::from_millis(timeout_ms),
    })
}

fn auth(token: &str) -> Op {
    let mut headers = BTreeMap::new();
    headers.insert("authorization".to_string(), format!("Bearer {token}"));
    Op::Authenticate(AuthCall {
        method: "GET".into(),
        path: "/api/v1/evaluate".into(),
        headers,
        peer: Some("127.0.0.1:5000".into()),
    })
}

fn by_name<'a>(report: &'a [LibraryReport], file: &str) -> &'a LibraryReport {
    report
        .iter()
        .find(|r| r.path.ends_with(file))
        .unwrap_or_else(|| panic!("{file} not in {report:#?}"))
}

fn identity(a: Result<Answer, CallError>) -> String {
    match a {
        Ok(Answer::Identity(i)) => i.id,
        other => panic!("expected an identity, got {other:?}"),
    }
}

#[test]
fn broken_libraries_are_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    c_plugin(CSource::Auth, &[], &a, "c-auth");
    // Sorted after c-auth: the second of two libraries named c-auth.
    c_plugin(CSource::Auth, &[], &a, "zz-dup");
    for (flag, name) in [
        ("WRONG_ABI", "c-wrong-abi"),
        ("NO_SYMBOL", "c-no-symbol"),
        ("BAD_NAME", "c-bad-name"),
        ("BAD_KIND", "c-bad-kind"),
        ("NULL_CALL", "c-null-call"),
        ("FAIL_CONFIGURE", "c-fail-configure"),
        ("BAD_CONFIGURE", "c-bad-configure"),
    ] {
        let def = format!("PLUGIN_NAME=\"{name}\"");
        c_plugin(CSource::Broken, &[flag, &def], &a, name);
    }
    std::fs::write(a.join("README.txt"), "not a library").unwrap();
    std::fs::write(a.join("garbage.so"), "not ELF either").unwrap();
    // A Rust plugin whose configure fails on its config file, and one
    // whose config file is not JSON.
    install(
        &rust_plugin(TEST_AUTH),
        &b,
        "test-auth",
        Some(("test-auth", r#"{"fail":"issuer is required"}"#)),
    );
    let missing = tmp.path().join("missing");

    let h = host(&[&a, &b, &missing], 2000);
    let r = h.report();
    let fails = |file: &str, needle: &str| {
        let e = by_name(&r, file);
        assert_eq!(e.state, PluginState::Failed, "{e:?}");
        let err = e.error.as_deref().unwrap();
        assert!(err.contains(needle), "{file}: {err}");
        e.clone()
    };
    let e = fails(
        "c-wrong-abi.so",
        "ABI version 2; this daemon implements version 1",
    );
    // Nothing but the version was read from a foreign ABI's struct.
    assert_eq!((e.abi, e.name.as_deref()), (Some(2), None));
    let e = fails("c-no-symbol.so", "no entry symbol `lex_align_plugin`");
    assert_eq!(e.abi, None);
    fails("c-bad-name.so", "bad name \"Bad Name!\"");
    fails("c-bad-kind.so", "unknown kind \"gatekeeper\"");
    fails("c-null-call.so", "call or free_response is NULL");
    fails(
        "c-fail-configure.so",
        "configure failed (400): missing setting: issuer",
    );
    fails("c-bad-configure.so", "configure answer is neither");
    fails("garbage.so", "cannot load the library");
    fails("zz-dup.so", "duplicate name \"c-auth\": already used by");
    fails(
        "b/test-auth.so",
        "configure failed (400): issuer is required",
    );
    fails("missing", "cannot read the plugin directory");
    assert!(!r.iter().any(|e| e.path.ends_with("README.txt")));

    let good = by_name(&r, "a/c-auth.so");
    assert_eq!(
        (
            good.state,
            good.name.as_deref(),
            good.kind.as_deref(),
            good.abi,
            &good.error
        ),
        (
            PluginState::Ready,
            Some("c-auth"),
            Some("authenticator"),
            Some(1),
            &None
        )
    );
    // The survivors work; the others cannot be selected, each saying why.
    let c = h.select("c-auth", Kind::Authenticator).unwrap();
    assert_eq!(identity(c.call(&auth("c.ann"))), "ann");
    assert!(matches!(
        c.call(&auth("nope")),
        Err(CallError::Refused { status: 401, .. })
    ));
    assert!(matches!(
        h.select("c-auth", Kind::Proposer),
        Err(SelectError::WrongKind { .. })
    ));
    let e = h.select("test-auth", Kind::Authenticator).unwrap_err();
    assert!(e.to_string().contains("issuer is required"), "{e}");
    let e = h.select("oidc", Kind::Authenticator).unwrap_err();
    assert!(matches!(e, SelectError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("found: c-auth"), "{e}");
}

#[test]
fn bad_answers_fail_that_call_alone_without_echoing_it() {
    let tmp = tempfile::tempdir().unwrap();
    c_plugin(CSource::Auth, &[], tmp.path(), "c-auth");
    let cases = [
        ("INVALID_JSON", "c-invalid-json", "answer is not JSON"),
        ("NON_UTF8", "c-non-utf8", "answer is not UTF-8"),
        ("NULL_ANSWER", "c-null-answer", "answered NULL"),
        ("BAD_IDENTITY", "c-bad-identity", "identity.id must be"),
        ("LEAK_SECRET", "c-leak-secret", "answer is not JSON"),
    ];
    for (flag, name, _) in cases {
        let def = format!("PLUGIN_NAME=\"{name}\"");
        c_plugin(CSource::Broken, &[flag, &def], tmp.path(), name);
    }
    let h = host(&[tmp.path()], 2000);
    for (_, name, why) in cases {
        let p = h.select(name, Kind::Authenticator).unwrap();
        for _ in 0..3 {
            match p.call(&auth("c.topsecret-credential")) {
                Err(CallError::Invalid(w)) => {
                    assert!(w.contains(why), "{name}: {w}");
                    assert!(!w.contains("topsecret"), "{name} leaked: {w}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // Still loaded and ready: bad answers fail calls, not the plugin.
        let rep = h.report();
        assert_eq!(
            by_name(&rep, &format!("{name}.so")).state,
            PluginState::Ready
        );
    }
    let good = h.select("c-auth", Kind::Authenticator).unwrap();
    assert_eq!(identity(good.call(&auth("c.bob"))), "bob");
}

#[test]
fn a_panic_is_answered_as_an_error_and_the_plugin_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    install(
        &rust_plugin(TEST_AUTH),
        tmp.path(),
        "test-auth",
        Some(("test-auth", r#"{"groups":["devs"]}"#)),
    );
    let h = host(&[tmp.path()], 2000);
    let p = h.select("test-auth", Kind::Authenticator).unwrap();
    match p.call(&auth("panic")) {
        Err(CallError::Refused {
            status: 500,
            detail,
        }) => {
            assert_eq!(detail, "plugin panicked: test-auth was told to panic")
        }
        other => panic!("{other:?}"),
    }
    match p.call(&auth("ok.carol")) {
        Ok(Answer::Identity(i)) => {
            assert_eq!(
                (i.id.as_str(), i.groups),
                ("carol", vec!["devs".to_string()])
            )
        }
        other => panic!("{other:?}"),
    }
}

/// Polls `f` until true, failing after 30 s (a hang must fail the test, not
/// block CI); never asserts on how long it took.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(30), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stuck_calls_are_left_behind_replaced_and_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tmp.path().join("release");
    let cfg = format!(r#"{{"release_file":{:?}}}"#, release.display().to_string());
    install(
        &rust_plugin(TEST_AUTH),
        tmp.path(),
        "test-auth",
        Some(("test-auth", &cfg)),
    );
    c_plugin(CSource::Auth, &[], tmp.path(), "c-auth");
    let h = host(&[tmp.path()], 200);
    let hung = h.select("test-auth", Kind::Authenticator).unwrap();
    let other = h.select("c-auth", Kind::Authenticator).unwrap();

    // 70 calls that never return by themselves, all in flight at once.
    let (tx, rx) = mpsc::channel();
    for _ in 0..70 {
        let tx = tx.clone();
        let p = hung.clone();
        std::thread::spawn(move || tx.send(p.call(&auth("hang"))).unwrap());
    }
    for _ in 0..70 {
        let r = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every caller is answered");
        assert_eq!(r, Err(CallError::Timeout(Duration::from_millis(200))));
    }
    // All 70 threads are still inside the plugin: past the cap it is
    // unhealthy, and its calls fail fast instead of piling up.
    assert!(hung.stuck() >= MAX_STUCK, "{}", hung.stuck());
    let rep = h.report();
    let e = by_name(&rep, "test-auth.so");
    assert_eq!(e.state, PluginState::Unhealthy);
    assert!(e
        .error
        .as_deref()
        .unwrap()
        .contains("stuck past the timeout"));
    assert!(matches!(
        hung.call(&auth("ok.dan")),
        Err(CallError::Unhealthy { .. })
    ));
    // The other plugin never noticed.
    assert_eq!(identity(other.call(&auth("c.erin"))), "erin");

    // Released, the stuck calls return, their answers are dropped, and the
    // plugin is ready again.
    std::fs::write(&release, "").unwrap();
    eventually("the stuck calls return", || hung.stuck() == 0);
    assert_eq!(
        by_name(&h.report(), "test-auth.so").state,
        PluginState::Ready
    );
    assert_eq!(identity(hung.call(&auth("ok.dan"))), "dan");
}

#[test]
fn a_configure_that_never_answers_fails_the_library_not_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let slow = tmp.path().join("slow");
    let release = tmp.path().join("release");
    let cfg = format!(
        r#"{{"hang_configure":true,"release_file":{:?}}}"#,
        release.display().to_string()
    );
    install(
        &rust_plugin(TEST_AUTH),
        &slow,
        "test-auth",
        Some(("test-auth", &cfg)),
    );
    c_plugin(CSource::Auth, &[], tmp.path(), "c-auth");
    let h = host(&[&slow, tmp.path()], 200);
    let rep = h.report();
    let e = by_name(&rep, "slow/test-auth.so");
    assert_eq!(e.state, PluginState::Failed);
    assert_eq!(
        e.error.as_deref(),
        Some("configure failed: did not answer within 200 ms")
    );
    // Loading went on past it.
    let c = h.select("c-auth", Kind::Authenticator).unwrap();
    assert_eq!(identity(c.call(&auth("c.fay"))), "fay");
    std::fs::write(&release, "").unwrap();
}

#[test]
fn settings_come_from_the_environment() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let s = HostSettings::from_lookup(&vars(&[("LEXALIGN_PLUGIN_DIRS", "/a::/b")])).unwrap();
    assert_eq!(s.dirs, vec![Path::new("/a"), Path::new("/b")]);
    assert_eq!(s.timeout, Duration::from_millis(2000));
    let s = HostSettings::from_lookup(&vars(&[("LEXALIGN_PLUGIN_TIMEOUT_MS", "150")])).unwrap();
    assert_eq!(s.timeout, Duration::from_millis(150));
    for bad in ["0", "-1", "2s", "600001"] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(Box::new([("LEXALIGN_PLUGIN_TIMEOUT_MS", bad)]));
        let e = HostSettings::from_lookup(&vars(pairs)).unwrap_err();
        assert_eq!(e.variable, "LEXALIGN_PLUGIN_TIMEOUT_MS");
    }
}
