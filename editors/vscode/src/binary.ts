// Finding the `lex-align` executable: pure apart from `fs` checks, no `vscode`.
import * as fs from "node:fs";
import * as path from "node:path";

export const DEFAULT_BINARY = "lex-align";

export interface ResolveEnv {
  /** process.env-like: PATH, PATHEXT, HOME / USERPROFILE. */
  env: Record<string, string | undefined>;
  platform: NodeJS.Platform;
  /** Folder relative paths are taken from (the first workspace folder). */
  cwd?: string;
  /** Injected for tests; defaults to a real executable-file check. */
  isExecutable?: (file: string) => boolean;
}

export type Resolution =
  | { ok: true; path: string }
  | { ok: false; message: string };

function defaultIsExecutable(platform: NodeJS.Platform): (file: string) => boolean {
  return (file) => {
    try {
      const st = fs.statSync(file);
      if (!st.isFile()) return false;
      if (platform === "win32") return true;
      fs.accessSync(file, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
}

function expandHome(p: string, env: Record<string, string | undefined>): string {
  const home = env.HOME ?? env.USERPROFILE;
  if (home && (p === "~" || p.startsWith("~/") || p.startsWith("~\\"))) {
    return path.join(home, p.slice(1));
  }
  return p;
}

/**
 * Resolves `lexAlign.path` to an executable file.
 *
 * A bare name (no path separator) is searched on PATH, as a shell would; on
 * Windows with PATHEXT extensions. Anything else is a path, relative to `cwd`.
 * The failure message says what was tried and how to fix it.
 */
export function resolveBinary(configured: string | undefined, opts: ResolveEnv): Resolution {
  const p = opts.platform === "win32" ? path.win32 : path.posix;
  const isExec = opts.isExecutable ?? defaultIsExecutable(opts.platform);
  const setting = (configured ?? "").trim() || DEFAULT_BINARY;
  const wanted = expandHome(setting, opts.env);
  const hasSep = wanted.includes("/") || (opts.platform === "win32" && wanted.includes("\\"));
  const exts =
    opts.platform === "win32"
      ? ["", ...(opts.env.PATHEXT ?? ".COM;.EXE;.BAT;.CMD").split(";").filter(Boolean).map((e) => e.toLowerCase())]
      : [""];

  if (hasSep) {
    const full = p.isAbsolute(wanted) ? wanted : p.resolve(opts.cwd ?? ".", wanted);
    for (const ext of exts) {
      if (isExec(full + ext)) return { ok: true, path: full + ext };
    }
    return {
      ok: false,
      message:
        `lex-align: the language server binary "${full}" (setting lexAlign.path) does not exist or is not executable. ` +
        `Install lex-align, or set lexAlign.path to the full path of the lex-align binary.`,
    };
  }

  const pathVar = opts.env.PATH ?? opts.env.Path ?? "";
  const dirs = pathVar.split(p.delimiter).filter((d) => d !== "");
  for (const dir of dirs) {
    for (const ext of exts) {
      const candidate = p.join(dir, wanted + ext);
      if (isExec(candidate)) return { ok: true, path: candidate };
    }
  }
  return {
    ok: false,
    message:
      `lex-align: "${wanted}" was not found on PATH` +
      (dirs.length > 0 ? ` (searched ${dirs.length} folder${dirs.length === 1 ? "" : "s"})` : " (PATH is empty)") +
      `. Install lex-align (its binary provides \`lex-align lsp\`), or set lexAlign.path to the full path of the binary.`,
  };
}

/** The server process: `<binary> lsp` over stdio, in the project folder. */
export interface ServerCommand {
  command: string;
  args: string[];
  cwd?: string;
}

export function serverCommand(binary: string, cwd: string | undefined): ServerCommand {
  return { command: binary, args: ["lsp"], cwd };
}
