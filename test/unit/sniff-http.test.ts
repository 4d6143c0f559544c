import { readFileSync } from 'node:fs'
import t from 'tap'
import { H2_PREFACE, parseHostPort, sniffHttp } from '../../src/core/sniff/http.js'
import { sniff } from '../../src/core/sniff/index.js'
import type { SniffResult } from '../../src/core/sniff/types.js'

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../fixtures/handshakes/${name}.bin`, import.meta.url)))
}

const bytes = (s: string): Uint8Array => new Uint8Array(Array.from(s, (c) => c.charCodeAt(0)))
const MAX = 8192

function want(proto: 'http' | 'h2', host?: string): SniffResult {
  const r: SniffResult = { status: 'ok', proto }
  if (host !== undefined) r.host = host
  return r
}

t.test('real requests: curl HTTP/1.1 and curl h2 prior knowledge', async (t) => {
  // [fixture, result, bytes needed to decide]: the whole head for HTTP/1,
  // the 24-byte preface for h2 (the frames after it are not looked at).
  const cases: Array<[string, SniffResult, number]> = [
    ['curl-http', want('http', 'plain.test'), fixture('curl-http').length],
    ['curl-h2c', want('h2'), 24],
  ]
  for (const [name, w, decided] of cases) {
    const buf = fixture(name)
    t.same(sniffHttp(buf, MAX), w, `${name} (${buf.length} bytes)`)
    t.same(sniff(buf, { maxBytes: MAX }), w, `${name} via sniff()`)
    let bad = 0
    for (let n = 0; n <= buf.length; n++) {
      const expect = n < decided ? 'need-more' : 'ok'
      const r = sniffHttp(buf.subarray(0, n), MAX)
      if (r.status !== expect && bad++ < 3) t.fail(`${name}: prefix ${n} gave ${JSON.stringify(r)}`)
      if (sniff(buf.subarray(0, n), { maxBytes: MAX }).status !== expect && bad++ < 3)
        t.fail(`${name}: sniff() prefix ${n}`)
    }
    t.equal(bad, 0, `${name}: every prefix shorter than ${decided} is need-more, the rest ok`)
  }
  t.ok(
    bytes(H2_PREFACE).every((b, i) => fixture('curl-h2c')[i] === b),
    'curl-h2c starts with the preface',
  )
})

t.test('good requests: host', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['GET / HTTP/1.1\r\nHost: example.com\r\n\r\n', 'example.com'],
    ['GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n', 'example.com'],
    ['GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n', 'example.com'], // empty port is allowed (RFC 3986)
    ['GET / HTTP/1.1\r\nHost: Example.COM.\r\n\r\n', 'example.com'],
    ['GET / HTTP/1.1\r\nhost: lower.test\r\n\r\n', 'lower.test'],
    ['GET / HTTP/1.1\r\nHOST:nospace.test\r\n\r\n', 'nospace.test'],
    ['GET / HTTP/1.1\r\nhOsT: \t mixed.test \t\r\n\r\n', 'mixed.test'],
    ['GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', '::1'],
    ['GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n', '::1'],
    ['GET / HTTP/1.1\r\nHost: [2001:DB8::A]:443\r\n\r\n', '2001:db8::a'],
    ['GET / HTTP/1.1\r\nHost: [::ffff:192.0.2.1]\r\n\r\n', '::ffff:192.0.2.1'],
    ['GET / HTTP/1.1\r\nHost: 192.0.2.1:80\r\n\r\n', '192.0.2.1'],
    ['GET / HTTP/1.1\r\nUser-Agent: x\r\nAccept: */*\r\nHost: late.test\r\nX-Empty:\r\n\r\n', 'late.test'],
    ['GET / HTTP/1.1\r\nHost:\r\n\r\n', undefined], // empty Host
    ['GET / HTTP/1.0\r\n\r\n', undefined], // HTTP/1.0 without Host
    ['GET / HTTP/1.1\r\nAccept: */*\r\n\r\n', undefined], // missing Host: the caller routes by address
    ['GET / HTTP/1.1\nHost: lf.test\n\n', 'lf.test'], // bare LF line ends
    ['POST /x?y=1 HTTP/1.1\r\nHost: body.test\r\nContent-Length: 5\r\n\r\nhello', 'body.test'],
    ['GET / HTTP/1.1\r\nHost: body.test\r\n\r\n\x00\x01\xff garbage after the head', 'body.test'],
    ['GET http://proxy.test:81/x HTTP/1.1\r\nHost: other.test\r\n\r\n', 'proxy.test'],
    ['GET HTTPS://[::1]:8443?q HTTP/1.1\r\n\r\n', '::1'],
    ['CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 'example.com'],
    ['CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n', '2001:db8::1'],
    ['OPTIONS * HTTP/1.1\r\nHost: star.test\r\n\r\n', 'star.test'],
    ['M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n\r\n', '239.255.255.250'],
    ['PRI * HTTP/1.1\r\nHost: pri.test\r\n\r\n', 'pri.test'], // not the h2 preface
    ['GET /caf\xc3\xa9 HTTP/1.1\r\nHost: utf8.test\r\nX: caf\xc3\xa9\r\n\r\n', 'utf8.test'], // obs-text
  ]
  for (const [req, host] of cases) {
    const buf = bytes(req)
    t.same(sniffHttp(buf, MAX), want('http', host), JSON.stringify(req))
    let bad = 0
    const headEnd = req.includes('\r\n\r\n') ? req.indexOf('\r\n\r\n') + 4 : req.indexOf('\n\n') + 2
    for (let n = 0; n < headEnd; n++) if (sniffHttp(buf.subarray(0, n), MAX).status !== 'need-more') bad++
    t.equal(bad, 0, `${JSON.stringify(req)}: prefixes of the head are need-more`)
  }
})

t.test('bad requests: invalid, with the reason', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n', /^http: more than one Host header$/],
    ['GET / HTTP/1.1\r\nHost: a.test\r\nhost: a.test\r\n\r\n', /^http: more than one Host header$/],
    [
      'GET / HTTP/1.1\r\nHost: exa mple.test\r\n\r\n',
      /^http: bad Host header: "exa mple.test": bad character 0x20 at 3$/,
    ],
    ['GET / HTTP/1.1\r\nHost: a..b\r\n\r\n', /^http: bad Host header: "a..b": empty label at 2$/],
    ['GET / HTTP/1.1\r\nHost: [::1\r\n\r\n', /^http: bad Host header: "\[::1" has no closing \]$/],
    ['GET / HTTP/1.1\r\nHost: [zz::1]:80\r\n\r\n', /is not an IPv6 address in brackets$/],
    ['GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]\r\n\r\n', /is not an IPv6 address/],
    ['GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n', /has bytes after \]$/],
    ['GET / HTTP/1.1\r\nHost: ::1\r\n\r\n', /^http: bad Host header: "::1" has no host$/],
    ['GET / HTTP/1.1\r\nHost: example.com:99999\r\n\r\n', /"example.com:99999" has a bad port$/],
    ['GET / HTTP/1.1\r\nHost: example.com:8a\r\n\r\n', /has a bad port$/],
    ['GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n', /has a bad port$/],
    ['GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n', /has user info$/],
    ['GET / HTTP/1.1\r\nHost: caf\xc3\xa9.test\r\n\r\n', /bad character 0xc3 at 3$/],
    ['GET / HTTP/1.1\r\nHost : a.test\r\n\r\n', /^http: bad header field name in "Host : a.test"$/],
    ['GET / HTTP/1.1\r\n: a.test\r\n\r\n', /^http: bad header field name/],
    ['GET / HTTP/1.1\r\nNoColon\r\n\r\n', /^http: bad header field name in "NoColon"$/],
    ['GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n', /^http: obsolete line folding in the header$/],
    ['GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n', /^http: bad character 0x00 in header "X"$/],
    ['GET / HTTP/1.1\r\nX: a\rb\r\n\r\n', /^http: bad character 0x0d in header "X"$/],
    ['GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n', /^http: bad character 0x7f/],
    ['GET / HTTP/1.2\r\n\r\n', /^http: unsupported version "HTTP\/1.2"$/],
    ['GET / HTTP/2.0\r\n\r\n', /^http: unsupported version "HTTP\/2.0"$/],
    ['GET / HTTP/1.1 \r\n\r\n', /^http: unsupported version "HTTP\/1.1 "$/],
    ['PRI * HTTP/2.1\r\n\r\nSM\r\n\r\n', /^http: unsupported version "HTTP\/2.1"$/],
    ['CONNECT example.com HTTP/1.1\r\n\r\n', /^http: bad CONNECT target: "example.com" has no port$/],
    ['CONNECT example.com: HTTP/1.1\r\n\r\n', /has no port$/],
    ['GET http://user@x.test/ HTTP/1.1\r\n\r\n', /^http: bad absolute-form target: "user@x.test" has user info$/],
    ['GET http:///x HTTP/1.1\r\nHost: a.test\r\n\r\n', /^http: absolute-form target has no host$/],
  ]
  for (const [req, re] of cases) {
    const r = sniffHttp(bytes(req), MAX)
    t.equal(r.status, 'invalid', JSON.stringify(req))
    t.match('error' in r ? r.error : '', re, JSON.stringify(req))
    t.equal('proto' in r ? r.proto : undefined, 'http', 'proto http')
  }
})

t.test('not HTTP: not-mine', async (t) => {
  const tls = fixture('curl-tls')
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['TLS', tls, /^http: first byte 0x16 is not a method character$/],
    ['SOCKS5', new Uint8Array([5, 1, 0]), /first byte 0x05/],
    [
      'SSH banner',
      bytes('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'),
      /^http: byte 0x0d after the request target is not a space$/,
    ],
    ['SSH banner, no spaces', bytes('SSH-2.0-OpenSSH_9.2\r\n'), /^http: byte 0x0d after the method is not a space$/],
    ['HTTP/0.9', bytes('GET /\r\n'), /^http: byte 0x0d after the request target is not a space$/],
    ['words', bytes('HELLO WORLD THERE\r\n'), /^http: request line does not end in an HTTP version$/],
    ['leading space', bytes(' GET / HTTP/1.1\r\n\r\n'), /first byte 0x20/],
    ['leading CRLF', bytes('\r\nGET / HTTP/1.1\r\n\r\n'), /first byte 0x0d/],
    ['empty target', bytes('GET  / HTTP/1.1\r\n\r\n'), /^http: empty request target$/],
    ['long token', bytes('A'.repeat(40)), /^http: no method token within 32 bytes$/],
    ['64 KiB of A', bytes('A'.repeat(65536)), /no method token within 32 bytes/],
    ['64 KiB of zeros', new Uint8Array(65536), /first byte 0x00/],
    ['bad byte in method', bytes('GE\x01T / HTTP/1.1'), /byte 0x01 after the method/],
    ['lower-case http', bytes('GET / http/1.1\r\n\r\n'), /does not end in an HTTP version/],
  ]
  for (const [label, buf, re] of cases) {
    const r = sniffHttp(buf, MAX)
    t.equal(r.status, 'not-mine', label)
    t.match('error' in r ? r.error : '', re, label)
    if (label !== 'TLS')
      t.same(sniff(buf, { maxBytes: MAX }), { status: 'ok', proto: 'unknown' }, `${label}: sniff() says unknown`)
  }
})

t.test('need-more while incomplete', async (t) => {
  for (const s of [
    '',
    'G',
    'GET',
    'GET ',
    'GET /index',
    'GET / ',
    'GET / HTT',
    'GET / HTTP/1.1',
    'GET / HTTP/1.1\r',
    'GET / HTTP/1.1\r\n',
    'GET / HTTP/1.1\r\nHost: a',
    'GET / HTTP/1.1\r\nHost: a.test\r\n',
    'GET / HTTP/1.1\r\nHost: a.test\r\n\r',
    'GET / HTTP/1.0\r\n',
  ]) {
    t.equal(sniffHttp(bytes(s), MAX).status, 'need-more', JSON.stringify(s))
  }
  t.same(
    sniffHttp(bytes('GET / HTTP/1.1\r\n'), MAX),
    { status: 'need-more', proto: 'http' },
    'proto once the request line is in',
  )
  // Errors in complete header lines are reported before the head ends.
  t.equal(
    sniffHttp(bytes('GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n'), MAX).status,
    'invalid',
    'second Host line',
  )
})

t.test('request head over the limit', async (t) => {
  const limit = 1024
  const head = 'GET / HTTP/1.1\r\nHost: big.test\r\nX-Pad: '
  for (const n of [limit - 1, limit, limit + 1, 65536]) {
    const s = head + 'a'.repeat(Math.max(0, n - head.length))
    const r = sniffHttp(bytes(s), limit)
    if (n < limit) t.same(r, { status: 'need-more', proto: 'http' }, `${n} bytes: need-more`)
    else
      t.same(
        r,
        { status: 'invalid', proto: 'http', error: `http: request head exceeds ${limit} bytes` },
        `${n} bytes: invalid`,
      )
  }
  // A complete head that ends past the limit is refused too.
  const whole = `GET / HTTP/1.1\r\nHost: big.test\r\nX-Pad: ${'a'.repeat(2000)}\r\n\r\n`
  t.match(sniffHttp(bytes(whole), limit), { status: 'invalid', error: /exceeds 1024 bytes/ })
  t.same(sniffHttp(bytes(whole), whole.length), want('http', 'big.test'), 'exactly at the limit')
  // Request line longer than the limit.
  t.match(sniffHttp(bytes(`GET /${'a'.repeat(70000)}`), limit), {
    status: 'not-mine',
    error: /no request line within 1024 bytes/,
  })
  t.match(sniffHttp(bytes(`GET /${'a'.repeat(2000)} HTTP/1.1\r\n\r\n`), limit), { status: 'not-mine' })
  t.match(
    sniffHttp(bytes(`GET / HTTP/1.1\r\n${'X: y\r\n'.repeat(20000)}\r\n`), limit),
    { status: 'invalid', error: /exceeds 1024/ },
    '64 KiB+ head',
  )
  // Through sniff(): the same limit.
  t.match(sniff(bytes(head + 'a'.repeat(5000)), { maxBytes: 4096 }), { status: 'invalid', proto: 'http' })
  t.same(sniff(bytes(head), { maxBytes: 4096 }), { status: 'need-more', proto: 'http' })
})

t.test('HTTP/2 preface', async (t) => {
  const pre = bytes(H2_PREFACE)
  t.equal(pre.length, 24)
  t.same(sniffHttp(pre, MAX), want('h2'), 'the preface')
  t.same(sniff(pre, { maxBytes: MAX }), want('h2'), 'via sniff()')
  for (let n = 0; n < pre.length; n++) {
    t.same(sniffHttp(pre.subarray(0, n), MAX), { status: 'need-more' }, `prefix of ${n}`)
  }
  const withFrames = new Uint8Array([...pre, 0, 0, 0, 4, 0, 0, 0, 0, 0])
  t.same(sniffHttp(withFrames, MAX), want('h2'), 'preface and an empty SETTINGS frame')
  // Diverging from the preface falls back to HTTP/1 parsing.
  t.match(sniffHttp(bytes('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'), MAX), {
    status: 'invalid',
    error: /unsupported version "HTTP\/2.0"/,
  })
  t.same(sniffHttp(bytes('POST / HTTP/1.1\r\nHost: p.test\r\n\r\n'), MAX), want('http', 'p.test'))
  t.same(sniffHttp(bytes('PUT'), MAX), { status: 'need-more' })
})

t.test('parseHostPort', async (t) => {
  t.same(parseHostPort('a.test:1', true), { host: 'a.test' })
  t.same(parseHostPort('a.test:65535', false), { host: 'a.test' })
  t.match(parseHostPort('a.test:65536', false), { why: /bad port/ })
  t.match(parseHostPort('a.test:000080', false), { why: /bad port/ })
  t.same(parseHostPort('', false), { host: undefined })
  t.match(parseHostPort('', true), { why: 'empty' })
  t.same(parseHostPort('[::]:0', true), { host: '::' })
  t.match(parseHostPort('[fe80::1%25eth0]', false), { why: /not an IPv6/ })
  t.match(parseHostPort(`${'a'.repeat(254)}`, false), { why: /longer than 253/ })
})
