// Which of the repository's files a box needs: appliance/ and shared/ (with the CLI), the package
// files, scripts/mbox, model files, and whatever else their imports reach at run time — found by
// parsing the imports, not by a hand-kept list (the updater's bundle verifier in image-build/bundle
// ships that way). Code that (statically) needs fleet/, test/ or bench/ cannot run on a box: a
// lazily imported command that does (e.g. `mbox fleet` from shared/cli/main.ts) is left out and
// listed; an entry point that does is an error.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, posix } from 'node:path';

const SEED_DIRS = ['appliance/', 'shared/'];
const SEED_FILES = ['package.json', 'package-lock.json', 'scripts/mbox'];
/** Files shipped for what they are, not for an import (models are opened by path). */
const ASSETS = [/^models\/.+\.onnx$/];
const EXCLUDED = ['fleet/', 'test/', 'bench/'];
/** What the box runs: `mbox appliance` through the CLI. These must not need excluded code. */
const ENTRY_POINTS = ['shared/cli/main.ts', 'appliance/appliance.ts'];
const MODULE_RE = /\.(?:ts|mts|js|mjs|cjs)$/;

export interface AppFiles {
  /** Repository-relative paths, sorted. */
  files: string[];
  /** What was left out and why (lazy imports of fleet-only commands …). */
  notes: string[];
}

interface Edges {
  static: string[];
  dynamic: string[];
}

async function trackedFiles(root: string): Promise<string[]> {
  try {
    const out = execFileSync('git', ['ls-files', '-z', '--cached'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    // A tracked file deleted in the working tree is not part of what we ship.
    return out.split('\0').filter((p) => p && existsSync(join(root, p)) && statSync(join(root, p)).isFile());
  } catch {
    // Not a git checkout (a source tarball): every file under the seed directories and models/.
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
        const p = `${rel}/${e.name}`;
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) out.push(p);
      }
    };
    for (const d of [...SEED_DIRS, 'models/', 'provisioning/']) if (existsSync(join(root, d))) await walk(d.slice(0, -1));
    return [...out, ...SEED_FILES.filter((f) => existsSync(join(root, f)))];
  }
}

const isExcluded = (p: string): boolean => EXCLUDED.some((d) => p.startsWith(d));

/** Relative import specifiers of one module, split into static (load-time) and dynamic ones. */
async function importsOf(root: string, file: string): Promise<Edges> {
  const ts = (await import('typescript')).default;
  const src = ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, false);
  const edges: Edges = { static: [], dynamic: [] };
  const add = (list: string[], spec: string): void => {
    if (!spec.startsWith('./') && !spec.startsWith('../')) return; // packages and node: builtins
    list.push(posix.normalize(posix.join(posix.dirname(file), spec)));
  };
  const visit = (node: import('typescript').Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      // `import type` is erased; `import { type X }` is kept as a bare import (verbatimModuleSyntax).
      if (!node.importClause?.isTypeOnly) add(edges.static, node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.isTypeOnly) add(edges.static, node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg && ts.isStringLiteralLike(arg)) add(edges.dynamic, arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return edges;
}

export async function appFiles(root: string): Promise<AppFiles> {
  const tracked = new Set(await trackedFiles(root));
  const seeds = [...tracked].filter((p) => SEED_DIRS.some((d) => p.startsWith(d)) || SEED_FILES.includes(p) || ASSETS.some((re) => re.test(p)));
  for (const f of SEED_FILES) if (!tracked.has(f)) throw new Error(`${f} is missing from ${root}`);

  // Every module reachable by any import, parsed once; excluded files are leaves (never shipped).
  const graph = new Map<string, Edges>();
  const notes: string[] = [];
  const queue = seeds.filter((p) => MODULE_RE.test(p));
  while (queue.length) {
    const f = queue.pop()!;
    if (graph.has(f) || isExcluded(f)) continue;
    const edges = await importsOf(root, f);
    for (const t of [...edges.static, ...edges.dynamic]) {
      if (!tracked.has(t)) notes.push(`${f} imports ${t}, which is not a tracked file`);
      else if (!graph.has(t)) queue.push(t);
    }
    graph.set(f, { static: edges.static.filter((t) => tracked.has(t)), dynamic: edges.dynamic.filter((t) => tracked.has(t)) });
  }

  // Tainted: needs excluded code when loaded, i.e. reaches it through static imports.
  const importers = new Map<string, string[]>();
  for (const [f, e] of graph) for (const t of e.static) importers.set(t, [...(importers.get(t) ?? []), f]);
  const tainted = new Set<string>();
  const work = [...new Set([...graph.values()].flatMap((e) => e.static).filter(isExcluded))];
  while (work.length) {
    const t = work.pop()!;
    if (tainted.has(t)) continue;
    tainted.add(t);
    work.push(...(importers.get(t) ?? []));
  }
  for (const e of ENTRY_POINTS) {
    if (tainted.has(e)) throw new Error(`${e} statically imports code that is not shipped to the box (${EXCLUDED.join(', ')}): the box could not start`);
  }

  const shipped = new Set<string>();
  const pending = seeds.filter((p) => {
    if (!tainted.has(p)) return true;
    notes.push(`${p} left out: it statically imports code that is not shipped to the box`);
    return false;
  });
  while (pending.length) {
    const f = pending.pop()!;
    if (shipped.has(f)) continue;
    shipped.add(f);
    const e = graph.get(f);
    if (!e) continue;
    for (const t of e.static) pending.push(t); // untainted, since f is
    for (const t of e.dynamic) {
      if (isExcluded(t) || tainted.has(t)) notes.push(`${t} (lazily imported by ${f}) left out: it needs code that is not shipped to the box`);
      else pending.push(t);
    }
  }
  return { files: [...shipped].sort(), notes: [...new Set(notes)].sort() };
}

/**
 * npm packages the given modules load (import, import(), require and createRequire(...)(…)), by
 * package name: what the box's code needs from node_modules, before their own dependencies.
 */
export async function packageImports(root: string, files: readonly string[]): Promise<Set<string>> {
  const ts = (await import('typescript')).default;
  const out = new Set<string>();
  const add = (spec: string): void => {
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || spec.startsWith('#')) return;
    const parts = spec.split('/');
    out.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
  };
  for (const file of files.filter((f) => MODULE_RE.test(f))) {
    const src = ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, false);
    const visit = (node: import('typescript').Node): void => {
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        const typeOnly = ts.isImportDeclaration(node) ? node.importClause?.isTypeOnly : node.isTypeOnly;
        if (!typeOnly) add(node.moduleSpecifier.text);
      } else if (ts.isCallExpression(node) && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) {
        const callee = node.expression;
        if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require') || ts.isCallExpression(callee)) add(node.arguments[0].text);
      }
      ts.forEachChild(node, visit);
    };
    visit(src);
  }
  return out;
}

/** Files whose exec bit is set in the working tree (scripts/mbox). */
export function isExecutable(root: string, file: string): boolean {
  return (statSync(join(root, file)).mode & 0o111) !== 0;
}
