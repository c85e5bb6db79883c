import type pg from 'pg';

/**
 * `work` in one transaction on a client of `pool`: committed if it returns, rolled back if it throws.
 * Plain node-postgres, like the rest of the baselines.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}
