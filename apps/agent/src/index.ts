export { HAPROXY_CRT_LIST, NGINX_MAP_FILE, runAgent } from './agent';
export { type AgentOptions, type Format, parseAgentArgs, USAGE, UsageError } from './args';
export { AuthError, CertqClient, type Change, UnavailableError } from './client';
export { fileNameOf, splitBundle, writeFileAtomic, writeFilesAtomic } from './files';
export { type AgentState, loadState, STATE_FILE } from './state';
