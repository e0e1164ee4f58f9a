// The chat page: the freshet client (served by the server at /_freshet/freshet.js) signs in,
// follows the room and, over WebSocket, speaks; otherwise fetch() speaks. No other libraries.
//
// /?room=lobby&name=ann joins at once; add &transport=ws to use one WebSocket both ways
// (messages are then sent over it and published by the room route's `message` hook).
(function () {
  'use strict';

  var NAME = /^[A-Za-z0-9_.\-]{1,32}$/;

  var $ = function (id) { return document.getElementById(id); };
  var stateEl = $('state'), logEl = $('log'), errorEl = $('error');
  var nameEl = $('name'), roomEl = $('room'), textEl = $('text');

  var stream = null;   // the freshet client connection, if any
  var me = '', room = '';
  var token = null;    // the JWT from POST /login, or null when signing in did not work
  var everActive = false;
  var transport = new URLSearchParams(location.search).get('transport');
  if (['auto', 'sse', 'ws', 'poll'].indexOf(transport) < 0) transport = 'auto';

  // Signs in over the demo login route (POST /login, an app:http route). Resolves with its
  // answer ({token, position, ...}), or with null when that fails: the page then joins with
  // ?user=, which the room route also takes.
  function signIn(name, roomName) {
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctl) ctl.abort(); }, 5000);
    return fetch('/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(roomName ? { name: name, room: roomName } : { name: name }),
      signal: ctl ? ctl.signal : undefined
    }).then(function (res) {
      return res.ok ? res.json() : null;
    }).catch(function () {
      return null;
    }).then(function (answer) {
      clearTimeout(timer);
      return answer && answer.token ? answer : null;
    });
  }

  // A name or room is 1..32 of [A-Za-z0-9_.-] and not dots only (the server's rule too).
  function validName(s) { return NAME.test(s) && /[^.]/.test(s); }

  function setState(state, label) {
    stateEl.dataset.state = state;
    stateEl.textContent = label || state;
  }

  function showError(message) {
    errorEl.textContent = message || '';
    errorEl.hidden = !message;
  }

  // Appends a <li>, keeping the view pinned to the bottom if the reader was there.
  function append(li) {
    var atBottom = logEl.scrollHeight - logEl.scrollTop - logEl.clientHeight < 40;
    logEl.appendChild(li);
    if (atBottom) logEl.scrollTop = logEl.scrollHeight;
  }

  function note(text) {
    var li = document.createElement('li');
    li.className = 'note';
    li.textContent = text;
    append(li);
  }

  function showMessage(msg) {
    var li = document.createElement('li');
    if (msg.user === me) li.className = 'me';
    var time = document.createElement('time');
    var at = new Date(msg.at);
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    var who = document.createElement('span');
    who.className = 'who';
    who.textContent = msg.user;
    li.appendChild(time);
    li.appendChild(who);
    li.appendChild(document.createTextNode(msg.text));
    append(li);
  }

  var LABELS = { connecting: 'connecting…', active: 'open', reconnecting: 'reconnecting…',
                 closed: 'closed' };

  function join(name, roomName) {
    if (stream) stream.close();
    stream = null;
    me = name;
    room = roomName;
    everActive = false;
    logEl.textContent = '';
    showError('');
    $('title').textContent = '#' + room + ' — you are ' + me;
    $('chat').hidden = false;
    try {
      localStorage.setItem('freshet-chat', JSON.stringify({ name: me, room: room }));
    } catch (e) { /* private mode: not remembering is fine */ }
    signIn(me, room).then(function (answer) {
      if (me !== name || room !== roomName) return;  // joined somewhere else meanwhile
      token = answer && answer.token;
      // The room's position at sign-in: the stream starts there, so nothing posted between
      // the sign-in and the stream is lost (docs/ROUTES.md, "The page-load gap").
      follow(answer && answer.position);
    });
  }

  function follow(lastId) {
    var base = '/rooms/' + encodeURIComponent(room) + '/events';
    // A function, so that every reconnection uses the current token.
    var url = function () {
      return base + (token ? '?token=' + encodeURIComponent(token) : '?user=' + encodeURIComponent(me));
    };
    // The client reconnects with backoff and sends the id of the last message it showed, so the
    // server replays whatever was published in between; where Server-Sent Events do not get
    // through (a proxy that breaks or buffers them) it falls back to long-polling.
    var s = stream = freshet.connect(url, {
      transport: transport,
      lastEventId: lastId || undefined,
      onMessage: function (msg) { if (s === stream) onReply(msg); },
      onState: function (state, info) {
        if (s !== stream) return;
        var label = LABELS[state] || state;
        if (state === 'active' && info.transport === 'poll') label = 'open (long-polling)';
        if (state === 'reconnecting' && info.delay > 0) {
          label = 'reconnecting in ' + Math.max(1, Math.round(info.delay / 1000)) + ' s…';
        }
        setState(state, label);
        if (state === 'active') {
          if (everActive) note('Reconnected.');
          everActive = true;
          showError('');
        } else if (state === 'closed' && info.status === 401 && token) {
          // The token ran out (they last 15 minutes): sign in again and carry on, from the
          // last message shown.
          var last = s.lastEventId;
          signIn(me).then(function (answer) {
            if (s !== stream) return;
            token = answer && answer.token;
            follow(last);
          });
        } else if (state === 'closed' && info.status) {
          // A refusal (bad name, …): the server's {"error": …} says why.
          showError('The server refused the stream (' + info.status + '): ' + (info.error || ''));
        }
      },
      onEvent: function (ev) {
        if (s !== stream || ev.event !== 'message' || !ev.data || typeof ev.data !== 'object') return;
        showMessage(ev.data);
      },
      onGap: function (info) {
        if (s !== stream) return;
        if (info.type === 'reset') {
          // The last id seen is too old to replay (or the server restarted and forgot it):
          // what came in between cannot be shown.
          note('Some messages may have been missed while you were away.');
        } else if (info.type === 'dropped') {
          // This connection read too slowly and the server skipped events to keep up.
          var n = info.dropped;
          note(n === 1 ? 'One message was skipped: the connection was too slow.'
                       : (n || 'Some') + ' messages were skipped: the connection was too slow.');
        }
      }
    });
    textEl.focus();
  }

  // Over WebSocket the room route's `message` hook publishes what is said and answers the
  // sender: {"type":"said"} or {"type":"error","error":…}.
  function onReply(msg) {
    if (msg.type === 'error') showError('Not sent: ' + msg.error);
    else if (msg.type === 'said') showError('');
  }

  $('join').addEventListener('submit', function (e) {
    e.preventDefault();
    var name = nameEl.value.trim(), roomName = roomEl.value.trim();
    if (!validName(name) || !validName(roomName)) {
      showError("Names and rooms are 1 to 32 letters, digits, '_', '-' or '.'.");
      return;
    }
    join(name, roomName);
  });

  $('say').addEventListener('submit', function (e) {
    e.preventDefault();
    var text = textEl.value;
    if (!room || !text.trim()) return;
    if (stream && stream.transport === 'ws' && stream.state === 'active') {
      stream.send({ type: 'say', text: text }).then(function () {
        textEl.value = '';
      }, function () {
        showError('Not sent: the connection is not open.');
      });
      return;
    }
    var button = e.target.querySelector('button');
    button.disabled = true;
    // With a token the server takes the sender from it; without one, from the body.
    var headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    fetch('/rooms/' + encodeURIComponent(room) + '/messages', {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(token ? { text: text } : { user: me, text: text })
    }).then(function (res) {
      if (res.ok) { textEl.value = ''; showError(''); return; }
      return res.json().catch(function () { return {}; }).then(function (body) {
        showError('Not sent (' + res.status + '): ' + (body.error || res.statusText));
      });
    }).catch(function () {
      showError('Not sent: the server cannot be reached.');
    }).then(function () {
      button.disabled = false;
      textEl.focus();
    });
  });

  // Fill the form from the last visit, or from the address: /?room=lobby prefills the room,
  // /?room=lobby&name=ann joins straight away (handy for sharing a room).
  try {
    var saved = JSON.parse(localStorage.getItem('freshet-chat') || '{}');
    if (saved.name) nameEl.value = saved.name;
    if (saved.room) roomEl.value = saved.room;
  } catch (e) { /* nothing saved */ }
  var params = new URLSearchParams(location.search);
  if (params.get('room')) roomEl.value = params.get('room');
  if (params.get('name')) nameEl.value = params.get('name');
  if (params.get('name') && validName(nameEl.value) && validName(roomEl.value)) {
    join(nameEl.value, roomEl.value);
  }
})();
