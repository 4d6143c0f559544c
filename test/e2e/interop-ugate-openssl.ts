// openssl (s_client / s_server, a TLS stack we did not write) against ugate's
// HBONE TLS (native/tls.c on mbedTLS), both roles. As clients of ugate's
// hbone listener: TLS 1.2 only (protocol_version), no client certificate
// (certificate_required), a certificate of another trust domain
// (access_denied), an expired certificate (certificate_expired), one of
// another CA (unknown_ca), ALPN http/1.1 (no_application_protocol) → each
// refused with that alert, as openssl reads it, and a `hbone-closed …
// detail=…` line in ugate naming the reason. As servers for ugate's hbone upstream: TLS 1.2 only, ALPN
// http/1.1, no ALPN, a certificate of another trust domain, an expired
// certificate → ugate refuses the handshake, the SOCKS client proxied
// through it gets a failure reply, and ugate logs why. Each refusal has a
// positive control beside it: the same peer with only the one property
// changed completes the handshake (TLS 1.3, ALPN h2, certificates checked) —
// as a server it even receives ugate's client certificate and HTTP/2 preface.
// The same alerts for a client offering the reverse-tunnel ALPN ugate-rev.

import t from 'tap'
import { waitConnsOf, listener, proxyConfig, startConfig } from '../lib/config.js'
import { issueIdentity, makeIdentity, meshConfig } from '../lib/hbone.js'
import { opensslClient, opensslServer } from '../lib/openssl.js'
import { socks5Connect } from '../lib/proxy.js'
import { finish, parseLogLine, type Ugate } from '../lib/ugate.js'

const TD = 'mesh.test'

/** The n-th (1-based) hbone-closed line, parsed. */
async function closedLine(ug: Ugate, n: number) {
  const lines = await ug.waitForLines(/ info hbone-closed /, n)
  return parseLogLine(lines[n - 1]!)!.fields
}

t.test('openssl clients of the hbone listener', async (t) => {
  const ugId = makeIdentity(t, TD, 'ugate')
  const cli = issueIdentity(t, ugId, TD, 'client')
  const other = issueIdentity(t, ugId, 'other.test', 'stranger')
  const expired = issueIdentity(t, ugId, TD, 'old', { expired: true })
  const stranger = makeIdentity(t, TD, 'stranger') // its own CA
  const ug = await startConfig(t, proxyConfig([listener('mesh', 'hbone')], meshConfig(ugId, TD)))
  const port = ug.port('mesh')
  let closed = 0
  /** A refused client: openssl's output and ugate's line for it. */
  const refused = async (o: Parameters<typeof opensslClient>[1]) => {
    const r = await opensslClient(port, { ...o, untilClosed: true })
    return { r, line: await closedLine(ug, ++closed) }
  }

  // Control: a mesh client certificate, TLS 1.3, ALPN h2.
  const good = await opensslClient(port, { id: cli, alpn: 'h2' })
  t.same([good.protocol, good.alpn], ['TLSv1.3', 'h2'], 'control: TLS 1.3 with ALPN h2', { output: good.output })
  t.match(good.output, /Verification: OK/, 'control: openssl verified ugate against the mesh root')
  const ok = await closedLine(ug, ++closed)
  t.not(ok.reason, 'handshake-error', `control: no handshake error in ugate (${ok.reason})`)
  t.notOk(ok.detail, 'control: no TLS error logged')

  const v12 = await refused({ id: cli, alpn: 'h2', tls: '1.2' })
  t.equal(v12.r.protocol, undefined, 'TLS 1.2 only: no session')
  t.match(v12.r.output, /alert protocol version/, 'TLS 1.2 only: protocol_version alert', { output: v12.r.output })
  t.match(v12.line, { reason: 'handshake-error', detail: 'peer does not speak TLS 1.3' }, 'ugate logs why')

  const anon = await refused({ root: ugId.root, alpn: 'h2' })
  t.match(anon.r.output, /alert certificate required/, 'no client certificate: certificate_required alert', {
    output: anon.r.output,
  })
  t.match(anon.line, { reason: 'handshake-error', detail: 'peer sent no client certificate' }, 'ugate logs why')

  const td = await refused({ id: other, alpn: 'h2' })
  t.match(td.r.output, /alert access denied/, 'another trust domain: access_denied alert', {
    output: td.r.output,
  })
  t.match(
    td.line,
    {
      reason: 'handshake-error',
      detail: 'peer spiffe://other.test/ns/home/sa/stranger is not in trust domain mesh.test',
    },
    'ugate logs why, naming the identity',
  )

  const old = await refused({ id: expired, alpn: 'h2' })
  t.match(old.r.output, /alert certificate expired/, 'expired certificate: certificate_expired alert', {
    output: old.r.output,
  })
  t.match(old.line, { reason: 'handshake-error', detail: 'peer certificate expired' }, 'ugate logs why')

  const ca = await refused({ id: stranger, root: ugId.root, alpn: 'h2' })
  t.match(ca.r.output, /alert unknown ca/, 'a certificate of another CA: unknown_ca alert', { output: ca.r.output })
  t.match(
    ca.line,
    { reason: 'handshake-error', detail: 'peer certificate not signed by the configured roots' },
    'ugate logs why',
  )

  const h11 = await refused({ id: cli, alpn: 'http/1.1' })
  t.equal(h11.r.alpn, undefined, 'ALPN http/1.1: none negotiated')
  t.match(h11.r.output, /alert no application protocol/, 'ALPN http/1.1: no_application_protocol alert', {
    output: h11.r.output,
  })
  t.match(h11.line, { reason: 'handshake-error', detail: 'peer does not offer ALPN h2' }, 'ugate logs why')

  t.equal(ug.events('conn').length, 0, 'no stream was ever routed')
  await finish(t, ug, 0)
})

