import { createDb, type DbHandle, edgeTokens } from '@certq/db';
import { createTestDatabase } from '@certq/testing';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeTokenStore } from '../src/delivery/edge-tokens';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let handle: DbHandle;

beforeAll(async () => {
  database = await createTestDatabase();
  handle = createDb(database.url, { max: 2 });
});
afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

describe('an edge token’s last contact', () => {
  it('is written with the use counts, at most once a minute per token (not per request)', async () => {
    const [token] = await handle.db
      .insert(edgeTokens)
      .values({ name: 'edge', tokenHash: 'last-seen-test' })
      .returning();
    const store = new EdgeTokenStore(handle.db);
    const read = async () =>
      (await handle.db.select().from(edgeTokens).where(eq(edgeTokens.id, token!.id)))[0]!;
    const t0 = Date.parse('2026-12-08T04:00:00Z');
    const at = (seconds: number) => new Date(t0 + seconds * 1000);

    store.recordUse(token!.id, '/v1/certificates/changes', at(0));
    await store.flush();
    expect((await read()).lastSeenAt).toEqual(at(0));

    // Many requests within the minute: counted and last used, last contact unchanged.
    for (let s = 1; s <= 30; s++) store.recordUse(token!.id, '/v1/tls/certificate', at(s));
    await store.flush();
    store.recordUse(token!.id, '/v1/tls/certificate', at(59));
    await store.flush();
    const within = await read();
    expect(within.useCount).toBe(32);
    expect(within.lastUsedAt).toEqual(at(59));
    expect(within.lastSeenAt).toEqual(at(0));

    store.recordUse(token!.id, '/v1/certificates/changes', at(61));
    await store.flush();
    expect((await read()).lastSeenAt).toEqual(at(61));
    await store.close();
  });
});
