// Bundles the agent into one file that plain `node` (≥ 20) runs: dist/certq-agent.mjs.
// Written beside and renamed into place, so concurrent builds never leave half a file.
import { readFileSync, renameSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url);
const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
const out = new URL('dist/certq-agent.mjs', root).pathname;
const temp = `${out}.${process.pid}.tmp`;
await build({
  entryPoints: [new URL('src/main.ts', root).pathname],
  outfile: temp,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  define: { __CERTQ_AGENT_VERSION__: JSON.stringify(version) },
  banner: { js: '#!/usr/bin/env node' },
  legalComments: 'none',
  logLevel: 'warning',
});
renameSync(temp, out);
