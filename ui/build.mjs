// Bundles the UI into one folder (argument 1, default dist/): the page, the
// app script, the layout worker and the styles. Run by orchestrator-topology's
// build script; `npm run build` does the same by hand.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2] || 'dist';
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: 'src/main.ts', layout: 'src/layout.worker.ts', style: 'src/style.css' },
  bundle: true,
  minify: true,
  format: 'esm',
  // The terminal emulator is a chunk of its own, loaded when first used.
  splitting: true,
  chunkNames: 'chunk-[hash]',
  target: ['chrome100', 'firefox100', 'safari15'],
  outdir: out,
  logLevel: 'warning',
  legalComments: 'none',
});
copyFileSync('index.html', join(out, 'index.html'));
