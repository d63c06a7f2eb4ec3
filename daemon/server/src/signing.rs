//! The daemon's Ed25519 key, DSSE envelopes over verdicts, and their
//! offline verification.
//!
//! - The key is 32 random bytes (the Ed25519 seed) in
//!   `<data dir>/signing-key`, mode 0600, made atomically on first start.
//!   Its id is the first 16 hex digits of SHA-256 of the 32-byte public key.
//! - A signed verdict is a DSSE envelope (`payloadType`, base64 `payload`,
//!   `signatures: [{keyid, sig}]`); the signature is Ed25519 over
//!   `PAE(payloadType, payload)` =
//!   `"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload`, lengths in
//!   bytes as ASCII decimal.
//! - The verdict payload is the verdict JSON with six keys appended:
//!   `project`, `registry`, `issued_at`, `expires_at`, `key_id`, `daemon`.
//!   Optionally it is an in-toto Statement with the SLSA Verification
//!   Summary predicate instead, the lex-align payload inside it.
//!
//! Audit checkpoints are signed with the same key, over the PAE of their
//! own payload type, so a checkpoint signature never passes as a verdict's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use lex_align_engine::verdict::{Decision, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::ConfigError;

/// File name of the key in the data directory.
pub const KEY_FILE: &str = "signing-key";
/// File the daemon appends its periodic signed checkpoints to.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
/// `payloadType` of a signed verdict.
pub const VERDICT_PAYLOAD_TYPE: &str = "application/vnd.lex-align.verdict+json";
/// `payloadType` of an in-toto Statement (the VSA form).
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Media type of a DSSE envelope (the `Accept` that asks for one).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const VSA_PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// Predicate extension field (a URI, as the VSA parsing rules ask) holding
/// the lex-align verdict payload inside a VSA.
pub const VSA_VERDICT_FIELD: &str = "urn:lex-align:verdict:v1";

/// Decodes standard or URL-safe base64, padded or not (DSSE allows both).
const B64_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const B64_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    B64_STD.decode(s).or_else(|_| B64_URL.decode(s)).ok()
}

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// First 16 hex digits of SHA-256 of the raw public key.
pub fn key_id_of(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

// ---------------------------------------------------------------- settings

/// `LEXALIGN_VERDICT_TTL_HOURS`, `LEXALIGN_CHECKPOINT_INTERVAL_MINUTES`.
#[derive(Debug, Clone)]
pub struct SigningSettings {
    /// How long a signed verdict is valid (advisories change).
    pub verdict_ttl: Duration,
    /// How often the daemon signs a checkpoint of the whole log into
    /// `checkpoints.jsonl`; `None` = never.
    pub checkpoint_interval: Option<Duration>,
}

impl Default for SigningSettings {
    fn default() -> Self {
        SigningSettings {
            verdict_ttl: Duration::from_secs(24 * 3600),
            checkpoint_interval: Some(Duration::from_secs(3600)),
        }
    }
}

impl SigningSettings {
    pub fn from_lookup(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = SigningSettings::default();
        if let Some(h) = var("LEXALIGN_VERDICT_TTL_HOURS") {
            let hours: f64 = h
                .parse()
                .ok()
                .filter(|h: &f64| *h > 0.0 && h.is_finite() && *h <= 24.0 * 366.0)
                .ok_or_else(|| ConfigError {
                    variable: "LEXALIGN_VERDICT_TTL_HOURS",
                    message: format!(
                        "{h:?} is not a positive number of hours (at most a year), e.g. 24"
                    ),
                })?;
            s.verdict_ttl = Duration::from_secs_f64(hours * 3600.0);
        }
        if let Some(m) = var("LEXALIGN_CHECKPOINT_INTERVAL_MINUTES") {
            let minutes: f64 = m.parse().ok().filter(|m: &f64| *m >= 0.0 && m.is_finite()).ok_or_else(|| ConfigError {
                variable: "LEXALIGN_CHECKPOINT_INTERVAL_MINUTES",
                message: format!("{m:?} is not a number of minutes; use e.g. 60, or 0 to turn periodic checkpoints off"),
            })?;
            s.checkpoint_interval =
                (minutes > 0.0).then(|| Duration::from_secs_f64(minutes * 60.0));
        }
        Ok(s)
    }
}

// ---------------------------------------------------------------- the key

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the signing key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the signing key {path}: {source}; make the data directory (LEXALIGN_DATA_DIR) writable")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the signing key {path} is not a lex-align key ({len} bytes, expected 32)")]
    Malformed { path: PathBuf, len: usize },
    #[error(
        "the signing key {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// `{"keys": [{"key_id", "alg", "public_key"}]}`: `GET /api/v1/keys`, and
