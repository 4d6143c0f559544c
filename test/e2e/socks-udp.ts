// SOCKS5 UDP ASSOCIATE (RFC 1928 §7) on socks and mixed listeners: the npm
// `socks` client (not ours) echoes exact payloads through a UDP echo server,
// IPv4 and IPv6 destinations; our own client then sends what a real client
// would not: datagrams from a foreign source, fragments, domain DST.ADDRs,
// headers that lie about their lengths and garbage. Each is counted in
// `ctl status` (udp.socks), nothing crashes, the association ends with its
// control connection and the fds come back to the baseline. Then: the cap
// of 64 destinations per association (the least recently used goes, and is
// routed again when named again), the bounded queue of a destination whose
// route waits (a socks5 upstream that holds its UDP ASSOCIATE reply), and
// forward rules (replies carry the destination the client named). Last, ugate
// A relays a SOCKS client's datagrams through ugate B's socks listener as a
// socks5 upstream (A's destination routed by a rule), and A's association
// ends when B closes the control connection of its own.

import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import net from 'node:net'
import { SocksClient } from 'socks'
import t from 'tap'
import type { Test } from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { Reader, connectReader, socks5Address } from '../lib/proxy.js'
import { destroyClients, prngBytes, within } from '../lib/servers.js'
import { finish, runUgate } from '../lib/ugate.js'
import type { Ugate } from '../lib/ugate.js'
import { tempSocket } from '../lib/temp.js'

t.teardown(destroyClients)

/** A UDP socket bound on `host`, closed on teardown. */
async function udpSocket(t: Test, host: string): Promise<UdpSocket> {
  const s = createSocket(host.includes(':') ? 'udp6' : 'udp4')
  await new Promise<void>((res, rej) => {
    s.once('error', rej)
    s.bind(0, host, () => res())
  })
  t.teardown(() => s.close())
  return s
}

/** An echo server on 127.0.0.1 and ::1, the same port on both. */
async function udpEcho(t: Test): Promise<{ port: number }> {
  for (;;) {
    const v4 = await udpSocket(t, '127.0.0.1')
    const port = v4.address().port
    const v6 = createSocket('udp6')
    const ok = await new Promise<boolean>((res) => {
      v6.once('error', () => res(false))
      v6.bind(port, '::1', () => res(true))
    })
    if (!ok) continue
    t.teardown(() => v6.close())
    for (const s of [v4, v6]) s.on('message', (m, r) => s.send(m, r.port, r.address))
    return { port }
  }
}

/** The next datagram on `s` (within 5 s). */
function nextMessage(s: UdpSocket, what: string): Promise<Buffer> {
  return within(new Promise<Buffer>((res) => s.once('message', (m) => res(m))), 5000, what)
}

/** Nothing arrives on `s` until the marker datagram does (sent after the one that must be dropped). */
async function droppedBefore(s: UdpSocket, marker: Buffer, what: string): Promise<Buffer> {
  return within(
    new Promise<Buffer>((res) => {
      const on = (m: Buffer) => {
        s.off('message', on)
        res(m)
      }
      s.on('message', on)
    }),
    5000,
    what,
  ).then((m) => {
    if (!m.subarray(m.length - marker.length).equals(marker)) throw new Error(`${what}: got ${m.toString('hex')}`)
    return m
  })
}

interface Assoc {
  control: Reader
  relay: { host: string; port: number }
}

