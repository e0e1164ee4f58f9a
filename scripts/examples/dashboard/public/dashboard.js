// The dashboard page: follows /dashboard/events with the freshet client. A free viewer gets
// `public` events, a pro viewer `full` ones; the page shows whatever arrives. The demo
// "pro token" comes from /login (a WebSocket whose `message` hook replies with a JWT) and goes
// into the stream's URL, since EventSource cannot set headers.
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var node = params.get('node');
  var token = null;
  var stream = null;
  var history = [];  // delivered / s, the last 60 snapshots

  function showError(message) {
    $('error').textContent = message || '';
    $('error').hidden = !message;
  }

  function set(id, value) { $(id).textContent = value === undefined || value === null ? '–' : value; }

  function bytes(n) { return (n / 1048576).toFixed(1) + ' MiB'; }

  function duration(s) {
    s = Math.floor(s);
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    return (h ? h + ' h ' : '') + (h || m ? m + ' min ' : '') + (s % 60) + ' s';
  }

  function byPriority(t) { return t.critical + ' critical, ' + t.normal + ' normal, ' + t.telemetry + ' telemetry'; }

  function spark(values) {
    var max = Math.max.apply(null, values.concat([1]));
    var step = 120 / 59;
    $('line').setAttribute('points', values.map(function (v, i) {
      return (i * step).toFixed(1) + ',' + (30 - v / max * 28).toFixed(1);
    }).join(' '));
  }

  function show(ev) {
    var d = ev.data;
    set('connections', d.connections);
    set('streams', d.streams);
    var pro = ev.event === 'full';
    $('pro').hidden = !pro;
    $('teaser').hidden = pro;
    $('plan').textContent = pro ? 'pro' : 'free';
    if (!pro) return;
    set('published-rate', d.rates.published);
    set('delivered-rate', d.rates.delivered);
    set('dropped-rate', d.rates.dropped);
    set('topics', d.topics);
    set('rss', bytes(d.rss));
    set('uptime', duration(d.uptime));
    set('published', byPriority(d.published));
    set('dropped', byPriority(d.dropped));
    set('conflated', d.conflated);
    set('resumes', d.replayed + ' / ' + d.resumes + ' / ' + d.resets);
    set('rate_limited', d.rate_limited);
    set('lua_errors', d.lua_errors);
    set('reloads', d.reloads);
    set('broker', d.broker);
    if (typeof d.rates.delivered === 'number') {
      history.push(d.rates.delivered);
      if (history.length > 60) history.shift();
      spark(history);
    }
  }

  function url() {
    var q = [];
    if (token) q.push('token=' + encodeURIComponent(token));
    if (node) q.push('node=' + encodeURIComponent(node));
    return '/dashboard/events' + (q.length ? '?' + q.join('&') : '');
  }

  function connect() {
    if (stream) stream.close();
    history = [];
    showError('');
    var s = stream = freshet.connect(url, {
      events: ['public', 'full'],
      onEvent: function (ev) {
        if (s === stream && ev.data && typeof ev.data === 'object') show(ev);
      },
      onState: function (state, info) {
        if (s !== stream) return;
        $('state').dataset.state = state;
        $('state').textContent = state;
        if (state === 'closed' && info.status) {
          showError('The server refused the dashboard (' + info.status + '): ' + (info.error || ''));
        }
      }
    });
  }

  // The demo sign-in: /login answers a `login` message with a token for the plan asked for.
  function signIn(plan) {
    return new Promise(function (resolve, reject) {
      var done = false;
      var s = freshet.connect('/login', {
        transport: 'ws',
        onState: function (state, info) {
          if (state === 'active') s.send({ type: 'login', name: 'viewer', plan: plan }).catch(function () {});
          if (state === 'closed') finish(new Error(info.error || 'refused'));
        },
        onMessage: function (msg) {
          if (msg.type === 'token') finish(null, msg.token);
          else if (msg.type === 'error') finish(new Error(msg.error));
        }
      });
      var timer = setTimeout(function () { finish(new Error('timed out')); }, 5000);
      function finish(err, t) {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.close();
        if (err) reject(err); else resolve(t);
      }
    });
  }

  $('upgrade').addEventListener('click', function () {
    signIn('pro').then(function (t) {
      token = t;
      $('upgrade').hidden = true;
      $('downgrade').hidden = false;
      connect();
    }, function (err) { showError('No pro token: ' + err.message); });
  });

  $('downgrade').addEventListener('click', function () {
    token = null;
    $('upgrade').hidden = false;
    $('downgrade').hidden = true;
    connect();
  });

  connect();
})();
