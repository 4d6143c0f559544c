/// <reference lib="dom" />
// The LuCI status page (luci/.../view/ugate/status.js) in headless Chromium
// (Debian's `chromium`, driven by puppeteer-core, as admin-page.ts does).
// The page runs under a small stand-in of LuCI's browser runtime (the view
// wrapped as luci.js wraps it, E(), dom, poll, rpc, view); its rpc is
// stubbed by answering each ubus call with what a real gateway answers on
// its admin socket (`ugate ctl --json`, the same JSON as its ubus object).
// Checked: no console or page errors, no request anywhere, the tables, and
// the SVG throughput graph drawn from the status counters as traffic flows
// through a forward listener. Screenshot: build/luci-status.png.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openPage } from '../lib/browser.js'
import { listener, startConfig } from '../lib/config.js'
import { FORMAT_SOURCE, resourcesDir, scanRequires } from '../lib/luci-standin.js'
import { connect, destroyClients, echoServer, within } from '../lib/servers.js'
import { finish, repoRoot, runUgate } from '../lib/ugate.js'

t.teardown(destroyClients)

/**
 * What luci.js gives a view, just enough for status.js: E(), _(), dom
 * (create/append/content), poll (recorded; the test ticks it), rpc.declare
 * (answered by the exposed ubusCall), view.extend, L.bind.
 */
const RUNTIME = `
window._ = function (s) { return s; };
const dom = {
  append(node, children) {
    if (Array.isArray(children)) {
      children.forEach(function (c) {
        if (c instanceof Node) node.appendChild(c);
        else if (c != null) node.appendChild(document.createTextNode(String(c)));
      });
      return node.lastChild;
    }
    if (children instanceof Node) return node.appendChild(children);
    if (children != null) node.innerHTML = String(children);
    return node.lastChild;
  },
  content(node, children) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return this.append(node, children);
  }
};
window.E = function (tag, attrs, children) {
  if (Array.isArray(attrs) || attrs instanceof Node || typeof attrs !== 'object' || attrs === null) {
    children = attrs;
    attrs = {};
  }
  const n = document.createElement(tag);
  for (const k in attrs) {
    const v = attrs[k];
    if (v == null) continue;
    if (typeof v === 'function') n.addEventListener(k, v);
    else n.setAttribute(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  dom.append(n, children);
  return n;
};
const polls = [];
window.__polls = polls;
const luci = {
  view: { extend: function (proto) { return proto; } },
  dom: dom,
  poll: { add: function (fn, interval) { polls.push({ fn: fn, interval: interval }); } },
  rpc: {
    declare: function (d) {
      return function () {
        return window.ubusCall(d.object, d.method).then(function (text) {
          if (text === null) throw new Error('ubus: no object ' + d.object);
          return JSON.parse(text);
        });
      };
    }
  }
};
window.L = { bind: function (fn, self) { return fn.bind.apply(fn, [self].concat([].slice.call(arguments, 2))); } };
`

