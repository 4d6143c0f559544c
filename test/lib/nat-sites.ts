// Sites in network namespaces for the mesh tests behind NAT: a home LAN
// behind a NAT namespace that masquerades outbound and drops every inbound
// connection (no DNAT anywhere), a public gate (a VPS) and an internet
// client; with `homeB`, a second home behind a NAT of its own (issue 13's
// two homes and a VPS). Used by test/e2e/sni-relay.ts,
// test/e2e/reverse-tunnel.ts and test/e2e/node-routing.ts.
//
//   home 10.77.0.2 ── 10.77.0.1 nat 198.51.100.2 ── 198.51.100.1 vps 203.0.113.1 ── 203.0.113.2 net
//   homeb 10.78.0.2 ── 10.78.0.1 natb 198.51.101.2 ── 198.51.101.1 vps
//
// The NAT's uplink is its interface `n-v` (SITE_UPLINK).

import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createNamespaces, inNs, ipBatch, must, run } from './netns.js'

export const SITE = {
  home: '10.77.0.2',
  natIn: '10.77.0.1',
  natOut: '198.51.100.2',
  vpsIn: '198.51.100.1',
  vps: '203.0.113.1',
  client: '203.0.113.2',
  homeB: '10.78.0.2',
  natBIn: '10.78.0.1',
  natBOut: '198.51.101.2',
  vpsInB: '198.51.101.1',
} as const

/** The NAT namespace's interface towards the VPS: the home's uplink. */
export const SITE_UPLINK = 'n-v'

export interface Site {
  ns: { home: string; nat: string; vps: string; net: string; homeb?: string; natb?: string }
  dir: string
  exec(ns: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): ReturnType<typeof run>
}

/** A home LAN behind a NAT: MASQUERADE out, every new inbound connection dropped (no DNAT anywhere). */
async function natHome(
  home: string,
  nat: string,
  vps: string,
  a: { home: string; natIn: string; natOut: string; vpsIn: string; vpsIf: string },
): Promise<void> {
  await must(inNs(nat, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']))
  await ipBatch(nat, [
    'link set lo up',
    `link add n-h type veth peer name h-n netns ${home}`,
    `link add n-v type veth peer name ${a.vpsIf} netns ${vps}`,
    `addr add ${a.natIn}/24 dev n-h`,
    `addr add ${a.natOut}/24 dev n-v`,
    'link set n-h up',
    'link set n-v up',
    `route add default via ${a.vpsIn}`,
  ])
  await ipBatch(home, [
    'link set lo up',
    `addr add ${a.home}/24 dev h-n`,
    'link set h-n up',
    `route add default via ${a.natIn}`,
  ])
  await must(inNs(nat, ['nft', '-f', '-']), {
    input: `table inet ugt_nat {
  chain nat_out { type nat hook postrouting priority srcnat; oifname "n-v" masquerade; }
  chain drop_fwd { type filter hook forward priority filter; iifname "n-v" ct state new counter drop; }
  chain drop_in { type filter hook input priority filter; iifname "n-v" ct state new counter drop; }
}
`,
  })
}

/**
 * Creates the namespaces (named with `tag`) and a scratch directory; both
 * removed at teardown. homeB: the second home and its NAT too.
 */
export async function createSites(t: Test, tag: string, opts: { homeB?: boolean } = {}): Promise<Site> {
  const names =
    opts.homeB === true
      ? (['home', 'nat', 'vps', 'net', 'homeb', 'natb'] as const)
      : (['home', 'nat', 'vps', 'net'] as const)
  const { ns: made, dir } = await createNamespaces(t, tag, names)
  const ns = made as Site['ns']
  await natHome(ns.home, ns.nat, ns.vps, {
    home: SITE.home,
    natIn: SITE.natIn,
    natOut: SITE.natOut,
    vpsIn: SITE.vpsIn,
    vpsIf: 'v-n',
  })
  await ipBatch(ns.vps, [
    'link set lo up',
    `link add v-c type veth peer name c-v netns ${ns.net}`,
    `addr add ${SITE.vpsIn}/24 dev v-n`,
    `addr add ${SITE.vps}/24 dev v-c`,
    'link set v-n up',
    'link set v-c up',
    // A route to the home LAN: only the NAT's drop keeps the VPS out.
    `route add 10.77.0.0/24 via ${SITE.natOut}`,
  ])
  await ipBatch(ns.net, ['link set lo up', `addr add ${SITE.client}/24 dev c-v`, 'link set c-v up'])
  if (ns.homeb !== undefined && ns.natb !== undefined) {
    await natHome(ns.homeb, ns.natb, ns.vps, {
      home: SITE.homeB,
      natIn: SITE.natBIn,
      natOut: SITE.natBOut,
      vpsIn: SITE.vpsInB,
      vpsIf: 'v-m',
    })
    await ipBatch(ns.vps, [
      `addr add ${SITE.vpsInB}/24 dev v-m`,
      'link set v-m up',
      `route add 10.78.0.0/24 via ${SITE.natBOut}`,
    ])
  }
  return { ns, dir, exec: (x, argv, o) => run(inNs(x, argv), o) }
}

/** An echo server on HOST:PORT in namespace ns (a Node program) until killed: resolves with its killer once listening. */
export function startEcho(site: Site, ns: string, hostPort: string): Promise<() => void> {
  writeFileSync(
    join(site.dir, 'echo.mjs'),
    `import net from 'node:net'
const [host, port] = process.argv.slice(2)
const srv = net.createServer((s) => { s.on('error', () => {}); s.pipe(s) })
srv.listen(Number(port), host, () => process.stdout.write('ready\\n'))
`,
  )
  const i = hostPort.lastIndexOf(':')
  return startProgram(site, ns, 'echo.mjs', [hostPort.slice(0, i), hostPort.slice(i + 1)])
}

/**
 * A Node program (a file in site.dir) run in namespace ns until killed: resolves,
 * with its killer, once it printed its first line (it is listening).
 */
export function startProgram(site: Site, ns: string, script: string, args: string[]): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', inNs(ns, ['node', join(site.dir, script), ...args]).slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let err = ''
    p.stderr!.on('data', (d) => (err += String(d)))
    p.stdout!.once('data', () => resolve(() => p.kill('SIGKILL')))
    p.once('exit', (code) => reject(new Error(`${script} exited ${code}: ${err}`)))
  })
}

/** A Node program (a file in site.dir) run to its end in the internet namespace: its one JSON line. */
export async function runClient(site: Site, script: string, args: string[]): Promise<Record<string, unknown>> {
  const r = await site.exec(site.ns.net, ['node', join(site.dir, script), ...args], { timeoutMs: 60_000 })
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>
  } catch {
    throw new Error(`${script} ${args.join(' ')}: exit ${r.code}: ${r.stdout} ${r.stderr}`)
  }
}
