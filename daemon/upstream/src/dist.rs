//! Core metadata read out of distribution files: a wheel's
//! `*.dist-info/METADATA`, an sdist's top-level `PKG-INFO` (`.tar.gz`,
//! `.tgz` or legacy `.zip`).

use std::io::Read;

/// Largest metadata file we read (real ones are a few kB; the long
/// description can make them larger).
const MAX_METADATA: u64 = 4 * 1024 * 1024;
/// Largest amount of decompressed tar we walk looking for `PKG-INFO`.
const MAX_TAR: u64 = 512 * 1024 * 1024;

/// The kinds of distribution file we can read metadata from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DistKind {
    Wheel,
    SdistTarGz,
    SdistZip,
}

pub(crate) fn dist_kind(filename: &str) -> Option<DistKind> {
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".whl") {
        Some(DistKind::Wheel)
    } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Some(DistKind::SdistTarGz)
    } else if lower.ends_with(".zip") {
        Some(DistKind::SdistZip)
    } else {
        None
    }
}

pub(crate) fn metadata_from(kind: DistKind, bytes: &[u8]) -> Result<String, String> {
    match kind {
        DistKind::Wheel => metadata_from_wheel(bytes),
        DistKind::SdistTarGz => pkg_info_from_tar_gz(bytes),
        DistKind::SdistZip => pkg_info_from_zip(bytes),
    }
}

/// `METADATA` of the wheel's one top-level `.dist-info` directory.
pub(crate) fn metadata_from_wheel(bytes: &[u8]) -> Result<String, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a wheel: {e}"))?;
    let name = zip
        .file_names()
        .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)
        .map(str::to_owned)
        .ok_or("wheel has no .dist-info/METADATA")?;
    let entry = zip.by_name(&name).map_err(|e| e.to_string())?;
    read_capped(entry, &name)
}

/// An sdist zip's `<name>-<version>/PKG-INFO`.
fn pkg_info_from_zip(bytes: &[u8]) -> Result<String, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a zip sdist: {e}"))?;
    let name = zip
        .file_names()
        .find(|n| is_top_pkg_info(n))
        .map(str::to_owned)
        .ok_or("sdist has no top-level PKG-INFO")?;
    let entry = zip.by_name(&name).map_err(|e| e.to_string())?;
    read_capped(entry, &name)
}

