//! `AUTH_BACKEND=header`: a trusted reverse proxy names the user.
//!
//! The identity headers are only read from a peer inside the trusted CIDRs;
//! from anyone else they are never looked at (anyone can send them).

use async_trait::async_trait;

use super::settings::HeaderSettings;
use super::{AuthRequest, Authenticator, Principal, Unauthorized};

pub struct HeaderAuth {
    cfg: HeaderSettings,
    /// A `/0` network trusts every peer (the original's rule).
    trust_all: bool,
}

impl HeaderAuth {
    pub fn new(cfg: HeaderSettings) -> HeaderAuth {
        let trust_all = cfg.trusted_proxies.iter().any(|n| n.prefix_len() == 0);
        HeaderAuth { cfg, trust_all }
    }

    fn header(&self, req: &AuthRequest<'_>, name: &str) -> Option<String> {
        let v = req.headers.get(name)?;
        let s = String::from_utf8_lossy(v.as_bytes()).trim().to_string();
        (!s.is_empty()).then_some(s)
    }
}

#[async_trait]
impl Authenticator for HeaderAuth {
    fn name(&self) -> &str {
        "header"
    }

    async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Principal, Unauthorized> {
        if !self.trust_all {
            let Some(peer) = req.peer else {
                return Err(Unauthorized(
                    "The peer address is unknown; header auth requires the request to come through a configured upstream proxy."
                        .into(),
                ));
            };
            // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
            let ip = peer.ip().to_canonical();
            if !self.cfg.trusted_proxies.iter().any(|n| n.contains(&ip)) {
                return Err(Unauthorized(format!(
                    "Request from {ip} not in trusted_proxies; header auth requires the request to come through a configured upstream proxy."
                )));
            }
        }
        let Some(id) = self.header(req, &self.cfg.user_header) else {
            return Err(Unauthorized(format!(
                "Missing {} header from upstream proxy.",
                self.cfg.user_header
            )));
        };
        let email = self.header(req, &self.cfg.email_header);
        let groups = self
            .header(req, &self.cfg.groups_header)
            .map(|g| {
                g.split(self.cfg.groups_separator.as_str())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Principal {
            id,
            email,
            groups,
            role: None,
            project: None,
            method: "header".into(),
        })
    }
}
