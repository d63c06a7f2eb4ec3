#!/usr/bin/env python3
"""Writes the generated part of the seed corpora (corpus/<target>/gen-*):
OSV JSON records converted from the PyPA advisory YAML, registry and shell
strings lifted from the tests, request and HTTP inputs in the targets'
framing, a wheel. Copies of fixture files are made by hand (see README).
Run from anywhere: python3 tests/fuzz/seeds.py (needs PyYAML)."""

import io
import json
import os
import re
import zipfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "gen-" + name), "wb") as f:
        f.write(data)


def rust_strings(path):
    """Plain and raw string literals of a Rust source file, unescaped enough."""
    text = open(path, encoding="utf-8").read()
    out = []
    for m in re.finditer(r'r(#+)"(.*?)"\1', text, re.S):
        out.append(m.group(2))
    for m in re.finditer(r'(?<![r#\w])"((?:[^"\\]|\\.)*)"', text):
        s = m.group(1)
        s = (s.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"')
             .replace("\\'", "'").replace("\\\\", "\\"))
        out.append(s)
    return out


# ---- OSV: a few dozen PyPA records as YAML and as JSON -------------------
vulns = os.path.join(ROOT, "..", "shared", "data", "pypa-advisory-db", "vulns")
files = []
for pkg in sorted(os.listdir(vulns)):
    if not os.path.isdir(os.path.join(vulns, pkg)):
        continue
    for f in sorted(os.listdir(os.path.join(vulns, pkg))):
        files.append(os.path.join(vulns, pkg, f))
picked = files[:: max(1, len(files) // 30)][:30]
for i, p in enumerate(picked):
    text = open(p, encoding="utf-8").read()
    base = os.path.splitext(os.path.basename(p))[0]
    if i % 2 == 0:
        put("osv_record", base + ".yaml", text)
    # BaseLoader: every scalar a string, as OSV JSON spells versions.
    doc = yaml.load(text, Loader=yaml.BaseLoader)
    put("osv_record", base + ".json", json.dumps(doc, indent=1))

# ---- registry YAML: the test registries ----------------------------------
n = 0
for src in ["daemon/engine/src/registry/tests.rs", "daemon/server/tests/common/mod.rs",
            "daemon/server/tests/registry_routes.rs"]:
    for s in rust_strings(os.path.join(ROOT, src)):
        if ("packages:" in s or "version:" in s) and "\n" in s and len(s) < 4000:
            put("registry_yaml", "test%02d.yml" % n, s)
            n += 1
starter = open(os.path.join(ROOT, "daemon/engine/src/starter_registry.yml")).read()
put("registry_yaml", "starter.json", json.dumps(
    {"version": "1", "global_policies": {"cve_threshold": 0.7, "hard_ban_licenses": ["AGPL-3.0"]},
     "packages": {"Requests": {"status": "deprecated", "replacement": "httpx"},
                  "cryptography": {"status": "version-constrained", "min_version": "42",
                                   "expires": "2030-01-31", "owner": "sec"}}}, indent=2))

# ---- shell installs: the bash.rs test command lines ----------------------
n = 0
for s in rust_strings(os.path.join(ROOT, "cli/client/src/bash.rs")):
    if re.search(r"\b(pip|uv|poetry|pdm|pipx|python)\b", s) and " " in s and len(s) < 500:
        put("shell_install", "bash%02d.sh" % n, s)
        n += 1

# ---- EvalRequest: package NUL version NUL requirement --------------------
for i, (p, v, r) in enumerate([
    ("httpx", "", ""), ("PyYAML", "6.0.1", ""), ("", "", "cryptography>=41,<44"),
    ("requests", "2.31.0", "requests[socks]==2.31.0 ; python_version >= '3.8'"),
    ("pyqt5", "5.15.10", ""), ("Django_REST.framework", "3.15", "django-rest-framework~=3.14"),
    ("numpy", "1!2.0.0rc1.post3.dev4+local.7", ""), ("", "", "flask===2.0"),
]):
    put("pep508_request", "req%02d" % i, "\0".join([p, v, r]))

# ---- HTTP: route byte, header flags, query line, body --------------------
ROUTES = ["GET evaluate", "POST batch", "POST approval", "GET health", "GET registry",
          "GET pending", "POST proposals", "POST parse-yaml", "POST reload", "POST webhook",
          "GET legal", "GET security", "GET approval-requests", "GET projects", "GET agents",
          "POST overrides", "GET overrides", "DELETE overrides", "GET metrics", "GET 404"]
R = {name.split()[1]: i for i, name in enumerate(ROUTES)}
http = [
    ("evaluate", 7, "package=httpx&version=0.27.0", ""),
    ("evaluate", 1, "package=&requirement=cryptography%3E%3D41%2C%3C44", ""),
    ("evaluate", 3, "package=pyqt5&version=5.15.10&package=requests", ""),
    ("batch", 5, "", json.dumps({"packages": [{"package": "httpx"}, {"requirement": "requests>=2"}]})),
    ("batch", 5, "", json.dumps({"requirements": ["httpx>=0.27", "pyqt5"]})),
    ("approval", 7, "", json.dumps({"package": "leftpad", "rationale": "needed for padding"})),
    ("proposals", 5, "", json.dumps({"name": "Fuzz_Pkg", "status": "deprecated",
                                     "replacement": "httpx", "rationale": "why not"})),
    ("parse-yaml", 5, "", json.dumps({"yaml_text": starter})),
    ("webhook", 12, "", json.dumps({"ref": "refs/heads/main", "commits": []})),
    ("legal", 1, "project=fuzz-project", ""), ("security", 1, "project=fuzz-project&days=7", ""),
    ("approval-requests", 1, "project=fuzz-project&status=pending", ""),
    ("agents", 1, "project=fuzz-project", ""), ("projects", 0, "", ""), ("health", 0, "", ""),
    ("registry", 0, "", ""), ("pending", 0, "", ""), ("reload", 0, "", ""), ("metrics", 0, "", ""),
    ("overrides", 5, "", json.dumps({"package": "pyqt5", "project": "fuzz-project",
                                     "justification": "legacy GUI", "expires_at": "2030-01-01",
                                     "version": "5.15.10"})),
    ("overrides", 0, "all=true", ""), ("404", 0, "x=1", ""),
]
for i, (route, flags, query, body) in enumerate(http):
    r = R[route]
    if route == "overrides" and body == "" and query != "all=true":
        r = R["overrides"]
    put("http_router", "http%02d-%s" % (i, route),
        bytes([r, flags]) + query.encode() + b"\n" + body.encode())
put("http_router", "delete-override", bytes([ROUTES.index("DELETE overrides"), 1]) + b"42\n")
put("http_router", "get-overrides", bytes([ROUTES.index("GET overrides"), 1]) + b"all=1\n")

# ---- core metadata: a wheel with METADATA --------------------------------
meta = ("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nLicense: BSD 3-Clause\n"
        "        Copyright (c) the authors\nClassifier: License :: OSI Approved :: BSD License\n\n"
        "Long description.\n")
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("demo/__init__.py", "")
    z.writestr("demo-1.0.dist-info/METADATA", meta)
    z.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
put("core_metadata", "demo-1.0-py3-none-any.whl", buf.getvalue())
put("core_metadata", "legacy-license.metadata",
    "Metadata-Version: 1.2\nName: old\nVersion: 0.1\nLicense: UNKNOWN\n       |MIT License\n"
    "       |text\nClassifier: License :: OSI Approved :: MIT License\n")
print("seeds written under", CORPUS)
