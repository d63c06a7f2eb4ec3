// The VS Code side: starts `lex-align lsp` and keeps it fed with settings.
// Decisions (which files, which settings, which binary) live in the pure
// modules next to this one, where they are unit-tested.
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";
import { resolveBinary, serverCommand } from "./binary";
import { documentSelector } from "./selector";
import { SECTION, toServerSettings } from "./settings";

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel | undefined;

function projectFolder(): string | undefined {
  const folder = vscode.workspace.workspaceFolders?.[0];
  return folder?.uri.scheme === "file" ? folder.uri.fsPath : undefined;
}

function settingsFor(scope?: vscode.Uri) {
  const cfg = vscode.workspace.getConfiguration(SECTION, scope);
  return toServerSettings((key) => cfg.get(key));
}

async function reportMissingBinary(message: string): Promise<void> {
  output?.appendLine(message);
  const open = "Open Settings";
  const choice = await vscode.window.showErrorMessage(message, open);
  if (choice === open) {
    await vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.path`);
  }
}

async function startClient(): Promise<void> {
  const cwd = projectFolder();
  const resolved = resolveBinary(vscode.workspace.getConfiguration(SECTION).get<string>("path"), {
    env: process.env,
    platform: process.platform,
    cwd,
  });
  if (!resolved.ok) {
    await reportMissingBinary(resolved.message);
    return;
  }
  const cmd = serverCommand(resolved.path, cwd);
  const serverOptions: ServerOptions = {
    command: cmd.command,
    args: cmd.args,
    transport: TransportKind.stdio,
    options: { cwd: cmd.cwd, env: process.env },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: documentSelector(),
    initializationOptions: settingsFor(),
    outputChannel: output,
    middleware: {
      workspace: {
        // Answer with the cleaned settings rather than the raw section, so
        // empty strings and editor-only keys never reach the server.
        configuration: async (params, token, next) => {
          const raw = await next(params, token);
          if (!Array.isArray(raw)) return raw;
          return params.items.map((item, i) =>
            item.section === SECTION
              ? settingsFor(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
              : raw[i],
          );
        },
      },
    },
  };
  const c = new LanguageClient(SECTION, "lex-align", serverOptions, clientOptions);
  client = c;
  try {
    await c.start();
    output?.appendLine(`lex-align: started ${cmd.command} ${cmd.args.join(" ")}${cmd.cwd ? ` in ${cmd.cwd}` : ""}`);
  } catch (err) {
    client = undefined;
    const detail = err instanceof Error ? err.message : String(err);
    void vscode.window.showErrorMessage(`lex-align: the language server (${cmd.command} lsp) failed to start: ${detail}`);
  }
}

async function stopClient(): Promise<void> {
  const c = client;
  client = undefined;
  if (c === undefined) return;
  try {
    await c.stop();
  } catch (err) {
    // A server that already died cannot be stopped cleanly; a restart goes on.
    output?.appendLine(`lex-align: stopping the server: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function restart(): Promise<void> {
  await stopClient();
  await startClient();
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("lex-align", { log: true });
  context.subscriptions.push(output);
  context.subscriptions.push(vscode.commands.registerCommand("lexAlign.restartServer", restart));
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration(SECTION)) return;
      if (e.affectsConfiguration(`${SECTION}.path`)) {
        await restart();
        return;
      }
      if (client?.isRunning()) {
        await client.sendNotification(DidChangeConfigurationNotification.type, {
          settings: { [SECTION]: settingsFor() },
        });
      }
    }),
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
}
