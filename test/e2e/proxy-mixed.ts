// A `mixed` listener: SOCKS5, SOCKS4/4a and HTTP (absolute-URI and
// CONNECT) on one port, told apart by the first byte; with users, each
// protocol authenticates its own way.

import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { CURL_UA, TLS_TUNNEL_REASON, curl, curlHead, curlInfo, httpOrigin, originSummary } from '../lib/http.js'
import { connectReader } from '../lib/proxy.js'
import { within } from '../lib/servers.js'
import { makePki, parseClientHello } from '../lib/tls.js'
import { finish } from '../lib/ugate.js'

t.test('SOCKS5, SOCKS4, SOCKS4a and HTTP on one mixed port', async (t) => {
  const pki = makePki(t, ['localhost'])
  const origin = await httpOrigin(t, { name: 'mixed-origin' })
  const tlsOrigin = await httpOrigin(t, { name: 'mixed-tls', tls: { key: pki.keyPem, cert: pki.certPem } })
  const ug = await startConfig(t, proxyConfig([listener('mix', 'mixed')]))
  const proxy = `127.0.0.1:${ug.port('mix')}`
  const cases: Array<[string, string[], string, string]> = [
    ['SOCKS5 (--socks5-hostname)', ['--socks5-hostname', proxy], 'localhost', ''],
    ['SOCKS5 (--socks5)', ['--socks5', proxy], '127.0.0.1', ''],
    ['SOCKS4', ['--socks4', proxy], '127.0.0.1', ''],
    ['SOCKS4a', ['--socks4a', proxy], 'localhost', ''],
    ['HTTP absolute-URI', ['-x', `http://${proxy}`], 'localhost', 'Connection: close'],
  ]
  let n = 0
  for (const [what, args, host, extra] of cases) {
    const path = `/${n}`
    const r = await curl([...args, '-A', CURL_UA, `http://${host}:${origin.port}${path}`])
    t.equal(r.code, 0, `${what}: curl exit 0`, curlInfo(r))
    const req = await within(origin.request(n), 10_000, `${what}: request at the origin`)
    t.equal(r.stdout.toString(), originSummary('mixed-origin', req), `${what}: answer from the origin`)
    t.equal(
      req.conn.received().toString('latin1'),
      curlHead('GET', path, `${host}:${origin.port}`, extra ? [extra] : []),
      `${what}: exact request bytes at the origin`,
    )
    const c = (await waitConnsOf(ug, 'mix', ++n))[n - 1]!
    t.match(
      c.fields,
      { listener: 'mix', dst: `${host}:${origin.port}`, up: String(req.conn.bytes), reason: 'eof', action: 'direct' },
      `${what}: access line`,
    )
  }

  const s = await curl(['-x', `http://${proxy}`, '--cacert', pki.caFile, `https://localhost:${tlsOrigin.port}/tls`])
  t.equal(s.code, 0, 'HTTP CONNECT: curl exit 0', curlInfo(s))
  t.equal(s.w.http_connect, 200, 'HTTP CONNECT: 200')
  const tr = await tlsOrigin.request(0)
  t.equal(s.stdout.toString(), originSummary('mixed-tls', tr), 'HTTP CONNECT: answer from the TLS origin')
  t.equal(
    parseClientHello(tr.conn.received())?.sni,
    'localhost',
    'HTTP CONNECT: the tunnel starts with the ClientHello',
  )
  let c = (await waitConnsOf(ug, 'mix', ++n))[n - 1]!
  t.match(c.fields, { dst: `localhost:${tlsOrigin.port}`, reason: TLS_TUNNEL_REASON }, 'HTTP CONNECT: access line')

  // A first byte that is neither 0x04, 0x05 nor an HTTP method: the HTTP side answers 400.
  const raw = await connectReader(ug.port('mix'))
  raw.sock.write(Buffer.from([0x00, 0x01, 0x02, 0x03, 0x0d, 0x0a, 0x0d, 0x0a]))
  const res = await within(raw.rest(), 10_000, 'garbage: answer and close')
  t.match(res.data.toString('latin1'), /^HTTP\/1\.1 400 Bad Request\r\n/, 'garbage: 400 Bad Request')
  c = (await waitConnsOf(ug, 'mix', ++n))[n - 1]!
  t.match(c.fields, { dst: '-', reason: 'http-invalid' }, 'garbage: reason=http-invalid')
  await finish(t, ug, n)
})

t.test('mixed listener with users', async (t) => {
  const origin = await httpOrigin(t, { name: 'm' })
  const ug = await startConfig(
    t,
    proxyConfig([listener('mix-auth', 'mixed', { users: [{ username: 'u1', password: 'p1' }] })]),
  )
  const proxy = `127.0.0.1:${ug.port('mix-auth')}`
  const url = `http://localhost:${origin.port}/`
  const cases: Array<[string, string[], number | null, string]> = [
    ['SOCKS5 with -U', ['--socks5-hostname', proxy, '-U', 'u1:p1'], 0, 'eof'],
    ['HTTP with -U', ['-x', `http://${proxy}`, '-U', 'u1:p1'], 0, 'eof'],
    ['SOCKS5 wrong password', ['--socks5-hostname', proxy, '-U', 'u1:p2'], 97, 'auth-failed'],
    ['HTTP wrong password', ['-x', `http://${proxy}`, '-U', 'u1:p2'], 0, 'auth-failed'],
    ['SOCKS4 (no password possible)', ['--socks4a', proxy], 97, 'auth-required'],
  ]
  let n = 0
  for (const [what, args, code, reason] of cases) {
    const r = await curl([...args, url])
    t.equal(r.code, code, `${what}: curl exit ${code}`, curlInfo(r))
    if (what.startsWith('HTTP'))
      t.equal(r.w.http_code, reason === 'eof' ? 200 : 407, `${what}: HTTP ${reason === 'eof' ? 200 : 407}`)
    const c = (await waitConnsOf(ug, 'mix-auth', ++n))[n - 1]!
    t.equal(c.fields.reason, reason, `${what}: reason=${reason}`)
    t.equal(c.fields.user, reason === 'eof' ? 'u1' : undefined, `${what}: user field`)
  }
  t.equal(origin.requests.length, 2, 'only the authenticated requests reached the origin')
  await finish(t, ug, n)
})
