export type { CertificateAuthority, IssuedCertificate, IssueParams, KeyAlgorithm } from './ca';
export { createCertificateAuthority, formatChinaTime } from './ca';
export type { CallbackRetryOptions, SimulatorInit, SimulatorOptions, VerifyMode } from './config';
export { DEFAULT_OPTIONS, loadSimulatorOptions } from './config';
export { accountHex, dvRecord, splitDomain } from './domains';
export { createSimulator } from './server';
export type {
  Algorithm,
  ApplicationData,
  CaName,
  DvConfig,
  Envelope,
  FailedData,
  IssuedData,
  IssuingData,
  SimStats,
  Simulator,
  SimulatorEvents,
} from './types';
