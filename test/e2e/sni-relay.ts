// Relay over SNI in network namespaces (docs/mesh.md): a home gate behind a
// NAT that drops every inbound connection registers parked connections at a
// public relay; a TLS client on the internet side reaches a TLS server in the
// home LAN by SNI through the relay, spliced there. Faults: identities the
// relay must refuse, a flood of unpaired connections, the relay restarting.
//
//   home 10.77.0.2 ── 10.77.0.1 nat 198.51.100.2 ── 198.51.100.1 vps 203.0.113.1 ── 203.0.113.2 net
//   (gate, server)     (MASQUERADE, inbound dropped)  (relay: park :15009, sni :443)   (client)
//
// Identities: `ugate identity init` makes the relay's (and the CA); openssl
// signs the home gate's with that CA's key; the refused ones come from
// another CA, and from the right CA in another trust domain.

import t from 'tap'
import type { Test } from 'tap'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { must } from '../lib/netns.js'
import { type Site, SITE, createSites, runClient, startProgram } from '../lib/nat-sites.js'
import { MiB, prngBytes, sha256 } from '../lib/servers.js'
import { type Ugate, checkCleanExit, startUgate, ugateBin } from '../lib/ugate.js'

const NAME = 'app.home.test'
const UNRULED = 'other.home.test'
const TD = 'mesh.test'
const GATE_ID = `spiffe://${TD}/ns/home/sa/gate-a`
const RELAY_ID = `spiffe://${TD}/ns/vps/sa/relay`
const A = SITE
const PAYLOAD = 4 * MiB

// ---- identities ------------------------------------------------------------------

async function identityInit(dir: string, td: string, nsName: string, sa: string): Promise<void> {
  mkdirSync(dir, { recursive: true })
  await must([ugateBin, 'identity', 'init', '--dir', dir, '--trust-domain', td, '--namespace', nsName, '--sa', sa])
}

/** A node certificate for `uri` signed by the CA of caDir (openssl: ugate has no signing command yet). */
async function signNode(caDir: string, dir: string, uri: string): Promise<void> {
  mkdirSync(dir, { recursive: true })
  copyFileSync(join(caDir, 'root-cert.pem'), join(dir, 'root-cert.pem'))
  await must(['openssl', 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'key.pem')])
  await must([
    'openssl',
    'req',
    '-new',
    '-key',
    join(dir, 'key.pem'),
    '-subj',
    '/O=test/CN=node',
    '-out',
    join(dir, 'csr.pem'),
  ])
  writeFileSync(
    join(dir, 'ext.cnf'),
    `subjectAltName=URI:${uri}\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`,
  )
  await must([
    'openssl',
    'x509',
    '-req',
    '-in',
    join(dir, 'csr.pem'),
    '-CA',
    join(caDir, 'root-cert.pem'),
    '-CAkey',
    join(caDir, 'ca-key.pem'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    join(dir, 'ext.cnf'),
    '-out',
    join(dir, 'cert-chain.pem'),
  ])
}

// ---- helper programs (Node, run inside the namespaces) ------------------------------

const SERVER_JS = `
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
const [dir, host, port] = process.argv.slice(2)
const srv = tls.createServer({ key: readFileSync(dir + '/srv.key'), cert: readFileSync(dir + '/srv.crt') }, (s) => {
  s.on('error', () => {})
  s.pipe(s)
})
srv.listen(Number(port), host, () => process.stdout.write('ready\\n'))
`

