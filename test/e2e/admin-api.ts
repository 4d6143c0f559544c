// The admin HTTP server end to end (docs/api.md): every Clash API endpoint
// with a real WebSocket client (undici's, which is Node's built-in one),
// the dashboards' way of calling it, errors, hardening against malformed
// input, and that no credential ever shows in an answer, a metric or a log
// line.

import { writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { WebSocket, request } from 'undici'
import { connsOf, listener, startConfig } from '../lib/config.js'
import { rawUntilClose } from '../lib/http.js'
import { startMicrosocks, socks5Connect } from '../lib/proxy.js'
import { connect, destroyClients, echoServer, refusedPort, within } from '../lib/servers.js'
import { finish, startUgate, type Ugate } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const SECRET = 'admin-s3cret-XYZ'
const USER = { user: 'alice', pass: 'proxy-pa55-QRS' }
const UP_AUTH = { user: 'bob', pass: 'upstream-pa55-JKL' }
const CREDENTIALS = [SECRET, USER.pass, UP_AUTH.pass]

t.teardown(destroyClients)

interface Api {
  ug: Ugate
  port: number
  base: string
  /** Every body the API sent in this test, for the credentials check. */
  seen: string[]
  get(path: string, init?: Init): Promise<{ status: number; body: any; headers: Record<string, unknown> }>
  ws(path: string): Promise<Socket>
  /** Close every WebSocket; resolves once each is closed (the server closes its side first). */
  closeAll(): Promise<void>
}

interface Init {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'OPTIONS' | 'PUT'
  headers?: Record<string, string>
  body?: string
  /** Send no Authorization header. */
  anonymous?: boolean
}

interface Socket {
  ws: WebSocket
  /** Resolves with the first message (parsed) for which `pick` is true. */
  next<T = any>(pick?: (m: any) => boolean): Promise<T>
  closed: Promise<{ code: number }>
}

async function start(t: Test, extra: Record<string, unknown> = {}): Promise<Api & { echo: number; up: number }> {
  const echo = await echoServer(t)
  const up = await startMicrosocks(t, UP_AUTH)
  const ug = await startConfig(t, {
    log: { level: 'info' },
    relay: { shutdownGrace: 1 },
    admin: { listen: '127.0.0.1:0', secret: SECRET },
    listeners: [listener('mix', 'mixed', { users: [{ username: USER.user, password: USER.pass }] })],
    upstreams: [
      { name: 'up1', type: 'socks5', server: `127.0.0.1:${up.port}`, username: UP_AUTH.user, password: UP_AUTH.pass },
    ],
    rules: [
      { name: 'via-up', domain: ['via-upstream.test'], action: 'upstream:up1' },
      { domainSuffix: ['blocked.test'], action: 'reject' },
    ],
    ...extra,
  })
  const port = ug.port('admin-http')
  const base = `http://127.0.0.1:${port}`
  const seen: string[] = []
  const sockets: Socket[] = []
  const api: Api = {
    ug,
    port,
    base,
    seen,
    async get(path, init = {}) {
      const headers: Record<string, string> = { ...init.headers }
      if (!init.anonymous && headers.Authorization === undefined) headers.Authorization = `Bearer ${SECRET}`
      // reset: "Connection: close", so no pooled socket outlives the test's fd check.
      const res = await request(base + path, { method: init.method ?? 'GET', headers, body: init.body, reset: true })
      const text = await res.body.text()
      seen.push(text)
      let body: unknown = text
      try {
        body = JSON.parse(text)
      } catch {
        // Not JSON (metrics, empty 204).
      }
      return { status: res.statusCode, body, headers: res.headers }
    },
    async closeAll() {
      await Promise.all(
        sockets.map((x) => {
          x.ws.close(1000)
          return x.closed
        }),
      )
    },
    async ws(path) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
      const queue: any[] = []
      let wake: (() => void) | null = null
      ws.addEventListener('message', (e) => {
        seen.push(String(e.data))
        queue.push(JSON.parse(String(e.data)))
        wake?.()
      })
      const closed = new Promise<{ code: number }>((res) => ws.addEventListener('close', (e) => res({ code: e.code })))
      await new Promise<void>((res, rej) => {
        ws.addEventListener('open', () => res())
        ws.addEventListener('error', () => rej(new Error(`WebSocket ${path} failed`)))
      })
      t.teardown(() => ws.close())
      const sock: Socket = {
        ws,
        closed,
        async next(pick = () => true) {
          for (;;) {
            const i = queue.findIndex(pick)
            if (i >= 0) return queue.splice(0, i + 1)[i]
            await within(new Promise<void>((r) => (wake = r)), 15000, `a message on ${path}`)
          }
        },
      }
      sockets.push(sock)
      return sock
    },
  }
  return { ...api, echo: echo.port, up: up.port }
}