/** Our own client: greeting, optional user/pass, UDP ASSOCIATE declaring `port`. */
async function associate(proxyPort: number, port: number, user?: [string, string]): Promise<Assoc> {
  const control = await connectReader(proxyPort)
  control.sock.write(Buffer.from(user ? [5, 1, 2] : [5, 1, 0]))
  const choice = await control.read(2)
  if (user) {
    const [u, p] = user
    control.sock.write(
      Buffer.concat([Buffer.from([1, u.length]), Buffer.from(u), Buffer.from([p.length]), Buffer.from(p)]),
    )
    const st = await control.read(2)
    if (st[1] !== 0) throw new Error('auth failed')
  } else if (choice[1] !== 0) throw new Error(`method ${choice[1]}`)
  control.sock.write(Buffer.concat([Buffer.from([5, 3, 0]), socks5Address('0.0.0.0', port)]))
  const head = await control.read(4)
  if (head[1] !== 0) throw new Error(`reply ${head[1]}`)
  const alen = head[3] === 1 ? 4 : 16
  const rest = await control.read(alen + 2)
  const host =
    alen === 4
      ? [...rest.subarray(0, 4)].join('.')
      : (rest.subarray(0, 16).toString('hex').match(/.{4}/g) ?? []).map((x) => x.replace(/^0+(?=.)/, '')).join(':')
  return { control, relay: { host, port: rest.readUInt16BE(alen) } }
}

/** RSV FRAG ATYP DST.ADDR DST.PORT DATA. */
function frame(host: string, port: number, data: Buffer, frag = 0): Buffer {
  return Buffer.concat([Buffer.from([0, 0, frag]), socks5Address(host, port), data])
}

interface SocksUdpStatus {
  associationsLive: number
  associationsTotal: number
  packetsUp: number
  packetsDown: number
  destsEvicted: number
  drops: Record<string, number>
}
function socksStatus(socket: string): SocksUdpStatus {
  const r = runUgate(['ctl', '--json', '--socket', socket, 'status'])
  if (r.code !== 0) throw new Error(`ctl status: ${r.stdout} ${r.stderr.join('\n')}`)
  return (JSON.parse(r.stdout) as { udp: { socks: SocksUdpStatus } }).udp.socks
}

/** The `socks` package's associate: the control socket and the relay it was told. */
function npmAssociate(proxyPort: number, user?: { userId: string; password: string }) {
  const client = new SocksClient({
    proxy: { host: '127.0.0.1', port: proxyPort, type: 5, ...user },
    command: 'associate',
    destination: { host: '0.0.0.0', port: 0 },
  })
  const p = new Promise<{ socket: import('node:net').Socket; relay: { host: string; port: number } }>((res, rej) => {
    client.once('established', (info) => res({ socket: info.socket, relay: info.remoteHost! }))
    client.once('error', rej)
  })
  client.connect()
  return within(p, 20_000, 'the npm client associates')
}

/** The `socks` package's client (associate + createUDPFrame/parseUDPFrame) through proxyPort. */
async function npmClientEcho(
  t: Test,
  proxyPort: number,
  echoPort: number,
  user?: { userId: string; password: string },
) {
  const { socket, relay } = await npmAssociate(proxyPort, user)
  t.equal(relay.host, '127.0.0.1', 'BND.ADDR is the address the client reached, not 0.0.0.0')
  t.not(relay.port, 0, 'BND.PORT is the relay socket')
  const udp = await udpSocket(t, '127.0.0.1')
  for (const [i, dst] of ['127.0.0.1', '::1'].entries()) {
    for (const size of [1, 1200, 8000]) {
      const data = prngBytes(i * 100 + size, size)
      udp.send(SocksClient.createUDPFrame({ remoteHost: { host: dst, port: echoPort }, data }), relay.port, relay.host)
      const got = SocksClient.parseUDPFrame(await nextMessage(udp, `echo of ${size} bytes via ${dst}`))
      t.ok(got.data.equals(data), `${size} bytes to ${dst}: exact payload back`)
      t.same(got.remoteHost, { host: sameIp(dst), port: echoPort }, `the header names the real source ${dst}`)
    }
  }
  return socket
}

/** How the npm client spells an address it parsed (IPv6 in full, zero-padded). */
function sameIp(ip: string): string {
  return ip === '::1' ? '0000:0000:0000:0000:0000:0000:0000:0001' : ip
}

/**
 * The first association starts the UDP thread, whose epoll and eventfd stay:
 * one association opened and closed, then the fd baseline is taken again
 * (only those two new fds, no socket, may have appeared).
 */
