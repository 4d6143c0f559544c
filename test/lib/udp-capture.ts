// Transparent UDP capture set-up shared by the capture-udp tests: a
// client — router (ugate) — server topology (netns.ts), a Node agent on each
// side (udp.ts), echo and whoami servers, and ugate with a tproxy listener
// and capture.udp on.

import { spawnSync } from 'node:child_process'
import type { Test } from 'tap'
import { ADDR, IFACE, TEST_ALLOW, UGATE_MARK, type Topology, createTopology } from './netns.js'
import { type Agent, startAgent } from './udp.js'
import { type Ugate, startUgate, ugateBin } from './ugate.js'

export const TCP_PORT = 15080
export const UDP_PORT = 15090
export const ECHO = 7000
export const WHOAMI = 7001
export const SOCKS_PORT = 15100
export const TPROXY_MARK = 0x7567
export const TABLE = 0x7567

export interface UdpSettings {
  routerSelf?: boolean
  rules?: unknown[]
  upstreams?: unknown[]
  idle?: number
  maxFlows?: number
  /** The tproxy listener's allow list (default TEST_ALLOW). */
  allow?: string[]
  bypass?: string[]
  excludeSrc?: string[]
  admin?: string
  /** Admin HTTP secret: the API listens on 127.0.0.1 (any port) in the router namespace. */
  http?: string
  /** A socks listener on the router's 127.0.0.1:SOCKS_PORT (an upstream for the flows). */
  socks?: boolean
  /** That socks listener's udpIdleTimeout (its associations end, closing their control connections). */
  socksIdle?: number
  /** ubusd's socket (a stand-in's: a unix socket path reaches across namespaces). */
  ubus?: string
  /** Extra environment of the ugate process (not config). */
  env?: NodeJS.ProcessEnv
}

export function udpConfig(s: UdpSettings = {}): Record<string, unknown> {
  const tproxy: Record<string, unknown> = {
    name: 'udp',
    type: 'tproxy',
    listen: `[::]:${UDP_PORT}`,
    allow: s.allow ?? TEST_ALLOW,
  }
  if (s.idle !== undefined) tproxy.udpIdleTimeout = s.idle
  if (s.maxFlows !== undefined) tproxy.maxFlows = s.maxFlows
  return {
    log: { level: 'info' },
    relay: { shutdownGrace: 1 },
    dial: { mark: UGATE_MARK },
    ...(s.admin !== undefined
      ? { admin: { socket: s.admin, ...(s.http !== undefined ? { listen: '127.0.0.1:0', secret: s.http } : {}) } }
      : {}),
    ...(s.ubus !== undefined ? { ubus: { socket: s.ubus } } : {}),
    rules: s.rules ?? [],
    upstreams: s.upstreams ?? [],
    listeners: [
      { name: 'cap', type: 'redirect', listen: `[::]:${TCP_PORT}`, allow: TEST_ALLOW },
      tproxy,
      ...(s.socks
        ? [
            {
              name: 'socks',
              type: 'socks',
              listen: `127.0.0.1:${SOCKS_PORT}`,
              ...(s.socksIdle !== undefined ? { udpIdleTimeout: s.socksIdle } : {}),
            },
          ]
        : []),
    ],
    capture: {
      enabled: true,
      listener: 'cap',
      udp: true,
      udpListener: 'udp',
      lanInterfaces: [IFACE.routerLan],
      bypass: s.bypass ?? [],
      excludeSrc: s.excludeSrc ?? [],
      routerSelf: s.routerSelf ?? false,
    },
  }
}

export interface Peers {
  topo: Topology
  client: Agent
  server: Agent
}

/** Topology, an agent on each side, echo and whoami servers on each server address. */
export async function peers(t: Test): Promise<Peers> {
  const topo = await createTopology(t)
  const [client, server] = await Promise.all([
    startAgent(t, topo.client, topo.dir, 'client'),
    startAgent(t, topo.server, topo.dir, 'server'),
  ])
  // One socket per address: a wildcard one would answer from whichever address routing picks.
  for (const addr of [ADDR.server4, ADDR.serverBypass4, ADDR.server6, ADDR.serverBypass6]) {
    await server.call({ op: 'echo', addr, port: ECHO })
    await server.call({ op: 'whoami', addr, port: WHOAMI })
  }
  return { topo, client, server }
}

export async function start(t: Test, topo: Topology, s: UdpSettings = {}): Promise<Ugate> {
  const cfg = topo.writeJson('ugate.json', udpConfig(s))
  const ug = await startUgate(t, ['run', '--config', cfg], { netns: topo.router, env: s.env })
  t.match(ug.events('capture-on')[0]?.fields, { udpPort: String(UDP_PORT) }, 'capture-on names the UDP port')
  return ug
}

/** One datagram from (id) to dst:port and its one answer. */
export async function exchange(c: Agent, id: string, dst: string, port: number, data: Buffer) {
  await c.send(id, dst, port, data)
  const [m] = await c.recv(id, 1)
  return m!
}

/** What whoami answered: the source address and port the server saw. */
export async function seenBy(c: Agent, id: string, dst: string): Promise<{ addr: string; port: number; from: string }> {
  const m = await exchange(c, id, dst, WHOAMI, Buffer.from('who'))
  const [addr, port] = Buffer.from(m.data, 'hex').toString().split(' ')
  return { addr: addr!, port: Number(port), from: `${m.from} ${m.port}` }
}

/** ip rule / ip route state of the policy routing, per family. */
export function routing(topo: Topology): { rules4: number; rules6: number; routes4: string; routes6: string } {
  const ip = (args: string[]) =>
    spawnSync('ip', ['netns', 'exec', topo.router, 'ip', ...args], { encoding: 'utf8' }).stdout ?? ''
  const count = (out: string) => out.split('\n').filter((l) => /fwmark 0x7567 lookup 30055/.test(l)).length
  return {
    rules4: count(ip(['rule', 'show'])),
    rules6: count(ip(['-6', 'rule', 'show'])),
    routes4: ip(['route', 'show', 'table', String(TABLE)]).trim(),
    routes6: ip(['-6', 'route', 'show', 'table', String(TABLE)]).trim(),
  }
}

/** `ugate ctl --json METHOD` in the router namespace, parsed. */
export function ctl(topo: Topology, socket: string, method: string): Record<string, unknown> {
  const r = spawnSync('ip', ['netns', 'exec', topo.router, ugateBin, 'ctl', '--json', '--socket', socket, method], {
    encoding: 'utf8',
  })
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>
  } catch {
    throw new Error(`ugate ctl ${method}: exit ${r.status}, stdout ${r.stdout}, stderr ${r.stderr}`)
  }
}
