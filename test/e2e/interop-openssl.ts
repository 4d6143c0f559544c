// The openssl negative-case peers (test/lib/openssl.ts) really have the
// property each is for, checked with openssl itself; then the Rust
// ztunnel-like peer refuses each of them as ztunnel would (TLS 1.2, wrong
// ALPN, no client certificate), with a positive control so a refusal is not
// just a broken setup.

import { spawnSync } from 'node:child_process'
import t from 'tap'
import { issueIdentity, makeIdentity, runRustClient, startRustServer } from '../lib/hbone.js'
import { opensslClient, opensslServer } from '../lib/openssl.js'
import { echoServer } from '../lib/servers.js'

const TD = 'mesh.test'

t.test('openssl peers have their property', async (t) => {
  const srv = makeIdentity(t, TD, 'openssl-server')
  const cli = issueIdentity(t, srv, TD, 'openssl-client')
  const tls12 = await opensslServer(t, srv, { tls: '1.2', alpn: 'h2', requireClientCert: true })
  const ok12 = await opensslClient(tls12.port, { id: cli, alpn: 'h2' })
  t.equal(ok12.protocol, 'TLSv1.2', 'TLS 1.2-only server: a default client gets TLS 1.2', { output: ok12.output })
  t.match(tls12.out(), /ALPN protocols selected: h2/, 'and ALPN h2')
  const no13 = await opensslClient(tls12.port, { id: cli, tls: '1.3' })
  t.equal(no13.protocol, undefined, 'a TLS 1.3-only client gets no session from it')
  t.match(no13.output, /protocol version/, 'protocol_version alert')
  const anon = await opensslClient(tls12.port, { root: srv.root })
  t.match(tls12.out(), /peer did not return a certificate/, 'the server demands a client certificate', {
    output: anon.output,
  })

  const h11 = await opensslServer(t, srv, { tls: '1.3', alpn: 'http/1.1' })
  const alpn = await opensslClient(h11.port, { id: cli, alpn: 'http/1.1' })
  t.same([alpn.protocol, alpn.alpn], ['TLSv1.3', 'http/1.1'], 'wrong-ALPN server: TLS 1.3 with ALPN http/1.1', {
    output: alpn.output,
  })
  const c12 = await opensslClient(h11.port, { id: cli, tls: '1.2' })
  t.equal(c12.protocol, undefined, 'a TLS 1.2-only client gets nothing from a TLS 1.3 server')

  const expired = issueIdentity(t, srv, TD, 'old', { expired: true })
  const v = spawnSync('openssl', ['verify', '-CAfile', srv.root, expired.cert], { encoding: 'utf8' })
  t.match(v.stdout + v.stderr, /certificate has expired/, 'the expired certificate is expired (and otherwise valid)')
  const other = issueIdentity(t, srv, 'other.test', 'stranger')
  const san = spawnSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', other.cert], {
    encoding: 'utf8',
  })
  t.match(
    san.stdout,
    /URI:spiffe:\/\/other\.test\/ns\/home\/sa\/stranger/,
    'the wrong-trust-domain certificate has that SAN',
  )
  t.equal(spawnSync('openssl', ['verify', '-CAfile', srv.root, other.cert]).status, 0, 'under the trusted root')
})

t.test('the Rust peer refuses them', async (t) => {
  const srv = makeIdentity(t, TD, 'server')
  const cli = issueIdentity(t, srv, TD, 'client')
  const echo = await echoServer(t)
  const client = (port: number) =>
    runRustClient({ id: cli, roots: srv.root, peer: `127.0.0.1:${port}`, expectSan: srv.id, authority: echo.target })

  const s12 = await opensslServer(t, srv, { tls: '1.2', alpn: 'h2' })
  const r12 = await client(s12.port)
  t.equal(r12.code, 2, 'Rust client refuses a TLS 1.2 server')
  t.match(r12.out.error, /ProtocolVersion/, 'protocol_version alert', { error: r12.out.error })
  const s11 = await opensslServer(t, srv, { tls: '1.3', alpn: 'http/1.1' })
  const r11 = await client(s11.port)
  t.equal(r11.code, 2, 'Rust client refuses a server without ALPN h2')
  t.match(r11.out.error, /ALPN h2|NoApplicationProtocol/, 'no ALPN h2', { error: r11.out.error })

  const rust = await startRustServer(t, { id: srv, roots: srv.root, trustDomain: TD })
  const good = await opensslClient(rust.port, { id: cli, alpn: 'h2' })
  t.same([good.protocol, good.alpn], ['TLSv1.3', 'h2'], 'control: openssl with certificate and h2 gets TLS 1.3 + h2', {
    output: good.output,
  })
  const c12 = await opensslClient(rust.port, { id: cli, alpn: 'h2', tls: '1.2' })
  t.equal(c12.protocol, undefined, 'Rust server refuses TLS 1.2')
  const wrongAlpn = await opensslClient(rust.port, { id: cli, alpn: 'http/1.1' })
  t.equal(wrongAlpn.alpn, undefined, 'Rust server negotiates no ALPN but h2')
  t.match(wrongAlpn.output, /no application protocol|alert/i, 'and refuses the handshake')
  const anon = await opensslClient(rust.port, { root: srv.root, alpn: 'h2' })
  t.notOk(
    rust.events.some((e) => e.event === 'tls' && e.peer === null),
    'no session without a client certificate',
    { output: anon.output },
  )
  await rust.next((e) => e.event === 'refused' && /certificate|NoCertificatesPresented/i.test(String(e.error)))
  t.pass('Rust server logged the missing client certificate')
})
