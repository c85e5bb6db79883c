import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Address } from './args';
import type { Logger } from './log';
import type { AgentMetrics } from './metrics';

/**
 * HAProxy's Runtime API (its stats socket, `level admin`), one command per connection. Brings the
 * running process to what the files say without a reload: a renewal is `set ssl cert` + `commit ssl
 * cert`; a new name `new ssl cert` + `set` + `commit` + `add ssl crt-list`; a removal `del ssl
 * crt-list` + `del ssl cert`. What HAProxy holds is asked first (`show ssl cert`, `show ssl crt-list`),
 * so a restarted HAProxy (which loaded the files) or an earlier failed batch is handled the same way.
 */
export class HaproxyRuntime {
  constructor(
    private readonly address: Address,
    /** The crt-list path exactly as HAProxy's `bind … crt-list` names it. */
    private readonly crtList: string,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
  ) {}

  /** Sends one command (and its payload, which must hold no empty line); answers HAProxy's text. */
  command(line: string, payload?: string): Promise<string> {
    this.metrics.runtimeCommandsTotal++;
    return new Promise((resolve, reject) => {
      const socket = 'path' in this.address ? connect(this.address.path) : connect(this.address);
      let answer = '';
      socket.setEncoding('utf8');
      socket.setTimeout(30_000, () =>
        socket.destroy(new Error(`no answer to ${line.split(' ', 3).join(' ')}`)),
      );
      socket.on('data', (chunk: string) => {
        answer += chunk;
      });
      socket.once('error', reject);
      socket.once('close', () => resolve(answer));
      socket.write(payload === undefined ? `${line}\n` : `${line} <<\n${payload.replace(/\n+$/, '')}\n\n`);
    });
  }

  private async expect(line: string, ok: RegExp, payload?: string): Promise<void> {
    const answer = await this.command(line, payload);
    if (!ok.test(answer)) throw new Error(`${line}: ${answer.trim().slice(0, 300)}`);
  }

  /** Certificate files HAProxy holds. */
  async loadedCertificates(): Promise<Set<string>> {
    const answer = await this.command('show ssl cert');
    return new Set(
      answer
        .split('\n')
        .map((l) => l.replace(/^\*/, '').trim())
        .filter((l) => l && !l.startsWith('#')),
    );
  }

  /** The crt-list's entries as HAProxy holds them: file → its SNI filters. */
  async crtListEntries(): Promise<Map<string, string[]>> {
    const answer = await this.command(`show ssl crt-list ${this.crtList}`);
    if (!answer.startsWith('# ')) throw new Error(`show ssl crt-list ${this.crtList}: ${answer.trim()}`);
    const entries = new Map<string, string[]>();
    for (const line of answer.split('\n').slice(1)) {
      if (!line.trim()) continue;
      const [file, ...rest] = line
        .replace(/\[[^\]]*\]/g, ' ')
        .trim()
        .split(/\s+/);
      entries.set(file!, rest);
    }
    return entries;
  }

  /**
   * Makes HAProxy serve `index` (file name → its server names) from `dir`; `renewed` names have new
   * files to load even where HAProxy already holds that file name.
   */
  async apply(renewed: ReadonlySet<string>, index: Map<string, string[]>, dir: string): Promise<void> {
    const started = Date.now();
    const loaded = await this.loadedCertificates();
    const entries = await this.crtListEntries();
    const fileOf = (name: string) => join(dir, `${name}.pem`);
    const wanted = new Map([...index].map(([name, own]) => [fileOf(name), { name, own }]));
    let added = 0;
    let updated = 0;
    let removed = 0;
    for (const file of entries.keys()) {
      if (wanted.has(file) || !file.startsWith(`${dir}/`)) continue;
      await this.expect(`del ssl crt-list ${this.crtList} ${file}`, /deleted/i);
      if (loaded.has(file)) await this.expect(`del ssl cert ${file}`, /deleted/i);
      removed++;
    }
    for (const [file, { name, own }] of wanted) {
      const isNew = !loaded.has(file);
      if (isNew) await this.expect(`new ssl cert ${file}`, /New empty certificate store/i);
      if (isNew || renewed.has(name)) {
        await this.expect(
          `set ssl cert ${file}`,
          /Transaction (created|updated)/i,
          readFileSync(file, 'utf8'),
        );
        await this.expect(`commit ssl cert ${file}`, /Success!/);
        if (isNew) added++;
        else updated++;
      }
      const listed = entries.get(file);
      if (listed && listed.join(' ') === own.join(' ')) continue;
      if (listed) await this.expect(`del ssl crt-list ${this.crtList} ${file}`, /deleted/i);
      await this.expect(`add ssl crt-list ${this.crtList}`, /Success!/, `${file} ${own.join(' ')}`);
    }
    this.log.info(
      `HAProxy Runtime API: ${added} added, ${updated} renewed, ${removed} removed (${Date.now() - started} ms, no reload)`,
      { added, renewed: updated, removed },
    );
  }
}
