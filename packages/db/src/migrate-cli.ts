import { migrate } from './migrate';

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('DATABASE_URL is required to migrate');
  process.exit(2);
}
await migrate(url);
console.log('migrations applied');
