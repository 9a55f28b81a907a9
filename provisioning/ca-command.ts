// `mbox ca init`: create the fleet CA ahead of the first start, or import an existing one.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FileAuditLog } from '../fleet/api/audit.ts';
import { CaError, initCa } from '../fleet/pki/pki.ts';
import { CA_CERT_FILE } from '../fleet/pki/ca.ts';
import { ConfigError } from '../shared/config/load.ts';
import { fleetDataDir, parseFlags } from './args.ts';

export const CA_USAGE = `usage: mbox ca init [--data-dir <fleet dir>] [--import-cert <pem> --import-key <pem>] [--force]

  Creates the fleet CA in <fleet dir>/ca (the fleet also creates one on its first start), or
  imports an existing CA certificate and its private key. Replacing a CA (--force) invalidates
  every enrolled box and every outstanding token.`;

export async function caCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'init') throw new ConfigError(`${sub ? `unknown ca command '${sub}'` : 'missing ca command'}\n${CA_USAGE}`);
  const flags = parseFlags(rest, { values: ['data-dir', 'import-cert', 'import-key'], switches: ['force'] }, CA_USAGE);
  if (flags.positionals.length > 0) throw new ConfigError(`unexpected argument '${flags.positionals[0]}'\n${CA_USAGE}`);
  const dataDir = resolve(fleetDataDir(flags));
  const certFile = flags.values.get('import-cert');
  const keyFile = flags.values.get('import-key');
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ConfigError(`--import-cert and --import-key go together\n${CA_USAGE}`);
  const read = async (file: string, what: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read ${what} ${file}: ${(err as Error).message}`);
    }
  };
  const dir = join(dataDir, 'ca');
  let ca;
  try {
    ca = await initCa(dir, {
      ...(certFile && keyFile ? { importCertPem: await read(certFile, '--import-cert'), importKeyPem: await read(keyFile, '--import-key') } : {}),
      force: flags.switches.has('force'),
    });
  } catch (err) {
    if (err instanceof CaError) throw new ConfigError(err.message);
    throw err;
  }
  await new FileAuditLog(dataDir).record({ actor: 'cli', action: 'ca.init', outcome: 'ok', detail: { caPin: ca.pin, imported: certFile !== undefined, force: flags.switches.has('force') } });
  process.stdout.write(`fleet CA ${certFile ? 'imported' : 'created'}: ${join(dir, CA_CERT_FILE)}\nsubject: ${ca.cert.subject}\npin: ${ca.pin}\n`);
}
