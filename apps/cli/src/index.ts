export { EXIT } from './exit';
export type { ImportSummary } from './import/run';
export { buildProgram, runCli } from './program';
