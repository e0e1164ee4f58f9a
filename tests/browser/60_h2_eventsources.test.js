// Twelve EventSources in one page to one https origin: over HTTP/1.1 a browser opens at most six
// connections per origin and the seventh stream hangs; over HTTP/2 (ALPN h2, freshet's native
// TLS) they share one connection and all twelve receive every event. The certificate is
// self-signed, made here with openssl; the page's context is told to accept it.
'use strict';

const childProcess = require('child_process');
const https = require('https');
const path = require('path');
const lib = require('./lib');
const { assert } = lib;

exports.title = '12 EventSources in one page over HTTPS + HTTP/2: all 12 receive every event';
exports.timeout = 40000;

const STREAMS = 12;
const EVENTS = 5;

function publish(port, topic, data) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: lib.HOST, port: port, method: 'POST', path: '/pub/' + topic,
      rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(data);
  });
}

exports.run = async (ctx) => {
  const app = lib.writeApp({
    'app.lua': `
      local freshet = require "freshet"
      local app = freshet.app { tls = { cert = "cert.pem", key = "key.pem" }, drain = 0 }
      app:stream("/sub/:topic", "routes/sub.lua")
      app:publish("/pub/:topic", "routes/pub.lua")
      app:static("/", "public")
      return app
    `,
    'routes/sub.lua': `
      local route = {}
      function route.topics(req, who) return { req.params.topic } end
      return route
    `,
    'routes/pub.lua': `
      local route = {}
      function route.publish(req, body, who) return { topic = req.params.topic, data = body } end
      return route
    `,
    'public/many.html': `
      <!doctype html><meta charset="utf-8"><title>many</title>
      <script>
        window.got = [];
        window.opened = 0;
        for (let i = 0; i < ${STREAMS}; i++) {
          window.got.push([]);
          const es = new EventSource('/sub/news');
          es.onopen = () => { window.opened++; };
          es.onmessage = (e) => { window.got[i].push(e.data); };
        }
      </script>
    `,
  });
  childProcess.execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
    'ec_paramgen_curve:prime256v1', '-nodes', '-sha256', '-keyout', path.join(app.dir, 'key.pem'),
    '-out', path.join(app.dir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost', '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const srv = await new lib.Freshet(app.app).start();
  ctx.servers.push(srv);
  const origin = 'https://' + lib.HOST + ':' + srv.port;
  const page = await lib.openPage(ctx.browser, origin + '/many.html', { ignoreHTTPSErrors: true });
  ctx.pages.push(page);
  const proto = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  assert.strictEqual(proto, 'h2', 'the page came over HTTP/2');
  await lib.waitFor('12 EventSources to open', async () =>
    (await page.evaluate(() => window.opened)) === STREAMS, 10000);
  await lib.waitFor('12 streams at the server', async () => {
    const h = JSON.parse((await new Promise((resolve, reject) => {
      https.get({ host: lib.HOST, port: srv.port, path: '/health', rejectUnauthorized: false,
        agent: false }, (res) => {
        let b = '';
        res.on('data', (d) => { b += d; });
        res.on('end', () => resolve(b));
      }).on('error', reject);
    })));
    return h.streams === STREAMS;
  }, 10000);
  for (let i = 0; i < EVENTS; i++) {
    assert.strictEqual(await publish(srv.port, 'news', 'event ' + i), 201, 'publish ' + i);
  }
  const want = Array.from({ length: EVENTS }, (_, i) => 'event ' + i);
  await lib.waitFor('every EventSource to get every event', async () => {
    const got = await page.evaluate(() => window.got);
    return got.every((list) => list.length >= EVENTS);
  }, 10000);
  const got = await page.evaluate(() => window.got);
  for (let i = 0; i < STREAMS; i++) {
    assert.deepStrictEqual(got[i], want, 'EventSource ' + i + "'s events");
  }
};
