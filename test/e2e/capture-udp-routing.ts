// Transparent UDP capture, continued (test/e2e/capture-udp.ts has the
// basics): rules route flows (network, port, reject, forward, a socks5
// upstream), a flow ends with its upstream's control connection, the
// router's own UDP, and QUIC flows routed by their SNI. Split off so each
// file stays well within tap's per-file timeout under ASan.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ADDR } from '../lib/netns.js'
import { ECHO, SOCKS_PORT, WHOAMI, exchange, peers, routing, seenBy, start } from '../lib/udp-capture.js'
import { prngBytes } from '../lib/servers.js'
import { startAgent } from '../lib/udp.js'
import { checkCleanExit, repoRoot } from '../lib/ugate.js'

t.test(
  'rules route UDP flows: network, port, reject, forward, a socks5 upstream; an http upstream is refused',
  async (t) => {
    const { topo, client } = await peers(t)
    // The socks5 upstream is this ugate's own socks listener on the router: its UDP ASSOCIATE relays directly.
    // idle 3 s: the upstream flow's three exchanges must stay one flow on a loaded machine.
    const ug = await start(t, topo, {
      idle: 3,
      upstreams: [
        { name: 'up', type: 'socks5', server: `127.0.0.1:${SOCKS_PORT}` },
        { name: 'web', type: 'http', server: '127.0.0.1:3128' },
      ],
      rules: [
        { name: 'tcp-only', network: ['tcp'], dstPort: [7002], action: 'reject' },
        { name: 'no-udp', network: ['udp'], dstPort: [7003], action: 'reject' },
        { name: 'to-echo', network: ['udp'], dstPort: [7004], action: `forward:${ADDR.server4}:${ECHO}` },
        { name: 'via-http', network: ['udp'], dstPort: [7005], action: 'upstream:web' },
        { name: 'via-socks', network: ['udp'], listener: ['udp'], dstPort: [ECHO, WHOAMI], action: 'upstream:up' },
      ],
      socks: true,
    })
    await client.bind('r', ADDR.client4)
    const fwd = await exchange(client, 'r', ADDR.server4, 7004, Buffer.from('forwarded'))
    t.same(
      { from: fwd.from, port: fwd.port, data: Buffer.from(fwd.data, 'hex').toString() },
      { from: ADDR.server4, port: 7004, data: 'forwarded' },
      'forward: the echo server answered, from the address and port the client sent to',
    )
    // Through the socks5 upstream's UDP ASSOCIATE: the header goes on and comes off in C.
    const upSrc = await client.bind('u', ADDR.client4)
    for (const size of [1, 1400]) {
      const data = prngBytes(size, size)
      const m = await exchange(client, 'u', ADDR.server4, ECHO, data)
      t.same(
        { from: m.from, port: m.port, data: Buffer.from(m.data, 'hex').equals(data) },
        { from: ADDR.server4, port: ECHO, data: true },
        `upstream: ${size} bytes echoed exactly, from the address and port the client sent to`,
      )
    }
    const seen = await seenBy(client, 'u', ADDR.server4)
    t.equal(
      seen.from,
      `${ADDR.server4} ${WHOAMI}`,
      'upstream: a second destination of the same flow answers from itself',
    )
    t.equal(seen.addr, ADDR.routerWan4, "the server saw the upstream's relay (the router's WAN address)")
    for (const [port, rule] of [
      [7003, 'no-udp'],
      [7005, 'via-http'],
    ] as const) {
      const id = `r${port}`
      const src = await client.bind(id, ADDR.client4)
      await client.send(id, ADDR.server4, port, Buffer.from('dropped'))
      const line = await ug.waitForLine(new RegExp(` info udp .*src=198\\.18\\.1\\.2:${src} .*reason=idle`))
      t.match(line, new RegExp(`rule=${rule} action=reject`), `port ${port}: rule ${rule} rejects the flow`)
      t.match(line, /pktUp=0 pktDown=0/, `port ${port}: nothing relayed`)
    }
    t.match(
      ug.events('udp-upstream-unsupported')[0]?.fields,
      { listener: 'udp', upstream: 'web' },
      'the http upstream route is refused with a warning naming it',
    )
    const upLine = await ug.waitForLine(new RegExp(` info udp .*src=198\\.18\\.1\\.2:${upSrc} .*reason=idle`))
    t.match(upLine, /rule=via-socks action=upstream via=up .*pktUp=3 pktDown=3 /, 'the upstream flow: its udp line')
    const assoc = await ug.waitForLine(/ info conn listener=socks .*reason=eof/)
    t.match(
      assoc,
      /dests=2 pktUp=3 pktDown=3 /,
      "the upstream's association ended with the flow, having relayed it all",
    )
    const direct = await client.bind('d', ADDR.client4)
    await client.send('d', ADDR.server4, 7002, Buffer.from('no echo here'))
    const line = await ug.waitForLine(new RegExp(` info udp .*src=198\\.18\\.1\\.2:${direct} .*reason=idle`))
    t.match(
      line,
      /rule=default action=direct .*pktUp=1 /,
      'a TCP-only rule leaves the UDP flow to the default (direct)',
    )
    const res = await ug.stop()
    checkCleanExit(t, ug, res)
  },
)

