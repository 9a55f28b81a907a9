// Run with plain node (no vitest): proves the pool's worker entry loads through type stripping.
// Prints the result of one transcode as JSON.
import { TranscodePool } from '../../../../../appliance/compress/pool.ts';

const [inputPath, outputPath] = process.argv.slice(2);
const pool = new TranscodePool({ size: 1 });
try {
  console.log(JSON.stringify(await pool.transcode({ inputPath: inputPath!, outputPath: outputPath!, target: 'jpeg-ls' })));
} finally {
  await pool.close();
}