async function warmUp(t: Test, ug: Ugate, name: string): Promise<void> {
  const before = new Set(ug.fdList())
  const a = await associate(ug.port(name), 0)
  a.control.sock.end()
  await waitConnsOf(ug, name, 1)
  const added = ug.fdList().filter((f) => !before.has(f))
  t.ok(
    added.every((f) => /anon_inode:\[(eventpoll|eventfd)\]/.test(f)),
    "the first association leaves only the UDP thread's epoll/eventfd",
    { added },
  )
  ug.baselineFds = ug.fdCount()
}

t.test('the npm socks client: UDP ASSOCIATE echoes on socks and mixed listeners, with users', async (t) => {
  const echo = await udpEcho(t)
  const users = [{ username: 'alice', password: 'pw' }]
  const ug = await startConfig(
    t,
    proxyConfig([listener('s', 'socks'), listener('m', 'mixed'), listener('a', 'socks', { users })]),
  )
  await warmUp(t, ug, 's')
  for (const name of ['s', 'm']) {
    const ctrl = await npmClientEcho(t, ug.port(name), echo.port)
    ctrl.end()
  }
  const ctrl = await npmClientEcho(t, ug.port('a'), echo.port, { userId: 'alice', password: 'pw' })
  ctrl.end()
  await t.rejects(npmAssociate(ug.port('a'), { userId: 'alice', password: 'wrong' }), 'wrong password: no association')
  const conns = await waitConnsOf(ug, 'a', 2)
  t.match(
    conns.find((c) => c.fields.user === 'alice')?.fields,
    { reason: 'eof', pktUp: '6', pktDown: '6', dests: '2' },
    'access line counts the datagrams',
  )
  await waitConnsOf(ug, 's', 2)
  await waitConnsOf(ug, 'm', 1)
  await finish(t, ug, 5)
})

t.test(
  'our client: foreign sources, fragments, lies, garbage, domains; the end with the control connection',
  async (t) => {
    const echo = await udpEcho(t)
    const socket = tempSocket(t, 'ugate-socksudp-')
    const ug = await startConfig(t, proxyConfig([listener('s', 'socks')], { admin: { socket } }))
    await warmUp(t, ug, 's')
    const client = await udpSocket(t, '127.0.0.1')
    const a = await associate(ug.port('s'), client.address().port)
    const to = (b: Buffer, s: UdpSocket = client) => s.send(b, a.relay.port, a.relay.host)
    const ok = (tag: string) => frame('127.0.0.1', echo.port, Buffer.from(tag))
    const before = socksStatus(socket)
    t.equal(before.associationsLive, 1, 'one association live')

    // Another port on the client's IP, and another IP, are foreign: only the declared port counts.
    const otherPort = await udpSocket(t, '127.0.0.1')
    const otherIp = await udpSocket(t, '127.0.0.2')
    to(ok('foreign-port'), otherPort)
    to(ok('foreign-ip'), otherIp)
    // FRAG 1: dropped. Lies and garbage: dropped.
    to(frame('127.0.0.1', echo.port, Buffer.from('frag'), 1))
    const lies = [
      Buffer.from([0, 0, 0, 1, 127, 0]), // IPv4 header cut short
      Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0, 0]), // IPv6 header cut short
      Buffer.from([0, 0, 0, 3, 200, 0x61, 0x62]), // a name of 200 bytes with 2 there
      Buffer.from([0, 0, 0, 3, 0, 0, 80]), // empty name
      Buffer.from([0, 0, 0, 3, 3, 0x61, 0x00, 0x62, 0, 80]), // NUL in a name
      Buffer.from([0, 0, 0, 9, 1, 2, 3, 4, 0, 80]), // ATYP 9
      Buffer.from([1, 0, 0, 1, 127, 0, 0, 1, 0, 80]), // RSV not zero
      Buffer.from([0, 0, 0]), // shorter than any header
      Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, 0, 0, 0x61]), // port 0
    ]
    for (const b of lies) to(b)
    to(ok('marker'))
    const echoed = await droppedBefore(client, Buffer.from('marker'), 'the marker after the bad datagrams')
    t.ok(echoed.subarray(10).equals(Buffer.from('marker')), 'only the marker came back')
    const after = socksStatus(socket)
    t.equal(after.drops.foreign! - before.drops.foreign!, 2, 'two foreign datagrams counted')
    t.equal(after.drops.fragment! - before.drops.fragment!, 1, 'one fragment counted')
    t.equal(after.drops.malformed! - before.drops.malformed!, lies.length, `${lies.length} malformed counted`)

    // A domain DST.ADDR: resolved by ugate, the reply's header names the address it came from.
    to(frame('localhost', echo.port, Buffer.from('by-name')))
    const named = await nextMessage(client, 'echo via localhost')
    t.same([...named.subarray(0, 4)], [0, 0, 0, 1], 'a direct reply carries an IPv4 header')
    t.equal(named.subarray(4, 8).join('.'), '127.0.0.1', 'from the resolved address')
    t.equal(named.readUInt16BE(8), echo.port, 'and port')
    t.equal(named.subarray(10).toString(), 'by-name', 'exact payload')

    // The control connection closes: the association ends, its relay is gone.
    a.control.sock.end()
    const conns = await waitConnsOf(ug, 's', 2)
    t.match(conns[1]!.fields, { reason: 'eof', dests: '2', relay: `127.0.0.1:${a.relay.port}` }, 'access line')
    t.equal(socksStatus(socket).associationsLive, 0, 'no association live after the control connection closed')
    await finish(t, ug, 2)
  },
)

