// HBONE end to end in network namespaces the test creates (issue 12 §3): a
// client behind router A, where ugate captures with nftables REDIRECT and a
// rule sends the captured connections to router B through an `hbone`
// upstream; B's ugate has an `hbone` listener and dials the server behind it.
//
//   client 198.18.1.2 ── 198.18.1.1 A 198.18.2.1 ══ HBONE ══ 198.18.2.2 B 198.19.3.1 ── 198.19.3.2 server
//          (c)                  (ugate: capture)                   (ugate: hbone listener)          (s)
//
// Neither router forwards and A has no route to the server's network: the
// tunnel is the only way through, and the server sees B's address.
// Clients and servers are TCP agents (test/lib/tcp-agent.ts) that hash what
// they send and receive.
//
// Streams per connection: ztunnel's client pools at most 100 streams on a
// connection, its server admits 200 (SETTINGS_MAX_CONCURRENT_STREAMS), and
// ugate does the same (docs/mesh.md). So 200 concurrent captured connections
// ride on exactly two pooled connections A → B of 100 streams each, while one
// client that opens all 200 on one connection (Node's http2, which honours
// the peer's limit) gets them all at once from B.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { mesh } from '../lib/mesh.js'
import { TEST_ALLOW, UGATE_MARK, createNamespaces, ipBatch, must, inNs } from '../lib/netns.js'
import { startTcpAgent } from '../lib/tcp-agent.js'
import type { Agent } from '../lib/udp.js'
import { MiB, KiB } from '../lib/servers.js'
import { type LogLine, type Ugate, checkCleanExit, checkFds, runUgate, settleFds, startUgate } from '../lib/ugate.js'

t.setTimeout(900_000) // 128 MiB through two TLS ends, also under ASan on a shared machine

const A = { lan: '198.18.1.1', mesh: '198.18.2.1' }
const B = { mesh: '198.18.2.2', lan: '198.19.3.1' }
const CLIENT = '198.18.1.2'
const SERVER = '198.19.3.2'
const REDIRECT_PORT = 15001
const HBONE_PORT = 15008
/** The server agent's ports, one per behaviour (tcp-agent.ts). */
const PORT = { bulk: 7001, cfirst: 7002, sfirst: 7003, hold: 7004, reset: 7005, watch: 7006, holdH2: 7007 }
const BULK = 64 * MiB
const HALF = 4 * MiB
const CONCURRENT = 200

const ids = mesh(t)

interface Net {
  ns: { c: string; a: string; b: string; s: string }
  dir: string
  client: Agent
  server: Agent
}

async function topology(t: Test): Promise<Net> {
  const { ns, dir } = await createNamespaces(t, 'hb', ['c', 'a', 'b', 's'] as const)
  const noDad = 'for k in all default; do echo 0 > /proc/sys/net/ipv6/conf/$k/accept_dad; done'
  await Promise.all(Object.values(ns).map((x) => must(inNs(x, ['sh', '-c', noDad]))))
  await ipBatch(ns.a, [
    'link set lo up',
    `link add a-c type veth peer name c-a netns ${ns.c}`,
    `link add a-b type veth peer name b-a netns ${ns.b}`,
    `addr add ${A.lan}/24 dev a-c`,
    `addr add ${A.mesh}/24 dev a-b`,
    'link set a-c up',
    'link set a-b up',
  ])
  await ipBatch(ns.b, [
    'link set lo up',
    `link add b-s type veth peer name s-b netns ${ns.s}`,
    `addr add ${B.mesh}/24 dev b-a`,
    `addr add ${B.lan}/24 dev b-s`,
    'link set b-a up',
    'link set b-s up',
  ])
  await ipBatch(ns.c, [
    'link set lo up',
    `addr add ${CLIENT}/24 dev c-a`,
    'link set c-a up',
    `route add default via ${A.lan}`,
  ])
  await ipBatch(ns.s, [
    'link set lo up',
    `addr add ${SERVER}/24 dev s-b`,
    'link set s-b up',
    `route add default via ${B.lan}`,
  ])
  const [client, server] = await Promise.all([
    startTcpAgent(t, ns.c, dir, 'client'),
    startTcpAgent(t, ns.s, dir, 'server'),
  ])
  const sizes: Record<string, number> = { bulk: BULK, cfirst: HALF, sfirst: HALF }
  for (const [mode, port] of Object.entries(PORT)) {
    const m = mode === 'holdH2' ? 'hold' : mode
    await server.call({ op: 'listen', addr: SERVER, port, mode: m, size: sizes[mode] ?? 0 })
  }
  return { ns, dir, client, server }
}

