import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real peers (dcmtk, Orthanc) on loopback ports; keep files sequential
    // on a 2-core machine so timing-sensitive assertions are not starved.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
