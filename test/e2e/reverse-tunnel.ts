// Reverse tunnels in network namespaces (docs/mesh.md): home gate A behind a
// NAT that drops every inbound connection keeps one outbound mTLS connection
// to the public gate's hbone listener with ALPN ugate-rev; the roles swap and
// the public gate opens CONNECT streams on it. A client on the internet side
// reaches a server in A's LAN through the public gate's proxy listener.
// Faults: gates the public gate must refuse (not in its reverse list, another
// CA), a listener without the opt-in, the public gate restarting, A's uplink
// going down and coming back.
//
//   home 10.77.0.2 ── 10.77.0.1 nat 198.51.100.2 ── 198.51.100.1 vps 203.0.113.1 ── 203.0.113.2 net
//   (gate A, echo :7000)  (MASQUERADE, inbound dropped)  (hbone :15008 reverse, :15010 not;   (client)
//                                                          mixed proxy :1080)

import t from 'tap'
import type { Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Identity, issueIdentity, makeIdentity } from '../lib/hbone.js'
import { inNs, must } from '../lib/netns.js'
import { SITE, SITE_UPLINK, type Site, createSites, runClient, startEcho as startEchoAt } from '../lib/nat-sites.js'
import { MiB, prngBytes, sha256 } from '../lib/servers.js'
import { type Ugate, checkCleanExit, checkFds, parseLogLine, runUgate, settleFds, startUgate } from '../lib/ugate.js'

const TD = 'mesh.test'
const ECHO = `${SITE.home}:7000`
const CLOSED_PORT = `${SITE.home}:7001`
const PAYLOAD = 4 * MiB
const RETRY_MS = 200
const RETRY_MAX_MS = 1000

// ---- helper programs (Node, run inside the namespaces) ------------------------------

// "through PROXY TARGET FILE": HTTP CONNECT through the proxy, send the file,
// half-close, hash what comes back. "connect HOST PORT MS": a plain connect.
const CLIENT_JS = `
import net from 'node:net'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
const [mode, a, b, c] = process.argv.slice(2)
const out = (o) => { process.stdout.write(JSON.stringify(o) + '\\n'); process.exit(0) }
if (mode === 'through') {
  const [host, port] = a.split(':')
  const body = readFileSync(c)
  const h = createHash('sha256')
  let head = Buffer.alloc(0), status = '', n = 0
  const s = net.connect(Number(port), host, () => s.write('CONNECT ' + b + ' HTTP/1.1\\r\\nHost: ' + b + '\\r\\n\\r\\n'))
  s.on('data', (d) => {
    if (status !== '') { h.update(d); n += d.length; return }
    head = Buffer.concat([head, d])
    const end = head.indexOf('\\r\\n\\r\\n')
    if (end < 0) return
    status = head.subarray(0, end).toString().split(' ')[1]
    if (status !== '200') out({ ok: false, status })
    const rest = head.subarray(end + 4)
    h.update(rest); n += rest.length
    s.end(body)
  })
  s.on('end', () => out({ ok: true, status, n, sha: h.digest('hex') }))
  s.on('error', (e) => out({ ok: false, status, error: e.code || e.message, n }))
} else if (mode === 'connect') {
  const s = net.connect({ host: a, port: Number(b), timeout: Number(c) })
  s.on('connect', () => out({ connected: true }))
  s.on('timeout', () => out({ connected: false, error: 'timeout' }))
  s.on('error', (e) => out({ connected: false, error: e.code }))
}
`

const startEcho = (site: Site) => startEchoAt(site, site.ns.home, ECHO)
const client = (site: Site, ...args: string[]) => runClient(site, 'client.mjs', args)

async function echoThrough(t: Test, site: Site, what: string, body: Buffer): Promise<void> {
  const r = await client(site, 'through', `${SITE.vps}:1080`, ECHO, join(site.dir, 'body.bin'))
  t.same(
    { ok: r.ok, status: r.status, n: r.n, sha: r.sha },
    { ok: true, status: '200', n: body.length, sha: sha256(body) },
    `${what}: ${body.length} bytes to the server in A's LAN and back, exact`,
    { r },
  )
}

