// Bundles the extension and vscode-languageclient into one file so the .vsix
// needs no node_modules (and `vsce package --no-dependencies` is correct).
import { build } from "esbuild";

await build({
  entryPoints: ["src/extension.ts"],
  bundle: true,
  outfile: "dist/extension.js",
  format: "cjs",
  platform: "node",
  target: "node18",
  // Provided by the editor at run time.
  external: ["vscode"],
  sourcemap: true,
  minify: process.argv.includes("--minify"),
  logLevel: "info",
});
