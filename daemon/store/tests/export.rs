//! Audit export over a real SQLite file: the exact lines of each format
//! against hand-computed hashes, and `verify_export` on honest and
//! tampered files (edited, dropped, reordered, added rows, cut-off tails,
//! edited headers and checkpoints, wrong keys).

mod common;

use common::{row, temp_store};
use lex_align_store::export::{
    parse_time_bound, verify_export, CheckpointSigner, CheckpointVerifier, ExportReport,
    CHECKPOINT_PAYLOAD_TYPE,
};
use lex_align_store::{ExportFilter, ExportFormat, Store, GENESIS_HASH};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A stand-in for the daemon's Ed25519 key (which lives in the daemon
/// crate): a keyed SHA-256 over the same signed bytes.
struct TestKey(&'static str);

fn mac(secret: &str, payload_type: &str, payload: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(payload_type.as_bytes());
    h.update(payload);
    hex::encode(h.finalize())
}

impl CheckpointSigner for TestKey {
    fn key_id(&self) -> String {
        format!("test-{}", self.0)
    }
    fn sign(&self, payload_type: &str, payload: &[u8]) -> String {
        mac(self.0, payload_type, payload)
    }
}

impl CheckpointVerifier for TestKey {
    fn verify(&self, key_id: &str, t: &str, payload: &[u8], sig: &str) -> Result<(), String> {
        if key_id != self.key_id() {
            return Err(format!("signed by key {key_id}, which is not trusted"));
        }
        if mac(self.0, t, payload) != sig {
            return Err("bad signature".into());
        }
        Ok(())
    }
}

const KEY: TestKey = TestKey("secret");

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Five rows on two projects over three days, with fixed times.
fn seeded() -> (tempfile::TempDir, Store, Vec<String>) {
    let (dir, store) = temp_store();
    let plan = [
        ("web", "httpx", "ALLOWED", "", "2026-03-01T10:00:00Z"),
        ("api", "pyyaml", "DENIED", "cve", "2026-03-01T23:59:59.5Z"),
        (
            "web",
            "requests",
            "DENIED",
            "registry",
            "2026-03-02T08:00:00Z",
        ),
        ("api", "flask", "ALLOWED", "", "2026-03-02T12:00:00+02:00"),
        (
            "web",
            "Django",
            "PROVISIONALLY_ALLOWED",
            "",
            "2026-03-03T00:00:00Z",
        ),
    ];
    let ids = plan
        .iter()
        .map(|(project, pkg, verdict, cat, ts)| {
            let mut r = row(project, pkg, verdict, cat);
            if *pkg == "pyyaml" {
                r.cve_ids = vec!["CVE-2020-14343".into()];
                r.max_cvss = Some(9.8);
                r.reason = Some("pyyaml, has \"quotes\", commas | pipes\nand a newline".into());
                r.auth_method = Some("apikey:key_1".into());
            }
            store.append_audit_at_blocking(r, ts).unwrap().id
        })
        .collect();
    (dir, store, ids)
}

fn export(store: &Store, format: ExportFormat, filter: &ExportFilter) -> String {
    let mut out = Vec::new();
    store
        .export(format, filter, &mut out, Some(&KEY))
        .expect("export");
    String::from_utf8(out).unwrap()
}

fn verify(text: &str) -> ExportReport {
    verify_export(&mut text.as_bytes(), &KEY).unwrap()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The canonical JSON of seeded row `i`, written out by hand.
fn canonical(i: usize, id: &str) -> String {
    let (project, pkg, canon, verdict, cat, ts) = [
        (
            "web",
            "httpx",
            "httpx",
            "ALLOWED",
            "",
            "2026-03-01T10:00:00.000000+00:00",
        ),
        (
            "api",
            "pyyaml",
            "pyyaml",
            "DENIED",
            "cve",
            "2026-03-01T23:59:59.500000+00:00",
        ),
        (
            "web",
            "requests",
            "requests",
            "DENIED",
            "registry",
            "2026-03-02T08:00:00.000000+00:00",
        ),
        (
            "api",
            "flask",
            "flask",
            "ALLOWED",
            "",
            "2026-03-02T10:00:00.000000+00:00",
        ),
        (
            "web",
            "Django",
            "django",
            "PROVISIONALLY_ALLOWED",
            "",
            "2026-03-03T00:00:00.000000+00:00",
        ),
    ][i];
    let seq = i + 1;
    if pkg == "pyyaml" {
        return format!(
            r#"{{"seq":{seq},"id":"{id}","ts":"{ts}","project":"{project}","requester":"anonymous","package":"{pkg}","canonical":"{canon}","version":"1.0.0","requirement":null,"resolved_version":"1.0.0","verdict":"{verdict}","denial_category":"{cat}","reason":"pyyaml, has \"quotes\", commas | pipes\nand a newline","license":"MIT","cve_ids":"[\"CVE-2020-14343\"]","max_cvss":9.8,"registry_status":null,"agent_model":"claude","agent_version":"4","source":"api","auth_method":"apikey:key_1"}}"#
        );
    }
    format!(
        r#"{{"seq":{seq},"id":"{id}","ts":"{ts}","project":"{project}","requester":"anonymous","package":"{pkg}","canonical":"{canon}","version":"1.0.0","requirement":null,"resolved_version":"1.0.0","verdict":"{verdict}","denial_category":"{cat}","reason":"{verdict} for {pkg}","license":"MIT","cve_ids":null,"max_cvss":null,"registry_status":null,"agent_model":"claude","agent_version":"4","source":"api"}}"#
    )
}

/// The chain computed by hand: hash = sha256(prev_hash || canonical).
fn hand_chain(ids: &[String]) -> Vec<(String, String, String)> {
    let mut prev = GENESIS_HASH.to_string();
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let c = canonical(i, id);
        let h = sha(&format!("{prev}{c}"));
        out.push((c, prev.clone(), h.clone()));
        prev = h;
    }
    out
}

#[test]
fn jsonl_export_is_the_hand_computed_chain_with_a_signed_checkpoint() {
    let (_d, store, ids) = seeded();
    let chain = hand_chain(&ids);
    assert_eq!(store.verify().unwrap().head_hash, chain[4].2);

    let text = export(&store, ExportFormat::Jsonl, &ExportFilter::default());
    let l = lines(&text);
    assert_eq!(l.len(), 7, "{text}");

    let header: Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(header["lex_align_export"], "header");
    assert_eq!(header["format"], "lex-align-audit-export");
    assert_eq!(header["version"], 1);
    assert_eq!(header["mode"], "chain");
    assert_eq!(
        header["filters"],
        serde_json::json!({"since": null, "until": null, "project": null})
    );
    assert_eq!(
        header["anchor"],
        serde_json::json!({"seq": 0, "hash": GENESIS_HASH})
    );

    for (i, (c, prev, h)) in chain.iter().enumerate() {
        let expected = format!(
            "{},\"prev_hash\":\"{prev}\",\"hash\":\"{h}\"}}",
            &c[..c.len() - 1]
        );
        assert_eq!(l[i + 1], expected, "row {}", i + 1);
    }

    let cp: Value = serde_json::from_str(&l[6]).unwrap();
    assert_eq!(cp["lex_align_export"], "checkpoint");
    let c = &cp["checkpoint"];
    assert_eq!(c["scope"], "export");
    assert_eq!(c["key_id"], "test-secret");
    assert_eq!(c["rows"], 5);
    assert_eq!(c["first_seq"], 1);
    assert_eq!(c["last_seq"], 5);
    assert_eq!(c["head_hash"], chain[4].2.as_str());
    let digest = sha(&chain.iter().map(|r| r.2.as_str()).collect::<String>());
    assert_eq!(c["digest"], digest.as_str());
    assert_eq!(c["header_sha256"], sha(&l[0]).as_str());
    assert_eq!(
        c["log_head"],
        serde_json::json!({"seq": 5, "hash": chain[4].2})
    );
    // The signature covers the compact JSON of `checkpoint`, as written.
    let start = l[6].find("\"checkpoint\":").unwrap() + "\"checkpoint\":".len();
    let end = l[6].rfind(",\"signature\"").unwrap();
    let signed = &l[6][start..end];
    assert!(
        signed.starts_with("{\"scope\":\"export\",\"created_at\":"),
        "{signed}"
    );
    assert_eq!(
        cp["signature"],
        mac("secret", CHECKPOINT_PAYLOAD_TYPE, signed.as_bytes()).as_str()
    );

    let r = verify(&text);
    assert!(r.ok, "{r:?}");
    assert_eq!((r.rows, r.first_seq, r.last_seq), (5, Some(1), Some(5)));
    assert_eq!(r.head_hash, chain[4].2);
    assert_eq!(r.checkpoint.unwrap().rows, 5);
}

fn problem(r: &ExportReport) -> (u64, Option<u64>, String) {
    assert!(!r.ok, "{r:?}");
    let p = r.problem.clone().expect("a problem");
    (p.line, p.seq, p.reason)
}

#[test]
fn an_edited_row_is_named() {
    let (_d, store, ids) = seeded();
    let mut l = lines(&export(
        &store,
        ExportFormat::Jsonl,
        &ExportFilter::default(),
    ));
    l[2] = l[2].replace("\"verdict\":\"DENIED\"", "\"verdict\":\"ALLOWED\"");
    let r = verify(&join(&l));
    let (line, seq, reason) = problem(&r);
    assert_eq!((line, seq), (3, Some(2)));
    assert!(reason.contains("edited"), "{reason}");
    assert_eq!(r.problem.unwrap().id.as_deref(), Some(ids[1].as_str()));
    assert_eq!(r.rows, 1);
}

#[test]
fn a_dropped_row_is_named() {
    let (_d, store, _) = seeded();
    let mut l = lines(&export(
        &store,
        ExportFormat::Jsonl,
        &ExportFilter::default(),
    ));
    l.remove(3); // seq 3
    let (line, seq, reason) = problem(&verify(&join(&l)));
    assert_eq!((line, seq), (4, Some(4)));
    assert!(reason.contains("expected seq 3, found seq 4"), "{reason}");
}

#[test]
fn reordered_rows_are_named() {
    let (_d, store, _) = seeded();
    let mut l = lines(&export(
        &store,
        ExportFormat::Jsonl,
        &ExportFilter::default(),
    ));
    l.swap(3, 4); // seq 3 and 4
    let (line, seq, reason) = problem(&verify(&join(&l)));
    assert_eq!((line, seq), (4, Some(4)));
    assert!(reason.contains("expected seq 3, found seq 4"), "{reason}");

    // Moving a row back is "out of order".
    let mut l = lines(&export(
        &store,
        ExportFormat::Jsonl,
        &ExportFilter::default(),
    ));
    let moved = l.remove(1);
    l.insert(3, moved);
    let (line, seq, reason) = problem(&verify(&join(&l)));
    assert_eq!((line, seq), (2, Some(2)));
    assert!(reason.contains("expected seq 1"), "{reason}");
}

#[test]
fn a_row_with_a_renumbered_seq_breaks_its_own_hash() {
    let (_d, store, _) = seeded();
    let mut l = lines(&export(
        &store,
        ExportFormat::Jsonl,
        &ExportFilter::default(),
    ));
    l.remove(3);
    l[3] = l[3].replacen("\"seq\":4", "\"seq\":3", 1);
    let (line, seq, reason) = problem(&verify(&join(&l)));
    assert_eq!((line, seq), (4, Some(3)));
    assert!(reason.contains("edited"), "{reason}");
}

#[test]
fn a_cut_off_tail_is_found() {
    let (_d, store, _) = seeded();
    let l = lines(&export(
        &store,
        ExportFormat::Jsonl,
        &ExportFilter::default(),
    ));
    // Last row and checkpoint gone: the chain itself still holds.
    let (line, _, reason) = problem(&verify(&join(&l[..5])));
    assert_eq!(line, 6);
    assert!(reason.contains("no signed checkpoint"), "{reason}");
    // Only the checkpoint gone.
    let (_, _, reason) = problem(&verify(&join(&l[..6])));
    assert!(reason.contains("no signed checkpoint"), "{reason}");
    // The last row dropped, the checkpoint kept.
    let mut cut = l.clone();
    cut.remove(5);
    let (line, _, reason) = problem(&verify(&join(&cut)));
    assert_eq!(line, 6);
    assert!(
        reason.contains("signs 5 rows but the file has 4"),
        "{reason}"
    );
    // ... and the checkpoint edited to match: its signature fails.
    let last = cut.len() - 1;
    cut[last] = cut[last]
        .replace("\"rows\":5", "\"rows\":4")
        .replace("\"last_seq\":5", "\"last_seq\":4");
    let (_, _, reason) = problem(&verify(&join(&cut)));
    assert!(reason.contains("signature does not hold"), "{reason}");
}

#[test]
fn edited_headers_added_fields_and_trailing_rows_are_refused() {
    let (_d, store, _) = seeded();
    let l = lines(&export(
        &store,
        ExportFormat::Jsonl,
        &ExportFilter::default(),
    ));

    let mut h = l.clone();
    h[0] = h[0].replace("\"created_at\":\"", "\"created_at\":\"1");
    let (line, _, reason) = problem(&verify(&join(&h)));
    assert_eq!(line, 7);
    assert!(reason.contains("header was changed"), "{reason}");

    let mut a = l.clone();
    a[1] = a[1].replacen("{", "{\"approved_by\":\"ceo\",", 1);
    let (line, _, reason) = problem(&verify(&join(&a)));
    assert_eq!(line, 2);
    assert!(reason.contains("unknown field"), "{reason}");

    // A key said twice: a reader that keeps the first value would see a
    // verdict other than the one the hash covers.
    let mut d = l.clone();
    d[1] = d[1].replacen("{", "{\"verdict\":\"ALLOWED\",", 1);
    let (line, _, reason) = problem(&verify(&join(&d)));
    assert_eq!(line, 2);
    assert!(reason.contains("duplicate field `verdict`"), "{reason}");

    let mut t = l.clone();
    t.push(l[1].clone());
    let (line, _, reason) = problem(&verify(&join(&t)));
    assert_eq!(line, 8);
    assert!(reason.contains("after the checkpoint"), "{reason}");

    let (line, _, reason) = problem(&verify(&join(&l[1..])));
    assert_eq!(line, 1);
    assert!(reason.contains("header"), "{reason}");

    let other = TestKey("other");
    let r = verify_export(&mut join(&l).as_bytes(), &other).unwrap();
    let (line, _, reason) = problem(&r);
    assert_eq!(line, 7);
    assert!(reason.contains("not trusted"), "{reason}");
}

#[test]
fn a_filtered_export_proves_each_row_and_names_a_dropped_one() {
    let (_d, store, ids) = seeded();
    let chain = hand_chain(&ids);
    let filter = ExportFilter {
        project: Some("web".into()),
        ..Default::default()
    };
    let text = export(&store, ExportFormat::Jsonl, &filter);
    let l = lines(&text);
    assert_eq!(l.len(), 5, "{text}");
    let header: Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(header["mode"], "filtered");
    assert_eq!(header["filters"]["project"], "web");
    assert_eq!(
        header["anchor"],
        serde_json::json!({"seq": 0, "hash": GENESIS_HASH})
    );
    // Rows 1, 3, 5, each with its own chain hashes and the export link.
    for (line, (i, prev_in_export)) in [(0usize, "null"), (2, "1"), (4, "3")].iter().enumerate() {
        let (c, prev, h) = &chain[*i];
        assert_eq!(
            l[line + 1],
            format!(
                "{},\"prev_hash\":\"{prev}\",\"hash\":\"{h}\",\"export_prev_seq\":{prev_in_export}}}",
                &c[..c.len() - 1]
            )
        );
    }
    let cp: Value = serde_json::from_str(&l[4]).unwrap();
    assert_eq!(cp["checkpoint"]["rows"], 3);
    assert_eq!(
        cp["checkpoint"]["digest"],
        sha(&format!("{}{}{}", chain[0].2, chain[2].2, chain[4].2)).as_str()
    );
    assert_eq!(cp["checkpoint"]["log_head"]["seq"], 5);
    assert!(verify(&text).ok, "{:?}", verify(&text));

    let mut d = l.clone();
    d.remove(2); // seq 3
    let (line, seq, reason) = problem(&verify(&join(&d)));
    assert_eq!((line, seq), (3, Some(5)));
    assert!(
        reason.contains("row seq 3 is missing before it"),
        "{reason}"
    );

    let mut s = l.clone();
    s.swap(2, 3);
    let (_, seq, reason) = problem(&verify(&join(&s)));
    assert_eq!(seq, Some(5));
    assert!(
        reason.contains("missing") || reason.contains("out of order"),
        "{reason}"
    );

    // A row of another project (valid on its own) slipped in.
    let full = lines(&export(
        &store,
        ExportFormat::Jsonl,
        &ExportFilter::default(),
    ));
    let mut i = l.clone();
    let foreign = format!("{},\"export_prev_seq\":1}}", &full[2][..full[2].len() - 1]);
    i.insert(2, foreign);
    let (_, seq, reason) = problem(&verify(&join(&i)));
    assert_eq!(seq, Some(2));
    assert!(reason.contains("outside the export's filters"), "{reason}");
}

#[test]
fn time_bounds_take_dates_and_rfc3339() {
    assert_eq!(
        parse_time_bound("2026-03-02", false).unwrap(),
        "2026-03-02T00:00:00.000000+00:00"
    );
    assert_eq!(
        parse_time_bound("2026-03-02", true).unwrap(),
        "2026-03-03T00:00:00.000000+00:00"
    );
    assert_eq!(
        parse_time_bound("2026-03-02T12:00:00+02:00", true).unwrap(),
        "2026-03-02T10:00:00.000000+00:00"
    );
    assert!(parse_time_bound("yesterday", false).is_err());

    let (_d, store, _) = seeded();
    let filter = ExportFilter {
        since: Some(parse_time_bound("2026-03-02", false).unwrap()),
        until: Some(parse_time_bound("2026-03-02", true).unwrap()),
        project: None,
    };
    let text = export(&store, ExportFormat::Jsonl, &filter);
    let seqs: Vec<i64> = lines(&text)[1..3]
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    let r = verify(&text);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.rows, 2);
    let header: Value = serde_json::from_str(&lines(&text)[0]).unwrap();
    assert_eq!(
        header["anchor"]["hash"],
        hand_chain(&store_ids(&store))[1].2.as_str()
    );
}

