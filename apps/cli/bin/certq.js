#!/usr/bin/env node
// certq ships TypeScript source like the rest of the workspace: tsx compiles it on the fly.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