t.test(
  'the LuCI status page in Chromium: no errors, tables, and the throughput graph rises with traffic',
  async (t) => {
    const echo = await echoServer(t)
    const dir = mkdtempSync(join(tmpdir(), 'ugate-luci-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const socket = join(dir, 'admin.sock')
    const ug = await startConfig(t, {
      relay: { shutdownGrace: 1 },
      admin: { socket },
      listeners: [listener('fwd', 'forward', { target: echo.target })],
    })

    const source = readFileSync(join(resourcesDir, 'view/ugate/status.js'), 'utf8')
    const names = scanRequires(source).map((r) => r.as)
    t.same(names, ['view', 'dom', 'poll', 'rpc'], 'the modules the view requires')
    // luci.js: the source becomes the body of a function of (window, document, L, <modules>).
    const wrapped = `window.__view = (function (window, document, L, ${names.join(', ')}) { ${source} })(window, document, L, ${names.map((n) => `luci.${n}`).join(', ')});`
    const boot = `
Promise.resolve(window.__view.load())
  .then(function (data) { return window.__view.render(data); })
  .then(function (node) { document.getElementById('view').appendChild(node); window.__rendered = true; })
  .catch(function (e) { console.error('render failed: ' + e); });`
    const html = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>ugate status</title></head><body>
<div id="view"></div>
<script>${FORMAT_SOURCE}</script><script>${RUNTIME}</script><script>${wrapped}</script><script>${boot}</script>
</body></html>`

    // setContent: the page's own URL is about:blank; nothing else may be asked for.
    const { browser, page, problems } = await openPage(t, { width: 1100, height: 900 }, (url) =>
      url.startsWith('about:'),
    )
    // The stubbed rpc: service.list as procd would answer, ugate.* from the real gateway.
    const asked: string[] = []
    await page.exposeFunction('ubusCall', (object: string, method: string) => {
      asked.push(`${object}.${method}`)
      if (object === 'service')
        return JSON.stringify({ ugate: { instances: { instance1: { running: true, pid: ug.pid } } } })
      if (object !== 'ugate' || !['status', 'connections'].includes(method)) return null
      return runUgate(['ctl', '--json', '--socket', socket, method]).stdout
    })
    await page.setContent(html)
    await page.waitForFunction(() => (window as any).__rendered === true)
    t.match(await page.$eval('#view', (e) => e.textContent), /Running[^]*fwd[^]*forward/, 'service and listeners shown')
    t.same(
      await page.evaluate(() => (window as any).__polls.map((p: any) => p.interval)),
      [5, 2],
      'tables every 5 s, the graph every 2 s',
    )
    t.ok(await page.$('svg.ugate-graph'), 'the SVG graph is there')
    t.match(await page.$eval('.ugate-graph-legend', (e) => e.textContent), /waiting for a second sample/)

    // A connection through the forward moves bytes; the graph's samples follow them.
    const sock = await connect(ug.port('fwd'))
    let received = 0
    const echoed = (n: number) =>
      within(
        new Promise<void>((resolve) => {
          const check = () => {
            if (received >= n) {
              sock.off('data', onData)
              resolve()
            }
          }
          const onData = (d: Buffer) => {
            received += d.length
            check()
          }
          sock.on('data', onData)
          check()
        }),
        15000,
        `${n} bytes echoed`,
      )
    const graphTick = () => page.evaluate(() => (window as any).__polls.find((p: any) => p.interval === 2).fn())
    const upPoints = () =>
      page.$eval('polyline.ugate-up', (e) =>
        (e.getAttribute('points') ?? '')
          .split(' ')
          .filter(Boolean)
          .map((xy) => Number(xy.split(',')[1])),
      )
    let sent = 0
    for (let i = 0; i < 4; i++) {
      sock.write(Buffer.alloc(64 * 1024, i))
      sent += 64 * 1024
      await echoed(sent)
      await graphTick()
    }
    // The relay publishes its counts once a second: tick until a sample saw bytes (bounded).
    let ys = await upPoints()
    for (let i = 0; i < 20 && !ys.some((y) => y < 150); i++) {
      sock.write(Buffer.alloc(1024, 9))
      sent += 1024
      await echoed(sent)
      await graphTick()
      ys = await upPoints()
    }
    t.ok(ys.length >= 4, `one rate per pair of samples (${ys.length})`)
    t.ok(
      ys.some((y) => y < 150),
      'the up line rose above the baseline while bytes flowed',
      { ys },
    )
    t.match(await page.$eval('.ugate-graph-legend', (e) => e.textContent), /Up [0-9.]+ (B|KiB|MiB)\/s.*Down .*peak/)
    const box = await page.$eval('svg.ugate-graph', (e) => {
      const r = e.getBoundingClientRect()
      return { w: r.width, h: r.height }
    })
    t.ok(box.w > 300 && box.h === 150, `laid out (${box.w}×${box.h})`)
    t.ok(asked.includes('ugate.status') && asked.includes('ugate.connections'), 'the page asked the gateway')

    mkdirSync(join(repoRoot, 'build'), { recursive: true })
    await page.screenshot({ path: join(repoRoot, 'build', 'luci-status.png'), fullPage: true })
    t.same(problems, [], 'no console errors, no page errors, no requests')
    await browser.close()
    sock.end()
    await finish(t, ug, 1)
  },
)
