// The notifications page: a demo sign-in that sets the `session` cookie, the user's inbox
// followed with the freshet client, and a back-office form that posts with the admin token.
//
// The inbox survives reconnections and page reloads: the notifications shown and the id of the
// last one are kept in localStorage, and the client resumes from that id (the server replays
// what came after it).
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var stateEl = $('state'), listEl = $('list'), errorEl = $('error'), noticeEl = $('notice');

  var stream = null;
  var user = null;
  var items = [];          // notifications shown, oldest first
  var KEEP = 200;          // how many the page keeps

  function showError(message) {
    errorEl.textContent = message || '';
    errorEl.hidden = !message;
  }

  function showNotice(message) {
    noticeEl.textContent = message || '';
    noticeEl.hidden = !message;
  }

  function storageKey() { return 'freshet-inbox:' + user; }

  function save(lastEventId) {
    try {
      localStorage.setItem(storageKey(), JSON.stringify({ items: items, last: lastEventId }));
      localStorage.setItem('freshet-inbox-user', user);
    } catch (e) { /* private mode: the inbox then starts afresh after a reload */ }
  }

  function load() {
    try { return JSON.parse(localStorage.getItem(storageKey()) || '{}'); } catch (e) { return {}; }
  }

  function render() {
    listEl.textContent = '';
    for (var i = items.length - 1; i >= 0; i--) {
      var n = items[i];
      var li = document.createElement('li');
      var title = document.createElement(n.url ? 'a' : 'strong');
      title.textContent = n.title;
      if (n.url) title.href = n.url;   // the server accepts only paths and http(s) addresses
      var time = document.createElement('time');
      var at = new Date(n.at);
      time.dateTime = at.toISOString();
      time.textContent = at.toLocaleString();
      li.appendChild(title);
      li.appendChild(time);
      if (n.body) {
        var p = document.createElement('p');
        p.textContent = n.body;
        li.appendChild(p);
      }
      listEl.appendChild(li);
    }
    $('empty').hidden = items.length > 0;
  }

  // The cookie holds the JWT; the browser sends it with every request to this server.
  function setCookie(token, seconds) {
    document.cookie = 'session=' + token + '; Path=/; Max-Age=' + seconds + '; SameSite=Strict';
  }

  function clearCookie() {
    document.cookie = 'session=; Path=/; Max-Age=0; SameSite=Strict';
  }

  // The demo sign-in: a WebSocket to /login whose `message` hook answers with a token.
  function signIn(id) {
    return new Promise(function (resolve, reject) {
      var done = false;
      var s = freshet.connect('/login', {
        transport: 'ws',
        onState: function (state, info) {
          if (state === 'active') s.send({ type: 'login', id: id }).catch(function () {});
          if (state === 'closed') finish(new Error(info.error || 'the sign-in was refused'));
        },
        onMessage: function (msg) {
          if (msg.type === 'session') finish(null, msg);
          else if (msg.type === 'error') finish(new Error(msg.error));
        }
      });
      var timer = setTimeout(function () { finish(new Error('the sign-in timed out')); }, 5000);
      function finish(err, msg) {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.close();
        if (err) reject(err); else resolve(msg);
      }
    });
  }

  function open(id) {
    if (stream) stream.close();
    user = id;
    var saved = load();
    items = saved.items || [];
    render();
    showError('');
    showNotice('');
    $('who').textContent = 'Inbox of ' + user;
    $('signin').hidden = true;
    $('inbox').hidden = false;
    $('to').value = $('to').value || user;
    var s = stream = freshet.connect('/inbox', {
      lastEventId: saved.last || null,
      events: ['notification'],
      onEvent: function (ev) {
        if (s !== stream || ev.event !== 'notification' || typeof ev.data !== 'object') return;
        items.push(ev.data);
        if (items.length > KEEP) items.splice(0, items.length - KEEP);
        save(ev.id);
        render();
      },
      onGap: function (info) {
        if (s !== stream) return;
        if (info.type === 'reset') {
          // Away for longer than the server keeps notifications (an hour), or the server was
          // restarted with the in-memory broker: what came in between cannot be replayed.
          save(info.id || null);
          showNotice('You were away for a while: older notifications may be missing here.');
        }
      },
      onState: function (state, info) {
        if (s !== stream) return;
        stateEl.dataset.state = state;
        stateEl.textContent = state;
        if (state === 'closed' && info.status === 401) {
          // No cookie, or it expired: sign in again.
          signOut('Please sign in' + (info.error ? ' (' + info.error + ')' : '') + '.');
        } else if (state === 'closed' && info.status) {
          showError('The server refused the inbox (' + info.status + '): ' + (info.error || ''));
        }
      }
    });
  }

  function signOut(message) {
    if (stream) stream.close();
    stream = null;
    clearCookie();
    try { localStorage.removeItem('freshet-inbox-user'); } catch (e) { /* nothing kept */ }
    $('inbox').hidden = true;
    $('signin').hidden = false;
    stateEl.dataset.state = 'idle';
    stateEl.textContent = 'signed out';
    showError(message || '');
  }

  $('signin').addEventListener('submit', function (e) {
    e.preventDefault();
    var id = $('user').value.trim();
    signIn(id).then(function (msg) {
      setCookie(msg.token, msg.expires_in);
      open(msg.id);
    }, function (err) {
      showError('Not signed in: ' + err.message);
    });
  });

  $('signout').addEventListener('click', function () { signOut(''); });

  $('send').addEventListener('submit', function (e) {
    e.preventDefault();
    var sent = $('sent');
    sent.textContent = 'sending…';
    var body = { title: $('title').value };
    if ($('body').value) body.body = $('body').value;
    fetch('/users/' + encodeURIComponent($('to').value.trim()) + '/notifications', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + $('token').value },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (answer) {
        sent.textContent = res.ok ? 'sent' : 'not sent (' + res.status + '): ' + (answer.error || res.statusText);
      });
    }, function () {
      sent.textContent = 'not sent: the server cannot be reached';
    });
  });

  // Back from an earlier visit with the cookie still set: straight to the inbox.
  var known = null;
  try { known = localStorage.getItem('freshet-inbox-user'); } catch (e) { /* none */ }
  if (known && /(^|;\s*)session=/.test(document.cookie)) open(known);
})();
