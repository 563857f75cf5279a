// The dashboard's pure modules (topic tree, numeric fields, statistics,
// formatting), imported as served by midge and run inside Chromium, where
// they run for real.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startBroker } = require('./broker');
const { launch, openPage } = require('./browser');

let broker;
let browser;
let page;

before(async () => {
  broker = await startBroker();
  browser = await launch();
  page = await openPage(browser, `${broker.http}/`);
});

after(async () => {
  if (browser) await browser.close();
  if (broker) await broker.stop();
});

test('topicMatches: wildcards, the parent of #, $ topics, shared filters', async () => {
  const r = await page.evaluate(async () => {
    const { topicMatches } = await import('/ui/js/topictree.js');
    const cases = [
      ['#', 'a/b'], ['#', '$SYS/x'], ['a/#', 'a'], ['a/#', 'a/b/c'], ['a/#', 'ab'],
      ['a/+', 'a/b'], ['a/+', 'a/b/c'], ['a/+', 'a'], ['+/b', '$x/b'], ['$SYS/#', '$SYS/broker/load'],
      ['only/#', 'other/y'], ['a/b', 'a/b'], ['a/b', 'a/b/'], ['+', ''], ['$share/g/s/+', 's/1'],
    ];
    return cases.map(([f, t]) => topicMatches(f, t));
  });
  assert.deepEqual(r, [
    true, false, true, true, false,
    true, false, false, false, true,
    false, true, false, true, true,
  ]);
});

test('numericFields: numbers, JSON numeric fields, nothing else', async () => {
  const r = await page.evaluate(async () => {
    const { numericFields } = await import('/ui/js/topictree.js');
    const f = (t) => { const m = numericFields(t); return m ? Object.fromEntries(m) : null; };
    return {
      number: f(' 21.5 '),
      negative: f('-3e2'),
      json: f('{"temperature": 25, "humidity": 60, "label": "x", "ok": true, "n": {"a": 1, "b": {"c": 2}}, "list": [1, 2]}'),
      numericString: f('{"v": "12.5", "id": "abc"}'),
      text: f('hello'),
      empty: f(''),
      array: f('[1, 2, 3]'),
      badJson: f('{"a": 1'),
      binary: f(null),
      hex: f('0x10'),
    };
  });
  assert.deepEqual(r.number, { value: 21.5 });
  assert.deepEqual(r.negative, { value: -300 });
  assert.deepEqual(r.json, { temperature: 25, humidity: 60, ok: 1, 'n.a': 1, 'n.b.c': 2 });
  assert.deepEqual(r.numericString, { v: 12.5 });
  for (const k of ['text', 'empty', 'array', 'badJson', 'binary', 'hex']) assert.equal(r[k], null, k);
});

test('TopicTree: levels, subtree counts, history of fields, limits', async () => {
  const r = await page.evaluate(async () => {
    const { TopicTree } = await import('/ui/js/topictree.js');
    const enc = (s) => new TextEncoder().encode(s);
    const tree = new TopicTree({ maxTopics: 3, historyLength: 3 });
    const t0 = 1_700_000_000_000;
    tree.add('a/b/c', enc('{"x": 1}'), { time: t0 });
    tree.add('a/b/c', enc('{"x": 2, "y": 5}'), { time: t0 + 1000 });
    tree.add('a/b', enc('7'), { time: t0 + 2000, retain: true, qos: 1 });
    tree.add('/lead', enc('z'), { time: t0 + 2000 });
    tree.add('one/too/many', enc('1'), { time: t0 + 2000 });
    for (let i = 0; i < 4; i += 1) tree.add('a/b/c', enc(`{"x": ${10 + i}}`), { time: t0 + 3000 + i });
    tree.add('bin', new Uint8Array([0xff, 0xfe, 0x00]), { time: t0 });
    const c = tree.topics.get('a/b/c');
    const a = tree.root.children.get('a');
    return {
      topics: [...tree.topics.keys()],
      aCount: a.count,
      abCount: a.children.get('b').count,
      abStat: tree.topics.get('a/b').last,
      leadPath: tree.root.children.get('').children.get('lead').path,
      ignored: tree.ignored,
      total: tree.total,
      history: { t: c.history.t, x: c.history.fields.get('x'), y: c.history.fields.get('y') },
      count: c.count,
      preview: tree.topics.get('a/b/c').preview,
    };
  });
  assert.deepEqual(r.topics, ['a/b/c', 'a/b', '/lead']);
  assert.equal(r.aCount, 7);
  assert.equal(r.abCount, 7);
  assert.equal(r.abStat.text, '7');
  assert.equal(r.abStat.retain, true);
  assert.equal(r.abStat.qos, 1);
  assert.equal(r.leadPath, '/lead');
  assert.equal(r.ignored, 2, 'topics past maxTopics are counted, not tracked');
  assert.equal(r.total, 8);
  assert.equal(r.count, 6);
  // History keeps the last 3 readings; y appeared once and is null elsewhere.
  assert.deepEqual(r.history.x, [11, 12, 13]);
  assert.deepEqual(r.history.y, [null, null, null]);
  assert.equal(r.history.t.length, 3);
  assert.equal(r.preview, '{"x": 13}');
});

