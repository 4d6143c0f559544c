// The `dns` listener on loopback with Debian's dig as the client and a
// stand-in authoritative server (test/lib/dns-standin.ts) as the upstream:
// answers, the cache (one upstream query for two digs, TTL counted down),
// +tcp, truncation → TCP to the upstream, rules (reject → NXDOMAIN), static
// names, an upstream that is down (SERVFAIL + a warning), address → name
// routing of a later SOCKS5 / HTTP CONNECT to an answered address, and bad
// input (garbage, truncated, oversized) with the fds back to baseline.

import dgram from 'node:dgram'
import net from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { listener, startConfig, waitConnsOf } from '../lib/config.js'
import { BIG_NAME, ZONE_TTL, digArgs, parseDig, requireDig, startDnsStandin } from '../lib/dns-standin.js'
import { run } from '../lib/netns.js'
import { connectReader, socks5Connect } from '../lib/proxy.js'
import { echoServer, refusedPort } from '../lib/servers.js'
import { rng } from '../lib/rng.js'
import { type Ugate, finish, runUgate } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

requireDig()

const ZONE = {
  'www.example.test': { A: ['192.0.2.10', '192.0.2.11'], AAAA: ['2001:db8::10'] },
  'web.example.test': { A: ['127.0.0.1'] },
}

async function dig(port: number, name: string, type: string, extra: string[] = []) {
  const r = await run(digArgs('127.0.0.1', port, name, type, extra))
  return parseDig(r.code, r.stdout + r.stderr)
}

/** Debug `dns` lines of ugate with this name. */
function dnsLines(ug: Ugate, name: string) {
  return ug.events('dns').filter((l) => l.fields.name?.toLowerCase() === name)
}

async function startDns(t: Test, extraListeners: unknown[] = [], rules: unknown[] = []) {
  const dir = tempDir(t, 'ugate-dns-')
  const up = await startDnsStandin(t, dir, ZONE, { host: '::1' })
  const socket = join(dir, 'ugate.sock')
  const ug = await startConfig(
    t,
    {
      log: { level: 'debug' },
      limits: { handshakeTimeout: 1 },
      admin: { socket },
      relay: { shutdownGrace: 1 },
      listeners: [
        listener('dns', 'dns', {
          servers: [`[::1]:${up.port}`],
          hosts: { 'nas.lan': ['192.168.7.7', 'fd00::7'] },
          timeout: 2,
        }),
        ...extraListeners,
      ],
      rules,
    },
    { env: { ASAN_OPTIONS: 'detect_leaks=1' } },
  )
  return { up, ug, port: ug.port('dns'), socket }
}

