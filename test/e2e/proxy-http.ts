// curl through an `http` listener: absolute-URI requests for http:// (GET,
// POST with a body, chunked upload) and CONNECT for https:// to a local TLS
// origin whose certificate comes from a test CA made with openssl. Without
// and with users: a wrong or missing password is a 407 with
// Proxy-Authenticate.

import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import {
  CURL_UA,
  TLS_TUNNEL_REASON,
  curl,
  curlHead,
  curlInfo,
  dechunk,
  httpOrigin,
  originBytes,
  originSummary,
  recordingEchoServer,
  recordingServer,
  splitHead,
} from '../lib/http.js'
import { connectReader } from '../lib/proxy.js'
import { prngBytes, refusedPort, sha256, within } from '../lib/servers.js'
import { makePki, parseClientHello } from '../lib/tls.js'
import { finish } from '../lib/ugate.js'
import { tempFile } from '../lib/temp.js'

t.test('absolute-URI requests through an http listener', async (t) => {
  const origin = await httpOrigin(t, { name: 'web' })
  const ug = await startConfig(t, proxyConfig([listener('http', 'http')]))
  const proxy = ['-x', `http://127.0.0.1:${ug.port('http')}`, '-A', CURL_UA]
  const host = `localhost:${origin.port}`

  // GET: the origin gets origin-form, Proxy-Connection dropped, Connection: close added.
  const get = await curl([...proxy, `http://${host}/index.html?x=1`])
  t.equal(get.code, 0, 'GET: curl exit 0', curlInfo(get))
  t.equal(get.w.http_code, 200, 'GET: 200')
  const r0 = await origin.request(0)
  t.equal(get.stdout.toString(), originSummary('web', r0), 'GET: body from the origin')
  const raw0 = r0.conn.received()
  t.equal(
    raw0.toString('latin1'),
    curlHead('GET', '/index.html?x=1', host, ['Connection: close']),
    'GET: origin got the rewritten head, exactly',
  )
  let c = (await waitConnsOf(ug, 'http', 1))[0]!
  t.match(
    c.fields,
    {
      listener: 'http',
      src: /^127\.0\.0\.1:\d+$/,
      dst: host,
      up: String(raw0.length),
      down: String(Number(get.w.size_header) + Number(get.w.size_download)),
      reason: 'eof',
      rule: 'default',
      action: 'direct',
    },
    'GET: access line',
  )
  t.equal(c.fields.user, undefined, 'GET: no user=')

  // POST with a 300 kB body.
  const body = prngBytes(0xb0d1, 300_000)
  const file = tempFile(t, 'body.bin', body)
  const post = await curl([...proxy, '--data-binary', `@${file}`, `http://${host}/post`])
  t.equal(post.code, 0, 'POST: curl exit 0', curlInfo(post))
  const r1 = await origin.request(1)
  t.equal(post.stdout.toString(), originSummary('web', r1), 'POST: origin answered with the body hash')
  const raw1 = r1.conn.received()
  const head1 = curlHead('POST', '/post', host, [
    `Content-Length: ${body.length}`,
    'Content-Type: application/x-www-form-urlencoded',
    'Connection: close',
  ])
  t.equal(splitHead(raw1).head, head1, 'POST: rewritten head')
  t.ok(raw1.equals(Buffer.concat([Buffer.from(head1, 'latin1'), body])), 'POST: exactly head + the 300 kB body')
  c = (await waitConnsOf(ug, 'http', 2))[1]!
  t.match(c.fields, { dst: host, up: String(raw1.length), reason: 'eof' }, 'POST: access line')

  // Chunked upload.
  const ch = await curl([
    ...proxy,
    '-H',
    'Transfer-Encoding: chunked',
    '--data-binary',
    `@${file}`,
    `http://${host}/chunked`,
  ])
  t.equal(ch.code, 0, 'chunked: curl exit 0', curlInfo(ch))
  const r2 = await origin.request(2)
  t.equal(sha256(r2.body), sha256(body), 'chunked: decoded body intact')
  const raw2 = splitHead(r2.conn.received())
  t.equal(
    raw2.head,
    curlHead('POST', '/chunked', host, [
      'Transfer-Encoding: chunked',
      'Content-Type: application/x-www-form-urlencoded',
      'Connection: close',
    ]),
    'chunked: rewritten head keeps Transfer-Encoding',
  )
  t.equal(sha256(dechunk(raw2.body)), sha256(body), 'chunked: the chunk stream reached the origin unchanged')
  c = (await waitConnsOf(ug, 'http', 3))[2]!
  t.match(c.fields, { dst: host, up: String(r2.conn.bytes), reason: 'eof' }, 'chunked: access line')

  // Large download, default port form (origin port given explicitly).
  const dl = await curl([...proxy, `http://127.0.0.1:${origin.port}/bytes/3000000`])
  t.equal(dl.code, 0, 'download: curl exit 0', curlInfo(dl))
  t.equal(sha256(dl.stdout), sha256(originBytes(3_000_000)), 'download: 3 MB intact')
  c = (await waitConnsOf(ug, 'http', 4))[3]!
  t.match(c.fields, { dst: `127.0.0.1:${origin.port}`, reason: 'eof' }, 'download: access line')
  t.ok(Number(c.fields.down) > 3_000_000, 'download: down counts the response')

  await finish(t, ug, 4)
})

