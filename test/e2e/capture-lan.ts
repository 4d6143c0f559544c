// Transparent capture of LAN traffic with real clients: three network
// namespaces (client — router — server), ugate with a redirect listener and
// "capture" in the router, curl in the client, Node HTTP/HTTPS servers in the
// server namespace (see test/lib/netns.ts).
//
// Captured: the server sees the connection come from the router (ugate
// dialed it), ugate logs the original destination and the sniffed Host/SNI.
// Not captured (bypassed destination, excluded source, ugate's own mark): the
// server sees the client's own address (plain forwarding) and ugate logs
// nothing for it.

import t from 'tap'
import type { Test } from 'tap'
import {
  ADDR,
  CLIENT_PROBES,
  IFACE,
  type Probe,
  type Topology,
  captureConfig,
  checkResponse,
  checkTableGone,
  createTopology,
  hostPort,
  markClientsRuleset,
  probe,
} from '../lib/netns.js'
import { KiB, prngBytes } from '../lib/servers.js'
import { type LogLine, type Ugate, finish, startUgate } from '../lib/ugate.js'

const PORT = 15080
const BODY = 256 * KiB

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** The access line of a captured probe: original destination, sniffed name, the right listener. */
function checkConn(t: Test, conn: LogLine | undefined, p: Probe, dst: string, name: string, bytes: number): void {
  const v6 = p.dst.includes(':')
  t.match(
    conn?.fields,
    {
      listener: 'cap',
      src: new RegExp(`^${escape(p.src!.includes(':') ? `[${p.src}]` : p.src!)}:\\d+$`),
      dst,
      proto: p.proto,
      host: name,
      // curl closes a TLS connection right after sending its close_notify; the
      // server's close_notify may then reach a closed socket, which answers
      // with a RST (ugate sees ECONNRESET, or EPIPE on its next write). The
      // whole response has arrived by then (checked above).
      reason: p.proto === 'tls' ? /^(eof|client-error:(ECONNRESET|EPIPE))$/ : 'eof',
      action: 'direct',
    },
    `${p.what}: conn line with the original destination ${dst} and ${p.proto === 'tls' ? 'SNI' : 'Host'} ${name}`,
    { line: conn?.raw },
  )
  t.ok(
    Number(conn?.fields.up) > bytes && Number(conn?.fields.down) > bytes,
    `${p.what}: conn line counts the body both ways`,
    {
      line: conn?.raw,
    },
  )
}

function captureOn(t: Test, ug: Ugate): void {
  t.match(
    ug.events('capture-on')[0]?.fields,
    { table: 'inet ugate', port: String(PORT), interfaces: IFACE.routerLan },
    'capture-on logged with the port and the LAN interface',
    { stderr: ug.lines },
  )
}

async function stopAndCheck(t: Test, ug: Ugate, conns: number, topo: Topology): Promise<void> {
  const res = await finish(t, ug, conns)
  t.ok(
    res.stderr.some((l) => / info capture-off /.test(l)),
    'capture-off logged on SIGTERM',
    { stderr: res.stderr },
  )
  await checkTableGone(t, topo, 'after SIGTERM')
}

t.test(
  'captured: IPv4 and IPv6, HTTP by Host and TLS by SNI, original destination logged, response intact',
  async (t) => {
    const topo = await createTopology(t)
    const cfg = topo.writeJson('ugate.json', captureConfig({ port: PORT }))
    const ug = await startUgate(t, ['run', '--config', cfg], { netns: topo.router })
    captureOn(t, ug)

    const probes = CLIENT_PROBES
    for (const [i, p] of probes.entries()) {
      const r = await probe(topo, p, prngBytes(0xca70 + i, BODY))
      // Captured: ugate dialed the server from the router's WAN address.
      await checkResponse(t, topo, p, r, p.dst.includes(':') ? ADDR.routerWan6 : ADDR.routerWan4)
      const conns = await ug.waitForConns(i + 1)
      checkConn(t, conns[i], p, r.dst, r.name, BODY)
    }

    // A client connecting to the redirect port itself has no original destination: reset, not relayed.
    for (const [i, ip] of [ADDR.routerLan4, ADDR.routerLan6].entries()) {
      const url = `http://${hostPort(ip, PORT)}/`
      const r = await topo.exec(topo.client, ['curl', '-sS', '--globoff', '--max-time', '10', '-o', '/dev/null', url])
      t.not(r.code, 0, `direct connection to ${hostPort(ip, PORT)}: curl fails`, { stderr: r.stderr })
      const conns = await ug.waitForConns(probes.length + i + 1)
      t.match(
        conns[probes.length + i]?.fields,
        { listener: 'cap', dst: '-', up: '0', down: '0', reason: 'not-redirected' },
        `direct connection to ${hostPort(ip, PORT)}: conn line reason=not-redirected`,
      )
    }
    await stopAndCheck(t, ug, probes.length + 2, topo)
  },
)

