import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Every file a README or doc names must exist: markdown links to local targets, backticked paths
 * that look like repo paths (a first segment that is a folder of the repo, of the doc's own package or
 * of its src/), and bare file names (`poll.ts`: some tracked file has that name). Placeholders
 * (`<NNNN>`, `*`, `…`) are not paths.
 */
const root = join(import.meta.dirname, '..');
const tracked = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' })
  .split('\n')
  .filter(Boolean);
const docs = tracked.filter((path) => path.endsWith('.md'));
const trackedNames = new Set(tracked.map((path) => basename(path)));
/** Files the docs name that a running certq writes, not the repo (`pnpm start`'s `.certq/secrets.json`). */
const WRITTEN_AT_RUN_TIME = new Set(['secrets.json']);

const isDirectory = (path: string) => existsSync(path) && statSync(path).isDirectory();
const FILE_NAME = /^[\w.-]+\.(ts|js|mjs|md|sql|json|ya?ml|sh|conf|toml|lock|patch|html|css)$/;
const PATH = /^\.{0,2}\/?[\w.@-]+(\/[\w.@-]+)*\/?$/;

/** Where a path in `doc` may be meant from: the doc's folder, its src/, the repo root. */
function bases(doc: string): string[] {
  const dir = join(root, dirname(doc));
  return [dir, join(dir, 'src'), root];
}

function namedPaths(doc: string, text: string): string[] {
  const named: string[] = [];
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^(https?:|mailto:|#)/.test(target!)) continue;
    named.push(`link ${target!.split('#')[0]}`);
  }
  for (const [, code] of text.replace(/```[\s\S]*?```/g, '').matchAll(/`([^`\n]+)`/g)) {
    const path = code!.replace(/:\d+(-\d+)?$/, '');
    if (!PATH.test(path) || path.startsWith('/')) continue;
    const first = path.replace(/^\.\//, '').split('/')[0]!;
    if (!path.includes('/')) {
      if (FILE_NAME.test(path)) named.push(`name ${path}`);
    } else if (first === '..' || bases(doc).some((base) => isDirectory(join(base, first))))
      named.push(`code ${path}`);
  }
  return named;
}

describe('docs', () => {
  it('name only repo paths that exist', () => {
    expect(docs.length).toBeGreaterThan(10);
    const missing: string[] = [];
    for (const doc of docs) {
      const text = readFileSync(join(root, doc), 'utf8');
      for (const named of namedPaths(doc, text)) {
        const [kind, path] = named.split(' ') as [string, string];
        if (kind === 'name') {
          if (!trackedNames.has(path) && !WRITTEN_AT_RUN_TIME.has(path)) missing.push(`${doc}: ${named}`);
          continue;
        }
        const candidates =
          kind === 'link' ? [join(root, dirname(doc), path)] : bases(doc).map((base) => join(base, path));
        if (
          !candidates.some(
            (candidate) => existsSync(candidate) && relative(root, candidate).split('/')[0] !== '..',
          )
        )
          missing.push(`${doc}: ${named}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
