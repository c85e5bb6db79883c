import { existsSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Format } from './args';
import { writeFileAtomic } from './files';

export const STATE_FILE = '.certq-agent.json';

export interface KnownCertificate {
  domains: string[];
  /** Feed position where it became current: the newest wins a name two certificates share. */
  since: number;
  fingerprint: string;
}

export interface WrittenName {
  certificateId: string;
  fingerprint: string;
  domains: string[];
  /** Paths relative to the directory, exactly the files written for this name. */
  files: string[];
}

/** What the agent knows and what it wrote: the only files it will ever replace or remove. */
export interface AgentState {
  version: 1;
  format: Format;
  /** The feed position everything below has been applied up to. */
  cursor: string;
  /** Every certificate current as of `cursor`, by id. */
  current: Record<string, KnownCertificate>;
  /** Per file name (`<name>`): what is on disk. */
  written: Record<string, WrittenName>;
  /** Index files (crt-list.txt, certq-names.map) written by the agent. */
  indexFiles: string[];
  /** haproxy --runtime-api: names whose new files HAProxy has not taken yet (kept across restarts). */
  runtimePending?: string[];
}

export function emptyState(format: Format): AgentState {
  return { version: 1, format, cursor: '0', current: {}, written: {}, indexFiles: [] };
}

export function loadState(dir: string, format: Format): AgentState {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) return emptyState(format);
  const state = JSON.parse(readFileSync(path, 'utf8')) as AgentState;
  if (state.version !== 1) throw new Error(`${path}: unknown state version ${state.version}`);
  if (state.format !== format)
    throw new Error(
      `${path} was written for --format ${state.format}; use another --dir for ${format} (nothing was changed)`,
    );
  return state;
}

/** The state is written after the files it describes, so a crash in between replays, never skips. */
export function saveState(dir: string, state: AgentState): void {
  writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

/** Temp files a killed agent left behind (only ours: they carry our prefix). */
export function removeStaleTempFiles(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.startsWith('.certq-tmp-'))
      unlinkSync(join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
  }
}
