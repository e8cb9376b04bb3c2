// Moobi dashboard: the rollout panel. It draws GET /v1/rollouts's JSON
// ({"rollouts": [...]}, newest first), which app.js hands it from the live
// stream's "rollouts" event and from its own fetches: each rollout's state,
// its progress (hosts done of all), one row per batch with its state and
// each host's state in the rollout.
//
// Like app.js: data from the appliance reaches the page only through
// textContent and setAttribute, never as HTML.
'use strict';

window.MoobiRollouts = (() => {
  // Rollouts shown: every active one, and the latest finished ones.
  const FINISHED_SHOWN = 3;
  const ACTIVE = new Set(['running', 'paused']);
  const HOST_DONE = new Set(['running', 'failed', 'skipped']);
  const HOST_ORDER = ['running', 'skipped', 'booting', 'powering', 'waiting', 'failed'];

  // render draws list (the rollouts array) into box with h's helpers
  // (el, parseTime, agoSpan, plural), and returns how many it shows.
  function render(box, list, h) {
    const shown = [];
    let finished = 0;
    for (const r of list) {
      if (!r || typeof r.id !== 'string') continue;
      if (ACTIVE.has(r.state)) shown.push(r);
      else if (finished++ < FINISHED_SHOWN) shown.push(r);
    }
    box.replaceChildren(...shown.map((r) => rollout(r, h)));
    return shown.length;
  }

  function rollout(r, h) {
    const el = h.el;
    const batches = Array.isArray(r.batches) ? r.batches : [];
    let total = 0, done = 0;
    for (const b of batches) {
      for (const x of b.hosts || []) {
        total++;
        if (HOST_DONE.has(x.state)) done++;
      }
    }
    const pct = total > 0 ? Math.floor((done * 100) / total) : 0;
    const batchNo = Math.min((Number(r.batch) || 0) + 1, batches.length);
    const facts = [
      batches.length ? 'batch ' + batchNo + ' of ' + batches.length : 'no batches',
      h.plural(Number(r.batch_size) || 0, 'host') + ' a batch',
      (Number(r.failures) || 0) + ' failed, ' + (Number(r.max_failures) || 0) + ' allowed',
    ];
    const counts = r.hosts && typeof r.hosts === 'object' ? r.hosts : {};
    const tally = HOST_ORDER.filter((s) => counts[s] > 0).map((s) =>
      el('span', { class: 'count', 'data-state': s }, el('span', { class: 'dot', 'aria-hidden': 'true' }), counts[s] + ' ' + s));
    const meter = el('span', { class: 'meter ro-meter', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct });
    const fill = el('span', { class: 'meter-fill' });
    fill.style.width = pct + '%';
    meter.append(fill);
    const updated = h.parseTime(r.updated);
    return el('article', { class: 'rollout', 'data-id': r.id, 'data-state': r.state },
      el('div', { class: 'rollout-head' },
        el('h3', null, r.image + ' ', el('span', { class: 'ver' }, '→ ' + r.version)),
        el('span', { class: 'badge rollout-state', 'data-state': r.state }, r.state)),
      el('p', { class: 'sub mono' }, r.id),
      r.reason ? el('p', { class: 'rollout-reason' }, r.reason) : null,
      el('p', { class: 'rollout-progress' }, el('strong', null, done + ' of ' + total), ' hosts done · ' + facts.join(' · ')),
      meter,
      tally.length ? el('p', { class: 'rollout-tally' }, ...tally) : null,
      el('ol', { class: 'batches' }, ...batches.map((b) => batch(b, h))),
      updated !== null ? el('p', { class: 'sub' }, h.agoSpan(updated, 'updated ')) : null);
  }

  function batch(b, h) {
    const el = h.el;
    const hosts = Array.isArray(b.hosts) ? b.hosts : [];
    return el('li', { class: 'batch', 'data-index': b.index, 'data-state': b.state },
      el('span', { class: 'batch-name' }, 'Batch ' + ((Number(b.index) || 0) + 1)),
      el('span', { class: 'batch-state' }, b.state),
      el('span', { class: 'batch-hosts' }, ...hosts.map((x) => {
        const title = [x.name + ': ' + x.state];
        if (x.from_version) title.push('from ' + x.from_version);
        if (x.node_state) title.push('node ' + x.node_state + (x.node_version ? ' on ' + x.node_version : ''));
        if (x.reason) title.push(x.reason);
        return el('span', { class: 'rhost', 'data-host': x.name, 'data-state': x.state, title: title.join(' · ') },
          el('span', { class: 'rhost-name' }, x.name), el('span', { class: 'rhost-state' }, x.state),
          x.reason ? el('span', { class: 'rhost-reason' }, x.reason) : null);
      })));
  }

  return { render };
})();