t.test('CONNECT for https:// to a TLS origin', async (t) => {
  const pki = makePki(t, ['localhost', 'a.test'])
  const origin = await httpOrigin(t, { name: 'tls', tls: { key: pki.keyPem, cert: pki.certPem } })
  const ug = await startConfig(t, proxyConfig([listener('http', 'http')]))
  const proxy = ['-x', `http://127.0.0.1:${ug.port('http')}`, '-A', CURL_UA, '--cacert', pki.caFile]
  const host = `localhost:${origin.port}`

  const get = await curl([...proxy, `https://${host}/secure`])
  t.equal(get.code, 0, 'https GET: curl exit 0 (certificate verified against the test CA)', curlInfo(get))
  t.equal(get.w.http_connect, 200, 'CONNECT answered 200')
  t.equal(get.w.http_code, 200, 'origin answered 200')
  const r0 = await origin.request(0)
  t.equal(get.stdout.toString(), originSummary('tls', r0), 'body from the TLS origin')
  t.equal(r0.rawHeaders[1], host, 'Host as curl sent it (end to end inside TLS)')
  const hello = parseClientHello(r0.conn.received())
  t.ok(hello, 'origin received a ClientHello first: nothing of the CONNECT head leaked into the tunnel')
  t.equal(hello?.sni, 'localhost', 'ClientHello SNI is localhost')
  let c = (await waitConnsOf(ug, 'http', 1))[0]!
  t.match(
    c.fields,
    { dst: host, up: String(r0.conn.bytes), reason: TLS_TUNNEL_REASON, rule: 'default', action: 'direct' },
    'access line',
  )

  // POST and a download through the tunnel.
  const body = prngBytes(0x7115, 200_000)
  const file = tempFile(t, 'body.bin', body)
  const post = await curl([...proxy, '--data-binary', `@${file}`, `https://${host}/post`])
  t.equal(post.code, 0, 'https POST: curl exit 0', curlInfo(post))
  const r1 = await origin.request(1)
  t.equal(sha256(r1.body), sha256(body), 'https POST: body intact')
  const dl = await curl([...proxy, `https://${host}/bytes/2000000`])
  t.equal(dl.code, 0, 'https download: curl exit 0', curlInfo(dl))
  t.equal(sha256(dl.stdout), sha256(originBytes(2_000_000)), 'https download: 2 MB intact')

  // A port nothing listens on: the CONNECT is answered 502, the log says why.
  const dead = await refusedPort()
  const refused = await curl([...proxy, `https://127.0.0.1:${dead}/`])
  t.equal(refused.code, 56, 'CONNECT to a closed port: curl exit 56', curlInfo(refused))
  t.equal(refused.w.http_connect, 502, 'CONNECT to a closed port: 502')
  c = (await waitConnsOf(ug, 'http', 4))[3]!
  t.match(
    c.fields,
    { dst: `127.0.0.1:${dead}`, up: '0', down: '0', reason: 'connect-error:ECONNREFUSED' },
    'refused dial: access line',
  )
  await finish(t, ug, 4)
})