/** Resolves when ugate ends or resets the client socket (allowHalfOpen: 'end' comes before 'close'). */
function ended(sock: net.Socket): Promise<void> {
  return new Promise<void>((r) => {
    sock.once('end', () => r())
    sock.once('close', () => r())
  })
}

/** A SOCKS5 connection through ugate to the echo server, kept open. */
async function openConn(api: { ug: Ugate; echo: number }, host = '127.0.0.1') {
  const r = await socks5Connect(api.ug.port('mix'), { host, port: api.echo }, USER)
  return r.reader
}

/**
 * The end of each test: WebSockets closed, then one request whose close the
 * client sees: the server closes a connection in the turn it writes the
 * answer, so once this one is closed every earlier one is too. Then the
 * usual fd, conn-line and exit checks.
 */
async function done(t: Test, api: Api, conns: number): Promise<void> {
  await api.closeAll()
  await rawUntilClose(
    api.port,
    `GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SECRET}\r\nConnection: close\r\n\r\n`,
  )
  await finish(t, api.ug, conns)
}

/** Raw bytes; resolves with what arrived once it matches `until`, after closing and seeing the close. */
function rawUntil(port: number, bytes: string | Buffer, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes))
    let out = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => {
      out += d
      if (until.test(out)) s.end()
    })
    s.on('close', () => resolve(out))
    s.on('error', reject)
  })
}

t.test('authentication, CORS, errors with a reason', async (t) => {
  const api = await start(t)
  const noAuth = await api.get('/version', { anonymous: true })
  t.same([noAuth.status, noAuth.body], [401, { message: 'Unauthorized' }])
  t.equal(noAuth.headers['access-control-allow-origin'], '*', 'CORS on errors too')
  t.equal((await api.get('/version', { headers: { Authorization: 'Bearer nope' } })).status, 401)
  t.equal((await api.get('/version', { headers: { Authorization: SECRET } })).status, 401, 'scheme needed')
  t.equal(
    (await api.get('/version?token=' + SECRET, { headers: { Authorization: 'x' } })).status,
    401,
    'token only on WebSocket',
  )

  const pre = await api.get('/connections', {
    method: 'OPTIONS',
    anonymous: true,
    headers: { Origin: 'http://dash.example', 'Access-Control-Request-Method': 'DELETE' },
  })
  t.equal(pre.status, 204, 'preflight without the secret')
  t.match(pre.headers['access-control-allow-methods'], /DELETE/)
  t.match(pre.headers['access-control-allow-headers'], /Authorization/)

  const page = await api.get('/', { anonymous: true })
  t.same([page.status, page.headers['content-type']], [200, 'text/html; charset=utf-8'], 'the page needs no secret')
  t.match(page.body, /<title>ugate<\/title>/)
  t.equal((await api.get('/ugate/status', { anonymous: true })).status, 401, 'its data does')
  const nf = await api.get('/nope')
  t.same([nf.status, nf.body], [404, { message: 'Resource not found' }])
  const na = await api.get('/rules', { method: 'POST' })
  t.equal(na.status, 405)
  t.equal(na.headers.allow, 'GET')
  t.match(na.body, { message: 'POST is not allowed here' })
  t.match(await api.get('/proxies/%zz'), { status: 400, body: { message: /percent-encoding/ } })

  await done(t, api, 0)
})

