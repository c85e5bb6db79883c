export * from './backoff';
export * from './clock';
export * from './config';
export * from './crypto';
export * from './domains';
export * from './queues';
export * from './redaction';
export * from './state';