/** Router B: the hbone listener on its mesh address; rules: the default (direct). */
async function startB(t: Test, net: Net): Promise<Ugate> {
  const cfg = {
    log: { level: 'info' },
    relay: { shutdownGrace: 1 },
    admin: { socket: ids.socket('b') },
    listeners: [{ name: 'mesh', type: 'hbone', listen: `${B.mesh}:${HBONE_PORT}`, allow: ['198.18.2.0/24'] }],
    ...ids.config('b'),
  }
  const file = join(net.dir, 'b.json')
  writeFileSync(file, JSON.stringify(cfg))
  return startUgate(t, ['run', '--config', file], { netns: net.ns.b })
}

/** On a failure, both gates' logs go into the output. */
function logsOnFailure(t: Test, a: Ugate, b: Ugate): void {
  t.teardown(() => {
    if (!t.passing()) t.comment(`A:\n${a.lines.join('\n')}\nB:\n${b.lines.join('\n')}`)
  })
}

/** Router A: capture of the LAN's connections to the server ports, all sent to B through HBONE. */
async function startA(t: Test, net: Net): Promise<Ugate> {
  const cfg = {
    log: { level: 'info' },
    relay: { shutdownGrace: 1 },
    dial: { connectTimeout: 5, mark: UGATE_MARK },
    admin: { socket: ids.socket('a') },
    listeners: [{ name: 'cap', type: 'redirect', listen: `0.0.0.0:${REDIRECT_PORT}`, allow: TEST_ALLOW }],
    capture: {
      enabled: true,
      listener: 'cap',
      lanInterfaces: ['a-c'],
      ports: Object.values(PORT),
      ipv6: false,
    },
    upstreams: [{ name: 'b', type: 'hbone', server: B.mesh, identity: ids.spiffe('b') }],
    rules: [{ name: 'mesh', dstCidr: [`${SERVER}/32`], action: 'upstream:b' }],
    ...ids.config('a'),
  }
  const file = join(net.dir, 'a.json')
  writeFileSync(file, JSON.stringify(cfg))
  const ug = await startUgate(t, ['run', '--config', file], { netns: net.ns.a })
  await ug.waitForLine(/ info capture-on /)
  return ug
}

/** One client operation against the server's port, with the server's record of that connection. */
async function exchange(
  net: Net,
  req: { op: string; port: number; size?: number },
  ms: number,
): Promise<{ client: Record<string, unknown>; server: Record<string, unknown> }> {
  const [client, served] = await Promise.all([
    net.client.call({ to: SERVER, ...req }, ms),
    net.server.call({ op: 'results', port: req.port, count: 1 }, ms),
  ])
  return { client, server: (served.results as Record<string, unknown>[])[0]! }
}

interface Tunnel {
  id: number
  role: 'client' | 'server'
  peerId: string
  state: string
  streams: number
  streamsTotal: number
  bytesOut: number
  bytesIn: number
}

function tunnels(node: string): Tunnel[] {
  const r = runUgate(['ctl', '--socket', ids.socket(node), '--json', 'status'])
  if (r.code !== 0) throw new Error(`ugate ctl status (${node}) failed: ${r.stderr.join('\n')}`)
  return (JSON.parse(r.stdout) as { hbone: Tunnel[] }).hbone
}

const conn = (ug: Ugate, listener: string, port: number): LogLine | undefined =>
  ug.events('conn').find((l) => l.fields.listener === listener && l.fields.dst === `${SERVER}:${port}`)

async function connLine(ug: Ugate, listener: string, port: number): Promise<LogLine | undefined> {
  const re = new RegExp(` info conn listener=${listener} .*dst=${SERVER.replace(/\./g, '\\.')}:${port} `)
  await ug.waitForLine(re, 60_000)
  return conn(ug, listener, port)
}

