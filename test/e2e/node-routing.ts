// Routing by node name and double HBONE (docs/mesh.md), in network
// namespaces: two homes behind NATs that drop every inbound connection and
// a public relay (a VPS). Both home gates keep a reverse tunnel to the VPS.
// A client in B's LAN reaches a server in A's LAN by A's node name
// <A-id>.home.mesh.test:7000 through B's proxy (SOCKS5 and HTTP CONNECT): B
// opens a stream to A's HBONE endpoint (<A-name>:15008) on the VPS, which
// passes it on A's reverse tunnel; TLS + HTTP/2 from B to A run inside it,
// so the VPS relays only ciphertext. A packet capture on every interface of
// the VPS's namespace never sees a known payload string; a control capture
// of a path where the plaintext crosses the VPS (a client on the internet
// side using the VPS's plain proxy, then single HBONE to A) sees it.
//
//   homeb 10.78.0.2 ─ natb ─ 198.51.101.1 ┐
//   (gate B :1080, client)                 vps (hbone :15008 reverse, proxy :1080) 203.0.113.1 ─ net (client)
//   home 10.77.0.2 ─ nat ─ 198.51.100.1 ──┘
//   (gate A, echo :7000)

import t from 'tap'
import type { Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Identity, issueIdentity, makeIdentity } from '../lib/hbone.js'
import { inNs } from '../lib/netns.js'
import { SITE, type Site, createSites, startEcho } from '../lib/nat-sites.js'
import { MiB, prngBytes, sha256 } from '../lib/servers.js'
import {
  type Ugate,
  checkCleanExit,
  checkFds,
  parseLogLine,
  repoRoot,
  runUgate,
  settleFds,
  startUgate,
} from '../lib/ugate.js'

const TD = 'mesh.test'
const ECHO = `${SITE.home}:7000`
const PAYLOAD = 4 * MiB
const NEEDLE = 'ugate-plaintext-canary-5d1e'
/** The VPS's relay over SNI: where gates park, where TLS clients come in. */
const PARK_PORT = 15009
const SNI_PORT = 8443

// ---- helper programs (Node, run inside the namespaces) ------------------------------

// "socks PROXY TARGET FILE" or "connect PROXY TARGET FILE": through the proxy
// (SOCKS5 with a domain name, or HTTP CONNECT), send the file, half-close,
// hash what comes back. "tls ADDR:PORT SNI": a TLS handshake with that SNI
// (an echo server answers the ClientHello with itself: it fails). One JSON line.
const CLIENT_JS = `
import net from 'node:net'
import tls from 'node:tls'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
const [mode, proxy, target, file] = process.argv.slice(2)
const out = (o) => { process.stdout.write(JSON.stringify(o) + '\\n'); process.exit(0) }
const [phost, pport] = proxy.split(':')
if (mode === 'tls') {
  const c = tls.connect({ host: phost, port: Number(pport), servername: target, rejectUnauthorized: false })
  c.on('secureConnect', () => out({ ok: true }))
  c.on('error', (e) => out({ ok: false, error: e.code || e.message }))
} else if (mode === 'get') {
  // A plain proxy request (absolute URI) to TARGET: the head that comes back
  // (an echo server: it waits for an end the proxy never sends after a request without body).
  let got = ''
  const s = net.connect(Number(pport), phost, () =>
    s.write('GET http://' + target + '/node-name HTTP/1.1\\r\\nHost: ' + target + '\\r\\n\\r\\n'))
  s.on('data', (d) => { got += d; if (got.includes('\\r\\n\\r\\n')) out({ ok: true, got }) })
  s.on('end', () => out({ ok: false, got }))
  s.on('error', (e) => out({ ok: false, error: e.code || e.message, got }))
} else {
const i = target.lastIndexOf(':')
const host = target.slice(0, i), port = Number(target.slice(i + 1))
const body = readFileSync(file)
const h = createHash('sha256')
let head = Buffer.alloc(0), open = false, n = 0, status = ''
const s = net.connect(Number(pport), phost, () => {
  if (mode === 'socks') s.write(Buffer.from([5, 1, 0]))
  else s.write('CONNECT ' + target + ' HTTP/1.1\\r\\nHost: ' + target + '\\r\\n\\r\\n')
})
const opened = (rest) => { open = true; h.update(rest); n += rest.length; s.end(body) }
s.on('data', (d) => {
  if (open) { h.update(d); n += d.length; return }
  head = Buffer.concat([head, d])
  if (mode === 'socks') {
    if (status === '') {
      if (head.length < 2) return
      if (head[1] !== 0) out({ ok: false, status: 'auth ' + head[1] })
      head = head.subarray(2)
      status = 'greeted'
      const name = Buffer.from(host)
      const p = Buffer.from([port >> 8, port & 255])
      s.write(Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, p]))
    }
    if (head.length < 5) return
    const len = head[3] === 1 ? 10 : head[3] === 4 ? 22 : 7 + head[4]
    if (head.length < len) return
    status = String(head[1])
    if (head[1] !== 0) out({ ok: false, status })
    opened(head.subarray(len))
  } else {
    const end = head.indexOf('\\r\\n\\r\\n')
    if (end < 0) return
    status = head.subarray(0, end).toString().split(' ')[1]
    if (status !== '200') out({ ok: false, status })
    opened(head.subarray(end + 4))
  }
})
s.on('end', () => out({ ok: open, status, n, sha: h.digest('hex') }))
s.on('error', (e) => out({ ok: false, status, error: e.code || e.message, n }))
}
`

