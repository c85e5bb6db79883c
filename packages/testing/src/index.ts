export * from './fixtures';
export * from './standalone';