t.test('a flow through a socks5 upstream ends when the upstream closes its control connection', async (t) => {
  const { topo, client } = await peers(t)
  const ug = await start(t, topo, {
    upstreams: [{ name: 'up', type: 'socks5', server: `127.0.0.1:${SOCKS_PORT}` }],
    rules: [{ name: 'via-socks', network: ['udp'], listener: ['udp'], dstPort: [ECHO], action: 'upstream:up' }],
    socks: true,
    // The flow would idle for 60 s; the upstream ends its association after 1 s and closes its control connection.
    socksIdle: 1,
  })
  const src = await client.bind('u', ADDR.client4)
  const m = await exchange(client, 'u', ADDR.server4, ECHO, Buffer.from('before'))
  t.equal(Buffer.from(m.data, 'hex').toString(), 'before', 'echoed through the upstream')
  const flowLine = new RegExp(` info udp .*src=198\\.18\\.1\\.2:${src} `)
  const line = await ug.waitForLine(flowLine)
  t.match(line, /rule=via-socks action=upstream via=up .*pktUp=1 pktDown=1 .*reason=upstream-closed/, 'the flow ended')
  t.match(
    ug.events('udp-upstream-closed')[0]?.fields,
    { listener: 'udp', upstream: 'up', src: `${ADDR.client4}:${src}` },
    'a warning names the flow and the upstream',
  )
  t.match(await ug.waitForLine(/ info conn listener=socks /), /reason=udp-idle/, "the upstream's association idled out")
  // The client's next datagram is a new flow, with a new association.
  const again = await exchange(client, 'u', ADDR.server4, ECHO, Buffer.from('after'))
  t.equal(Buffer.from(again.data, 'hex').toString(), 'after', 'a new flow through a new association')
  t.equal(ug.events('udp-upstream-closed').length, 1, 'the new flow’s upstream connection is open')
  const res = await ug.stop()
  checkCleanExit(t, ug, res)
})

