export * from './backoff';
export * from './clock';
export * from './config';
export * from './crypto';
export * from './domains';
export * from './metrics-auth';
export * from './queues';
export * from './state';
