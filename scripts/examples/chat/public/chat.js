// The chat page: one EventSource per room for what others say, fetch() to speak.
// No libraries; runs in any browser that has EventSource and fetch.
(function () {
  'use strict';

  var NAME = /^[A-Za-z0-9_.\-]{1,32}$/;

  var $ = function (id) { return document.getElementById(id); };
  var stateEl = $('state'), logEl = $('log'), errorEl = $('error');
  var nameEl = $('name'), roomEl = $('room'), textEl = $('text');

  var source = null;   // the open EventSource, if any
  var me = '', room = '';
  var everOpen = false;

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

  // When EventSource gives up (a 4xx answer instead of a stream), it does not say why.
  // Ask again with fetch to read the server's {"error": "..."} body, then hang up.
  function explainRefusal(url) {
    var ctl = window.AbortController ? new AbortController() : null;
    fetch(url, { headers: { Accept: 'text/event-stream' }, signal: ctl && ctl.signal })
      .then(function (res) {
        if (res.ok) { if (ctl) ctl.abort(); return; }
        return res.json().catch(function () { return {}; }).then(function (body) {
          showError('The server refused the stream (' + res.status + '): ' +
                    (body.error || res.statusText));
        });
      })
      .catch(function () { showError('The server cannot be reached. Join again to retry.'); });
  }

  function join(name, roomName) {
    if (source) source.close();
    me = name;
    room = roomName;
    everOpen = false;
    logEl.textContent = '';
    showError('');
    $('title').textContent = '#' + room + ' — you are ' + me;
    $('chat').hidden = false;
    try {
      localStorage.setItem('freshet-chat', JSON.stringify({ name: me, room: room }));
    } catch (e) { /* private mode: not remembering is fine */ }

    var url = '/rooms/' + encodeURIComponent(room) + '/events?user=' + encodeURIComponent(me);
    var es = new EventSource(url);
    source = es;
    setState('connecting');

    es.onopen = function () {
      if (es !== source) return;
      if (everOpen) note('Reconnected.');
      everOpen = true;
      setState('open');
      showError('');
    };

    // The browser retries by itself (after the server's "retry:" delay) and sends
    // Last-Event-ID, so the server replays whatever was published in between.
    es.onerror = function () {
      if (es !== source) return;
      if (es.readyState === EventSource.CONNECTING) {
        setState('reconnecting', 'reconnecting…');
      } else {
        setState('closed');
        explainRefusal(url);
      }
    };

    es.addEventListener('message', function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      showMessage(msg);
    });

    // Sent instead of a replay when the last id seen is too old to replay (or the server
    // restarted and forgot it): what came in between cannot be shown.
    es.addEventListener('reset', function () {
      note('Some messages may have been missed while you were away.');
    });

    // Sent when this connection read too slowly and the server skipped events to keep up.
    es.addEventListener('dropped', function (e) {
      var n = 0;
      try { n = JSON.parse(e.data).dropped; } catch (err) { /* keep 0 */ }
      note(n === 1 ? 'One message was skipped: the connection was too slow.'
                   : (n || 'Some') + ' messages were skipped: the connection was too slow.');
    });

    textEl.focus();
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
    var button = e.target.querySelector('button');
    button.disabled = true;
    fetch('/rooms/' + encodeURIComponent(room) + '/messages', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: me, text: text })
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
