// Transparent UDP capture (nftables TPROXY → a tproxy listener) with real
// datagrams: client — router (ugate) — server namespaces (test/lib/netns.ts),
// a Node agent in the client and the server namespace (test/lib/udp.ts).
//
// Captured: the server sees the router's WAN address (ugate's outbound
// socket), the client gets every echo from the exact address and port it
// sent to. Full cone: one mapping per client source whatever the
// destination, and a remote the client never contacted reaches it.

import t from 'tap'
import type { Test } from 'tap'
import { ADDR, checkTableGone } from '../lib/netns.js'
import { straceAttach } from '../lib/strace.js'
import {
  ECHO,
  SOCKS_PORT,
  WHOAMI,
  ctl,
  exchange,
  peers,
  routing,
  seenBy,
  start,
  udpConfig,
} from '../lib/udp-capture.js'
import { prngBytes } from '../lib/servers.js'
import { type Agent, type Datagram } from '../lib/udp.js'
import { checkCleanExit, checkFds, parseLogLine, settleFds } from '../lib/ugate.js'

t.test('captured UDP: echo from the right source (IPv4, IPv6), 200 concurrent flows, status, clean stop', async (t) => {
  const { topo, client } = await peers(t)
  const admin = `${topo.dir}/admin.sock`
  const ug = await start(t, topo, { admin })
  t.same(
    routing(topo),
    {
      rules4: 1,
      rules6: 1,
      routes4: 'local default dev lo scope host',
      routes6: 'local default dev lo metric 1024 pref medium',
    },
    'one fwmark rule and one local route per family',
  )
  const rules = await topo.nft(['list', 'chain', 'inet', 'ugate', 'ugate_tproxy'])
  t.match(rules.stdout, /tproxy ip to :15090 meta mark set 0x00007567 accept/, 'IPv4 tproxy rule loaded')
  t.match(rules.stdout, /tproxy ip6 to :15090 meta mark set 0x00007567 accept/, 'IPv6 tproxy rule loaded')

  for (const [fam, src, dst, wan] of [
    ['IPv4', ADDR.client4, ADDR.server4, ADDR.routerWan4],
    ['IPv6', ADDR.client6, ADDR.server6, ADDR.routerWan6],
  ] as const) {
    const id = `c-${fam}`
    await client.bind(id, src)
    const payload = prngBytes(fam === 'IPv4' ? 4 : 6, 1200)
    const m = await exchange(client, id, dst, ECHO, payload)
    t.same({ from: m.from, port: m.port }, { from: dst, port: ECHO }, `${fam}: the echo comes from ${dst}:${ECHO}`)
    t.equal(m.data, payload.toString('hex'), `${fam}: the echo is the exact payload`)
    const seen = await seenBy(client, id, dst)
    t.equal(seen.addr, wan, `${fam}: the server saw ugate's WAN address (captured, not forwarded)`)
  }

  const burst = await client.call(
    { op: 'burst', addr: ADDR.client4, flows: 200, count: 5, size: 300, to: ADDR.server4, port: ECHO, seed: 77 },
    60_000,
  )
  t.same(
    burst,
    { seq: burst.seq, ok: true, flows: 200, wrongSource: 0, unexpected: 0 },
    '200 concurrent flows × 5 datagrams: every echo exact, from the server address',
  )

  const status = ctl(topo, admin, 'status') as { udp: { flowsTotal: number; packetsUp: number; bytesUp: number } }
  t.ok(status.udp.flowsTotal >= 202, `status counts the flows (${status.udp.flowsTotal})`)
  t.ok(status.udp.packetsUp >= 1000, `status counts the datagrams (${status.udp.packetsUp})`)
  const flows = ctl(topo, admin, 'connections') as {
    udpFlows: Array<{ src: string; action: string; listener: string }>
  }
  t.ok(
    flows.udpFlows.some((f) => f.src.startsWith(`${ADDR.client4}:`) && f.action === 'direct' && f.listener === 'udp'),
    'the flow list shows a direct flow of the tproxy listener',
    { flows: flows.udpFlows.slice(0, 3) },
  )

  const res = await ug.stop()
  checkCleanExit(t, ug, res)
  await checkTableGone(t, topo, 'after SIGTERM')
  t.same(routing(topo), { rules4: 0, rules6: 0, routes4: '', routes6: '' }, 'rules and routes gone after SIGTERM')
})

