//! Parse timings: a 100-dependency pyproject.toml and a 150-package uv.lock.
//! Run with `cargo bench -p lex-align-manifest`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use lex_align_manifest::{attribute, parse_pyproject, parse_uv_lock};

fn pyproject(n: usize) -> String {
    let mut s = String::from(
        "[build-system]\nrequires = [\"hatchling>=1.24\"]\nbuild-backend = \"hatchling.build\"\n\n\
         [project]\nname = \"bench-project\"\nversion = \"1.0.0\"\ndependencies = [\n",
    );
    for i in 0..n * 7 / 10 {
        let _ = writeln!(
            s,
            "    \"package-{i}[extra]>={}.{},<{} ; python_version >= '3.9'\",",
            i % 7,
            i % 13,
            i % 7 + 1
        );
    }
    s.push_str("]\n\n[project.optional-dependencies]\nall = [\n");
    for i in n * 7 / 10..n * 9 / 10 {
        let _ = writeln!(s, "    \"optional-{i}~=1.{i}\",");
    }
    s.push_str("]\n\n[dependency-groups]\ntest = [\n");
    for i in n * 9 / 10..n {
        let _ = writeln!(s, "    \"group-{i}==2.{i}.0\",");
    }
    s.push_str("]\ndev = [{include-group = \"test\"}, \"ipython\"]\n");
    s
}

/// A lock of `n` packages plus the project: package i depends on i+1..i+3,
/// so closures are long and overlap like a real graph's do.
fn uv_lock(n: usize) -> String {
    let mut s = String::from("version = 1\nrequires-python = \">=3.11\"\n\n");
    let _ = writeln!(
        s,
        "[[package]]\nname = \"bench-project\"\nversion = \"1.0.0\"\nsource = {{ editable = \".\" }}\ndependencies = ["
    );
    for i in (0..n).step_by(10) {
        let _ = writeln!(s, "    {{ name = \"pkg-{i}\" }},");
    }
    s.push_str("]\n\n");
    for i in 0..n {
        let _ = writeln!(
            s,
            "[[package]]\nname = \"pkg-{i}\"\nversion = \"1.{i}.0\"\nsource = {{ registry = \"https://packages.internal.example/simple\" }}\ndependencies = ["
        );
        for j in (i + 1..n).take(3) {
            let _ = writeln!(s, "    {{ name = \"pkg-{j}\" }},");
        }
        let _ = writeln!(
            s,
            "]\nsdist = {{ url = \"https://packages.internal.example/files/pkg_{i}-1.{i}.0.tar.gz\", hash = \"sha256:{:064x}\", size = {} }}\nwheels = [\n    {{ url = \"https://packages.internal.example/files/pkg_{i}-1.{i}.0-py3-none-any.whl\", hash = \"sha256:{:064x}\", size = {} }},\n]\n",
            i * 7919,
            1000 + i,
            i * 104729,
            900 + i
        );
    }
    s
}

fn time<T>(name: &str, mut f: impl FnMut() -> T) {
    // Warm up, then run for about a second.
    for _ in 0..20 {
        black_box(f());
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        let t = Instant::now();
        black_box(f());
        samples.push(t.elapsed());
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    println!(
        "{name:<40} median {:>8.1} µs   p99 {:>8.1} µs   ({} runs)",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        samples.len()
    );
}

fn main() {
    let py = pyproject(100);
    let manifest = parse_pyproject("pyproject.toml", &py);
    assert_eq!(manifest.dependencies.len(), 100 + 10 + 1 + 1);
    assert!(manifest.findings.is_empty());
    time("parse_pyproject (100 deps)", || {
        parse_pyproject("pyproject.toml", &py)
    });

    let lock = uv_lock(150);
    let locked = parse_uv_lock("uv.lock", &lock).unwrap();
    assert_eq!(locked.len(), 151);
    time("parse_uv_lock (150 packages)", || {
        parse_uv_lock("uv.lock", &lock).unwrap()
    });
    time("attribute (150 packages, 15 roots)", || {
        attribute(&[], &locked)
    });
    time("pyproject + uv.lock + attribute", || {
        let m = parse_pyproject("pyproject.toml", &py);
        let l = parse_uv_lock("uv.lock", &lock).unwrap();
        attribute(&m.dependencies, &l)
    });
}
