//! Access state: API keys, policy overrides and seen webhook deliveries.
//!
//! These rows change rarely (an operator's command) and are read by the
//! daemon from memory, so they do not go through the audit writer: an
//! [`AccessDb`] opens its own short-lived connection per call. That lets
//! `lex-align admin …` change them while a daemon holds the audit writer
//! lock. Every change bumps `meta.access_generation`; the daemon polls that
//! one value and reloads its snapshot when it moves.
//!
//! Keys are stored only as SHA-256 hashes: a key has 256 bits of entropy,
//! so a slow password hash would add nothing but latency.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::util::{canonical_name, format_ts, now_ts};
use crate::StoreError;

/// Every key starts with this, so secret scanners can find a leaked one.
pub const KEY_PREFIX: &str = "lxa_";

/// One API key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// `agent`, `developer` or `operator` (validated by the caller).
    pub role: String,
    /// The only project the key may act for; `None` = any.
    pub project: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Hex SHA-256 of the key.
    #[serde(skip)]
    pub key_hash: String,
}

/// A freshly made key: the only time the secret exists outside the caller.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub record: ApiKey,
    pub key: String,
}

/// An operator's exception for one package in one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideRow {
    pub id: String,
    /// Canonical name.
    pub package: String,
    pub project: String,
    pub version: Option<String>,
    pub justification: String,
    pub approver: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
}

/// How long webhook delivery ids are remembered.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) const ACCESS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    project    TEXT,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS overrides (
    id            TEXT PRIMARY KEY,
    package       TEXT NOT NULL,
    project       TEXT NOT NULL,
    version       TEXT,
    justification TEXT NOT NULL,
    approver      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT,
    revoked_by    TEXT
);
CREATE INDEX IF NOT EXISTS overrides_expires ON overrides(expires_at);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id          TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_received ON webhook_deliveries(received_at);
";

/// Hex SHA-256 of a presented key (the lookup and storage form).
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out)
        .map_err(|e| StoreError::Write(format!("the OS random generator failed: {e}")))?;
    Ok(out)
}

/// `lxa_` + 64 hex digits: 256 bits from the OS generator.
fn new_key() -> Result<String, StoreError> {
    Ok(format!(
        "{KEY_PREFIX}{}",
        hex::encode(random_bytes::<32>()?)
    ))
}

fn new_id(prefix: &str) -> Result<String, StoreError> {
    Ok(format!("{prefix}_{}", hex::encode(random_bytes::<6>()?)))
}

/// A handle on the access tables of one database file.
#[derive(Debug, Clone)]
pub struct AccessDb {
    path: PathBuf,
}

impl AccessDb {
    /// Creates (or migrates) the database if needed. Safe beside a running
    /// daemon: migrations take SQLite's write lock and re-check the version.
    pub fn open(path: impl AsRef<Path>) -> Result<AccessDb, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = AccessDb { path };
        let mut conn = db.conn()?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
        crate::schema::migrate(&mut conn)?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> Result<Connection, StoreError> {
        let c = Connection::open(&self.path)?;
        c.busy_timeout(Duration::from_secs(10))?;
        Ok(c)
    }