/** What `ctl status` counts of a UDP relay (udp, and udp.socks). */
type Counters = {
  packetsUp: number
  bytesUp: number
  packetsDown: number
  bytesDown: number
  drops: Record<string, number>
}

/** What moved between two readings: counted datagrams and bytes each way, and the send failures so far. */
function moved(a: Counters, b: Counters) {
  return {
    packetsUp: b.packetsUp - a.packetsUp,
    bytesUp: b.bytesUp - a.bytesUp,
    packetsDown: b.packetsDown - a.packetsDown,
    bytesDown: b.bytesDown - a.bytesDown,
    sendFailed: b.drops.sendFailed,
  }
}

/**
 * 33 datagrams of one flow at 1000 and 3000 B, every echo checked: with the
 * veths' MTU of 1500, a run of 1000 B goes out as one UDP_SEGMENT send; at
 * 3000 B the kernel refuses to segment and the run goes again one
 * (fragmented) datagram at a time. `check` gets the status before and after.
 */
async function runsOfOneFlow(
  t: Test,
  client: Agent,
  status: () => Record<string, unknown>,
  check: (size: number, count: number, before: Record<string, unknown>, after: Record<string, unknown>) => void,
): Promise<void> {
  for (const size of [1000, 3000]) {
    const before = status()
    const count = 33
    const burst = await client.call(
      { op: 'burst', addr: ADDR.client4, flows: 1, count, size, warm: true, to: ADDR.server4, port: ECHO, seed: size },
      60_000,
    )
    t.same(
      burst,
      { seq: burst.seq, ok: true, flows: 1, wrongSource: 0, unexpected: 0 },
      `${size} B: ${count} datagrams of one routed flow, every echo exact`,
    )
    check(size, count, before, status())
  }
}

t.test(
  'runs of one flow: segmented sends (GSO) and their fallback over the MTU keep every datagram and count',
  async (t) => {
    const { topo, client } = await peers(t)
    const admin = `${topo.dir}/admin.sock`
    const ug = await start(t, topo, { admin })
    await runsOfOneFlow(
      t,
      client,
      () => ctl(topo, admin, 'status'),
      (size, count, before, after) => {
        const bytes = count * size
        t.same(
          moved(before.udp as Counters, after.udp as Counters),
          { packetsUp: count, bytesUp: bytes, packetsDown: count, bytesDown: bytes, sendFailed: 0 },
          `${size} B: the counters count each datagram and its bytes, both ways`,
        )
      },
    )
    const res = await ug.stop()
    checkCleanExit(t, ug, res)
  },
)

t.test(
  'runs through a socks5 upstream: the SOCKS5 relay segments (GSO) and falls back over the MTU, counting exactly',
  async (t) => {
    const { topo, client } = await peers(t)
    const admin = `${topo.dir}/admin.sock`
    // The flow goes to this ugate's own socks listener (udp.c adds the
    // header), whose association (socks_udp.c) strips it and sends over the
    // veth to the server: there 3000 B is over the MTU. The echoes come back
    // over lo, each behind its 10-byte header: segmented at both sizes.
    const ug = await start(t, topo, {
      admin,
      upstreams: [{ name: 'up', type: 'socks5', server: `127.0.0.1:${SOCKS_PORT}` }],
      rules: [{ name: 'via-socks', network: ['udp'], listener: ['udp'], dstPort: [ECHO], action: 'upstream:up' }],
      socks: true,
    })
    type Udp = Counters & { socks: Counters }
    await runsOfOneFlow(
      t,
      client,
      () => ctl(topo, admin, 'status'),
      (size, count, before, after) => {
        const [b, a] = [before.udp as Udp, after.udp as Udp]
        const bytes = count * size
        t.same(
          moved(b.socks, a.socks),
          { packetsUp: count, bytesUp: bytes, packetsDown: count, bytesDown: bytes + count * 10, sendFailed: 0 },
          `${size} B: the SOCKS5 relay counts each datagram and its bytes, both ways (its header down)`,
        )
        t.same(
          moved(b, a),
          { packetsUp: count, bytesUp: bytes, packetsDown: count, bytesDown: bytes, sendFailed: 0 },
          `${size} B: so does the flow`,
        )
      },
    )
    const res = await ug.stop()
    checkCleanExit(t, ug, res)
  },
)