t.test('http listener with users: Basic auth, 407 otherwise', async (t) => {
  const pki = makePki(t, ['localhost'])
  const origin = await httpOrigin(t, { name: 'plain' })
  const tlsOrigin = await httpOrigin(t, { name: 'tls', tls: { key: pki.keyPem, cert: pki.certPem } })
  const ug = await startConfig(
    t,
    proxyConfig([listener('http-auth', 'http', { users: [{ username: 'carol', password: 'pa:ss wörd' }] })]),
  )
  const p = ug.port('http-auth')
  const base = ['-A', CURL_UA, '--cacert', pki.caFile]
  let n = 0

  const ok = await curl([
    ...base,
    '-x',
    `http://127.0.0.1:${p}`,
    '-U',
    'carol:pa:ss wörd',
    `http://localhost:${origin.port}/a`,
  ])
  t.equal(ok.code, 0, 'http:// with -U: curl exit 0', curlInfo(ok))
  t.equal(ok.w.http_code, 200, 'http:// with -U: 200')
  const r0 = await origin.request(0)
  t.equal(
    r0.conn.received().toString('latin1'),
    curlHead('GET', '/a', `localhost:${origin.port}`, ['Connection: close']),
    'Proxy-Authorization is not forwarded to the origin',
  )
  let c = (await waitConnsOf(ug, 'http-auth', ++n))[n - 1]!
  t.match(c.fields, { user: 'carol', reason: 'eof', dst: `localhost:${origin.port}` }, 'access line user=carol')

  const okTls = await curl([
    ...base,
    '-x',
    `http://127.0.0.1:${p}`,
    '--proxy-user',
    'carol:pa:ss wörd',
    `https://localhost:${tlsOrigin.port}/b`,
  ])
  t.equal(okTls.code, 0, 'https:// with --proxy-user: curl exit 0', curlInfo(okTls))
  t.equal(okTls.w.http_connect, 200, 'CONNECT with credentials: 200')
  c = (await waitConnsOf(ug, 'http-auth', ++n))[n - 1]!
  t.match(
    c.fields,
    { user: 'carol', reason: TLS_TUNNEL_REASON, dst: `localhost:${tlsOrigin.port}` },
    'CONNECT access line user=carol',
  )

  for (const [what, creds] of [
    ['wrong password', ['-U', 'carol:nope']],
    ['unknown user', ['-U', 'dave:pa:ss wörd']],
    ['no credentials', []],
  ] as const) {
    const r = await curl([...base, '-x', `http://127.0.0.1:${p}`, ...creds, `http://localhost:${origin.port}/denied`])
    t.equal(r.code, 0, `${what}, http://: curl exit 0`, curlInfo(r))
    t.equal(r.w.http_code, 407, `${what}, http://: 407`)
    c = (await waitConnsOf(ug, 'http-auth', ++n))[n - 1]!
    t.match(c.fields, { dst: '-', up: '0', down: '0', reason: 'auth-failed' }, `${what}: reason=auth-failed`)
    t.equal(c.fields.user, undefined, `${what}: no user=`)
    const s = await curl([
      ...base,
      '-x',
      `http://127.0.0.1:${p}`,
      ...creds,
      `https://localhost:${tlsOrigin.port}/denied`,
    ])
    t.equal(s.code, 56, `${what}, https://: curl exit 56 (CONNECT refused)`, curlInfo(s))
    t.equal(s.w.http_connect, 407, `${what}, https://: CONNECT answered 407`)
    c = (await waitConnsOf(ug, 'http-auth', ++n))[n - 1]!
    t.equal(c.fields.reason, 'auth-failed', `${what}, CONNECT: reason=auth-failed`)
  }

  // The 407 by hand: status line, Proxy-Authenticate, Connection: close, then FIN.
  const raw = await connectReader(p)
  raw.sock.write(
    `GET http://localhost:${origin.port}/ HTTP/1.1\r\nHost: localhost\r\nProxy-Authorization: Basic ${Buffer.from('carol:bad').toString('base64')}\r\n\r\n`,
  )
  const res = await within(raw.rest(), 10_000, 'raw 407 response')
  const head = splitHead(res.data).head
  t.match(head, /^HTTP\/1\.1 407 Proxy Authentication Required\r\n/, 'raw: status line 407')
  t.match(head, /\r\nProxy-Authenticate: Basic realm="ugate"\r\n/, 'raw: Proxy-Authenticate: Basic realm="ugate"')
  t.match(head, /\r\nConnection: close\r\n/, 'raw: Connection: close')
  t.ok(res.ended, 'raw: the proxy closes after the 407')
  c = (await waitConnsOf(ug, 'http-auth', ++n))[n - 1]!
  t.equal(c.fields.reason, 'auth-failed', 'raw: reason=auth-failed')
  t.equal(origin.requests.length, 1, 'denied requests never reached the origin')
  t.equal(tlsOrigin.conns.length, 1, 'denied CONNECTs never reached the TLS origin')
  await finish(t, ug, n)
})

