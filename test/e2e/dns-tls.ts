// DNS over TLS upstream resolvers of the `dns` listener (tls://[NAME@]IP[:PORT]):
// dig asks ugate over UDP, ugate asks the stand-in (test/lib/dns-standin.ts)
// over node:tls with a certificate of a throw-away CA (test/lib/tls.ts).
// Answers are correct and share one kept connection (pipelined digs too); the
// name or the address is checked against the certificate; an untrusted CA, a
// wrong name, an address the certificate does not carry and a TLS 1.2-only
// server each give SERVFAIL and a warning saying why; a server's close is
// survived (a new connection, the unanswered query sent again); a reload
// closes the connection; the system's CA bundle loads whole; a missing one
// stops the start with its name.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { listener, startConfig, writeConfigFile } from '../lib/config.js'
import { type DnsStandinTls, digArgs, parseDig, requireDig, startDnsStandin } from '../lib/dns-standin.js'
import { run } from '../lib/netns.js'
import { makePki } from '../lib/tls.js'
import { finish, runUgate, settleFds } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

requireDig()

const ZONE = {
  'www.example.test': { A: ['192.0.2.10', '192.0.2.11'], AAAA: ['2001:db8::10'] },
  'one.example.test': { A: ['192.0.2.1'] },
  'two.example.test': { A: ['192.0.2.2'] },
  'three.example.test': { A: ['192.0.2.3'] },
  'four.example.test': { A: ['192.0.2.4'] },
  'close.example.test': { A: ['192.0.2.99'] },
}

async function dig(port: number, name: string, type = 'A') {
  const r = await run(digArgs('127.0.0.1', port, name, type))
  return parseDig(r.code, r.stdout + r.stderr)
}

/** The stand-in with DNS over TLS, its certificate for dns.example.test and 127.0.0.1 only. */
async function dotServer(t: Test, tls: Partial<DnsStandinTls> = {}) {
  const pki = makePki(t, ['dns.example.test'], ['127.0.0.1'])
  const up = await startDnsStandin(t, tempDir(t, 'ugate-dot-'), ZONE, {
    host: '::',
    tls: { certPem: pki.certPem, keyPem: pki.keyPem, ...tls },
  })
  return { pki, up }
}

function startDot(t: Test, servers: string[], caBundle: string) {
  return startConfig(
    t,
    {
      log: { level: 'debug' },
      relay: { shutdownGrace: 1 },
      listeners: [listener('dns', 'dns', { servers, caBundle, timeout: 3 })],
    },
    { env: { ASAN_OPTIONS: 'detect_leaks=1' } },
  )
}

t.test('answers over one kept TLS connection, pipelined; a reload closes it', async (t) => {
  const { pki, up } = await dotServer(t)
  const server = `tls://dns.example.test@127.0.0.1:${up.tlsPort}`
  const ug = await startDot(t, [server], pki.caFile)
  const port = ug.port('dns')

  const a = await dig(port, 'www.example.test')
  t.equal(a.status, 'NOERROR', 'dig A: NOERROR', { raw: a.raw, log: ug.lines })
  t.same(a.answers.map((x) => x.data).sort(), ['192.0.2.10', '192.0.2.11'], 'the zone’s A records')
  const aaaa = await dig(port, 'www.example.test', 'AAAA')
  t.same(
    aaaa.answers.map((x) => x.data),
    ['2001:db8::10'],
    'AAAA',
  )
  const names = ['one', 'two', 'three', 'four'].map((n) => `${n}.example.test`)
  const many = await Promise.all(names.map((n) => dig(port, n)))
  t.same(
    many.map((r) => r.answers.map((x) => x.data)),
    [['192.0.2.1'], ['192.0.2.2'], ['192.0.2.3'], ['192.0.2.4']],
    'four concurrent digs: each its own answer',
  )
  const nx = await dig(port, 'none.example.test')
  t.equal(nx.status, 'NXDOMAIN', 'NXDOMAIN passed on')

  const seen = up.queries
  t.equal(seen.length, 7, 'the stand-in saw each query once', { seen })
  t.ok(
    seen.every((q) => q.proto === 'tls'),
    'every query over TLS',
  )
  t.equal(new Set(seen.map((q) => q.conn)).size, 1, 'all on one connection')
  t.equal(ug.events('dns-tls-open').length, 1, 'one handshake')
  t.match(
    ug.events('dns').find((l) => l.fields.name === 'www.example.test')?.fields,
    { from: 'upstream', server },
    'the dns line names the resolver',
  )

  // A reload replaces the listener's service: the old connection is closed.
  ug.signal('SIGHUP')
  await ug.waitForLine(/ debug dns-tls-closed .*reason=retired/)
  await settleFds(ug)
  const again = await dig(port, 'one.example.test')
  t.equal(again.status, 'NOERROR', 'answered after the reload (a new connection)')
  ug.signal('SIGHUP')
  await ug.waitForLines(/ debug dns-tls-closed .*reason=retired/, 2)
  await settleFds(ug)
  await finish(t, ug, 0)
})

t.test('the resolver named by its address: checked against the IP address SANs', async (t) => {
  const { pki, up } = await dotServer(t)
  const ug = await startDot(t, [`tls://127.0.0.1:${up.tlsPort}`], pki.caFile)
  const port = ug.port('dns')
  const ok = await dig(port, 'one.example.test')
  t.equal(ok.status, 'NOERROR', '127.0.0.1 is in the certificate', { raw: ok.raw })
  t.same(
    ok.answers.map((x) => x.data),
    ['192.0.2.1'],
  )
  const ug6 = await startDot(t, [`tls://[::1]:${up.tlsPort}`], pki.caFile)
  const bad = await dig(ug6.port('dns'), 'two.example.test')
  t.equal(bad.status, 'SERVFAIL', '::1 is not in the certificate: SERVFAIL')
  await ug6.waitForLine(/ warn dns-failed /) // read from ugate's stderr, maybe after dig's answer
  t.match(
    ug6.events('dns-failed')[0]?.fields.error,
    /^tls:\/\/\[::1\]:\d+ tls handshake: peer certificate is not for ::1 \(no such IP address SAN\)$/,
  )
  ug.signal('SIGHUP')
  await ug.waitForLine(/ debug dns-tls-closed .*reason=retired/)
  await settleFds(ug)
  await finish(t, ug, 0)
  await finish(t, ug6, 0)
})

