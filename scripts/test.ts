// `npm test`: installs the real peers the tests need (Debian packages, as root), assembles the real
// test data, typechecks (strict TypeScript is a gate, not a hope), then runs the whole vitest suite
// and prints a one-line tally. Arguments after `npm test --` go to vitest (and skip the typecheck).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const step = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`npm test: '${cmd} ${args.join(' ')}' failed (exit ${r.status})\n`);
    process.exit(r.status ?? 1);
  }
};

step('bash', ['scripts/install-peers.sh']);
step('bash', ['scripts/fetch-data.sh']);
if (process.argv.length <= 2) {
  step(process.execPath, ['node_modules/typescript/bin/tsc', '--noEmit', '-p', '.']);
  step(process.execPath, ['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'fleet/web']);
}

const report = resolve(root, '.data/vitest-report.json');
rmSync(report, { force: true });
const vitest = spawnSync(
  process.execPath,
  ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit' },
);
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number };
  process.stdout.write(`\ntests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped\n`);
}
process.exit(vitest.status ?? 1);
