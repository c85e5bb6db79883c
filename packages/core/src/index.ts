export * from './backoff';
export * from './clock';
export * from './config';
export * from './crypto';
export * from './domains';
export * from './public-suffix';
export * from './queues';
export * from './state';