// ---- configs -------------------------------------------------------------------------

function vpsConfig(site: Site, vps: Identity, gateA: Identity, reverse = [gateA.id]): string {
  const file = join(site.dir, 'vps.json')
  writeFileSync(
    file,
    JSON.stringify({
      mesh: { identityDir: vps.dir, trustDomain: TD },
      admin: { socket: join(site.dir, 'vps.sock') },
      listeners: [
        { name: 'mesh', type: 'hbone', listen: '0.0.0.0:15008', allow: ['0.0.0.0/0'], reverse },
        { name: 'closed', type: 'hbone', listen: '0.0.0.0:15010', allow: ['0.0.0.0/0'] },
        { name: 'proxy', type: 'mixed', listen: `${SITE.vps}:1080`, allow: ['203.0.113.0/24'] },
      ],
      upstreams: [{ name: 'home', type: 'hbone', identity: gateA.id }],
      rules: [
        { dstCidr: ['10.77.0.0/24'], listener: ['proxy'], action: 'upstream:home' },
        // Nobody tunnels anywhere through the VPS's own hbone listeners.
        { listener: ['mesh', 'closed'], action: 'reject' },
      ],
    }),
  )
  return file
}

function gateConfig(site: Site, name: string, id: Identity, relayId: string, port = 15008): string {
  const file = join(site.dir, `${name}.json`)
  writeFileSync(
    file,
    JSON.stringify({
      mesh: { identityDir: id.dir, trustDomain: TD },
      admin: { socket: join(site.dir, `${name}.sock`) },
      listeners: [{ name: 'local', type: 'mixed', listen: '127.0.0.1:0' }],
      reverse: [
        {
          name: 'vps',
          relay: `${SITE.vpsIn}:${port}`,
          relayId,
          retry: RETRY_MS / 1000,
          retryMax: RETRY_MAX_MS / 1000,
          pingInterval: 1,
          pingTimeout: 2,
        },
      ],
      // Only the echo port is exposed through the reverse tunnel.
      rules: [{ listener: ['vps'], dstCidr: [`${SITE.home}/32`], dstPort: [7000], action: 'direct' }],
    }),
  )
  return file
}