/// what `--keys FILE` reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeysDocument {
    pub keys: Vec<PublicKeyEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicKeyEntry {
    pub key_id: String,
    /// Always `ed25519`.
    pub alg: String,
    /// Base64 of the 32 raw bytes.
    pub public_key: String,
}

/// The daemon's signing key.
pub struct DaemonKey {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for DaemonKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "DaemonKey({})", self.key_id)
    }
}

impl DaemonKey {
    pub fn from_seed(seed: &[u8; 32]) -> DaemonKey {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id_of(&key.verifying_key());
        DaemonKey { key, key_id }
    }

    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(KEY_FILE)
    }

    /// The key of `<data_dir>/signing-key`, made on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<DaemonKey, KeyError> {
        let path = Self::path_in(data_dir);
        if !path.exists() {
            create_key_file(&path).map_err(|source| KeyError::Create {
                path: path.clone(),
                source,
            })?;
        }
        Self::load(&path)
    }

    /// An existing key file (refused when other users can read it).
    pub fn load(path: &Path) -> Result<DaemonKey, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Exposed {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let _ = meta;
        let bytes = std::fs::read(path).map_err(read)?;
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Malformed {
                path: path.to_path_buf(),
                len: bytes.len(),
            })?;
        Ok(DaemonKey::from_seed(&seed))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The `GET /api/v1/keys` body.
    pub fn keys_document(&self) -> KeysDocument {
        KeysDocument {
            keys: vec![PublicKeyEntry {
                key_id: self.key_id.clone(),
                alg: "ed25519".into(),
                public_key: b64(self.verifying_key().as_bytes()),
            }],
        }
    }

    /// Ed25519 over `PAE(payload_type, payload)`.
    pub fn sign_pae(&self, payload_type: &str, payload: &[u8]) -> Signature {
        self.key.sign(&pae(payload_type, payload))
    }

    /// A DSSE envelope (JSON bytes) over `payload`.
    pub fn envelope(&self, payload_type: &str, payload: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&self.envelope_value(payload_type, payload))
            .expect("an envelope serialises")
    }

    pub fn envelope_value(&self, payload_type: &str, payload: &[u8]) -> Envelope {
        let sig = self.sign_pae(payload_type, payload);
        Envelope {
            payload: b64(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature {
                keyid: Some(self.key_id.clone()),
                sig: b64(&sig.to_bytes()),
            }],
        }
    }
}

impl lex_align_store::export::CheckpointSigner for DaemonKey {
    fn key_id(&self) -> String {
        self.key_id.clone()
    }
    fn sign(&self, payload_type: &str, payload: &[u8]) -> String {
        b64(&self.sign_pae(payload_type, payload).to_bytes())
    }
}

/// Writes a fresh key to `path` without ever exposing a partial or
/// world-readable file, and without replacing a key another process made
/// meanwhile (both then use the one that got there first).
fn create_key_file(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut nonce = [0u8; 8];
    getrandom::getrandom(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{KEY_FILE}.{}.{}.tmp",
        std::process::id(),
        hex::encode(nonce)
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(&seed)?;
        f.sync_all()
    })();
    seed.fill(0);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // A hard link fails if the key exists: the first process wins.
    let linked = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // File systems without hard links: rename, unless a key appeared.
        Err(_) if !path.exists() => std::fs::rename(&tmp, path),
        Err(_) => Ok(()),
    };
    let _ = std::fs::remove_file(&tmp);
    linked?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

// ---------------------------------------------------------------- envelopes

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvelopeSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    pub sig: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// What the daemon signs a verdict for.
pub struct VerdictContext<'a> {
    pub project: &'a str,
    pub registry_version: &'a str,
    /// SHA-256 of the registry file; `None` on the built-in policy.
    pub registry_sha256: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// `application/vnd.lex-align.verdict+json`.
    Verdict,
    /// An in-toto Statement with the SLSA VSA predicate.
    Vsa,
}

/// The keys appended to a verdict's JSON in a signed payload.
#[derive(Serialize)]
struct Claims<'a> {
    project: &'a str,
    registry: RegistryClaim<'a>,
    issued_at: String,
    expires_at: String,
    key_id: &'a str,
    daemon: DaemonClaim,
}

