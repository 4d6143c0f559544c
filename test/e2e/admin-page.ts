/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The live page (GET /) in headless Chromium (Debian's `chromium`, driven by
// puppeteer-core): it loads without console errors or requests elsewhere,
// shows a connection the test opens through the gateway, the listeners and
// the rules, and its Close button closes that connection. Its screenshot is
// saved as build/admin-page.png. With a mesh peer, the tunnel to it shows in
// the mesh table (peer, identity, streams, bytes, RTT): build/admin-page-mesh.png.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { openPage } from '../lib/browser.js'
import { rawUntilClose } from '../lib/http.js'
import { listener, proxyConfig, startConfig } from '../lib/config.js'
import { socks5Connect } from '../lib/proxy.js'
import { destroyClients, echoServer, prngBytes } from '../lib/servers.js'
import { mesh } from '../lib/mesh.js'
import { checkCleanExit, finish, repoRoot } from '../lib/ugate.js'

const SECRET = 'page-s3cret'
t.teardown(destroyClients)

t.test('the live page: a connection shows up and its Close button closes it', async (t) => {
  const echo = await echoServer(t)
  const ug = await startConfig(t, {
    relay: { shutdownGrace: 1 },
    admin: { listen: '127.0.0.1:0', secret: SECRET },
    listeners: [listener('mix', 'mixed')],
    rules: [{ name: 'ads', domainSuffix: ['ads.test'], action: 'reject' }],
  })
  const port = ug.port('admin-http')
  const origin = `http://127.0.0.1:${port}`

  const { browser, page, problems } = await openPage(
    t,
    { width: 1280, height: 800 },
    (url) => url.startsWith(origin) || url.startsWith(`ws://127.0.0.1:${port}`),
  )

  const res = await page.goto(`${origin}/#token=${SECRET}`)
  t.equal(res?.status(), 200)
  t.match(res?.headers()['content-type'], /^text\/html/)
  await page.waitForFunction(() => document.querySelector('#listeners tbody')?.textContent?.includes('mix'))
  await page.waitForFunction(() => document.querySelector('#rules tbody')?.textContent?.includes('ads.test'))
  t.match(await page.$eval('#capture', (e) => e.textContent), /Transparent capture: off/)

  const conn = await socks5Connect(ug.port('mix'), { host: '127.0.0.1', port: echo.port })
  conn.reader.sock.write(Buffer.alloc(4000, 1))
  await conn.reader.read(4000)
  await page.waitForFunction(
    (p: number) =>
      [...document.querySelectorAll('#conns tbody tr')].some((r) => r.textContent?.includes(`127.0.0.1:${p}`)),
    {},
    echo.port,
  )
  const row = await page.$eval('#conns tbody tr', (r) => [...r.querySelectorAll('td')].map((c) => c.textContent))
  t.match(row, ['1', 'tcp', 'Mixed', /^127\.0\.0\.1:\d+$/, `127.0.0.1:${echo.port}`, '', 'Match', 'DIRECT'])
  await page.waitForFunction(() => (document.querySelector('#top tbody')?.children.length ?? 0) > 0)
  // The graph draws once /traffic has pushed.
  await page.waitForFunction(() => (document.querySelector('#gup')?.getAttribute('points') ?? '') !== '')

  // Bytes show once the relay thread has published them (once a second).
  await page.waitForFunction(() => document.querySelector('#conns tbody tr td:nth-child(9)')?.textContent !== '0 B')
  mkdirSync(join(repoRoot, 'build'), { recursive: true })
  await page.screenshot({ path: join(repoRoot, 'build', 'admin-page.png'), fullPage: true })

  // Sorting by a column header reorders without losing the row.
  await page.$eval('#conns th[data-k="dst"]', (h) => (h as HTMLElement).click())
  t.equal(await page.$$eval('#conns tbody tr', (r) => r.length), 1)

  const ended = new Promise<void>((r) => {
    conn.reader.sock.once('end', () => r())
    conn.reader.sock.once('close', () => r())
  })
  // Clicked inside the page in one turn: the table is redrawn on every push, so a
  // handle taken before a scroll-and-click can be detached by then.
  await page.$eval('#conns tbody tr button', (b) => (b as HTMLElement).click())
  await ended
  await page.waitForFunction(() => document.querySelector('#conns tbody')?.children.length === 0)
  t.same(problems, [], 'no console errors, no requests elsewhere')

  await browser.close()
  // One request whose close the client sees: every earlier admin connection is closed by then.
  await rawUntilClose(
    port,
    `GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SECRET}\r\nConnection: close\r\n\r\n`,
  )
  await finish(t, ug, 1)
})

t.test('the live page: mesh tunnels, with their peer, identity, streams, bytes and RTT', async (t) => {
  const ids = mesh(t)
  const echo = await echoServer(t)
  const b = await startConfig(t, proxyConfig([listener('mesh', 'hbone')], ids.config('b')))
  const a = await startConfig(
    t,
    proxyConfig([listener('mix', 'mixed')], {
      admin: { listen: '127.0.0.1:0', secret: SECRET },
      upstreams: [{ name: 'peer-b', type: 'hbone', server: `127.0.0.1:${b.port('mesh')}`, identity: ids.spiffe('b') }],
      rules: [{ name: 'mesh', action: 'upstream:peer-b' }],
      ...ids.config('a'),
    }),
  )
  const port = a.port('admin-http')
  const origin = `http://127.0.0.1:${port}`
  const { browser, page, problems } = await openPage(
    t,
    { width: 1280, height: 900 },
    (url) => url.startsWith(origin) || url.startsWith(`ws://127.0.0.1:${port}`),
  )
  await page.goto(`${origin}/#token=${SECRET}`)
  await page.waitForFunction(() => document.querySelector('#tcount')?.textContent === '0')

  // A connection through the peer: its tunnel appears (the table refreshes every 5 s).
  const conn = await socks5Connect(a.port('mix'), { host: '127.0.0.1', port: echo.port })
  const payload = prngBytes(9, 50_000)
  conn.reader.sock.write(payload)
  await conn.reader.read(payload.length)
  const cells = () => page.$eval('#mesh tbody tr', (r) => [...r.querySelectorAll('td')].map((c) => c.textContent ?? ''))
  await page.waitForFunction(
    () => document.querySelector('#mesh tbody tr td:nth-child(7)')?.textContent === '48.8 KiB',
    {
      timeout: 20_000,
    },
  )
  t.match(
    await cells(),
    ['client', 'peer-b', `127.0.0.1:${b.port('mesh')}`, ids.spiffe('b'), 'open', '1 / 1', '48.8 KiB', '48.8 KiB'],
    'role, upstream, peer, identity, state, streams, bytes',
  )
  t.equal(await page.$eval('#tcount', (e) => e.textContent), '1')
  const row = await page.$eval('#conns tbody tr', (r) => [...r.querySelectorAll('td')].map((c) => c.textContent))
  t.equal(row[7], 'peer-b', 'the connection goes via the peer')
  // The first PING 10 s after the tunnel opened gives the RTT.
  await page.waitForFunction(
    () => / ms$/.test(document.querySelector('#mesh tbody tr td:nth-child(9)')?.textContent ?? ''),
    {
      timeout: 30_000,
    },
  )
  t.match((await cells())[8], /^[0-9.]+ ms$/, 'RTT shown')
  mkdirSync(join(repoRoot, 'build'), { recursive: true })
  await page.screenshot({ path: join(repoRoot, 'build', 'admin-page-mesh.png'), fullPage: true })
  t.same(problems, [], 'no console errors, no requests elsewhere')
  await browser.close()

  conn.reader.sock.end()
  await a.waitForLine(/ info conn listener=mix /)
  checkCleanExit(t, b, await b.stop())
  await a.waitForLine(/ info hbone-closed /)
  await finish(t, a, 1)
})