fn store_ids(store: &Store) -> Vec<String> {
    let text = export(store, ExportFormat::Jsonl, &ExportFilter::default());
    lines(&text)[1..6]
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn an_empty_export_verifies() {
    let (_d, store) = temp_store();
    let text = export(&store, ExportFormat::Jsonl, &ExportFilter::default());
    assert_eq!(lines(&text).len(), 2);
    let r = verify(&text);
    assert!(r.ok, "{r:?}");
    assert_eq!((r.rows, r.head_hash.as_str()), (0, GENESIS_HASH));
}

#[test]
fn csv_and_markdown_are_the_expected_text() {
    let (_d, store, ids) = seeded();
    let chain = hand_chain(&ids);
    let filter = ExportFilter {
        project: Some("api".into()),
        ..Default::default()
    };
    let csv = export(&store, ExportFormat::Csv, &filter);
    let expected = format!(
        "seq,id,ts,project,requester,package,canonical,version,requirement,resolved_version,verdict,denial_category,reason,license,cve_ids,max_cvss,registry_status,agent_model,agent_version,source,auth_method,prev_hash,hash\r\n\
         2,{},2026-03-01T23:59:59.500000+00:00,api,anonymous,pyyaml,pyyaml,1.0.0,,1.0.0,DENIED,cve,\"pyyaml, has \"\"quotes\"\", commas | pipes\nand a newline\",MIT,\"[\"\"CVE-2020-14343\"\"]\",9.8,,claude,4,api,apikey:key_1,{},{}\r\n\
         4,{},2026-03-02T10:00:00.000000+00:00,api,anonymous,flask,flask,1.0.0,,1.0.0,ALLOWED,,ALLOWED for flask,MIT,,,,claude,4,api,,{},{}\r\n",
        ids[1], chain[1].1, chain[1].2, ids[3], chain[3].1, chain[3].2
    );
    assert_eq!(csv, expected);

    let md = export(&store, ExportFormat::Markdown, &filter);
    let l = lines(&md);
    assert_eq!(l[0], "# lex-align audit log export");
    assert!(md.contains(&format!(
        "- anchor: `{}`, the first row's `prev_hash` (the hash of seq 1; 0 is the log's start)",
        chain[0].2
    )));
    assert!(md.contains("- filters: since —, until —, project api"));
    assert_eq!(
        l[l.len() - 2],
        format!(
            "| 2 | 2026-03-01T23:59:59.500000+00:00 | api | anonymous | pyyaml | 1.0.0 | DENIED | cve | pyyaml, has \"quotes\", commas \\| pipes and a newline | `{}` |",
            chain[1].2
        )
    );
    assert_eq!(
        l[l.len() - 1],
        format!(
            "| 4 | 2026-03-02T10:00:00.000000+00:00 | api | anonymous | flask | 1.0.0 | ALLOWED |  | ALLOWED for flask | `{}` |",
            chain[3].2
        )
    );
}

#[test]
fn a_broken_log_is_not_exported_or_signed() {
    let (_d, store, _) = seeded();
    store.flush().unwrap();
    let c = rusqlite::Connection::open(store.path()).unwrap();
    c.execute("UPDATE audit_log SET verdict = 'ALLOWED' WHERE seq = 3", [])
        .unwrap();
    let mut out = Vec::new();
    let e = store
        .export(
            ExportFormat::Jsonl,
            &ExportFilter::default(),
            &mut out,
            Some(&KEY),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken at seq 3"), "{e}");
    assert!(!String::from_utf8_lossy(&out).contains("checkpoint"));
}

#[test]
fn jsonl_needs_a_signer() {
    let (_d, store, _) = seeded();
    let mut out = Vec::new();
    let e = store
        .export(
            ExportFormat::Jsonl,
            &ExportFilter::default(),
            &mut out,
            None,
        )
        .unwrap_err();
    assert!(e.to_string().contains("signing key"), "{e}");
}

#[test]
fn the_log_checkpoint_signs_count_and_head() {
    let (_d, store, ids) = seeded();
    let chain = hand_chain(&ids);
    let cp = store.log_checkpoint(&KEY).unwrap();
    assert_eq!(cp.checkpoint.scope, "log");
    assert_eq!(cp.checkpoint.rows, 5);
    assert_eq!(cp.checkpoint.last_seq, Some(5));
    assert_eq!(cp.checkpoint.head_hash, chain[4].2);
    assert!(cp.verify(&KEY).is_ok());
    let line = serde_json::to_string(&cp).unwrap();
    assert!(
        line.starts_with("{\"checkpoint\":{\"scope\":\"log\""),
        "{line}"
    );
}
