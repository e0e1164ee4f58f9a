// The ticker page: follows /prices for a watchlist with the freshet client and redraws the
// board once per animation frame with the newest price of each symbol, however many updates
// arrived in between. No other libraries.
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var stateEl = $('state'), rateEl = $('rate'), rowsEl = $('rows'), errorEl = $('error');
  var symbolsEl = $('symbols');

  var stream = null;
  var rows = {};      // symbol -> { tr, price, change, last }
  var pending = {};   // symbol -> newest quote not drawn yet
  var scheduled = false;
  var received = 0;   // updates since the last rate reading

  function showError(message) {
    errorEl.textContent = message || '';
    errorEl.hidden = !message;
  }

  function row(symbol) {
    var r = rows[symbol];
    if (r) return r;
    var tr = document.createElement('tr');
    tr.dataset.symbol = symbol;
    var th = document.createElement('th');
    th.textContent = symbol;
    var price = document.createElement('td');
    price.className = 'price';
    var change = document.createElement('td');
    change.className = 'change';
    tr.appendChild(th);
    tr.appendChild(price);
    tr.appendChild(change);
    // Keep the board in alphabetical order as symbols first appear.
    var before = null;
    for (var i = 0; i < rowsEl.children.length; i++) {
      if (rowsEl.children[i].dataset.symbol > symbol) { before = rowsEl.children[i]; break; }
    }
    rowsEl.insertBefore(tr, before);
    r = rows[symbol] = { tr: tr, price: price, change: change, last: null };
    return r;
  }

  function draw() {
    scheduled = false;
    for (var symbol in pending) {
      var q = pending[symbol];
      var r = row(symbol);
      r.price.textContent = q.price.toFixed(2);
      r.change.textContent = (q.change > 0 ? '+' : '') + q.change.toFixed(2) + ' %';
      r.tr.className = r.last === null || q.price === r.last ? '' : q.price > r.last ? 'up' : 'down';
      r.change.dataset.sign = q.change > 0 ? 'up' : q.change < 0 ? 'down' : '';
      r.last = q.price;
    }
    pending = {};
  }

  function watch(list) {
    if (stream) stream.close();
    rows = {};
    pending = {};
    rowsEl.textContent = '';
    showError('');
    var url = '/prices' + (list ? '?symbols=' + encodeURIComponent(list) : '');
    var s = stream = freshet.connect(url, {
      events: ['price'],   // named events are delivered only when asked for
      onEvent: function (ev) {
        if (s !== stream || ev.event !== 'price' || !ev.data || typeof ev.data !== 'object') return;
        received++;
        pending[ev.data.symbol] = ev.data;
        if (!scheduled) {
          scheduled = true;
          requestAnimationFrame(draw);
        }
      },
      onState: function (state, info) {
        if (s !== stream) return;
        stateEl.dataset.state = state;
        stateEl.textContent = state === 'active' && info.transport === 'poll' ? 'active (long-polling)' : state;
        if (state === 'closed' && info.status) {
          showError('The server refused the watchlist (' + info.status + '): ' + (info.error || ''));
        }
      },
      onGap: function () {
        // Prices need no history: the next update of each symbol is all the page needs.
      }
    });
  }

  setInterval(function () {
    rateEl.textContent = received + ' updates/s';
    received = 0;
  }, 1000);

  $('watch').addEventListener('submit', function (e) {
    e.preventDefault();
    var list = symbolsEl.value.replace(/\s+/g, '').toUpperCase();
    history.replaceState(null, '', list ? '?symbols=' + encodeURIComponent(list) : location.pathname);
    watch(list);
  });

  var initial = new URLSearchParams(location.search).get('symbols') || '';
  symbolsEl.value = initial;
  watch(initial);
})();
