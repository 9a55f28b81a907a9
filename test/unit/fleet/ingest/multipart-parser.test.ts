// The streaming multipart/related parser: exact bytes whatever the chunking, RFC 2046 framing
// (preamble, epilogue, padding), parts left unread, malformed bodies, and bounded read-ahead.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MultipartError, parseMediaType, parseMultipart, type MultipartPart } from '../../../../shared/dicomweb/multipart-parser.ts';

const B = 'b0und4ry';
const CRLF = '\r\n';

/** Source that hands out `body` in the given chunk sizes (cycled). */
async function* chunked(body: Buffer, sizes: number[] = [body.length]): AsyncGenerator<Buffer> {
  let i = 0;
  for (let off = 0; off < body.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!);
    yield body.subarray(off, off + n);
    off += n;
  }
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function collect(source: AsyncIterable<Buffer>, boundary = B): Promise<Array<{ headers: Record<string, string>; body: Buffer }>> {
  const out = [];
  for await (const part of parseMultipart(source, boundary)) out.push({ headers: part.headers, body: await readAll(part.body) });
  return out;
}

function body(parts: Array<{ headers?: string[]; data: Buffer | string }>, opts: { preamble?: string; epilogue?: string; padding?: string } = {}): Buffer {
  const pieces: Buffer[] = [Buffer.from(opts.preamble ?? '', 'latin1')];
  for (const [i, p] of parts.entries()) {
    const head = `${i === 0 && !opts.preamble ? '' : CRLF}--${B}${opts.padding ?? ''}${CRLF}${(p.headers ?? []).map((h) => h + CRLF).join('')}${CRLF}`;
    pieces.push(Buffer.from(head, 'latin1'), Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data, 'latin1'));
  }
  pieces.push(Buffer.from(`${CRLF}--${B}--${opts.epilogue ?? ''}`, 'latin1'));
  return Buffer.concat(pieces);
}

// Bytes that look like framing: CR, LF, dashes and most of the boundary.
const tricky = Buffer.concat([Buffer.from(`\r\n--${B.slice(0, -1)}\r\n\r\n--\r`, 'latin1'), Buffer.from([0, 255, 13, 10, 45, 45])]);