t.test('answers, cache with TTLs counted down, +tcp, truncation, rules, static names', async (t) => {
  const { up, ug, port } = await startDns(t, [], [{ name: 'no-ads', domainSuffix: ['ads.test'], action: 'reject' }])

  const first = await dig(port, 'www.example.test', 'A')
  t.equal(first.status, 'NOERROR', 'first dig: NOERROR', { raw: first.raw })
  t.same(first.answers.map((a) => a.data).sort(), ['192.0.2.10', '192.0.2.11'], 'first dig: the zone’s A records')
  t.equal(first.answers[0]?.ttl, ZONE_TTL, 'first dig: the upstream’s TTL')
  // TTLs count in whole seconds: the cached answer is older than one only after one has passed.
  await new Promise((r) => setTimeout(r, 1100))
  const second = await dig(port, 'WWW.example.test', 'A')
  t.same(second.answers.map((a) => a.data).sort(), ['192.0.2.10', '192.0.2.11'], 'second dig: same answer')
  t.ok(
    second.answers.every((a) => a.ttl < ZONE_TTL && a.ttl >= ZONE_TTL - 5),
    'second dig: TTL counted down',
    {
      ttls: second.answers.map((a) => a.ttl),
    },
  )
  t.equal(up.seen('www.example.test').length, 1, 'upstream saw one query for two digs')
  t.match(
    dnsLines(ug, 'www.example.test').map((l) => l.fields),
    [
      { type: 'A', answers: '2', from: 'upstream', cached: '0', rcode: '0' },
      { type: 'A', answers: '2', from: 'cache', cached: '1' },
    ],
  )

  const v6 = await dig(port, 'www.example.test', 'AAAA', ['+tcp'])
  t.same(
    v6.answers.map((a) => a.data),
    ['2001:db8::10'],
    '+tcp: AAAA answered over TCP',
  )

  const big = await dig(port, BIG_NAME, 'A', ['+bufsize=4096'])
  t.equal(big.answers.length, 40, 'truncated upstream UDP reply: retried over TCP, all 40 records')
  await up.waitFor(BIG_NAME, 2)
  t.same(
    up.seen(BIG_NAME).map((q) => q.proto),
    ['udp', 'tcp'],
    'upstream: UDP, then TCP',
  )
  const small = await dig(port, BIG_NAME, 'A', ['+noedns', '+ignore'])
  t.match(small.flags, /\btc\b/, 'a 512-byte client gets TC from the cache')
  const viaTcp = await dig(port, BIG_NAME, 'A', ['+noedns'])
  t.equal(viaTcp.answers.length, 40, 'dig without EDNS retries over TCP and gets all 40')

  const nx = await dig(port, 'none.example.test', 'A')
  t.equal(nx.status, 'NXDOMAIN', 'unknown name: NXDOMAIN from upstream')
  await dig(port, 'none.example.test', 'A')
  t.equal(up.seen('none.example.test').length, 1, 'NXDOMAIN cached (SOA minimum)')

  const ads = await dig(port, 'x.ads.test', 'A')
  t.equal(ads.status, 'NXDOMAIN', 'rule reject → NXDOMAIN')
  t.equal(up.seen('x.ads.test').length, 0, 'rejected name never sent upstream')
  t.match(dnsLines(ug, 'x.ads.test')[0]?.fields, { from: 'reject', rule: 'no-ads', rcode: '3' })

  const nas = await dig(port, 'nas.lan', 'A')
  t.same(
    nas.answers.map((a) => a.data),
    ['192.168.7.7'],
    'static name: A',
  )
  const nas6 = await dig(port, 'nas.lan', 'AAAA', ['+tcp'])
  t.same(
    nas6.answers.map((a) => a.data),
    ['fd00::7'],
    'static name: AAAA over TCP',
  )
  t.equal(up.seen('nas.lan').length, 0, 'static name never sent upstream')

  // TCP conns: the +tcp digs (2) and the no-EDNS retry (1).
  await finish(t, ug, 3)
})

t.test('upstream down: SERVFAIL and a warning naming the resolver', async (t) => {
  const dead = await refusedPort()
  const ug = await startConfig(t, {
    log: { level: 'debug' },
    listeners: [listener('dns', 'dns', { servers: [`127.0.0.1:${dead}`, `127.0.0.1:${dead}`], timeout: 0.3 })],
  })
  const r = await dig(ug.port('dns'), 'www.example.test', 'A')
  t.equal(r.status, 'SERVFAIL', 'SERVFAIL when every resolver fails', { raw: r.raw })
  const warn = ug.events('dns-failed')[0]
  t.match(warn?.fields, { listener: 'dns', name: 'www.example.test', type: 'A' })
  t.match(warn?.fields.error, new RegExp(`127\\.0\\.0\\.1:${dead} timeout; 127\\.0\\.0\\.1:${dead} timeout`))
  t.equal(warn?.level, 'warn')
  await finish(t, ug, 0)
})

t.test('a resolver that fails is skipped: the next one answers', async (t) => {
  const dead = await refusedPort()
  const up = await startDnsStandin(t, tempDir(t, 'ugate-dns-'), ZONE, { host: '::1' })
  const ug = await startConfig(t, {
    log: { level: 'debug' },
    listeners: [listener('dns', 'dns', { servers: [`127.0.0.1:${dead}`, `[::1]:${up.port}`], timeout: 0.3 })],
  })
  const r = await dig(ug.port('dns'), 'www.example.test', 'A')
  t.equal(r.status, 'NOERROR', 'answered by the second resolver', { raw: r.raw })
  t.equal(up.seen('www.example.test').length, 1)
  t.same(ug.events('dns-failed'), [], 'no dns-failed warning: one resolver answered')
  await finish(t, ug, 0)
})