t.test('refused: a wrong name, an untrusted CA, a TLS 1.2 server — SERVFAIL and the reason logged', async (t) => {
  const { pki, up } = await dotServer(t)
  const other = makePki(t, ['dns.example.test'], ['127.0.0.1'])
  const old = await dotServer(t, { maxVersion: 'TLSv1.2' })
  const cases: Array<[string, string, string, RegExp]> = [
    [
      'wrong name',
      `tls://dns.other.test@127.0.0.1:${up.tlsPort}`,
      pki.caFile,
      /tls handshake: peer certificate is not for dns\.other\.test$/,
    ],
    [
      'untrusted CA',
      `tls://dns.example.test@127.0.0.1:${up.tlsPort}`,
      other.caFile,
      new RegExp(`tls handshake: peer certificate not signed by a CA of ${other.caFile.replace(/\./g, '\\.')}$`),
    ],
    [
      'TLS 1.2 only',
      `tls://dns.example.test@127.0.0.1:${old.up.tlsPort}`,
      old.pki.caFile,
      // OpenSSL's server answers a TLS 1.3-only ClientHello with an alert.
      /tls handshake: peer sent alert 70 \(protocol_version\)$/,
    ],
  ]
  for (const [what, server, ca, why] of cases) {
    const ug = await startDot(t, [server], ca)
    const r = await dig(ug.port('dns'), 'www.example.test')
    t.equal(r.status, 'SERVFAIL', `${what}: SERVFAIL`, { raw: r.raw })
    await ug.waitForLine(/ dns-failed /) // read from ugate's stderr, maybe after dig's answer
    const warn = ug.events('dns-failed')[0]
    t.equal(warn?.level, 'warn', `${what}: a dns-failed warning`)
    t.ok(warn?.fields.error?.startsWith(`${server} `), `${what}: it names the resolver`, { warn: warn?.raw })
    t.match(warn?.fields.error, why, `${what}: and why`)
    await finish(t, ug, 0)
  }
  t.equal(up.queries.length + old.up.queries.length, 0, 'no query reached a server that was refused')
})

t.test('the server closes the connection: the unanswered query is sent again on a new one', async (t) => {
  const { pki, up } = await dotServer(t, { closeOnce: 'close.example.test' })
  const ug = await startDot(t, [`tls://dns.example.test@127.0.0.1:${up.tlsPort}`], pki.caFile)
  const port = ug.port('dns')
  t.equal((await dig(port, 'one.example.test')).status, 'NOERROR', 'first answer')
  const r = await dig(port, 'close.example.test')
  t.same(
    r.answers.map((x) => x.data),
    ['192.0.2.99'],
    'answered despite the close',
    { raw: r.raw },
  )
  const asked = up.seen('close.example.test')
  t.equal(asked.length, 2, 'asked twice')
  t.not(asked[0]?.conn, asked[1]?.conn, 'on two connections')
  t.equal(asked[0]?.conn, up.seen('one.example.test')[0]?.conn, 'the first on the connection already open')
  t.match(ug.events('dns-tls-closed')[0]?.fields, { reason: 'closed by the server', answered: '1' })
  ug.signal('SIGHUP')
  await ug.waitForLine(/ debug dns-tls-closed .*reason=retired/)
  await settleFds(ug)
  await finish(t, ug, 0)
})

t.test('the system CA bundle (the default caBundle): every certificate in it is taken', async (t) => {
  const bundle = '/etc/ssl/certs/ca-certificates.crt'
  const count = (readFileSync(bundle, 'utf8').match(/-----BEGIN CERTIFICATE-----/g) ?? []).length
  t.ok(count > 100, `${bundle}: ${count} certificates (Debian's ca-certificates)`)
  const ug = await startConfig(t, {
    log: { level: 'debug' },
    listeners: [listener('dns', 'dns', { servers: ['tls://dns.quad9.net@9.9.9.9'] })],
  })
  // Roots self-signed with SHA-1 or SHA-512 too: they only need to parse.
  t.match(ug.events('dns-tls-ca')[0]?.fields, { file: bundle, certificates: String(count) })
  await finish(t, ug, 0)
})

t.test('config: a missing CA bundle stops the start, naming the file; bad resolvers are refused', async (t) => {
  const missing = join(tempDir(t, 'ugate-dot-'), 'none.pem')
  const file = writeConfigFile(t, {
    listeners: [listener('dns', 'dns', { servers: ['tls://127.0.0.1'], caBundle: missing })],
  })
  const r = runUgate(['run', '--config', file])
  t.not(r.code, 0, 'exits non-zero')
  t.match(
    r.stderr.join('\n'),
    `listener dns: caBundle (for its tls:// resolvers): ${missing}: cannot read: No such file or directory`,
  )
  const bad = writeConfigFile(t, { listeners: [listener('dns', 'dns', { servers: ['tls://dns.quad9.net'] })] })
  const c = runUgate(['check', '--config', bad])
  t.equal(c.code, 2)
  t.match(c.stderr.join('\n'), /"tls:\/\/dns\.quad9\.net": "dns\.quad9\.net" is not an IP address/)
})
