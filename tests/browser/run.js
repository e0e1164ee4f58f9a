// Runs the browser tests (NN_*.test.js here, or the files named on the command line) one after
// another in one headless Chromium, and ends with "N passed, N failed".
'use strict';

const fs = require('fs');
const path = require('path');
const lib = require('./lib');

const LIMIT_MS = Number(process.env.FRESHET_BROWSER_LIMIT_MS || 150000);

async function main() {
  const names = process.argv.slice(2).length
    ? process.argv.slice(2)
    : fs.readdirSync(__dirname).filter((f) => /^\d\d_.*\.test\.js$/.test(f)).sort();
  const hard = setTimeout(() => {
    console.log('browser tests: over the ' + LIMIT_MS + ' ms limit, stopping');
    lib.cleanupAll().finally(() => process.exit(1));
  }, LIMIT_MS);
  // One browser for every test; if Chromium cannot start, that is a failure, never a skip.
  const browser = await lib.launchBrowser();
  console.log('chromium ' + browser.version() + ' (headless, ' + lib.CHROMIUM + ')');
  const ctx = { browser: browser, servers: [], pages: [] };
  const failed = [];
  let passed = 0;
  const started = Date.now();
  for (const name of names) {
    const file = path.resolve(__dirname, name);
    const t = require(file);
    const mark = lib.cleanupMark();
    ctx.servers = [];
    ctx.pages = [];
    const t0 = Date.now();
    console.log('[ RUN  ] ' + path.basename(file) + ': ' + t.title);
    let timer;
    try {
      await Promise.race([
        t.run(ctx),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('over its ' + (t.timeout || 40000) * lib.SLOW + ' ms limit')),
                             (t.timeout || 40000) * lib.SLOW);
        }),
      ]);
      await stopCleanly(ctx);
      passed++;
      console.log('[  OK  ] ' + path.basename(file) + ' (' + ((Date.now() - t0) / 1000).toFixed(1) + 's)');
    } catch (e) {
      failed.push(path.basename(file));
      console.log('[ FAIL ] ' + path.basename(file) + '\n' + indent(e && e.stack || String(e)));
      for (const s of ctx.servers) {
        console.log('    --- freshet log (port ' + s.port + '), last lines ---\n' + indent(s.tail(40), '    | '));
      }
      for (const p of ctx.pages) {
        try {
          const summary = await p.evaluate(pageSummary).catch(() => []);
          if (summary.length) console.log('    --- page ---\n' + indent(summary.join('\n'), '    | '));
          const lines = p.consoleLines.slice(-20);
          if (lines.length) console.log('    --- page console ---\n' + indent(lines.join('\n'), '    | '));
        } catch (err) { /* the page is gone */ }
      }
    } finally {
      clearTimeout(timer);
      await lib.cleanupFrom(mark);
    }
  }
  await lib.cleanupAll();
  clearTimeout(hard);
  const took = ((Date.now() - started) / 1000).toFixed(1);
  if (failed.length) console.log('browser tests failed (' + took + 's): ' + failed.join(', '));
  console.log(passed + ' passed, ' + failed.length + ' failed');
  process.exit(failed.length ? 1 : 0);
}

// What each client connection on a page went through: for failure reports.
function pageSummary() {
  const describe = (s) => {
    const i = s.info;
    const parts = [i.transport, i.reason, i.status, i.error, i.delay === undefined ? '' : i.delay + 'ms'];
    return s.state + '(' + parts.filter((x) => x !== undefined && x !== '').join(', ') + ')';
  };
  return Object.keys(window.rec || {}).map((n) => {
    const r = window.rec[n];
    const c = window.conns[n];
    return n + ': state ' + c.state + ' on ' + c.transport + ', ' + r.events.length +
      ' events, last id ' + c.lastEventId + ', gaps ' + JSON.stringify(r.gaps) +
      '\n  states: ' + r.states.slice(-10).map(describe).join(' → ');
  });
}

// Every freshet a test leaves running must exit 0 on SIGTERM (under ASan that also means no
// leak). The pages go first, so no stream is left to drain.
async function stopCleanly(ctx) {
  for (const p of ctx.pages) await p.context().close().catch(() => {});
  for (const s of ctx.servers) {
    if (!s.proc || s.proc.exitInfo) continue;
    const exit = await s.stop();
    if (exit.code !== 0) {
      throw new Error('freshet on port ' + s.port + ' exited ' + JSON.stringify(exit) + ' on SIGTERM');
    }
  }
}

function indent(text, prefix) {
  return String(text).split('\n').map((l) => (prefix || '    ') + l).join('\n');
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { lib.cleanupAll().finally(() => process.exit(1)); });
}

main().catch((e) => {
  console.log('browser tests: ' + (e && e.stack || e));
  lib.cleanupAll().finally(() => process.exit(1));
});
