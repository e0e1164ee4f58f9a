// The chat example's own page, served by the example app: it joins a room through the client at
// /_freshet/freshet.js and shows what is posted over HTTP, and what it posts itself.
'use strict';

const fs = require('fs');
const path = require('path');
const lib = require('./lib');
const { assert } = lib;

exports.title = 'chat example page: joins, shows messages posted over HTTP and from its own form';
exports.timeout = 30000;

exports.run = async function (ctx) {
  const srv = new lib.Freshet(path.join(lib.ROOT, 'scripts', 'examples', 'chat', 'app.lua'),
                              { env: { FRESHET_BROKER: 'memory' } });
  ctx.servers.push(srv);
  await srv.start();

  // The server hands out exactly the client in the repository (embedded at build time).
  const js = await lib.request(srv.url + '/_freshet/freshet.js');
  assert.strictEqual(js.status, 200);
  assert.match(js.headers['content-type'], /javascript/);
  assert.strictEqual(js.body, fs.readFileSync(path.join(lib.ROOT, 'client', 'freshet.js'), 'utf8'),
                     'GET /_freshet/freshet.js differs from client/freshet.js: rebuild the server');

  const page = await lib.openPage(ctx.browser);
  ctx.pages.push(page);
  await page.setViewportSize({ width: 900, height: 700 });
  await page.goto(srv.url + '/?room=lobby&name=ann');
  await page.waitForSelector('#state[data-state="active"]', { timeout: 10000 * lib.SLOW });
  assert.strictEqual(await page.textContent('#title'), '#lobby — you are ann');

  const said = ['hello from the test, over HTTP', 'a second one: <b>not bold</b>', 'ünïcödé ✓'];
  for (const text of said) {
    const res = await lib.publishJSON(srv.url + '/rooms/lobby/messages', { user: 'bob', text: text });
    assert.strictEqual(res.status, 201, res.body);
  }
  await lib.waitFor('three messages on the page', async () =>
    (await page.$$('#log li:not(.note)')).length >= 3, 10000);

  // The form posts with fetch; the message comes back through the stream like any other.
  await page.fill('#text', 'and one from the page itself');
  await page.click('#say button');
  await lib.waitFor('the page\'s own message', async () =>
    (await page.$$('#log li.me')).length === 1, 10000);

  const shown = await page.$$eval('#log li:not(.note)', (lis) => lis.map((li) => ({
    who: li.querySelector('.who').textContent,
    me: li.classList.contains('me'),
    text: li.lastChild.textContent,
  })));
  assert.deepStrictEqual(shown, [
    { who: 'bob', me: false, text: said[0] },
    { who: 'bob', me: false, text: said[1] },
    { who: 'bob', me: false, text: said[2] },
    { who: 'ann', me: true, text: 'and one from the page itself' },
  ]);
  // Text stays text: the page never turns a message into markup.
  assert.strictEqual(await page.$$eval('#log b', (b) => b.length), 0);
  assert.strictEqual(await page.textContent('#state'), 'open');
  assert.strictEqual(await page.isHidden('#error'), true);

  const shot = process.env.FRESHET_BROWSER_SCREENSHOT ||
               path.join(lib.tempDir('freshet-browser-shot-'), 'chat.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 1000, 'the screenshot is empty');

  await page.context().close();
  const exit = await srv.stop();
  assert.deepStrictEqual(exit, { code: 0, signal: null }, 'freshet did not exit cleanly on SIGTERM');
};
