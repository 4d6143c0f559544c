// HBONE end to end: ugate's hbone listener against Node's http2 as the mesh
// client, ugate's hbone upstream against Node's http2 as a ztunnel-like
// server, and ugate → ugate through one tunnel. Exact data both ways
// (sha256), half-close both directions, resets passed on (a destination's
// to the mesh client, a SOCKS client's to the peer), ztunnel's 400 / 401 /
// 503 answers, garbage instead of HTTP/2, fds back to the baseline; a
// forward listener through the hbone upstream; a reload (SIGHUP or ubus)
// with a new identity keeps live tunnels.

import { spawn } from 'node:child_process'
import { copyFileSync, mkdirSync } from 'node:fs'
import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import net from 'node:net'
import { join } from 'node:path'
import tls, { type TLSSocket } from 'node:tls'
import t from 'tap'
import type { Test } from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { mesh, type Mesh, TRUST_DOMAIN } from '../lib/mesh.js'
import { connectReader, socks5Connect } from '../lib/proxy.js'
import { dataServer, echoServer, listenFixture, prngBytes, sha256, within } from '../lib/servers.js'
import { checkCleanExit, checkFds, finish, parseLogLine, runUgate, type Ugate } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'
import { UbusdStandin } from '../lib/ubusd-standin.js'

const ids = mesh(t)

/**
 * The close of A's pooled tunnel to B, once B has stopped: only that line, as A
 * may log other tunnels' ends (a client's session to A's own hbone listener).
 */
const poolClosed = (b: Ugate) =>
  new RegExp(` info hbone-closed .*peer=127\\.0\\.0\\.1:${b.port('mesh')} .*reason=(goaway|tunnel-closed)`)

/** What Node's client gets back on one CONNECT stream. */
interface Back {
  status: number
  sha: string
  bytes: number
  rst: number
}

function collect(s: http2.ClientHttp2Stream): Promise<Back> {
  return new Promise((done) => {
    const h = createHash('sha256')
    let status = 0
    let bytes = 0
    s.on('response', (hd) => (status = Number(hd[':status'])))
    s.on('data', (d: Buffer) => {
      h.update(d)
      bytes += d.length
    })
    s.on('error', () => {})
    s.on('close', () => done({ status, sha: h.digest('hex'), bytes, rst: s.rstCode ?? 0 }))
  })
}

async function upload(s: http2.ClientHttp2Stream, data: Buffer, end: boolean): Promise<void> {
  for (let off = 0; off < data.length; off += 65536)
    if (!s.write(data.subarray(off, off + 65536))) await new Promise((ok) => s.once('drain', ok))
  if (end) s.end()
}

/** A TCP server that resets every connection after its first byte. */
function resetServer(t: Test): Promise<number> {
  return new Promise((ok) => {
    const srv = net.createServer((c) => {
      c.on('error', () => {})
      c.once('data', () => c.resetAndDestroy())
    })
    srv.listen(0, '127.0.0.1', () => ok((srv.address() as net.AddressInfo).port))
    t.teardown(() => srv.close())
  })
}

