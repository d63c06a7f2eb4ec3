//! Test keys and tokens. The RSA keys are test-only fixtures (ring cannot
//! generate RSA keys); P-256 keys are made fresh for each run.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://idp.example.test/realms/dev";
pub const AUDIENCE: &str = "lex-align";

/// A signing key with its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// The public key as PEM (what the HMAC key-confusion attack signs with).
    pub public_pem: Option<String>,
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("fixture PEM is base64")
}

/// Fixture RSA key `n` (1 or 2), PKCS#1.
pub fn rsa(n: u8, kid: &str) -> TestKey {
    let (private, public) = match n {
        1 => (
            include_str!("../fixtures/rsa1.pem"),
            include_str!("../fixtures/rsa1.pub.pem"),
        ),
        _ => (
            include_str!("../fixtures/rsa2.pem"),
            include_str!("../fixtures/rsa2.pub.pem"),
        ),
    };
    let der = pem_der(private);
    let pair = RsaKeyPair::from_der(&der).expect("fixture RSA key");
    let parts: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    TestKey {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(&der),
        jwk: json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(&parts.n),
            "e": URL_SAFE_NO_PAD.encode(&parts.e),
        }),
        public_pem: Some(public.to_string()),
    }
}

/// A new P-256 key.
pub fn ec(kid: &str) -> TestKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // Uncompressed point: 0x04 || x || y.
    let point = pair.public_key().as_ref();
    TestKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
        public_pem: None,
    }
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a valid token for `sub`, an hour to live.
pub fn claims(sub: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub,
        "email": format!("{sub}@example.test"),
        "groups": ["lex-align-admins", "devs"],
        "iat": now(), "exp": now() + 3600,
    })
}

/// Signs `claims` with `key`, naming its `kid`.
pub fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// Signs with `key` but puts `kid` in the header.
pub fn sign_as(key: &TestKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// `alg: none`, empty signature.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(claims)
    )
}

/// The key-confusion attack: HS256 with the RSA public key (PEM) as the
/// HMAC secret, naming the RSA key's `kid`.
pub fn hmac_with_public_key(key: &TestKey, alg: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(key.kid.clone());
    let secret = key.public_pem.as_ref().expect("an RSA key");
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The token with its payload replaced (signature kept).
pub fn tamper_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims), parts[2])
}

/// The token with one signature byte flipped.
pub fn tamper_signature(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 0x01;
    format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig))
}

/// An `authenticate` request with `Authorization: Bearer <token>`.
pub fn auth_request(token: &str) -> String {
    json!({
        "op": "authenticate", "method": "GET", "path": "/api/v1/health",
        "headers": {"authorization": format!("Bearer {token}")},
        "peer": "127.0.0.1:5555",
    })
    .to_string()
}

/// Parses a plugin answer.
pub fn parse(answer: &str) -> Value {
    serde_json::from_str(answer).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {answer}"))
}

/// Asserts a 401 whose detail contains `reason` and none of the token.
pub fn assert_refused(answer: &str, token: &str, reason: &str) {
    let v = parse(answer);
    assert_eq!(
        v["error"]["status"], 401,
        "expected 401 for {reason}: {answer}"
    );
    let detail = v["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(reason),
        "detail {detail:?} should say {reason:?}"
    );
    for part in token.split('.').filter(|p| p.len() >= 8) {
        assert!(
            !answer.contains(part),
            "the answer echoes the token: {answer}"
        );
    }
}
