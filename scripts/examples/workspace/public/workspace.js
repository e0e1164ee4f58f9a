// The workspace page: pick a demo session (a cookie the backend knows) and a project, follow
// the project's activity, post to it. Every decision (signed in? member? editor?) is the
// backend's, asked by freshet's route scripts; the page only shows the answers.
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var stateEl = $('state'), listEl = $('list'), errorEl = $('error');
  var stream = null;
  var project = null;

  function showError(message) {
    errorEl.textContent = message || '';
    errorEl.hidden = !message;
  }

  function setSession(sid) {
    // The cookie goes to freshet with every request; freshet hands it to the backend.
    document.cookie = 'sid=' + encodeURIComponent(sid) + '; path=/; SameSite=Strict' +
      (sid ? '' : '; max-age=0');
  }

  function add(post) {
    var li = document.createElement('li');
    var who = document.createElement('strong');
    who.textContent = post.name || post.by;
    var when = document.createElement('time');
    when.textContent = new Date(post.at).toLocaleTimeString();
    li.appendChild(who);
    li.appendChild(document.createTextNode(' ' + post.text + ' '));
    li.appendChild(when);
    listEl.appendChild(li);
    $('empty').hidden = true;
  }

  function open(sid, name) {
    if (stream) stream.close();
    setSession(sid);
    project = name;
    listEl.textContent = '';
    $('empty').hidden = false;
    $('title').textContent = name;
    $('activity').hidden = false;
    showError('');
    var s = stream = freshet.connect('/projects/' + encodeURIComponent(name) + '/activity', {
      events: ['post'],
      onEvent: function (ev) {
        if (s === stream && ev.event === 'post' && typeof ev.data === 'object') add(ev.data);
      },
      onState: function (state, info) {
        if (s !== stream) return;
        stateEl.dataset.state = state;
        stateEl.textContent = state;
        if (state === 'closed' && info.status) {
          $('activity').hidden = true;
          showError('The stream was refused (' + info.status + '): ' + info.error);
        }
      }
    });
  }

  $('open').addEventListener('submit', function (e) {
    e.preventDefault();
    open($('session').value, $('project').value);
  });

  $('post').addEventListener('submit', function (e) {
    e.preventDefault();
    var sent = $('sent');
    sent.textContent = 'sending…';
    fetch('/projects/' + encodeURIComponent(project) + '/posts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: $('text').value })
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (answer) {
        if (res.ok) {
          sent.textContent = '';
          $('text').value = '';
        } else {
          sent.textContent = 'refused (' + res.status + '): ' + (answer.error || res.statusText);
        }
      });
    }, function () { sent.textContent = 'the server did not answer'; });
  });
})();
