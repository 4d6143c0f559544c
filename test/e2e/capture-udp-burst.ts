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
