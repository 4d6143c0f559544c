// The README's capture setup: ONE redirect listener (README: "listen":
// "0.0.0.0:15001") and capture with its defaults, which include "ipv6": true.
// ugate's nft rule redirects both families to that one port, but its IPv6
// listeners are V6ONLY and IPv4 ones are IPv4 only: whichever family has no
// listener on the port gets "connection refused" for every captured
// connection — all of the LAN's HTTP/HTTPS over that family, silently.
//
// Whatever the fix (capture only the families that have a listener, listen
// dual-stack, or reject the config), a config ugate accepts must not
// black-hole a family: each request below must succeed, captured or
// forwarded. Rejecting the config at start (exit 2, naming capture) passes
// too.

import t from 'tap'
import {
  ADDR,
  IFACE,
  type Probe,
  TEST_ALLOW,
  UGATE_MARK,
  checkResponse,
  checkTableGone,
  createTopology,
  probe,
} from '../lib/netns.js'
import { KiB, prngBytes } from '../lib/servers.js'
import { finish, startUgate } from '../lib/ugate.js'

const PORT = 15001
const BODY = 64 * KiB

for (const listen of [`0.0.0.0:${PORT}`, `[::]:${PORT}`]) {
  t.test(`one redirect listener on ${listen}, capture.ipv6 default: no address family is black-holed`, async (t) => {
    const topo = await createTopology(t)
    const cfg = topo.writeJson('ugate.json', {
      dial: { mark: UGATE_MARK },
      listeners: [{ name: 'tproxy', type: 'redirect', listen, allow: TEST_ALLOW }],
      capture: { enabled: true, listener: 'tproxy', lanInterfaces: [IFACE.routerLan], ports: [80, 443] },
    })
    const ug = await startUgate(t, ['run', '--config', cfg], { netns: topo.router, waitReady: false })
    const started = await ug.waitForLine(/ info ready /).then(
      () => true,
      () => false,
    )
    if (!started) {
      const res = await ug.waitExit()
      t.equal(res.code, 2, 'config rejected at start: exit 2', { stderr: res.stderr })
      t.ok(
        res.stderr.some((l) => /capture/.test(l)),
        'the error names capture',
        { stderr: res.stderr },
      )
      t.same(ug.sanitizerLines(), [], 'no sanitizer reports')
      await checkTableGone(t, topo, 'config rejected')
      return
    }
    await ug.ready()

    const probes: Probe[] = [
      { what: `IPv4 HTTP via ${listen}`, proto: 'http', src: ADDR.client4, dst: ADDR.server4 },
      { what: `IPv6 HTTP via ${listen}`, proto: 'http', src: ADDR.client6, dst: ADDR.server6 },
      { what: `IPv6 TLS via ${listen}`, proto: 'tls', src: ADDR.client6, dst: ADDR.server6 },
      { what: `IPv4 TLS via ${listen}`, proto: 'tls', src: ADDR.client4, dst: ADDR.server4 },
    ]
    let captured = 0
    for (const [i, p] of probes.entries()) {
      const r = await probe(topo, p, prngBytes(0x51e0 + i, BODY))
      const router = p.dst.includes(':') ? ADDR.routerWan6 : ADDR.routerWan4
      if (r.res.code !== 0) {
        t.fail(`${p.what}: the request must not be refused (captured or forwarded)`, {
          curl: `exit ${r.res.code}: ${r.res.stderr.trim()}`,
          ugate: ug.lines.filter((l) => / (capture-on|listening) /.test(l)),
          nft: (await topo.nft(['list', 'chain', 'inet', 'ugate', 'ugate_prerouting'])).stdout,
        })
        continue
      }
      const remote = r.res.headers['x-remote'] === router ? router : p.src!
      if (remote === router) captured++
      await checkResponse(t, topo, p, r, remote)
      t.comment(`${p.what}: ${remote === router ? 'captured' : 'forwarded'}`)
    }
    await finish(t, ug, captured)
    await checkTableGone(t, topo, 'after SIGTERM')
  })
}
