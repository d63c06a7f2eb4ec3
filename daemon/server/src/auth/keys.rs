//! API keys: an in-memory snapshot of the `api_keys` table, refreshed when
//! the table's generation moves (see `lex_align_store::AccessDb`).
//!
//! A presented key is hashed (SHA-256), found by the first bytes of its
//! hash and then compared in full in constant time, so the lookup's timing
//! says nothing about the stored hashes. Expiry is checked at each request,
//! revocation as soon as the snapshot is refreshed (within a poll interval).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{bearer, AuthRequest, Authenticator, Principal, Role, Unauthorized};
use lex_align_store::{AccessDb, ApiKey};

struct Entry {
    hash: [u8; 32],
    id: String,
    name: String,
    role: Role,
    project: Option<String>,
    expires_at: Option<OffsetDateTime>,
    revoked: bool,
}

#[derive(Default)]
struct Snapshot {
    generation: i64,
    by_prefix: HashMap<[u8; 8], Vec<Entry>>,
}

#[derive(Default)]
pub struct KeyRing {
    snapshot: ArcSwap<Snapshot>,
}

fn invalid() -> Unauthorized {
    Unauthorized("Invalid API key.".into())
}

impl KeyRing {
    /// Reloads when the access generation moved; returns whether it did.
    pub fn refresh(&self, db: &AccessDb) -> Result<bool, lex_align_store::StoreError> {
        let generation = db.generation()?;
        if generation == self.snapshot.load().generation && generation != 0 {
            return Ok(false);
        }
        let keys = db.keys()?;
        self.replace(generation, &keys);
        Ok(true)
    }

    fn replace(&self, generation: i64, keys: &[ApiKey]) {
        let mut by_prefix: HashMap<[u8; 8], Vec<Entry>> = HashMap::new();
        for k in keys {
            let Ok(bytes) = hex::decode(&k.key_hash) else {
                continue;
            };
            let Ok(hash) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                continue;
            };
            let Some(role) = Role::parse(&k.role) else {
                tracing::warn!(key = %k.id, role = %k.role, "API key with an unknown role ignored");
                continue;
            };
            let mut prefix = [0u8; 8];
            prefix.copy_from_slice(&hash[..8]);
            by_prefix.entry(prefix).or_default().push(Entry {
                hash,
                id: k.id.clone(),
                name: k.name.clone(),
                role,
                project: k.project.clone(),
                // Unparseable expiry = already expired (fail closed).
                expires_at: k.expires_at.as_deref().map(|t| {
                    OffsetDateTime::parse(t, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
                }),
                revoked: k.revoked_at.is_some(),
            });
        }
        self.snapshot.store(Arc::new(Snapshot {
            generation,
            by_prefix,
        }));
    }

    pub fn check(&self, key: &str) -> Result<Principal, Unauthorized> {
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&hash[..8]);
        let snap = self.snapshot.load();
        let entry = snap
            .by_prefix
            .get(&prefix)
            .and_then(|v| v.iter().find(|e| bool::from(e.hash.ct_eq(&hash))))
            .ok_or_else(invalid)?;
        if entry.revoked {
            return Err(Unauthorized("API key revoked.".into()));
        }
        if let Some(exp) = entry.expires_at {
            if OffsetDateTime::now_utc() >= exp {
                return Err(Unauthorized(format!(
                    "API key expired at {}.",
                    exp.format(&Rfc3339).unwrap_or_default()
                )));
            }
        }
        Ok(Principal {
            id: entry.name.clone(),
            email: None,
            groups: Vec::new(),
            role: Some(entry.role),
            project: entry.project.clone(),
            method: format!("apikey:{}", entry.id),
        })
    }
}

/// `AUTH_BACKEND=apikey`: only keys get in.
pub struct ApiKeyAuth(pub Arc<KeyRing>);

#[async_trait]
impl Authenticator for ApiKeyAuth {
    fn name(&self) -> &str {
        "apikey"
    }
    async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Principal, Unauthorized> {
        match bearer(req.headers)? {
            None => Err(Unauthorized(
                "Bearer token required: send `Authorization: Bearer <API key>` (create one with `lex-align admin keys create`)."
                    .into(),
            )),
            Some(t) => self.0.check(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_checked_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = AccessDb::open(dir.path().join("k.sqlite")).unwrap();
        let ring = KeyRing::default();
        let ok = db.create_key("ci", "agent", Some("web"), None).unwrap();
        let old = db
            .create_key("old", "operator", None, Some(std::time::Duration::ZERO))
            .unwrap();
        let gone = db.create_key("gone", "developer", None, None).unwrap();
        db.revoke_key(&gone.record.id).unwrap();
        assert!(ring.refresh(&db).unwrap());
        assert!(!ring.refresh(&db).unwrap(), "nothing changed");

        let p = ring.check(&ok.key).unwrap();
        assert_eq!(p.id, "ci");
        assert_eq!(p.role, Some(Role::Agent));
        assert_eq!(p.project.as_deref(), Some("web"));
        assert_eq!(p.method, format!("apikey:{}", ok.record.id));

        assert!(ring.check(&old.key).unwrap_err().0.contains("expired"));
        assert!(ring.check(&gone.key).unwrap_err().0.contains("revoked"));
        // One character off, a prefix, an empty key: all just invalid.
        let mut wrong = ok.key.clone();
        wrong.pop();
        wrong.push(if ok.key.ends_with('0') { '1' } else { '0' });
        for k in [wrong.as_str(), &ok.key[..20], "lxa_", ""] {
            assert_eq!(ring.check(k).unwrap_err(), invalid(), "{k}");
        }
    }
}
