// TCP capture with TPROXY instead of REDIRECT: capture.listener names a
// tproxy listener that takes tcp (and udp). Client — router (ugate) — server
// namespaces (test/lib/netns.ts), curl in the client, Node HTTP/HTTPS
// servers in the server namespace.
//
// Captured: the server sees ugate (the router's WAN address), ugate logs the
// original destination (its accepted socket's local address) and the sniffed
// Host/SNI; no REDIRECT (no conntrack NAT) anywhere in ugate's table.
// Not captured (bypassed destination, excluded source): the server sees the
// client itself. The policy routing TPROXY needs comes and goes with the
// capture, with UDP capture off too.

import { spawnSync } from 'node:child_process'
import t from 'tap'
import type { Test } from 'tap'
import {
  ADDR,
  CLIENT_PROBES,
  IFACE,
  type Probe,
  TEST_ALLOW,
  type Topology,
  UGATE_MARK,
  checkResponse,
  checkTableGone,
  createTopology,
  hostPort,
  probe,
} from '../lib/netns.js'
import { KiB, prngBytes } from '../lib/servers.js'
import { startAgent } from '../lib/udp.js'
import { type Ugate, finish, settleFds, startUgate } from '../lib/ugate.js'

const PORT = 15090
const BODY = 64 * KiB
const ECHO = 7000

interface Settings {
  networks: string[]
  udp: boolean
  bypass?: string[]
  excludeSrc?: string[]
}

function config(s: Settings): Record<string, unknown> {
  return {
    log: { level: 'info' },
    relay: { idleTimeout: 60, shutdownGrace: 2 },
    dial: { connectTimeout: 5, mark: UGATE_MARK },
    listeners: [
      {
        name: 'tp',
        type: 'tproxy',
        listen: `[::]:${PORT}`,
        networks: s.networks,
        allow: TEST_ALLOW,
        udpIdleTimeout: 1,
      },
    ],
    capture: {
      enabled: true,
      listener: 'tp',
      udp: s.udp,
      udpListener: s.udp ? 'tp' : '',
      lanInterfaces: [IFACE.routerLan],
      ports: [80, 443],
      bypass: s.bypass ?? [],
      excludeSrc: s.excludeSrc ?? [],
    },
  }
}

async function start(t: Test, topo: Topology, s: Settings): Promise<Ugate> {
  const ug = await startUgate(t, ['run', '--config', topo.writeJson('ugate.json', config(s))], { netns: topo.router })
  t.match(ug.events('capture-on')[0]?.fields, { tcp: 'tproxy', port: String(PORT) }, 'capture-on: TCP with TPROXY')
  const table = await topo.nft(['list', 'table', 'inet', 'ugate'])
  t.notMatch(table.stdout, /redirect/, 'no REDIRECT (no conntrack NAT) in ugate’s table')
  t.match(table.stdout, new RegExp(`meta l4proto tcp tproxy ip to :${PORT}`), 'IPv4 TCP TPROXY rule loaded')
  t.match(table.stdout, new RegExp(`meta l4proto tcp tproxy ip6 to :${PORT}`), 'IPv6 TCP TPROXY rule loaded')
  return ug
}

/** fwmark rules of the TPROXY policy routing, IPv4 and IPv6. */
function fwmarkRules(topo: Topology): number[] {
  return ['-4', '-6'].map(
    (v) =>
      (spawnSync('ip', ['netns', 'exec', topo.router, 'ip', v, 'rule', 'show'], { encoding: 'utf8' }).stdout ?? '')
        .split('\n')
        .filter((l) => /fwmark 0x7567 lookup 30055/.test(l)).length,
  )
}