t.test('version, configs and PATCH of the log level', async (t) => {
  const api = await start(t)
  t.match(await api.get('/version'), { status: 200, body: { version: /^\d+\.\d+\.\d+/, meta: false } })
  const c = await api.get('/configs')
  t.equal(c.status, 200)
  t.match(c.body, { 'mixed-port': api.ug.port('mix'), port: 0, 'socks-port': 0, mode: 'rule', 'log-level': 'info' })
  t.equal((await api.get('/configs', { method: 'PATCH', body: '{"log-level":"debug"}' })).status, 204)
  t.equal((await api.get('/configs')).body['log-level'], 'debug')
  await api.ug.waitForLine(/ warn log-level level=debug by=admin-api/)
  const dead = await refusedPort()
  await api.get(`/proxies/DIRECT/delay?url=http%3A%2F%2F127.0.0.1%3A${dead}%2F&timeout=2000`)
  await api.ug.waitForLine(/ debug connect-failed /)
  t.equal((await api.get('/configs', { method: 'PATCH', body: '{"log-level":"warning","mode":"Rule"}' })).status, 204)
  t.equal((await api.get('/configs')).body['log-level'], 'warning')
  t.match(await api.get('/configs', { method: 'PATCH', body: '{"log-level":"silent"}' }), {
    status: 400,
    body: { message: 'log-level "silent" is not one of debug, info, warning, error' },
  })
  t.match(await api.get('/configs', { method: 'PATCH', body: '{"mode":"global"}' }), { status: 400 })
  t.match(await api.get('/configs', { method: 'PATCH', body: '{"allow-lan":true}' }), {
    status: 400,
    body: { message: '"allow-lan" cannot be changed here (only log-level)' },
  })
  t.match(await api.get('/configs', { method: 'PATCH', body: 'not json' }), {
    status: 400,
    body: { message: /not JSON/ },
  })
  t.equal((await api.get('/configs', { method: 'PATCH', body: '{"log-level":"info"}' })).status, 204)
  await done(t, api, 0)
})

t.test('proxies, delay tests, rules with hits', async (t) => {
  const api = await start(t)
  const origin = http.createServer((req, res) => res.writeHead(req.method === 'HEAD' ? 204 : 404).end())
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  t.teardown(() => origin.close())
  const url = encodeURIComponent(`http://127.0.0.1:${(origin.address() as net.AddressInfo).port}/generate_204`)

  const p = await api.get('/proxies')
  t.same(Object.keys(p.body.proxies), ['DIRECT', 'REJECT', 'up1'])
  t.match(p.body.proxies.up1, { name: 'up1', type: 'Socks5', history: [] })
  t.match(await api.get('/proxies/REJECT'), { status: 200, body: { type: 'Reject' } })
  t.same((await api.get('/proxies/nope')).body, { message: 'Resource not found' })

  for (const name of ['DIRECT', 'up1']) {
    const d = await api.get(`/proxies/${name}/delay?url=${url}&timeout=5000`)
    t.equal(d.status, 200, `${name} delay`)
    t.ok(Number.isInteger(d.body.delay) && d.body.delay > 0, `${name}: ${d.body.delay} ms`)
  }
  const hist = (await api.get('/proxies/up1')).body.history
  t.equal(hist.length, 1)
  t.ok(hist[0].delay > 0 && !Number.isNaN(Date.parse(hist[0].time)))
  t.match(await api.get(`/proxies/DIRECT/delay?url=${url}`), { status: 400, body: { message: /timeout/ } })
  t.match(await api.get(`/proxies/DIRECT/delay?url=ftp%3A%2F%2Fx&timeout=100`), {
    status: 400,
    body: { message: /url/ },
  })
  t.match(await api.get(`/proxies/REJECT/delay?url=${url}&timeout=100`), { status: 503 })
  const dead = await refusedPort()
  t.match(await api.get(`/proxies/DIRECT/delay?url=http%3A%2F%2F127.0.0.1%3A${dead}%2F&timeout=2000`), {
    status: 503,
    body: { message: 'An error occurred in the delay test' },
  })

  const c1 = await openConn(api)
  c1.sock.destroy()
  await api.ug.waitForLine(/ info conn listener=mix /)
  const rules = (await api.get('/rules')).body.rules
  t.same(
    rules.map((r: any) => [r.index, r.type, r.payload, r.proxy]),
    [
      [0, 'Domain', 'via-upstream.test', 'up1'],
      [1, 'DomainSuffix', 'blocked.test', 'REJECT'],
      [2, 'Match', '', 'DIRECT'],
    ],
  )
  t.equal(rules[2].extra.hitCount, 1, 'the default route got the connection')
  t.ok(Date.parse(rules[2].extra.hitAt) > Date.parse('2020-01-01'))
  t.equal(rules[0].extra.hitCount, 0)
  await done(t, api, 1)
})

