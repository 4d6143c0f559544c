// curl through a `socks` listener: SOCKS5 (local and proxy-side name
// resolution), SOCKS4 and SOCKS4a, without and with users. The origin
// records the exact bytes it got; the access lines are checked field by
// field. Wrong or missing credentials fail the way the protocols say.

import t from 'tap'
import type { Test } from 'tap'
import { connsOf, listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import {
  CURL_UA,
  curl,
  curlHead,
  curlInfo,
  dechunk,
  httpOrigin,
  originBytes,
  originSummary,
  recordingEchoServer,
  splitHead,
} from '../lib/http.js'
import type { Origin } from '../lib/http.js'
import { connectReader, socks5Connect } from '../lib/proxy.js'
import { prngBytes, sha256, within } from '../lib/servers.js'
import { finish } from '../lib/ugate.js'
import type { Ugate } from '../lib/ugate.js'
import { tempFile } from '../lib/temp.js'

const USERS = [
  { username: 'alice', password: 's3cret pass' },
  { username: 'bob', password: 'hunter2' },
]

/**
 * One GET through the proxy with curl; checks curl's result, the exact
 * request bytes at the origin and the access line. Returns the conn line.
 */
async function getThrough(
  t: Test,
  ug: Ugate,
  origin: Origin,
  opts: { lname: string; proxyArgs: string[]; urlHost: string; dst: string; user?: string; what: string },
) {
  const path = `/${opts.what.replace(/[^a-z0-9]+/gi, '-')}?q=1`
  const before = origin.requests.length
  const nConns = connsOf(ug, opts.lname).length
  const hostPart = opts.urlHost.includes(':') ? `[${opts.urlHost}]` : opts.urlHost
  const r = await curl([...opts.proxyArgs, '-A', CURL_UA, `http://${hostPart}:${origin.port}${path}`])
  t.equal(r.code, 0, `${opts.what}: curl exit 0`, curlInfo(r))
  t.equal(r.w.http_code, 200, `${opts.what}: HTTP 200`)
  const req = await within(origin.request(before), 10_000, `${opts.what}: request at the origin`)
  t.equal(r.stdout.toString(), originSummary(origin.name, req), `${opts.what}: curl got the origin's answer`)
  const hostHeader = `${hostPart}:${origin.port}`
  const expected = curlHead('GET', path, hostHeader)
  const conns = await waitConnsOf(ug, opts.lname, nConns + 1)
  const got = req.conn.received()
  t.equal(got.toString('latin1'), expected, `${opts.what}: origin got curl's exact request bytes`)
  const c = conns[nConns]!
  const want: Record<string, unknown> = {
    listener: opts.lname,
    src: /^127\.0\.0\.1:\d+$|^\[::1\]:\d+$/,
    dst: opts.dst,
    up: String(got.length),
    down: String(Number(r.w.size_header) + Number(r.w.size_download)),
    reason: 'eof',
    splice: /^[01]$/,
    rule: 'default',
    action: 'direct',
  }
  t.match(c.fields, want, `${opts.what}: access line`)
  t.equal(c.fields.user, opts.user, `${opts.what}: access line user=${opts.user ?? '(none)'}`)
  t.equal(c.fields.via, undefined, `${opts.what}: no via= for a direct connection`)
  return c
}

t.test('curl through a socks listener without users', async (t) => {
  const origin = await httpOrigin(t, { name: 'plain' })
  const ug = await startConfig(t, proxyConfig([listener('socks', 'socks')]))
  const p = ug.port('socks')
  const cases: Array<[string, string[], string, string]> = [
    ['--socks5 (curl resolves)', ['--socks5', `127.0.0.1:${p}`], '127.0.0.1', `127.0.0.1:${origin.port}`],
    ['--socks5-hostname', ['--socks5-hostname', `127.0.0.1:${p}`], 'localhost', `localhost:${origin.port}`],
    ['-x socks5h://', ['-x', `socks5h://127.0.0.1:${p}`], 'localhost', `localhost:${origin.port}`],
    ['--socks4', ['--socks4', `127.0.0.1:${p}`], '127.0.0.1', `127.0.0.1:${origin.port}`],
    ['--socks4a', ['--socks4a', `127.0.0.1:${p}`], 'localhost', `localhost:${origin.port}`],
  ]
  for (const [what, proxyArgs, urlHost, dst] of cases) {
    await getThrough(t, ug, origin, { lname: 'socks', proxyArgs, urlHost, dst, what })
  }
  await finish(t, ug, cases.length)
})

t.test('curl through a socks listener with users', async (t) => {
  const origin = await httpOrigin(t, { name: 'auth' })
  const ug = await startConfig(t, proxyConfig([listener('socks-auth', 'socks', { users: USERS })]))
  const p = ug.port('socks-auth')
  const proxy = `127.0.0.1:${p}`
  const url = `http://127.0.0.1:${origin.port}/secret`
  await getThrough(t, ug, origin, {
    lname: 'socks-auth',
    proxyArgs: ['--socks5-hostname', proxy, '-U', 'alice:s3cret pass'],
    urlHost: 'localhost',
    dst: `localhost:${origin.port}`,
    user: 'alice',
    what: '--socks5-hostname -U alice',
  })
  await getThrough(t, ug, origin, {
    lname: 'socks-auth',
    proxyArgs: ['-x', `socks5h://bob:hunter2@${proxy}`],
    urlHost: 'localhost',
    dst: `localhost:${origin.port}`,
    user: 'bob',
    what: 'socks5h://bob:hunter2@',
  })
  await getThrough(t, ug, origin, {
    lname: 'socks-auth',
    proxyArgs: ['--socks5', proxy, '--proxy-user', 'bob:hunter2'],
    urlHost: '127.0.0.1',
    dst: `127.0.0.1:${origin.port}`,
    user: 'bob',
    what: '--socks5 --proxy-user bob',
  })
  let n = 3
  const accepted = origin.conns.length

  // Wrong password: RFC 1929 status 0x01, curl error 97 (CURLE_PROXY).
  const bad = await curl(['--socks5-hostname', proxy, '-U', 'alice:wrong', url])
  t.equal(bad.code, 97, 'wrong password: curl exit 97 (CURLE_PROXY)', curlInfo(bad))
  t.match(bad.stderr, /User was rejected by the SOCKS5 server \(1 1\)/, 'curl: user rejected, status 0x01')
  let c = (await waitConnsOf(ug, 'socks-auth', ++n))[n - 1]!
  t.match(
    c.fields,
    { dst: '-', up: '0', down: '0', reason: 'auth-failed', splice: '0' },
    'wrong password: reason=auth-failed',
  )
  t.equal(c.fields.user, undefined, 'no user= after a failed login')

  // Unknown user.
  const unknown = await curl(['--socks5', proxy, '-U', 'mallory:hunter2', url])
  t.equal(unknown.code, 97, 'unknown user: curl exit 97', curlInfo(unknown))
  c = (await waitConnsOf(ug, 'socks-auth', ++n))[n - 1]!
  t.equal(c.fields.reason, 'auth-failed', 'unknown user: reason=auth-failed')

  // No credentials: no acceptable method (0xFF).
  const none = await curl(['--socks5', proxy, url])
  t.equal(none.code, 97, 'no credentials: curl exit 97', curlInfo(none))
  t.match(none.stderr, /No authentication method was acceptable/, 'curl: no acceptable method')
  c = (await waitConnsOf(ug, 'socks-auth', ++n))[n - 1]!
  t.match(c.fields, { dst: '-', reason: 'auth-required' }, 'no credentials: reason=auth-required')

  // SOCKS4 cannot carry a password: rejected (0x5B) with users configured.
  for (const flag of ['--socks4', '--socks4a']) {
    const s4 = await curl([flag, proxy, url])
    t.equal(s4.code, 97, `${flag} to a listener with users: curl exit 97`, curlInfo(s4))
    t.match(s4.stderr, /\(91\)/, `${flag}: request rejected (91 = 0x5B)`)
    c = (await waitConnsOf(ug, 'socks-auth', ++n))[n - 1]!
    t.match(c.fields, { dst: `127.0.0.1:${origin.port}`, reason: 'auth-required' }, `${flag}: reason=auth-required`)
  }

  // The same by hand: the exact bytes of each refusal.
  const wrong = await socks5Connect(p, { host: '127.0.0.1', port: origin.port }, { user: 'alice', pass: 'nope' })
  t.same([...wrong.choice], [5, 2], 'raw: server picks username/password (0x02)')
  t.same([...wrong.auth!], [1, 1], 'raw: RFC 1929 status 0x01 for a wrong password')
  const after = await within(wrong.reader.rest(), 10_000, 'raw: closed after the failed login')
  t.equal(after.data.length, 0, 'raw: nothing after the status')
  c = (await waitConnsOf(ug, 'socks-auth', ++n))[n - 1]!
  t.equal(c.fields.reason, 'auth-failed', 'raw wrong password: reason=auth-failed')

  const noAuth = await socks5Connect(p, { host: '127.0.0.1', port: origin.port })
  t.same([...noAuth.choice], [5, 0xff], 'raw: only "no auth" offered: method 0xFF')
  await within(noAuth.reader.rest(), 10_000, 'raw: closed after 0xFF')
  c = (await waitConnsOf(ug, 'socks-auth', ++n))[n - 1]!
  t.equal(c.fields.reason, 'auth-required', 'raw no auth: reason=auth-required')

  const good = await socks5Connect(p, { host: '127.0.0.1', port: origin.port }, { user: 'bob', pass: 'hunter2' })
  t.same([...good.auth!], [1, 0], 'raw: RFC 1929 status 0x00 for the right password')
  t.same([...good.reply!.subarray(0, 4)], [5, 0, 0, 1], 'raw: CONNECT succeeded, IPv4 bound address')
  t.equal(good.reply!.readUInt16BE(8) > 0, true, 'raw: bound port is set')
  good.reader.sock.end(`GET /bytes/5000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  const res = await within(good.reader.rest(), 10_000, 'raw: response through the tunnel')
  t.equal(sha256(splitHead(res.data).body), sha256(originBytes(5000)), 'raw: 5000 origin bytes intact')
  c = (await waitConnsOf(ug, 'socks-auth', ++n))[n - 1]!
  t.match(c.fields, { user: 'bob', reason: 'eof', dst: `127.0.0.1:${origin.port}` }, 'raw good login: access line')

  t.equal(origin.conns.length, accepted + 1, 'refused clients never reached the origin')
  await finish(t, ug, n)
})

t.test('POST and chunked upload through SOCKS5 arrive byte for byte', async (t) => {
  const origin = await httpOrigin(t, { name: 'upload' })
  const ug = await startConfig(t, proxyConfig([listener('socks', 'socks')]))
  const proxy = ['--socks5-hostname', `127.0.0.1:${ug.port('socks')}`, '-A', CURL_UA]
  const body = prngBytes(0x5eed, 300_000)
  const file = tempFile(t, 'body.bin', body)
  const host = `localhost:${origin.port}`

  const post = await curl([...proxy, '--data-binary', `@${file}`, `http://${host}/post`])
  t.equal(post.code, 0, 'POST: curl exit 0', curlInfo(post))
  const r1 = await origin.request(0)
  t.equal(post.stdout.toString(), originSummary('upload', r1), 'POST: origin answered with the body hash')
  t.equal(r1.body.length, body.length, 'POST: origin got the whole body')
  t.equal(sha256(r1.body), sha256(body), 'POST: body intact')
  const raw1 = r1.conn.received()
  const head1 = curlHead('POST', '/post', host, [
    `Content-Length: ${body.length}`,
    'Content-Type: application/x-www-form-urlencoded',
  ])
  t.equal(splitHead(raw1).head, head1, 'POST: exact request head')
  t.ok(raw1.equals(Buffer.concat([Buffer.from(head1, 'latin1'), body])), 'POST: the origin got exactly head + body')

  const chunked = await curl([
    ...proxy,
    '-H',
    'Transfer-Encoding: chunked',
    '--data-binary',
    `@${file}`,
    `http://${host}/chunked`,
  ])
  t.equal(chunked.code, 0, 'chunked: curl exit 0', curlInfo(chunked))
  const r2 = await origin.request(1)
  t.equal(sha256(r2.body), sha256(body), 'chunked: decoded body intact')
  const raw2 = splitHead(r2.conn.received())
  t.equal(
    raw2.head,
    curlHead('POST', '/chunked', host, [
      'Transfer-Encoding: chunked',
      'Content-Type: application/x-www-form-urlencoded',
    ]),
    'chunked: exact request head',
  )
  t.equal(sha256(dechunk(raw2.body)), sha256(body), 'chunked: the chunk stream on the wire decodes to the body')

  const conns = await ug.waitForConns(2)
  t.match(conns[0]!.fields, { reason: 'eof', up: String(raw1.length), dst: host }, 'POST access line counts the upload')
  t.match(
    conns[1]!.fields,
    { reason: 'eof', up: String(r2.conn.bytes), dst: host },
    'chunked access line counts the upload',
  )

  // Download 2 MiB through SOCKS4a.
  const dl = await curl(['--socks4a', `127.0.0.1:${ug.port('socks')}`, `http://localhost:${origin.port}/bytes/2097152`])
  t.equal(dl.code, 0, 'SOCKS4a download: curl exit 0', curlInfo(dl))
  t.equal(sha256(dl.stdout), sha256(originBytes(2097152)), 'SOCKS4a download: 2 MiB intact')
  await finish(t, ug, 3)
})

t.test('SOCKS5 over IPv6 loopback', async (t) => {
  const origin = await httpOrigin(t, { name: 'v6', host: '::1' })
  const ug = await startConfig(t, proxyConfig([listener('socks6', 'socks', { listen: '[::1]:0' })]))
  await getThrough(t, ug, origin, {
    lname: 'socks6',
    proxyArgs: ['--socks5', `[::1]:${ug.port('socks6')}`],
    urlHost: '::1',
    dst: `[::1]:${origin.port}`,
    what: '--socks5 [::1] to [::1]',
  })
  await finish(t, ug, 1)
})

t.test('handshake and first data in one segment (optimistic data)', async (t) => {
  const echo = await recordingEchoServer(t)
  const ug = await startConfig(t, proxyConfig([listener('socks', 'socks')]))
  const payload = prngBytes(0x0971, 100_000)
  const port = Buffer.from([echo.port >> 8, echo.port & 0xff])
  const cases: Array<[string, Buffer, number]> = [
    // greeting + CONNECT 127.0.0.1:port + payload; the reply is 2 + 10 bytes
    ['SOCKS5', Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]), port, payload]), 12],
    // SOCKS4a CONNECT localhost:port + payload; the reply is 8 bytes
    [
      'SOCKS4a',
      Buffer.concat([Buffer.from([4, 1]), port, Buffer.from([0, 0, 0, 1, 0]), Buffer.from('localhost\0'), payload]),
      8,
    ],
  ]
  let i = 0
  for (const [what, bytes, replyLen] of cases) {
    const r = await connectReader(ug.port('socks'))
    r.sock.write(bytes)
    const reply = await within(r.read(replyLen), 10_000, `${what}: reply`)
    t.equal(reply[1], what === 'SOCKS5' ? 0 : 0x5a, `${what}: success reply`)
    const back = await within(r.read(payload.length), 10_000, `${what}: echo`)
    t.ok(back.equals(payload), `${what}: payload sent with the handshake echoed intact`)
    r.sock.end()
    await within(r.rest(), 10_000, `${what}: closed`)
    const rc = await echo.conn(i)
    t.ok(rc.received().equals(payload), `${what}: the target got exactly the payload, no handshake bytes`)
    const c = (await ug.waitForConns(++i))[i - 1]!
    t.match(
      c.fields,
      { up: String(payload.length), down: String(payload.length), reason: 'eof' },
      `${what}: access line`,
    )
  }
  await finish(t, ug, i)
})
