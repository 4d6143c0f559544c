// Chaining through upstream proxies (rules with "upstream:NAME"): a second
// ugate process (SOCKS5 and HTTP CONNECT, with credentials), microsocks
// (SOCKS5, without and with -u/-P) and tinyproxy (HTTP CONNECT). Data must
// arrive intact, the access line names the upstream in via=, and a refusing
// upstream shows as upstream-error / upstream-refused:... .

import t from 'tap'
import type { Test } from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import {
  CURL_UA,
  curl,
  curlHead,
  curlInfo,
  httpOrigin,
  originBytes,
  originSummary,
  recordingEchoServer,
} from '../lib/http.js'
import type { Origin, RecServer } from '../lib/http.js'
import { socks5Connect, startMicrosocks, startTinyproxy } from '../lib/proxy.js'
import { prngBytes, sha256, within } from '../lib/servers.js'
import { finish } from '../lib/ugate.js'
import type { Ugate } from '../lib/ugate.js'

/** One socks listener per upstream, routed by a listener rule. */
function frontConfig(
  ups: Array<{ name: string; type: 'socks5' | 'http'; server: string; username?: string; password?: string }>,
) {
  const listeners = ups.map((u) => listener(`via-${u.name}`, 'socks'))
  listeners.push(listener('front-http', 'http'))
  const rules = ups.map((u) => ({ name: `to-${u.name}`, listener: [`via-${u.name}`], action: `upstream:${u.name}` }))
  rules.push({ name: 'http-to-first', listener: ['front-http'], action: `upstream:${ups[0]!.name}` })
  return proxyConfig(listeners, { upstreams: ups, rules })
}

/** curl GET through a front listener; checks the origin's exact bytes and the front's access line. */
async function getVia(t: Test, front: Ugate, lname: string, origin: Origin, up: string, n: number) {
  const path = `/through-${up}`
  const before = origin.requests.length
  const r = await curl([
    '--socks5-hostname',
    `127.0.0.1:${front.port(lname)}`,
    '-A',
    CURL_UA,
    `http://localhost:${origin.port}${path}`,
  ])
  t.equal(r.code, 0, `via ${up}: curl exit 0`, curlInfo(r))
  const req = await within(origin.request(before), 10_000, `via ${up}: request at the origin`)
  t.equal(r.stdout.toString(), originSummary(origin.name, req), `via ${up}: answer from the origin`)
  t.equal(
    req.conn.received().toString('latin1'),
    curlHead('GET', path, `localhost:${origin.port}`),
    `via ${up}: exact bytes at the origin`,
  )
  const c = (await waitConnsOf(front, lname, n))[n - 1]!
  t.match(
    c.fields,
    {
      listener: lname,
      dst: `localhost:${origin.port}`,
      up: String(req.conn.bytes),
      down: String(Number(r.w.size_header) + Number(r.w.size_download)),
      reason: 'eof',
      rule: `to-${up}`,
      action: 'upstream',
      via: up,
    },
    `via ${up}: access line`,
  )
  return req
}

/** 1 MB each way through a front listener to an echo server. */
async function echoVia(t: Test, front: Ugate, lname: string, echo: RecServer, up: string, n: number, seed: number) {
  const s = await socks5Connect(front.port(lname), { host: '127.0.0.1', port: echo.port })
  t.equal(s.reply?.[1], 0, `via ${up}: SOCKS5 CONNECT to the echo server succeeded`)
  const payload = prngBytes(seed, 1_000_000)
  // No half-close before the echo is back: microsocks and tinyproxy close both
  // directions at the first EOF.
  s.reader.sock.write(payload)
  const back = await within(s.reader.read(payload.length), 20_000, `via ${up}: echo`)
  s.reader.sock.end()
  const rest = await within(s.reader.rest(), 10_000, `via ${up}: FIN after the echo`)
  t.equal(rest.data.length, 0, `via ${up}: nothing after the echo`)
  t.equal(sha256(back), sha256(payload), `via ${up}: 1 MB echoed back intact`)
  const c = (await waitConnsOf(front, lname, n))[n - 1]!
  t.match(
    c.fields,
    { dst: echo.target, up: '1000000', down: '1000000', reason: 'eof', via: up },
    `via ${up}: echo access line`,
  )
}

