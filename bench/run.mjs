// `npm run bench`: runs every benchmark script in this folder, one after another (they compete for
// the same two cores otherwise). Each script alternates blockgraph and its peer in rounds and
// prints median ratios. Pass names to run a subset: `npm run bench -- quorum nbd-server`.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const scripts = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs')
  .filter((f) => wanted.length === 0 || wanted.includes(f.replace(/\.mjs$/, '')))
  .sort();
let failed = 0;
for (const file of scripts) {
  console.log(`\n##### bench/${file}`);
  const r = spawnSync(process.execPath, ['--expose-gc', join(here, file)], { stdio: 'inherit', timeout: 20 * 60_000 });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${file} failed (status ${r.status}, signal ${r.signal})`);
  }
}
process.exit(failed === 0 ? 0 : 1);
