//! Approval-request lifecycle, the approval-requests report, and the cache.

mod common;

use std::time::Duration;

use common::temp_store;
use lex_align_store::{
    NewApprovalRequest, StoreError, APPROVED, PENDING_REVIEW, REJECTED, WITHDRAWN,
};
use serde_json::{json, Value};

fn req(package: &str, rationale: &str) -> NewApprovalRequest {
    NewApprovalRequest {
        project: "proj".into(),
        requester: "alice".into(),
        package: package.into(),
        rationale: rationale.into(),
        agent_model: Some("claude".into()),
        agent_version: Some("4".into()),
        last_audit_id: None,
    }
}

#[tokio::test]
async fn lifecycle_with_history() {
    let (_d, store) = temp_store();
    let audit = store
        .append_audit(common::row("proj", "Flask", "PROVISIONALLY_ALLOWED", ""))
        .await
        .unwrap();
    let first = store
        .upsert_approval_request(NewApprovalRequest {
            last_audit_id: Some(audit.id.clone()),
            ..req("Flask", "web ui")
        })
        .await
        .unwrap();
    assert_eq!(first.status, PENDING_REVIEW);
    assert_eq!(first.last_audit_id.as_deref(), Some(audit.id.as_str()));

    // Same canonical name: same row, newer rationale and spelling.
    let again = store
        .upsert_approval_request(req("flask", "api"))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(
        (again.package.as_str(), again.rationale.as_str()),
        ("flask", "api")
    );
    assert_eq!(again.created_at, first.created_at);
    assert!(again.ts >= first.ts);
    assert_eq!(
        again.last_audit_id, first.last_audit_id,
        "an absent audit id keeps the link"
    );

    // A registry reload adds it: approved, with the actor recorded.
    let n = store
        .approve_pending_for(
            &["flask".to_string(), "other".to_string()],
            "registry-reload",
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        store
            .approve_pending_for(&["flask".to_string()], "x")
            .await
            .unwrap(),
        0
    );
    let approved = store.approval_request(&first.id).unwrap().unwrap();
    assert_eq!(approved.status, APPROVED);
    assert_eq!(approved.decided_by.as_deref(), Some("registry-reload"));

    // Asking again does not flip an approved request back to pending.
    let third = store
        .upsert_approval_request(req("FLASK", "again"))
        .await
        .unwrap();
    assert_eq!(
        (third.id.as_str(), third.status.as_str()),
        (first.id.as_str(), APPROVED)
    );

    // Operator reopens, rejects; the agent's re-request keeps the rejection.
    store
        .set_request_status(&first.id, PENDING_REVIEW, "ops", Some("reconsider"))
        .await
        .unwrap();
    let rejected = store
        .set_request_status(&first.id, REJECTED, "ops", Some("use httpx"))
        .await
        .unwrap();
    assert_eq!(rejected.decision_note.as_deref(), Some("use httpx"));
    let still = store
        .upsert_approval_request(req("flask", "pretty please"))
        .await
        .unwrap();
    assert_eq!(still.status, REJECTED);

    // Withdrawn requests reopen on a new request.
    store
        .set_request_status(&first.id, WITHDRAWN, "alice", None)
        .await
        .unwrap();
    let reopened = store
        .upsert_approval_request(req("flask", "new reason"))
        .await
        .unwrap();
    assert_eq!(reopened.status, PENDING_REVIEW);

    let h: Vec<(Option<String>, String, String)> = store
        .approval_history(&first.id)
        .unwrap()
        .into_iter()
        .map(|e| (e.from_status, e.to_status, e.actor))
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        h,
        vec![
            (None, s(PENDING_REVIEW), s("alice")),
            (Some(s(PENDING_REVIEW)), s(APPROVED), s("registry-reload")),
            (Some(s(APPROVED)), s(PENDING_REVIEW), s("ops")),
            (Some(s(PENDING_REVIEW)), s(REJECTED), s("ops")),
            (Some(s(REJECTED)), s(WITHDRAWN), s("alice")),
            (Some(s(WITHDRAWN)), s(PENDING_REVIEW), s("alice")),
        ]
    );
}

