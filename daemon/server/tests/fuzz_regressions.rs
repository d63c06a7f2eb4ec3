//! Inputs the fuzz target `http_router` (tests/fuzz) found: the router in
//! process; a bad request is a 4xx, never a 500 from a caught panic.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use lex_align_daemon::{build_app, Config, ProposerChoice};
use tower::ServiceExt;

#[tokio::test]
async fn fuzz_pep508_name_evaluate_requirement() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.watch_registry = false;
    config.reload_interval = None;
    config.proposer = ProposerChoice::LogOnly;
    let (router, _handle) = build_app(config).await.unwrap();
    let req = Request::get("/api/v1/evaluate?package=&requirement=cryptography%2E%3D41")
        .header("x-lexalign-project", "fuzz")
        .body(Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
