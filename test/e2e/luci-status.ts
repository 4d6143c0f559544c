/// <reference lib="dom" />
// The LuCI status page (luci/.../view/ugate/status.js) in headless Chromium
// (Debian's `chromium`, driven by puppeteer-core, as admin-page.ts does).
// The page runs under a small stand-in of LuCI's browser runtime (the view
// wrapped as luci.js wraps it, E(), dom, poll, rpc, view); its rpc is
// stubbed by answering each ubus call with what a real gateway answers on
// its admin socket (`ugate ctl --json`, the same JSON as its ubus object).
// Checked: no console or page errors, no request anywhere, the tables, and
// the SVG throughput graph drawn from the status counters as traffic flows
// through a forward listener (screenshot: build/luci-status.png); a mesh
// tunnel to a second gateway (build/luci-status-mesh.png); reverse tunnels
// set up in the settings form (its saved uci run by real gateways after
// `ugate check`), both sides (build/luci-status-reverse.png); a UDP flow
// through nftables TPROXY in network namespaces.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { openPage } from '../lib/browser.js'
import { listener, proxyConfig, startConfig } from '../lib/config.js'
import { FORMAT_SOURCE, type LuciPage, loadView, resourcesDir, scanRequires } from '../lib/luci-standin.js'
import { TRUST_DOMAIN, mesh } from '../lib/mesh.js'
import { ADDR } from '../lib/netns.js'
import { socks5Connect } from '../lib/proxy.js'
import {
  connect,
  destroyClients,
  echoServer,
  pollUntil,
  prngBytes,
  refusedPort,
  sha256,
  within,
} from '../lib/servers.js'
import { ECHO, exchange, peers, start } from '../lib/udp-capture.js'
import { checkCleanExit, finish, repoRoot, runUgate, startUgate } from '../lib/ugate.js'
import { tempDir, tempSocket } from '../lib/temp.js'

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

/**
 * status.js as luci.js runs it, in headless Chromium, its rpc answered by
 * `ugate ctl --json` on `socket` (the same JSON as the ubus object) and
 * procd's service.list.
 */
async function statusPage(t: Test, socket: string, pid: number) {
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
  const { browser, page, problems } = await openPage(t, { width: 1100, height: 900 }, (url) => url.startsWith('about:'))
  // The stubbed rpc: service.list as procd would answer, ugate.* from the real gateway.
  const asked: string[] = []
  await page.exposeFunction('ubusCall', (object: string, method: string) => {
    asked.push(`${object}.${method}`)
    if (object === 'service') return JSON.stringify({ ugate: { instances: { instance1: { running: true, pid } } } })
    if (object !== 'ugate' || !['status', 'connections'].includes(method)) return null
    return runUgate(['ctl', '--json', '--socket', socket, method]).stdout
  })
  await page.setContent(html)
  await page.waitForFunction(() => (window as any).__rendered === true)
  /** Run the 5 s poll now (tables), and wait for it. */
  const refresh = () => page.evaluate(() => (window as any).__polls.find((p: any) => p.interval === 5).fn())
  /** The rows (cell texts) of the table in the section headed `title`. */
  const rows = (title: string) =>
    page.evaluate((title: string) => {
      const section = [...document.querySelectorAll('.cbi-section')].find(
        (s) => s.querySelector('h3')?.textContent === title,
      )
      return [...(section?.querySelectorAll('tr.tr') ?? [])]
        .filter((r) => !r.classList.contains('table-titles'))
        .map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent ?? ''))
    }, title)
  return { browser, page, problems, asked, refresh, rows }
}

