export * from './client';
export * from './errors';
export * from './migrate';
export * from './orders';
export * from './retention';
export * as schema from './schema';
export * from './schema';
export * from './transitions';
export * from './webhooks';