t.test('a later SOCKS5 / HTTP CONNECT to an answered address is routed by its name', async (t) => {
  const echo = await echoServer(t)
  const { ug, port } = await startDns(
    t,
    [listener('proxy', 'mixed')],
    [{ name: 'web-by-name', domain: ['web.example.test'], action: 'direct' }],
  )
  // Before any answer: the address has no name, the default rule routes it.
  const before = await socks5Connect(ug.port('proxy'), { host: '127.0.0.1', port: echo.port })
  before.reader.sock.destroy()
  const r = await dig(port, 'web.example.test', 'A')
  t.same(
    r.answers.map((a) => a.data),
    ['127.0.0.1'],
  )
  const after = await socks5Connect(ug.port('proxy'), { host: '127.0.0.1', port: echo.port })
  t.equal(after.reply?.[1], 0, 'SOCKS5 CONNECT succeeds')
  after.reader.sock.destroy()
  const http = await connectReader(ug.port('proxy'))
  http.sock.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`)
  let head = ''
  while (!head.endsWith('\r\n\r\n')) head += (await http.read(1)).toString('latin1')
  t.match(head, /^HTTP\/1\.1 200/, 'HTTP CONNECT succeeds')
  http.sock.destroy()
  const conns = await waitConnsOf(ug, 'proxy', 3)
  t.match(conns[0]?.fields, { rule: 'default' }, 'before the answer: default rule')
  t.notOk(conns[0]?.fields.dnsName, 'before the answer: no learnt name')
  for (const c of conns.slice(1)) {
    t.match(c.fields, { rule: 'web-by-name', dnsName: 'web.example.test' }, 'after: routed by the name', {
      line: c.raw,
    })
  }
  await finish(t, ug, 3)
})

t.test('native SOCKS5 (info level): an answer C kept for an address goes once the dns listener names it', async (t) => {
  const echo = await echoServer(t)
  const dead = await refusedPort()
  const ug = await startConfig(t, {
    listeners: [
      listener('dns', 'dns', { servers: [`127.0.0.1:${dead}`], hosts: { 'kept.example.test': ['127.0.0.1'] } }),
      listener('proxy', 'mixed'),
    ],
    rules: [{ name: 'by-name', domain: ['kept.example.test'], listener: ['proxy'], action: 'reject' }],
  })
  const connect = async () => {
    const c = await socks5Connect(ug.port('proxy'), { host: '127.0.0.1', port: echo.port })
    c.reader.sock.destroy()
    return c.reply?.[1]
  }
  t.same([await connect(), await connect()], [0, 0], 'no name yet: dialed (the second by the kept answer)')
  const r = await dig(ug.port('dns'), 'kept.example.test', 'A')
  t.same(
    r.answers.map((a) => a.data),
    ['127.0.0.1'],
  )
  t.equal(await connect(), 2, 'then routed by the name the answer taught: refused')
  const conns = await waitConnsOf(ug, 'proxy', 3)
  t.match(conns[2]?.fields, { rule: 'by-name', dnsName: 'kept.example.test', reason: 'rejected' })
  await finish(t, ug, 3)
})

/**
 * Send one datagram from a fresh socket; resolves with the reply, or null when
 * none comes in `ms`: 1 s where no reply may come, 10 s where one must (a busy
 * machine can hold the test's process up for longer than a second).
 */
function udpAsk(port: number, payload: Buffer, ms: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4')
    const done = (v: Buffer | null) => {
      clearTimeout(timer)
      s.close()
      resolve(v)
    }
    // No event tells "no reply is coming": the wait bounds it.
    const timer = setTimeout(() => done(null), ms)
    s.on('message', (m) => done(m))
    s.send(payload, port, '127.0.0.1')
  })
}

t.test('bad input: garbage, truncated, oversized, lying counts — counted or FORMERR, still serving', async (t) => {
  const { up, ug, port, socket } = await startDns(t)
  t.equal(await udpAsk(port, Buffer.from([1, 2, 3]), 1000), null, '3 bytes: no reply')
  const formerr = await udpAsk(port, Buffer.from([0xab, 0xcd, 1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 3, 97]), 10_000)
  t.ok(formerr !== null, 'a header that lies about its questions gets a reply')
  t.same([...(formerr ?? Buffer.alloc(0)).subarray(0, 4)], [0xab, 0xcd, 0x80, 0x81], 'FORMERR with the query’s id')
  t.equal(await udpAsk(port, Buffer.alloc(5000, 7), 1000), null, 'oversized datagram: no reply')
  const pointerLoop = Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])
  t.same(
    [...((await udpAsk(port, pointerLoop, 10_000)) ?? Buffer.alloc(0)).subarray(3, 4)],
    [0x81],
    'pointer loop: FORMERR',
  )
  await ug.waitForLines(/ dns-bad /, 4) // a line may come after the reply that follows it
  const bad = ug.events('dns-bad')
  t.equal(bad.length, 4, 'each bad datagram counted in a dns-bad line', { lines: bad.map((l) => l.raw) })
  t.match(bad[2]?.fields.error, /oversized datagram of 5000 bytes/)

  // TCP: a frame cut short, then garbage in a whole frame.
  const cut = net.connect(port, '127.0.0.1')
  cut.on('error', () => {}) // ugate resets a connection that ends inside a frame
  await new Promise((r) => cut.once('connect', r))
  cut.end(Buffer.from([0, 40, 1, 2, 3]))
  await new Promise((r) => cut.once('close', r))
  const garbage = await connectReader(port)
  garbage.sock.write(Buffer.from([0, 12, 0x12, 0x34, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0]))
  const reply = await garbage.read(14)
  t.same([...reply.subarray(0, 6)], [0, 12, 0x12, 0x34, 0x80, 0x81], 'TCP garbage: FORMERR frame, then closed')
  garbage.sock.destroy()

  // A TCP client that sends nothing is closed after limits.handshakeTimeout.
  const idle = await connectReader(port)
  const end = await idle.rest()
  t.equal(end.data.length, 0, 'idle TCP client: closed without a byte')
  const idleConn = (await waitConnsOf(ug, 'dns', 3)).find((c) => c.fields.reason === 'idle')
  t.match(idleConn?.fields, { reason: 'idle', queries: '0' }, 'idle TCP client: conn line reason=idle')

  const ok = await dig(port, 'www.example.test', 'A')
  t.equal(ok.status, 'NOERROR', 'still answering after the bad input')

  // A reload keeps the sockets (same address) and starts a fresh cache.
  ug.signal('SIGHUP')
  await ug.waitForLine(/ info reloaded /)
  const again = await dig(port, 'www.example.test', 'A', ['+tcp'])
  t.equal(again.status, 'NOERROR', 'answering over TCP after a reload')
  const udpAgain = await dig(port, 'www.example.test', 'A')
  t.equal(udpAgain.status, 'NOERROR', 'answering over UDP after a reload')
  t.equal(up.seen('www.example.test').length, 2, 'the reload emptied the cache: asked upstream once more')
  const status = runUgate(['ctl', '--json', '--socket', socket, 'status'])
  t.match(
    JSON.parse(status.stdout),
    {
      dns: {
        names: 2,
        listeners: [{ name: 'dns', queries: 3, forwarded: 2, cached: 1, failed: 0, malformed: 5, dropped: 0 }],
      },
    },
    'ctl status: the DNS counters (kept across the reload) and the learnt addresses',
  )
  await finish(t, ug, 4)
})

t.test('a flood of random datagrams (fixed seed): each counted, the process stays up, fds back', async (t) => {
  const { ug, port, socket } = await startDns(t)
  const next = rng(0xd15)
  const sock = dgram.createSocket('udp4')
  const N = 300
  const BATCH = 50 // a batch fits the socket's receive buffer even when ugate is slow (ASan)
  let digs = 0
  for (let i = 0; i < N; i++) {
    const len = 1 + Math.floor(next() * 300)
    const b = Buffer.from(Array.from({ length: len }, () => Math.floor(next() * 256)))
    await new Promise<void>((r) => sock.send(b, port, '127.0.0.1', () => r()))
    if ((i + 1) % BATCH === 0) {
      // The dig's datagram queues behind the batch on the same socket: answered means all were read.
      const ok = await dig(port, 'www.example.test', 'A')
      digs++
      if (ok.status !== 'NOERROR') t.fail(`dig after ${i + 1} datagrams: ${ok.status}`, { raw: ok.raw })
    }
  }
  sock.close()
  t.equal(digs, N / BATCH, 'still answering after every batch')
  const c = (
    JSON.parse(runUgate(['ctl', '--json', '--socket', socket, 'status']).stdout) as {
      dns: { listeners: Array<Record<string, number>> }
    }
  ).dns.listeners[0]!
  t.equal(c.malformed! + c.dropped! + c.queries!, N + digs, 'every datagram counted once', { counters: c })
  t.ok(c.malformed! > N / 2, 'most random datagrams are malformed', { counters: c })
  await finish(t, ug, 0)
})
