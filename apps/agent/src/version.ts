import { readFileSync } from 'node:fs';

// Set by the bundle's build (esbuild --define); from package.json when run from source.
declare const __CERTQ_AGENT_VERSION__: string | undefined;

export const AGENT_VERSION: string =
  typeof __CERTQ_AGENT_VERSION__ === 'string'
    ? __CERTQ_AGENT_VERSION__
    : (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
        .version;