    /// Runs `f` in an IMMEDIATE transaction; bumps the generation when `f`
    /// says it changed something.
    fn change<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (out, changed) = f(&tx)?;
        if changed {
            bump(&tx)?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// The change counter of keys and overrides (cheap to poll).
    pub fn generation(&self) -> Result<i64, StoreError> {
        let conn = self.conn()?;
        let g: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'access_generation'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(g.and_then(|g| g.parse().ok()).unwrap_or(0))
    }

    // ---- API keys --------------------------------------------------------

    pub fn create_key(
        &self,
        name: &str,
        role: &str,
        project: Option<&str>,
        expires_in: Option<Duration>,
    ) -> Result<CreatedKey, StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid("a key needs a non-empty --name".into()));
        }
        let key = new_key()?;
        let now = time::OffsetDateTime::now_utc();
        let record = ApiKey {
            id: new_id("key")?,
            name: name.trim().to_string(),
            role: role.to_string(),
            project: project.map(str::to_string),
            created_at: format_ts(now),
            expires_at: expires_in.map(|d| format_ts(now + d)),
            revoked_at: None,
            key_hash: key_hash(&key),
        };
        self.change(|c| {
            c.execute(
                "INSERT INTO api_keys (id, name, role, project, key_hash, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    record.id,
                    record.name,
                    record.role,
                    record.project,
                    record.key_hash,
                    record.created_at,
                    record.expires_at
                ],
            )?;
            Ok(((), true))
        })?;
        Ok(CreatedKey { record, key })
    }

    /// Every key, newest first (revoked and expired ones included).
    pub fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, name, role, project, key_hash, created_at, expires_at, revoked_at \
             FROM api_keys ORDER BY created_at DESC, id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ApiKey {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: r.get(2)?,
                    project: r.get(3)?,
                    key_hash: r.get(4)?,
                    created_at: r.get(5)?,
                    expires_at: r.get(6)?,
                    revoked_at: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Marks a key revoked; `false` when no live key has that id.
    pub fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        self.change(|c| {
            let n = c.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now_ts()],
            )?;
            Ok((n == 1, n == 1))
        })
    }

    // ---- overrides -------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn grant_override(
        &self,
        package: &str,
        project: &str,
        version: Option<&str>,
        justification: &str,
        approver: &str,
        expires_at: time::OffsetDateTime,
    ) -> Result<OverrideRow, StoreError> {
        let row = OverrideRow {
            id: new_id("ovr")?,
            package: canonical_name(package),
            project: project.to_string(),
            version: version.map(str::to_string),
            justification: justification.to_string(),
            approver: approver.to_string(),
            created_at: now_ts(),
            expires_at: format_ts(expires_at),
            revoked_at: None,
            revoked_by: None,
        };
        self.change(|c| {
            c.execute(
                "INSERT INTO overrides (id, package, project, version, justification, approver, \
                 created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    row.id,
                    row.package,
                    row.project,
                    row.version,
                    row.justification,
                    row.approver,
                    row.created_at,
                    row.expires_at
                ],
            )?;
            Ok(((), true))
        })?;
        Ok(row)
    }

    /// Overrides neither revoked nor lapsed, soonest lapse first.
    pub fn active_overrides(&self) -> Result<Vec<OverrideRow>, StoreError> {
        self.overrides_where("revoked_at IS NULL AND expires_at > ?1", Some(now_ts()))
    }

    /// Every override ever granted, newest first.
    pub fn all_overrides(&self) -> Result<Vec<OverrideRow>, StoreError> {
        self.overrides_where("1 = 1", None)
    }

    fn overrides_where(
        &self,
        filter: &str,
        arg: Option<String>,
    ) -> Result<Vec<OverrideRow>, StoreError> {
        let conn = self.conn()?;
        let order = if arg.is_some() {
            "expires_at ASC"
        } else {
            "created_at DESC"
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT id, package, project, version, justification, approver, created_at, \
             expires_at, revoked_at, revoked_by FROM overrides WHERE {filter} ORDER BY {order}, id"
        ))?;
        let map = |r: &rusqlite::Row<'_>| {
            Ok(OverrideRow {
                id: r.get(0)?,
                package: r.get(1)?,
                project: r.get(2)?,
                version: r.get(3)?,
                justification: r.get(4)?,
                approver: r.get(5)?,
                created_at: r.get(6)?,
                expires_at: r.get(7)?,
                revoked_at: r.get(8)?,
                revoked_by: r.get(9)?,
            })
        };
        let rows = match arg {
            Some(a) => stmt.query_map([a], map)?.collect::<Result<Vec<_>, _>>()?,
            None => stmt.query_map([], map)?.collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    /// Revokes an override; `false` when no unrevoked one has that id.
    pub fn revoke_override(&self, id: &str, by: &str) -> Result<bool, StoreError> {
        self.change(|c| {
            let n = c.execute(
                "UPDATE overrides SET revoked_at = ?2, revoked_by = ?3 \
                 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now_ts(), by],
            )?;
            Ok((n == 1, n == 1))
        })
    }

    // ---- webhook deliveries ---------------------------------------------

    /// Records a delivery id; `false` when it was already seen within the
    /// retention window (a replay). Older ids are forgotten here too.
    pub fn record_delivery(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cutoff = format_ts(time::OffsetDateTime::now_utc() - DELIVERY_RETENTION);
        tx.execute(
            "DELETE FROM webhook_deliveries WHERE received_at < ?1",
            [cutoff],
        )?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO webhook_deliveries (id, received_at) VALUES (?1, ?2)",
            params![id, now_ts()],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }
}