t.test(
  'the LuCI status page in Chromium: no errors, tables, and the throughput graph rises with traffic',
  async (t) => {
    const echo = await echoServer(t)
    const socket = tempSocket(t, 'ugate-luci-')
    const ug = await startConfig(t, {
      relay: { shutdownGrace: 1 },
      admin: { socket },
      listeners: [listener('fwd', 'forward', { target: echo.target })],
    })

    const { browser, page, problems, asked } = await statusPage(t, socket, ug.pid)
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
    /** The gateway's up total, as the graph's samples read it (ugate.status's `traffic`). */
    const upTotal = () =>
      (JSON.parse(runUgate(['ctl', '--json', '--socket', socket, 'status']).stdout) as { traffic: { up: number } })
        .traffic.up
    const base = upTotal()
    let sent = 0
    for (let i = 0; i < 4; i++) {
      sock.write(Buffer.alloc(64 * 1024, i))
      sent += 64 * 1024
      await echoed(sent)
      await graphTick()
    }
    // The relay publishes its counts once a second, and the ticks above may all
    // come before it does: wait until the total has moved (no event tells it),
    // then one more sample follows one that had seen less.
    await pollUntil(upTotal, (up) => up > base, 10_000, 100)
    await graphTick()
    const ys = await upPoints()
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

t.test('the LuCI status page: mesh tunnels, with their peer, identity, streams and bytes', async (t) => {
  const ids = mesh(t)
  const echo = await echoServer(t)
  const b = await startConfig(t, proxyConfig([listener('mesh', 'hbone')], ids.config('b')))
  const socket = ids.socket('a')
  const a = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      admin: { socket },
      upstreams: [{ name: 'peer-b', type: 'hbone', server: `127.0.0.1:${b.port('mesh')}`, identity: ids.spiffe('b') }],
      rules: [{ name: 'mesh', action: 'upstream:peer-b' }],
      ...ids.config('a'),
    }),
  )
  const { browser, page, problems, refresh, rows } = await statusPage(t, socket, a.pid)
  t.same(await rows('Mesh tunnels'), [['No mesh tunnels']], 'none yet')

  const conn = await socks5Connect(a.port('socks'), { host: '127.0.0.1', port: echo.port })
  const payload = prngBytes(5, 100_000)
  conn.reader.sock.write(payload)
  await conn.reader.read(payload.length)
  // The engine publishes tunnel counters once a second: refresh until they show (bounded).
  let shown = await rows('Mesh tunnels')
  for (let i = 0; i < 40 && shown[0]?.[6] !== '97.7 KiB'; i++) {
    await new Promise((r) => setTimeout(r, 250))
    await refresh()
    shown = await rows('Mesh tunnels')
  }
  t.same(
    shown[0]?.slice(0, 8),
    ['client', 'peer-b', `127.0.0.1:${b.port('mesh')}`, ids.spiffe('b'), 'open', '1 / 1', '97.7 KiB', '97.7 KiB'],
    'the tunnel: role, upstream, peer, identity, state, streams, bytes',
  )
  t.match(shown[0]?.[8], /^(-|[0-9.]+ ms)$/, 'RTT: none before the first PING, then in ms')
  mkdirSync(join(repoRoot, 'build'), { recursive: true })
  await page.screenshot({ path: join(repoRoot, 'build', 'luci-status-mesh.png'), fullPage: true })
  t.same(problems, [], 'no console errors, no page errors, no requests')
  await browser.close()

  conn.reader.sock.end()
  await a.waitForLine(/ info conn listener=socks /)
  checkCleanExit(t, b, await b.stop())
  await a.waitForLine(/ info hbone-closed /)
  await finish(t, a, 1)
})

/** The settings form (Node stand-in of LuCI) on `uci` text: `edit` fills it in, the saved text is returned. */
async function viaForm(uci: string, edit: (page: LuciPage) => Promise<void>): Promise<string> {
  const page = await loadView('ugate/settings', { uci: { ugate: uci } })
  await edit(page)
  await page.save()
  return page.uci.export('ugate')
}

/** `ugate check` on uci text in a file of `dir`; the file. */
function checked(t: Test, dir: string, name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  const r = runUgate(['check', '--config', file])
  t.same({ code: r.code, stdout: r.stdout }, { code: 0, stdout: 'config ok\n' }, `ugate check accepts ${name}`, {
    stderr: r.stderr,
    text,
  })
  return file
}