t.test('captured on A, through one HBONE tunnel to B: 64 MiB each way, half-close both ways, resets', async (t) => {
  const net = await topology(t)
  const b = await startB(t, net)
  const a = await startA(t, net)
  logsOnFailure(t, a, b)

  // 64 MiB each way at once, both ends half-closing when done sending.
  const { client: bulk, server: srv } = await exchange(net, { op: 'bulk', port: PORT.bulk, size: BULK }, 600_000)
  t.equal(srv.peer, B.lan, "the server sees B's address (the tunnel is the only way through)")
  t.equal(srv.gotBytes, BULK, 'the server got 64 MiB')
  t.equal(srv.got, bulk.sent, 'client → server: sha256 equal')
  t.equal(bulk.gotBytes, BULK, 'the client got 64 MiB')
  t.equal(bulk.got, srv.sent, 'server → client: sha256 equal')

  const [ta] = tunnels('a')
  const [tb] = tunnels('b')
  t.equal(tunnels('a').length, 1, 'A: one tunnel')
  t.match(ta, { role: 'client', peerId: ids.spiffe('b'), streamsTotal: 1 }, "A's tunnel: to B, one stream")
  t.ok(ta!.bytesOut >= BULK && ta!.bytesIn >= BULK, 'A: 64 MiB each way in the tunnel stats', ta)
  t.equal(tunnels('b').length, 1, 'B: one tunnel')
  t.match(tb, { role: 'server', peerId: ids.spiffe('a'), streamsTotal: 1 }, "B's tunnel: from A, one stream")
  t.match(
    (await connLine(a, 'cap', PORT.bulk))?.fields,
    { src: new RegExp(`^${CLIENT}:\\d+$`), action: 'upstream', via: 'b', reason: 'eof' },
    "A's access line: captured, sent to upstream b",
  )
  const lineB = await connLine(b, 'mesh', PORT.bulk)
  t.match(
    lineB?.fields,
    {
      identity: ids.spiffe('a'),
      forwarded: `for="${CLIENT}"`,
      tunnel: String(tb!.id),
      up: String(BULK),
      down: String(BULK),
      reason: 'eof',
      action: 'direct',
    },
    "B's access line: A's identity, the client's address, the tunnel, 64 MiB each way",
  )

  // Half-close, client first: it sends, shuts its write side; the server reads to EOF, then sends.
  const { client: cf, server: cfr } = await exchange(net, { op: 'bulk', port: PORT.cfirst, size: HALF }, 120_000)
  t.equal(cfr.got, cf.sent, 'client shuts write first: the server reads everything to EOF')
  t.equal(cfr.gotBytes, HALF, '... 4 MiB')
  t.equal(cf.dataBeforeOurEof, false, "... and the server's bytes came only after the client's EOF")
  t.equal(cf.got, cfr.sent, '... and the server can still send: 4 MiB back, exact')
  t.equal(cf.gotBytes, HALF, '... 4 MiB')

  // Half-close, server first: it sends and shuts its write side; the client reads to EOF, then sends.
  const { client: sf, server: sfr } = await exchange(net, { op: 'sfirst', port: PORT.sfirst, size: HALF }, 120_000)
  t.equal(sf.got, sfr.sent, 'server shuts write first: the client reads everything to EOF')
  t.equal(sf.gotBytes, HALF, '... 4 MiB')
  t.equal(sfr.got, sf.sent, '... and the client can still send: 4 MiB, exact')
  t.equal(sfr.gotBytes, HALF, '... 4 MiB')

  // The server resets: the client gets a reset, not an EOF.
  const reset = await net.client.call({ op: 'reset', to: SERVER, port: PORT.reset }, 60_000)
  t.equal(reset.how, 'error:ECONNRESET', "the server's RST reaches the client as ECONNRESET")
  t.match((await connLine(b, 'mesh', PORT.reset))?.fields, { reason: 'socket-error:ECONNRESET' }, 'B: upstream reset')
  t.match(
    (await connLine(a, 'cap', PORT.reset))?.fields,
    { reason: 'server-error:ECONNRESET' },
    'A: passed on as a reset',
  )

  // The client resets: the server gets a reset, not an EOF.
  const { server: watched } = await exchange(net, { op: 'abort', port: PORT.watch }, 60_000)
  t.equal(watched.how, 'error:ECONNRESET', "the client's RST reaches the server")

  // Both ends have logged the last connection: its stream is off A's count.
  await connLine(a, 'cap', PORT.watch)
  await connLine(b, 'mesh', PORT.watch)
  const after = tunnels('a')
  t.equal(after.length, 1, 'A: still one tunnel')
  t.match(after[0], { id: ta!.id, streamsTotal: 5, streams: 0 }, 'A: the same tunnel carried all five connections')
  // Each side holds its tunnel socket and nothing else of the five connections.
  await settleFds(a)
  t.equal(a.fdCount(), a.baselineFds + 1, "A's fds: the baseline and the pooled tunnel", { fds: a.fdList() })
  await settleFds(b)
  t.equal(b.fdCount(), b.baselineFds + 1, "B's fds: the baseline and the tunnel", { fds: b.fdList() })

  // B stops: its GOAWAY/close ends A's pooled connection; A is back to its baseline.
  checkCleanExit(t, b, await b.stop())
  await a.waitForLine(/ info hbone-closed .*reason=(goaway|tunnel-closed)/)
  await settleFds(a)
  checkFds(t, a)
  checkCleanExit(t, a, await a.stop())
})