#[derive(Serialize)]
struct RegistryClaim<'a> {
    version: &'a str,
    sha256: Option<&'a str>,
}

#[derive(Serialize)]
struct DaemonClaim {
    name: &'static str,
    version: &'static str,
}

impl DaemonKey {
    /// The signed verdict payload: `verdict_json` (the verdict's own
    /// serialisation, an object) with the claims appended.
    pub fn verdict_payload(
        &self,
        verdict_json: &[u8],
        ctx: &VerdictContext<'_>,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Vec<u8> {
        let claims = Claims {
            project: ctx.project,
            registry: RegistryClaim {
                version: ctx.registry_version,
                sha256: ctx.registry_sha256,
            },
            issued_at: rfc3339(now),
            expires_at: rfc3339(now + ttl),
            key_id: &self.key_id,
            daemon: DaemonClaim {
                name: "lex-align",
                version: env!("CARGO_PKG_VERSION"),
            },
        };
        let claims = serde_json::to_vec(&claims).expect("claims serialise");
        let body = trim_object(verdict_json);
        let mut out = Vec::with_capacity(body.len() + claims.len() + 1);
        out.extend_from_slice(&body[..body.len() - 1]);
        if body.len() > 2 {
            out.push(b',');
        }
        out.extend_from_slice(&claims[1..]);
        out
    }

    /// The VSA form: an in-toto Statement about `pkg:pypi/<name>@<version>`
    /// whose predicate maps the verdict onto the VSA fields and carries the
    /// lex-align payload under [`VSA_VERDICT_FIELD`].
    pub fn vsa_payload(
        &self,
        verdict: &Verdict,
        verdict_json: &[u8],
        ctx: &VerdictContext<'_>,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Vec<u8> {
        let inner: Value =
            serde_json::from_slice(&self.verdict_payload(verdict_json, ctx, now, ttl))
                .expect("the payload is JSON");
        let name = lex_align_store::canonical_name(&verdict.package);
        let version = verdict
            .resolved_version
            .as_deref()
            .or(verdict.version.as_deref());
        let purl = match version {
            Some(v) => format!("pkg:pypi/{name}@{v}"),
            None => format!("pkg:pypi/{name}"),
        };
        let passed = verdict.verdict != Decision::Denied;
        let level = match verdict.verdict {
            Decision::Allowed => "LEXALIGN_ALLOWED",
            Decision::ProvisionallyAllowed => "LEXALIGN_PROVISIONALLY_ALLOWED",
            Decision::Denied => "FAILED",
        };
        let mut policy = json!({"uri": format!("urn:lex-align:registry:{}", ctx.registry_version)});
        if let Some(h) = ctx.registry_sha256 {
            policy["digest"] = json!({"sha256": h});
        }
        let statement = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{
                "name": purl,
                "uri": purl,
                // A release is many files: the digest is of the package URL.
                "digest": {"sha256": hex::encode(Sha256::digest(purl.as_bytes()))},
            }],
            "predicateType": VSA_PREDICATE_TYPE,
            "predicate": {
                "verifier": {
                    "id": format!("urn:lex-align:daemon:{}", self.key_id),
                    "version": {"lex-align": env!("CARGO_PKG_VERSION")},
                },
                "timeVerified": inner["issued_at"],
                "resourceUri": purl,
                "policy": policy,
                "verificationResult": if passed { "PASSED" } else { "FAILED" },
                "verifiedLevels": [level],
                "slsaVersion": "1.0",
                VSA_VERDICT_FIELD: inner,
            },
        });
        serde_json::to_vec(&statement).expect("a statement serialises")
    }

    /// A signed verdict: the DSSE envelope as JSON.
    pub fn sign_verdict(
        &self,
        kind: EnvelopeKind,
        verdict: &Verdict,
        verdict_json: &[u8],
        ctx: &VerdictContext<'_>,
        ttl: Duration,
    ) -> Envelope {
        let now = OffsetDateTime::now_utc();
        match kind {
            EnvelopeKind::Verdict => self.envelope_value(
                VERDICT_PAYLOAD_TYPE,
                &self.verdict_payload(verdict_json, ctx, now, ttl),
            ),
            EnvelopeKind::Vsa => self.envelope_value(
                INTOTO_PAYLOAD_TYPE,
                &self.vsa_payload(verdict, verdict_json, ctx, now, ttl),
            ),
        }
    }
}

