// The end-to-end suite: one process, one Aforo for every module below (node --test runs each
// *.test.mjs file in its own process, so the modules are imported here rather than globbed).
import { after } from 'node:test';
import { platform } from './platform.mjs';
import './e2e/middleware.mjs';
import './e2e/outage.mjs';
import './e2e/spool.mjs';
import './e2e/rejected.mjs';
import './e2e/session.mjs';
import './e2e/entitlements.mjs';

after(async () => {
  const p = await platform().catch(() => null);
  await p?.stop();
});
