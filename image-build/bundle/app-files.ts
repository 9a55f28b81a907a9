// Which of the repository's files a box needs: appliance/ and shared/ (with the CLI), the package
// files, scripts/mbox, model files, and whatever else their imports reach at run time — found by
// parsing the imports, not by a hand-kept list (the updater's bundle verifier in image-build/bundle
// ships that way). Code that (statically) needs fleet/, test/ or bench/ cannot run on a box: a
// lazily imported command that does (e.g. `mbox fleet` from shared/cli/main.ts) is left out and
// listed; an entry point that does, or a static import of a file the commit lacks, is an error.
import { posix } from 'node:path';
import { sourceTree, type SourceTree } from './source-tree.ts';

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
  /** What was left out and why (lazy imports of fleet-only commands, uncommitted changes …). */
  notes: string[];
  /** Where the files' bytes come from (HEAD of the checkout, or the directory). */
  source: SourceTree;
}

interface Edges {
  static: string[];
  dynamic: string[];
}

type TS = typeof import('typescript');
const loadTs = async (): Promise<TS> => (await import('typescript')).default;

const isExcluded = (p: string): boolean => EXCLUDED.some((d) => p.startsWith(d));

/** Relative import specifiers of one module, split into static (load-time) and dynamic ones. */
function importsOf(ts: TS, source: SourceTree, file: string): Edges {
  const src = ts.createSourceFile(file, source.read(file).toString('utf8'), ts.ScriptTarget.Latest, false);
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
  const ts = await loadTs();
  const source = await sourceTree(root, { dirs: [...SEED_DIRS, 'models/', 'provisioning/', 'image-build/'].map((d) => d.slice(0, -1)), files: SEED_FILES });
  const tracked = source.files;
  const seeds = [...tracked].filter((p) => SEED_DIRS.some((d) => p.startsWith(d)) || SEED_FILES.includes(p) || ASSETS.some((re) => re.test(p)));
  for (const f of SEED_FILES) if (!tracked.has(f)) throw new Error(`${f} is missing from ${source.commit ? `commit ${source.commit}` : root}`);

  source.prefetch([...tracked].filter((p) => MODULE_RE.test(p) && !isExcluded(p)));
  // Every module reachable by any import, parsed once; excluded files are leaves (never shipped).
  const graph = new Map<string, Edges>();
  const notes: string[] = [];
  const broken: string[] = [];
  const queue = seeds.filter((p) => MODULE_RE.test(p));
  while (queue.length) {
    const f = queue.pop()!;
    if (graph.has(f) || isExcluded(f)) continue;
    const edges = importsOf(ts, source, f);
    for (const t of edges.static) if (!tracked.has(t)) broken.push(`${f} imports ${t}`);
    for (const t of edges.dynamic) if (!tracked.has(t)) notes.push(`${f} lazily imports ${t}, which is not in the source`);
    for (const t of [...edges.static, ...edges.dynamic]) if (tracked.has(t) && !graph.has(t)) queue.push(t);
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
  // A shipped module importing a file that is not there would crash the box when it loads.
  const fatal = broken.filter((b) => shipped.has(b.split(' ')[0]!));
  if (fatal.length) throw new Error(`the release would not load: ${fatal.join('; ')} — not in ${source.commit ? `commit ${source.commit.slice(0, 12)}` : root}`);
  const dirty = source.dirty.filter((p) => shipped.has(p));
  if (dirty.length) notes.push(`uncommitted changes are not in the release (built from ${source.commit?.slice(0, 12)}): ${dirty.join(', ')}`);
  return { files: [...shipped].sort(), notes: [...new Set(notes)].sort(), source };
}

/**
 * npm packages the given modules load (import, import(), require and createRequire(...)(…)), by
 * package name: what the box's code needs from node_modules, before their own dependencies.
 */
export async function packageImports(source: SourceTree, files: readonly string[]): Promise<Set<string>> {
  const ts = await loadTs();
  const out = new Set<string>();
  const add = (spec: string): void => {
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || spec.startsWith('#')) return;
    const parts = spec.split('/');
    out.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
  };
  for (const file of files.filter((f) => MODULE_RE.test(f))) {
    const src = ts.createSourceFile(file, source.read(file).toString('utf8'), ts.ScriptTarget.Latest, false);
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