/** A Node client run to its end in namespace ns: its one JSON line. */
async function client(site: Site, ns: string, ...args: string[]): Promise<Record<string, unknown>> {
  const r = await site.exec(ns, ['node', join(site.dir, 'client.mjs'), ...args], { timeoutMs: 60_000 })
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>
  } catch {
    throw new Error(`client ${args.join(' ')}: exit ${r.code}: ${r.stdout} ${r.stderr}`)
  }
}

interface Capture {
  frames: number
  bytes: number
  hits: number
  drops: number
}

/** Captures every frame of namespace ns (test/native/packet-capture.c) while fn runs. */
async function captured<T>(site: Site, ns: string, fn: () => Promise<T>): Promise<[T, Capture]> {
  const p = spawn('ip', inNs(ns, [join(site.dir, 'packet-capture'), NEEDLE]).slice(1), {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let text = ''
  let err = ''
  p.stderr!.on('data', (d) => (err += String(d)))
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d) => {
      text += String(d)
      if (text.startsWith('ready\n')) resolve()
    })
    p.once('exit', (code) => reject(new Error(`packet-capture exited ${code}: ${err}`)))
  })
  try {
    const r = await fn()
    p.stdin!.end()
    await exited
    return [r, JSON.parse(text.slice('ready\n'.length)) as Capture]
  } finally {
    p.kill('SIGKILL')
  }
}

// ---- configs -------------------------------------------------------------------------

function nodeIdOf(id: Identity): string {
  const r = runUgate(['identity', 'show', '--dir', id.dir])
  const m = /node id:\s+([A-Z2-7]{52})/.exec(r.stdout)
  if (m === null) throw new Error(`ugate identity show: ${r.code} ${r.stdout} ${r.stderr.join('\n')}`)
  return m[1]!
}

function write(site: Site, name: string, cfg: unknown): string {
  const file = join(site.dir, `${name}.json`)
  writeFileSync(file, JSON.stringify(cfg))
  return file
}

