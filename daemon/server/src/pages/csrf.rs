//! Cross-site request forgery guards for the pages' forms.
//!
//! Two independent checks on every POST:
//! - a token in a hidden field: HMAC-SHA256 of the caller's identity under
//!   a secret drawn when the process starts using it (so tokens die with
//!   the daemon and never name anyone else), compared in constant time;
//! - the browser's own word on where the form came from: `Sec-Fetch-Site`
//!   must not be `cross-site`/`same-site`, and `Origin` (or, without it,
//!   `Referer`) must be this daemon's origin as the request's `Host` names it.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::Identity;

fn secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        // Two version-4 UUIDs: 244 bits from the OS generator.
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key
    })
}

fn mac_for(identity: &Identity) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret()).expect("HMAC takes any key length");
    mac.update(b"lex-align pages csrf\0");
    mac.update(identity.id.as_bytes());
    mac.update(b"\0");
    mac.update(identity.method.as_bytes());
    mac
}

/// The token the caller's forms carry.
pub fn token(identity: &Identity) -> String {
    hex::encode(mac_for(identity).finalize().into_bytes())
}

/// True when `presented` is the caller's token.
pub fn token_valid(identity: &Identity, presented: Option<&str>) -> bool {
    let Some(bytes) = presented
        .filter(|t| t.len() == 64)
        .and_then(|t| hex::decode(t).ok())
    else {
        return false;
    };
    mac_for(identity).verify_slice(&bytes).is_ok()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `scheme://host[:port]` of a URL, lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty() && !authority.contains('@')).then(|| {
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            authority.to_ascii_lowercase()
        )
    })
}

/// Why a form POST does not come from this daemon's own pages, if it does not.
pub fn cross_origin(headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = header(headers, "sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Some("the browser says this form was sent from another site");
        }
    }
    let hosts: Vec<String> = [
        header(headers, header::HOST.as_str()),
        header(headers, "x-forwarded-host"),
    ]
    .into_iter()
    .flatten()
    .map(str::to_ascii_lowercase)
    .collect();
    if hosts.is_empty() {
        return Some("the request names no Host");
    }
    let sent = match header(headers, header::ORIGIN.as_str()) {
        Some("null") => return Some("the form was sent from an opaque origin"),
        Some(o) => origin_of(o),
        None => match header(headers, header::REFERER.as_str()) {
            Some(r) => origin_of(r),
            None => return Some("the browser sent neither Origin nor Referer"),
        },
    };
    let Some(sent) = sent else {
        return Some("the form's Origin is malformed");
    };
    let ok = ["http", "https"].iter().any(|scheme| {
        hosts
            .iter()
            .any(|host| sent == format!("{scheme}://{host}"))
    });
    (!ok).then_some("the form was sent from another origin")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn id(name: &str) -> Identity {
        Identity {
            id: name.into(),
            ..Identity::single_user()
        }
    }

    #[test]
    fn tokens_are_per_identity() {
        let alice = token(&id("alice"));
        assert_eq!(alice.len(), 64);
        assert!(token_valid(&id("alice"), Some(&alice)));
        assert!(!token_valid(&id("bob"), Some(&alice)));
        assert!(!token_valid(&id("alice"), None));
        assert!(!token_valid(&id("alice"), Some("zz")));
        let mut other = alice.clone().into_bytes();
        other[0] = if other[0] == b'0' { b'1' } else { b'0' };
        assert!(!token_valid(
            &id("alice"),
            Some(std::str::from_utf8(&other).unwrap())
        ));
    }

    fn hm(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origins_are_checked() {
        let host = ("host", "127.0.0.1:8765");
        assert_eq!(
            cross_origin(&hm(&[host, ("origin", "http://127.0.0.1:8765")])),
            None
        );
        assert_eq!(
            cross_origin(&hm(&[
                host,
                ("referer", "http://127.0.0.1:8765/dashboard/registry?x=1")
            ])),
            None
        );
        for bad in [
            hm(&[host, ("origin", "http://evil.example")]),
            hm(&[host, ("origin", "http://127.0.0.1:8766")]),
            hm(&[host, ("origin", "null")]),
            hm(&[host]),
            hm(&[
                host,
                ("origin", "http://127.0.0.1:8765"),
                ("sec-fetch-site", "cross-site"),
            ]),
            hm(&[("origin", "http://127.0.0.1:8765")]),
            hm(&[host, ("referer", "http://127.0.0.1:8765@evil.example/")]),
        ] {
            assert!(cross_origin(&bad).is_some(), "{bad:?}");
        }
        assert_eq!(
            cross_origin(&hm(&[
                host,
                ("x-forwarded-host", "deps.example.org"),
                ("origin", "https://deps.example.org")
            ])),
            None
        );
    }
}
