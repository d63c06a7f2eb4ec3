// package.json is what VS Code reads: check it against the code it describes.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { activationEvents } from "../src/selector";
import { DEFAULT_DEBOUNCE_MS, SCOPES, SECTION, toServerSettings } from "../src/settings";

const root = path.resolve(__dirname, "..", "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const props: Record<string, { default?: unknown; description?: string; markdownDescription?: string; items?: { enum?: string[] } }> =
  pkg.contributes.configuration.properties;

test("every setting is contributed with a description", () => {
  const expected = ["path", "serverUrl", "project", "debounceMs", "scopes", "trace.server"].map((k) => `${SECTION}.${k}`);
  assert.deepEqual(Object.keys(props).sort(), expected.sort());
  for (const [key, p] of Object.entries(props)) {
    assert.ok((p.markdownDescription ?? p.description ?? "").length > 20, `${key} needs a description`);
    assert.ok("default" in p, `${key} needs a default`);
  }
});

test("contributed defaults mean 'let the server decide'", () => {
  const defaults = Object.fromEntries(
    Object.entries(props).map(([k, p]) => [k.slice(SECTION.length + 1), p.default]),
  );
  assert.deepEqual(toServerSettings((k) => defaults[k]), { debounceMs: DEFAULT_DEBOUNCE_MS });
  assert.equal(defaults.path, "lex-align");
});

test("the scopes enum is the list the client sends", () => {
  assert.deepEqual(props[`${SECTION}.scopes`].items?.enum, [...SCOPES]);
});

test("activation, entry point and commands", () => {
  assert.deepEqual(pkg.activationEvents, activationEvents());
  assert.equal(pkg.main, "./dist/extension.js");
  const restart = pkg.contributes.commands.find((c: { command: string }) => c.command === "lexAlign.restartServer");
  assert.ok(restart, "restart command contributed");
  assert.equal(`${restart.category}: ${restart.title}`, "lex-align: Restart server");
  // The server's executeCommand is registered by the language client itself;
  // contributing it too would clash.
  assert.ok(!pkg.contributes.commands.some((c: { command: string }) => c.command === "lexAlign.requestApproval"));
});

test("the code uses only what the engine range guarantees", () => {
  const engine = String(pkg.engines.vscode).replace(/^\^/, "");
  const types = String(pkg.devDependencies["@types/vscode"]).replace(/^[~^]/, "");
  const [eMaj, eMin] = engine.split(".").map(Number);
  const [tMaj, tMin] = types.split(".").map(Number);
  assert.ok(tMaj < eMaj || (tMaj === eMaj && tMin <= eMin), `@types/vscode ${types} newer than engines.vscode ${engine}`);
});

test("the extension is bundled: the .vsix carries no node_modules", () => {
  assert.match(pkg.scripts.package, /vsce package --no-dependencies/);
  assert.match(pkg.scripts["vscode:prepublish"], /bundle/);
  const ignore = fs.readFileSync(path.join(root, ".vscodeignore"), "utf8");
  assert.match(ignore, /^\*\*$/m);
  assert.match(ignore, /^!dist\/extension\.js$/m);
});