#[tokio::test]
async fn status_errors() {
    let (_d, store) = temp_store();
    let r = store.upsert_approval_request(req("x", "y")).await.unwrap();
    assert!(matches!(
        store.set_request_status(&r.id, "MAYBE", "ops", None).await,
        Err(StoreError::InvalidStatus(_))
    ));
    assert!(matches!(
        store
            .set_request_status("no-such-id", REJECTED, "ops", None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.upsert_approval_request(req("  ", "y")).await,
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn approval_requests_report_shape_and_filters() {
    let (_d, store) = temp_store();
    let a = store
        .upsert_approval_request_blocking(req("a", "ra"))
        .unwrap();
    let b = store
        .upsert_approval_request_blocking(NewApprovalRequest {
            project: "other".into(),
            ..req("b", "rb")
        })
        .unwrap();
    store
        .set_request_status_blocking(&a.id, APPROVED, "ops", None)
        .unwrap();

    let all = store.approval_requests_report(None, None).unwrap();
    assert_eq!(all["project"], Value::Null);
    assert_eq!(all["status"], Value::Null);
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], b.id, "newest first");
    for key in [
        "id",
        "ts",
        "project",
        "requester",
        "package",
        "rationale",
        "status",
        "last_audit_id",
        "agent_model",
        "agent_version",
    ] {
        assert!(items[0].get(key).is_some(), "missing {key}");
    }
    let pending = store
        .approval_requests_report(Some(""), Some("PENDING_REVIEW"))
        .unwrap();
    assert_eq!(pending["project"], "");
    assert_eq!(pending["status"], "PENDING_REVIEW");
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    assert_eq!(pending["items"][0]["package"], "b");
    let unknown = store
        .approval_requests_report(Some("proj"), Some("BOGUS"))
        .unwrap();
    assert_eq!(
        unknown,
        json!({"project": "proj", "status": "BOGUS", "items": []})
    );
}

#[test]
fn cache_put_get_expire_purge() {
    let (_d, store) = temp_store();
    assert_eq!(store.cache_get("k"), None);
    store.cache_put("k", b"value-1", Duration::from_secs(3600));
    store.cache_put("gone", b"old", Duration::ZERO);
    store.flush().unwrap();
    assert_eq!(store.cache_get("k").as_deref(), Some(&b"value-1"[..]));
    assert_eq!(store.cache_get("gone"), None, "expired entries are misses");
    store.cache_put("k", b"value-2", Duration::from_secs(3600));
    store.flush().unwrap();
    assert_eq!(store.cache_get("k").as_deref(), Some(&b"value-2"[..]));
    assert_eq!(store.purge_expired_cache().unwrap(), 1);
    assert_eq!(store.purge_expired_cache().unwrap(), 0);
    // Survives a restart.
    let path = store.path().to_path_buf();
    drop(store);
    let store = lex_align_store::Store::open(&path).unwrap();
    assert_eq!(store.cache_get("k").as_deref(), Some(&b"value-2"[..]));
}

#[test]
fn ping_and_row_count() {
    let (_d, store) = temp_store();
    assert!(store.ping());
    assert_eq!(store.row_count().unwrap(), 0);
    store
        .append_audit_blocking(common::row("p", "x", "ALLOWED", ""))
        .unwrap();
    assert_eq!(store.row_count().unwrap(), 1);
}

#[test]
fn timestamps_must_parse() {
    let (_d, store) = temp_store();
    assert!(matches!(
        store.append_audit_at_blocking(common::row("p", "x", "ALLOWED", ""), "yesterday"),
        Err(StoreError::InvalidTimestamp(_))
    ));
    let rc = store
        .append_audit_at_blocking(
            common::row("p", "x", "ALLOWED", ""),
            "2026-01-02T03:04:05+01:00",
        )
        .unwrap();
    assert_eq!(rc.ts, "2026-01-02T02:04:05.000000+00:00");
}

#[tokio::test]
async fn proposal_outcomes_are_kept_on_the_request_and_in_its_history() {
    use lex_align_store::ProposalOutcome;
    let (_d, store) = temp_store();
    let r = store
        .upsert_approval_request(req("Flask", "web ui"))
        .await
        .unwrap();
    assert_eq!(r.proposal_status, None);
    let queued = ProposalOutcome {
        backend: "github".into(),
        status: "queued".into(),
        url: None,
        detail: "waiting".into(),
    };
    store.set_proposal_outcome(&r.id, queued).await.unwrap();
    assert_eq!(store.queued_proposals().unwrap().len(), 1);
    let done = store
        .set_proposal_outcome(
            &r.id,
            ProposalOutcome {
                backend: "github".into(),
                status: "opened".into(),
                url: Some("https://git.example/o/r/pull/7".into()),
                detail: "Opened PR #7.".into(),
            },
        )
        .await
        .unwrap();
    // A pull request is not a decision: the request stays pending.
    assert_eq!(done.status, PENDING_REVIEW);
    assert_eq!(done.proposal_status.as_deref(), Some("opened"));
    assert_eq!(
        done.proposal_url.as_deref(),
        Some("https://git.example/o/r/pull/7")
    );
    assert!(done.proposal_at.is_some());
    assert!(store.queued_proposals().unwrap().is_empty());
    let h = store.approval_history(&r.id).unwrap();
    let notes: Vec<_> = h
        .iter()
        .map(|e| (e.actor.as_str(), e.note.as_deref()))
        .collect();
    assert_eq!(
        notes[1..],
        [
            ("proposer:github", Some("proposal queued: waiting")),
            (
                "proposer:github",
                Some("proposal opened: https://git.example/o/r/pull/7")
            ),
        ]
    );
    let report = store.approval_requests_report(None, None).unwrap();
    assert_eq!(report["items"][0]["proposal_status"], "opened");
    // A decided request is not re-sent even if it was left queued.
    store
        .set_proposal_outcome(
            &r.id,
            ProposalOutcome {
                backend: "github".into(),
                status: "queued".into(),
                url: None,
                detail: "waiting".into(),
            },
        )
        .await
        .unwrap();
    store
        .set_request_status(&r.id, REJECTED, "op", Some("no"))
        .await
        .unwrap();
    assert!(store.queued_proposals().unwrap().is_empty());
    let e = store
        .set_proposal_outcome("no-such-id", ProposalOutcome::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
}