t.test('connections: snapshot, WebSocket push, live bytes, close one and all', async (t) => {
  const api = await start(t)
  const a = await openConn(api)
  a.sock.write(Buffer.alloc(5000, 1))
  await a.read(5000)

  const snap = await api.get('/connections')
  t.equal(snap.status, 200)
  t.equal(snap.body.connections.length, 1)
  const c = snap.body.connections[0]
  t.match(c, {
    id: /^\d+$/,
    metadata: {
      network: 'tcp',
      type: 'Mixed',
      sourceIP: '127.0.0.1',
      destinationIP: '127.0.0.1',
      destinationPort: String(api.echo),
      inboundName: 'mix',
      processPath: '',
    },
    chains: ['DIRECT'],
    rule: 'Match',
    rulePayload: '',
  })
  t.ok(Date.parse(c.start) <= Date.now())
  t.ok(snap.body.memory > 0)

  // The relay publishes its counts once a second: the push shows them.
  const ws = await api.ws(`/connections?token=${SECRET}`)
  const withBytes = await ws.next((m) => m.connections.length === 1 && m.connections[0].upload >= 5000)
  t.ok(withBytes.connections[0].download >= 5000, 'download counted live')
  t.ok(withBytes.uploadTotal >= 5000)

  const b = await openConn(api)
  const bClosed = ended(b.sock)
  const ids = (await api.get('/connections')).body.connections.map((x: any) => x.id)
  t.equal(ids.length, 2)
  const bId = ids.find((id: string) => id !== c.id)
  const connsBefore = api.ug.events('conn').length
  t.equal((await api.get(`/connections/${bId}`, { method: 'DELETE' })).status, 204)
  await bClosed
  // Its sockets close on the relay thread before the loop thread takes it off
  // the live list: its access line says it has.
  await api.ug.waitForConns(connsBefore + 1)
  t.match(await api.get(`/connections/${bId}`, { method: 'DELETE' }), {
    status: 404,
    body: { message: /no live connection/ },
  })
  t.equal((await api.get('/connections/abc', { method: 'DELETE' })).status, 404)

  const aClosed = ended(a.sock)
  t.equal((await api.get('/connections', { method: 'DELETE' })).status, 204)
  await aClosed
  await ws.next((m) => m.connections.length === 0)
  await done(t, api, 2)
})

t.test('a native forward: its bytes show while it is open, in /connections and /traffic', async (t) => {
  const echoSrv = await echoServer(t)
  // A forward to an IP literal at log level info runs in C (native/mod_gate.c).
  const api = await start(t, { listeners: [listener('fwd', 'forward', { target: echoSrv.target })] })
  const sock = await connect(api.ug.port('fwd'))
  let received = 0
  let wakeRead: (() => void) | null = null
  sock.on('data', (d: Buffer) => {
    received += d.length
    wakeRead?.()
  })
  const echoed = async (n: number) => {
    while (received < n) await within(new Promise<void>((r) => (wakeRead = r)), 15000, `${n} bytes echoed`)
  }
  const closed = ended(sock)
  const traffic = await api.ws(`/traffic?token=${SECRET}`)
  const conns = await api.ws(`/connections?token=${SECRET}`)
  const fwd = (m: any) => m.connections.find((c: any) => c.metadata.inboundName === 'fwd')

  sock.write(Buffer.alloc(5000, 3))
  await echoed(5000)
  // The relay thread publishes every relay's counts once a second: pushes until they show.
  const first = await conns.next((m) => fwd(m)?.upload >= 5000)
  t.match(fwd(first), { metadata: { network: 'tcp', type: 'Tunnel', destinationPort: String(echoSrv.port) } })
  t.ok(fwd(first).download >= 5000, `download counted while open (${fwd(first).download})`)
  t.ok(first.uploadTotal >= 5000, 'the totals count the live native forward')
  t.equal(connsOf(api.ug, 'fwd').length, 0, 'no access line yet: the connection is still open')

  sock.write(Buffer.alloc(7000, 4))
  await echoed(12000)
  const grown = await conns.next((m) => fwd(m)?.upload >= 12000)
  t.ok(fwd(grown).upload > fwd(first).upload, `upload grew while open: ${fwd(first).upload} → ${fwd(grown).upload}`)
  t.equal(fwd(grown).id, fwd(first).id, 'the same connection')
  let up = 0
  await traffic.next((m) => (up += m.up) >= 12000)
  t.pass(`/traffic summed ${up} bytes up of the open native forward`)

  const snap = await api.get('/ugate/status')
  t.match(snap.body, { relays: { active: 1 } }, 'status counts its relay (one count for every relay)')

  // DELETE /connections ends native forwards too.
  t.equal((await api.get('/connections', { method: 'DELETE' })).status, 204)
  await closed
  await conns.next((m) => m.connections.length === 0)
  t.match(connsOf(api.ug, 'fwd')[0]?.fields, { up: '12000', down: '12000', reason: 'closed' })
  await done(t, api, 1)
})