t.test('through a second ugate (SOCKS5 and HTTP upstream, with credentials)', async (t) => {
  const origin = await httpOrigin(t, { name: 'o' })
  const echo = await recordingEchoServer(t)
  const users = [{ username: 'chain', password: 'chain-pass' }]
  const back = await startConfig(
    t,
    proxyConfig([listener('back-socks', 'socks', { users }), listener('back-http', 'http', { users })]),
  )
  const bs = `127.0.0.1:${back.port('back-socks')}`
  const bh = `127.0.0.1:${back.port('back-http')}`
  const front = await startConfig(
    t,
    frontConfig([
      { name: 'ug2', type: 'socks5', server: bs, username: 'chain', password: 'chain-pass' },
      { name: 'ug2http', type: 'http', server: bh, username: 'chain', password: 'chain-pass' },
      { name: 'ug2bad', type: 'socks5', server: bs, username: 'chain', password: 'wrong' },
      { name: 'ug2noauth', type: 'http', server: bh },
    ]),
  )

  // SOCKS5 upstream.
  await getVia(t, front, 'via-ug2', origin, 'ug2', 1)
  let b = (await waitConnsOf(back, 'back-socks', 1))[0]!
  const f = (await waitConnsOf(front, 'via-ug2', 1))[0]!
  t.match(
    b.fields,
    {
      dst: `localhost:${origin.port}`,
      user: 'chain',
      reason: 'eof',
      up: f.fields.up,
      down: f.fields.down,
      action: 'direct',
    },
    'second ugate: the name went upstream, user=chain, same byte counts',
  )
  await echoVia(t, front, 'via-ug2', echo, 'ug2', 2, 0xc4a1)
  b = (await waitConnsOf(back, 'back-socks', 2))[1]!
  t.match(
    b.fields,
    { dst: echo.target, user: 'chain', up: '1000000', down: '1000000' },
    'second ugate: echo access line',
  )

  // HTTP CONNECT upstream.
  await getVia(t, front, 'via-ug2http', origin, 'ug2http', 1)
  b = (await waitConnsOf(back, 'back-http', 1))[0]!
  t.match(
    b.fields,
    { dst: `localhost:${origin.port}`, user: 'chain', reason: 'eof' },
    'second ugate (http): CONNECT with Basic auth',
  )

  // An http front listener chained through the SOCKS5 upstream: absolute-URI, rewritten, then tunnelled.
  const hr = await curl([
    '-x',
    `http://127.0.0.1:${front.port('front-http')}`,
    '-A',
    CURL_UA,
    `http://localhost:${origin.port}/http-front`,
  ])
  t.equal(hr.code, 0, 'http front via ug2: curl exit 0', curlInfo(hr))
  const hq = await origin.request(origin.requests.length - 1)
  t.equal(
    hq.conn.received().toString('latin1'),
    curlHead('GET', '/http-front', `localhost:${origin.port}`, ['Connection: close']),
    'http front via ug2: rewritten head at the origin',
  )
  const fh = (await waitConnsOf(front, 'front-http', 1))[0]!
  t.match(
    fh.fields,
    { dst: `localhost:${origin.port}`, via: 'ug2', action: 'upstream', reason: 'eof' },
    'http front: access line',
  )
  b = (await waitConnsOf(back, 'back-socks', 3))[2]!
  t.match(
    b.fields,
    { dst: `localhost:${origin.port}`, user: 'chain', reason: 'eof' },
    'second ugate: the http front arrived over SOCKS5',
  )

  // Wrong credentials for the upstream: it refuses the login, the client gets 0x01.
  const bad = await socks5Connect(front.port('via-ug2bad'), { host: 'localhost', port: origin.port })
  t.equal(bad.reply?.[1], 0x01, 'wrong upstream password: SOCKS5 reply 0x01 (general failure)')
  const fb = (await waitConnsOf(front, 'via-ug2bad', 1))[0]!
  t.match(
    fb.fields,
    { dst: `localhost:${origin.port}`, reason: 'upstream-error', via: 'ug2bad', up: '0', down: '0' },
    'front: reason=upstream-error',
  )
  b = (await waitConnsOf(back, 'back-socks', 4))[3]!
  t.equal(b.fields.reason, 'auth-failed', 'second ugate: reason=auth-failed')

  // No credentials to an HTTP upstream that wants them: 407 → upstream-refused:407.
  const na = await socks5Connect(front.port('via-ug2noauth'), { host: 'localhost', port: origin.port })
  t.equal(na.reply?.[1], 0x01, 'HTTP upstream answers 407: SOCKS5 reply 0x01')
  const fn = (await waitConnsOf(front, 'via-ug2noauth', 1))[0]!
  t.match(fn.fields, { reason: 'upstream-refused:407', via: 'ug2noauth' }, 'front: reason=upstream-refused:407')
  b = (await waitConnsOf(back, 'back-http', 2))[1]!
  t.equal(b.fields.reason, 'auth-failed', 'second ugate (http): reason=auth-failed')

  await finish(t, front, 6)
  await finish(t, back, 6)
})