t.test(
  'one datagram per wake: one recvmmsg and one sendmmsg each way, no read that finds nothing, no epoll_ctl',
  async (t) => {
    const { topo, client } = await peers(t)
    const ug = await start(t, topo, {})
    await client.bind('c', ADDR.client4)
    // The flow opens first (its route and its outbound socket's registration).
    const first = await exchange(client, 'c', ADDR.server4, ECHO, Buffer.from('open'))
    t.equal(first.data, Buffer.from('open').toString('hex'), 'the flow is open')
    const st = await straceAttach(t, ug.pid!, topo.dir, 'recvmmsg,sendmmsg,epoll_ctl')
    // Each datagram waits for its echo: every wake of the UDP thread has one.
    const N = 20
    for (let i = 0; i < N; i++) {
      const payload = Buffer.from(`ping ${i}`)
      const m = await exchange(client, 'c', ADDR.server4, ECHO, payload)
      t.equal(m.data, payload.toString('hex'), `echo ${i}`)
    }
    const trace = await st.stop()
    // A call other threads interrupted is split in two lines: count its "resumed" half.
    const done = (name: string) => trace.filter((l) => l.includes(name) && !l.includes('<unfinished'))
    const recv = done('recvmmsg')
    const send = done('sendmmsg')
    // A read that returned less than its batch drained the socket (level-triggered):
    // no second read to find it empty.
    t.same(
      recv.filter((l) => /= -1 EAGAIN/.test(l)),
      [],
      'no recvmmsg finds the socket empty',
    )
    t.equal(recv.length, 2 * N, `${2 * N} recvmmsg: one per datagram each way`, { sample: recv.slice(0, 4) })
    t.equal(send.length, 2 * N, `${2 * N} sendmmsg: one per datagram each way`, { sample: send.slice(0, 4) })
    t.same(
      trace.filter((l) => /epoll_ctl\(/.test(l)),
      [],
      'no epoll_ctl for the datagrams of an open flow',
    )
    checkCleanExit(t, ug, await ug.stop())
  },
)

t.test('full cone: one mapping per client source, and a server never contacted reaches it', async (t) => {
  const { topo, client, server } = await peers(t)
  const ug = await start(t, topo)
  const mappings = new Map<string, { addr: string; port: number; from: string }>()
  for (const [fam, src, a, b] of [
    ['IPv4', ADDR.client4, ADDR.server4, ADDR.serverBypass4],
    ['IPv6', ADDR.client6, ADDR.server6, ADDR.serverBypass6],
  ] as const) {
    const id = `cone-${fam}`
    const port = await client.bind(id, src)
    const seenA = await seenBy(client, id, a)
    mappings.set(fam, seenA)
    // Server B, which the client never sent to, sends to the mapping A saw.
    const sid = `b-${fam}`
    const bPort = await server.bind(sid, b)
    const hello = prngBytes(0xb0 + port, 333)
    await server.send(sid, seenA.addr, seenA.port, hello)
    const [m] = await client.recv(id, 1)
    t.same(
      { from: m!.from, port: m!.port, data: m!.data },
      { from: b, port: bPort, data: hello.toString('hex') },
      `${fam}: the client gets B's datagram, from B's own address and port`,
    )
    const seenB = await seenBy(client, id, b)
    t.same(
      seenB,
      { ...seenA, from: `${b} ${WHOAMI}` },
      `${fam}: B sees the same mapping as A (${seenA.addr}:${seenA.port})`,
    )
  }
  // A reload (SIGHUP) keeps the tproxy listener and its flows: the mapping stays.
  topo.writeJson('ugate.json', udpConfig({ maxFlows: 100, idle: 30 }))
  ug.signal('SIGHUP')
  await ug.waitForLine(/ info reloaded /)
  t.equal(ug.events('listening').length, 2, 'no listener reopened by the reload')
  t.same(await seenBy(client, 'cone-IPv4', ADDR.server4), mappings.get('IPv4'), 'after the reload: the same mapping')
  const res = await ug.stop()
  checkCleanExit(t, ug, res)
})

t.test('flow expiry, flow cap, bypass and exclude', async (t) => {
  const { topo, client } = await peers(t)
  // idle 3 s: short for the expiry, yet the six cap flows, made one after
  // another, must all still be live for the cap (not the expiry) to end two.
  const ug = await start(t, topo, {
    idle: 3,
    maxFlows: 4,
    bypass: [ADDR.serverBypass4],
    excludeSrc: [ADDR.clientExcluded4],
  })
  // Expiry: one exchange, then the flow's line with reason idle.
  const port = await client.bind('e', ADDR.client4)
  await exchange(client, 'e', ADDR.server4, ECHO, Buffer.from('expire me'))
  const line = await ug.waitForLine(
    new RegExp(` info udp .*src=${ADDR.client4.replace(/\./g, '\\.')}:${port} .*reason=idle`),
  )
  t.match(line, /action=direct/, 'an idle flow ends with a udp line, reason=idle')
  t.match(line, /pktUp=1 pktDown=1/, 'the udp line counts one datagram each way')

  // Cap: 6 flows at once, 4 allowed: the 2 least recently active go.
  for (let i = 0; i < 6; i++) {
    await client.bind(`cap${i}`, ADDR.client4)
    await exchange(client, `cap${i}`, ADDR.server4, ECHO, Buffer.from(`flow ${i}`))
  }
  const evicted = await ug.waitForLines(/ warn udp-flow-evicted /, 2)
  t.equal(evicted.length, 2, 'two flows evicted')
  t.match(evicted[0], /maxFlows=4/, 'the eviction line names the cap')

  // Not captured: a bypassed destination, an excluded source (the server sees the client itself).
  const seenBypass = await seenBy(client, 'cap5', ADDR.serverBypass4)
  t.equal(seenBypass.addr, ADDR.client4, 'bypassed destination: the server sees the client (forwarded)')
  await client.bind('x', ADDR.clientExcluded4)
  const seenExcluded = await seenBy(client, 'x', ADDR.server4)
  t.equal(seenExcluded.addr, ADDR.clientExcluded4, 'excluded source: the server sees the client (forwarded)')
  t.notOk(
    ug.lines.some((l) => l.includes(`src=${ADDR.clientExcluded4}:`)),
    'no udp line of the excluded source',
  )

  // Every flow expires; reply sockets too: fds back to the baseline.
  await ug.waitForLines(/ info udp .*reason=idle/, 5)
  await settleFds(ug)
  checkFds(t, ug)
  const res = await ug.stop()
  checkCleanExit(t, ug, res)
})

t.test("the tproxy listener's allow list: a source outside it is refused, nothing relayed", async (t) => {
  const { topo, client } = await peers(t)
  const ug = await start(t, topo, { idle: 1, allow: [`${ADDR.client4}/32`] })
  await client.bind('in', ADDR.client4)
  const m = await exchange(client, 'in', ADDR.server4, ECHO, Buffer.from('allowed'))
  t.equal(Buffer.from(m.data, 'hex').toString(), 'allowed', 'a source in the list: echoed')
  const port = await client.bind('out', ADDR.client6)
  await client.send('out', ADDR.server6, ECHO, Buffer.from('refused'))
  const line = parseLogLine(await ug.waitForLine(new RegExp(` info udp .*src=\\[${ADDR.client6}\\]:${port} `)))!
  t.match(
    line.fields,
    { rule: 'allow', action: 'deny', pktDown: '0' },
    'its flow: rule allow, action deny, nothing back',
  )
  await ug.waitForLines(/ info udp .*reason=idle/, 2)
  await settleFds(ug)
  checkFds(t, ug)
  checkCleanExit(t, ug, await ug.stop())
})

t.test('bad input: empty, largest and flooding datagrams are counted, nothing leaks', async (t) => {
  const { topo, client } = await peers(t)
  const admin = `${topo.dir}/admin.sock`
  const ug = await start(t, topo, { idle: 1, maxFlows: 64, admin })
  // One flow each (with idle 1, a second datagram on one flow could find it expired: a flow more).
  await client.bind('z', ADDR.client4)
  const empty = await exchange(client, 'z', ADDR.server4, ECHO, Buffer.alloc(0))
  t.same({ from: empty.from, data: empty.data }, { from: ADDR.server4, data: '' }, 'a zero-length datagram is relayed')
  const big = prngBytes(0xb16, 65507)
  await client.bind('big', ADDR.client4)
  const bigEcho = await exchange(client, 'big', ADDR.server4, ECHO, big)
  t.ok(bigEcho.data === big.toString('hex'), 'a 65 507-byte datagram (the IPv4 maximum) is relayed intact')
  // A flood of new flows from one address: 500 source ports, far over the cap.
  await client.call(
    { op: 'spray', addr: ADDR.client4, flows: 500, basePort: 20000, size: 64, to: ADDR.server4, port: ECHO, seed: 5 },
    60_000,
  )
  // Still serving: a datagram after the flood is answered. It is read after
  // every datagram of the flood, so once it is answered they are all counted.
  // While too many flows wait for their route a new one is dropped (busy):
  // then the client tries again from a new source port, so that each attempt
  // is one new flow or one busy drop (a slow answer to the same port would be
  // a flow's second datagram).
  let attempts = 0
  let after: Datagram | undefined
  while (after === undefined && attempts < 20) {
    const name = `after${++attempts}`
    await client.bind(name, ADDR.client4)
    await client.send(name, ADDR.server4, ECHO, Buffer.from('still here'))
    after = (await client.recv(name, 1, 2000).catch(() => []))[0]
  }
  t.equal(Buffer.from(after?.data ?? '', 'hex').toString(), 'still here', 'ugate still relays after the flood')
  const status = () =>
    (
      ctl(topo, admin, 'status') as {
        udp: {
          flowsTotal: number
          flowsLive: number
          flowsEvicted: number
          flowsExpired: number
          drops: Record<string, number>
        }
      }
    ).udp
  const u = status()
  t.equal(
    u.flowsTotal + u.drops.busy!,
    2 + 500 + attempts,
    `every new flow is counted: ${u.flowsTotal} flows, ${u.drops.busy} dropped while too many waited for a route`,
  )
  t.ok(u.flowsEvicted >= 500 - 64 - u.drops.busy!, `flows over the cap of 64 were evicted (${u.flowsEvicted})`)
  // Every flow ends with a udp line (evicted or idle); then none is live.
  await ug.waitForLines(/ info udp /, u.flowsTotal, 30_000)
  const end = status()
  t.same(
    { live: end.flowsLive, ended: end.flowsEvicted + end.flowsExpired },
    { live: 0, ended: u.flowsTotal },
    'every flow evicted or expired',
  )
  await settleFds(ug)
  checkFds(t, ug)
  const res = await ug.stop()
  checkCleanExit(t, ug, res)
})

t.test('SIGKILL leaves rules and routes; the next start replaces them, never duplicates', async (t) => {
  const { topo, client } = await peers(t)
  const first = await start(t, topo)
  first.kill()
  await first.waitExit().catch(() => {})
  t.same(routing(topo).rules4, 1, 'after SIGKILL the stale IPv4 rule is still there')
  const second = await start(t, topo)
  const r = routing(topo)
  t.same({ rules4: r.rules4, rules6: r.rules6 }, { rules4: 1, rules6: 1 }, 'after the restart: one rule per family')
  t.equal(r.routes4.split('\n').length, 1, 'one IPv4 local route')
  t.equal(r.routes6.split('\n').length, 1, 'one IPv6 local route')
  await client.bind('k', ADDR.client4)
  const m = await exchange(client, 'k', ADDR.server4, ECHO, Buffer.from('after restart'))
  t.equal(m.from, ADDR.server4, 'captured and answered after the restart')
  const res = await second.stop()
  checkCleanExit(t, second, res)
  await checkTableGone(t, topo, 'after the second SIGTERM')
  t.same(routing(topo), { rules4: 0, rules6: 0, routes4: '', routes6: '' }, 'rules and routes gone')
})
