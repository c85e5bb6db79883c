import type { EventEmitter } from 'node:events';
import type { FastifyInstance } from 'fastify';
import type { SimulatorOptions } from './config';

/** The simulator's public types: the upstream's wire shapes and the `Simulator` handle. */

export type Algorithm = 'ECC' | 'RSA';
export type CaName = 'google' | 'letsencrypt' | 'zerossl';
export const CAS = ['google', 'letsencrypt', 'zerossl'] as const satisfies readonly CaName[];

export interface SimStats {
  dv: number;
  apply: number;
  get: number;
  callbacks: number;
  tooFrequent: number;
  appliesByDomains: Record<string, number>;
}

export interface Envelope<T = unknown> {
  code: number;
  msg: string;
  data: T;
  traceId: string;
}

export interface DvConfig {
  domain: string;
  host: string;
  hostValue: string;
  valid: boolean;
}

export interface IssuingData {
  id: number;
  status: 2;
  domains: string;
  progress: number;
}

export interface IssuedData {
  id: number;
  status: 1;
  algorithm: Algorithm;
  ca: CaName;
  name: string;
  domains: string;
  notBefore: string;
  notAfter: string;
  certificate: string;
  privateKey: string;
  fingerprints: string;
  progress: 100;
}

export interface FailedData {
  id: number;
  status: 3;
  domains: string;
  progress: number;
  msg: string;
  reason: string;
}

export type ApplicationData = IssuingData | IssuedData | FailedData;

/** Events on `Simulator.events` (handy in tests: `await once(sim.events, 'callback')`). */
export interface SimulatorEvents {
  /** An application turned issued (status 1) or failed (status 3). */
  completed: [{ id: number; status: 1 | 3 }];
  /** A callback was delivered with a 2xx answer. */
  callback: [{ id: number; url: string; attempt: number; statusCode: number }];
  /** One callback attempt failed (non-2xx or network error). */
  'callback-error': [{ id: number; url: string; attempt: number; error: string }];
  /** Every attempt failed; the callback is given up. */
  'callback-abandoned': [{ id: number; url: string; attempts: number; error: string }];
}

export interface Simulator {
  /** The Fastify instance (routes registered; `inject` works without `listen`). */
  app: FastifyInstance;
  /** Starts listening; resolves to the base URL, e.g. `http://127.0.0.1:4010`. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops the server, the issue timers and pending callbacks. */
  close(): Promise<void>;
  /** Resolves when the CA is ready (`listen` waits for it too). */
  ready(): Promise<void>;
  stats(): SimStats;
  /** Clears applications, DNS records, poll times and counters; keeps the CA and the id sequence. */
  reset(): void;
  /** Sets (or with an empty value removes) the CNAME `name -> value` used by `verify: 'records'`. */
  setDns(name: string, value: string): void;
  /** The root CA certificate PEM (available once `ready()`/`listen()` resolved). */
  readonly caPem: string;
  readonly options: Readonly<SimulatorOptions>;
  readonly events: EventEmitter<SimulatorEvents>;
}
