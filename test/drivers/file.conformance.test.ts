/**
 * FileDriver against the shared conformance suite: writable images, and read-only ones.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { FileDriver } from '../../src/drivers/file.js';
import { blockDriverSuite } from '../conformance/index.js';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-file-conf-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const removeImage = (driver: BlockDriver): Promise<void> => rm((driver as FileDriver).path, { force: true });

blockDriverSuite({
  name: 'FileDriver',
  factory: ({ size }) => FileDriver.open(join(dir, `image-${n++}.img`), { create: true, size }),
  reopen: (closed) => FileDriver.open((closed as FileDriver).path),
  cleanup: removeImage,
});

blockDriverSuite({
  name: 'FileDriver (readOnly)',
  factory: async ({ size }) => {
    const path = join(dir, `image-${n++}.img`);
    await (await FileDriver.open(path, { create: true, size })).close();
    return FileDriver.open(path, { readOnly: true });
  },
  reopen: (closed) => FileDriver.open((closed as FileDriver).path, { readOnly: true }),
  cleanup: removeImage,
});
