// The box's certificate request. The key is made and kept on the box; only the CSR leaves it.
import type { KeyObject } from 'node:crypto';
import { toCryptoKeyPair, x509 } from '../../shared/crypto/x509.ts';

/** PKCS#10 PEM signed by `key`. The subject is a hint only: the fleet names the device. */
export async function buildCsr(key: KeyObject, subjectHint = 'CN=mbox-enrolment'): Promise<string> {
  const { keys, signAlg } = await toCryptoKeyPair(key);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: subjectHint, keys, signingAlgorithm: signAlg });
  return csr.toString('pem');
}
