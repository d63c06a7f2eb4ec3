//! Access settings from the environment: the original server's `AUTH_*`
//! variables plus lex-align's roles and limits.

use std::time::Duration;

use ipnet::IpNet;

use super::Role;
use crate::config::ConfigError;

#[derive(Debug, Clone)]
pub struct HeaderSettings {
    pub trusted_proxies: Vec<IpNet>,
    pub user_header: String,
    pub email_header: String,
    pub groups_header: String,
    pub groups_separator: String,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub verify_url: String,
    pub timeout: Duration,
    /// How long a verifier's yes is remembered; zero = ask every time.
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub enum Backend {
    Anonymous,
    Header(HeaderSettings),
    Webhook(WebhookSettings),
    ApiKey,
    /// `plugin:<name>`: an authenticator plugin (docs/plugins.md).
    Plugin(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Anonymous => "anonymous",
            Backend::Header(_) => "header",
            Backend::Webhook(_) => "webhook",
            Backend::ApiKey => "apikey",
            Backend::Plugin(_) => "plugin",
        }
    }

    /// As configured: the name, or `plugin:<name>`.
    pub fn label(&self) -> String {
        match self {
            Backend::Plugin(name) => format!("plugin:{name}"),
            other => other.name().to_string(),
        }
    }
}

/// Groups → roles (`LEXALIGN_ROLE_GROUPS`), with a default.
#[derive(Debug, Clone)]
pub struct RoleMap {
    pub groups: Vec<(Role, String)>,
    pub default: Role,
}

impl RoleMap {
    /// The highest role any of the groups maps to, else the default.
    pub fn role_for(&self, groups: &[String]) -> Role {
        self.groups
            .iter()
            .filter(|(_, g)| groups.iter().any(|x| x == g))
            .map(|(r, _)| *r)
            .max()
            .unwrap_or(self.default)
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub enabled: bool,
    pub backend: Backend,
    pub roles: RoleMap,
    /// Requests per minute per identity; 0 = no limit.
    pub rate_limit_per_minute: u32,
    /// Serve a non-loopback address with authentication off.
    pub allow_anonymous_network: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: false,
            backend: Backend::Header(HeaderSettings::default()),
            roles: RoleMap {
                groups: Vec::new(),
                default: Role::Developer,
            },
            rate_limit_per_minute: 0,
            allow_anonymous_network: false,
        }
    }
}

impl Default for HeaderSettings {
    fn default() -> Self {
        HeaderSettings {
            trusted_proxies: vec![
                "127.0.0.1/32".parse().expect("a valid CIDR"),
                "::1/128".parse().expect("a valid CIDR"),
            ],
            user_header: "X-Forwarded-User".into(),
            email_header: "X-Forwarded-Email".into(),
            groups_header: "X-Forwarded-Groups".into(),
            groups_separator: ",".into(),
        }
    }
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

/// A bare address counts as a host route (`10.0.0.1` = `10.0.0.1/32`).
fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

impl AuthSettings {
    pub fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
        parse_bool: fn(&str) -> Option<bool>,
    ) -> Result<AuthSettings, ConfigError> {
        let mut s = AuthSettings::default();
        let flag = |name: &'static str| -> Result<Option<bool>, ConfigError> {
            var(name)
                .map(|v| {
                    parse_bool(&v).ok_or_else(|| {
                        err(name, format!("{v:?} is not a boolean; use true or false"))
                    })
                })
                .transpose()
        };
        s.enabled = flag("AUTH_ENABLED")?.unwrap_or(false);
        s.allow_anonymous_network = flag("LEXALIGN_ALLOW_ANONYMOUS_NETWORK")?.unwrap_or(false);

