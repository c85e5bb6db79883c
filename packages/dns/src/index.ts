export * from './caa';
export * from './diagnose';
export * from './policy';
export * from './resolver';
