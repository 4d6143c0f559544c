// routerSelf: the router's own connections are captured too (nat output
// chain), while ugate's own outbound connections, which carry its SO_MARK,
// are not: without the `meta mark` rule every dial would be redirected back
// to ugate, a loop.

import t from 'tap'
import { ADDR, type Probe, captureConfig, checkResponse, checkTableGone, createTopology, probe } from '../lib/netns.js'
import { KiB, prngBytes } from '../lib/servers.js'
import { finish, startUgate } from '../lib/ugate.js'

const PORT = 15080
const BODY = 128 * KiB

t.test("routerSelf: the router's own traffic is captured, ugate's marked dials are not", async (t) => {
  const topo = await createTopology(t)
  const cfg = topo.writeJson('ugate.json', captureConfig({ port: PORT, routerSelf: true }))
  const ug = await startUgate(t, ['run', '--config', cfg], { netns: topo.router })
  const table = await topo.nft(['list', 'table', 'inet', 'ugate'])
  t.match(
    table.stdout,
    /chain ugate_output \{[^}]*meta mark 0x000000ff return[^}]*redirect to :15080/,
    "output chain skips ugate's mark, then redirects",
    {
      table: table.stdout,
    },
  )

  const probes: Probe[] = [
    { what: 'router itself, IPv4 HTTP', proto: 'http', ns: topo.router, dst: ADDR.server4 },
    { what: 'router itself, IPv6 TLS', proto: 'tls', ns: topo.router, dst: ADDR.server6 },
    { what: 'LAN client, IPv4 TLS', proto: 'tls', src: ADDR.client4, dst: ADDR.server4 },
  ]
  for (const [i, p] of probes.entries()) {
    const r = await probe(topo, p, prngBytes(0x5e1f + i, BODY))
    const v6 = p.dst.includes(':')
    await checkResponse(t, topo, p, r, v6 ? ADDR.routerWan6 : ADDR.routerWan4)
    const conns = await ug.waitForConns(i + 1)
    t.match(
      conns[i]?.fields,
      {
        listener: 'cap',
        // The router's own connection keeps its source address; a LAN client's is the client's.
        src: new RegExp(`^\\[?${(p.src ?? (v6 ? ADDR.routerWan6 : ADDR.routerWan4)).replace(/\./g, '\\.')}\\]?:\\d+$`),
        dst: r.dst,
        proto: p.proto,
        host: r.name,
        action: 'direct',
      },
      `${p.what}: one conn line with the original destination and the name`,
      { line: conns[i]?.raw },
    )
  }
  // A captured dial of ugate's would show up as a second conn line per
  // request (src = the router, dst = the same server), or as reason=loop.
  const conns = ug.events('conn')
  t.equal(conns.length, probes.length, "one conn line per request: ugate's own dials were not captured", {
    stderr: ug.lines,
  })
  await finish(t, ug, probes.length)
  t.ok(
    ug.lines.some((l) => / info capture-off /.test(l)),
    'capture-off logged',
  )
  await checkTableGone(t, topo, 'after SIGTERM')
})