t.test('TPROXY TCP and UDP on one listener: original destination, sniffed name, response intact', async (t) => {
  const topo = await createTopology(t)
  const ug = await start(t, topo, { networks: ['udp', 'tcp'], udp: true })
  const listeners = ug.events('listening').map((l) => l.fields.network ?? 'tcp')
  t.same(listeners.sort(), ['tcp', 'udp'], 'one listener name, a TCP and a UDP socket')
  const probes = CLIENT_PROBES
  for (const [i, p] of probes.entries()) {
    const r = await probe(topo, p, prngBytes(0x7c90 + i, BODY))
    await checkResponse(t, topo, p, r, p.dst.includes(':') ? ADDR.routerWan6 : ADDR.routerWan4)
    const conns = await ug.waitForConns(i + 1)
    t.match(
      conns[i]?.fields,
      { listener: 'tp', dst: r.dst, proto: p.proto, host: r.name, action: 'direct' },
      `${p.what}: conn line with the original destination ${r.dst} and the sniffed name`,
      { line: conns[i]?.raw },
    )
  }
  // The same listener's UDP side still relays.
  const [client, server] = await Promise.all([
    startAgent(t, topo.client, topo.dir, 'client'),
    startAgent(t, topo.server, topo.dir, 'server'),
  ])
  await server.call({ op: 'echo', addr: ADDR.server4, port: ECHO })
  await client.bind('u', ADDR.client4)
  const payload = prngBytes(0x7c9f, 700)
  await client.send('u', ADDR.server4, ECHO, payload)
  const [m] = await client.recv('u', 1)
  t.same(
    { from: m?.from, port: m?.port, data: m?.data },
    { from: ADDR.server4, port: ECHO, data: payload.toString('hex') },
    'UDP: the echo comes back exactly, from the server',
  )
  // Straight to the listener's port: nowhere to go, reset.
  const url = `http://${hostPort(ADDR.routerLan4, PORT)}/`
  const direct = await topo.exec(topo.client, ['curl', '-sS', '--max-time', '10', '-o', '/dev/null', url])
  t.not(direct.code, 0, 'a connection straight to the listener fails')
  const conns = await ug.waitForConns(probes.length + 1)
  t.match(
    conns[probes.length]?.fields,
    { listener: 'tp', reason: 'not-redirected', up: '0', down: '0' },
    'and its conn line says not-redirected',
  )
  // The UDP flow ends idle; its sockets close with it (reply sockets at the next sweep, within a second).
  await ug.waitForLine(/ info udp .*reason=idle/)
  await settleFds(ug)
  await finish(t, ug, probes.length + 1)
  await checkTableGone(t, topo, 'after SIGTERM')
  t.same(fwmarkRules(topo), [0, 0], 'policy routing removed')
})

t.test('TPROXY TCP alone: bypass and exclude honoured, policy routing with UDP capture off', async (t) => {
  const topo = await createTopology(t)
  const ug = await start(t, topo, {
    networks: ['tcp'],
    udp: false,
    bypass: [ADDR.serverBypass4],
    excludeSrc: [ADDR.clientExcluded4],
  })
  t.same(fwmarkRules(topo), [1, 1], 'one fwmark rule per family while capturing')
  t.equal(ug.events('listening').length, 1, 'only a TCP socket (no UDP side)')
  const notCaptured: Probe[] = [
    { what: 'bypassed destination', proto: 'http', src: ADDR.client4, dst: ADDR.serverBypass4 },
    { what: 'excluded source', proto: 'tls', src: ADDR.clientExcluded4, dst: ADDR.server4 },
  ]
  for (const [i, p] of notCaptured.entries()) {
    const r = await probe(topo, p, prngBytes(0x7ca0 + i, BODY))
    await checkResponse(t, topo, p, r, p.src!)
  }
  t.equal(ug.events('conn').length, 0, 'no conn line for traffic that is not captured')
  const control: Probe = { what: 'IPv4 TLS (control)', proto: 'tls', src: ADDR.client4, dst: ADDR.server4 }
  const r = await probe(topo, control, prngBytes(0x7cb0, BODY))
  await checkResponse(t, topo, control, r, ADDR.routerWan4)
  const [conn] = await ug.waitForConns(1)
  t.match(conn?.fields, { listener: 'tp', dst: r.dst, host: r.name }, 'the control is captured')
  await finish(t, ug, 1)
  await checkTableGone(t, topo, 'after SIGTERM')
  t.same(fwmarkRules(topo), [0, 0], 'policy routing removed with UDP capture off too')
})