fn trim_object(json: &[u8]) -> &[u8] {
    let start = json
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let end = json
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(json.len(), |e| e + 1);
    let s = &json[start..end];
    assert!(
        s.len() >= 2 && s[0] == b'{' && s[s.len() - 1] == b'}',
        "a verdict serialises to a JSON object"
    );
    s
}

// ---------------------------------------------------------------- verifying

/// Public keys trusted to have signed.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<(String, VerifyingKey)>,
}

impl KeySet {
    pub fn of(key: &DaemonKey) -> KeySet {
        KeySet {
            keys: vec![(key.key_id.clone(), key.verifying_key())],
        }
    }

    /// A `GET /api/v1/keys` answer, saved as is.
    pub fn from_document(bytes: &[u8]) -> Result<KeySet, String> {
        let doc: KeysDocument = serde_json::from_slice(bytes).map_err(|e| {
            format!("not a keys document ({{\"keys\": [{{\"key_id\", \"alg\", \"public_key\"}}]}}): {e}")
        })?;
        let mut keys = Vec::new();
        for e in doc.keys {
            if !e.alg.eq_ignore_ascii_case("ed25519") {
                return Err(format!(
                    "key {}: algorithm {:?} is not supported (ed25519 only)",
                    e.key_id, e.alg
                ));
            }
            let raw: [u8; 32] = unb64(&e.public_key)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    format!("key {}: public_key is not the base64 of 32 bytes", e.key_id)
                })?;
            let key = VerifyingKey::from_bytes(&raw)
                .map_err(|_| format!("key {}: not a valid Ed25519 public key", e.key_id))?;
            if key_id_of(&key) != e.key_id {
                return Err(format!(
                    "key {}: key_id does not match its public key (expected {})",
                    e.key_id,
                    key_id_of(&key)
                ));
            }
            keys.push((e.key_id, key));
        }
        if keys.is_empty() {
            return Err("the keys document lists no key".into());
        }
        Ok(KeySet { keys })
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, k)| k)
    }

    /// Checks one signature over `PAE(payload_type, payload)`; returns the
    /// key id that made it. Without a key id every trusted key is tried.
    pub fn verify_pae(
        &self,
        key_id: Option<&str>,
        payload_type: &str,
        payload: &[u8],
        sig_b64: &str,
    ) -> Result<String, String> {
        let sig: [u8; 64] = unb64(sig_b64)
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not the base64 of 64 bytes")?;
        let sig = Signature::from_bytes(&sig);
        let message = pae(payload_type, payload);
        let candidates: Vec<&(String, VerifyingKey)> = match key_id {
            Some(id) => {
                let Some(k) = self.keys.iter().find(|(i, _)| i == id) else {
                    return Err(format!(
                        "signed by key {id}, which is not among the trusted keys ({})",
                        self.ids().join(", ")
                    ));
                };
                vec![k]
            }
            None => self.keys.iter().collect(),
        };
        for (id, key) in candidates {
            if key.verify_strict(&message, &sig).is_ok() {
                return Ok(id.clone());
            }
        }
        Err(match key_id {
            Some(id) => format!("the signature by key {id} does not verify (the payload or the signature was changed)"),
            None => "no trusted key made this signature (the payload or the signature was changed, or another key signed it)".into(),
        })
    }
}

impl lex_align_store::export::CheckpointVerifier for KeySet {
    fn verify(
        &self,
        key_id: &str,
        payload_type: &str,
        payload: &[u8],
        signature: &str,
    ) -> Result<(), String> {
        if self.get(key_id).is_none() {
            return Err(format!(
                "signed by key {key_id}, which is not among the trusted keys ({})",
                self.ids().join(", ")
            ));
        }
        self.verify_pae(Some(key_id), payload_type, payload, signature)
            .map(|_| ())
    }
}

/// An envelope whose signature holds.
#[derive(Debug, Clone)]
pub struct Verified {
    pub payload_type: String,
    /// The exact bytes the signature covers.
    pub payload: Vec<u8>,
    pub key_id: String,
}

