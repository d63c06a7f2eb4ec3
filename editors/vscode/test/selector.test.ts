import { test } from "node:test";
import * as assert from "node:assert/strict";
import { minimatch } from "minimatch";
import { activationEvents, documentSelector, FILE_PATTERNS, isGoverned } from "../src/selector";

const governed = [
  "/home/u/proj/pyproject.toml",
  "/home/u/proj/requirements.txt",
  "/home/u/proj/requirements-dev.txt",
  "/home/u/proj/dev-requirements.txt",
  "/home/u/proj/requirements/requirements.in",
  "/home/u/proj/sub/pkg/pyproject.toml",
];
const ignored = [
  "/home/u/proj/Cargo.toml",
  "/home/u/proj/setup.cfg",
  "/home/u/proj/uv.lock",
  "/home/u/proj/notes.txt",
  "/home/u/proj/pyproject.toml.bak",
  "/home/u/proj/requirements.txt.orig",
];
const base = (p: string) => p.slice(p.lastIndexOf("/") + 1);
const matchesSelector = (file: string) => documentSelector().some((f) => minimatch(file, f.pattern, { dot: true }));

test("the document selector matches every governed file and nothing else", () => {
  for (const f of governed) assert.ok(matchesSelector(f), `${f} should be handled`);
  for (const f of ignored) assert.ok(!matchesSelector(f), `${f} should not be handled`);
});

test("the selector agrees with the server's own file rule", () => {
  for (const f of [...governed, ...ignored]) {
    assert.equal(matchesSelector(f), isGoverned(base(f)), f);
  }
});

test("only on-disk files are selected", () => {
  assert.ok(documentSelector().every((f) => f.scheme === "file"));
});

test("activation events cover every pattern", () => {
  assert.deepEqual(
    activationEvents(),
    FILE_PATTERNS.map((p) => `workspaceContains:${p}`),
  );
});
