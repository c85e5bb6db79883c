import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Replaces `path` atomically: a temp file beside it, written and fsynced, renamed over the old one,
 * then the directory fsynced so the rename survives a power cut. A reader sees the old file or the
 * new one, never half of either; a crash leaves at most a `.certq-tmp-*` file, cleaned up next start.
 */
export function writeFileAtomic(path: string, content: string, mode: number): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const temp = join(dir, `.certq-tmp-${randomBytes(6).toString('hex')}`);
  const fd = openSync(temp, 'wx', mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  fsyncDir(dir);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** Removes a directory only if it is empty (someone else's files in it stay, and so does it). */
export function removeDirIfEmpty(path: string): void {
  try {
    rmdirSync(path);
  } catch {}
}

/** `*.example.com` → `_wildcard.example.com`; anything that is not a plain hostname is refused. */
export function fileNameOf(domain: string): string | undefined {
  const name = domain.replace(/^\*\./, '_wildcard.');
  return /^[a-z0-9_][a-z0-9._-]*$/.test(name) && !name.includes('..') ? name : undefined;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** Splits certq's bundle into the certificate chain and the private key (both PEM, newline-terminated). */
export function splitBundle(bundle: string): { chain: string; key: string } {
  const certs: string[] = [];
  let key: string | undefined;
  for (const match of bundle.matchAll(PEM_BLOCK)) {
    if (match[1] === 'CERTIFICATE') certs.push(match[0]);
    else if (match[1]!.endsWith('PRIVATE KEY')) key = match[0];
  }
  if (certs.length === 0 || !key) throw new Error('the bundle from certq holds no certificate or no key');
  return { chain: `${certs.join('\n')}\n`, key: `${key}\n` };
}
