//! The outcome of a form post, shown once on the page it redirects to.
//!
//! Kept server-side under a random id and bound to the identity that
//! posted, so a crafted `?flash=` link can neither forge a message nor
//! show someone else's. Bounded: the oldest entries go first, and each
//! lapses after ten minutes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::html::{tpl, Html};

const KEEP: usize = 256;
const TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub title: String,
    pub detail: String,
    pub link: Option<String>,
}

impl Flash {
    pub fn ok(title: impl Into<String>, detail: impl Into<String>) -> Flash {
        Flash {
            ok: true,
            title: title.into(),
            detail: detail.into(),
            link: None,
        }
    }

    pub fn err(title: impl Into<String>, detail: impl Into<String>) -> Flash {
        Flash {
            ok: false,
            title: title.into(),
            detail: detail.into(),
            link: None,
        }
    }

    pub fn html(&self) -> Html {
        let link = self
            .link
            .as_ref()
            .map(|l| tpl("<p>Where: <code>{}</code></p>", &[l]))
            .unwrap_or_default();
        let detail = if self.detail.is_empty() {
            Html::new()
        } else {
            tpl("<p>{}</p>", &[&self.detail])
        };
        if self.ok {
            tpl(
                "<div class=\"flash ok\" role=\"status\"><p><strong>{}</strong></p>{}{}</div>",
                &[&self.title, &detail, &link],
            )
        } else {
            tpl(
                "<div class=\"flash err\" role=\"alert\"><p><strong>{}</strong></p>{}{}</div>",
                &[&self.title, &detail, &link],
            )
        }
    }
}

struct Entry {
    id: String,
    owner: String,
    at: Instant,
    flash: Flash,
}

fn book() -> &'static Mutex<VecDeque<Entry>> {
    static BOOK: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());
    &BOOK
}

/// Keeps `flash` for `owner`; returns its id.
pub fn put(owner: &str, flash: Flash) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut b = book().lock().unwrap_or_else(|p| p.into_inner());
    b.retain(|e| e.at.elapsed() < TTL);
    while b.len() >= KEEP {
        b.pop_front();
    }
    b.push_back(Entry {
        id: id.clone(),
        owner: owner.to_string(),
        at: Instant::now(),
        flash,
    });
    id
}

/// The flash `id` of `owner`, once.
pub fn take(owner: &str, id: &str) -> Option<Flash> {
    let mut b = book().lock().unwrap_or_else(|p| p.into_inner());
    let i = b
        .iter()
        .position(|e| e.id == id && e.owner == owner && e.at.elapsed() < TTL)?;
    b.remove(i).map(|e| e.flash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_is_shown_once_to_its_owner() {
        let id = put("alice", Flash::ok("Done", "<b>x</b>"));
        assert_eq!(take("bob", &id), None);
        let f = take("alice", &id).unwrap();
        assert!(f.html().as_str().contains("&lt;b&gt;x&lt;/b&gt;"));
        assert_eq!(take("alice", &id), None);
    }
}
