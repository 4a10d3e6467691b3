#!/usr/bin/env node
// Thin launcher. In a clone, Node ≥ 23.6 strips TypeScript types natively, so the CLI runs from src/ with no build
// step (and a stale dist/ left by `npm pack` never shadows the source). An installed package has no src/ and runs
// the compiled dist/ (built by `prepack`), which needs only Node ≥ 20; so does the container image.
import { existsSync } from 'node:fs';
const src = new URL('../src/cli/index.ts', import.meta.url);
const dist = new URL('../dist/cli/index.js', import.meta.url);
const [major, minor] = process.versions.node.split('.').map(Number);
const stripsTypes = major > 23 || (major === 23 && minor >= 6);
await import(existsSync(src) && (stripsTypes || !existsSync(dist)) ? src.href : dist.href);