t.test('through microsocks (SOCKS5), without and with -u/-P', async (t) => {
  const origin = await httpOrigin(t, { name: 'ms-origin' })
  const echo = await recordingEchoServer(t)
  const open = await startMicrosocks(t)
  const locked = await startMicrosocks(t, { user: 'msuser', pass: 'ms-pass' })
  const front = await startConfig(
    t,
    frontConfig([
      { name: 'ms', type: 'socks5', server: `127.0.0.1:${open.port}` },
      { name: 'msauth', type: 'socks5', server: `127.0.0.1:${locked.port}`, username: 'msuser', password: 'ms-pass' },
      { name: 'msbad', type: 'socks5', server: `127.0.0.1:${locked.port}`, username: 'msuser', password: 'nope' },
      { name: 'msnoauth', type: 'socks5', server: `127.0.0.1:${locked.port}` },
    ]),
  )
  await getVia(t, front, 'via-ms', origin, 'ms', 1)
  await echoVia(t, front, 'via-ms', echo, 'ms', 2, 0x4d53)
  await getVia(t, front, 'via-msauth', origin, 'msauth', 1)
  await echoVia(t, front, 'via-msauth', echo, 'msauth', 2, 0x4d54)
  const dl = await curl([
    '--socks5-hostname',
    `127.0.0.1:${front.port('via-msauth')}`,
    `http://localhost:${origin.port}/bytes/2000000`,
  ])
  t.equal(sha256(dl.stdout), sha256(originBytes(2_000_000)), 'via msauth: 2 MB download intact')
  await waitConnsOf(front, 'via-msauth', 3)

  const bad = await socks5Connect(front.port('via-msbad'), { host: 'localhost', port: origin.port })
  t.equal(bad.reply?.[1], 0x01, 'microsocks rejects the password: reply 0x01')
  const fb = (await waitConnsOf(front, 'via-msbad', 1))[0]!
  t.match(fb.fields, { reason: 'upstream-error', via: 'msbad' }, 'wrong password: reason=upstream-error')

  const na = await socks5Connect(front.port('via-msnoauth'), { host: 'localhost', port: origin.port })
  t.equal(na.reply?.[1], 0x01, 'microsocks wants a password, none configured: reply 0x01')
  const fn = (await waitConnsOf(front, 'via-msnoauth', 1))[0]!
  t.match(fn.fields, { reason: 'upstream-error', via: 'msnoauth' }, 'no credentials: reason=upstream-error')
  t.equal(origin.requests.length, 3, 'the origin saw the three successful requests only')
  await finish(t, front, 7)
})

t.test('through tinyproxy (HTTP CONNECT upstream)', async (t) => {
  const origin = await httpOrigin(t, { name: 'tp-origin' })
  const echo = await recordingEchoServer(t)
  const tp = await startTinyproxy(t, [origin.port, echo.port])
  const front = await startConfig(t, frontConfig([{ name: 'tp', type: 'http', server: `127.0.0.1:${tp.port}` }]))
  await getVia(t, front, 'via-tp', origin, 'tp', 1)
  await echoVia(t, front, 'via-tp', echo, 'tp', 2, 0x7470)

  const hr = await curl([
    '-x',
    `http://127.0.0.1:${front.port('front-http')}`,
    '-A',
    CURL_UA,
    `http://localhost:${origin.port}/http-front`,
  ])
  t.equal(hr.code, 0, 'http front via tinyproxy: curl exit 0', curlInfo(hr))
  t.equal(hr.w.http_code, 200, 'http front via tinyproxy: 200')
  const fh = (await waitConnsOf(front, 'front-http', 1))[0]!
  t.match(
    fh.fields,
    { dst: `localhost:${origin.port}`, via: 'tp', reason: 'eof' },
    'http front via tinyproxy: access line',
  )

  // tinyproxy only CONNECTs to its ConnectPorts: 403 → upstream-refused:403, reply 0x01.
  const other = await socks5Connect(front.port('via-tp'), { host: '127.0.0.1', port: 9 })
  t.equal(other.reply?.[1], 0x01, 'port not allowed by tinyproxy: SOCKS5 reply 0x01')
  const fr = (await waitConnsOf(front, 'via-tp', 3))[2]!
  t.match(fr.fields, { dst: '127.0.0.1:9', reason: 'upstream-refused:403', via: 'tp' }, 'reason=upstream-refused:403')
  const hx = await curl(['-x', `http://127.0.0.1:${front.port('front-http')}`, 'http://127.0.0.1:9/'])
  t.equal(hx.w.http_code, 502, 'http front: the upstream refusal is a 502', curlInfo(hx))
  await waitConnsOf(front, 'front-http', 2)
  t.match(
    tp.output(),
    /Established connection to host "localhost" using file descriptor/,
    'tinyproxy log shows its CONNECTs',
  )
  await finish(t, front, 5)
})
