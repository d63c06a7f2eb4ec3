// Which files the language client handles; pure, shared by package.json's
// activation events (checked in the tests) and the client's documentSelector.

/** Glob patterns of the governed files (same names the server accepts). */
export const FILE_PATTERNS = [
  "**/pyproject.toml",
  "**/*requirements*.txt",
  "**/*requirements*.in",
] as const;

export interface FilePatternFilter {
  scheme: string;
  pattern: string;
}

/** The documentSelector: on-disk files only (the server reads sibling lock files and `-r` includes). */
export function documentSelector(): FilePatternFilter[] {
  return FILE_PATTERNS.map((pattern) => ({ scheme: "file", pattern }));
}

/** The `workspaceContains:` activation events matching FILE_PATTERNS. */
export function activationEvents(): string[] {
  return FILE_PATTERNS.map((p) => `workspaceContains:${p}`);
}

/**
 * Whether the server analyses a file of this base name (mirrors the server's
 * own rule, so the client never sends documents the server ignores).
 */
export function isGoverned(baseName: string): boolean {
  const lower = baseName.toLowerCase();
  if (lower === "pyproject.toml") return true;
  return lower.includes("requirements") && (lower.endsWith(".txt") || lower.endsWith(".in"));
}
