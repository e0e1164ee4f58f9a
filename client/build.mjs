// Writes freshet.mjs, the ES module form of freshet.js, from freshet.js itself: the same
// factory body, without the script wrapper, with the API as default and named exports.
// freshet.js stays the one source (the server serves it, CommonJS requires it); freshet.mjs is
// checked in so that `cmake --install` and the npm package need no build step.
//
//   node client/build.mjs             rewrite client/freshet.mjs
//   node client/build.mjs --check     exit 1 if client/freshet.mjs is not what freshet.js gives
//   node client/build.mjs --prepack   --check, then copy the repository's LICENSE in (npm pack)
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const source = readFileSync(join(here, 'freshet.js'), 'utf8');
const lines = source.split('\n');

// The wrapper: `(function (root, factory) {` … `})(<root>, function () {` <body> `});`
const open = lines.findIndex((l) => l.startsWith('(function (root, factory) {'));
const bodyStart = lines.findIndex((l) => /^\}\)\(.*, function \(\) \{$/.test(l));
let bodyEnd = lines.length - 1;
while (bodyEnd > 0 && lines[bodyEnd] === '') bodyEnd--;
if (open < 0 || bodyStart < open || lines[bodyEnd] !== '});')
  throw new Error('freshet.js: the script wrapper is not where build.mjs expects it');

const header = lines.slice(0, open).filter((l) => l.startsWith('//'));
const out = [
  '// Generated from freshet.js by build.mjs: edit freshet.js, then run `node client/build.mjs`.',
  ...header,
  'const freshet = (function () {',
  ...lines.slice(bodyStart + 1, bodyEnd),
  '})();',
  '',
  'export default freshet;',
  'export const { version, connect, Connection, states } = freshet;',
  '',
].join('\n');

const target = join(here, 'freshet.mjs');
if (process.argv.includes('--check') || process.argv.includes('--prepack')) {
  let current = '';
  try { current = readFileSync(target, 'utf8'); } catch (e) { /* missing: stale */ }
  if (current !== out) {
    console.error('client/freshet.mjs is stale: run `node client/build.mjs`');
    process.exit(1);
  }
  if (process.argv.includes('--prepack')) copyFileSync(join(here, '..', 'LICENSE'), join(here, 'LICENSE'));
} else {
  writeFileSync(target, out);
}
