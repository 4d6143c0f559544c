// Capture survives the firewall's lifecycle: `fw4 flush` (firewall stop, and
// at shutdown) and `nft flush ruleset` delete every table, `inet ugate` too.
// ugate hears the change on its nftables netlink monitor and loads its table
// again, without being touched; SIGTERM still removes everything it added.

import t from 'tap'
import { ADDR, type Probe, captureConfig, checkResponse, checkTableGone, createTopology, probe } from '../lib/netns.js'
import { KiB, prngBytes } from '../lib/servers.js'
import { finish, startUgate } from '../lib/ugate.js'

const PORT = 15090
const http4: Probe = { what: 'IPv4 HTTP', proto: 'http', src: ADDR.client4, dst: ADDR.server4 }

t.test('a flushed ruleset gets ugate table back; stop still removes it', async (t) => {
  const topo = await createTopology(t)
  const cfg = topo.writeJson('c.json', captureConfig({ port: PORT }))
  const ug = await startUgate(t, ['run', '--config', cfg], { netns: topo.router })
  t.equal(ug.events('capture-on').length, 1, 'capture-on at start')

  for (const [round, flush] of [
    [1, ['flush', 'ruleset']],
    [2, ['delete', 'table', 'inet', 'ugate']],
  ] as const) {
    const gone = await topo.nft([...flush])
    t.equal(gone.code, 0, `round ${round}: nft ${flush.join(' ')}`, { stderr: gone.stderr })
    // The event: ugate logs capture-lost, then capture-on again.
    await ug.waitForLines(/ warn capture-lost table="inet ugate"/, round)
    await ug.waitForLines(/ info capture-on /, round + 1)
    const list = await topo.nft(['list', 'table', 'inet', 'ugate'])
    t.equal(list.code, 0, `round ${round}: table inet ugate is back`, { stderr: list.stderr })
    t.match(list.stdout, `redirect to :${PORT}`, `round ${round}: it redirects to :${PORT} again`)
    const r = await probe(topo, { ...http4, what: `after round ${round}` }, prngBytes(0x30 + round, 16 * KiB))
    await checkResponse(t, topo, { ...http4, what: `captured again after round ${round}` }, r, ADDR.routerWan4)
  }

  const res = await finish(t, ug, 2)
  t.ok(
    res.stderr.some((l) => / info capture-off /.test(l)),
    'capture-off logged',
  )
  t.notOk(
    res.stderr.some(
      (l) => / capture-lost /.test(l) && res.stderr.indexOf(l) > res.stderr.findIndex((x) => / stopping /.test(x)),
    ),
    'deleting the table on stop is not mistaken for a flush',
  )
  await checkTableGone(t, topo, 'after SIGTERM')
})