t.test('reverse tunnels set up in the LuCI form; both sides on the status page', async (t) => {
  const ids = mesh(t)
  const echo = await echoServer(t)
  const dir = tempDir(t, 'ugate-luci-rev-')
  const hbonePort = await refusedPort()
  const meshSection = (node: string) =>
    `config mesh 'mesh'\n\toption identity_dir '${ids.dir(node)}'\n\toption trust_domain '${TRUST_DOMAIN}'\n`
  const main = (node: string) =>
    `config ugate 'main'\n\toption enabled '1'\n\toption admin_socket '${ids.socket(node)}'\n`

  // The public gate B: its hbone listener lets A register; a proxy listener reaches A's side through it.
  const bText = await viaForm(
    [
      main('b'),
      `config listener 'gate'\n\toption type 'hbone'\n\toption address '127.0.0.1'\n\toption port '${hbonePort}'\n`,
      `config listener 'proxy'\n\toption type 'socks'\n\toption address '127.0.0.1'\n\toption port '0'\n`,
      `config rule\n\tlist listener 'proxy'\n\toption action 'upstream'\n\toption upstream 'home'\n`,
      meshSection('b'),
    ].join('\n'),
    async (page) => {
      page.set('gate', 'reverse', [ids.spiffe('a')])
      // The upstream A is reached by: named by its identity, no server (only through its reverse tunnel).
      const u = await page.add('upstream')
      page.set(u, 'name', 'home')
      page.set(u, 'type', 'hbone')
      page.set(u, 'identity', ids.spiffe('a'))
      t.equal(page.check(u, 'server'), true, 'no server needed for a peer named by identity')
      t.equal(page.check(u, 'port'), true)
    },
  )
  t.match(bText, new RegExp(`list reverse '${ids.spiffe('a').replace(/[/.]/g, '\\$&')}'`))
  // Gate A behind NAT: a reverse entry to B, and the one rule that lets B's streams in.
  const aText = await viaForm(
    [
      main('a'),
      `config listener 'lan'\n\toption type 'mixed'\n\toption address '127.0.0.1'\n\toption port '0'\n`,
      `config rule\n\tlist listener 'vps'\n\toption action 'direct'\n`,
      meshSection('a'),
    ].join('\n'),
    async (page) => {
      const r = await page.add('reverse')
      page.set(r, 'name', 'vps')
      page.set(r, 'server', '127.0.0.1')
      page.set(r, 'port', String(hbonePort))
      page.set(r, 'relay_id', ids.spiffe('b'))
      page.set(r, 'retry', '0.001')
      t.match(page.check(r, 'retry'), /a number of seconds from 0\.01 to 3600/, 'a bad value: the form says so')
      page.set(r, 'retry', '0.2')
    },
  )
  t.match(aText, /config reverse\n\toption name 'vps'\n\toption server '127\.0\.0\.1'/)

  const b = await startUgate(t, ['run', '--config', checked(t, dir, 'b.uci', bText)])
  const a = await startUgate(t, ['run', '--config', checked(t, dir, 'a.uci', aText)])
  await a.waitForLine(/ info reverse-up name=vps /)
  await b.waitForLine(/ info hbone-reverse-registered listener=gate /)

  // Through B's proxy, the upstream, the reverse tunnel and A's rule: exact data both ways.
  const payload = prngBytes(9, 50_000)
  const conn = await socks5Connect(b.port('proxy'), { host: '127.0.0.1', port: echo.port })
  t.equal(conn.reply?.[1], 0, 'B connected through A')
  conn.reader.sock.write(payload)
  t.equal(sha256((await conn.reader.read(payload.length)) as Buffer), sha256(payload), 'echoed through the tunnel')

  const nodeA = JSON.parse(runUgate(['ctl', '--json', '--socket', ids.socket('a'), 'status']).stdout).mesh.nodeId
  // B, the public gate: the gate registered here, its tunnel marked reverse.
  const pb = await statusPage(t, ids.socket('b'), b.pid)
  t.match(await pb.rows('Reverse tunnels'), [
    ['registered here', 'gate', /^127\.0\.0\.1:[0-9]+$/, ids.spiffe('a'), nodeA, 'up', '-', /s$/],
  ])
  t.equal((await pb.rows('Reverse tunnels')).length, 1)
  t.match(await pb.rows('Mesh tunnels'), [
    ['server reverse', 'gate', /^127\.0\.0\.1:/, ids.spiffe('a'), 'open', /^1 \/ 1$/],
  ])
  mkdirSync(join(repoRoot, 'build'), { recursive: true })
  await pb.page.screenshot({ path: join(repoRoot, 'build', 'luci-status-reverse.png'), fullPage: true })
  t.same(pb.problems, [], 'B: no console errors, no page errors, no requests')
  await pb.browser.close()
  // A, behind NAT: its link to B, up.
  const pa = await statusPage(t, ids.socket('a'), a.pid)
  t.match(await pa.rows('Reverse tunnels'), [
    ['to a public gate', 'vps', `127.0.0.1:${hbonePort}`, ids.spiffe('b'), '-', 'up', '0', /s$/],
  ])
  t.match(await pa.rows('Mesh tunnels'), [['client reverse', '-', `127.0.0.1:${hbonePort}`, ids.spiffe('b'), 'open']])
  t.same(pa.problems, [], 'A: no console errors, no page errors, no requests')
  await pa.browser.close()

  conn.reader.sock.end()
  await b.waitForLine(/ info conn listener=proxy /)
  checkCleanExit(t, a, await a.stop())
  await b.waitForLine(/ info hbone-reverse-gone /)
  await finish(t, b, 1)
})

t.test('the LuCI status page: UDP flows of a tproxy listener (network namespaces)', async (t) => {
  const { topo, client } = await peers(t)
  const socket = `${topo.dir}/admin.sock`
  const ug = await start(t, topo, { admin: socket })
  const { browser, problems, refresh, rows } = await statusPage(t, socket, ug.pid)
  t.same(await rows('UDP flows'), [['No live UDP flows']], 'a tproxy listener, no flow yet')

  const port = await client.bind('a', ADDR.client4)
  const data = prngBytes(3, 1000)
  t.equal((await exchange(client, 'a', ADDR.server4, ECHO, data)).data, data.toString('hex'), 'echo through ugate')
  await refresh()
  const flows = await rows('UDP flows')
  t.equal(flows.length, 1, 'one flow')
  t.match(flows[0], [
    'udp',
    `${ADDR.client4}:${port}`,
    `${ADDR.server4}:${ECHO}`,
    'direct',
    /s$/,
    /s$/,
    '1000 B',
    '1000 B',
  ])
  t.same(problems, [], 'no console errors, no page errors, no requests')
  await browser.close()
  checkCleanExit(t, ug, await ug.stop())
})
