import { createHash, randomBytes } from 'node:crypto';
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
 * Replaces files atomically: each is written to a temp file beside it and fsynced, then all are
 * renamed over the old ones back to back, then their directories fsynced so the renames survive a
 * power cut. A reader sees each file old or new, never half of one; a certificate and its key change
 * within microseconds of each other (nginx reading both per handshake could straddle only that). A
 * crash leaves at most `.certq-tmp-*` files, removed at the next start.
 */
export function writeFilesAtomic(files: { path: string; content: string; mode: number }[]): void {
  const staged: { temp: string; path: string }[] = [];
  try {
    for (const file of files) {
      const dir = dirname(file.path);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      const temp = join(dir, `.certq-tmp-${randomBytes(6).toString('hex')}`);
      const fd = openSync(temp, 'wx', file.mode);
      staged.push({ temp, path: file.path });
      try {
        writeSync(fd, file.content);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  } catch (error) {
    for (const { temp } of staged) removeFile(temp);
    throw error;
  }
  for (const { temp, path } of staged) renameSync(temp, path);
  for (const dir of new Set(staged.map((s) => dirname(s.path)))) fsyncDir(dir);
}

export function writeFileAtomic(path: string, content: string, mode: number): void {
  writeFilesAtomic([{ path, content, mode }]);
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

/** Files the agent writes besides the certificates'; no certificate's name may take theirs. */
export const INDEX_FILES = ['certq-names.map', 'crt-list.txt'] as const;

/**
 * Names longer than this are hashed: a file-name component holds 255 bytes, and `<name>.pem` or a
 * `.certq-tmp-*` file beside it must fit.
 */
const LONGEST_NAME = 200;

/**
 * The file name (nginx: directory) of a certificate: its first domain with `*` written `_wildcard`
 * (`*.example.com` → `_wildcard.example.com`). A name too long for a file, or one that would be an
 * index file's, becomes `_hashed.<sha-256 of the domain>`: domain labels never hold `_`, so that can
 * be no other certificate's name. Anything that is not a hostname is refused (undefined).
 */
export function fileNameOf(domain: string): string | undefined {
  if (!/^(\*\.)?[a-z0-9][a-z0-9.-]*$/.test(domain) || domain.includes('..')) return undefined;
  const name = domain.replace(/^\*\./, '_wildcard.');
  const clashes = INDEX_FILES.some((file) => file === name || file === `${name}.pem`);
  if (name.length <= LONGEST_NAME && !clashes) return name;
  return `_hashed.${createHash('sha256').update(domain).digest('hex').slice(0, 32)}`;
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