t.test('IPv6: an association on ::1 relays to IPv4 and IPv6 destinations', async (t) => {
  const echo = await udpEcho(t)
  const ug = await startConfig(t, proxyConfig([listener('s6', 'socks', { listen: '[::1]:0' })]))
  ug.baselineFds += 2 // the UDP thread's epoll and eventfd, started by the association (see warmUp)
  const control = await connectReader(ug.port('s6'), '::1')
  control.sock.write(Buffer.from([5, 1, 0]))
  await control.read(2)
  control.sock.write(Buffer.concat([Buffer.from([5, 3, 0]), socks5Address('::', 0)]))
  const head = await control.read(4)
  t.equal(head[3], 4, 'BND.ADDR is IPv6')
  const rest = await control.read(18)
  t.equal(rest.subarray(0, 16).toString('hex'), '0'.repeat(31) + '1', 'BND.ADDR is ::1')
  const relayPort = rest.readUInt16BE(16)
  const client = await udpSocket(t, '::1')
  for (const dst of ['127.0.0.1', '::1']) {
    client.send(frame(dst, echo.port, Buffer.from(`v6-${dst}`)), relayPort, '::1')
    const got = SocksClient.parseUDPFrame(await nextMessage(client, `echo via ${dst}`))
    t.equal(got.data.toString(), `v6-${dst}`, `exact payload via ${dst}`)
    t.equal(got.remoteHost.host, sameIp(dst), `source ${dst} in the header`)
  }
  control.sock.end()
  await finish(t, ug, 1)
})

t.test('idle: an association without datagrams ends and closes its control connection', async (t) => {
  const ug = await startConfig(t, proxyConfig([listener('s', 'socks', { udpIdleTimeout: 1 })]))
  const a = await associate(ug.port('s'), 0)
  await within(new Promise((res) => a.control.sock.once('end', res)), 10_000, 'control connection closed by ugate')
  a.control.sock.end()
  const conns = await waitConnsOf(ug, 's', 1)
  t.equal(conns[0]!.fields.reason, 'udp-idle', 'reason udp-idle')
  ug.baselineFds += 2 // the UDP thread's epoll and eventfd (see warmUp)
  await finish(t, ug, 1)
})

