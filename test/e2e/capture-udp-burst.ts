// A burst of new UDP flows through the tproxy listener: 1 000 client sockets
// send their first datagram at once, so many flows wait for their route from
// JS together (native/udp.c's pending cap). Every first datagram must get
// through: none dropped as busy or queue-full, every echo back, the counters
// exact.

import t from 'tap'
import { ADDR } from '../lib/netns.js'
import { ECHO, ctl, peers, start } from '../lib/udp-capture.js'
import { checkCleanExit } from '../lib/ugate.js'

const FLOWS = 1000
const SIZE = 100

t.test('1 000 new flows in one burst: every first datagram through, none dropped as busy', async (t) => {
  const { topo, client } = await peers(t)
  const admin = `${topo.dir}/admin.sock`
  const ug = await start(t, topo, { admin, maxFlows: 2 * FLOWS })

  // All sockets open, then every one sends its datagram without waiting for the others.
  const burst = await client.call(
    { op: 'burst', addr: ADDR.client4, flows: FLOWS, count: 1, size: SIZE, to: ADDR.server4, port: ECHO, seed: 11 },
    90_000,
  )
  t.same(
    burst,
    { seq: burst.seq, ok: true, flows: FLOWS, wrongSource: 0, unexpected: 0 },
    'every flow got the echo of its first datagram, from the server address',
  )

  const st = ctl(topo, admin, 'status') as {
    udp: {
      flowsTotal: number
      flowsPendingPeak: number
      packetsUp: number
      bytesUp: number
      packetsDown: number
      drops: Record<string, number>
    }
  }
  t.match(
    st.udp,
    {
      flowsTotal: FLOWS,
      packetsUp: FLOWS,
      bytesUp: FLOWS * SIZE,
      packetsDown: FLOWS,
      drops: { busy: 0, queueFull: 0, noMemory: 0, sendFailed: 0 },
    },
    'one flow per socket, each first datagram relayed up and its echo down; no drop',
  )
  t.ok(
    st.udp.flowsPendingPeak >= 1 && st.udp.flowsPendingPeak <= FLOWS,
    `the pending peak is counted (${st.udp.flowsPendingPeak})`,
  )
  t.same(ug.events('udp-busy'), [], 'no busy warning')

  const res = await ug.stop()
  checkCleanExit(t, ug, res)
})

t.test('over the pending cap: first datagrams dropped as busy, warned once per tick, the counts agree', async (t) => {
  const { topo, client } = await peers(t)
  const admin = `${topo.dir}/admin.sock`
  // No flow may wait for its route (native/mod_udp.c's test setting): every new flow is over the cap.
  const ug = await start(t, topo, { admin, env: { UGATE_TEST_UDP_PENDING_MAX: '0' } })
  const SENT = 300
  await client.call(
    {
      op: 'spray',
      addr: ADDR.client4,
      flows: SENT,
      basePort: 21000,
      size: SIZE,
      to: ADDR.server4,
      port: ECHO,
      seed: 13,
    },
    60_000,
  )
  // The tick reports what was dropped since the last one: wait for warnings until they account for every datagram.
  const busyLine = / warn udp-busy /
  const warned = () => ug.events('udp-busy').reduce((n, l) => n + Number(l.fields.dropped), 0)
  while (warned() < SENT) await ug.waitForLines(busyLine, ug.matching(busyLine).length + 1)
  const lines = ug.events('udp-busy')
  t.equal(warned(), SENT, 'the warnings count every dropped first datagram, none twice')
  t.ok(
    lines.every((l) => l.fields.listener === 'udp' && Number(l.fields.dropped) >= 1),
    'each warning names the listener and a positive count',
  )
  t.ok(lines.length < SENT, `rate-limited: ${lines.length} warnings for ${SENT} drops, not one per datagram`)

  const st = ctl(topo, admin, 'status') as {
    udp: { flowsTotal: number; flowsLive: number; packetsUp: number; drops: Record<string, number> }
  }
  t.match(
    st.udp,
    { flowsTotal: 0, flowsLive: 0, packetsUp: 0, drops: { busy: SENT, queueFull: 0, noMemory: 0 } },
    'every datagram counted as busy, no flow opened, nothing relayed',
  )
  const res = await ug.stop()
  checkCleanExit(t, ug, res)
})
