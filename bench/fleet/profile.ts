// Reads the fleet's V8 CPU profiles (node --cpu-prof, one per mode) and sums self time by function
// and by package, so the report can name the hot spots with numbers. Idle time is left out.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  mode: string;
  file: string;
  /** Sampled non-idle time, seconds. */
  totalS: number;
  top: Array<{ name: string; where: string; selfS: number; pct: number }>;
  byPackage: Array<{ name: string; selfS: number; pct: number }>;
}

/** node_modules/<pkg>, the project folder (fleet/broker, shared/…), node:internal, or V8's own entries. */
function packageOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return 'node:' + (url.split('/')[1] ?? url.slice(5));
  const own = /\/(fleet|shared|appliance)\/([^/]+)/.exec(url);
  if (own) return `${own[1]}/${own[2]!.replace(/\.ts$/, '')}`;
  return url.replace(/^file:\/\//, '');
}

function whereOf(url: string, line: number): string {
  if (!url) return '';
  const short = url.replace(/^file:\/\/.*?\/(node_modules\/|fleet\/|shared\/)/, '$1');
  return `${short}:${line + 1}`;
}

export function summariseProfile(mode: string, file: string, p: CpuProfile, topN = 20): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const pkg = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)?.callFrame;
    if (!cf || cf.functionName === '(idle)') continue;
    total += us;
    const name = cf.functionName || '(anonymous)';
    const where = whereOf(cf.url, cf.lineNumber);
    const key = `${name}@${where}`;
    const e = fn.get(key) ?? { name, where, us: 0 };
    e.us += us;
    fn.set(key, e);
    const pk = packageOf(cf.url, name);
    pkg.set(pk, (pkg.get(pk) ?? 0) + us);
  }
  const pct = (us: number): number => (total ? (us / total) * 100 : 0);
  return {
    mode,
    file,
    totalS: total / 1e6,
    top: [...fn.values()].sort((a, b) => b.us - a.us).slice(0, topN).map((e) => ({ name: e.name, where: e.where, selfS: e.us / 1e6, pct: pct(e.us) })),
    byPackage: [...pkg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([name, us]) => ({ name, selfS: us / 1e6, pct: pct(us) })),
  };
}

/** One summary per mode from <dir>/<mode>/*.cpuprofile (the newest file when there are several). */
export async function summariseProfiles(dir: string, modes: string[]): Promise<ProfileSummary[]> {
  const out: ProfileSummary[] = [];
  for (const mode of modes) {
    let files: string[];
    try {
      files = (await readdir(join(dir, mode))).filter((f) => f.endsWith('.cpuprofile')).sort();
    } catch {
      continue;
    }
    const file = files.at(-1);
    if (!file) continue;
    const profile = JSON.parse(await readFile(join(dir, mode, file), 'utf8')) as CpuProfile;
    out.push(summariseProfile(mode, join(dir, mode, file), profile));
  }
  return out;
}
