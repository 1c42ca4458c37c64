// Runs every example in this folder (CI does this against the built package).
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const examples = readdirSync(here).filter((f) => f.endsWith('.mjs') && f !== 'run-all.mjs').sort();
let failed = 0;
for (const file of examples) {
  console.log(`\n=== examples/${file}`);
  const r = spawnSync(process.execPath, [join(here, file)], { stdio: 'inherit', timeout: 120_000 });
  if (r.status !== 0) {
    failed++;
    console.error(`examples/${file} failed (status ${r.status}, signal ${r.signal})`);
  }
}
console.log(`\n${examples.length - failed} examples passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
