import { it } from '@certq/testing';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { jobsLive } from '../src/sweeps/sweep';

it("the sweeps' batched live check agrees with BullMQ's job state, per job and per queue", async ({
  testRedis,
}) => {
  const connection = new Redis(testRedis.url, { maxRetriesPerRequest: null });
  const [a, b, c] = ['live-a', 'live-b', 'live-c'].map(
    (name) => new Queue(name, { connection, prefix: testRedis.prefix }),
  );
  try {
    await a!.add('x', {}, { jobId: 'job-waiting' });
    await a!.add('x', {}, { jobId: 'job-delayed', delay: 60_000 });
    await a!.add('x', {}, { jobId: 'job-prioritized', priority: 5 });
    await b!.add('x', {}, { jobId: 'job-done' });
    await b!.add('x', {}, { jobId: 'job-fails' });
    // b's two jobs run to the end: one completed (kept), one failed. (A job id must not be a state's
    // name: BullMQ keeps the job's hash beside its queue's state keys.)
    const worker = new Worker(
      'live-b',
      async (job) => {
        if (job.id === 'job-fails') throw new Error('no');
      },
      { connection, prefix: testRedis.prefix },
    );
    await expect
      .poll(async () => await b!.getJobCounts('completed', 'failed'))
      .toEqual({ completed: 1, failed: 1 });
    await worker.close();
    // One job held active by a worker until the check is done.
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const holder = new Worker('live-c', () => held, { connection, prefix: testRedis.prefix, autorun: false });
    await c!.add('x', {}, { jobId: 'job-active' });
    void holder.run();
    await expect.poll(() => c!.getJobState('job-active')).toBe('active');
    const jobs = [
      { queue: a!, jobId: 'job-waiting' },
      { queue: b!, jobId: 'job-done' },
      { queue: a!, jobId: 'job-delayed' },
      { queue: a!, jobId: 'job-never-added' },
      { queue: b!, jobId: 'job-fails' },
      { queue: a!, jobId: 'job-prioritized' },
      { queue: c!, jobId: 'job-active' },
    ];
    const live = await jobsLive(jobs);
    const states = await Promise.all(jobs.map((j) => j.queue.getJobState(j.jobId)));
    release();
    await holder.close();
    expect(states).toEqual(['waiting', 'completed', 'delayed', 'unknown', 'failed', 'prioritized', 'active']);
    expect(live).toEqual([true, false, true, false, false, true, true]);
  } finally {
    await Promise.all([a!.close(), b!.close(), c!.close()]);
    connection.disconnect();
  }
});
