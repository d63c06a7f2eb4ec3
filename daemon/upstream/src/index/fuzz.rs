//! Entry points for the fuzz targets (`tests/fuzz`): the index parsers on
//! raw response bytes, as the client runs them. Not an API.

use lex_align_engine::evaluate::LicenseMetadata;
use reqwest::Url;
use serde_json::Value;

use super::{metadata_from_info, parse_core_metadata, parse_json_project, parse_simple_page};
use super::{same_version, Project};
use crate::dist::{dist_kind, metadata_from};
use crate::http::Fetched;

/// The JSON-API project document (`/{name}/json`), as `json_project` reads it.
pub fn json_project(canonical: &str, body: &[u8]) -> Option<Project> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    if let Some(info) = doc.get("info") {
        let _ = metadata_from_info(info);
    }
    parse_json_project(canonical, &doc)
}

/// `(version, filename, url, has_metadata)` of one file on a simple page.
pub type SimpleFile = (String, String, String, bool);

/// A simple-index project page (PEP 691 JSON or PEP 503 HTML, by content
/// type and first byte) fetched from `page_url`: the release list built
/// from it and, per release, the files `simple_release` would read
/// metadata from (`(version, filename, url, has_metadata)`).
pub fn simple_page(
    canonical: &str,
    page_url: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<(Project, Vec<SimpleFile>)> {
    let fetched = Fetched {
        url: Url::parse(page_url).ok()?,
        content_type: content_type.map(str::to_owned),
        body: body.to_vec(),
    };
    let page = parse_simple_page(canonical, &fetched)?;
    let project = page.project();
    let mut files = Vec::new();
    for r in &project.releases {
        for f in page.files.iter().filter(|f| {
            f.version
                .as_deref()
                .is_some_and(|v| same_version(v, &r.version))
        }) {
            files.push((
                r.version.clone(),
                f.filename.clone(),
                f.url.clone(),
                f.has_metadata,
            ));
        }
    }
    Some((project, files))
}

/// Core metadata text (a `.metadata` file, lossy UTF-8 as fetched).
pub fn core_metadata(bytes: &[u8]) -> LicenseMetadata {
    parse_core_metadata(&String::from_utf8_lossy(bytes))
}

/// Metadata out of a distribution file (wheel, sdist `.tar.gz`/`.zip`) by
/// its name; `None` when the name is no distribution kind.
pub fn dist_metadata(filename: &str, bytes: &[u8]) -> Option<Result<LicenseMetadata, String>> {
    let kind = dist_kind(filename)?;
    Some(metadata_from(kind, bytes).map(|text| parse_core_metadata(&text)))
}