t.test('ipv6 false: IPv4 is captured, IPv6 is only forwarded', async (t) => {
  const topo = await createTopology(t)
  const cfg = topo.writeJson('ugate.json', captureConfig({ port: PORT, ipv6: false }))
  const ug = await startUgate(t, ['run', '--config', cfg], { netns: topo.router })
  captureOn(t, ug)
  const v6: Probe = { what: 'IPv6 HTTP with ipv6 false', proto: 'http', src: ADDR.client6, dst: ADDR.server6 }
  let r = await probe(topo, v6, prngBytes(0x6f, BODY))
  await checkResponse(t, topo, v6, r, ADDR.client6)
  t.equal(ug.events('conn').length, 0, 'no conn line for IPv6')
  const v4: Probe = { what: 'IPv4 HTTP with ipv6 false', proto: 'http', src: ADDR.client4, dst: ADDR.server4 }
  r = await probe(topo, v4, prngBytes(0x4f, BODY))
  await checkResponse(t, topo, v4, r, ADDR.routerWan4)
  const conns = await ug.waitForConns(1)
  checkConn(t, conns[0], v4, r.dst, r.name, BODY)
  await stopAndCheck(t, ug, 1, topo)
})

t.test("not captured: bypassed destinations, excluded sources, ugate's mark", async (t) => {
  const topo = await createTopology(t)
  // The test's own table in the router marks the "marked" clients' packets.
  const marks = await topo.nft(['-f', '-'], markClientsRuleset())
  t.equal(marks.code, 0, 'test marking table loaded in the router', { stderr: marks.stderr })
  const cfg = topo.writeJson(
    'ugate.json',
    captureConfig({
      port: PORT,
      bypass: [ADDR.serverBypass4, `${ADDR.serverBypass6}/128`],
      excludeSrc: [`${ADDR.clientExcluded4}/32`, ADDR.clientExcluded6],
    }),
  )
  const ug = await startUgate(t, ['run', '--config', cfg], { netns: topo.router })
  captureOn(t, ug)

  const notCaptured: Probe[] = [
    { what: 'bypassed IPv4 destination, HTTP', proto: 'http', src: ADDR.client4, dst: ADDR.serverBypass4 },
    { what: 'bypassed IPv4 destination, TLS', proto: 'tls', src: ADDR.client4, dst: ADDR.serverBypass4 },
    { what: 'bypassed IPv6 destination, HTTP', proto: 'http', src: ADDR.client6, dst: ADDR.serverBypass6 },
    { what: 'bypassed IPv6 destination, TLS', proto: 'tls', src: ADDR.client6, dst: ADDR.serverBypass6 },
    { what: 'excluded IPv4 source, HTTP', proto: 'http', src: ADDR.clientExcluded4, dst: ADDR.server4 },
    { what: 'excluded IPv6 source, TLS', proto: 'tls', src: ADDR.clientExcluded6, dst: ADDR.server6 },
    { what: `IPv4 packets with ugate's mark, HTTP`, proto: 'http', src: ADDR.clientMarked4, dst: ADDR.server4 },
    { what: `IPv6 packets with ugate's mark, TLS`, proto: 'tls', src: ADDR.clientMarked6, dst: ADDR.server6 },
  ]
  for (const [i, p] of notCaptured.entries()) {
    const r = await probe(topo, p, prngBytes(0xb7a0 + i, BODY))
    // Not captured: plain forwarding, the server sees the client itself.
    await checkResponse(t, topo, p, r, p.src!)
  }
  t.equal(ug.events('conn').length, 0, 'no conn line for traffic that is not captured', { stderr: ug.lines })

  // Controls, in the same run: another mark, and the plain client, are captured.
  const captured: Probe[] = [
    { what: 'IPv4 packets with another mark, HTTP', proto: 'http', src: ADDR.clientOtherMark4, dst: ADDR.server4 },
    { what: 'IPv6 packets with another mark, TLS', proto: 'tls', src: ADDR.clientOtherMark6, dst: ADDR.server6 },
    { what: 'IPv4 client, HTTP (control)', proto: 'http', src: ADDR.client4, dst: ADDR.server4 },
  ]
  for (const [i, p] of captured.entries()) {
    const r = await probe(topo, p, prngBytes(0xc0a0 + i, BODY))
    await checkResponse(t, topo, p, r, p.dst.includes(':') ? ADDR.routerWan6 : ADDR.routerWan4)
    const conns = await ug.waitForConns(i + 1)
    checkConn(t, conns[i], p, r.dst, r.name, BODY)
  }
  const srcs = ug.events('conn').map((c) => c.fields.src ?? '')
  const dsts = ug.events('conn').map((c) => c.fields.dst ?? '')
  t.same(
    srcs.filter((s) =>
      [ADDR.clientExcluded4, ADDR.clientExcluded6, ADDR.clientMarked4, ADDR.clientMarked6].some((a) => s.includes(a)),
    ),
    [],
    'no conn line from an excluded or marked source',
  )
  t.same(
    dsts.filter((d) => d.includes(ADDR.serverBypass4) || d.includes(ADDR.serverBypass6)),
    [],
    'no conn line to a bypassed destination',
  )
  await stopAndCheck(t, ug, captured.length, topo)
  const kept = await topo.nft(['list', 'table', 'inet', 'ugt_mark'])
  t.equal(kept.code, 0, "ugate's stop leaves the router's other tables alone", { stderr: kept.stderr })
})