// Sends the file's bytes, half-closes, hashes what comes back; or, with
// "flood N", opens N connections at once and counts how each ended.
const CLIENT_JS = `
import tls from 'node:tls'
import net from 'node:net'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
const [mode, host, port, name, arg] = process.argv.slice(2)
const out = (o) => { process.stdout.write(JSON.stringify(o) + '\\n'); process.exit(0) }
if (mode === 'echo') {
  const body = readFileSync(arg)
  const h = createHash('sha256')
  let n = 0
  const t0 = process.hrtime.bigint()
  const s = tls.connect({ host, port: Number(port), servername: name, rejectUnauthorized: false }, () => {
    s.end(body)
  })
  s.on('data', (d) => { h.update(d); n += d.length })
  s.on('end', () => out({ ok: true, n, sha: h.digest('hex'), ms: Number(process.hrtime.bigint() - t0) / 1e6 }))
  s.on('error', (e) => out({ ok: false, error: e.code || e.message, n }))
} else if (mode === 'flood') {
  const total = Number(arg)
  const ends = {}
  let done = 0
  for (let i = 0; i < total; i++) {
    const s = tls.connect({ host, port: Number(port), servername: name, rejectUnauthorized: false })
    const end = (why) => { if (s.ended) return; s.ended = true; ends[why] = (ends[why] || 0) + 1; if (++done === total) out({ ends }) }
    s.on('secureConnect', () => end('handshake'))
    s.on('error', (e) => end(e.code || e.message))
    s.on('close', () => end('closed'))
  }
} else if (mode === 'burst') {
  // N connections at once, each echoing a line: counts those that got it back.
  const total = Number(arg)
  let echoed = 0, done = 0
  for (let i = 0; i < total; i++) {
    const line = 'burst ' + i + '\\n'
    let got = ''
    const s = tls.connect({ host, port: Number(port), servername: name, rejectUnauthorized: false }, () => s.end(line))
    const end = () => { if (s.ended) return; s.ended = true; if (got === line) echoed++; if (++done === total) out({ echoed }) }
    s.on('data', (d) => { got += d })
    s.on('error', end)
    s.on('close', end)
  }
} else if (mode === 'connect') {
  const s = net.connect({ host, port: Number(port), timeout: Number(arg) })
  s.on('connect', () => out({ connected: true }))
  s.on('timeout', () => out({ connected: false, error: 'timeout' }))
  s.on('error', (e) => out({ connected: false, error: e.code }))
}
`

// An independent gate (node:crypto signs with the gate's key) registers once,
// then replays that register frame on a second connection.
const REPLAY_JS = `
import net from 'node:net'
import { createSign, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
const [host, port, dir, names] = process.argv.slice(2)
const key = readFileSync(dir + '/key.pem', 'utf8')
const chain = readFileSync(dir + '/cert-chain.pem', 'utf8')
const frame = (o) => { const b = Buffer.from(JSON.stringify(o)); const h = Buffer.alloc(4); h.writeUInt32BE(b.length); return Buffer.concat([h, b]) }
function session(makeRegister) {
  return new Promise((resolve) => {
    const s = net.connect(Number(port), host)
    let buf = Buffer.alloc(0)
    const frames = []
    const gateNonce = randomBytes(32).toString('hex')
    s.on('connect', () => s.write(frame({ v: 1, nonce: gateNonce })))
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        frames.push(JSON.parse(buf.subarray(4, 4 + buf.readUInt32BE(0)).toString()))
        buf = buf.subarray(4 + buf.readUInt32BE(0))
        if (frames.length === 1) s.write(makeRegister(frames[0].nonce, gateNonce))
        else { s.destroy(); resolve(frames[1]) }
      }
    })
    s.on('error', (e) => resolve({ error: e.code }))
    s.on('close', () => resolve({ error: 'closed' }))
  })
}
let captured
const first = await session((relayNonce, gateNonce) => {
  const text = 'ugate-sni-relay/1 gate\\n' + relayNonce + '\\n' + gateNonce + '\\n' + names.split(',').join('\\n') + '\\n'
  const sig = createSign('sha256').update(text).sign(key).toString('base64')
  return (captured = frame({ chain, names: names.split(','), sig }))
})
const replayed = await session(() => captured)
process.stdout.write(JSON.stringify({ first, replayed }) + '\\n')
`

const startServer = (site: Site) => startProgram(site, site.ns.home, 'server.mjs', [site.dir, A.home, '8443'])
const client = (site: Site, ...args: string[]) => runClient(site, 'client.mjs', args)