t.test('CONNECT with data in the same segment, and to an IPv6 literal', async (t) => {
  const pki = makePki(t, ['localhost'])
  const echo = await recordingEchoServer(t)
  const v6 = await httpOrigin(t, { name: 'v6', host: '::1', tls: { key: pki.keyPem, cert: pki.certPem } })
  const ug = await startConfig(t, proxyConfig([listener('http', 'http')]))
  const payload = prngBytes(0xc0e1, 100_000)
  const r = await connectReader(ug.port('http'))
  r.sock.write(Buffer.concat([Buffer.from(`CONNECT ${echo.target} HTTP/1.1\r\nHost: ${echo.target}\r\n\r\n`), payload]))
  const est = 'HTTP/1.1 200 Connection established\r\n\r\n'
  t.equal((await within(r.read(est.length), 10_000, 'CONNECT reply')).toString('latin1'), est, 'exact CONNECT reply')
  const back = await within(r.read(payload.length), 10_000, 'echo through the tunnel')
  t.ok(back.equals(payload), 'data sent with the CONNECT head went through the tunnel intact')
  r.sock.end()
  await within(r.rest(), 10_000, 'tunnel closed')
  t.ok((await echo.conn(0)).received().equals(payload), 'the target got exactly the payload, none of the head')
  let c = (await ug.waitForConns(1))[0]!
  t.match(
    c.fields,
    { dst: echo.target, up: String(payload.length), down: String(payload.length), reason: 'eof' },
    'access line',
  )

  const res = await curl([
    '-x',
    `http://127.0.0.1:${ug.port('http')}`,
    '--cacert',
    pki.caFile,
    `https://[::1]:${v6.port}/six`,
  ])
  t.equal(res.code, 0, 'curl https://[::1]:PORT/ through CONNECT', curlInfo(res))
  t.equal(res.stdout.toString(), originSummary('v6', await v6.request(0)), 'answer from the IPv6 origin')
  c = (await ug.waitForConns(2))[1]!
  t.match(c.fields, { dst: `[::1]:${v6.port}`, reason: TLS_TUNNEL_REASON }, 'access line dst=[::1]:PORT')
  await finish(t, ug, 2)
})

