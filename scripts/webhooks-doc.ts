// Writes docs/webhooks.md from the webhook catalogue (packages/db/src/webhooks.ts).
import { writeFileSync } from 'node:fs';
import { webhookCatalogueMarkdown } from '@certq/db';

writeFileSync(new URL('../docs/webhooks.md', import.meta.url), webhookCatalogueMarkdown());