t.test("routerSelf: the router's own UDP goes through ugate too", async (t) => {
  const { topo } = await peers(t)
  const router = await startAgent(t, topo.router, topo.dir, 'router')
  const ug = await start(t, topo, { routerSelf: true, idle: 1 })
  const out = await topo.nft(['list', 'chain', 'inet', 'ugate', 'ugate_tproxy_out'])
  t.match(out.stdout, /meta mark set 0x00007567/, 'the output chain marks UDP for the detour through lo')
  for (const [fam, src, dst] of [
    ['IPv4', ADDR.routerWan4, ADDR.server4],
    ['IPv6', ADDR.routerWan6, ADDR.server6],
  ] as const) {
    const id = `self-${fam}`
    const port = await router.bind(id, src)
    const payload = prngBytes(0x5e1f + port, 900)
    const m = await exchange(router, id, dst, ECHO, payload)
    t.same(
      { from: m.from, port: m.port, data: m.data },
      { from: dst, port: ECHO, data: payload.toString('hex') },
      `${fam}: the echo comes back exactly, from ${dst}:${ECHO}`,
    )
    const srcRe = (fam === 'IPv4' ? src : `[${src}]`).replace(/[.[\]]/g, '\\$&')
    const line = await ug.waitForLine(new RegExp(` info udp .*src=${srcRe}:${port} .*reason=idle`))
    t.match(line, /action=direct .*pktUp=1 pktDown=1 /, `${fam}: ugate relayed the router's own flow`)
  }
  const res = await ug.stop()
  checkCleanExit(t, ug, res)
  t.same(routing(topo), { rules4: 0, rules6: 0, routes4: '', routes6: '' }, 'rules and routes gone')
})

t.test('QUIC: a flow is routed by the SNI of its ClientHello, also when it spans two datagrams', async (t) => {
  const { topo, client } = await peers(t)
  const ug = await start(t, topo, {
    idle: 1,
    rules: [
      { name: 'no-example', network: ['udp'], domain: ['example.com'], action: 'reject' },
      // Port 7002 has no server: only a flow routed by its name gets an echo (from where it sent to).
      { name: 'quic-test', network: ['udp'], domain: ['quic.test'], action: `forward:${ADDR.server4}:${ECHO}` },
    ],
  })
  const fixture = (name: string) => readFileSync(join(repoRoot, 'test', 'fixtures', 'quic', name))
  const src = (port: number) => new RegExp(` info udp .*src=198\\.18\\.1\\.2:${port} .*reason=idle`)
  // RFC 9001 A.2: a single-packet ClientHello, SNI example.com.
  const one = await client.bind('q1', ADDR.client4)
  await client.send('q1', ADDR.server4, 443, fixture('rfc9001-client-initial.bin'))
  const line1 = await ug.waitForLine(src(one))
  t.match(line1, /proto=quic host=example\.com rule=no-example action=reject /, 'routed by its SNI: rejected')
  // Chromium (v1, then v2): a post-quantum ClientHello in two datagrams, sent back to back.
  for (const v of ['v1', 'v2']) {
    const id = `q-${v}`
    const port = await client.bind(id, ADDR.client4)
    const datagrams = [0, 1].map((i) => fixture(`chromium-${v}-${i}.bin`))
    await client.send(id, ADDR.server4, 7002, datagrams)
    const echoes = await client.recv(id, 2)
    t.same(
      echoes.map((m) => ({ from: m.from, port: m.port, data: m.data })).sort((x, y) => x.data.localeCompare(y.data)),
      datagrams
        .map((d) => ({ from: ADDR.server4, port: 7002, data: d.toString('hex') }))
        .sort((x, y) => x.data.localeCompare(y.data)),
      `${v}: both held datagrams forwarded by the rule for its name and echoed exactly`,
    )
    const line = await ug.waitForLine(src(port))
    t.match(line, /proto=quic host=quic\.test rule=quic-test action=forward .*pktUp=2 /, `${v}: routed by the SNI`)
    t.notMatch(line, /sniff=/, `${v}: the sniffer finished`)
  }
  // Only the first half of the ClientHello: after the short wait the flow is routed by address.
  const half = await client.bind('q-half', ADDR.client4)
  const first = fixture('chromium-v1-0.bin')
  await client.send('q-half', ADDR.server4, ECHO, first)
  const [echo] = await client.recv('q-half', 1)
  t.equal(echo?.data, first.toString('hex'), 'half a ClientHello: the held datagram goes out after the wait')
  const line2 = await ug.waitForLine(src(half))
  t.match(
    line2,
    /proto=quic sniff=incomplete rule=default action=direct .*pktUp=1 /,
    'an incomplete ClientHello: QUIC, no name, routed by address, and the line says so',
  )
  const res = await ug.stop()
  checkCleanExit(t, ug, res)
})