// RFC 9110 11.7.1: a proxy consumes Proxy-Authorization; it must not reach
// the origin. ugate rewrites only the first request of a connection; a
// second request pipelined behind it is relayed raw, in absolute-form and
// with the client's proxy credentials.
t.test('a pipelined second request does not carry the proxy credentials to the origin', async (t) => {
  // A plain origin: answers the first request head it sees, then closes.
  const origin = await recordingServer(t, {
    onConn: (rc) => {
      void rc
        .waitBytes(1)
        .then(async () => {
          while (!rc.received().includes('\r\n\r\n')) await rc.waitBytes(rc.bytes + 1)
          rc.socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
        })
        .catch(() => {})
    },
  })
  const ug = await startConfig(
    t,
    proxyConfig([listener('http-auth', 'http', { users: [{ username: 'pip', password: 'secret' }] })]),
  )
  const auth = `Proxy-Authorization: Basic ${Buffer.from('pip:secret').toString('base64')}\r\n`
  const target = `http://${origin.target}`
  const r = await connectReader(ug.port('http-auth'))
  r.sock.write(
    `GET ${target}/first HTTP/1.1\r\nHost: x\r\n${auth}\r\nGET ${target}/second HTTP/1.1\r\nHost: x\r\n${auth}\r\n`,
  )
  const res = await within(r.rest(), 10_000, 'answer and close')
  r.sock.end()
  t.match(res.data.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/, 'the first request is answered')
  const c = (await ug.waitForConns(1))[0]!
  t.match(c.fields, { user: 'pip', dst: origin.target }, 'access line')
  const oc = await origin.conn(0)
  await within(oc.closed, 10_000, 'origin connection closed')
  const atOrigin = oc.received().toString('latin1')
  t.match(atOrigin, /^GET \/first HTTP\/1\.1\r\n/, 'the first request arrives in origin-form')
  t.notMatch(atOrigin, /Proxy-Authorization/i, 'the origin never sees Proxy-Authorization', { atOrigin })
  t.notMatch(atOrigin, /GET http:\/\//, 'the origin never gets an absolute-form request line', { atOrigin })
  await finish(t, ug, 1)
})

// The relay reads exactly the rest of a Content-Length body from the client
// (its up limit): bytes behind it are not the origin's. The body is small, so
// the relay copies it (no read is big enough to switch to splice): the limit
// holds in copy mode.
t.test('the rest of a short body after the head: exactly Content-Length bytes reach the origin', async (t) => {
  const origin = await recordingServer(t, {
    onConn: (rc) => {
      void (async () => {
        while (!rc.received().includes('\r\n\r\nabcdefghij')) await rc.waitBytes(rc.bytes + 1)
        rc.socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
      })().catch(() => {})
    },
  })
  const ug = await startConfig(t, proxyConfig([listener('http', 'http')]))
  const r = await connectReader(ug.port('http'))
  r.sock.write(`POST http://${origin.target}/up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc`)
  const oc = await origin.conn(0)
  while (!oc.received().includes('\r\n\r\nabc')) await within(oc.waitBytes(oc.bytes + 1), 10_000, 'head + abc')
  // The relay has the connection now: the rest of the body, then bytes it must not read.
  r.sock.write('defghijNOT-THE-BODY')
  const c = (await ug.waitForConns(1))[0]!
  await within(oc.closed, 10_000, 'origin connection closed')
  const atOrigin = oc.received().toString('latin1')
  const headLen = atOrigin.indexOf('\r\n\r\n') + 4
  t.equal(atOrigin.slice(headLen), 'abcdefghij', 'the origin got the body and nothing behind it')
  t.match(c.fields, { up: String(headLen + 10), reason: 'eof', splice: '0' }, 'access line: up counts head + body')
  r.sock.destroy()
  await finish(t, ug, 1)
})
