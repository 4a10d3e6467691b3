#!/usr/bin/env node
// Thin launcher: Node 24 strips TypeScript types natively, so the CLI runs from src/ without a build step.
// In the container image the compiled dist/ is used instead (see Dockerfile).
import { existsSync } from 'node:fs';
const dist = new URL('../dist/cli/index.js', import.meta.url);
await import(existsSync(dist) ? dist.href : new URL('../src/cli/index.ts', import.meta.url).href);
