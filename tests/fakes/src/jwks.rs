//! Fake OpenID provider key endpoint: serves a JWKS the test sets (and
//! changes, for rotations) at `/jwks.json`, counting fetches.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::server::{gate, Control, Running};

struct JwksState {
    body: RwLock<Value>,
}

/// Fake JWKS endpoint on 127.0.0.1; stops on drop.
pub struct FakeJwks {
    state: Arc<JwksState>,
    ctl: Arc<Control>,
    server: Running,
}

impl FakeJwks {
    /// Serves `jwks` (a `{"keys":[...]}` document).
    pub fn start(jwks: Value) -> FakeJwks {
        let ctl = Control::new(("application/json", r#"{"error":"unavailable"}"#));
        let state = Arc::new(JwksState {
            body: RwLock::new(jwks),
        });
        let st = state.clone();
        let gate_ctl = ctl.clone();
        let server = Running::start("jwks", move |_| {
            Router::new()
                .route("/jwks.json", get(serve))
                .layer(axum::middleware::from_fn_with_state(gate_ctl, gate))
                .with_state(st)
        });
        FakeJwks { state, ctl, server }
    }

    /// The key set's URL, e.g. `http://127.0.0.1:41234/jwks.json`.
    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.server.addr())
    }

    /// Serve another key set from now on (a key rotation).
    pub fn set_jwks(&self, jwks: Value) {
        *self.state.body.write().unwrap() = jwks;
    }

    /// How many times the key set was fetched.
    pub fn fetches(&self) -> u64 {
        self.ctl.count_for("/jwks.json")
    }

    /// Answer 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.ctl.set_down(down);
    }
}

async fn serve(State(st): State<Arc<JwksState>>) -> Response {
    let body = st.body.read().unwrap().to_string();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