t.test('traffic, memory and logs streams; WebSocket rules', async (t) => {
  const api = await start(t)
  const traffic = await api.ws(`/traffic?token=${SECRET}`)
  const first = await traffic.next()
  t.same(Object.keys(first).sort(), ['down', 'downTotal', 'up', 'upTotal'])
  const conn = await openConn(api)
  conn.sock.write(Buffer.alloc(100000, 2))
  await conn.read(100000)
  let up = 0
  await traffic.next((m) => (up += m.up) >= 100000)
  t.pass(`traffic summed ${up} bytes up`)

  const mem = await api.ws(`/memory?token=${SECRET}`)
  t.ok((await mem.next()).inuse > 0)

  const logs = await api.ws(`/logs?token=${SECRET}&level=info`)
  conn.sock.destroy()
  const line = await logs.next((m) => /^conn /.test(m.payload))
  t.equal(line.type, 'info')
  t.match(line.payload, /listener=mix/)

  // Plain HTTP: chunked, one JSON document per chunk; the server closes when the client does.
  const plain = await rawUntil(
    api.port,
    `GET /traffic HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SECRET}\r\n\r\n`,
    /\r\n\r\n[0-9a-f]+\r\n\{.*\}\n\r\n/,
  )
  t.match(plain, /^HTTP\/1.1 200 OK\r\n[^]*Transfer-Encoding: chunked\r\n/)
  t.match(JSON.parse(plain.split('\r\n')[plain.split('\r\n').indexOf('') + 2]!), { up: Number, down: Number })

  // Errors of the handshake: wrong token, bad level, not a stream.
  const refused = await rawUntilClose(
    api.port,
    `GET /traffic?token=wrong HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  )
  t.match(refused, /^HTTP\/1.1 401 [^]*Connection: close/)
  t.match(await api.get('/logs?level=verbose'), { status: 400, body: { message: /level "verbose"/ } })
  const notStream = await rawUntilClose(
    api.port,
    `GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SECRET}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  )
  t.match(notStream, /^HTTP\/1.1 400 [^]*not a stream/)
  const badVersion = await rawUntilClose(
    api.port,
    `GET /traffic HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SECRET}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  )
  t.match(badVersion, /^HTTP\/1.1 400 [^]*Sec-WebSocket-Version must be 13/)

  // An unmasked client frame: close 1002 (RFC 6455 §5.1).
  const unmasked = await rawUntilClose(
    api.port,
    Buffer.concat([
      Buffer.from(
        `GET /memory?token=${SECRET} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      ),
      Buffer.from([0x81, 0x01, 0x61]),
    ]),
  )
  t.match(unmasked, /^HTTP\/1.1 101 Switching Protocols\r\n[^]*Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/)
  t.ok(unmasked.includes('\x88') && unmasked.includes('\x03\xea'), 'a close frame with 1002')

  // Ping → pong, close → close echoed.
  traffic.ws.close(1000)
  t.equal((await traffic.closed).code, 1000)
  await done(t, api, 1)
})