t.test('upstream: ugate A relays UDP through ugate B as a socks5 upstream', async (t) => {
  const echo = await udpEcho(t)
  const b = await startConfig(t, proxyConfig([listener('b', 'socks')]))
  const a = await startConfig(
    t,
    proxyConfig([listener('a', 'socks')], {
      upstreams: [{ name: 'B', type: 'socks5', server: `127.0.0.1:${b.port('b')}` }],
      rules: [{ name: 'via-b', network: ['udp'], dstPort: [echo.port], action: 'upstream:B' }],
    }),
  )
  const ctrl = await npmClientEcho(t, a.port('a'), echo.port)
  ctrl.end()
  const [la] = await waitConnsOf(a, 'a', 1)
  t.match(la!.fields, { pktUp: '6', pktDown: '6' }, 'A counts the datagrams')
  const [lb] = await waitConnsOf(b, 'b', 1)
  t.match(lb!.fields, { pktUp: '6', pktDown: '6', reason: 'eof' }, 'B relayed them, and ended with A')
  a.baselineFds += 2 // the UDP thread's epoll and eventfd (see warmUp)
  b.baselineFds += 2
  await finish(t, a, 1)
  await finish(t, b, 1)
})

/** Datagrams on `s` until `n` have come (within 5 s). */
function messages(s: UdpSocket, n: number, what: string): Promise<Buffer[]> {
  const got: Buffer[] = []
  return within(
    new Promise<Buffer[]>((res) => {
      const on = (m: Buffer) => {
        got.push(m)
        if (got.length < n) return
        s.off('message', on)
        res(got)
      }
      s.on('message', on)
    }),
    5000,
    `${what} (${got.length} of ${n} so far)`,
  )
}

t.test('the cap: 64 destinations per association, the least recently used goes and is routed again', async (t) => {
  const echo = await udpEcho(t)
  const socket = tempSocket(t, 'ugate-socksudp-')
  const ug = await startConfig(t, proxyConfig([listener('s', 'socks')], { admin: { socket }, log: { level: 'debug' } }))
  await warmUp(t, ug, 's')
  const client = await udpSocket(t, '127.0.0.1')
  const a = await associate(ug.port('s'), client.address().port)
  const to = (host: string, port: number, tag: string) =>
    client.send(frame(host, port, Buffer.from(tag)), a.relay.port, a.relay.host)
  const echoed = async (tag: string) => {
    to('127.0.0.1', echo.port, tag)
    const m = await nextMessage(client, `the echo of ${tag}`)
    t.equal(m.subarray(10).toString(), tag, `${tag}: echoed`)
  }
  const destLines = (dst: string) => ug.events('socks-udp-dest').filter((l) => l.fields.dst === dst)
  const first = `127.0.0.1:${echo.port}`
  const before = socksStatus(socket).destsEvicted

  await echoed('first')
  // 64 more destinations (127.0.0.2-65: nobody answers there): the 65th of the association.
  for (let i = 2; i <= 65; i++) to(`127.0.0.${i}`, echo.port, 'sink')
  // Named again: evicted as the least recently used, so routed again (and it still answers).
  await echoed('again')
  t.equal(destLines(first).length, 2, 'the first destination was routed twice: evicted, then new again')
  // The newest sink is still there: named again, it is not routed again.
  to('127.0.0.65', echo.port, 'sink')
  await echoed('last')
  t.equal(destLines(`127.0.0.65:${echo.port}`).length, 1, 'a recent destination stays')
  t.equal(destLines(first).length, 2, 'and so does the first one now')
  const status = socksStatus(socket)
  // 65 + 1: the first went for 127.0.0.65, then 127.0.0.2 (the oldest) for the first again.
  t.equal(status.destsEvicted - before, 2, 'two destinations evicted, counted in udp.socks.destsEvicted')
  a.control.sock.end()
  const conns = await waitConnsOf(ug, 's', 2)
  t.match(conns[1]!.fields, { reason: 'eof', dests: '66', pktDown: '3' }, 'access line: 66 destinations routed')
  await finish(t, ug, 2)
})

/**
 * A socks5 server (no auth) that holds its UDP ASSOCIATE reply until
 * release(): the destinations routed to it wait, their datagrams queued.
 */