/** sni: also relay over SNI (a park listener, and an sni listener pairing with it: docs/mesh.md). */
function vpsConfig(site: Site, vps: Identity, a: Identity, b: Identity, sni = false): string {
  const pairing = [
    { name: 'park', type: 'park', listen: `0.0.0.0:${PARK_PORT}`, allow: ['0.0.0.0/0'] },
    { name: 'tls', type: 'sni', listen: `0.0.0.0:${SNI_PORT}`, allow: ['0.0.0.0/0'], pair: 'park' },
  ]
  return write(site, 'vps', {
    // The short form too (its proxy clients: <NODEID>.mesh).
    mesh: { identityDir: vps.dir, trustDomain: TD, nodeSuffix: 'mesh' },
    admin: { socket: join(site.dir, 'vps.sock') },
    listeners: [
      { name: 'mesh', type: 'hbone', listen: '0.0.0.0:15008', allow: ['0.0.0.0/0'], reverse: [a.id, b.id] },
      { name: 'proxy', type: 'mixed', listen: `${SITE.vps}:1080`, allow: ['203.0.113.0/24'] },
      ...(sni ? pairing : []),
    ],
    rules: [
      // Only gate B may route node names through the VPS's hbone listener.
      { listener: ['mesh'], srcIdentity: [b.id], action: 'mesh' },
      { listener: ['mesh'], action: 'reject' },
      // The control path: the VPS's own proxy clients, single HBONE to the node.
      { listener: ['proxy'], domainSuffix: [TD, 'mesh'], action: 'mesh' },
    ],
  })
}

function homeConfig(
  site: Site,
  name: string,
  id: Identity,
  relay: string,
  vpsId: string,
  rules: unknown[],
  upstreams: unknown[] = [],
  extra: Record<string, unknown> = {},
): string {
  return write(site, name, {
    ...extra,
    mesh: { identityDir: id.dir, trustDomain: TD },
    admin: { socket: join(site.dir, `${name}.sock`) },
    listeners: [
      { name: 'lan', type: 'mixed', listen: `${name === 'a' ? SITE.home : SITE.homeB}:1080` },
      // Captured TLS by its SNI: the sniffed name, on port 7000.
      { name: 'tls', type: 'sni', listen: `${name === 'a' ? SITE.home : SITE.homeB}:8443`, tlsPort: 7000 },
    ],
    reverse: [{ name: 'vps', relay: `${relay}:15008`, relayId: vpsId, retry: 0.2, retryMax: 1 }],
    upstreams,
    rules,
  })
}

const fieldsOf = (line: string | undefined) => (line ? parseLogLine(line)?.fields : undefined)

async function exact(
  t: Test,
  what: string,
  r: Record<string, unknown>,
  body: Buffer,
  where = "the server in A's LAN",
): Promise<void> {
  t.same(
    { ok: r.ok, n: r.n, sha: r.sha },
    { ok: true, n: body.length, sha: sha256(body) },
    `${what}: ${body.length} bytes to ${where} and back, exact`,
    { r },
  )
}

interface Mesh {
  site: Site
  homeb: string
  vpsId: Identity
  gateA: Identity
  gateB: Identity
  nodeA: string
  /** A's full node name. */
  nameA: string
  /** The client's payload file, and its bytes. */
  file: string
  body: Buffer
}

/** Two homes and a VPS (tag names the namespaces), their identities, the echo server in A's LAN, a payload of size bytes. */
async function meshSites(t: Test, tag: string, size: number, mark?: string): Promise<Mesh> {
  const site = await createSites(t, tag, { homeB: true })
  const vpsId = makeIdentity(t, TD, 'relay', 'vps')
  const gateA = issueIdentity(t, vpsId, TD, 'gate-a')
  const gateB = issueIdentity(t, vpsId, TD, 'gate-b')
  const nodeA = nodeIdOf(gateA)
  writeFileSync(join(site.dir, 'client.mjs'), CLIENT_JS)
  const body = prngBytes(0x40de, size)
  if (mark !== undefined)
    for (let off = 0; off + mark.length < body.length; off += 64 * 1024) body.write(mark, off, 'latin1')
  const file = join(site.dir, 'body.bin')
  writeFileSync(file, body)
  const stopEcho = await startEcho(site, site.ns.home, ECHO)
  t.teardown(stopEcho)
  return {
    site,
    homeb: site.ns.homeb!,
    vpsId,
    gateA,
    gateB,
    nodeA,
    nameA: `${nodeA.toLowerCase()}.home.${TD}`,
    file,
    body,
  }
}

/**
 * The VPS, gate A (its echo server under its own name's port 7000, nothing
 * else) and gate B (bRules, its upstreams), both homes registered. sni: the
 * VPS relays over SNI too, A parks there (registering no name: its node id
 * is enough) and sends its own name's TLS to the echo server.
 */
