import { test } from "node:test";
import * as assert from "node:assert/strict";
import { DEFAULT_DEBOUNCE_MS, readerOf, SCOPES, toServerSettings } from "../src/settings";

test("defaults send only the debounce, leaving discovery to the server", () => {
  assert.deepEqual(toServerSettings(readerOf({})), { debounceMs: DEFAULT_DEBOUNCE_MS });
  assert.deepEqual(toServerSettings(readerOf(undefined)), { debounceMs: DEFAULT_DEBOUNCE_MS });
});

test("empty or blank strings are treated as unset", () => {
  const s = toServerSettings(readerOf({ serverUrl: "", project: "   " }));
  assert.equal("serverUrl" in s, false);
  assert.equal("project" in s, false);
});

test("values are trimmed and passed through with the server's key names", () => {
  const s = toServerSettings(
    readerOf({ serverUrl: " http://127.0.0.1:8765 ", project: "billing-api", debounceMs: 300, scopes: ["runtime", "build"] }),
  );
  assert.deepEqual(s, {
    serverUrl: "http://127.0.0.1:8765",
    project: "billing-api",
    debounceMs: 300,
    scopes: ["runtime", "build"],
  });
});

test("editor-only settings never reach the server", () => {
  const s = toServerSettings(readerOf({ path: "/opt/lex-align", trace: { server: "verbose" }, debounceMs: 10 }));
  assert.deepEqual(Object.keys(s).sort(), ["debounceMs"]);
});

test("debounce is rounded and clamped to 0..10000", () => {
  assert.equal(toServerSettings(readerOf({ debounceMs: -5 })).debounceMs, 0);
  assert.equal(toServerSettings(readerOf({ debounceMs: 99999 })).debounceMs, 10000);
  assert.equal(toServerSettings(readerOf({ debounceMs: 12.6 })).debounceMs, 13);
  assert.equal(toServerSettings(readerOf({ debounceMs: Number.NaN })).debounceMs, DEFAULT_DEBOUNCE_MS);
  assert.equal(toServerSettings(readerOf({ debounceMs: "200" })).debounceMs, DEFAULT_DEBOUNCE_MS);
});

test("scopes drop unknown kinds and duplicates; an empty result means every scope", () => {
  assert.deepEqual(toServerSettings(readerOf({ scopes: ["group", "bogus", "group", 3, "lock"] })).scopes, ["group", "lock"]);
  assert.equal("scopes" in toServerSettings(readerOf({ scopes: [] })), false);
  assert.equal("scopes" in toServerSettings(readerOf({ scopes: ["nope"] })), false);
  assert.equal("scopes" in toServerSettings(readerOf({ scopes: "runtime" })), false);
  assert.deepEqual(toServerSettings(readerOf({ scopes: [...SCOPES] })).scopes, [...SCOPES]);
});
