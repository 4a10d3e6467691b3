// Reads vitest's JSON report (.ci/run writes it) and prints, for a failed run, the failing tests' names before
// anything else, then one closing line `tests: N passed, N failed, N skipped` that CI tooling can read.
// Plain JavaScript so the machine's own Node runs it before or without the project's Node 24.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.error(`test-summary: no readable vitest JSON report at ${file}: ${err.message}`);
  process.exit(2);
}
const failed = [];
for (const suite of report.testResults ?? []) {
  const tests = suite.assertionResults ?? [];
  for (const t of tests) if (t.status === 'failed') failed.push(`${suite.name.replace(process.cwd() + '/', '')} > ${[...(t.ancestorTitles ?? []), t.title].join(' > ')}`);
  // A file that failed to load or in a hook has no failing assertion of its own.
  if (suite.status === 'failed' && !tests.some((t) => t.status === 'failed')) failed.push(`${suite.name.replace(process.cwd() + '/', '')} (the file itself: ${String(suite.message ?? 'failed').split('\n')[0]})`);
}
if (process.argv.includes('--failures')) {
  if (failed.length > 0) {
    console.log(`FAILED (${failed.length}):`);
    for (const f of failed) console.log(`  ${f}`);
  }
} else {
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
}