async function startMesh(
  t: Test,
  m: Mesh,
  bRules: unknown[],
  bUpstreams: unknown[],
  sni = false,
): Promise<Record<'vps' | 'a' | 'b', Ugate>> {
  const { site, vpsId, gateA, gateB } = m
  const vps = await startUgate(t, ['run', '--config', vpsConfig(site, vpsId, gateA, gateB, sni)], {
    netns: site.ns.vps,
  })
  const aRules = [{ listener: ['vps'], domain: [m.nameA], dstPort: [7000], action: `forward:${ECHO}` }]
  const park = { name: 'park', relay: `${SITE.vpsIn}:${PARK_PORT}`, relayId: vpsId.id, retry: 0.2, retryMax: 1 }
  if (sni) aRules.push({ listener: ['park'], domain: [m.nameA], dstPort: [443], action: `forward:${ECHO}` })
  const aConfig = homeConfig(site, 'a', gateA, SITE.vpsIn, vpsId.id, aRules, [], sni ? { sniRelay: [park] } : {})
  const a = await startUgate(t, ['run', '--config', aConfig], { netns: site.ns.home })
  if (sni) await a.waitForLine(/ info sni-relay-registered /)
  const b = await startUgate(
    t,
    ['run', '--config', homeConfig(site, 'b', gateB, SITE.vpsInB, vpsId.id, bRules, bUpstreams)],
    { netns: m.homeb },
  )
  await a.waitForLine(/ info reverse-up /)
  await b.waitForLine(/ info reverse-up /)
  await vps.waitForLines(/ info hbone-reverse-registered /, 2)
  return { vps, a, b }
}

