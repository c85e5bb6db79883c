import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import * as packet from 'dns-packet';
import type { CaaRecord } from './resolver';

/** dns-packet decodes the rcode too; its types do not say so. */
type Response = packet.DecodedPacket & { rcode?: string };

/**
 * One CAA query sent as a DNS packet (dns-packet) over UDP, then TCP when the answer is truncated. Node's
 * resolver (c-ares) cannot parse some record sets the CA reads fine — an empty value (`0 issue ""`, which
 * forbids every CA) makes it answer EBADRESP — so CAA is read here, byte for byte.
 *
 * Answers the CAA records (the CNAME chain's, if the name is an alias: the server follows it), or throws
 * an error whose `code` is node's: `ENOTFOUND` (NXDOMAIN), `ENODATA` (no CAA), `ESERVFAIL`, `EREFUSED`,
 * `ETIMEOUT`, `EBADRESP`…
 */
export async function queryCaa(
  server: string,
  name: string,
  options: { timeoutMs: number; tries: number },
): Promise<CaaRecord[]> {
  const { host, port } = splitServer(server);
  let response: Response | undefined;
  for (let attempt = 0; attempt < options.tries && !response; attempt++) {
    // c-ares doubles the timeout at each retry; so does this.
    response = await overUdp(host, port, name, options.timeoutMs * 2 ** attempt);
  }
  if (!response) throw codeError('ETIMEOUT', `no answer from ${server} for ${name} CAA`);
  if (response.flag_tc) response = await overTcp(host, port, name, options.timeoutMs * options.tries);
  const rcode = response.rcode ?? 'NOERROR';
  if (rcode === 'NXDOMAIN') throw codeError('ENOTFOUND', `${name} does not exist`);
  if (rcode !== 'NOERROR') throw codeError(RCODE_ERRORS[rcode] ?? 'EBADRESP', `${server} answered ${rcode}`);
  const records = (response.answers ?? [])
    .filter((a): a is packet.CaaAnswer => a.type === 'CAA')
    .map((a) => ({ flags: a.data.flags ?? 0, tag: String(a.data.tag).toLowerCase(), value: a.data.value }));
  if (records.length === 0) throw codeError('ENODATA', `${name} has no CAA records`);
  return records;
}

const RCODE_ERRORS: Record<string, string> = {
  SERVFAIL: 'ESERVFAIL',
  REFUSED: 'EREFUSED',
  NOTIMP: 'ENOTIMP',
  FORMERR: 'EFORMERR',
};

function codeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function splitServer(server: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(server);
  if (!match) throw new Error(`not ip:port: ${server}`);
  return { host: match[1]!, port: Number(match[2]) };
}

function query(name: string): packet.Packet & { id: number } {
  return {
    type: 'query',
    id: randomInt(0, 65536),
    flags: packet.RECURSION_DESIRED,
    questions: [{ type: 'CAA', name, class: 'IN' }],
  };
}

/** The answer to one UDP query, or undefined when none came in time. */
function overUdp(host: string, port: number, name: string, timeoutMs: number): Promise<Response | undefined> {
  const question = query(name);
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, answer?: Response) => {
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolve(answer);
    };
    const timer = setTimeout(() => done(null, undefined), timeoutMs);
    socket.on('error', (error) => done(error));
    socket.on('message', (message, from) => {
      if (from.port !== port) return;
      let answer: Response;
      try {
        answer = packet.decode(message);
      } catch {
        return done(codeError('EBADRESP', `malformed answer from ${host}:${port}`));
      }
      // An answer to another query (or forged) is ignored, as a resolver does.
      if (answer.id === question.id) done(null, answer);
    });
    socket.send(packet.encode(question), port, host, (error) => error && done(error));
  });
}

function overTcp(host: string, port: number, name: string, timeoutMs: number): Promise<Response> {
  const question = query(name);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(codeError('ETIMEOUT', `no TCP answer from ${host}:${port} for ${name} CAA`));
    }, timeoutMs);
    const finish = (error: Error | null, answer?: Response) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(answer!);
    };
    socket.on('error', (error) => finish(error));
    socket.on('connect', () => socket.write(packet.streamEncode(question)));
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      if (all.length < 2 || all.length < 2 + all.readUInt16BE(0)) return;
      try {
        finish(null, packet.streamDecode(all) as Response);
      } catch {
        finish(codeError('EBADRESP', `malformed TCP answer from ${host}:${port}`));
      }
    });
  });
}
