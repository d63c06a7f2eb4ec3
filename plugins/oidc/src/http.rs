//! The blocking HTTP agent for a JWKS URL: a timeout on every call, the
//! system's trust store (a company CA included), TLS only through rustls.

use std::sync::Arc;
use std::time::Duration;

pub fn agent(url: &str, timeout: Duration) -> ureq::Agent {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout(timeout)
        .redirects(0)
        .user_agent(concat!("lex-align-plugin-oidc/", env!("CARGO_PKG_VERSION")));
    // Plain http is only allowed to loopback; loading the trust store for it
    // would be wasted work.
    if url.starts_with("https://") {
        builder = builder.tls_config(native_tls_config());
    }
    builder.build()
}

fn native_tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    // An unreadable store leaves no roots: every https fetch then fails,
    // which refuses tokens rather than trusting anything.
    let found = rustls_native_certs::load_native_certs().unwrap_or_default();
    roots.add_parsable_certificates(found);
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
    .expect("the ring provider supports TLS 1.2 and 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}