t.test('routing by node name: B reaches A LAN by name through the VPS, double HBONE', async (t) => {
  const m = await meshSites(t, 'nr', PAYLOAD, NEEDLE)
  const { site, homeb, vpsId, gateB, nodeA, nameA, file, body } = m
  const cc = spawnSync(
    'gcc',
    ['-O1', '-Wall', '-o', join(site.dir, 'packet-capture'), join(repoRoot, 'test/native/packet-capture.c')],
    { encoding: 'utf8' },
  )
  if (cc.status !== 0) throw new Error(`building packet-capture: ${cc.stderr}`)
  // B's LAN clients reach every node of the mesh by name.
  const bRules = [
    // An upstream that names a node but points at the VPS, whose key is another.
    { listener: ['lan'], dstPort: [7002], action: 'upstream:wrong' },
    { listener: ['lan', 'tls'], domainSuffix: [TD], action: 'mesh' },
  ]
  const wrong = [{ name: 'wrong', type: 'hbone', server: SITE.vpsInB, node: `${'M'.repeat(51)}Q` }]
  // An upstream that names the VPS's node with its address: HBONE straight to it.
  const nodeVps = nodeIdOf(vpsId)
  const toVps = { name: 'tovps', type: 'hbone', server: SITE.vpsInB, node: nodeVps }
  const stopVpsEcho = await startEcho(site, site.ns.vps, '127.0.0.1:7000')
  t.teardown(stopVpsEcho)
  const { vps, a, b } = await startMesh(t, m, bRules, [...wrong, toVps])
  a.baselineFds = a.fdCount() // its listeners and its reverse tunnel
  const proxyB = `${SITE.homeB}:1080`

  await t.test('SOCKS5 to <A-id>.home.mesh.test:7000: exact both ways, the VPS sees only ciphertext', async (t) => {
    const [r, cap] = await captured(site, site.ns.vps, () =>
      client(site, homeb, 'socks', proxyB, `${nameA}:7000`, file),
    )
    await exact(t, 'SOCKS5', r, body)
    t.equal(cap.hits, 0, `no frame on the VPS holds the payload string (${cap.frames} frames, ${cap.bytes} bytes)`)
    t.ok(cap.bytes > 2 * PAYLOAD, 'the capture saw the transfer (more bytes than the payload both ways)', { cap })
    t.equal(cap.drops, 0, 'the capture dropped nothing')
    const bl = fieldsOf((await b.waitForLines(/ info conn listener=lan /, 1))[0])
    t.match(
      bl,
      { dst: `${nameA}:7000`, action: 'mesh', via: 'relay:vps', node: nodeA, reason: 'eof' },
      'B: routed by the node name through its relay',
    )
    const al = fieldsOf(await a.waitForLine(/ info conn listener=vps .*action=forward /))
    t.match(
      al,
      { dst: `${nameA}:7000`, identity: gateB.id, node: /^[A-Z2-7]{52}$/, via: ECHO, reason: 'eof' },
      "A: the inner stream comes from B's identity, routed by A's rule",
    )
  })

  await t.test('HTTP CONNECT to the same name: exact, the VPS sees only ciphertext', async (t) => {
    const [r, cap] = await captured(site, site.ns.vps, () =>
      client(site, homeb, 'connect', proxyB, `${nameA}:7000`, file),
    )
    await exact(t, 'HTTP CONNECT', r, body)
    t.equal(cap.hits, 0, `no frame on the VPS holds the payload string (${cap.frames} frames)`)
    t.ok(cap.bytes > 2 * PAYLOAD, 'the capture saw the transfer', { cap })
  })

  await t.test('a TLS connection by its sniffed SNI goes to the node it names', async (t) => {
    const r = await client(site, homeb, 'tls', `${SITE.homeB}:8443`, nameA)
    // The echo server sends the ClientHello back: no TLS server, the handshake fails on it.
    t.match(r, { ok: false }, 'the ClientHello reached the echo server in A LAN and came back', { r })
    const al = fieldsOf((await a.waitForLines(/ info conn listener=vps .*action=forward/, 3))[2])
    t.match(al, { dst: `${nameA}:7000`, identity: gateB.id, via: ECHO }, "A: the SNI's node, its port tlsPort")
    const bl = fieldsOf(await b.waitForLine(/ info conn listener=tls /))
    t.match(
      bl,
      { host: nameA, dst: `${nameA}:7000`, action: 'mesh', via: 'relay:vps', node: nodeA },
      'B: routed by the sniffed SNI',
      {
        bl,
      },
    )
  })

  await t.test('a plain HTTP proxy request naming the node goes to it', async (t) => {
    const r = await client(site, homeb, 'get', proxyB, `${nameA}:7000`)
    // The echo server in A's LAN (which B cannot reach but through the mesh) sends the
    // request back as it received it, in origin-form. (Its access lines come when the
    // connection ends: the proxy stops reading the client after a request, and the echo
    // server waits for an end, so that is when B stops.)
    t.match(
      r,
      { ok: true, got: /^GET \/node-name HTTP\/1\.1\r\n(.*\r\n)*Connection: close\r\n/ },
      "the request reached the server in A's LAN and came back",
      { r },
    )
  })

  await t.test('control: plaintext that crosses the VPS is found by the same capture', async (t) => {
    const [r, cap] = await captured(site, site.ns.vps, () =>
      client(site, site.ns.net, 'connect', `${SITE.vps}:1080`, `${nameA}:7000`, file),
    )
    await exact(t, "an internet client through the VPS's proxy, single HBONE to A", r, body)
    t.ok(cap.hits > 0, `the payload string is seen (${cap.hits} frames): the check can fail`, { cap })
    const vl = fieldsOf((await vps.waitForLines(/ info conn listener=proxy /, 1))[0])
    t.match(vl, { action: 'mesh', via: 'reverse', node: nodeA }, 'VPS: the proxy client routed on the reverse tunnel')
  })

  await t.test('the short form <A-id>.mesh (nodeSuffix) at a gate that knows the node', async (t) => {
    // The VPS has A's reverse tunnel: it sends A's full name on, which A's rule names.
    const short = `${nodeA.toLowerCase()}.mesh`
    const r = await client(site, site.ns.net, 'connect', `${SITE.vps}:1080`, `${short}:7000`, file)
    await exact(t, "an internet client through the VPS's proxy by the short name", r, body)
    const vl = fieldsOf(await vps.waitForLine(new RegExp(` info conn listener=proxy .*dst=${short}:7000 `)))
    t.match(vl, { action: 'mesh', via: 'reverse', node: nodeA, reason: 'eof' }, 'VPS: the short name, on the tunnel')
    const al = fieldsOf((await a.waitForLines(/ info conn listener=vps .*action=forward/, 4))[3])
    t.match(al, { dst: `${nameA}:7000`, identity: m.vpsId.id, via: ECHO }, "A: its full name, by A's rule")
  })

  await t.test('a node an hbone upstream names with its address: HBONE straight to it', async (t) => {
    // The VPS's own name: its own service on loopback (an echo server there).
    const nameVps = `${nodeVps.toLowerCase()}.vps.${TD}`
    const r = await client(site, homeb, 'socks', proxyB, `${nameVps}:7000`, file)
    await exact(t, "SOCKS5 to the VPS's node name", r, body, "the VPS's own echo server")
    const bl = fieldsOf(await b.waitForLine(new RegExp(` info conn listener=lan .*dst=${nameVps}:7000 `)))
    t.match(bl, { action: 'mesh', via: 'tovps', node: nodeVps, reason: 'eof' }, 'B: by the upstream that names it')
    const vl = fieldsOf(await vps.waitForLine(new RegExp(` info conn listener=mesh .*dst=${nameVps}:7000 `)))
    t.match(
      vl,
      { identity: gateB.id, action: 'mesh', via: 'self', reason: 'eof' },
      'VPS: its own name, its own service',
    )
  })

  await t.test('A exposes nothing without a rule', async (t) => {
    const r = await client(site, homeb, 'socks', proxyB, `${nameA}:7001`, file)
    t.match(r, { ok: false }, 'no tunnel to a port A has no rule for', { r })
    const line = await a.waitForLine(/ info conn listener=vps .*dst=\S+:7001 /)
    t.match(fieldsOf(line), { rule: 'default', action: 'reject', identity: gateB.id }, 'A: rejected by default', {
      line,
    })
    const bl = await b.waitForLine(/ info conn listener=lan .*dst=\S+:7001 /)
    t.match(fieldsOf(bl), { reason: 'upstream-refused:401' }, 'B: the node refused it (401)')
  })

  await t.test("a peer that is not the node an upstream names is refused (its node id is not the key's)", async (t) => {
    const r = await client(site, homeb, 'socks', proxyB, 'anything.example:7002', file)
    t.match(r, { ok: false }, 'refused', { r })
    const bl = await b.waitForLine(/ info conn listener=lan .*dst=anything.example:7002 /)
    t.match(fieldsOf(bl), { via: 'wrong', reason: 'node-mismatch' }, 'B: node-mismatch', { bl })
    const closed = await b.waitForLine(/ info hbone-closed .*reason=node-mismatch/)
    t.ok(closed, 'B: the connection to the VPS closed after the handshake')
  })

  await t.test('the name of an unknown node is refused with a clear log line', async (t) => {
    const other = `${'N'.repeat(51)}A.home.${TD}`
    const r = await client(site, homeb, 'socks', proxyB, `${other}:7000`, file)
    t.match(r, { ok: false }, 'refused', { r })
    const v = await vps.waitForLine(/ warn mesh-node-unreachable /)
    t.match(
      fieldsOf(v),
      { listener: 'mesh', reason: 'unknown-node', why: /^node N{51}A has no reverse tunnel here/ },
      'VPS: not registered here, and not passed on (one hop)',
      { v },
    )
    const w = await b.waitForLine(/ warn mesh-node-unreachable /)
    t.match(fieldsOf(w), { listener: 'lan', reason: 'relay-refused-503' }, 'B: the relay refused it', { w })
    const bad = await client(site, homeb, 'connect', proxyB, `nothing.${TD}:7000`, file)
    t.match(bad, { ok: false, status: '502' }, 'a name that is no node name: 502', { bad })
    const n = await b.waitForLine(/ warn mesh-node-unreachable .*reason=not-a-node-name/)
    t.match(fieldsOf(n), { why: `nothing.${TD} is not NODEID.NAMESPACE.${TD}` }, 'B: says why')
  })

  await t.test('the outer streams, once B is gone (its inner connection ends)', async (t) => {
    checkCleanExit(t, b, await b.stop())
    const vl = fieldsOf((await vps.waitForLines(/ info conn listener=mesh .*via=reverse$/, 1))[0])
    t.match(
      vl,
      { dst: `${nameA}:15008`, identity: gateB.id, action: 'mesh', via: 'reverse', node: nodeA },
      "VPS: a stream to A's HBONE endpoint from B, passed on A's reverse tunnel",
    )
    const al = fieldsOf(await a.waitForLine(/ info conn listener=vps .*action=hbone /))
    t.match(
      al,
      { dst: `${nameA}:15008`, identity: vpsId.id, inner: /^\d+$/ },
      'A: the stream to its own HBONE endpoint served as an HBONE connection',
    )
    await settleFds(a)
    checkFds(t, a) // the inner connection's socket pair is gone with it
  })

  for (const ug of [a, vps] as Ugate[]) checkCleanExit(t, ug, await ug.stop())
})