async function heldSocks5(t: Test) {
  let requested = () => {}
  const request = new Promise<void>((r) => (requested = r))
  let release: (relayPort: number) => void = () => {}
  const released = new Promise<number>((r) => (release = r))
  const conns: net.Socket[] = []
  const server = net.createServer((c) => {
    conns.push(c)
    c.on('error', () => {})
    let buf = Buffer.alloc(0)
    let state = 'greeting'
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      if (state === 'greeting' && buf.length >= 2 && buf.length >= 2 + buf[1]!) {
        buf = buf.subarray(2 + buf[1]!)
        c.write(Buffer.from([5, 0]))
        state = 'request'
      }
      // VER CMD RSV ATYP=1 (0.0.0.0) PORT: 10 bytes, as ugate asks.
      if (state === 'request' && buf.length >= 10) {
        t.same([...buf.subarray(0, 4)], [5, 3, 0, 1], 'the upstream got a UDP ASSOCIATE')
        state = 'held'
        requested()
        void released.then((port) => c.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff])))
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => {
    for (const c of conns) c.destroy()
    server.close()
  })
  return { port: (server.address() as net.AddressInfo).port, request, release, conns }
}

t.test('a destination waiting for its route: at most 32 datagrams / 64 KiB kept, then sent in order', async (t) => {
  const echo = await udpEcho(t)
  const held = await heldSocks5(t)
  const relay = await udpSocket(t, '127.0.0.1') // the held upstream's relay, once released
  const socket = tempSocket(t, 'ugate-socksudp-')
  const ug = await startConfig(
    t,
    proxyConfig([listener('s', 'socks')], {
      admin: { socket },
      upstreams: [{ name: 'held', type: 'socks5', server: `127.0.0.1:${held.port}` }],
      rules: [{ name: 'via-held', network: ['udp'], dstPort: [9001, 9002], action: 'upstream:held' }],
    }),
  )
  await warmUp(t, ug, 's')
  const client = await udpSocket(t, '127.0.0.1')
  const a = await associate(ug.port('s'), client.address().port)
  const to = (b: Buffer) => client.send(b, a.relay.port, a.relay.host)
  const before = socksStatus(socket).drops.queueFull!
  // By count: 40 small datagrams, 32 kept.
  for (let i = 0; i < 40; i++) to(frame('192.0.2.1', 9001, Buffer.from(`q${i}`)))
  // By size: 5 of 16 000 bytes, 4 kept (64 000 bytes; a fifth would pass 64 KiB).
  const big = [0, 1, 2, 3, 4].map((i) => prngBytes(i, 16000))
  for (const b of big) to(frame('192.0.2.2', 9002, b))
  // Datagrams are taken in order: once this echo is back, every one above was counted.
  to(frame('127.0.0.1', echo.port, Buffer.from('marker')))
  t.equal((await nextMessage(client, 'the marker')).subarray(10).toString(), 'marker')
  await held.request
  t.equal(socksStatus(socket).drops.queueFull! - before, 8 + 1, 'queueFull: 8 over the count, 1 over the bytes')
  held.release(relay.address().port)
  const got = await messages(relay, 32 + 4, 'the kept datagrams at the upstream relay')
  const parse = (m: Buffer) => ({ dst: `${m.subarray(4, 8).join('.')}:${m.readUInt16BE(8)}`, data: m.subarray(10) })
  const small = got.map(parse).filter((m) => m.dst === '192.0.2.1:9001')
  t.same(
    small.map((m) => m.data.toString()),
    Array.from({ length: 32 }, (_, i) => `q${i}`),
    'the first 32 in order, each behind its SOCKS header',
  )
  const large = got.map(parse).filter((m) => m.dst === '192.0.2.2:9002')
  t.same(
    large.map((m) => m.data.equals(big[large.indexOf(m)]!)),
    [true, true, true, true],
    'the first 4 large ones, exact',
  )
  // After the route, nothing is queued: the next datagram goes straight on.
  to(frame('192.0.2.1', 9001, Buffer.from('live')))
  t.equal(parse(await nextMessage(relay, 'a datagram after the route')).data.toString(), 'live')
  a.control.sock.end()
  const conns = await waitConnsOf(ug, 's', 2)
  t.match(conns[1]!.fields, { reason: 'eof', dests: '3', pktUp: String(32 + 4 + 1 + 1) })
  await finish(t, ug, 2)
})

