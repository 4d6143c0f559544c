// The life of ugate's nftables table in the router namespace: loaded at
// start (capture-on), deleted on SIGTERM (capture-off); after a crash
// (SIGKILL: no capture-off) the stale table keeps redirecting to a dead port
// until the next start replaces it, whole, in one transaction. Other tables
// of the router are never touched.

import t from 'tap'
import { ADDR, type Probe, captureConfig, checkResponse, checkTableGone, createTopology, probe } from '../lib/netns.js'
import { KiB, prngBytes } from '../lib/servers.js'
import { finish, startUgate } from '../lib/ugate.js'

const PORT_A = 15080
const PORT_B = 15081
const BODY = 64 * KiB

/** A table of the test's own in the router: ugate must leave it alone. */
const OTHER_TABLE =
  'table inet ugt_keep {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n'

t.test('stale table from a crash is replaced on start; the table is gone after SIGTERM', async (t) => {
  const topo = await createTopology(t)
  const other = await topo.nft(['-f', '-'], OTHER_TABLE)
  t.equal(other.code, 0, 'test table inet ugt_keep loaded in the router', { stderr: other.stderr })
  await checkTableGone(t, topo, 'before ugate starts')

  const http4: Probe = { what: 'IPv4 HTTP', proto: 'http', src: ADDR.client4, dst: ADDR.server4 }

  // --- ugate A: loads the table, then dies without cleaning up
  const cfgA = topo.writeJson('a.json', captureConfig({ port: PORT_A, bypass: [ADDR.serverBypass4] }))
  const a = await startUgate(t, ['run', '--config', cfgA], { netns: topo.router })
  t.match(a.events('capture-on')[0]?.fields, { port: String(PORT_A) }, 'ugate A: capture-on')
  const listA = await topo.nft(['list', 'table', 'inet', 'ugate'])
  t.equal(listA.code, 0, 'ugate A: table inet ugate loaded', { stderr: listA.stderr })
  t.match(listA.stdout, `redirect to :${PORT_A}`, `ugate A: redirect to :${PORT_A}`)
  t.match(listA.stdout, ADDR.serverBypass4, 'ugate A: its bypass address is in the table')

  let r = await probe(topo, { ...http4, what: 'through ugate A' }, prngBytes(0x1a, BODY))
  await checkResponse(t, topo, { ...http4, what: 'through ugate A' }, r, ADDR.routerWan4)
  const [connA] = await a.waitForConns(1)
  t.match(connA?.fields, { listener: 'cap', dst: r.dst, host: r.name, reason: 'eof' }, 'ugate A: conn line')

  a.signal('SIGKILL')
  const resA = await a.waitExit()
  t.same(
    { code: resA.code, signal: resA.signal },
    { code: null, signal: 'SIGKILL' },
    'ugate A killed with SIGKILL (simulated crash)',
  )
  t.notOk(
    resA.stderr.some((l) => / capture-off /.test(l)),
    'ugate A: no capture-off (it had no chance)',
  )
  t.same(a.sanitizerLines(), [], 'ugate A: no sanitizer reports')

  const stale = await topo.nft(['list', 'table', 'inet', 'ugate'])
  t.equal(stale.code, 0, 'after the crash: the stale table is still there', { stderr: stale.stderr })
  t.match(stale.stdout, `redirect to :${PORT_A}`, `after the crash: it still redirects to :${PORT_A}`)
  r = await probe(topo, { ...http4, what: 'after the crash' }, prngBytes(0x1b, BODY))
  t.equal(
    r.res.code,
    7,
    'after the crash: the stale table sends the client to a dead port (curl: connection refused)',
    {
      stderr: r.res.stderr,
    },
  )

  // --- ugate B: another port and no bypass; must replace A's table, not add to it
  const cfgB = topo.writeJson('b.json', captureConfig({ port: PORT_B }))
  const b = await startUgate(t, ['run', '--config', cfgB], { netns: topo.router })
  t.match(b.events('capture-on')[0]?.fields, { port: String(PORT_B) }, 'ugate B: capture-on over the stale table')
  const listB = await topo.nft(['list', 'table', 'inet', 'ugate'])
  t.equal(listB.code, 0, 'ugate B: table inet ugate loaded', { stderr: listB.stderr })
  t.match(listB.stdout, `redirect to :${PORT_B}`, `ugate B: redirect to :${PORT_B}`)
  t.notMatch(listB.stdout, `redirect to :${PORT_A}`, `ugate B: the stale redirect to :${PORT_A} is gone`)
  t.notMatch(listB.stdout, ADDR.serverBypass4, "ugate B: A's bypass address is gone (replaced, not merged)")
  t.equal(listB.stdout.match(/\bredirect to\b/g)?.length, 1, 'ugate B: exactly one redirect rule', {
    table: listB.stdout,
  })
  const tables = await topo.nft(['list', 'tables'])
  t.same(
    tables.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .sort(),
    ['table inet ugate', 'table inet ugt_keep'],
    'router tables: one inet ugate, and the test table untouched',
  )

  r = await probe(topo, { ...http4, what: 'through ugate B' }, prngBytes(0x1c, BODY))
  await checkResponse(t, topo, { ...http4, what: 'through ugate B' }, r, ADDR.routerWan4)
  const [connB] = await b.waitForConns(1)
  t.match(connB?.fields, { listener: 'cap', dst: r.dst, host: r.name, reason: 'eof' }, 'ugate B: conn line')

  // --- clean stop: the table goes, traffic flows by plain forwarding again
  const resB = await finish(t, b, 1)
  t.ok(
    resB.stderr.some((l) => / info capture-off /.test(l)),
    'ugate B: capture-off logged',
    { stderr: resB.stderr },
  )
  await checkTableGone(t, topo, 'after SIGTERM')
  const left = await topo.nft(['list', 'tables'])
  t.same(left.stdout.trim(), 'table inet ugt_keep', 'after SIGTERM: only the test table is left')
  r = await probe(topo, { ...http4, what: 'after ugate stopped' }, prngBytes(0x1d, BODY))
  await checkResponse(t, topo, { ...http4, what: 'after ugate stopped (plain forwarding)' }, r, ADDR.client4)
})