/** A port nobody listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok))
  const port = (srv.address() as net.AddressInfo).port
  await new Promise((ok) => srv.close(ok))
  return port
}

t.test('hbone listener: Node http2 as the mesh client', async (t) => {
  const echo = await echoServer(t)
  const reset = await resetServer(t)
  const closed = await closedPort()
  const ug = await startConfig(
    t,
    proxyConfig([listener('mesh', 'hbone')], {
      rules: [{ name: 'deny', dstPort: [String(closed + 1)], action: 'reject' }],
      ...ids.config('b'),
    }),
  )
  // ugate's SPIFFE id pinned, as ztunnel's client pins its destination's.
  const client = ids.connect('client', ug.port('mesh'), 'b')
  t.teardown(() => client.destroy())
  await within(new Promise((ok) => client.once('remoteSettings', ok)), 10_000, 'SETTINGS from ugate (its id pinned)')
  const connect = (authority: string, extra: http2.OutgoingHttpHeaders = {}) =>
    client.request({ ':method': 'CONNECT', ':authority': authority, ...extra })

  // 8 MiB each way on one stream, then the client's END_STREAM: the echo ends too.
  const big = prngBytes(1, 8 << 20)
  const s1 = connect(echo.target, {
    baggage: 'k8s.namespace.name=ns,service.name=client',
    forwarded: 'for="10.1.2.3"',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  })
  const back1 = collect(s1)
  await upload(s1, big, true)
  const b1 = await back1
  t.equal(b1.status, 200, 'CONNECT answered 200')
  t.equal(b1.bytes, big.length, '8 MiB back')
  t.equal(b1.sha, sha256(big), 'sha256 back = sha256 sent')
  t.equal(b1.rst, 0, 'ended by END_STREAM both ways (half-close passed on)')
  const [line] = await waitConnsOf(ug, 'mesh', 1)
  t.match(
    line!.fields,
    {
      listener: 'mesh',
      dst: echo.target,
      up: String(big.length),
      down: String(big.length),
      reason: 'eof',
      identity: ids.spiffe('client'),
      baggage: 'k8s.namespace.name=ns,service.name=client',
      forwarded: 'for="10.1.2.3"',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      action: 'direct',
    },
    'access line: source identity, baggage, forwarded, traceparent',
  )

  // 100 concurrent streams on the one connection.
  const n = 100
  const streams = Array.from({ length: n }, () => connect(echo.target))
  const backs = streams.map(collect)
  const payloads = streams.map((_, i) => prngBytes(100 + i, 64 << 10))
  await Promise.all(streams.map((s, i) => upload(s, payloads[i]!, true)))
  const res = await Promise.all(backs)
  t.equal(
    res.filter((r, i) => r.status === 200 && r.sha === sha256(payloads[i]!)).length,
    n,
    '100 concurrent streams echoed exactly',
  )

  // A reset upstream is a reset downstream.
  const rs = connect(`127.0.0.1:${reset}`)
  const rsBack = collect(rs)
  rs.write('x')
  const r = await rsBack
  t.equal(r.status, 200, 'reset: 200 first')
  t.not(r.rst, 0, `reset: the destination's RST arrives as RST_STREAM (code ${r.rst})`)

  // ztunnel's refusals.
  t.equal((await collect(connect(`127.0.0.1:${closed}`))).status, 503, 'dial failure: 503')
  t.equal((await collect(connect(`127.0.0.1:${closed + 1}`))).status, 401, 'rejected by a rule: 401')
  t.equal((await collect(connect('no-port-here'))).status, 400, 'bad authority: 400')
  const lines = await waitConnsOf(ug, 'mesh', 105)
  t.ok(
    lines.some((l) => l.fields.reason === 'bad-authority'),
    'bad authority logged',
  )

  await new Promise<void>((ok) => client.close(ok))
  await ug.waitForLine(/ info hbone-closed /)

  // Garbage instead of the TLS handshake / the HTTP/2 preface: closed, ugate stays up.
  const raw = net.connect(ug.port('mesh'), '127.0.0.1')
  raw.on('error', () => {})
  raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(10))
  // A TLS alert, then EOF or (bytes left unread) a reset: either way closed by ugate.
  const ended = new Promise((ok) => {
    raw.once('end', ok)
    raw.once('close', ok)
  })
  raw.resume()
  await within(ended, 10_000, 'garbage: closed by ugate')
  raw.destroy()
  t.pass('garbage: connection closed by ugate')
  await ug.waitForLines(/ info hbone-closed /, 2)
  checkFds(t, ug)
  await finish(t, ug, 0)
})

// A stream's socket is not read again after a short read (bytes arriving later
// raise a new edge), unless a FIN or an urgent byte came with it: a read stops
// short at an urgent mark (MSG_OOB, not inline: never part of the stream), and
// data with the FIN behind it may be all one edge. The destination sends
// everything at once and closes before ugate reads: every byte and the EOF
// must still reach the mesh client.
for (const [flow, lead] of [
  ['short', 3],
  ['bulk', 200 * 1024],
] as const) {
  t.test(`hbone listener: urgent data and a FIN behind a short read (${flow})`, async (t) => {
    const server = `
import socket, sys
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
c.sendall(b'a' * int(sys.argv[1])); c.send(b'!', socket.MSG_OOB); c.sendall(b'def')
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
`
    const py = spawn('python3', ['-c', server, String(lead)], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => py.kill())
    const port = await within(
      new Promise<number>((ok) => py.stdout.once('data', (d: Buffer) => ok(Number(d.toString().trim())))),
      10_000,
      'python server port',
    )
    const ug = await startConfig(t, proxyConfig([listener('mesh', 'hbone')], ids.config('b')))
    const client = ids.connect('client', ug.port('mesh'))
    t.teardown(() => client.destroy())
    const s = client.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${port}` }, { endStream: false })
    let tail = ''
    s.on('data', (d: Buffer) => (tail = (tail + d.toString('latin1')).slice(-3)))
    const back = collect(s)
    const ended = new Promise((ok) => s.once('end', ok))
    await within(ended, 10_000, 'END_STREAM after the last byte')
    s.end()
    const b = await back
    t.equal(b.status, 200, 'CONNECT answered 200')
    t.equal(b.bytes, lead + 3, 'every byte came, the urgent one left out')
    t.equal(tail, 'def', 'the bytes behind the urgent mark last')
    await new Promise<void>((ok) => client.close(ok))
    await finish(t, ug, 0)
  })
}

t.test('hbone upstream: Node http2 as a ztunnel-like server', async (t) => {
  const seen: { authority: string; headers: http2.IncomingHttpHeaders; rst: number }[] = []
  let resetSeen: (code: number) => void = () => {}
  const reset = new Promise<number>((ok) => (resetSeen = ok))
  const server = ids.server('server', (stream, headers) => {
    const authority = String(headers[':authority'])
    const rec = { authority, headers, rst: -1 }
    seen.push(rec)
    stream.on('close', () => {
      rec.rst = stream.rstCode ?? 0
      if (authority.startsWith('10.9.9.4:')) resetSeen(rec.rst)
    })
    stream.on('error', () => {}) // a reset with an error code; its close says which
    if (authority.startsWith('10.9.9.3:')) return stream.respond({ ':status': 503 }, { endStream: true })
    if (authority.startsWith('10.9.9.1:')) return stream.respond({ ':status': 401 }, { endStream: true })
    stream.respond({ ':status': 200 })
    stream.pipe(stream) // echo, half-close included
  })
  const port = await server.listen()
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      upstreams: [{ name: 'peer', type: 'hbone', server: `127.0.0.1:${port}` }],
      rules: [{ name: 'mesh', action: 'upstream:peer' }],
      ...ids.config('a'),
    }),
  )
  const payload = prngBytes(7, 4 << 20)
  const s = await socks5Connect(ug.port('socks'), { host: '10.9.9.2', port: 80 })
  t.equal(s.reply?.[1], 0, 'SOCKS CONNECT through the tunnel succeeded')
  s.reader.sock.end(payload)
  const back = await s.reader.rest()
  t.ok(back.ended, 'the half-close came back as EOF')
  t.equal(sha256(back.data), sha256(payload), '4 MiB each way, exact')
  const rec = seen.find((x) => x.authority === '10.9.9.2:80')
  t.equal(rec?.headers[':method'], 'CONNECT', 'CONNECT')
  t.equal(rec?.headers.forwarded, 'for="127.0.0.1"', 'forwarded: the client address')
  t.match(String(rec?.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, 'traceparent')
  const [line] = await waitConnsOf(ug, 'socks', 1)
  t.match(line!.fields, { reason: 'eof', via: 'peer', action: 'upstream' }, 'access line names the upstream')

  // The client's reset: its stream is reset too (the socket pair ugate bridges it through
  // only shows a close, which ugate takes as a reset while the peer's half still runs),
  // with CONNECT_ERROR as RFC 9113 8.5 has a proxy signal a TCP reset.
  const rs = await socks5Connect(ug.port('socks'), { host: '10.9.9.4', port: 80 })
  rs.reader.sock.write('x')
  await rs.reader.read(1)
  rs.reader.sock.resetAndDestroy()
  t.equal(
    await reset,
    http2.constants.NGHTTP2_CONNECT_ERROR,
    "the client's reset arrives as RST_STREAM (CONNECT_ERROR)",
  )

  const refused = await socks5Connect(ug.port('socks'), { host: '10.9.9.3', port: 80 })
  t.not(refused.reply?.[1], 0, '503 from the peer: the SOCKS CONNECT fails')
  const denied = await socks5Connect(ug.port('socks'), { host: '10.9.9.1', port: 80 })
  t.not(denied.reply?.[1], 0, '401 from the peer: the SOCKS CONNECT fails')
  const lines = await waitConnsOf(ug, 'socks', 4)
  t.ok(
    lines.some((l) => l.fields.reason === 'upstream-refused:503'),
    'upstream-refused:503 logged',
  )
  t.ok(
    lines.some((l) => l.fields.reason === 'upstream-refused:401'),
    'upstream-refused:401 logged',
  )
  t.equal(server.sessions(), 1, 'one pooled connection carried all streams')
  const [peer] = server.peers()
  t.match(
    peer?.settings,
    { initialWindowSize: 4 << 20, maxFrameSize: 1 << 20, enablePush: false },
    "ugate's SETTINGS: ztunnel's 4 MiB stream window and 1 MiB frames, no push",
  )
  // Consumed bytes are given back once they reach half the window: 8-16 MiB of 16, 65535 without ztunnel's.
  const win = peer?.window ?? 0
  t.ok(win > 8 << 20 && win <= 16 << 20, `ugate's connection window: ztunnel's 16 MiB (${win} left open)`)
  t.same(await within(server.ping(), 10_000, 'PING ACK'), [true], "the server's PING is ACKed by ugate's client")
  // The pool keeps its idle connection until the peer's GOAWAY (or the idle timeout).
  server.goaway()
  await ug.waitForLine(/ info hbone-closed .*reason=goaway/)
  await finish(t, ug, 4)
})

t.test('hbone upstream: a peer that resets right after the handshake is named', async (t) => {
  // As a server that refuses our certificate once our TLS 1.3 handshake is done (the client
  // is done first) and closes before we read its alert: our next read or write fails.
  const context = tls.createSecureContext(ids.tlsOptions('server'))
  const { port } = await listenFixture(t, '127.0.0.1', (raw) => {
    const s = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ['h2'],
      requestCert: true,
      rejectUnauthorized: false,
    })
    s.on('error', () => {})
    s.on('secure', () => raw.resetAndDestroy())
  })
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      upstreams: [{ name: 'peer', type: 'hbone', server: `127.0.0.1:${port}` }],
      rules: [{ name: 'mesh', action: 'upstream:peer' }],
      ...ids.config('a'),
    }),
  )
  const s = await socks5Connect(ug.port('socks'), { host: '10.9.9.2', port: 80 })
  t.not(s.reply?.[1], 0, 'the SOCKS CONNECT fails')
  const closed = parseLogLine(await ug.waitForLine(/ info hbone-closed .*detail=/))!
  t.match(
    closed.fields.detail,
    /^peer ended the connection after the handshake \((Connection reset by peer|Broken pipe): it probably refused our certificate\)$/,
    'the tunnel error says the peer ended it after the handshake',
  )
  await finish(t, ug, 1)
})

t.test('ugate → ugate through one tunnel', async (t) => {
  const echo = await echoServer(t)
  const b = await startConfig(t, proxyConfig([listener('mesh', 'hbone')], ids.config('b')))
  const a = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks'), listener('web', 'http')], {
      upstreams: [{ name: 'b', type: 'hbone', server: `127.0.0.1:${b.port('mesh')}`, identity: ids.spiffe('b') }],
      rules: [{ name: 'mesh', action: 'upstream:b' }],
      admin: { socket: ids.socket('a') },
      ...ids.config('a'),
    }),
  )
  // An HTTP proxy client's CONNECT takes the same tunnel (issue 12: SOCKS/HTTP clients).
  const web = await connectReader(a.port('web'))
  web.sock.write(`CONNECT ${echo.target} HTTP/1.1\r\nHost: ${echo.target}\r\n\r\n`)
  t.equal((await web.read(39)).toString(), 'HTTP/1.1 200 Connection established\r\n\r\n', 'HTTP CONNECT: 200')
  const webPayload = prngBytes(20, 1 << 20)
  web.sock.end(webPayload)
  const webBack = await web.rest()
  t.ok(webBack.ended && sha256(webBack.data) === sha256(webPayload), 'HTTP CONNECT: 1 MiB each way, exact')
  const runs = [1, 2, 3, 4].map(async (i) => {
    const payload = prngBytes(20 + i, 2 << 20)
    const s = await socks5Connect(a.port('socks'), { host: '127.0.0.1', port: echo.port })
    s.reader.sock.end(payload)
    const back = await s.reader.rest()
    return back.ended && sha256(back.data) === sha256(payload)
  })
  t.same(await Promise.all(runs), [true, true, true, true], '4 streams of 2 MiB each way, exact')
  const bl = await waitConnsOf(b, 'mesh', 5)
  t.ok(
    bl.every((l) => l.fields.identity === ids.spiffe('a') && l.fields.reason === 'eof'),
    "B's access lines carry A's identity",
  )
  const st = runUgate(['ctl', '--socket', ids.socket('a'), '--json', 'status'])
  const status = JSON.parse(st.stdout) as { hbone: { role: string; streamsTotal: number; peerId: string }[] }
  t.equal(status.hbone.length, 1, 'one tunnel in ctl status')
  t.match(status.hbone[0], { role: 'client', streamsTotal: 5 }, 'with its stream count')
  // B stops first (its tunnel from A lives as long as A's pool keeps it): A's pooled
  // connection closes with it, and A's fds are back to the baseline.
  checkCleanExit(t, b, await b.stop())
  await a.waitForLine(poolClosed(b))
  await finish(t, a, 5)
})

// Issue 12: a `forward` listener reaches its target through a peer gate too:
// `upstream` names an hbone upstream, and every connection is a CONNECT
// stream to the fixed target on A's pooled tunnel to B. Half-close both ways:
// the client's FIN first (the server answers only after it), and the
// server's FIN first (the client sends only after it).
t.test('a forward listener through an hbone upstream', async (t) => {
  const late = await dataServer(t, { bytes: 3 << 20, seed: 31, mode: 'after-eof' })
  const early = await dataServer(t, { bytes: 1 << 20, seed: 32, mode: 'simultaneous' })
  const b = await startConfig(t, proxyConfig([listener('mesh', 'hbone')], ids.config('b')))
  const a = await startConfig(
    t,
    proxyConfig(
      [
        listener('late', 'forward', { target: late.target, upstream: 'b' }),
        listener('early', 'forward', { target: early.target, upstream: 'b' }),
      ],
      {
        upstreams: [{ name: 'b', type: 'hbone', server: `127.0.0.1:${b.port('mesh')}`, identity: ids.spiffe('b') }],
        admin: { socket: ids.socket('a') },
        ...ids.config('a'),
      },
    ),
  )
  // The client's FIN first: the server sends its 3 MiB only once it has seen it.
  const up = prngBytes(33, 2 << 20)
  const c1 = await connectReader(a.port('late'))
  c1.sock.end(up)
  const back1 = await c1.rest()
  const got1 = await late.conn(0)
  t.same(await got1.received, { hash: sha256(up), bytes: up.length }, "client's FIN first: 2 MiB up, exact")
  t.ok(back1.ended, "the server's FIN after it reaches the client")
  t.equal(sha256(back1.data), sha256(prngBytes(31, 3 << 20)), '3 MiB down after the half-close, exact')
  // The server's FIN first: the client reads to it, then sends and ends.
  const c2 = await connectReader(a.port('early'))
  const down2 = await c2.rest()
  t.ok(down2.ended && sha256(down2.data) === sha256(prngBytes(32, 1 << 20)), "server's FIN first: 1 MiB down, exact")
  const up2 = prngBytes(34, 1 << 20)
  c2.sock.end(up2)
  t.same(await (await early.conn(0)).received, { hash: sha256(up2), bytes: up2.length }, '1 MiB up after it, exact')
  const al = [...(await waitConnsOf(a, 'late', 1)), ...(await waitConnsOf(a, 'early', 1))]
  t.same(
    al.map((l) => [l.fields.dst, l.fields.action, l.fields.via]),
    [
      [late.target, 'upstream', 'b'],
      [early.target, 'upstream', 'b'],
    ],
    "A's access lines name the upstream",
  )
  const bl = await waitConnsOf(b, 'mesh', 2)
  t.same(
    bl.map((l) => [l.fields.dst, l.fields.identity]).sort(),
    [
      [early.target, ids.spiffe('a')],
      [late.target, ids.spiffe('a')],
    ].sort(),
    "B served both as CONNECT streams from A's identity",
  )
  const st = runUgate(['ctl', '--socket', ids.socket('a'), '--json', 'status'])
  const status = JSON.parse(st.stdout) as { hbone: { role: string; streamsTotal: number }[] }
  t.match(status.hbone, [{ role: 'client', streamsTotal: 2 }], 'both streams on one pooled tunnel')
  checkCleanExit(t, b, await b.stop())
  await a.waitForLine(poolClosed(b))
  await finish(t, a, 2)
})

// Issue 12: certificates are reloaded (SIGHUP, and ubus reload) without
// dropping tunnels. A's identity files are replaced by another node's while a
// stream through A → B is open: both reload, the stream goes on over the same
// tunnel, and a new TLS connection to A's own listener gets the new certificate.

/** How a test asks a ugate to reload: the config it adds, and the reload once ugate is up. */
interface Reloader {
  config: Record<string, unknown>
  ready(ug: Ugate): Promise<void>
  reload(ug: Ugate): Promise<void>
}