// Relays tried in turn (docs/mesh.md, "The `mesh` action"): B's own relays
// come first, and both are down — one refuses the port (the connect fails
// later, on the event loop), one has no route (connect fails at once) — so
// B reaches A through the third, the VPS of its reverse entry, and logs each
// failure with its reason. A gate C in B's LAN whose relays are all down
// gives its clients the error the docs name.
t.test('relays tried in turn: the first ones down, the node still reached; all down: relay-unreachable', async (t) => {
  const m = await meshSites(t, 'nq', 64 * 1024)
  const { site, homeb, gateB, nodeA, nameA, file, body } = m
  // No route from B's LAN to TEST-NET-1: connect() fails with EHOSTUNREACH at once.
  await site.exec(homeb, ['ip', 'route', 'add', 'unreachable', '192.0.2.0/24'])
  const down = [
    { name: 'refused', type: 'hbone', server: `${SITE.vpsInB}:15099`, relay: true },
    { name: 'noroute', type: 'hbone', server: '192.0.2.1', relay: true },
  ]

  const bRules = [
    { listener: ['lan'], domainSuffix: [TD], action: 'mesh' },
    // Captured TLS naming a node: as it is, to the VPS's SNI relay (no double HBONE).
    { listener: ['tls'], domainSuffix: [TD], action: `forward:${SITE.vpsInB}:${SNI_PORT}` },
  ]
  const { vps, a, b } = await startMesh(t, m, bRules, down, true)
  const proxyB = `${SITE.homeB}:1080`

  await t.test('B: refused, then no route, then the VPS: exact both ways, each failure logged', async (t) => {
    const r = await client(site, homeb, 'socks', proxyB, `${nameA}:7000`, file)
    await exact(t, 'SOCKS5 through the third relay', r, body)
    const failed = (await b.waitForLines(/ warn mesh-relay-failed /, 2)).map(fieldsOf)
    t.match(
      failed,
      [
        { listener: 'lan', host: `${nameA}`, relay: 'refused', reason: 'relay-unreachable' },
        { listener: 'lan', host: `${nameA}`, relay: 'noroute', reason: 'relay-unreachable' },
      ],
      'B: each relay that failed, in the order tried, with its reason',
      { failed },
    )
    const outer = (await b.waitForLines(/ info hbone-closed .*reason=connect-error/, 2)).map(fieldsOf)
    t.match(
      outer.map((f) => f?.peer).sort(),
      ['192.0.2.1:15008', `${SITE.vpsInB}:15099`],
      "B: the outer connections' own failures (connect-error) name the relays' addresses",
      { outer },
    )
    const bl = fieldsOf(await b.waitForLine(/ info conn listener=lan /))
    t.match(
      bl,
      { action: 'mesh', via: 'relay:vps', node: nodeA, reason: 'eof' },
      'B: the access line names the relay that carried it',
    )
  })

  await t.test('B: the next connection goes first to the relay that reached the node', async (t) => {
    const r = await client(site, homeb, 'connect', proxyB, `${nameA}:7000`, file)
    await exact(t, 'HTTP CONNECT', r, body)
    const bl = fieldsOf((await b.waitForLines(/ info conn listener=lan /, 2))[1])
    t.match(bl, { via: 'relay:vps', node: nodeA, reason: 'eof' }, 'B: through the VPS')
    t.equal(b.lines.filter((l) => / warn mesh-relay-failed /.test(l)).length, 2, 'B: no relay tried before it')
  })

  await t.test(
    "a node name through the VPS's SNI pairing: paired with A's parked connection by the node id",
    async (t) => {
      // The echo server sends the ClientHello back: no TLS server, the handshake fails on it.
      const r = await client(site, site.ns.net, 'tls', `${SITE.vps}:${SNI_PORT}`, nameA)
      t.match(r, { ok: false }, "an internet client's ClientHello reached the echo server in A's LAN and came back", {
        r,
      })
      const vl = fieldsOf(await vps.waitForLine(/ info conn listener=tls /))
      t.match(
        vl,
        { host: nameA, node: nodeA, via: /^park:/ },
        "VPS: paired by the name's node id, A registered no name",
        {
          vl,
        },
      )
      const al = fieldsOf(await a.waitForLine(/ info conn listener=park /))
      t.match(al, { host: nameA, action: 'forward', via: ECHO }, 'A: its rule for its own name', { al })
      const rb = await client(site, homeb, 'tls', `${SITE.homeB}:8443`, nameA)
      t.match(rb, { ok: false }, "from B's LAN: B's captured TLS, forwarded to the VPS's sni listener", { rb })
      const bl = fieldsOf(await b.waitForLine(/ info conn listener=tls /))
      t.match(bl, { host: nameA, action: 'forward', via: `${SITE.vpsInB}:${SNI_PORT}` }, 'B: sent on as it is', { bl })
      const vl2 = fieldsOf((await vps.waitForLines(/ info conn listener=tls /, 2))[1])
      t.match(vl2, { host: nameA, node: nodeA, src: new RegExp(`^${SITE.natBOut}:`) }, "VPS: B's NAT address, paired", {
        vl2,
      })
      const al2 = fieldsOf((await a.waitForLines(/ info conn listener=park /, 2))[1])
      t.match(al2, { host: nameA, action: 'forward', via: ECHO }, 'A: the same rule')
    },
  )

  await t.test('C: every relay down → relay-unreachable, SOCKS 4 (host unreachable), HTTP 502, fds back', async (t) => {
    const cfg = write(site, 'c', {
      mesh: { identityDir: gateB.dir, trustDomain: TD },
      listeners: [{ name: 'lan', type: 'mixed', listen: `${SITE.homeB}:1081` }],
      upstreams: down,
      rules: bRules,
    })
    const c = await startUgate(t, ['run', '--config', cfg], { netns: homeb })
    const proxyC = `${SITE.homeB}:1081`
    const socks = await client(site, homeb, 'socks', proxyC, `${nameA}:7000`, file)
    t.match(socks, { ok: false, status: '4' }, 'SOCKS5: reply 4, host unreachable', { socks })
    const http = await client(site, homeb, 'connect', proxyC, `${nameA}:7000`, file)
    t.match(http, { ok: false, status: '502' }, 'HTTP CONNECT: 502', { http })
    const failed = (await c.waitForLines(/ warn mesh-relay-failed /, 4)).map((l) => fieldsOf(l)?.relay)
    t.same(failed, ['refused', 'noroute', 'refused', 'noroute'], 'C: both relays tried for each request')
    const w = (await c.waitForLines(/ warn mesh-node-unreachable /, 2)).map(fieldsOf)
    t.match(
      w,
      [
        {
          listener: 'lan',
          host: nameA,
          reason: 'relay-unreachable',
          why: `no relay reached node ${nodeA} (${nameA}:7000)`,
        },
        { reason: 'relay-unreachable' },
      ],
      'C: the error the docs name, and why',
      { w },
    )
    const lines = (await c.waitForLines(/ info conn listener=lan /, 2)).map(fieldsOf)
    t.match(lines, [{ reason: 'relay-unreachable' }, { reason: 'relay-unreachable' }], 'C: the access lines say it')
    await settleFds(c)
    checkFds(t, c)
    checkCleanExit(t, c, await c.stop())
  })

  for (const ug of [b, a, vps] as Ugate[]) checkCleanExit(t, ug, await ug.stop())
})
