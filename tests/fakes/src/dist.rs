//! Distribution files the fake index serves: real archives built from the
//! release's core metadata, so a client can read `METADATA` out of a wheel
//! and `PKG-INFO` out of an sdist. Built deterministically (fixed
//! timestamps), so the digest listed on a page is the digest downloaded.

use std::io::Write;

/// The bytes of `filename`, a file of the release whose core metadata is
/// `metadata`: a wheel (zip with `*.dist-info/METADATA`), an sdist
/// (`.tar.gz` / `.tgz` / `.zip` with `<name>-<version>/PKG-INFO`), or, for
/// any other kind of file, a line of text.
pub(crate) fn build(filename: &str, metadata: &str) -> Vec<u8> {
    if let Some(stem) = filename.strip_suffix(".whl") {
        return wheel(stem, metadata);
    }
    for ext in [".tar.gz", ".tgz"] {
        if let Some(stem) = filename.strip_suffix(ext) {
            return gzip(&tar(&sdist_entries(stem, metadata)));
        }
    }
    if let Some(stem) = filename.strip_suffix(".zip") {
        return zip(&sdist_entries(stem, metadata));
    }
    format!("lex-align fake distribution file: {filename}\n").into_bytes()
}

/// `name-version-tags` → the `.dist-info` directory `name-version.dist-info`.
fn wheel(stem: &str, metadata: &str) -> Vec<u8> {
    let mut parts = stem.splitn(3, '-');
    let name = parts.next().unwrap_or("unknown");
    let version = parts.next().unwrap_or("0");
    let info = format!("{name}-{version}.dist-info");
    let wheel = "Wheel-Version: 1.0\nGenerator: lex-align-fakes\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    let mut entries = vec![
        (format!("{name}/__init__.py"), b"".to_vec()),
        (format!("{info}/METADATA"), metadata.as_bytes().to_vec()),
        (format!("{info}/WHEEL"), wheel.as_bytes().to_vec()),
    ];
    let record: String = entries
        .iter()
        .map(|(n, _)| format!("{n},,\n"))
        .chain(std::iter::once(format!("{info}/RECORD,,\n")))
        .collect();
    entries.push((format!("{info}/RECORD"), record.into_bytes()));
    zip(&entries)
}

fn sdist_entries(stem: &str, metadata: &str) -> Vec<(String, Vec<u8>)> {
    let name = stem.rsplit_once('-').map_or(stem, |(n, _)| n);
    vec![
        (format!("{stem}/PKG-INFO"), metadata.as_bytes().to_vec()),
        (
            format!("{stem}/pyproject.toml"),
            format!(
                "[project]\nname = \"{name}\"\ndynamic = [\"version\"]\n\n[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n"
            )
            .into_bytes(),
        ),
    ]
}

fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, data) in entries {
        out.start_file(name.as_str(), options)
            .expect("zip entry starts");
        out.write_all(data).expect("zip entry is written");
    }
    out.finish().expect("zip is finished").into_inner()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

/// A POSIX ustar archive of regular files.
pub(crate) fn tar(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, data) in entries {
        let mut h = [0u8; 512];
        // Names over 100 bytes go into the 155-byte prefix, split at a '/'.
        let (prefix, name) = if path.len() <= 100 {
            ("", path.as_str())
        } else {
            let cut = path[..path.len().min(156)]
                .rfind('/')
                .filter(|&i| path.len() - i - 1 <= 100)
                .expect("tar path fits ustar's prefix and name fields");
            (&path[..cut], &path[cut + 1..])
        };
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 0);
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        // The checksum is computed with its own field as spaces.
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}