// ---- configs -------------------------------------------------------------------------

function relayConfig(site: Site): string {
  const file = join(site.dir, 'relay.json')
  writeFileSync(
    file,
    JSON.stringify({
      mesh: { identityDir: join(site.dir, 'relay'), trustDomain: TD },
      listeners: [
        {
          name: 'park',
          type: 'park',
          listen: '0.0.0.0:15009',
          allow: ['0.0.0.0/0'],
          grants: { [GATE_ID]: [NAME, UNRULED] },
        },
        {
          name: 'tls',
          type: 'sni',
          listen: '0.0.0.0:443',
          allow: ['0.0.0.0/0'],
          pair: 'park',
          pairTimeout: 0.5,
          maxWaiting: 8,
        },
      ],
    }),
  )
  return file
}

function gateConfig(site: Site, name: string, identity: string, trustDomain = TD): string {
  const file = join(site.dir, `${name}.json`)
  writeFileSync(
    file,
    JSON.stringify({
      mesh: { identityDir: join(site.dir, identity), trustDomain },
      listeners: [{ name: 'local', type: 'mixed', listen: '127.0.0.1:0' }],
      sniRelay: [
        {
          name: 'vps',
          relay: `${A.vpsIn}:15009`,
          relayId: RELAY_ID,
          names: [NAME, UNRULED],
          pool: 2,
          retry: 0.1,
          retryMax: 1,
        },
      ],
      rules: [{ domain: [NAME], listener: ['vps'], action: `forward:${A.home}:8443` }],
    }),
  )
  return file
}

const lineCount = (ug: Ugate, re: RegExp) => ug.matching(re).length

/**
 * Connections parked at the relay (established on :15009), once `ok` holds
 * or after 5 s: the kernel has no event for "registered", so look again.
 */
async function parkedAtRelay(site: Site, ok: (n: number) => boolean): Promise<number> {
  const count = async () =>
    (await site.exec(site.ns.vps, ['ss', '-tnH', 'state', 'established', '( sport = :15009 )'])).stdout
      .split('\n')
      .filter((l) => l.trim() !== '').length
  let n = await count()
  for (let i = 0; i < 50 && !ok(n); i++) {
    await new Promise((res) => setTimeout(res, 100))
    n = await count()
  }
  return n
}

async function echoThrough(t: Test, site: Site, what: string, body: Buffer): Promise<void> {
  const r = await client(site, 'echo', A.vps, '443', NAME, join(site.dir, 'body.bin'))
  t.same(
    { ok: r.ok, n: r.n, sha: r.sha },
    { ok: true, n: body.length, sha: sha256(body) },
    `${what}: ${body.length} bytes to the home server and back, exact`,
    { r },
  )
}