// The reverse-tunnel ALPN (ugate-rev, offered to a listener with a `reverse`
// list) takes the same post-handshake certificate check as h2.
t.test('openssl clients offering ugate-rev to a listener with a reverse list', async (t) => {
  const ugId = makeIdentity(t, TD, 'ugate')
  const gate = issueIdentity(t, ugId, TD, 'gate')
  const stranger = makeIdentity(t, TD, 'stranger') // its own CA
  const mesh = listener('mesh', 'hbone', { reverse: [gate.id] })
  const ug = await startConfig(t, proxyConfig([mesh], meshConfig(ugId, TD)))
  const port = ug.port('mesh')
  let closed = 0
  const refused = async (o: Parameters<typeof opensslClient>[1]) => {
    const r = await opensslClient(port, { ...o, alpn: 'ugate-rev,h2', untilClosed: true })
    return { r, line: await closedLine(ug, ++closed) }
  }

  // Control: a gate in the list gets ugate-rev.
  const good = await opensslClient(port, { id: gate, alpn: 'ugate-rev,h2' })
  t.same([good.protocol, good.alpn], ['TLSv1.3', 'ugate-rev'], 'control: TLS 1.3 with ALPN ugate-rev', {
    output: good.output,
  })
  t.notOk((await closedLine(ug, ++closed)).detail, 'control: no TLS error logged')

  const ca = await refused({ id: stranger, root: ugId.root })
  t.match(ca.r.output, /alert unknown ca/, 'a certificate of another CA: unknown_ca alert', { output: ca.r.output })
  t.match(
    ca.line,
    { reason: 'handshake-error', detail: 'peer certificate not signed by the configured roots' },
    'ugate logs why',
  )
  const anon = await refused({ root: ugId.root })
  t.match(anon.r.output, /alert certificate required/, 'no client certificate: certificate_required alert', {
    output: anon.r.output,
  })
  t.match(anon.line, { reason: 'handshake-error', detail: 'peer sent no client certificate' }, 'ugate logs why')
  await finish(t, ug, 0)
})