const reloaders: Record<string, (t: Test) => Promise<Reloader>> = {
  SIGHUP: async () => ({ config: {}, ready: async () => {}, reload: async (ug) => void ug.signal('SIGHUP') }),
  // The ugate object's reload method, through the ubusd stand-in (one per node: both register `ugate`).
  ubus: async (t) => {
    const ubusd = new UbusdStandin(join(tempDir(t, 'ugate-ubus-'), 'ubus.sock'))
    t.teardown(() => ubusd.stop())
    await ubusd.start()
    return {
      config: { ubus: { socket: ubusd.path } },
      ready: async (ug) => void (await ug.waitForLine(/ info ubus-registered object=ugate /)),
      reload: async () => void t.same(await ubusd.call('reload'), { status: 0, data: {} }, 'ubus reload answered'),
    }
  },
}

for (const [via, reloader] of Object.entries(reloaders))
  t.test(`${via} with a new identity keeps live tunnels; new connections get the new one`, async (t) => {
    const [ra, rb] = [await reloader(t), await reloader(t)]
    const echo = await echoServer(t)
    const live = join(tempDir(t, 'ugate-live-id-'), 'id')
    mkdirSync(live)
    const use = (node: string) => {
      for (const f of ['cert-chain.pem', 'key.pem', 'root-cert.pem'])
        copyFileSync(join(ids.dir(node), f), join(live, f))
    }
    use('c')
    const b = await startConfig(t, proxyConfig([listener('mesh', 'hbone')], { ...ids.config('b'), ...rb.config }))
    const a = await startConfig(
      t,
      proxyConfig([listener('socks', 'socks'), listener('in', 'hbone')], {
        upstreams: [{ name: 'b', type: 'hbone', server: `127.0.0.1:${b.port('mesh')}`, identity: ids.spiffe('b') }],
        rules: [{ name: 'mesh', listener: ['socks'], action: 'upstream:b' }],
        admin: { socket: ids.socket('a') },
        mesh: { identityDir: live, trustDomain: TRUST_DOMAIN },
        ...ra.config,
      }),
    )
    await ra.ready(a)
    await rb.ready(b)
    const payload = prngBytes(7, 4 << 20)
    const half = payload.length / 2
    const s = await socks5Connect(a.port('socks'), { host: '127.0.0.1', port: echo.port })
    s.reader.sock.write(payload.subarray(0, half))
    const first = await s.reader.read(half)

    use('d')
    await ra.reload(a)
    await rb.reload(b)
    const now = await a.waitForLine(/ info mesh-identity .*reloaded=true/)
    t.match(now, `spiffeId=${ids.spiffe('d')} `, 'A: the new identity is in use')
    await b.waitForLine(/ info mesh-identity .*reloaded=true/)
    await a.waitForLine(/ info reloaded /)
    await b.waitForLine(/ info reloaded /)

    s.reader.sock.end(payload.subarray(half))
    const back = await s.reader.rest()
    t.ok(
      back.ended && sha256(Buffer.concat([first, back.data])) === sha256(payload),
      '4 MiB echoed exactly, half before and half after both reloads',
    )
    t.equal(a.matching(/ info hbone-closed /).length + b.matching(/ info hbone-closed /).length, 0, 'no tunnel closed')
    const st = runUgate(['ctl', '--socket', ids.socket('a'), '--json', 'status'])
    const status = JSON.parse(st.stdout) as { hbone: { role: string; streamsTotal: number }[] }
    t.match(status.hbone, [{ role: 'client', streamsTotal: 1 }], "A's one tunnel, the stream it carried")
    const [line] = await waitConnsOf(b, 'mesh', 1)
    t.equal(line!.fields.identity, ids.spiffe('c'), 'the live tunnel kept the identity it started with')

    // A new connection to A's listener: A presents the new certificate.
    const client = ids.connect('client', a.port('in'))
    await within(new Promise((ok) => client.once('remoteSettings', ok)), 10_000, "SETTINGS from A's listener")
    const san = (client.socket as TLSSocket).getPeerCertificate().subjectaltname
    t.equal(san, `URI:${ids.spiffe('d')}`, "A's listener presents the new identity")
    await new Promise<void>((ok) => client.close(ok))
    checkCleanExit(t, b, await b.stop())
    await a.waitForLine(poolClosed(b))
    await finish(t, a, 1)
  })