t.test('hardening: keep-alive, malformed input, limits', async (t) => {
  const api = await start(t)
  const auth = `Authorization: Bearer ${SECRET}\r\n`
  const two = await rawUntilClose(
    api.port,
    `GET /version HTTP/1.1\r\nHost: x\r\n${auth}\r\nGET /configs HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`,
  )
  t.equal(two.match(/HTTP\/1.1 200 OK/g)?.length, 2, 'two answers on one connection')
  t.match(two, /"version"[^]*"mixed-port"/)
  t.match(await rawUntilClose(api.port, 'GARBAGE\r\n\r\n'), /^HTTP\/1.1 400 [^]*"message":"http: bad request line/)
  t.match(await rawUntilClose(api.port, `GET /version HTTP/1.1\nHost: x\n\n`), /^HTTP\/1.1 400 [^]*bare LF/)
  t.match(await rawUntilClose(api.port, `GET /version HTTP/1.1\r\nX: ${'a'.repeat(20000)}\r\n\r\n`), /^HTTP\/1.1 431 /)
  t.match(
    await rawUntilClose(api.port, `PATCH /configs HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 70000\r\n\r\n`),
    /^HTTP\/1.1 413 [^]*over the 65536-byte limit/,
  )
  t.match(
    await rawUntilClose(
      api.port,
      `PATCH /configs HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ),
    /^HTTP\/1.1 411 /,
  )
  t.match(await rawUntilClose(api.port, `GET /version HTTP/2.0\r\n\r\n`), /^HTTP\/1.1 505 /)
  t.match(await rawUntilClose(api.port, Buffer.from([0, 1, 2, 3, 0xff, 13, 10, 13, 10])), /^HTTP\/1.1 400 /)
  // Still serving.
  t.equal((await api.get('/version')).status, 200)
  await done(t, api, 0)
})

t.test('a dashboard session as yacd and metacubexd make it', async (t) => {
  const api = await start(t)
  // Both first probe /version with the Bearer header, then read these fields.
  const v = await api.get('/version')
  t.type(v.body.version, 'string')
  const cfg = (await api.get('/configs')).body
  for (const k of ['port', 'socks-port', 'mixed-port', 'redir-port', 'allow-lan', 'mode', 'log-level'])
    t.ok(k in cfg, `configs.${k}`)
  const proxies = (await api.get('/proxies')).body.proxies
  for (const p of Object.values<any>(proxies)) {
    t.type(p.type, 'string')
    t.ok(Array.isArray(p.history))
  }
  const rules = (await api.get('/rules')).body.rules
  for (const r of rules) t.same(Object.keys(r).slice(0, 4).sort(), ['index', 'payload', 'proxy', 'type'])
  // Streams over WebSocket with ?token= (browsers cannot set headers there).
  const traffic = await api.ws(`/traffic?token=${encodeURIComponent(SECRET)}`)
  const conns = await api.ws(`/connections?token=${encodeURIComponent(SECRET)}`)
  const logs = await api.ws(`/logs?token=${encodeURIComponent(SECRET)}&level=info`)
  const c = await openConn(api)
  const seen = await conns.next((m) => m.connections.length === 1)
  const m = seen.connections[0]
  // The connections table's columns.
  const row = {
    host: m.metadata.host || m.metadata.destinationIP,
    dest: `${m.metadata.destinationIP}:${m.metadata.destinationPort}`,
    source: `${m.metadata.sourceIP}:${m.metadata.sourcePort}`,
    network: m.metadata.network,
    type: m.metadata.type,
    chains: m.chains.join(' / '),
    rule: m.rulePayload ? `${m.rule}(${m.rulePayload})` : m.rule,
    dl: m.download,
    ul: m.upload,
    start: new Date(m.start).getTime(),
  }
  t.match(row, { host: '127.0.0.1', network: 'tcp', type: 'Mixed', chains: 'DIRECT', rule: 'Match', dl: Number })
  t.ok(typeof seen.downloadTotal === 'number' && typeof seen.uploadTotal === 'number')
  t.match(await traffic.next(), { up: Number, down: Number })
  // "Close" in the table, then the closed connection leaves the push.
  const closed = ended(c.sock)
  t.equal((await api.get(`/connections/${m.id}`, { method: 'DELETE' })).status, 204)
  await closed
  await conns.next((x) => x.connections.length === 0)
  t.match(await logs.next((x) => /^conn /.test(x.payload)), { type: 'info', payload: /reason=closed/ })
  await done(t, api, 1)
})

t.test('credentials never appear in answers, metrics or log lines', async (t) => {
  const api = await start(t, { log: { level: 'debug' } })
  const logs = await api.ws(`/logs?token=${SECRET}&level=debug`)
  const c = await openConn(api)
  c.sock.destroy()
  await logs.next((m) => /^conn /.test(m.payload))
  for (const p of [
    '/version',
    '/configs',
    '/proxies',
    '/proxies/up1',
    '/rules',
    '/connections',
    '/metrics',
    '/ugate/status',
  ])
    await api.get(p)
  await api.get('/proxies/up1/delay?url=http%3A%2F%2F127.0.0.1%3A1%2F&timeout=500')
  await api.get('/nope?token=' + SECRET)
  await done(t, api, 1)
  const everything = [...api.seen, ...api.ug.lines].join('\n')
  t.ok(api.seen.length > 10 && everything.includes('"connections"'), 'answers were collected')
  for (const secret of CREDENTIALS) t.notOk(everything.includes(secret), `${secret.slice(0, 5)}… appears nowhere`)
})

t.test('SIGHUP: a new secret applies at once, a new address reopens the server', async (t) => {
  const dir = tempDir(t, 'ugate-admin-reload-')
  const file = join(dir, 'ugate.json')
  const config = (admin: Record<string, unknown>) =>
    JSON.stringify({ relay: { shutdownGrace: 1 }, admin, listeners: [listener('mix', 'mixed')] })
  writeFileSync(file, config({ listen: '127.0.0.1:0', secret: 'first' }))
  const ug = await startUgate(t, ['run', '--config', file])
  const port = ug.port('admin-http')
  const version = (p: number, secret: string) =>
    rawUntilClose(p, `GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nConnection: close\r\n\r\n`)
  t.match(await version(port, 'first'), /^HTTP\/1.1 200 /)

  // Ping → pong with the same payload (RFC 6455 §5.5.3), on a raw upgraded socket.
  const pong = await rawUntil(
    port,
    Buffer.concat([
      Buffer.from(
        `GET /logs?token=first HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      ),
      Buffer.from([0x89, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]),
    ]),
    /\x8a\x02hi/,
  )
  t.match(pong, /^HTTP\/1.1 101 [^]*\r\n\r\n\x8a\x02hi/)

  writeFileSync(file, config({ listen: '127.0.0.1:0', secret: 'second' }))
  process.kill(ug.pid, 'SIGHUP')
  await ug.waitForLines(/ info reloaded /, 1)
  t.equal(ug.matching(/ listening name=admin-http /).length, 1, 'same address: the socket is kept')
  t.match(await version(port, 'first'), /^HTTP\/1.1 401 /, 'the old secret no longer works')
  t.match(await version(port, 'second'), /^HTTP\/1.1 200 /)

  const next = await refusedPort()
  writeFileSync(file, config({ listen: `127.0.0.1:${next}`, secret: 'second' }))
  process.kill(ug.pid, 'SIGHUP')
  await ug.waitForLines(/ info reloaded /, 2)
  const ports = ug
    .events('listening')
    .filter((l) => l.fields.name === 'admin-http')
    .map((l) => Number(/:(\d+)$/.exec(l.fields.addr ?? '')![1]))
  t.same(ports, [port, next], 'the server was opened again at the new address')
  t.match(await version(ports[1]!, 'second'), /^HTTP\/1.1 200 /)
  await new Promise<void>((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', (e: NodeJS.ErrnoException) => {
      t.equal(e.code, 'ECONNREFUSED', 'the old address is closed')
      resolve()
    })
  })

  writeFileSync(file, config({ listen: '0.0.0.0:0' }))
  process.kill(ug.pid, 'SIGHUP')
  await ug.waitForLine(/ error reload-failed error="admin.listen: \\"0.0.0.0:0\\" is not a loopback address/)
  t.match(await version(ports[1]!, 'second'), /^HTTP\/1.1 200 /, 'a refused config keeps the server')
  await finish(t, ug, 0)
})