t.test('openssl servers for the hbone upstream', async (t) => {
  const ugId = makeIdentity(t, TD, 'ugate')
  const srv = issueIdentity(t, ugId, TD, 'server')
  const other = issueIdentity(t, ugId, 'other.test', 'stranger')
  const expired = issueIdentity(t, ugId, TD, 'old', { expired: true })
  const servers = {
    good: await opensslServer(t, srv, { tls: '1.3', alpn: 'h2', requireClientCert: true }),
    tls12: await opensslServer(t, srv, { tls: '1.2', alpn: 'h2', requireClientCert: true }),
    h11: await opensslServer(t, srv, { tls: '1.3', alpn: 'http/1.1', requireClientCert: true }),
    noAlpn: await opensslServer(t, srv, { tls: '1.3', requireClientCert: true }),
    td: await opensslServer(t, other, { tls: '1.3', alpn: 'h2', requireClientCert: true }),
    expired: await opensslServer(t, expired, { tls: '1.3', alpn: 'h2', requireClientCert: true }),
  }
  const names = Object.keys(servers) as (keyof typeof servers)[]
  // Destination port i+1 goes to upstream names[i].
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      // s_server speaks no HTTP/2: the control's connection ends by its PING timeout, soon.
      upstreams: names.map((n) => ({
        name: n,
        type: 'hbone',
        server: `127.0.0.1:${servers[n].port}`,
        ...(n === 'good' ? { pingInterval: 0.5, pingTimeout: 1 } : {}),
      })),
      rules: names.map((n, i) => ({ name: n, dstPort: [String(i + 1)], action: `upstream:${n}` })),
      ...meshConfig(ugId, TD),
    }),
  )
  const through = (n: keyof typeof servers) =>
    socks5Connect(ug.port('socks'), { host: '127.0.0.1', port: names.indexOf(n) + 1 })

  // Control: ugate's handshake completes and its HTTP/2 preface arrives (s_server prints what it reads).
  const c = await through('good')
  t.not(c.reply?.[1] ?? 1, 0, 'control: no HTTP/2 answer, so the CONNECT fails too (after a PING timeout)')
  c.reader.sock.destroy()
  const out = servers.good.out()
  t.match(out, /PRI \* HTTP\/2\.0/, "control: ugate's HTTP/2 preface reached the openssl server", { out })
  t.match(out, /ALPN protocols selected: h2/, 'control: ALPN h2')
  t.match(out, /CIPHER is TLS_AES_(128|256)_GCM/, 'control: TLS 1.3 AES-GCM')
  t.match(out, /Client certificate\n[\s\S]*?subject=.*mesh\.test/, "control: the server got ugate's client certificate")
  const pt = parseLogLine(await ug.waitForLine(/ info hbone-closed .*reason=ping-timeout/))!
  t.notOk(pt.fields.detail, 'control: ugate logs no TLS error for it')

  const cases: [keyof typeof servers, string | RegExp, string][] = [
    ['tls12', 'peer sent alert 70 (protocol_version)', 'TLS 1.2-only server'],
    ['h11', 'peer sent alert 120 (no_application_protocol)', 'server with ALPN http/1.1'],
    ['noAlpn', 'peer did not negotiate ALPN h2', 'server without ALPN'],
    [
      'td',
      'peer spiffe://other.test/ns/home/sa/stranger is not in trust domain mesh.test',
      'server of another trust domain',
    ],
    ['expired', 'peer certificate expired', 'server with an expired certificate'],
  ]
  let n = 0
  for (const [name, why, what] of cases) {
    const s = await through(name)
    t.not(s.reply?.[1] ?? 1, 0, `${what}: the SOCKS client's CONNECT fails`)
    s.reader.sock.destroy()
    const line = parseLogLine((await ug.waitForLines(new RegExp(` info hbone-closed .*detail=`), ++n))[n - 1]!)!
    t.match(line.fields, { reason: 'handshake-error', detail: why }, `${what}: ugate logs why`)
  }
  const conns = await waitConnsOf(ug, 'socks', cases.length + 1)
  t.equal(
    conns.filter((l) => l.fields.reason === 'upstream-error').length,
    cases.length + 1,
    'an access line for each: upstream-error',
    { conns: conns.map((l) => l.raw) },
  )
  await finish(t, ug, cases.length + 1)
})