describe('parseMultipart', () => {
  it('yields each part with lowercased headers and exact bytes', async () => {
    const parts = await collect(chunked(body([{ headers: ['Content-Type: application/dicom', 'Content-ID: <a>'], data: tricky }, { headers: ['content-type: text/plain'], data: 'two' }])));
    expect(parts).toHaveLength(2);
    expect(parts[0]!.headers).toEqual({ 'content-type': 'application/dicom', 'content-id': '<a>' });
    expect(parts[0]!.body.equals(tricky)).toBe(true);
    expect(parts[1]!.body.toString()).toBe('two');
  });

  it('gives the same parts for every split of the body into two chunks, and for tiny chunks', async () => {
    const whole = body([{ headers: ['Content-Type: application/dicom'], data: tricky }, { data: 'x' }, { headers: ['A: b'], data: '' }], { preamble: 'pre\r\n', epilogue: '\r\nepi' });
    const expected = await collect(chunked(whole));
    expect(expected.map((p) => p.body.length)).toEqual([tricky.length, 1, 0]);
    for (let split = 1; split < whole.length; split++) {
      expect(await collect(chunked(whole, [split, whole.length])), `split at ${split}`).toEqual(expected);
    }
    for (const sizes of [[1], [2], [3], [5, 1, 7], [B.length + 3]]) expect(await collect(chunked(whole, sizes)), `chunks ${sizes}`).toEqual(expected);
  });

  it('ignores preamble and epilogue, allows whitespace after the boundary and a part without headers', async () => {
    const parts = await collect(chunked(body([{ data: 'p1' }, { headers: ['X: 1'], data: 'p2' }], { preamble: 'This is a preamble.\r\n', epilogue: '\r\nand an epilogue', padding: ' \t ' })));
    expect(parts.map((p) => p.body.toString())).toEqual(['p1', 'p2']);
    expect(parts[0]!.headers).toEqual({});
  });

  it('keeps "--boundary" followed by other text as content', async () => {
    const data = `a\r\n--${B}X not a delimiter`;
    const [part] = await collect(chunked(body([{ data }]), [4]));
    expect(part!.body.toString('latin1')).toBe(data);
  });

  it('joins folded header lines', async () => {
    const raw = Buffer.from(`--${B}\r\nContent-Type: multipart/x;\r\n  a=b\r\n\r\nz\r\n--${B}--`, 'latin1');
    const [part] = await collect(chunked(raw));
    expect(part!.headers['content-type']).toBe('multipart/x; a=b');
  });

  it('yields nothing for a body that is only a close delimiter', async () => {
    expect(await collect(chunked(Buffer.from(`--${B}--\r\n`)))).toEqual([]);
  });

  it('moves on past parts the consumer leaves unread or destroys half-way', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const src = chunked(body([{ data: big }, { data: big }, { data: 'third' }]), [65536]);
    const seen: string[] = [];
    for await (const part of parseMultipart(src, B)) {
      if (part.index === 0) continue; // never read
      if (part.index === 1) {
        for await (const _ of part.body) break; // one chunk, then destroyed by the break
        continue;
      }
      seen.push((await readAll(part.body)).toString());
    }
    expect(seen).toEqual(['third']);
  });

  it('reads the source only as fast as the part is consumed', async () => {
    let pulled = 0;
    const whole = body([{ data: Buffer.alloc(20 * 1024 * 1024, 1) }]);
    async function* counting(): AsyncGenerator<Buffer> {
      for await (const c of chunked(whole, [65536])) {
        pulled += c.length;
        yield c;
      }
    }
    for await (const part of parseMultipart(counting(), B)) {
      let consumed = 0;
      let maxAhead = 0;
      for await (const c of part.body) {
        consumed += (c as Buffer).length;
        maxAhead = Math.max(maxAhead, pulled - consumed);
        await new Promise((r) => setImmediate(r));
      }
      expect(consumed).toBe(20 * 1024 * 1024);
      expect(maxAhead).toBeLessThan(1024 * 1024);
    }
  });

  it('rejects malformed bodies with a reason', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['no boundary at all', 'just some text', /no multipart boundary/],
      ['no closing delimiter', `--${B}\r\n\r\ndata that never ends`, /before its closing boundary/],
      ['ends inside headers', `--${B}\r\nContent-Type: appl`, /inside the part headers/],
      ['header without a colon', `--${B}\r\nnot a header\r\n\r\nx\r\n--${B}--`, /malformed header line/],
      ['ends right after a boundary', `--${B}`, /right after a boundary/],
      ['endless headers', `--${B}\r\n${'X: y\r\n'.repeat(5000)}`, /headers exceed/],
    ];
    for (const [name, raw, message] of cases) {
      await expect(collect(chunked(Buffer.from(raw, 'latin1'), [7])), name).rejects.toThrow(message);
    }
    await expect(collect(chunked(Buffer.from('x')), 'bad\r\nboundary')).rejects.toBeInstanceOf(MultipartError);
  });

  it('surfaces a truncated part through its body stream too', async () => {
    const src = chunked(Buffer.from(`--${B}\r\n\r\npartial`));
    const parts: MultipartPart[] = [];
    await expect(
      (async () => {
        for await (const part of parseMultipart(src, B)) {
          parts.push(part);
          await readAll(part.body);
        }
      })(),
    ).rejects.toThrow(/closing boundary/);
    expect(parts).toHaveLength(1);
  });
});

describe('parseMediaType', () => {
  it('splits type and parameters, unquoting values', () => {
    expect(parseMediaType('Multipart/Related; type="application/dicom"; boundary=abc;start="<x;y>"')).toEqual({
      type: 'multipart/related',
      params: { type: 'application/dicom', boundary: 'abc', start: '<x;y>' },
    });
    expect(parseMediaType('application/dicom; transfer-syntax=1.2.840.10008.1.2.1')).toEqual({ type: 'application/dicom', params: { 'transfer-syntax': '1.2.840.10008.1.2.1' } });
  });
});
