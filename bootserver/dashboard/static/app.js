// Moobi dashboard: plain JavaScript, no framework, no build step.
//
// The node list comes from GET /v1/nodes (when the page loads, after each
// reconnection and every minute), every change from the server-sent events
// of /v1/stream ("node": one node, "swarm": every image's swarm, "nodes":
// the MACs listed after a reload, "hello": the appliance's clock, "power":
// each BMC host's power reading, "rollouts": GET /v1/rollouts's JSON). A
// node's detail, with its event log, comes from GET /v1/nodes/{mac}; the
// rollouts also from GET /v1/rollouts, when the nodes are loaded
// (rollouts.js draws them).
//
// Data from the appliance reaches the page only through textContent and
// setAttribute, never as HTML.
'use strict';

(() => {
  // The header lists the states furthest along first, failures last.
  const COUNT_ORDER = ['running', 'degraded', 'verified', 'fetching', 'kernel', 'firmware', 'dhcp', 'unknown', 'failed'];
  // States a node stays in: their open phase is time spent, not a step.
  const RESTING = new Set(['running', 'degraded', 'failed', 'unknown']);

  const $ = (id) => document.getElementById(id);

  const nodes = new Map(); // MAC → node, as in /v1/nodes
  const tiles = new Map(); // MAC → the elements of its tile
  let skew = 0; // the appliance's clock minus ours, in ms
  let selected = ''; // MAC of the node in the detail panel
  let detail = null; // that node, with its events once loaded
  let lastSwarm = '';
  let flushQueued = false;
  let reorder = false;

  // el builds an element; attributes are set with setAttribute and children
  // that are strings become text nodes.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      e.append(typeof k === 'object' ? k : String(k));
    }
    return e;
  }

  // ---- formatting

  const now = () => Date.now() + skew;

  // parseTime reads an RFC 3339 time from Go (nanoseconds trimmed to ms).
  function parseTime(s) {
    if (typeof s !== 'string' || s === '') return null;
    const t = Date.parse(s.replace(/(\.\d{3})\d+/, '$1'));
    return Number.isNaN(t) ? null : t;
  }

  function bytes(n) {
    n = Number(n) || 0;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    // A no-break space: a size is never split over two lines.
    return (i === 0 ? String(n) : n.toFixed(n < 100 ? 1 : 0)) + '\u00a0' + units[i];
  }

  // bytesOf says "1.5 of 4.0 MiB" (or "512 KiB of 4.0 MiB").
  function bytesOf(done, total) {
    const a = bytes(done), b = bytes(total);
    const unit = (x) => x.slice(x.indexOf('\u00a0'));
    return (unit(a) === unit(b) ? a.slice(0, a.indexOf('\u00a0')) : a) + ' of ' + b;
  }

  function duration(s) {
    s = Math.max(0, Number(s) || 0);
    if (s < 0.1) return '< 0.1 s';
    if (s < 10) return s.toFixed(1) + ' s';
    if (s < 60) return Math.floor(s) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.floor(s % 60) + ' s';
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function ago(t) {
    const s = Math.max(0, (now() - t) / 1000);
    if (s < 60) return Math.floor(s) + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 172800) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });
  const stamp = (t) => new Date(t).toLocaleString([], { hour12: false });
  const plural = (n, word) => n + ' ' + word + (n === 1 ? '' : 's');
  const percent = (part, whole) => (whole > 0 ? Math.min(100, Math.max(0, (part * 100) / whole)) : 0);

  // agoSpan is text that says how long ago t was, refreshed every second.
  function agoSpan(t, prefix) {
    const e = el('span', { class: 'ago', 'data-t': t, 'data-prefix': prefix || '' });
    e.textContent = (prefix || '') + ago(t);
    return e;
  }

  const macPath = (mac) => '/v1/nodes/' + encodeURIComponent(mac).replace(/%3A/gi, ':');

  // ---- the rack

  function makeTile(mac) {
    const t = {
      root: el('button', { type: 'button', class: 'tile', 'data-mac': mac, 'aria-pressed': 'false' }),
      name: el('span', { class: 'tile-name' }),
      state: el('span', { class: 'badge tile-state' }),
      addr: el('span', { class: 'tile-line mono' }),
      power: el('span', { class: 'tile-power' }),
      image: el('span', { class: 'tile-line tile-image' }),
      reason: el('span', { class: 'tile-reason' }),
      meter: el('span', { class: 'meter', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }),
      fill: el('span', { class: 'meter-fill' }),
      progress: el('span', { class: 'tile-progress' }),
      age: el('span', { class: 'tile-age' }),
    };
    t.meter.append(t.fill);
    t.root.append(el('span', { class: 'tile-head' }, t.name, t.state), t.addr, t.power, t.image, t.reason, t.meter, t.progress, t.age);
    t.root.addEventListener('click', () => (selected === mac ? closeDetail() : select(mac)));
    return t;
  }

  function updateTile(t, n) {
    t.root.setAttribute('data-state', n.state);
    t.root.title = n.mac;
    t.name.textContent = n.name || n.mac;
    t.state.textContent = n.state;
    t.addr.textContent = n.address || 'no address yet';
    renderPower(t.power, n.power);
    t.image.textContent = n.image ? n.image + ' ' + (n.version || '') : '';
    t.image.hidden = !n.image;
    const why = n.state === 'failed' || n.state === 'degraded';
    t.reason.textContent = why ? n.reason || 'no reason given' : '';
    t.reason.hidden = !why;
    const fetching = n.state === 'fetching' && n.total > 0;
    t.meter.hidden = t.progress.hidden = !fetching;
    if (fetching) {
      const pct = Math.floor(percent(n.done, n.total));
      t.meter.setAttribute('aria-valuenow', pct);
      t.fill.style.width = pct + '%';
      t.progress.textContent = pct + '% · ' + bytesOf(n.done, n.total);
    }
    const updated = parseTime(n.updated);
    if (updated === null) {
      t.age.removeAttribute('data-t');
      t.age.classList.remove('ago');
      t.age.textContent = 'not seen yet';
    } else {
      t.age.classList.add('ago');
      t.age.setAttribute('data-t', updated);
      t.age.setAttribute('data-prefix', 'updated ');
      t.age.textContent = 'updated ' + ago(updated);
      t.age.title = stamp(updated);
    }
  }

  // powerFailing reports whether a power reading's last BMC read failed.
  function powerFailing(p) {
    const err = parseTime(p.error_time), checked = parseTime(p.checked);
    return !!p.error && err !== null && (checked === null || err >= checked);
  }

  // renderPower shows a BMC host's power reading in e ("power on", "power
  // unknown (unreachable)"); e is hidden for a host without a BMC.
  function renderPower(e, p) {
    e.hidden = !p;
    if (!p) {
      e.removeAttribute('data-power');
      return;
    }
    e.setAttribute('data-power', p.state);
    e.textContent = 'power ' + p.state + (powerFailing(p) ? ' (' + p.error + ')' : '');
    const checked = parseTime(p.checked);
    e.title = checked !== null ? 'read from the BMC at ' + stamp(checked) : 'the BMC has not answered yet';
  }

  // applyPower takes a "power" event: each BMC host's reading by name.
  function applyPower(readings) {
    if (!readings || typeof readings !== 'object') return;
    for (const n of nodes.values()) {
      const p = n.name ? readings[n.name] : undefined;
      n.power = p && typeof p.state === 'string' ? p : undefined;
      const t = tiles.get(n.mac);
      if (t) renderPower(t.power, n.power);
      if (detail && detail.mac === n.mac) {
        detail.power = n.power;
        renderDetail();
      }
    }
  }

  function applyNode(n) {
    if (!n || typeof n.mac !== 'string' || n.mac === '') return;
    if (typeof n.state !== 'string' || n.state === '') n.state = 'unknown';
    const old = nodes.get(n.mac);
    if (old && (n.seq || 0) < (old.seq || 0)) return; // an older copy
    nodes.set(n.mac, n);
    let t = tiles.get(n.mac);
    if (!t) {
      t = makeTile(n.mac);
      tiles.set(n.mac, t);
      reorder = true;
    } else if (old.name !== n.name) {
      reorder = true;
    }
    updateTile(t, n);
    if (n.mac === selected) {
      // Show the new state now; the event log follows.
      detail = Object.assign({}, n, { events: detail && detail.mac === n.mac ? detail.events : null });
      renderDetail();
      loadDetailSoon();
    }
    queueFlush();
  }

  function removeNode(mac) {
    nodes.delete(mac);
    const t = tiles.get(mac);
    if (t) t.root.remove();
    tiles.delete(mac);
    queueFlush();
  }

  function queueFlush() {
    if (flushQueued) return;
    flushQueued = true;
    setTimeout(flush, 0);
  }

  // flush redraws what depends on every node: the order of the tiles and the
  // counts. Bursts of updates (the first event of the stream carries every
  // node) cost one pass.
  function flush() {
    flushQueued = false;
    if (reorder) {
      reorder = false;
      const order = [...nodes.values()].sort((a, b) => {
        const an = a.name || '', bn = b.name || '';
        if (an !== bn) return an < bn ? -1 : 1;
        return a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0;
      });
      $('rack').append(...order.map((n) => tiles.get(n.mac).root));
    }
    $('rack-empty').hidden = nodes.size > 0;
    renderCounts();
  }

  function renderCounts() {
    const c = {};
    for (const n of nodes.values()) c[n.state] = (c[n.state] || 0) + 1;
    const states = COUNT_ORDER.concat(Object.keys(c).filter((s) => !COUNT_ORDER.includes(s)).sort());
    const parts = [];
    for (const s of states) {
      if (!c[s]) continue;
      if (parts.length) parts.push(' · ');
      parts.push(el('span', { class: 'count', 'data-state': s }, el('span', { class: 'dot', 'aria-hidden': 'true' }), c[s] + ' ' + s));
    }
    if (!parts.length) parts.push('No nodes');
    $('counts').replaceChildren(...parts);
    document.title = (c.failed ? '(' + c.failed + ' failed) ' : '') + 'Moobi';
  }

  // ---- the detail panel

  function select(mac) {
    if (selected && tiles.get(selected)) tiles.get(selected).root.setAttribute('aria-pressed', 'false');
    selected = mac;
    if (tiles.get(mac)) tiles.get(mac).root.setAttribute('aria-pressed', 'true');
    const n = nodes.get(mac);
    detail = Object.assign({ mac: mac, state: 'unknown' }, n || {}, { events: null });
    $('detail-status').hidden = true;
    $('detail').hidden = false;
    $('main').classList.add('with-detail');
    history.replaceState(null, '', '#' + encodeURIComponent(mac));
    renderDetail();
    loadDetail();
    if (window.matchMedia('(max-width: 899px)').matches) $('detail').scrollIntoView({ block: 'start' });
  }

  function closeDetail() {
    if (!selected) return;
    const t = tiles.get(selected);
    selected = '';
    detail = null;
    $('detail').hidden = true;
    $('main').classList.remove('with-detail');
    history.replaceState(null, '', location.pathname + location.search);
    if (t) {
      t.root.setAttribute('aria-pressed', 'false');
      t.root.focus();
    }
  }

  let detailBusy = false;
  let detailAgain = false;
  let detailTimer = 0;

  function loadDetailSoon() {
    clearTimeout(detailTimer);
    detailTimer = setTimeout(loadDetail, 250);
  }

  async function loadDetail() {
    if (!selected) return;
    if (detailBusy) {
      detailAgain = true;
      return;
    }
    detailBusy = true;
    const mac = selected;
    try {
      const r = await fetch(macPath(mac), { cache: 'no-store' });
      if (!r.ok) throw new Error(r.status === 404 ? 'the appliance does not know this node' : 'HTTP ' + r.status);
      const n = await r.json();
      if (mac === selected && n && n.mac === mac) {
        if (!detail || (n.seq || 0) >= (detail.seq || 0)) detail = n;
        else detail.events = n.events || [];
        if (!detail.events) detail.events = [];
        $('detail-status').hidden = true;
        renderDetail();
      }
    } catch (e) {
      if (mac === selected) {
        $('detail-status').textContent = 'Could not load the node: ' + e.message;
        $('detail-status').hidden = false;
      }
    } finally {
      detailBusy = false;
      if (detailAgain) {
        detailAgain = false;
        loadDetail();
      }
    }
  }

  function renderDetail() {
    const n = detail;
    if (!n) return;
    $('detail').setAttribute('data-node', n.mac);
    $('detail-name').textContent = n.name || n.mac;
    $('detail-state').textContent = n.state;
    $('detail-state').setAttribute('data-state', n.state);
    $('detail-mac').textContent = n.mac;

    const failed = n.state === 'failed';
    const err = failed ? n.reason || 'no reason given' : n.last_error || '';
    const errTime = parseTime(n.last_error_time);
    $('detail-error').hidden = !err;
    $('detail-error-label').textContent = failed ? 'Failed:' : 'Last error:';
    $('detail-reason').textContent = err;
    $('detail-error-time').replaceChildren(errTime !== null && (!failed || n.last_error === n.reason) ? agoSpan(errTime, ' · ') : '');

    const facts = [];
    const fact = (k, ...v) => facts.push(el('dt', null, k), el('dd', null, ...v));
    fact('Address', n.address || '—');
    if (n.power) {
      const p = el('span', { class: 'tile-power' });
      renderPower(p, n.power);
      fact('Power', p);
    }
    fact('Image', n.image ? n.image + ' ' + (n.version || '') : '—');
    fact('Last event', n.last_event || '—');
    const updated = parseTime(n.updated);
    fact('Updated', updated !== null ? agoSpan(updated) : 'never');
    const started = parseTime(n.boot_started);
    fact('Boot', started !== null ? el('span', null, '#' + (n.boots || 1) + ', started ', agoSpan(started)) : '—');
    $('detail-facts').replaceChildren(...facts);

    renderDownload(n);
    renderTimeline(n);
    renderEvents(n);
  }

  function renderDownload(n) {
    const box = $('detail-download');
    if (!(n.total > 0)) {
      box.replaceChildren(el('p', { class: 'sub' }, n.image ? 'No download figures reported yet.' : 'Nothing downloaded in this boot.'));
      return;
    }
    const parts = [
      ['reused', 'reused from cache', n.reused || 0],
      ['peers', 'from peers', n.from_peers || 0],
      ['app', 'from the appliance', n.from_appliance || 0],
      ['webseed', 'from web seed', n.from_webseed || 0],
    ];
    const known = parts.reduce((sum, p) => sum + p[2], 0);
    const other = Math.max(0, (n.done || 0) - known);
    const bar = el('div', { class: 'stack', 'aria-hidden': 'true' });
    for (const [key, , v] of parts.concat([['other', '', other]])) {
      if (v <= 0) continue;
      const seg = el('span', { class: 'seg seg-' + key });
      seg.style.width = percent(v, n.total) + '%';
      bar.append(seg);
    }
    const legend = parts.map(([key, label, v]) =>
      el('li', { 'data-part': key }, el('span', { class: 'key seg-' + key }), label + ' ', el('strong', null, bytes(v))));
    if (other > 0) legend.push(el('li', { 'data-part': 'other' }, el('span', { class: 'key seg-other' }), 'source not reported ', el('strong', null, bytes(other))));
    box.replaceChildren(
      el('p', { class: 'dl-total' }, el('strong', null, Math.floor(percent(n.done, n.total)) + '%'), ' · ' + bytesOf(n.done, n.total)),
      bar,
      el('ul', { class: 'legend' }, ...legend));
  }

  function renderTimeline(n) {
    const box = $('detail-timeline');
    const phases = Array.isArray(n.phases) ? n.phases : [];
    if (!phases.length) {
      box.replaceChildren(el('p', { class: 'sub' }, 'No boot recorded yet.'));
      $('detail-boot').textContent = '';
      return;
    }
    const rows = phases.map((p, i) => {
      const open = !p.end;
      const start = parseTime(p.start);
      let secs = Number(p.seconds) || 0;
      if (open && start !== null) secs = Math.max(secs, (now() - start) / 1000);
      return { p, secs, open, resting: open && i === phases.length - 1 && RESTING.has(p.state) };
    });
    const scale = Math.max(0.001, ...rows.filter((r) => !r.resting).map((r) => r.secs));
    box.replaceChildren(...rows.map((r) => {
      const bar = el('span', { class: 'phase-bar' });
      if (!r.resting) bar.style.width = percent(r.secs, scale) + '%';
      const start = parseTime(r.p.start);
      return el('div', {
        class: 'phase' + (r.open ? ' open' : '') + (r.resting ? ' resting' : ''),
        'data-phase': r.p.state, 'data-state': r.p.state,
        title: start !== null ? r.p.state + ' from ' + stamp(start) : r.p.state,
      },
      el('span', { class: 'phase-name' }, r.p.state),
      el('span', { class: 'phase-track' }, bar),
      el('span', { class: 'phase-secs' }, r.resting ? 'for ' + duration(r.secs) : duration(r.secs) + (r.open ? '…' : '')));
    }));
    // How long the boot took to its resting state, if it got there.
    const last = rows[rows.length - 1];
    const started = parseTime(n.boot_started);
    const reached = parseTime(last.p.start);
    let text = '';
    if (last.resting && last.p.state !== 'unknown' && started !== null && reached !== null) {
      text = ({ running: 'Running ', degraded: 'Running, degraded, ' }[last.p.state] || 'Failed ') + duration((reached - started) / 1000) + ' after the boot began.';
    }
    $('detail-boot').textContent = text;
  }

  function renderEvents(n) {
    const list = $('detail-events');
    if (!Array.isArray(n.events)) {
      list.replaceChildren(el('li', { class: 'sub' }, 'Loading…'));
      return;
    }
    if (!n.events.length) {
      list.replaceChildren(el('li', { class: 'sub' }, 'No events yet.'));
      return;
    }
    list.replaceChildren(...n.events.slice().reverse().map((e) => {
      const t = parseTime(e.time);
      return el('li', { class: 'event', 'data-source': e.source, 'data-state': e.state },
        el('time', { datetime: e.time, title: t !== null ? stamp(t) : '' }, t !== null ? clock(t) : '?'),
        el('span', { class: 'badge', 'data-state': e.state }, e.state),
        el('span', { class: 'source' }, e.source === 'node' ? 'from the node' : 'seen by the appliance'),
        e.message ? el('span', { class: 'msg' }, e.message) : null,
        e.reason ? el('span', { class: 'reason' }, e.reason) : null);
    }));
  }

  // ---- swarms

  function renderSwarms(data) {
    if (data === lastSwarm) return;
    let list;
    try {
      list = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!Array.isArray(list)) return;
    lastSwarm = data;
    const empty = $('swarms-empty');
    empty.textContent = 'No image has a current version in the catalog.';
    empty.hidden = list.length > 0;
    $('swarms').replaceChildren(...list.map((s) => {
      const peers = Math.max(0, s.peer_bytes || 0);
      const fromAppliance = Math.max(0, (s.node_bytes || 0) - peers);
      const total = peers + fromAppliance;
      const bar = el('div', { class: 'split', 'aria-hidden': 'true' });
      for (const [key, v] of [['peers', peers], ['app', fromAppliance]]) {
        if (v <= 0) continue;
        const seg = el('span', { class: 'seg seg-' + key });
        seg.style.width = percent(v, total) + '%';
        bar.append(seg);
      }
      // With nothing downloaded yet there is no ratio to show.
      const offload = total > 0 ? Math.round((Number(s.offload) || 0) * 100) + '%' : '–';
      return el('article', { class: 'swarm', 'data-image': s.image },
        el('div', { class: 'swarm-head' },
          el('h3', null, s.image + ' ', el('span', { class: 'ver' }, s.version)),
          el('span', { class: 'offload', title: "the part of the nodes' downloads that came from peers" },
            el('strong', null, offload), ' offload')),
        el('p', { class: 'sub' }, [plural(s.nodes || 0, 'node'), plural(s.seeders || 0, 'seeder'),
          plural(s.leechers || 0, 'leecher'), bytes(s.size)].join(' · ')),
        bar,
        el('ul', { class: 'legend' },
          el('li', null, el('span', { class: 'key seg-peers' }), 'from peers ', el('strong', null, bytes(peers))),
          el('li', null, el('span', { class: 'key seg-app' }), 'from the appliance ', el('strong', null, bytes(fromAppliance)))),
        total === 0 ? el('p', { class: 'sub' }, 'No node has reported a download yet.') : null,
        el('p', { class: 'sub mono infohash', title: s.infohash || '' }, 'infohash ' + (s.infohash || '').slice(0, 16) + '…'));
    }));
  }

  // ---- rollouts

  let lastRollouts = '';

  // renderRollouts draws GET /v1/rollouts's JSON (text), if it changed.
  function renderRollouts(data) {
    if (data === lastRollouts) return;
    let list;
    try {
      list = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!list || typeof list !== 'object') return;
    lastRollouts = data;
    const rollouts = Array.isArray(list.rollouts) ? list.rollouts : [];
    const shown = window.MoobiRollouts.render($('rollouts'), rollouts, { el, parseTime, agoSpan, plural });
    $('rollouts-empty').textContent = 'No rollout yet: moobi rollout start IMAGE TARGET… starts one.';
    $('rollouts-empty').hidden = shown > 0;
  }

  async function loadRollouts() {
    try {
      const r = await fetch('/v1/rollouts', { cache: 'no-store' });
      if (r.status === 404) {
        $('rollout-section').hidden = true; // an appliance without rollouts
        return;
      }
      if (r.ok) renderRollouts(await r.text());
    } catch (e) {
      // The stream carries on; the next load tries again.
    }
  }

  // ---- the appliance

  // reconcile loads the whole node list: it drops nodes the appliance no
  // longer knows and picks up hosts added to the inventory (which the
  // stream does not announce), and measures the clock difference.
  async function reconcile() {
    try {
      const r = await fetch('/v1/nodes', { cache: 'no-store' });
      if (!r.ok) return;
      const date = Date.parse(r.headers.get('Date') || '');
      if (!Number.isNaN(date)) {
        const d = date - Date.now();
        skew = Math.abs(d) > 2000 ? d : 0; // the header has whole seconds
      }
      const list = await r.json();
      if (!Array.isArray(list)) return;
      const listed = new Set();
      let top = 0;
      for (const n of list) {
        if (!n || typeof n.mac !== 'string') continue;
        listed.add(n.mac);
        top = Math.max(top, n.seq || 0);
        applyNode(n);
      }
      for (const [mac, n] of nodes) {
        if (!listed.has(mac) && (n.seq || 0) <= top) removeNode(mac);
      }
    } catch (e) {
      // The stream carries on; the next reconcile tries again.
    }
  }

  function setConn(state, text) {
    const c = $('conn');
    c.setAttribute('data-conn', state);
    c.textContent = text;
  }

  let stream = null;
  let wasOpen = false;

  function connect() {
    setConn('connecting', 'connecting…');
    stream = new EventSource('/v1/stream');
    stream.onopen = () => {
      setConn('live', 'live');
      if (wasOpen) {
        reconcile();
        loadRollouts();
      }
      wasOpen = true;
    };
    stream.onerror = () => {
      // EventSource reconnects by itself after a network error, but gives
      // up on a bad response (a proxy's 502, say): then start over.
      if (stream.readyState === EventSource.CLOSED) {
        stream.close();
        setTimeout(connect, 5000);
      }
      setConn('reconnecting', 'reconnecting…');
    };
    stream.addEventListener('node', (e) => {
      try {
        applyNode(JSON.parse(e.data));
      } catch (err) {
        // A malformed event is skipped.
      }
    });
    stream.addEventListener('swarm', (e) => renderSwarms(e.data));
    stream.addEventListener('rollouts', (e) => renderRollouts(e.data));
    stream.addEventListener('power', (e) => {
      try {
        applyPower(JSON.parse(e.data));
      } catch (err) {
        // A malformed event is skipped.
      }
    });
    // hello carries the appliance's clock; nodes the MACs of every node it
    // lists (at the start and after each inventory reload): others are gone.
    stream.addEventListener('hello', (e) => {
      try {
        const t = Date.parse(JSON.parse(e.data).now);
        if (!Number.isNaN(t)) skew = t - Date.now();
      } catch (err) {
        // keep the skew from the Date header
      }
    });
    stream.addEventListener('nodes', (e) => {
      try {
        const listed = new Set(JSON.parse(e.data));
        for (const mac of [...nodes.keys()]) {
          if (!listed.has(mac)) removeNode(mac);
        }
      } catch (err) {
        // A malformed event is skipped.
      }
    });
  }

  function tick() {
    for (const e of document.querySelectorAll('.ago[data-t]')) {
      e.textContent = (e.getAttribute('data-prefix') || '') + ago(Number(e.getAttribute('data-t')));
    }
    if (detail && Array.isArray(detail.phases) && detail.phases.length && !detail.phases[detail.phases.length - 1].end) {
      renderTimeline(detail);
    }
  }

  $('detail-close').addEventListener('click', closeDetail);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeDetail();
  });

  reconcile();
  loadRollouts();
  connect();
  setInterval(tick, 1000);
  setInterval(reconcile, 60000);
  setInterval(loadRollouts, 60000);
  const hash = decodeURIComponent(location.hash.slice(1));
  if (/^[0-9a-fA-F:.-]+$/.test(hash)) select(hash);
})();
