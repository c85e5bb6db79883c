export interface Change {
  cursor: string;
  certificateId: string;
  tenantId: string;
  domains: string[];
  /** `current`: served from now on; anything else (`replaced`, a retirement): no longer. */
  change: string;
  fingerprint: string;
  notAfter: string;
  at: string;
}

/** certq refused the token: retrying cannot help, the agent stops. */
export class AuthError extends Error {}

/** certq could not be reached or answered an error; the agent keeps its files and retries. */
export class UnavailableError extends Error {}

/** The two delivery routes an edge token may use, over Node's own fetch (the agent has no dependencies). */
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
    let status: number;
    let text: string;
    try {
      const response = await fetch(`${this.api}${path}`, {
        headers: { authorization: `Bearer ${this.token}`, 'user-agent': 'certq-agent' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      const cause = (error as Error & { cause?: Error }).cause;
      throw new UnavailableError(
        `certq unreachable at ${this.api}: ${(error as Error).message}${cause ? ` (${cause.message})` : ''}`,
      );
    }
    if (status === 401 || status === 403) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error: { message: string } }).error.message;
      } catch {}
      throw new AuthError(`certq refused the token (${status}): ${message}`);
    }
    return { status, text };
  }
}
