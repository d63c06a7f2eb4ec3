import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { resolveBinary, serverCommand } from "../src/binary";

function tempTree(): { root: string; bin: string; other: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "lexalign-vscode-"));
  const bin = path.join(root, "bin");
  const other = path.join(root, "other");
  fs.mkdirSync(bin);
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(bin, "lex-align"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  // Same name, not executable: must be skipped like a shell would.
  fs.writeFileSync(path.join(other, "lex-align"), "not a program\n", { mode: 0o644 });
  return { root, bin, other };
}

const posix = process.platform !== "win32";

test("a bare name is found on PATH, skipping non-executable files", { skip: !posix }, () => {
  const t = tempTree();
  const r = resolveBinary("lex-align", { env: { PATH: [t.other, t.bin].join(":") }, platform: "linux" });
  assert.deepEqual(r, { ok: true, path: path.join(t.bin, "lex-align") });
});

test("an empty setting means the default name", { skip: !posix }, () => {
  const t = tempTree();
  const r = resolveBinary("  ", { env: { PATH: t.bin }, platform: "linux" });
  assert.deepEqual(r, { ok: true, path: path.join(t.bin, "lex-align") });
});

test("a missing binary gives a message naming the setting", { skip: !posix }, () => {
  const t = tempTree();
  const r = resolveBinary("lex-align", { env: { PATH: t.other }, platform: "linux" });
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.message, /not found on PATH/);
    assert.match(r.message, /lexAlign\.path/);
  }
  const empty = resolveBinary(undefined, { env: {}, platform: "linux" });
  assert.ok(!empty.ok && /PATH is empty/.test(empty.message));
});

test("paths are used as given: absolute, relative to the workspace, and ~", { skip: !posix }, () => {
  const t = tempTree();
  const abs = path.join(t.bin, "lex-align");
  assert.deepEqual(resolveBinary(abs, { env: { PATH: "" }, platform: "linux" }), { ok: true, path: abs });
  assert.deepEqual(resolveBinary("./bin/lex-align", { env: {}, platform: "linux", cwd: t.root }), { ok: true, path: abs });
  assert.deepEqual(resolveBinary("~/bin/lex-align", { env: { HOME: t.root }, platform: "linux" }), { ok: true, path: abs });
  // A path is never searched on PATH, and a non-executable one is refused.
  const bad = resolveBinary(path.join(t.other, "lex-align"), { env: { PATH: t.bin }, platform: "linux" });
  assert.ok(!bad.ok && /not executable/.test(bad.message));
});

test("Windows: PATHEXT extensions and backslash paths", () => {
  const exists = new Set(["C:\\tools\\lex-align.EXE".toLowerCase(), "D:\\x\\lex-align.exe"]);
  const isExecutable = (f: string) => exists.has(f) || exists.has(f.toLowerCase());
  const onPath = resolveBinary("lex-align", {
    env: { Path: "C:\\Windows;C:\\tools", PATHEXT: ".COM;.EXE" },
    platform: "win32",
    isExecutable,
  });
  assert.deepEqual(onPath, { ok: true, path: "C:\\tools\\lex-align.exe" });
  const direct = resolveBinary("D:\\x\\lex-align", { env: {}, platform: "win32", isExecutable });
  assert.deepEqual(direct, { ok: true, path: "D:\\x\\lex-align.exe" });
});

test("the server runs as `<binary> lsp` in the project folder", () => {
  assert.deepEqual(serverCommand("/usr/bin/lex-align", "/home/u/proj"), {
    command: "/usr/bin/lex-align",
    args: ["lsp"],
    cwd: "/home/u/proj",
  });
});
