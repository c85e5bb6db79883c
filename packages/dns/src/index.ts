export * from './caa';
export * from './diagnose';
export * from './resolver';
