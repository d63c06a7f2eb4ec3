// Pure settings logic: no `vscode` import, so it is tested with `node --test`.

/** The configuration section, as in package.json and the server's `workspace/configuration`. */
export const SECTION = "lexAlign";

/** Scope kinds the manifest model reports (kebab-case, as in `lexAlign.scopes`). */
export const SCOPES = [
  "runtime",
  "optional",
  "group",
  "build",
  "uv-dev",
  "uv-constraint",
  "uv-override",
  "poetry-main",
  "poetry-group",
  "requirements",
  "constraint",
  "lock",
] as const;

export const DEFAULT_DEBOUNCE_MS = 150;
const MAX_DEBOUNCE_MS = 10_000;

/** What the language server understands (camelCase keys of section `lexAlign`). */
export interface ServerSettings {
  serverUrl?: string;
  project?: string;
  debounceMs: number;
  scopes?: string[];
}

/** Reads one key of the raw configuration; `vscode.WorkspaceConfiguration.get` fits. */
export type SettingsReader = (key: string) => unknown;

function nonEmptyString(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const t = v.trim();
  return t === "" ? undefined : t;
}

/**
 * Turns the user's `lexAlign.*` settings into what is sent to the server as
 * `initializationOptions` and as the answer to `workspace/configuration`.
 *
 * Empty strings mean "not set" and are left out, so the server keeps its own
 * discovery (`.lexalign.toml`, environment, machine default) instead of
 * receiving `""` as a URL or project name. Editor-only keys (`path`, `trace`)
 * are never sent.
 */
export function toServerSettings(read: SettingsReader): ServerSettings {
  const out: ServerSettings = { debounceMs: DEFAULT_DEBOUNCE_MS };
  const serverUrl = nonEmptyString(read("serverUrl"));
  if (serverUrl !== undefined) out.serverUrl = serverUrl;
  const project = nonEmptyString(read("project"));
  if (project !== undefined) out.project = project;
  const debounce = read("debounceMs");
  if (typeof debounce === "number" && Number.isFinite(debounce)) {
    out.debounceMs = Math.min(MAX_DEBOUNCE_MS, Math.max(0, Math.round(debounce)));
  }
  const scopes = read("scopes");
  if (Array.isArray(scopes)) {
    const known = new Set<string>(SCOPES);
    const picked = [...new Set(scopes.filter((s): s is string => typeof s === "string" && known.has(s)))];
    // An empty list means "every scope": leave it to the server's default.
    if (picked.length > 0) out.scopes = picked;
  }
  return out;
}

/** Settings whose change needs a new server process rather than a notification. */
export const RESTART_KEYS = ["path"] as const;

/** Adapts a plain object (for tests and for `didChangeConfiguration`) to a reader. */
export function readerOf(obj: Record<string, unknown> | undefined): SettingsReader {
  return (key) => (obj === undefined ? undefined : obj[key]);
}
