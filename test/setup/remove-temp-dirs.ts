// Runs in every test file before its own hooks: the afterAll registered here runs after the file's own (hooks
// unwind as a stack), once its servers are stopped, and removes every dir tempDir() made for the file.
import { afterAll } from 'vitest';
import { removeTempDirs } from '../fixtures/temp-dirs.ts';

afterAll(removeTempDirs);