fn bump(c: &Connection) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO meta(key, value) VALUES ('access_generation', '1') \
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, AccessDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = AccessDb::open(dir.path().join("a.sqlite")).unwrap();
        (dir, db)
    }

    #[test]
    fn a_key_is_stored_only_as_its_hash() {
        let (dir, db) = db();
        let made = db.create_key("ci", "agent", Some("web"), None).unwrap();
        assert!(made.key.starts_with(KEY_PREFIX));
        assert_eq!(made.key.len(), KEY_PREFIX.len() + 64);
        let listed = db.keys().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key_hash, key_hash(&made.key));
        drop(db);
        // Not in the main file, the WAL or anything else beside it.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let secret = made.key.as_bytes();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret));
            let body = &secret[KEY_PREFIX.len()..];
            assert!(!bytes.windows(body.len()).any(|w| w == body));
        }
    }

    #[test]
    fn keys_differ_and_revocation_bumps_the_generation() {
        let (_d, db) = db();
        let a = db.create_key("a", "agent", None, None).unwrap();
        let b = db.create_key("b", "agent", None, None).unwrap();
        assert_ne!(a.key, b.key);
        assert_ne!(a.record.id, b.record.id);
        let g = db.generation().unwrap();
        assert!(db.revoke_key(&a.record.id).unwrap());
        assert!(!db.revoke_key(&a.record.id).unwrap(), "already revoked");
        assert!(!db.revoke_key("key_nope").unwrap());
        assert_eq!(db.generation().unwrap(), g + 1);
    }

    #[test]
    fn lapsed_and_revoked_overrides_are_not_active() {
        let (_d, db) = db();
        let now = time::OffsetDateTime::now_utc();
        let live = db
            .grant_override(
                "Requests",
                "web",
                None,
                "j",
                "op",
                now + time::Duration::days(1),
            )
            .unwrap();
        assert_eq!(live.package, "requests");
        db.grant_override(
            "x",
            "web",
            None,
            "j",
            "op",
            now - time::Duration::seconds(1),
        )
        .unwrap();
        let gone = db
            .grant_override("y", "web", None, "j", "op", now + time::Duration::days(2))
            .unwrap();
        assert!(db.revoke_override(&gone.id, "op").unwrap());
        let active = db.active_overrides().unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].id, live.id);
        assert_eq!(db.all_overrides().unwrap().len(), 3);
    }

    #[test]
    fn a_delivery_id_is_accepted_once() {
        let (_d, db) = db();
        assert!(db.record_delivery("d-1").unwrap());
        assert!(!db.record_delivery("d-1").unwrap());
        assert!(db.record_delivery("d-2").unwrap());
    }

    #[test]
    fn a_delivery_id_is_remembered_for_seven_days_only() {
        let (_d, db) = db();
        let now = time::OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        {
            let c = db.conn().unwrap();
            for (id, age) in [("d-6", day * 6), ("d-8", day * 8)] {
                c.execute(
                    "INSERT INTO webhook_deliveries (id, received_at) VALUES (?1, ?2)",
                    params![id, format_ts(now - age)],
                )
                .unwrap();
            }
        }
        // Six days old: still a replay. Eight: forgotten, so accepted anew.
        assert!(!db.record_delivery("d-6").unwrap());
        assert!(db.record_delivery("d-8").unwrap());
        assert!(!db.record_delivery("d-8").unwrap());
    }
}
