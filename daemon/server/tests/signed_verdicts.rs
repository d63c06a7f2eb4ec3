//! Signed verdicts and checkpoints over real HTTP on 127.0.0.1 with a real
//! SQLite file: the key on disk, `GET /api/v1/keys`, DSSE envelopes from
//! evaluate and batch (plain and VSA), their offline verification, and
//! every tampering a verifier must refuse.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use common::{start_with, Options, TestServer};
use lex_align_daemon::auth::AuthSettings;
use lex_align_daemon::signing::{
    self, check_verdict, pae, verify_envelope, KeySet, DSSE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE,
    VERDICT_PAYLOAD_TYPE, VSA_PREDICATE_TYPE, VSA_VERDICT_FIELD,
};
use lex_align_daemon::Config;
use lex_align_store::export::SignedCheckpoint;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn b64e(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn start_ttl(hours: u64) -> TestServer {
    start_with(Options {
        tweak: Some(Box::new(move |c: &mut Config| {
            c.signing.verdict_ttl = Duration::from_secs(hours * 3600);
        })),
        ..Options::default()
    })
    .await
}

async fn keys(s: &TestServer) -> (Value, KeySet) {
    let (status, doc) = s.get_bare("/api/v1/keys").await;
    assert_eq!(status, 200, "{doc}");
    let set = KeySet::from_document(doc.to_string().as_bytes()).unwrap();
    (doc, set)
}

/// GET with the project header and extra headers; raw bytes back.
async fn get_raw(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut rb = s
        .client
        .get(s.url(path))
        .header("X-LexAlign-Project", "web");
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_made_on_first_start_and_published() {
    let s = start_ttl(24).await;
    let path = s.dir.path().join("data").join(signing::KEY_FILE);
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(raw.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (doc, _) = keys(&s).await;
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ed25519");
    let public = b64d(keys[0]["public_key"].as_str().unwrap());
    assert_eq!(public.len(), 32);
    // key_id = first 16 hex digits of sha256(public key).
    let expected_id = &hex::encode(Sha256::digest(&public))[..16];
    assert_eq!(keys[0]["key_id"], expected_id);
    // The public key is the one of the seed on disk.
    let local = signing::local_keys(&s.dir.path().join("data")).unwrap();
    assert_eq!(local.ids(), vec![expected_id]);
    // The secret never leaves the file.
    assert!(!doc.to_string().contains(&b64e(&raw)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_signs_the_verdict_it_would_have_answered() {
    let s = start_ttl(2).await;
    let (_, set) = keys(&s).await;
    let (status, plain) = s.evaluate("package=httpx").await;
    assert_eq!(status, 200);

    for headers in [
        ("?envelope=dsse", vec![]),
        ("", vec![("Accept", DSSE_MEDIA_TYPE)]),
        (
            "",
            vec![(
                "Accept",
                "text/html, application/vnd.dsse.envelope.v1+json;q=0.9",
            )],
        ),
    ] {
        let sep = if headers.0.is_empty() { "?" } else { "&" };
        let path = format!("/api/v1/evaluate{}{sep}package=httpx", headers.0);
        let (status, ct, body) = get_raw(&s, &path, &headers.1).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(ct, DSSE_MEDIA_TYPE);
        let env: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(env["payloadType"], VERDICT_PAYLOAD_TYPE);
        let sigs = env["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0]["keyid"], set.ids()[0]);

        // The signature is Ed25519 over the DSSE PAE, checked here by hand.
        let payload = b64d(env["payload"].as_str().unwrap());
        let (doc, _) = keys(&s).await;
        let public: [u8; 32] = b64d(doc["keys"][0]["public_key"].as_str().unwrap())
            .try_into()
            .unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
        let sig: [u8; 64] = b64d(sigs[0]["sig"].as_str().unwrap()).try_into().unwrap();
        vk.verify_strict(
            &pae(VERDICT_PAYLOAD_TYPE, &payload),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .expect("signature over PAE");

        // Payload = the verdict JSON, then the claims.
        let p: Value = serde_json::from_slice(&payload).unwrap();
        for (k, v) in plain.as_object().unwrap() {
            assert_eq!(&p[k], v, "key {k}");
        }
        let text = String::from_utf8(payload.clone()).unwrap();
        let plain_text = serde_json::to_string(&plain).unwrap();
        assert!(text.starts_with("{\"verdict\":\"ALLOWED\""), "{text}");
        assert!(plain_text.len() < text.len());
        assert_eq!(p["project"], "web");
        assert_eq!(p["registry"]["version"], "1.2");
        let reg = std::fs::read(&s.registry_path).unwrap();
        assert_eq!(p["registry"]["sha256"], hex::encode(Sha256::digest(&reg)));
        assert_eq!(p["key_id"], set.ids()[0]);
        assert_eq!(p["daemon"]["name"], "lex-align");
        let issued = OffsetDateTime::parse(p["issued_at"].as_str().unwrap(), &Rfc3339).unwrap();
        let expires = OffsetDateTime::parse(p["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
        assert_eq!(expires - issued, time::Duration::hours(2));
        assert!((OffsetDateTime::now_utc() - issued).abs() < time::Duration::minutes(1));

        let v = verify_envelope(&body, &set).unwrap();
        let summary = check_verdict(&v, OffsetDateTime::now_utc(), false).unwrap();
        assert_eq!(
            (
                summary.verdict.as_str(),
                summary.package.as_str(),
                summary.project.as_str()
            ),
            ("ALLOWED", "httpx", "web")
        );
        assert!(!summary.expired);
    }
    // Every signed answer is an evaluation on record like any other.
    assert_eq!(s.audit_rows(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsa_form_maps_the_verdict_onto_the_slsa_predicate() {
    let s = start_ttl(24).await;
    let (_, set) = keys(&s).await;
    let (status, _, body) = get_raw(
        &s,
        "/api/v1/evaluate?package=pyqt5&envelope=dsse&format=vsa",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let env: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(env["payloadType"], INTOTO_PAYLOAD_TYPE);
    let st: Value = serde_json::from_slice(&b64d(env["payload"].as_str().unwrap())).unwrap();
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], VSA_PREDICATE_TYPE);
    assert_eq!(st["subject"][0]["name"], "pkg:pypi/pyqt5");
    assert_eq!(
        st["subject"][0]["digest"]["sha256"],
        hex::encode(Sha256::digest(b"pkg:pypi/pyqt5"))
    );
    let pr = &st["predicate"];
    assert_eq!(pr["verificationResult"], "FAILED");
    assert_eq!(pr["verifiedLevels"], json!(["FAILED"]));
    assert_eq!(pr["resourceUri"], "pkg:pypi/pyqt5");
    assert_eq!(pr["policy"]["uri"], "urn:lex-align:registry:1.2");
    assert_eq!(
        pr["verifier"]["id"],
        format!("urn:lex-align:daemon:{}", set.ids()[0])
    );
    assert_eq!(pr["timeVerified"], pr[VSA_VERDICT_FIELD]["issued_at"]);
    assert_eq!(pr[VSA_VERDICT_FIELD]["verdict"], "DENIED");
    let v = verify_envelope(&body, &set).unwrap();
    let summary = check_verdict(&v, OffsetDateTime::now_utc(), false).unwrap();
    assert_eq!((summary.verdict.as_str(), summary.form), ("DENIED", "vsa"));

    // An allowed package with a resolved version passes.
    let (_, _, body) = get_raw(
        &s,
        "/api/v1/evaluate?package=httpx&envelope=dsse&format=vsa",
        &[],
    )
    .await;
    let env: Value = serde_json::from_slice(&body).unwrap();
    let st: Value = serde_json::from_slice(&b64d(env["payload"].as_str().unwrap())).unwrap();
    assert_eq!(st["predicate"]["verificationResult"], "PASSED");
    assert_eq!(
        st["predicate"]["verifiedLevels"],
        json!(["LEXALIGN_ALLOWED"])
    );
    let name = st["subject"][0]["name"].as_str().unwrap();
    assert!(name.starts_with("pkg:pypi/httpx@"), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_signs_each_verdict_and_keeps_item_errors() {
    let s = start_ttl(24).await;
    let (_, set) = keys(&s).await;
    let (status, body) = s
        .post_json(
            "/api/v1/evaluate/batch?envelope=dsse",
            &json!({"requirements": ["httpx", "not a name!", "pyqt5"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[1]["error"].is_object(), "{body}");
    for (i, expected) in [(0, "ALLOWED"), (2, "DENIED")] {
        let bytes = serde_json::to_vec(&results[i]).unwrap();
        let v = verify_envelope(&bytes, &set).unwrap();
        let summary = check_verdict(&v, OffsetDateTime::now_utc(), false).unwrap();
        assert_eq!(summary.verdict, expected);
        // post_json sends X-LexAlign-Project: proj.
        assert_eq!(summary.project, "proj");
    }
    // Unsigned batches are unchanged.
    let (_, body) = s
        .post_json(
            "/api/v1/evaluate/batch",
            &json!({"requirements": ["httpx"]}),
        )
        .await;
    assert_eq!(body["results"][0]["verdict"], "ALLOWED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_envelope_or_format_is_422_and_records_nothing() {
    let s = start_ttl(24).await;
    for q in [
        "package=httpx&envelope=jws",
        "package=httpx&envelope=dsse&format=cyclonedx",
        "package=httpx&format=vsa",
    ] {
        let (status, body) = s.evaluate(q).await;
        assert_eq!(status, 422, "{q}: {body}");
        let loc = &body["detail"][0]["loc"];
        assert_eq!(loc[0], "query", "{body}");
    }
    let (status, _) = s
        .post_json(
            "/api/v1/evaluate/batch?envelope=nope",
            &json!({"requirements": ["httpx"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(s.audit_rows(), 0);
}

/// Each way an envelope can be changed after signing, and what the
/// verifier says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_wrong_key_and_expired_envelopes_are_refused() {
    let s = start_ttl(1).await;
    let (_, set) = keys(&s).await;
    let (_, _, body) = get_raw(&s, "/api/v1/evaluate?package=pyqt5&envelope=dsse", &[]).await;
    let env: Value = serde_json::from_slice(&body).unwrap();
    let payload = String::from_utf8(b64d(env["payload"].as_str().unwrap())).unwrap();
    let now = OffsetDateTime::now_utc();
    assert!(check_verdict(&verify_envelope(&body, &set).unwrap(), now, false).is_ok());

    let with = |f: &dyn Fn(&mut Value)| {
        let mut e = env.clone();
        f(&mut e);
        serde_json::to_vec(&e).unwrap()
    };
    // DENIED → ALLOWED in the payload.
    let forged = payload.replacen("\"DENIED\"", "\"ALLOWED\"", 1);
    let e = verify_envelope(
        &with(&|e| e["payload"] = b64e(forged.as_bytes()).into()),
        &set,
    )
    .unwrap_err();
    assert!(e.contains("does not verify"), "{e}");
    // A flipped signature bit.
    let mut sig = b64d(env["signatures"][0]["sig"].as_str().unwrap());
    sig[10] ^= 1;
    let e = verify_envelope(
        &with(&|e| e["signatures"][0]["sig"] = b64e(&sig).into()),
        &set,
    )
    .unwrap_err();
    assert!(e.contains("does not verify"), "{e}");
    // The same bytes under another payload type.
    let e = verify_envelope(
        &with(&|e| e["payloadType"] = INTOTO_PAYLOAD_TYPE.into()),
        &set,
    )
    .unwrap_err();
    assert!(e.contains("does not verify"), "{e}");
    // No signatures at all.
    let e = verify_envelope(&with(&|e| e["signatures"] = json!([])), &set).unwrap_err();
    assert!(e.contains("no signature"), "{e}");
    // Another daemon's key.
    let other = signing::DaemonKey::from_seed(&[9u8; 32]);
    let e = verify_envelope(&body, &KeySet::of(&other)).unwrap_err();
    assert!(e.contains("not among the trusted keys"), "{e}");
    // Relabelled with the other key's id: still no valid signature.
    let e = verify_envelope(
        &with(&|e| e["signatures"][0]["keyid"] = other.key_id().into()),
        &KeySet::of(&other),
    )
    .unwrap_err();
    assert!(e.contains("does not verify"), "{e}");
    // Expired: refused unless told otherwise.
    let later = now + time::Duration::hours(2);
    let v = verify_envelope(&body, &set).unwrap();
    let e = check_verdict(&v, later, false).unwrap_err();
    assert!(e.contains("expired at"), "{e}");
    let ok = check_verdict(&v, later, true).unwrap();
    assert!(ok.expired);
    // A keys document whose key_id was swapped for another key's.
    let (mut doc, _) = keys(&s).await;
    doc["keys"][0]["key_id"] = other.key_id().into();
    let e = KeySet::from_document(doc.to_string().as_bytes()).unwrap_err();
    assert!(e.contains("does not match its public key"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_writes_signed_checkpoints_on_a_cadence() {
    let s = start_with(Options {
        tweak: Some(Box::new(|c: &mut Config| {
            c.signing.checkpoint_interval = Some(Duration::from_millis(100));
        })),
        ..Options::default()
    })
    .await;
    let (_, set) = keys(&s).await;
    let file = s.dir.path().join("data").join(signing::CHECKPOINTS_FILE);
    // Nothing to sign while the log is empty.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!file.exists());

    for q in ["package=httpx", "package=pyqt5", "package=requests"] {
        s.evaluate(q).await;
    }
    let head = s.handle.store().verify().unwrap().head_hash;
    let mut last: Option<SignedCheckpoint> = None;
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&file) {
            last = text
                .lines()
                .last()
                .map(|l| serde_json::from_str(l).unwrap());
            if last
                .as_ref()
                .is_some_and(|c| c.checkpoint.head_hash == head)
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cp = last.expect("a checkpoint was written");
    assert_eq!(cp.checkpoint.head_hash, head);
    assert_eq!(cp.checkpoint.rows, 3);
    assert_eq!(cp.checkpoint.scope, "log");
    assert_eq!(cp.checkpoint.key_id, set.ids()[0]);
    cp.verify(&set).expect("signed by the daemon");
    // An unchanged head is not signed again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    let heads: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<SignedCheckpoint>(l)
                .unwrap()
                .checkpoint
                .head_hash
        })
        .collect();
    let distinct: std::collections::HashSet<_> = heads.iter().collect();
    assert_eq!(distinct.len(), lines, "{heads:?}");
    // Edited, its signature fails.
    let mut edited = cp.clone();
    edited.checkpoint.rows = 2;
    assert!(edited.verify(&set).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_may_fetch_the_keys_strangers_may_not() {
    let vars: HashMap<&str, &str> =
        HashMap::from([("AUTH_ENABLED", "true"), ("AUTH_BACKEND", "apikey")]);
    let auth = AuthSettings::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string()), |s| {
        Some(s == "true")
    })
    .unwrap();
    let made = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = made.clone();
    let s = start_with(Options {
        tweak: Some(Box::new(move |c: &mut Config| {
            c.auth = auth;
            let db = lex_align_store::AccessDb::open(&c.database_path).unwrap();
            *out.lock().unwrap() = Some(db.create_key("ci-bot", "agent", None, None).unwrap());
        })),
        ..Options::default()
    })
    .await;
    let key = made.lock().unwrap().take().unwrap().key;
    let r = s.client.get(s.url("/api/v1/keys")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .client
        .get(s.url("/api/v1/keys"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["keys"][0]["alg"], "ed25519");
    // And may ask for a signed verdict.
    let r = s
        .client
        .get(s.url("/api/v1/evaluate?package=httpx&envelope=dsse"))
        .header("X-LexAlign-Project", "web")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    let set = KeySet::from_document(doc.to_string().as_bytes()).unwrap();
    let v = verify_envelope(&body, &set).unwrap();
    assert_eq!(
        check_verdict(&v, OffsetDateTime::now_utc(), false)
            .unwrap()
            .verdict,
        "ALLOWED"
    );
}
