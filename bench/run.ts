// Entry for `npm run bench`: runs every registered bench, or those named on the command line
// (`node bench/run.ts ingest --rounds 5`); options after the names go to each bench.
import { parseIngestArgs, reportIngest, runIngestBench } from './ingest.ts';

interface Bench {
  name: string;
  description: string;
  /** Runs, prints and saves its results; resolves false when some measurement failed. */
  run(argv: string[]): Promise<boolean>;
}

const BENCHES: Bench[] = [
  {
    name: 'ingest',
    description: 'C-STORE ingest via storescu into m-box vs Orthanc vs storescp (--rounds N, --concurrency N, --targets box,orthanc,storescp, --exclude PATH-PART, --manifest PATH, --work-dir DIR)',
    async run(argv) {
      const result = await runIngestBench(parseIngestArgs(argv));
      await reportIngest(result);
      return !result.failed;
    },
  },
  { name: 'compress', description: 'JPEG-LS / HTJ2K transcoding vs zstd, gzip -6 and dcmcjpls: bytes on the wire, MB/s on one core (--rounds N, --exclude PATH-PART, --all, --manifest PATH)', run: async (argv) => (await import('./compress.ts')).runCompressCli(argv) },
  {
    name: 'uplink',
    description: 'STOW-RS upload to Orthanc over a shaped veth line in a netns, needs root (--rate-mbit N, --rounds N, --cuts MS[,MS]|none, --cut-at FRACTION, --quiet-time-ms N, --syntax S, --categories a,b, --manifest PATH, --work-dir DIR)',
    async run(argv) {
      const { parseUplinkArgs, reportUplink, runUplinkBench } = await import('./uplink.ts');
      const result = await runUplinkBench(parseUplinkArgs(argv));
      await reportUplink(result);
      return !result.failed;
    },
  },
  {
    name: 'fleet',
    description: 'fleet scale: simulated boxes (MQTT over mutual TLS) heartbeating into one fleet process, embedded aedes vs mosquitto (--boxes N, --interval-ms N, --duration-s N, --settle-s N, --modes aedes,mosquitto, --sim-procs N, --connect-rate N, --max-pending N, --probes N, --cpu-prof)',
    run: async (argv) => (await import('./fleet.ts')).runFleetCli(argv),
  },
  {
    name: 'bundle',
    description: 'update bundle: stage + build the real release (node_modules and Node for the box), size = download per update, stage/build/verify/extract times, vs tar czf (--arch arm64|x64, --refs default|all, --cold, --cache-dir DIR, --work-dir DIR)',
    run: async (argv) => (await import('./bundle.ts')).runBundleCli(argv),
  },
  {
    name: 'rollout',
    description: 'staged rollout over simulated boxes (mTLS MQTT, Range downloads) into a fleet child process: rollout started → wave committed per wave, bundle and download bytes (--boxes N, --bundle-mb N, --fail-percent N[,N], --pieces N, --health-ms N, --seed N, --waves 1,10%,50%,100%)',
    run: async (argv) => (await import('./rollout.ts')).runRolloutCli(argv),
  },
];

function usage(): string {
  return ['usage: node bench/run.ts [bench...] [options]', '', ...BENCHES.map((b) => `  ${b.name.padEnd(10)} ${b.description}`)].join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage());
    return 0;
  }
  const firstOption = argv.findIndex((a) => a.startsWith('-'));
  const names = firstOption === -1 ? argv : argv.slice(0, firstOption);
  const rest = firstOption === -1 ? [] : argv.slice(firstOption);
  const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length) {
    console.error(`unknown bench: ${unknown.join(', ')}\n\n${usage()}`);
    return 2;
  }
  const selected = names.length ? BENCHES.filter((b) => names.includes(b.name)) : BENCHES;
  let ok = true;
  for (const b of selected) {
    console.error(`\n== bench: ${b.name}`);
    try {
      ok = (await b.run(rest)) && ok;
    } catch (err) {
      console.error(`bench ${b.name} failed: ${(err as Error).message}`);
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

// Turn Ctrl-C into a normal exit so the helpers' exit hook kills the peers we spawned.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
process.exitCode = await main(process.argv.slice(2));
