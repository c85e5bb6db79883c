import { request } from 'undici';

export interface Change {
  cursor: string;
  certificateId: string;
  tenantId: string;
  domains: string[];
  change: 'current' | 'replaced';
  fingerprint: string;
  notAfter: string;
  at: string;
}

/** certq refused the token: retrying cannot help, the agent stops. */
export class AuthError extends Error {}

/** certq could not be reached or answered an error; the agent keeps its files and retries. */
export class UnavailableError extends Error {}

/** The two delivery routes an edge token may use, over undici. */
export class CertqClient {
  constructor(
    private readonly api: string,
    private readonly token: string,
  ) {}

  async changes(
    cursor: string,
    waitSeconds: number,
    limit = 1000,
  ): Promise<{ changes: Change[]; nextCursor: string }> {
    const query = new URLSearchParams({ cursor, wait: String(waitSeconds), limit: String(limit) });
    const body = await this.get(`/v1/certificates/changes?${query}`, (waitSeconds + 15) * 1000);
    if (body.status !== 200)
      throw new UnavailableError(`changes answered ${body.status}: ${body.text.slice(0, 200)}`);
    return JSON.parse(body.text) as { changes: Change[]; nextCursor: string };
  }

  /** The PEM bundle (chain then key) of a certificate that is still current, or null if it is not. */
  async bundle(certificateId: string): Promise<string | null> {
    const body = await this.get(
      `/v1/tls/certificate?certificate_id=${encodeURIComponent(certificateId)}`,
      15_000,
    );
    if (body.status === 204) return null;
    if (body.status !== 200)
      throw new UnavailableError(`certificate answered ${body.status}: ${body.text.slice(0, 200)}`);
    return body.text;
  }

  private async get(path: string, timeoutMs: number): Promise<{ status: number; text: string }> {
    let response: Awaited<ReturnType<typeof request>>;
    try {
      response = await request(`${this.api}${path}`, {
        headers: { authorization: `Bearer ${this.token}`, 'user-agent': 'certq-agent' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (error) {
      throw new UnavailableError(`certq unreachable at ${this.api}: ${(error as Error).message}`);
    }
    const text = await response.body.text();
    if (response.statusCode === 401 || response.statusCode === 403) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error: { message: string } }).error.message;
      } catch {}
      throw new AuthError(`certq refused the token (${response.statusCode}): ${message}`);
    }
    return { status: response.statusCode, text };
  }
}