/// Checks a DSSE envelope's signatures (one by a trusted key suffices).
pub fn verify_envelope(bytes: &[u8], keys: &KeySet) -> Result<Verified, String> {
    let env: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a DSSE envelope (payload, payloadType, signatures): {e}"))?;
    let payload = unb64(&env.payload).ok_or("the payload is not base64")?;
    if env.signatures.is_empty() {
        return Err("the envelope has no signature".into());
    }
    let mut why = Vec::new();
    for s in &env.signatures {
        match keys.verify_pae(s.keyid.as_deref(), &env.payload_type, &payload, &s.sig) {
            Ok(key_id) => {
                return Ok(Verified {
                    payload_type: env.payload_type,
                    payload,
                    key_id,
                })
            }
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// What a valid signed verdict says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictSummary {
    pub verdict: String,
    pub package: String,
    pub version: Option<String>,
    pub project: String,
    pub reason: String,
    pub issued_at: String,
    pub expires_at: String,
    pub key_id: String,
    /// True when past `expires_at` (only with `allow_expired`).
    pub expired: bool,
    /// `verdict` or `vsa`.
    pub form: &'static str,
}

/// Checks what a verified envelope carries: a lex-align verdict (plain or
/// inside a VSA), signed by the key it names, not expired at `now` (unless
/// `allow_expired`).
pub fn check_verdict(
    v: &Verified,
    now: OffsetDateTime,
    allow_expired: bool,
) -> Result<VerdictSummary, String> {
    let payload: Value = serde_json::from_slice(&v.payload)
        .map_err(|e| format!("the signed payload is not JSON: {e}"))?;
    let (claims, form) = match v.payload_type.as_str() {
        VERDICT_PAYLOAD_TYPE => (payload, "verdict"),
        INTOTO_PAYLOAD_TYPE => {
            if payload["_type"] != STATEMENT_TYPE {
                return Err(format!("the statement's _type is not {STATEMENT_TYPE}"));
            }
            if payload["predicateType"] != VSA_PREDICATE_TYPE {
                return Err(format!("the statement's predicateType is not {VSA_PREDICATE_TYPE}"));
            }
            let inner = payload["predicate"][VSA_VERDICT_FIELD].clone();
            if !inner.is_object() {
                return Err(format!("the VSA carries no lex-align verdict ({VSA_VERDICT_FIELD})"));
            }
            (inner, "vsa")
        }
        other => {
            return Err(format!(
                "payloadType {other:?} is not a lex-align verdict ({VERDICT_PAYLOAD_TYPE} or {INTOTO_PAYLOAD_TYPE})"
            ))
        }
    };
    let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let verdict = s("verdict").ok_or("the payload has no verdict")?;
    let key_id = s("key_id").ok_or("the payload names no key_id")?;
    if key_id != v.key_id {
        return Err(format!(
            "the payload names key {key_id} but key {} signed it",
            v.key_id
        ));
    }
    let expires_at = s("expires_at").ok_or("the payload has no expires_at")?;
    let expires = OffsetDateTime::parse(&expires_at, &Rfc3339)
        .map_err(|_| format!("expires_at {expires_at:?} is not an RFC 3339 time"))?;
    let expired = now >= expires;
    if expired && !allow_expired {
        return Err(format!(
            "the verdict expired at {expires_at} (advisories may have changed since; ask the daemon again, or pass --allow-expired)"
        ));
    }
    Ok(VerdictSummary {
        verdict,
        package: s("package").unwrap_or_default(),
        version: s("resolved_version").or_else(|| s("version")),
        project: s("project").unwrap_or_default(),
        reason: s("reason").unwrap_or_default(),
        issued_at: s("issued_at").unwrap_or_default(),
        expires_at,
        key_id,
        expired,
        form,
    })
}

/// The public keys of the daemon on this machine (from its key file),
/// for offline checks without a saved keys document.
pub fn local_keys(data_dir: &Path) -> Result<KeySet, KeyError> {
    Ok(KeySet::of(&DaemonKey::load(&DaemonKey::path_in(data_dir))?))
}

// ---------------------------------------------------------------- cadence

/// Every `interval`, signs a checkpoint of the whole log (row count, head
/// hash, time) and appends it as one line to `path`; skipped while the log
/// is empty or its head has not moved since the last one.
pub fn start_checkpoints(
    store: std::sync::Arc<lex_align_store::Store>,
    key: std::sync::Arc<DaemonKey>,
    path: PathBuf,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_head: Option<String> = None;
        loop {
            tick.tick().await;
            let (store, key, path, prev) =
                (store.clone(), key.clone(), path.clone(), last_head.clone());
            let done = tokio::task::spawn_blocking(move || -> Result<Option<String>, String> {
                let cp = store.log_checkpoint(&*key).map_err(|e| e.to_string())?;
                if cp.checkpoint.rows == 0
                    || prev.as_deref() == Some(cp.checkpoint.head_hash.as_str())
                {
                    return Ok(None);
                }
                let mut line = serde_json::to_vec(&cp).map_err(|e| e.to_string())?;
                line.push(b'\n');
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                f.write_all(&line)
                    .and_then(|_| f.sync_data())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Some(cp.checkpoint.head_hash))
            })
            .await;
            match done {
                Ok(Ok(Some(head))) => last_head = Some(head),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!("cannot write a signed audit checkpoint: {e}"),
                Err(e) => tracing::warn!("audit checkpoint task failed: {e}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_test_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        // Lengths are bytes, not characters.
        assert_eq!(pae("é", b""), "DSSEv1 2 é 0 ".as_bytes().to_vec());
    }

    #[test]
    fn key_id_is_16_hex_of_sha256_of_the_public_key() {
        let k = DaemonKey::from_seed(&[7u8; 32]);
        let expected = hex::encode(Sha256::digest(k.verifying_key().as_bytes()));
        assert_eq!(k.key_id(), &expected[..16]);
        let doc = serde_json::to_string(&k.keys_document()).unwrap();
        let prefix = format!(
            r#"{{"keys":[{{"key_id":"{}","alg":"ed25519","public_key":""#,
            k.key_id()
        );
        assert!(doc.starts_with(&prefix), "{doc}");
        let v: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(
            unb64(v["keys"][0]["public_key"].as_str().unwrap()).unwrap(),
            k.verifying_key().as_bytes().to_vec()
        );
        let set = KeySet::from_document(doc.as_bytes()).unwrap();
        assert_eq!(set.ids(), vec![k.key_id()]);
    }

    #[test]
    fn payload_appends_claims_to_the_verdict_object() {
        let k = DaemonKey::from_seed(&[1u8; 32]);
        let ctx = VerdictContext {
            project: "web",
            registry_version: "1.2",
            registry_sha256: None,
        };
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let p = k.verdict_payload(
            br#"{"verdict":"ALLOWED","package":"httpx"}"#,
            &ctx,
            now,
            Duration::from_secs(3600),
        );
        let text = String::from_utf8(p).unwrap();
        assert!(text.starts_with(r#"{"verdict":"ALLOWED","package":"httpx","project":"web","registry":{"version":"1.2","sha256":null},"issued_at":"2027-01-15T08:00:00Z","expires_at":"2027-01-15T09:00:00Z","key_id":""#), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["daemon"]["name"], "lex-align");
    }

    #[test]
    fn envelopes_verify_and_tampering_is_refused() {
        let k = DaemonKey::from_seed(&[3u8; 32]);
        let keys = KeySet::of(&k);
        let env = k.envelope(VERDICT_PAYLOAD_TYPE, b"{}");
        let ok = verify_envelope(&env, &keys).unwrap();
        assert_eq!(ok.payload, b"{}");
        assert_eq!(ok.key_id, k.key_id());

        let mut e: Envelope = serde_json::from_slice(&env).unwrap();
        e.payload_type = INTOTO_PAYLOAD_TYPE.into();
        let err = verify_envelope(&serde_json::to_vec(&e).unwrap(), &keys).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");

        let other = DaemonKey::from_seed(&[4u8; 32]);
        let err = verify_envelope(&env, &KeySet::of(&other)).unwrap_err();
        assert!(err.contains("not among the trusted keys"), "{err}");
    }

    #[test]
    fn settings_parse_and_refuse_nonsense() {
        let s = SigningSettings::from_lookup(&|k| match k {
            "LEXALIGN_VERDICT_TTL_HOURS" => Some("2".into()),
            "LEXALIGN_CHECKPOINT_INTERVAL_MINUTES" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.verdict_ttl, Duration::from_secs(7200));
        assert_eq!(s.checkpoint_interval, None);
        let e = SigningSettings::from_lookup(&|k| {
            (k == "LEXALIGN_VERDICT_TTL_HOURS").then(|| "-1".into())
        })
        .unwrap_err();
        assert_eq!(e.variable, "LEXALIGN_VERDICT_TTL_HOURS");
    }

    #[test]
    fn the_key_file_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = DaemonKey::load_or_create(&dir.path().join("data")).unwrap();
        let b = DaemonKey::load_or_create(&dir.path().join("data")).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let path = dir.path().join("data").join(KEY_FILE);
        assert_eq!(std::fs::read(&path).unwrap().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = DaemonKey::load(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE)]);
    }

    #[test]
    fn racing_creators_end_up_with_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        DaemonKey::load_or_create(&data)
                            .unwrap()
                            .key_id()
                            .to_string()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    }
}