        // With authentication off the backend is never built (the original
        // ignores it too), so its settings are not judged.
        let backend = if s.enabled {
            var("AUTH_BACKEND").unwrap_or_else(|| "header".into())
        } else {
            "header".into()
        };
        s.backend = match backend.as_str() {
            "anonymous" => Backend::Anonymous,
            "apikey" => Backend::ApiKey,
            "header" => {
                let mut h = HeaderSettings::default();
                if let Some(list) = var("AUTH_TRUSTED_PROXIES") {
                    h.trusted_proxies = list
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            parse_cidr(p).ok_or_else(|| {
                                err(
                                    "AUTH_TRUSTED_PROXIES",
                                    format!("{p:?} is not an IP network; use CIDRs such as 10.0.0.0/8,::1/128"),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
                for (name, slot) in [
                    ("AUTH_USER_HEADER", &mut h.user_header),
                    ("AUTH_EMAIL_HEADER", &mut h.email_header),
                    ("AUTH_GROUPS_HEADER", &mut h.groups_header),
                ] {
                    if let Some(v) = var(name) {
                        if axum::http::HeaderName::from_bytes(v.as_bytes()).is_err() {
                            return Err(err(name, format!("{v:?} is not a header name")));
                        }
                        *slot = v;
                    }
                }
                if let Some(sep) = var("AUTH_GROUPS_SEPARATOR") {
                    h.groups_separator = sep;
                }
                Backend::Header(h)
            }
            "webhook" => {
                let Some(url) = var("AUTH_VERIFY_URL") else {
                    return Err(err(
                        "AUTH_VERIFY_URL",
                        "AUTH_BACKEND=webhook needs AUTH_VERIFY_URL, the verifier that answers POST {\"token\": …}",
                    ));
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(err(
                        "AUTH_VERIFY_URL",
                        format!("{url:?} is not an http(s) URL"),
                    ));
                }
                let secs = |name: &'static str, default: f64, zero_ok: bool| {
                    let Some(v) = var(name) else {
                        return Ok(Duration::from_secs_f64(default));
                    };
                    match v.parse::<f64>() {
                        Ok(n) if n.is_finite() && (n > 0.0 || (zero_ok && n == 0.0)) => {
                            Ok(Duration::from_secs_f64(n))
                        }
                        _ => Err(err(name, format!("{v:?} is not a valid number of seconds"))),
                    }
                };
                Backend::Webhook(WebhookSettings {
                    verify_url: url,
                    timeout: secs("AUTH_VERIFY_TIMEOUT", 3.0, false)?,
                    cache_ttl: secs("AUTH_VERIFY_CACHE_S", 30.0, true)?,
                })
            }
            other if other.starts_with("plugin:") => {
                let name = &other["plugin:".len()..];
                if !lex_align_plugin_host::valid_plugin_name(name) {
                    return Err(err(
                        "AUTH_BACKEND",
                        format!("{other:?}: a plugin name is 1-64 characters of [a-z0-9_-], e.g. AUTH_BACKEND=plugin:oidc"),
                    ));
                }
                Backend::Plugin(name.to_string())
            }
            other => {
                return Err(err(
                    "AUTH_BACKEND",
                    format!("Unknown AUTH_BACKEND={other}; use header, webhook, apikey, anonymous or plugin:<name>"),
                ))
            }
        };

        if let Some(d) = var("LEXALIGN_DEFAULT_ROLE") {
            s.roles.default = Role::parse(&d).ok_or_else(|| {
                err(
                    "LEXALIGN_DEFAULT_ROLE",
                    format!("{d:?} is not a role; use agent, developer or operator"),
                )
            })?;
        }
        if let Some(map) = var("LEXALIGN_ROLE_GROUPS") {
            for pair in map.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let parsed = pair
                    .split_once('=')
                    .and_then(|(r, g)| Some((Role::parse(r)?, g.trim())))
                    .filter(|(_, g)| !g.is_empty());
                let Some((role, group)) = parsed else {
                    return Err(err(
                        "LEXALIGN_ROLE_GROUPS",
                        format!("{pair:?} is not role=group; e.g. LEXALIGN_ROLE_GROUPS=operator=platform,agent=bots"),
                    ));
                };
                s.roles.groups.push((role, group.to_string()));
            }
        }
        if let Some(n) = var("LEXALIGN_RATE_LIMIT_PER_MINUTE") {
            s.rate_limit_per_minute = n.parse().map_err(|_| {
                err(
                    "LEXALIGN_RATE_LIMIT_PER_MINUTE",
                    format!("{n:?} is not a whole number of requests (0 = no limit)"),
                )
            })?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<AuthSettings, ConfigError> {
        let vars: std::collections::HashMap<String, String> = [("AUTH_ENABLED", "true")]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuthSettings::from_lookup(&|k: &str| vars.get(k).cloned(), |v| match v {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        })
    }

    #[test]
    fn groups_map_to_the_highest_role() {
        let s = parse(&[("LEXALIGN_ROLE_GROUPS", "operator=platform, agent=bots")]).unwrap();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(s.roles.role_for(&g(&["bots"])), Role::Agent);
        assert_eq!(s.roles.role_for(&g(&["bots", "platform"])), Role::Operator);
        assert_eq!(s.roles.role_for(&g(&["other"])), Role::Developer);
        let s = parse(&[("LEXALIGN_DEFAULT_ROLE", "agent")]).unwrap();
        assert_eq!(s.roles.role_for(&[]), Role::Agent);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (pairs, var) in [
            (vec![("AUTH_BACKEND", "kerberos")], "AUTH_BACKEND"),
            (vec![("AUTH_BACKEND", "plugin:")], "AUTH_BACKEND"),
            (vec![("AUTH_BACKEND", "plugin:Bad/Name")], "AUTH_BACKEND"),
            (vec![("AUTH_BACKEND", "webhook")], "AUTH_VERIFY_URL"),
            (
                vec![("AUTH_BACKEND", "webhook"), ("AUTH_VERIFY_URL", "ftp://x")],
                "AUTH_VERIFY_URL",
            ),
            (
                vec![("AUTH_TRUSTED_PROXIES", "10.0.0.0/33")],
                "AUTH_TRUSTED_PROXIES",
            ),
            (
                vec![("LEXALIGN_ROLE_GROUPS", "root=wheel")],
                "LEXALIGN_ROLE_GROUPS",
            ),
            (
                vec![("LEXALIGN_DEFAULT_ROLE", "admin")],
                "LEXALIGN_DEFAULT_ROLE",
            ),
            (
                vec![("LEXALIGN_RATE_LIMIT_PER_MINUTE", "-1")],
                "LEXALIGN_RATE_LIMIT_PER_MINUTE",
            ),
            (vec![("AUTH_ENABLED", "perhaps")], "AUTH_ENABLED"),
        ] {
            assert_eq!(parse(&pairs).unwrap_err().variable, var, "{pairs:?}");
        }
    }

    #[test]
    fn plugin_backends_name_their_plugin() {
        let s = parse(&[("AUTH_BACKEND", "plugin:oidc")]).unwrap();
        assert!(matches!(&s.backend, Backend::Plugin(n) if n == "oidc"));
        assert_eq!(s.backend.label(), "plugin:oidc");
    }

    #[test]
    fn trusted_proxies_accept_bare_addresses() {
        let s = parse(&[("AUTH_TRUSTED_PROXIES", "10.1.2.3, 192.168.0.0/16")]).unwrap();
        let Backend::Header(h) = s.backend else {
            panic!("header is the default backend")
        };
        assert_eq!(h.trusted_proxies.len(), 2);
        assert!(h.trusted_proxies[0].contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap()));
    }
}
