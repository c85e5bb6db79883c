import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WEBHOOK_CATALOGUE, WEBHOOK_EVENTS, webhookCatalogueMarkdown } from '../src';

describe('the webhook catalogue', () => {
  it('docs/webhooks.md is the catalogue as generated (pnpm webhooks:doc)', () => {
    const doc = readFileSync(new URL('../../../docs/webhooks.md', import.meta.url), 'utf8');
    expect(doc).toBe(webhookCatalogueMarkdown());
  });

  it('names every event once, each with when it is sent and its data', () => {
    expect(new Set(WEBHOOK_EVENTS).size).toBe(WEBHOOK_EVENTS.length);
    for (const entry of WEBHOOK_CATALOGUE) {
      expect(entry.when.length, entry.event).toBeGreaterThan(10);
      expect(Object.keys(entry.data).length, entry.event).toBeGreaterThan(0);
    }
  });
});