t.test('forward rules: the target answers, the reply names the destination the client sent to', async (t) => {
  const echo = await udpEcho(t)
  const ug = await startConfig(
    t,
    proxyConfig([listener('s', 'socks')], {
      rules: [
        { name: 'by-port', network: ['udp'], dstPort: [9999], action: `forward:127.0.0.1:${echo.port}` },
        { name: 'by-name', network: ['udp'], domain: ['fwd.test'], action: `forward:[::1]:${echo.port}` },
      ],
    }),
  )
  await warmUp(t, ug, 's')
  const client = await udpSocket(t, '127.0.0.1')
  const a = await associate(ug.port('s'), client.address().port)
  for (const [host, port, tag] of [
    ['127.0.0.1', 9999, 'v4'],
    ['::1', 9999, 'v6'],
    ['fwd.test', 5353, 'name'],
  ] as const) {
    const sent = frame(host, port, Buffer.from(tag))
    client.send(sent, a.relay.port, a.relay.host)
    const m = await nextMessage(client, `the forwarded echo of ${tag}`)
    const hlen = sent.length - tag.length
    t.same(m.subarray(0, hlen), sent.subarray(0, hlen), `${tag}: the reply's header is the one the client sent`)
    t.equal(m.subarray(hlen).toString(), tag, `${tag}: exact payload from the forward target`)
  }
  a.control.sock.end()
  const conns = await waitConnsOf(ug, 's', 2)
  t.match(conns[1]!.fields, { dests: '3', pktUp: '3', pktDown: '3' })
  await finish(t, ug, 2)
})

t.test('the upstream closes its control connection: the association through it ends too', async (t) => {
  const echo = await udpEcho(t)
  // B ends an association after 1 s without datagrams, closing its control connection.
  const b = await startConfig(t, proxyConfig([listener('b', 'socks', { udpIdleTimeout: 1 })]))
  const a = await startConfig(
    t,
    proxyConfig([listener('a', 'socks')], {
      upstreams: [{ name: 'B', type: 'socks5', server: `127.0.0.1:${b.port('b')}` }],
      rules: [{ name: 'via-b', network: ['udp'], dstPort: [echo.port], action: 'upstream:B' }],
    }),
  )
  const client = await udpSocket(t, '127.0.0.1')
  const assoc = await associate(a.port('a'), client.address().port)
  client.send(frame('127.0.0.1', echo.port, Buffer.from('through B')), assoc.relay.port, assoc.relay.host)
  t.equal((await nextMessage(client, 'echo through B')).subarray(10).toString(), 'through B')
  // A's association would idle for 60 s; B's ends after 1 s and takes A's with it.
  await within(
    new Promise((r) => assoc.control.sock.once('end', r)),
    10_000,
    'A closes the client’s control connection',
  )
  assoc.control.sock.end()
  const [lb] = await waitConnsOf(b, 'b', 1)
  t.match(lb!.fields, { reason: 'udp-idle' }, 'B: its association idled out')
  const [la] = await waitConnsOf(a, 'a', 1)
  t.match(la!.fields, { reason: 'upstream-closed', pktUp: '1', pktDown: '1' }, 'A: reason upstream-closed')
  t.match(a.events('socks-udp-upstream-closed')[0]?.fields, { listener: 'a', upstream: 'B' }, 'A: a warning names B')
  a.baselineFds += 2 // the UDP thread's epoll and eventfd (see warmUp)
  b.baselineFds += 2
  await finish(t, a, 1)
  await finish(t, b, 1)
})

export type { Ugate }
