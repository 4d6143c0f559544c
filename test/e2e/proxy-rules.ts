// Routing rules on the proxy listeners: `reject` (SOCKS5 reply 0x02 "not
// allowed by ruleset", SOCKS4 0x5B, HTTP 403) and `forward:HOST:PORT`
// (the destination rewritten, the client's bytes unchanged), with the
// rule, action and via fields of the access line.

import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import {
  CURL_UA,
  curl,
  curlHead,
  curlInfo,
  httpOrigin,
  originSummary,
  recordingEchoServer,
  splitHead,
} from '../lib/http.js'
import { connectReader, socks4Connect, socks5Connect } from '../lib/proxy.js'
import { prngBytes, refusedPort, sha256, within } from '../lib/servers.js'
import { finish } from '../lib/ugate.js'

t.test('reject and forward rules on socks and http listeners', async (t) => {
  const origin = await httpOrigin(t, { name: 'fwd-origin' })
  const echo = await recordingEchoServer(t)
  const rules = [
    { name: 'block-name', domainSuffix: ['blocked.test'], action: 'reject' },
    { name: 'block-port', dstPort: [9], action: 'reject' },
    { name: 'to-origin', domain: ['fwd.test'], action: `forward:127.0.0.1:${origin.port}` },
    { name: 'to-echo', dstPort: ['7000-7010'], listener: ['socks'], action: `forward:${echo.target}` },
  ]
  const ug = await startConfig(t, proxyConfig([listener('socks', 'socks'), listener('http', 'http')], { rules }))
  const sp = ug.port('socks')
  const hp = ug.port('http')
  let ns = 0
  let nh = 0
  const nextSocks = async () => (await waitConnsOf(ug, 'socks', ++ns))[ns - 1]!
  const nextHttp = async () => (await waitConnsOf(ug, 'http', ++nh))[nh - 1]!

  // --- reject ---------------------------------------------------------------
  const r5 = await curl(['--socks5-hostname', `127.0.0.1:${sp}`, 'http://www.blocked.test/'])
  t.equal(r5.code, 97, 'SOCKS5 reject: curl exit 97 (CURLE_PROXY)', curlInfo(r5))
  t.match(r5.stderr, /connection not allowed by ruleset|\(2\)/i, 'SOCKS5 reject: curl reports reply 2')
  let c = await nextSocks()
  t.match(
    c.fields,
    { dst: 'www.blocked.test:80', up: '0', down: '0', reason: 'rejected', rule: 'block-name', action: 'reject' },
    'SOCKS5 reject: access line',
  )
  t.equal(c.fields.via, undefined, 'SOCKS5 reject: no via=')

  const raw5 = await socks5Connect(sp, { host: 'blocked.test', port: 443 })
  t.same([...raw5.choice], [5, 0], 'raw SOCKS5: no auth chosen')
  t.same(
    [...raw5.reply!],
    [5, 0x02, 0, 1, 0, 0, 0, 0, 0, 0],
    'raw SOCKS5: reply 0x02 (not allowed by ruleset), 0.0.0.0:0',
  )
  const after5 = await within(raw5.reader.rest(), 10_000, 'raw SOCKS5: closed after the reply')
  t.equal(after5.data.length, 0, 'raw SOCKS5: nothing after the reply')
  c = await nextSocks()
  t.match(
    c.fields,
    { dst: 'blocked.test:443', reason: 'rejected', rule: 'block-name' },
    'raw SOCKS5 reject: access line',
  )

  const raw5ip = await socks5Connect(sp, { host: '127.0.0.1', port: 9 })
  t.equal(raw5ip.reply![1], 0x02, 'raw SOCKS5 to an IP on a rejected port: reply 0x02')
  c = await nextSocks()
  t.match(c.fields, { dst: '127.0.0.1:9', reason: 'rejected', rule: 'block-port' }, 'port rule: access line')

  const raw4 = await socks4Connect(sp, { host: 'x.blocked.test', port: 80 })
  t.equal(raw4.reply[1], 0x5b, 'raw SOCKS4a reject: reply 0x5B')
  c = await nextSocks()
  t.match(c.fields, { dst: 'x.blocked.test:80', reason: 'rejected', rule: 'block-name' }, 'SOCKS4a reject: access line')

  const r4 = await curl(['--socks4a', `127.0.0.1:${sp}`, 'http://blocked.test/'])
  t.equal(r4.code, 97, 'curl --socks4a reject: exit 97', curlInfo(r4))
  await nextSocks()

  const h = await curl(['-x', `http://127.0.0.1:${hp}`, 'http://blocked.test/page'])
  t.equal(h.code, 0, 'HTTP reject: curl exit 0', curlInfo(h))
  t.equal(h.w.http_code, 403, 'HTTP reject: 403')
  t.match(h.stdout.toString(), /block-name/, 'HTTP reject: the body names the rule')
  c = await nextHttp()
  t.match(
    c.fields,
    { dst: 'blocked.test:80', reason: 'rejected', rule: 'block-name', action: 'reject' },
    'HTTP reject: access line',
  )

  const hc = await curl(['-x', `http://127.0.0.1:${hp}`, 'https://blocked.test/'])
  t.equal(hc.code, 56, 'CONNECT reject: curl exit 56', curlInfo(hc))
  t.equal(hc.w.http_connect, 403, 'CONNECT reject: 403')
  c = await nextHttp()
  t.match(c.fields, { dst: 'blocked.test:443', reason: 'rejected', rule: 'block-name' }, 'CONNECT reject: access line')

  const rawH = await connectReader(hp)
  rawH.sock.write('CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n')
  const resH = await within(rawH.rest(), 10_000, 'raw CONNECT reject')
  t.match(splitHead(resH.data).head, /^HTTP\/1\.1 403 Forbidden\r\n/, 'raw CONNECT to a rejected port: 403 Forbidden')
  c = await nextHttp()
  t.match(c.fields, { dst: '127.0.0.1:9', reason: 'rejected', rule: 'block-port' }, 'raw CONNECT reject: access line')

  // --- forward --------------------------------------------------------------
  // The client asks for fwd.test:1 (no such host); the rule dials the origin instead.
  const f5 = await curl(['--socks5-hostname', `127.0.0.1:${sp}`, '-A', CURL_UA, 'http://fwd.test:1/via-socks'])
  t.equal(f5.code, 0, 'SOCKS5 forward: curl exit 0', curlInfo(f5))
  const q0 = await origin.request(0)
  t.equal(f5.stdout.toString(), originSummary('fwd-origin', q0), 'SOCKS5 forward: answered by the origin')
  t.equal(
    q0.conn.received().toString('latin1'),
    curlHead('GET', '/via-socks', 'fwd.test:1'),
    'SOCKS5 forward: bytes unchanged',
  )
  c = await nextSocks()
  t.match(
    c.fields,
    {
      dst: 'fwd.test:1',
      up: String(q0.conn.bytes),
      reason: 'eof',
      rule: 'to-origin',
      action: 'forward',
      via: `127.0.0.1:${origin.port}`,
    },
    'SOCKS5 forward: access line dst is what the client asked, via the rewritten target',
  )

  const fh = await curl(['-x', `http://127.0.0.1:${hp}`, '-A', CURL_UA, 'http://fwd.test/via-http'])
  t.equal(fh.code, 0, 'HTTP forward: curl exit 0', curlInfo(fh))
  const q1 = await origin.request(1)
  t.equal(fh.stdout.toString(), originSummary('fwd-origin', q1), 'HTTP forward: answered by the origin')
  t.equal(
    q1.conn.received().toString('latin1'),
    curlHead('GET', '/via-http', 'fwd.test', ['Connection: close']),
    'HTTP forward: origin-form head with the client Host (default port left out)',
  )
  c = await nextHttp()
  t.match(
    c.fields,
    { dst: 'fwd.test:80', reason: 'eof', rule: 'to-origin', action: 'forward', via: `127.0.0.1:${origin.port}` },
    'HTTP forward: access line',
  )

  // A port-range rule limited to one listener: 1 MB echoed through the forward.
  const e = await socks5Connect(sp, { host: '192.0.2.1', port: 7005 })
  t.equal(e.reply![1], 0, 'SOCKS5 to 192.0.2.1:7005 forwarded: reply 0x00')
  const payload = prngBytes(0xf0f0, 1_000_000)
  e.reader.sock.end(payload)
  const back = await within(e.reader.rest(), 20_000, 'echo through the forward')
  t.equal(sha256(back.data), sha256(payload), '1 MB echoed intact through the forward rule')
  t.ok((await echo.conn(0)).received().equals(payload), 'the echo server received exactly the payload')
  c = await nextSocks()
  t.match(
    c.fields,
    {
      dst: '192.0.2.1:7005',
      up: '1000000',
      down: '1000000',
      reason: 'eof',
      rule: 'to-echo',
      action: 'forward',
      via: echo.target,
    },
    'port-range forward: access line',
  )
  const ph = await curl(['-x', `http://127.0.0.1:${hp}`, 'http://127.0.0.1:7005/'])
  t.not(ph.w.http_code, 200, 'the listener-limited rule does not apply on the http listener', curlInfo(ph))
  c = await nextHttp()
  t.match(
    c.fields,
    { dst: '127.0.0.1:7005', rule: 'default', action: 'direct', reason: /^connect-error:/ },
    'http listener: default route',
  )
  t.equal(echo.conns.length, 1, 'echo saw only the socks connection')

  // --- failed dials and loops -----------------------------------------------
  const dead = await refusedPort()
  const refused = await socks5Connect(sp, { host: '127.0.0.1', port: dead })
  t.same(
    [...refused.reply!],
    [5, 0x05, 0, 1, 0, 0, 0, 0, 0, 0],
    'SOCKS5 to a closed port: reply 0x05 (connection refused)',
  )
  c = await nextSocks()
  t.match(
    c.fields,
    { dst: `127.0.0.1:${dead}`, reason: 'connect-error:ECONNREFUSED', rule: 'default', action: 'direct' },
    'refused: access line',
  )
  const refused4 = await socks4Connect(sp, { host: '127.0.0.1', port: dead })
  t.equal(refused4.reply[1], 0x5b, 'SOCKS4 to a closed port: reply 0x5B')
  c = await nextSocks()
  t.equal(c.fields.reason, 'connect-error:ECONNREFUSED', 'SOCKS4 refused: access line')
  // Asking ugate to connect to its own listeners would loop.
  const loop5 = await socks5Connect(sp, { host: '127.0.0.1', port: hp })
  t.equal(loop5.reply![1], 0x02, "SOCKS5 to ugate's own http listener: reply 0x02")
  c = await nextSocks()
  t.match(c.fields, { dst: `127.0.0.1:${hp}`, reason: 'loop' }, 'loop: access line')
  const loopH = await curl(['-x', `http://127.0.0.1:${hp}`, `http://127.0.0.1:${sp}/`])
  t.equal(loopH.w.http_code, 502, 'HTTP proxy asked for its own socks listener: 502', curlInfo(loopH))
  c = await nextHttp()
  t.match(c.fields, { dst: `127.0.0.1:${sp}`, reason: 'loop' }, 'HTTP loop: access line')
  await finish(t, ug, ns + nh)
})