test('TopicStat.rate: messages per second over the last 10 s, and past the ring', async () => {
  const r = await page.evaluate(async () => {
    const { TopicStat } = await import('/ui/js/topictree.js');
    const s = new TopicStat('t', 10);
    const now = 1_700_000_000_000;
    for (let i = 0; i < 20; i += 1) s.add(new Uint8Array([49]), { time: now - 9000 + i * 450 });
    const slow = s.rate(now);
    const old = s.rate(now + 60_000);
    const f = new TopicStat('f', 10);
    for (let i = 0; i < 1000; i += 1) f.add(new Uint8Array([49]), { time: now + i }); // 1000/s
    const r = new TopicStat('r', 10);
    r.add(new Uint8Array([49]), { time: now, retain: true });
    return { slow, old, fast: f.rate(now + 1000), retained: r.rate(now), retainedCount: r.count };
  });
  assert.equal(r.slow, 2);
  assert.equal(r.old, 0);
  assert.ok(r.fast > 500 && r.fast < 1100, `fast: ${r.fast}`);
  assert.equal(r.retained, 0, 'a retained message sent at subscribe time is not traffic');
  assert.equal(r.retainedCount, 1);
});

test('statistics: $SYS and API samples, rates, restarts, the window', async () => {
  const r = await page.evaluate(async () => {
    const { sampleFromSys, sampleFromApi, rates, StatsModel } = await import('/ui/js/stats.js');
    const sys = new Map([['clients/connected', '3'], ['publish/messages/received', '100'], ['publish/messages/sent', '50'],
      ['bytes/received', '1000'], ['bytes/sent', '400'], ['publish/messages/dropped', '0'], ['uptime', '42 seconds'],
      ['retained messages/count', '7']]);
    const a = sampleFromSys(sys, 10_000);
    sys.set('publish/messages/received', '300');
    sys.set('bytes/received', '5000');
    const b = sampleFromSys(sys, 12_000);
    const api = sampleFromApi({ clients_connected: 2, publish_received: 10, uptime_secs: 5, retained: 1 }, 1);
    const m = new StatsModel({ windowSecs: 5 });
    m.add(a, 'sys');
    m.add(b, 'sys');
    m.add(b, 'sys'); // same time: ignored
    const restarted = sampleFromSys(new Map([['publish/messages/received', '1']]), 13_000);
    m.add(restarted, 'sys');
    const restartPoint = m.points.find((p) => p.time === 13_000);
    m.add({ ...restarted, time: 30_000 }, 'sys');
    const afterWindow = m.points.length;
    m.add(api, 'api');
    return { a, rate: rates(a, b), restartRate: restartPoint ? restartPoint.msgsInRate : 'gone', afterWindow, api, source: m.source, points: m.points.length };
  });
  assert.equal(r.a.clients, 3);
  assert.equal(r.a.uptime, 42);
  assert.equal(r.a.retained, 7);
  assert.equal(r.a.stored, null);
  assert.equal(r.rate.msgsInRate, 100);
  assert.equal(r.rate.bytesInRate, 2000);
  assert.equal(r.rate.msgsOutRate, 0);
  assert.equal(r.restartRate, null, 'a counter that went back (restart) gives no rate');
  assert.equal(r.afterWindow, 2, 'points older than the window are dropped (two kept for a line)');
  assert.equal(r.api.clients, 2);
  assert.equal(r.api.uptime, 5);
  assert.equal(r.source, 'api');
  assert.equal(r.points, 1, 'a new source starts a new series');
});

test('formatting helpers', async () => {
  const r = await page.evaluate(async () => {
    const d = await import('/ui/js/dom.js');
    return {
      n: [d.fmtNumber(0), d.fmtNumber(12.345), d.fmtNumber(1234), d.fmtNumber(2_500_000), d.fmtNumber(null)],
      c: d.fmtCount(1234567),
      compact: [d.fmtCompact(5000), d.fmtCompact(2_500_000), d.fmtCompact(12_345), d.fmtCompact(0.5), d.fmtCompact(150)],
      b: [d.fmtBytes(512), d.fmtBytes(1536), d.fmtBytes(5 * 1024 * 1024)],
      dur: [d.fmtDuration(5), d.fmtDuration(125), d.fmtDuration(7300), d.fmtDuration(90000)],
      time: d.fmtTime(new Date(2024, 0, 2, 3, 4, 5, 6)),
      text: [d.payloadText(new TextEncoder().encode('héllo')), d.payloadText(new Uint8Array([0xff]))],
      hex: d.hexPreview(new Uint8Array([1, 255, 16]), 2),
      trunc: d.truncate('abcdef', 4),
    };
  });
  assert.deepEqual(r.n, ['0', '12.3', '1.23k', '2.50M', '–']);
  assert.equal(r.c, '1,234,567');
  assert.deepEqual(r.compact, ['5k', '2.5M', '12.3k', '0.5', '150']);
  assert.deepEqual(r.b, ['512 B', '1.50 KiB', '5.00 MiB']);
  assert.deepEqual(r.dur, ['5s', '2m 5s', '2h 1m', '1d 1h']);
  assert.equal(r.time, '03:04:05.006');
  assert.deepEqual(r.text, ['héllo', null]);
  assert.equal(r.hex, '01 ff …');
  assert.equal(r.trunc, 'abc…');
});