function ctlStatus(site: Site, name: string): Record<string, unknown> {
  const r = runUgate(['ctl', '--socket', join(site.dir, `${name}.sock`), '--json', 'status'])
  if (r.code !== 0) throw new Error(`ugate ctl status (${name}): ${r.code} ${r.stderr.join('\n')}`)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

const field = (line: string | undefined, key: string) => (line ? parseLogLine(line)?.fields[key] : undefined)

/** Every retry delay A logged so far (reverse-down and reverse-retry). */
function retryDelays(ug: Ugate): number[] {
  return [...ug.events('reverse-down'), ...ug.events('reverse-retry')].map((l) => Number(l.fields.retryMs))
}

t.test('reverse tunnel: a gate behind NAT reached through a public gate; faults', async (t) => {
  const outer = t
  const site = await createSites(t, 'rv')
  const vpsId = makeIdentity(t, TD, 'relay', 'vps')
  const gateA = issueIdentity(t, vpsId, TD, 'gate-a')
  const gateB = issueIdentity(t, vpsId, TD, 'gate-b')
  // Another CA: it trusts the VPS's CA too (its own chain must verify at start), the VPS does not trust it.
  const other = makeIdentity(t, TD, 'gate-c', 'home')
  writeFileSync(other.root, other.rootPem + vpsId.rootPem)
  writeFileSync(join(site.dir, 'client.mjs'), CLIENT_JS)
  const body = prngBytes(0x7e5e, PAYLOAD)
  writeFileSync(join(site.dir, 'body.bin'), body)
  const stopEcho = await startEcho(site)
  t.teardown(stopEcho)

  const direct = await client(site, 'connect', SITE.home, '7000', '1000')
  t.match(direct, { connected: false }, 'the internet side cannot connect into the home LAN (NAT drops it)')

  let vps = await startUgate(t, ['run', '--config', vpsConfig(site, vpsId, gateA)], { netns: site.ns.vps })
  const a = await startUgate(t, ['run', '--config', gateConfig(site, 'a', gateA, vpsId.id)], { netns: site.ns.home })
  const nodeA = field(await a.waitForLine(/ info mesh-identity /), 'nodeId')!
  const upLine = await a.waitForLine(/ info reverse-up /)
  const reg = await vps.waitForLine(/ info hbone-reverse-registered /)

  await t.test('A registers under its SPIFFE id and node id', async (t) => {
    t.match(parseLogLine(upLine)?.fields, { name: 'vps', relayId: vpsId.id }, 'A: up, the relay proved its id')
    t.match(
      parseLogLine(reg)?.fields,
      { listener: 'mesh', identity: gateA.id, node: nodeA, src: /^198\.51\.100\.2:\d+$/ },
      'VPS: registered, from the NAT address',
    )
  })

  await t.test('a client on the internet side reaches the server in A LAN, exact both ways', async (t) => {
    await echoThrough(t, site, 'first stream', body)
    const [v] = await vps.waitForLines(/ info conn listener=proxy /, 1)
    t.match(
      parseLogLine(v)?.fields,
      { dst: ECHO, reason: 'eof', rule: '#0', action: 'upstream', via: 'home', node: nodeA, up: /^\d{7,}$/ },
      'VPS: routed to the upstream naming A, on its reverse tunnel',
      { v },
    )
    const [g] = await a.waitForLines(/ info conn listener=vps /, 1)
    t.match(
      parseLogLine(g)?.fields,
      { dst: ECHO, reason: 'eof', identity: vpsId.id, rule: '#0', action: 'direct', down: /^\d{7,}$/ },
      'A: served like an hbone listener named after the entry, the VPS as the peer',
      { g },
    )
  })

  await t.test('ctl status lists the reverse tunnel on both sides', async (t) => {
    const sv = ctlStatus(site, 'vps') as { reverse: { registered: unknown[] }; hbone: unknown[] }
    t.match(sv.reverse.registered, [{ identity: gateA.id, node: nodeA, listener: 'mesh' }], 'VPS: registered')
    t.ok(
      sv.hbone.some((x) => (x as { reverse?: boolean; role: string }).reverse === true),
      'VPS: the tunnel is marked reverse',
    )
    const sa = ctlStatus(site, 'a') as { reverse: { links: unknown[] }; hbone: unknown[] }
    t.match(sa.reverse.links, [{ name: 'vps', state: 'up', peerId: vpsId.id, failures: 0 }], "A: its link's state")
    t.match(sa.hbone, [{ role: 'client', reverse: true, peerId: vpsId.id }], 'A: one tunnel, reversed')
    const text = runUgate(['ctl', '--socket', join(site.dir, 'vps.sock'), 'status']).stdout
    t.match(text, new RegExp(`\\nREVERSE +LISTENER +IDENTITY +NODE +PEER +AGE\\n\\d+ +mesh +${gateA.id}`), 'table')
  })

  await t.test('A exposes only what its rules name', async (t) => {
    const r = await client(site, 'through', `${SITE.vps}:1080`, CLOSED_PORT, join(site.dir, 'body.bin'))
    t.match(r, { ok: false }, 'no tunnel to a port A has no rule for', { r })
    t.not(r.status, '200')
    const lines = await a.waitForLines(/ info conn listener=vps /, 2)
    t.match(lines[1], /rule=default action=reject/, 'A: rejected by default (no rule matches)', { lines })
  })

  await t.test('refused registrations, with a log line on both sides', async (t) => {
    const b = await startUgate(t, ['run', '--config', gateConfig(site, 'b', gateB, vpsId.id)], {
      netns: site.ns.home,
    })
    const refused = await vps.waitForLine(/ warn hbone-reverse-refused /)
    t.match(
      parseLogLine(refused)?.fields,
      { listener: 'mesh', identity: gateB.id, why: `${gateB.id} is not in its reverse list` },
      'VPS: a gate of the right CA and trust domain, not in the list',
    )
    await b.waitForLine(/ warn reverse-down .*reason=reverse-refused/)
    t.pass('B hears it was refused')
    checkCleanExit(t, b, await b.stop())
    t.equal(b.matching(/ reverse-up /).length, 0, 'B never counted itself registered')

    const c = await startUgate(t, ['run', '--config', gateConfig(site, 'c', other, vpsId.id)], {
      netns: site.ns.home,
    })
    const hs = await vps.waitForLine(/ info hbone-closed .*reason=handshake-error .*not signed by the configured roots/)
    t.ok(hs, 'VPS: a gate of another CA fails the TLS handshake, the log says why')
    // TLS 1.3: the client finishes its handshake before the server checks its certificate;
    // the VPS's alert (unknown_ca) comes under keys C reads, unless its close overtakes it.
    const cd = await c.waitForLine(/ warn reverse-down /)
    t.match(cd, /reason=(handshake-error|tunnel-error) /, 'C: its TLS connection failed', { cd })
    t.match(
      cd,
      /detail="(peer sent alert 48 \(unknown_ca\)|peer ended the connection after the handshake \((Broken pipe|Connection reset by peer): it probably refused our certificate\)|peer closed .*)"/,
      'C: why',
      { cd },
    )
    checkCleanExit(t, c, await c.stop())
    t.equal(c.matching(/ reverse-up /).length, 0, 'C never counted itself registered')

    // A's identity, but the listener without the opt-in: it agrees on h2 only.
    const d = await startUgate(t, ['run', '--config', gateConfig(site, 'd', gateA, vpsId.id, 15010)], {
      netns: site.ns.home,
    })
    await d.waitForLine(/ warn reverse-down .*reason=reverse-unsupported/)
    t.pass('a listener without `reverse` refuses ugate-rev (D: reverse-unsupported)')
    checkCleanExit(t, d, await d.stop())
    t.equal(vps.matching(/ info hbone-reverse-registered /).length, 1, 'VPS: still only A registered')
  })

  await t.test('the public gate restarts: A registers again within the backoff bound', async (t) => {
    const ups = a.matching(/ info reverse-up /).length
    checkCleanExit(t, vps, await vps.stop())
    await a.waitForLine(/ warn reverse-down /)
    // Started by the outer test: it outlives this subtest.
    vps = await startUgate(outer, ['run', '--config', vpsConfig(site, vpsId, gateA)], { netns: site.ns.vps })
    await a.waitForLines(/ info reverse-up /, ups + 1)
    await vps.waitForLine(/ info hbone-reverse-registered /)
    const delays = retryDelays(a)
    t.ok(delays.length > 0, `A retried (${delays.length} delays logged)`)
    t.ok(
      delays.every((d) => d > 0 && d <= RETRY_MAX_MS),
      `every delay within the bound retryMax ${RETRY_MAX_MS} ms`,
      { delays },
    )
    await echoThrough(t, site, 'after the restart', body)
  })

  // Both sides settled with one tunnel each (every stream's access line written): fd baselines from here.
  await vps.waitForLines(/ info conn listener=proxy /, 1)
  await a.waitForLines(/ info conn listener=vps /, 3)
  vps.baselineFds = vps.fdCount()
  a.baselineFds = a.fdCount()

  await t.test("A's uplink drops and comes back: A notices, registers again, new streams work", async (t) => {
    const ups = a.matching(/ info reverse-up /).length
    const regs = vps.matching(/ info hbone-reverse-registered /).length
    await must(inNs(site.ns.nat, ['ip', 'link', 'set', SITE_UPLINK, 'down']))
    const down = await a.waitForLine(/ warn reverse-down .*reason=ping-timeout/)
    t.ok(down, 'A: the dead uplink ends the tunnel by its PING timeout')
    await must(inNs(site.ns.nat, ['ip', 'link', 'set', SITE_UPLINK, 'up']))
    await must(inNs(site.ns.nat, ['ip', 'route', 'replace', 'default', 'via', SITE.vpsIn]))
    await a.waitForLines(/ info reverse-up /, ups + 1)
    const lines = await vps.waitForLines(/ info hbone-reverse-registered /, regs + 1)
    const tunnel = Number(field(lines[regs], 'tunnel'))
    const sv = ctlStatus(site, 'vps') as { reverse: { registered: Array<{ tunnel: number }> } }
    t.same(
      sv.reverse.registered.map((e) => e.tunnel),
      [tunnel],
      'VPS: only the new tunnel is registered (the old one replaced or forgotten)',
    )
    t.ok(
      retryDelays(a).every((d) => d <= RETRY_MAX_MS),
      'retry delays within the bound',
    )
    await echoThrough(t, site, 'after the uplink came back', body)
  })

  await t.test('a reload that takes A off the list closes its tunnel; putting it back lets A in again', async (t) => {
    const ups = a.matching(/ info reverse-up /).length
    vpsConfig(site, vpsId, gateA, [])
    vps.signal('SIGHUP')
    const refused = await vps.waitForLine(/ warn hbone-reverse-refused .*why="?this listener allows no reverse tunnels/)
    t.match(parseLogLine(refused)?.fields, { identity: gateA.id, node: nodeA }, 'VPS: the registration is closed')
    await a.waitForLine(/ warn reverse-down .*reason=reverse-refused/)
    await a.waitForLine(/ info reverse-retry .*reason=reverse-unsupported/)
    t.pass('A: refused, then the listener no longer agrees on ugate-rev')
    vpsConfig(site, vpsId, gateA)
    vps.signal('SIGHUP')
    await a.waitForLines(/ info reverse-up /, ups + 1)
    t.ok(
      retryDelays(a).every((d) => d <= RETRY_MAX_MS),
      'retry delays within the bound',
    )
    await echoThrough(t, site, 'after the reloads', body)
  })

  await t.test('fds back to baseline on both gates', async (t) => {
    await vps.waitForLines(/ info conn listener=proxy /, 3)
    await a.waitForLines(/ info conn listener=vps /, 5)
    await settleFds(vps)
    await settleFds(a)
    checkFds(t, vps)
    checkFds(t, a)
  })

  await t.test('every retry delay is the backoff of its attempt, jittered to 50-100 %', async (t) => {
    const lines = [...a.events('reverse-down'), ...a.events('reverse-retry')]
    const off: string[] = []
    let jittered = 0
    for (const l of lines) {
      const attempt = Number(l.fields.attempt)
      const full = Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** (attempt - 1))
      const d = Number(l.fields.retryMs)
      if (!(attempt >= 1 && d >= full / 2 && d <= full)) off.push(`attempt ${attempt}: ${d} ms of ${full}`)
      if (d !== full) jittered++
    }
    t.same(off, [], `${lines.length} delays, each within 50-100 % of min(retry × 2^(attempt-1), retryMax)`)
    // Each delay is drawn from about full/2 values: all of them at full would mean no jitter.
    t.ok(jittered > 0, `jittered: ${jittered} of ${lines.length} below their full delay`)
  })

  await t.test('A stops: the VPS forgets its tunnel at once, a stream for A finds none', async (t) => {
    const before = ctlStatus(site, 'vps') as { reverse: { registered: Array<{ tunnel: number }> } }
    t.equal(before.reverse.registered.length, 1, 'VPS: A registered before')
    checkCleanExit(t, a, await a.stop())
    const tunnel = before.reverse.registered[0]!.tunnel
    const line = await vps.waitForLine(new RegExp(` info hbone-reverse-gone .*tunnel=${tunnel} `))
    t.match(parseLogLine(line)?.fields, { identity: gateA.id, node: nodeA }, 'VPS: hbone-reverse-gone for that tunnel')
    const sv = ctlStatus(site, 'vps') as { reverse: { registered: unknown[] } }
    t.same(sv.reverse.registered, [], 'VPS: no reverse tunnel listed')
    const r = await client(site, 'through', `${SITE.vps}:1080`, ECHO, join(site.dir, 'body.bin'))
    t.match(r, { ok: false }, 'the client gets no tunnel', { r })
    t.not(r.status, '200')
    const lines = await vps.waitForLines(/ info conn listener=proxy /, 4)
    t.match(lines[3], / reason=no-reverse-tunnel /, 'VPS: the upstream has no reverse tunnel to A', { lines })
  })

  checkCleanExit(t, vps, await vps.stop())
})