t.test(`${CONCURRENT} concurrent captured connections; ${CONCURRENT} streams on one connection to B`, async (t) => {
  const net = await topology(t)
  const b = await startB(t, net)
  const a = await startA(t, net)
  logsOnFailure(t, a, b)

  // The server holds every connection unread until all are there: all concurrent.
  const many = net.client.call({ op: 'many', to: SERVER, port: PORT.hold, count: CONCURRENT, size: 64 * KiB }, 300_000)
  many.catch(() => {}) // awaited below
  await net.server.call({ op: 'held', port: PORT.hold, count: CONCURRENT }, 300_000)
  const ta = tunnels('a')
  t.same(
    ta.map((x) => [x.role, x.streams]),
    [
      ['client', 100],
      ['client', 100],
    ],
    `A: ${CONCURRENT} concurrent streams on two pooled connections of 100 (ztunnel's pool limit)`,
  )
  const tb = tunnels('b')
  t.same(
    tb.map((x) => [x.role, x.peerId, x.streams]),
    [
      ['server', ids.spiffe('a'), 100],
      ['server', ids.spiffe('a'), 100],
    ],
    'B: the same two connections from A, 100 streams each',
  )
  await net.server.call({ op: 'release', port: PORT.hold })
  const res = await many
  t.same(res.tally, { exact: CONCURRENT }, `${CONCURRENT} connections echoed exactly`)

  // One mesh client (Node's http2, in A's namespace) opening all 200 on one connection to B,
  // once B has let go of A's 200 (its admission counts streams per source address).
  await b.waitForLines(/ info conn listener=mesh /, CONCURRENT, 60_000)
  const h2 = startTcpAgent(t, net.ns.a, net.dir, 'h2client').then((agent) =>
    agent.call(
      {
        op: 'h2many',
        peer: `${B.mesh}:${HBONE_PORT}`,
        dir: ids.dir('n'),
        expect: ids.spiffe('b'),
        authority: `${SERVER}:${PORT.holdH2}`,
        count: CONCURRENT,
        size: 64 * KiB,
      },
      300_000,
    ),
  )
  h2.catch(() => {}) // awaited below
  await net.server.call({ op: 'held', port: PORT.holdH2, count: CONCURRENT }, 300_000)
  const one = tunnels('b').filter((x) => x.peerId === ids.spiffe('n'))
  t.same(
    one.map((x) => x.streams),
    [CONCURRENT],
    `B: ${CONCURRENT} concurrent streams on one connection (its SETTINGS_MAX_CONCURRENT_STREAMS is 200)`,
  )
  await net.server.call({ op: 'release', port: PORT.holdH2 })
  const h2r = await h2
  t.equal(h2r.maxConcurrentStreams, 200, "B's SETTINGS_MAX_CONCURRENT_STREAMS: 200, as ztunnel's inbound")
  t.same(h2r.tally, { exact: CONCURRENT }, `${CONCURRENT} streams on one connection echoed exactly`)

  // Each side holds its tunnel sockets and nothing else of the 400 streams.
  await a.waitForConns(CONCURRENT)
  await b.waitForLines(/ info conn listener=mesh /, 2 * CONCURRENT, 60_000)
  await b.waitForLine(new RegExp(` info hbone-closed .*streams=${CONCURRENT} `)) // the http2 client's connection
  await settleFds(a)
  t.equal(a.fdCount(), a.baselineFds + 2, "A's fds: the baseline and two pooled tunnels", { fds: a.fdList() })
  // A stops: its tunnels close; B is back to its baseline.
  checkCleanExit(t, a, await a.stop())
  await b.waitForLines(/ info hbone-closed /, 3)
  await settleFds(b)
  checkFds(t, b)
  checkCleanExit(t, b, await b.stop())
})