fn read_capped(entry: impl Read, name: &str) -> Result<String, String> {
    let mut buf = Vec::new();
    entry
        .take(MAX_METADATA)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading {name}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `<top>/PKG-INFO`, exactly one level down (not an `.egg-info` copy).
fn is_top_pkg_info(path: &str) -> bool {
    let path = path.trim_start_matches("./");
    path.ends_with("/PKG-INFO") && path.matches('/').count() == 1
}

/// Walks the tar stream inside the gzip member until `<top>/PKG-INFO`.
/// Understands ustar names with prefixes, GNU long names (`L`) and PAX
/// `path` records (`x`).
fn pkg_info_from_tar_gz(bytes: &[u8]) -> Result<String, String> {
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut tar = gz.take(MAX_TAR);
    let mut header = [0u8; 512];
    let mut long_name: Option<String> = None;
    loop {
        if let Err(e) = tar.read_exact(&mut header) {
            return Err(format!("sdist has no top-level PKG-INFO ({e})"));
        }
        if header.iter().all(|&b| b == 0) {
            return Err("sdist has no top-level PKG-INFO".to_owned());
        }
        let size = tar_size(&header[124..136]).ok_or("sdist: corrupt tar header")?;
        let padded = size.div_ceil(512) * 512;
        let kind = header[156];
        match kind {
            b'L' | b'x' => {
                if size > MAX_METADATA {
                    return Err("sdist: oversized tar name record".to_owned());
                }
                let mut data = vec![0u8; padded as usize];
                tar.read_exact(&mut data)
                    .map_err(|e| format!("sdist: truncated tar: {e}"))?;
                data.truncate(size as usize);
                long_name = if kind == b'L' {
                    Some(cstr(&data))
                } else {
                    pax_path(&data).or(long_name)
                };
                continue;
            }
            _ => {}
        }
        let name = long_name.take().unwrap_or_else(|| ustar_name(&header));
        let regular = matches!(kind, b'0' | 0 | b'7');
        if regular && is_top_pkg_info(&name) {
            if size > MAX_METADATA {
                return Err(format!("sdist: {name} is too large"));
            }
            let mut data = vec![0u8; size as usize];
            tar.read_exact(&mut data)
                .map_err(|e| format!("sdist: truncated tar: {e}"))?;
            return Ok(String::from_utf8_lossy(&data).into_owned());
        }
        std::io::copy(&mut (&mut tar).take(padded), &mut std::io::sink())
            .map_err(|e| format!("sdist: truncated tar: {e}"))?;
    }
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn ustar_name(h: &[u8; 512]) -> String {
    let name = cstr(&h[..100]);
    let ustar = &h[257..262] == b"ustar";
    let prefix = if ustar {
        cstr(&h[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Octal digits (space/NUL padded), or GNU base-256 when the top bit is set.
fn tar_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The `path` of a PAX extended header (`"<len> path=<value>\n"` records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(name: &str, size: usize, kind: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn entry(out: &mut Vec<u8>, name: &str, data: &[u8], kind: u8) {
        out.extend_from_slice(&header(name, data.len(), kind));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn pkg_info_at_the_top_of_an_sdist() {
        let mut tar = Vec::new();
        entry(&mut tar, "demo-1.0/", b"", b'5');
        entry(
            &mut tar,
            "demo-1.0/demo.egg-info/PKG-INFO",
            b"Name: wrong\n",
            b'0',
        );
        entry(&mut tar, "demo-1.0/setup.py", &[b'#'; 700], b'0');
        entry(
            &mut tar,
            "demo-1.0/PKG-INFO",
            b"Name: demo\nLicense: MIT\n",
            b'0',
        );
        tar.extend_from_slice(&[0u8; 1024]);
        let text = pkg_info_from_tar_gz(&gz(&tar)).unwrap();
        assert_eq!(text, "Name: demo\nLicense: MIT\n");
    }

    #[test]
    fn gnu_and_pax_long_names() {
        let long = format!("{}-1.0/PKG-INFO", "x".repeat(120));
        let mut tar = Vec::new();
        entry(
            &mut tar,
            "././@LongLink",
            format!("{long}\0").as_bytes(),
            b'L',
        );
        entry(&mut tar, "truncated", b"Name: gnu\n", b'0');
        tar.extend_from_slice(&[0u8; 1024]);
        assert_eq!(pkg_info_from_tar_gz(&gz(&tar)).unwrap(), "Name: gnu\n");

        let record = format!("path={long}\n");
        let record = format!("{} {record}", record.len() + 4);
        let mut tar = Vec::new();
        entry(&mut tar, "PaxHeader", record.as_bytes(), b'x');
        entry(&mut tar, "truncated", b"Name: pax\n", b'0');
        tar.extend_from_slice(&[0u8; 1024]);
        assert_eq!(pkg_info_from_tar_gz(&gz(&tar)).unwrap(), "Name: pax\n");
    }

    #[test]
    fn no_pkg_info_and_garbage_are_errors() {
        let mut tar = Vec::new();
        entry(&mut tar, "demo-1.0/setup.py", b"", b'0');
        tar.extend_from_slice(&[0u8; 1024]);
        assert!(pkg_info_from_tar_gz(&gz(&tar)).is_err());
        assert!(pkg_info_from_tar_gz(b"not gzip").is_err());
        assert!(metadata_from_wheel(b"not a zip").is_err());
    }

    #[test]
    fn kinds_by_file_name() {
        assert_eq!(dist_kind("a-1-py3-none-any.whl"), Some(DistKind::Wheel));
        assert_eq!(dist_kind("a-1.tar.gz"), Some(DistKind::SdistTarGz));
        assert_eq!(dist_kind("A-1.TGZ"), Some(DistKind::SdistTarGz));
        assert_eq!(dist_kind("a-1.zip"), Some(DistKind::SdistZip));
        assert_eq!(dist_kind("a-1.tar.bz2"), None);
        assert_eq!(dist_kind("a-1.egg"), None);
    }
}