t.test('relay over SNI: a home gate behind NAT reached by SNI through the relay; faults', async (t) => {
  const outer = t
  const site = await createSites(t, 'sr')
  await identityInit(join(site.dir, 'relay'), TD, 'vps', 'relay')
  await signNode(join(site.dir, 'relay'), join(site.dir, 'gate'), GATE_ID)
  await signNode(join(site.dir, 'relay'), join(site.dir, 'otherdomain'), `spiffe://other.test/ns/home/sa/gate-a`)
  await identityInit(join(site.dir, 'otherca'), TD, 'home', 'gate-a')
  // It trusts the relay's CA too (its own chain must verify at start): only the relay says no.
  writeFileSync(
    join(site.dir, 'otherca', 'root-cert.pem'),
    readFileSync(join(site.dir, 'otherca', 'root-cert.pem'), 'utf8') +
      readFileSync(join(site.dir, 'relay', 'root-cert.pem'), 'utf8'),
  )
  await must([
    'openssl',
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    join(site.dir, 'srv.key'),
    '-out',
    join(site.dir, 'srv.crt'),
    '-subj',
    `/CN=${NAME}`,
    '-days',
    '2',
  ])
  writeFileSync(join(site.dir, 'server.mjs'), SERVER_JS)
  writeFileSync(join(site.dir, 'client.mjs'), CLIENT_JS)
  const body = prngBytes(0x5e1a, PAYLOAD)
  writeFileSync(join(site.dir, 'body.bin'), body)
  const stopServer = await startServer(site)
  t.teardown(stopServer)

  // The NAT really keeps the home LAN closed: the VPS has a route, the NAT drops.
  const direct = await site.exec(site.ns.vps, [
    'node',
    join(site.dir, 'client.mjs'),
    'connect',
    A.home,
    '8443',
    '-',
    '1000',
  ])
  t.match(JSON.parse(direct.stdout), { connected: false }, 'the VPS cannot connect into the home LAN')
  const drops = await site.exec(site.ns.nat, ['nft', 'list', 'chain', 'inet', 'ugt_nat', 'drop_fwd'])
  t.match(drops.stdout, /counter packets [1-9]/, "the NAT's drop counted the VPS's attempt")

  let relay = await startUgate(t, ['run', '--config', relayConfig(site)], { netns: site.ns.vps })
  const gate = await startUgate(t, ['run', '--config', gateConfig(site, 'gate', 'gate')], { netns: site.ns.home })
  await gate.waitForLine(/ info sni-relay-registered .*name=vps/)

  await t.test('parked connections carry TCP keepalive on both ends', async (t) => {
    for (const [where, ns, filter] of [
      ['relay', site.ns.vps, '( sport = :15009 )'],
      ['gate', site.ns.home, '( dport = :15009 )'],
    ] as const) {
      // A socket whose last frame is not yet acknowledged shows its retransmit
      // timer instead; the kernel has no event for "settled", so look again.
      let r = await site.exec(ns, ['ss', '-tnoH', 'state', 'established', filter])
      for (let i = 0; i < 50 && !/timer:\(keepalive,/.test(r.stdout); i++) {
        await new Promise((res) => setTimeout(res, 100))
        r = await site.exec(ns, ['ss', '-tnoH', 'state', 'established', filter])
      }
      t.match(r.stdout, /timer:\(keepalive,/, `${where}: keepalive timer on the parked sockets`, { out: r.stdout })
    }
  })

  await t.test('TLS by SNI through the relay, exact data both ways, spliced on the relay', async (t) => {
    await echoThrough(t, site, 'first connection', body)
    const [conn] = await relay.waitForLines(/ info conn listener=tls /, 1)
    t.match(
      conn,
      / reason=eof splice=1 .*host=app\.home\.test node=[A-Z2-7]{52} via=park:198\.51\.100\.2:\d+/,
      'relay: paired with a parked connection from the NAT, spliced',
      { conn },
    )
    t.match(conn, / up=\d{7,} down=\d{7,} /, 'relay: the payload went both ways through it')
    const [g] = await gate.waitForLines(/ info conn listener=vps /, 1)
    t.match(
      g,
      new RegExp(
        ` client=${A.client.replace(/\./g, '\\.')}:\\d+ proto=tls host=app\\.home\\.test rule=#0 action=forward via=10\\.77\\.0\\.2:8443`,
      ),
      'gate: routed by its rule, the client named',
      { g },
    )
    // The paired connection is replaced once pairings pause (RelayPool.refillWhenQuiet).
    const n = await parkedAtRelay(site, (n) => n === 2)
    t.equal(n, 2, 'gate: the pool is refilled to its 2 parked connections after the pairing')
  })

  await t.test('a registered name no rule of the gate names is not exposed', async (t) => {
    const r = await client(site, 'echo', A.vps, '443', UNRULED, join(site.dir, 'body.bin'))
    t.equal(r.ok, false, 'the client gets no answer', { r })
    const lines = await gate.waitForLines(/ info conn listener=vps /, 2)
    t.match(lines[1], /host=other\.home\.test rule=default action=reject/, 'gate: rejected by default', { lines })
  })

  await t.test("a node name is paired only when all of it is the gate's: its namespace and trust domain", async (t) => {
    const [registered] = await gate.waitForLines(/ info sni-relay-registered /, 1)
    const node = /node=([A-Z2-7]{52})/.exec(registered!)![1]!.toLowerCase()
    const toGate = / info conn listener=vps /
    const gateBefore = lineCount(gate, toGate)
    for (const [what, sni] of [
      ['another namespace', `${node}.office.${TD}`],
      ['another trust domain', `${node}.home.other.test`],
    ] as const) {
      const unpaired = / warn sni-relay-unpaired /
      const before = lineCount(relay, unpaired)
      const r = await client(site, 'echo', A.vps, '443', sni, join(site.dir, 'body.bin'))
      t.equal(r.ok, false, `${what}: the client gets no answer`, { r })
      const lines = await relay.waitForLines(unpaired, before + 1)
      t.match(
        lines[before],
        new RegExp(
          `sni=${sni.replace(/\./g, '\\.')} why=".*is not a name of node ${node.toUpperCase()} \\(${GATE_ID}\\)`,
        ),
        `${what}: refused by the relay, saying why`,
        { line: lines[before] },
      )
    }
    // The gate's own full name pairs (and the gate, with no rule for it, rejects it).
    const r = await client(site, 'echo', A.vps, '443', `${node}.home.${TD}`, join(site.dir, 'body.bin'))
    t.equal(r.ok, false, 'the right name: paired, then rejected by the gate (no rule)', { r })
    const lines = await gate.waitForLines(toGate, gateBefore + 1)
    t.match(
      lines[gateBefore],
      new RegExp(`host=${node}\\.home\\.mesh\\.test rule=default action=reject`),
      'only the right name reached the gate',
      { lines },
    )
  })

  await t.test('wrong identities are refused by the relay, with a log line', async (t) => {
    for (const [what, dir, re] of [
      ['a certificate of another CA', 'otherca', /why="?chain not trusted: not-trusted/],
      [
        'a certificate of another trust domain',
        'otherdomain',
        /why="?spiffe:\/\/other\.test\/ns\/home\/sa\/gate-a is not in trust domain mesh\.test/,
      ],
    ] as const) {
      // Counted by reason: a gate refused earlier may still be retrying while the next one starts.
      const refused = new RegExp(` warn sni-relay-refused .*${re.source}`)
      const before = lineCount(relay, refused)
      // '' (any id the roots vouch for): the gate itself starts with an identity of another domain.
      const td = dir === 'otherdomain' ? '' : TD
      const bad = await startUgate(t, ['run', '--config', gateConfig(site, dir, dir, td)], { netns: site.ns.home })
      const lines = await relay.waitForLines(refused, before + 1)
      t.match(lines[before], re, `${what}: refused, the relay says why`, { line: lines[before] })
      await bad.waitForLine(/ warn sni-relay-down .*why="?refused: /)
      t.pass(`${what}: the gate hears it was refused`)
      const res = await bad.stop()
      checkCleanExit(t, bad, res)
    }
  })

  await t.test('an independent signer registers; its captured register frame replayed is refused', async (t) => {
    writeFileSync(join(site.dir, 'replay.mjs'), REPLAY_JS)
    // Counted by reason: the refused gates of the test before may still be retrying.
    const replayed = / warn sni-relay-refused .*bad signature/
    const before = lineCount(relay, replayed)
    const gateClosed = / info conn listener=park .*reason=gate-closed/
    const closedBefore = lineCount(relay, gateClosed)
    const r = await site.exec(site.ns.home, [
      'node',
      join(site.dir, 'replay.mjs'),
      A.vpsIn,
      '15009',
      join(site.dir, 'gate'),
      NAME,
    ])
    const out = JSON.parse(r.stdout) as { first: Record<string, unknown>; replayed: Record<string, unknown> }
    t.match(
      out.first,
      { ok: true, node: /^[A-Z2-7]{52}$/ },
      'node:crypto signature over the relay challenge: accepted',
      { r },
    )
    t.match(out.replayed, { error: /bad signature/ }, 'the same frame on a new connection: refused', { r })
    const lines = await relay.waitForLines(replayed, before + 1)
    t.match(
      lines[before],
      new RegExp(`src=198\\.51\\.100\\.2:\\d+ why="?${GATE_ID}: bad signature`),
      'relay: the replay logged',
      {
        lines,
      },
    )
    // The first connection, accepted and parked, ends with the replayer.
    await relay.waitForLines(gateClosed, closedBefore + 1)
  })

  await t.test('a flood of unpaired SNI connections: bounded, refused, fds back to baseline', async (t) => {
    // Each connection refused so far is closed (the relay logs the refusal
    // first, then closes it) before the baseline is taken.
    await relay.waitForLines(
      / info conn listener=park .*reason=registration-refused/,
      lineCount(relay, / warn sni-relay-refused /),
    )
    await relay.waitForLines(/ info conn listener=tls .*reason=unpaired/, lineCount(relay, / warn sni-relay-unpaired /))
    const base = relay.fdCount()
    const before = lineCount(relay, / warn sni-relay-unpaired /)
    const N = 60
    const r = await client(site, 'flood', A.vps, '443', 'nobody.home.test', String(N))
    const ends = r.ends as Record<string, number>
    t.equal(ends.handshake ?? 0, 0, 'no flood connection got a TLS handshake', { ends })
    const lines = await relay.waitForLines(/ warn sni-relay-unpaired /, before + N)
    const over = lines.slice(before).filter((l) => /already waiting/.test(l)).length
    t.ok(over > 0, `connections over maxWaiting were refused at once (${over} of ${N})`)
    const waited = lines.slice(before).filter((l) => /why="?none within 500 ms/.test(l)).length
    t.equal(waited + over, N, 'each was refused at once or after waiting pairTimeout (500 ms)', { lines })
    t.ok(waited > 0, `connections within maxWaiting waited, then were refused (${waited})`)
    await relay.waitForLines(/ info conn listener=tls .*reason=unpaired/, N)
    t.equal(relay.fdCount(), base, 'relay fd count back to its baseline', { fds: relay.fdList() })
  })

  await t.test('the relay restarts: the gate registers again and new connections work', async (t) => {
    const res = await relay.stop()
    checkCleanExit(t, relay, res)
    // Counted once the old relay is gone: a registration with it that was still under way (a gate
    // that was backing off) would otherwise pass for one with the new relay, and the echo below
    // would race the gate's backoff (up to retryMax 1 s) against pairTimeout (0.5 s).
    const registered = lineCount(gate, / info sni-relay-registered /)
    await gate.waitForLine(/ warn sni-relay-down /)
    // Started by the outer test: it outlives this subtest.
    relay = await startUgate(outer, ['run', '--config', relayConfig(site)], { netns: site.ns.vps })
    await gate.waitForLines(/ info sni-relay-registered /, registered + 1)
    t.pass('the gate registered again (retryMax 1 s)')
    await echoThrough(t, site, 'after the restart', body)
  })

  await t.test('the pool grows when demand outruns it', async (t) => {
    const N = 6
    t.equal(await parkedAtRelay(site, (n) => n === 2), 2, 'two parked before')
    const r = await client(site, 'burst', A.vps, '443', NAME, String(N))
    // Two pair at once; taking the last parked one doubles the target and refills at once,
    // so the others can pair with fresh registrations within pairTimeout (not asserted: the load's call).
    t.ok((r.echoed as number) >= 2, `connections echoed through the relay: ${String(r.echoed)} of ${N}`, { r })
    const n = await parkedAtRelay(site, (n) => n > 2)
    t.ok(n > 2, `the gate keeps more parked connections after the burst (${n}, pool 2)`)
  })

  const res = await gate.stop()
  checkCleanExit(t, gate, res)
  const rres = await relay.stop()
  checkCleanExit(t, relay, rres)
  t.same(relay.sanitizerLines(), [], 'no sanitizer report on the relay')
})
