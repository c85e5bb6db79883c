/**
 * Regenerates src/generated/ from the API's current routes: builds the app in-process (no server,
 * no database; Redis at REDIS_URL or the local default for the queue dashboard's handshake), takes
 * its OpenAPI document and writes the document, its TypeScript types and the operation table.
 *
 *   pnpm --filter @certq/sdk generate
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildOpenApiDocument } from '@certq/api';
import { generateSdkFiles } from './codegen';

const dir = join(import.meta.dirname, '..', 'src', 'generated');
const files = await generateSdkFiles(await buildOpenApiDocument());
for (const [name, content] of Object.entries(files)) {
  await writeFile(join(dir, name), content);
  console.log(`wrote ${join('packages/sdk/src/generated', name)}`);
}
