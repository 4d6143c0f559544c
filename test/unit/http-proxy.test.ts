import t from 'tap'
import type { Test } from 'tap'
import {
  CONNECT_ESTABLISHED,
  ChunkedScanner,
  bodyFraming,
  checkProxyAuth,
  encodeResponse,
  httpStatusForErrno,
  keepAlive,
  parseBasicAuth,
  parseProxyTarget,
  parseRequestHead,
  parseResponseHead,
  responseFraming,
  rewriteForOrigin,
  type Header,
  type RequestHead,
} from '../../src/core/http-proxy.js'
import { rng } from '../lib/rng.js'

// ------------------------------------------------------------------ helpers

const enc = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'))
const txt = (b: Uint8Array): string => Buffer.from(b).toString('latin1')
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts))
const NEXT = enc('GET http://next.example/ HTTP/1.1\r\n')

type Result = { status: string; consumed?: number; error?: string; code?: number; [k: string]: unknown }
type Parser = (buf: Uint8Array) => { status: string }
const run = (parse: Parser, buf: Uint8Array): Result => parse(buf) as Result

function good(t: Test, parse: Parser, name: string, text: string | Uint8Array, want: Record<string, unknown>): void {
  const bytes = typeof text === 'string' ? enc(text) : text
  t.test(name, async (t) => {
    const whole = run(parse, bytes)
    t.equal(whole.status, 'ok', 'whole head parses')
    t.equal(whole.consumed, bytes.length, 'consumed = head length')
    t.match(whole, want, 'fields')
    const notNeedMore: number[] = []
    for (let k = 0; k < bytes.length; k++) if (parse(bytes.subarray(0, k)).status !== 'need-more') notNeedMore.push(k)
    t.same(notNeedMore, [], 'every proper prefix is need-more')
    for (const next of [NEXT, enc('hello=world'), enc('\r\n\r\n')]) {
      const more = run(parse, cat(bytes, next))
      t.equal(more.consumed, bytes.length, `consumed exact with ${JSON.stringify(txt(next).slice(0, 12))} after it`)
      t.match(more, want)
    }
  })
}

function bad(
  t: Test,
  parse: Parser,
  name: string,
  text: string | Uint8Array,
  error: string | RegExp,
  code = 400,
): void {
  const bytes = typeof text === 'string' ? enc(text) : text
  t.test(name, async (t) => {
    const r = run(parse, bytes)
    t.equal(r.status, 'invalid', 'invalid')
    if (typeof error === 'string')
      t.ok(r.error?.includes(error), `error ${JSON.stringify(r.error)} contains ${JSON.stringify(error)}`)
    else t.match(r.error, error)
    t.equal(r.code, code, `code ${code}`)
    const oks: number[] = []
    for (let k = 0; k < Math.min(bytes.length, 400); k++) if (parse(bytes.subarray(0, k)).status === 'ok') oks.push(k)
    t.same(oks, [], 'no prefix parses as ok')
  })
}

const head = (method: string, target: string, headers: Header[] = [], version = 'HTTP/1.1'): RequestHead => ({
  method,
  target,
  version,
  headers,
})

// ------------------------------------------------ real-world captures (curl)
// Recorded from curl 7.88.1 pointed at a local listener on 127.0.0.1.

/** curl -x http://127.0.0.1:P 'http://example.com/a/b?q=1&r=2' */
const CURL_GET =
  'GET http://example.com/a/b?q=1&r=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n' +
  'Accept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n'
/** curl -x http://u:p%40ss@127.0.0.1:P -p https://example.com/ */
const CURL_CONNECT_AUTH =
  'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic dTpwQHNz\r\n' +
  'User-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n'
/** curl -x http://127.0.0.1:P -X POST -d hello=world http://example.com:8080/post (head, then the body) */
const CURL_POST =
  'POST http://example.com:8080/post HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/7.88.1\r\n' +
  'Accept: */*\r\nProxy-Connection: Keep-Alive\r\nContent-Length: 11\r\n' +
  'Content-Type: application/x-www-form-urlencoded\r\n\r\n'
/** curl -x http://127.0.0.1:P -0 'http://[2001:db8::1]:8080/' */
const CURL_GET_V6_HTTP10 =
  'GET http://[2001:db8::1]:8080/ HTTP/1.0\r\nHost: [2001:db8::1]:8080\r\nUser-Agent: curl/7.88.1\r\n' +
  'Accept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n'
/** curl -x http://127.0.0.1:P -p 'https://[2001:db8::1]/' */
const CURL_CONNECT_V6 =
  'CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\nUser-Agent: curl/7.88.1\r\n' +
  'Proxy-Connection: Keep-Alive\r\n\r\n'

// ------------------------------------------------------------ request head

t.test('parseRequestHead: good', async (t) => {
  const P = (buf: Uint8Array) => parseRequestHead(buf, 16384)
  good(t, P, 'curl GET', CURL_GET, {
    method: 'GET',
    target: 'http://example.com/a/b?q=1&r=2',
    version: 'HTTP/1.1',
    headers: [
      ['Host', 'example.com'],
      ['User-Agent', 'curl/7.88.1'],
      ['Accept', '*/*'],
      ['Proxy-Connection', 'Keep-Alive'],
    ],
  })
  good(t, P, 'curl CONNECT with auth', CURL_CONNECT_AUTH, { method: 'CONNECT', target: 'example.com:443' })
  good(t, P, 'curl POST', CURL_POST, { method: 'POST', headers: [[], [], [], [], ['Content-Length', '11'], []] })
  good(t, P, 'curl HTTP/1.0 IPv6', CURL_GET_V6_HTTP10, { target: 'http://[2001:db8::1]:8080/', version: 'HTTP/1.0' })
  good(t, P, 'curl CONNECT IPv6', CURL_CONNECT_V6, { target: '[2001:db8::1]:443' })
  good(t, P, 'no header fields', 'GET http://a/ HTTP/1.1\r\n\r\n', { headers: [] })
  good(t, P, 'leading empty lines are skipped', '\r\n\r\nGET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n', { method: 'GET' })
  good(t, P, 'case and order kept, OWS trimmed', 'GET http://a/ HTTP/1.1\r\nhOsT:a\r\nX-Y: \t v 1 \t\r\nX-E:\r\n\r\n', {
    headers: [
      ['hOsT', 'a'],
      ['X-Y', 'v 1'],
      ['X-E', ''],
    ],
  })
  good(t, P, 'obs-text in a value is kept byte for byte', 'GET http://a/ HTTP/1.1\r\nX-L: caf\xe9\r\n\r\n', {
    headers: [['X-L', 'caf\xe9']],
  })
  good(t, P, 'extension method', 'PROPFIND http://a/d HTTP/1.1\r\n\r\n', { method: 'PROPFIND' })
  good(t, P, 'HTTP/1.9 accepted as 1.x', 'GET http://a/ HTTP/1.9\r\n\r\n', { version: 'HTTP/1.9' })
  good(
    t,
    P,
    'repeated equal Content-Length',
    'POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n',
    {
      method: 'POST',
    },
  )
  good(t, P, 'chunked request', 'POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', {
    method: 'POST',
  })
  const exact = 'GET http://a/ HTTP/1.1\r\nX: ' + 'x'.repeat(16384 - 31) + '\r\n\r\n'
  t.equal(exact.length, 16384)
  t.match(parseRequestHead(enc(exact), 16384), { status: 'ok', consumed: 16384 }, 'a head of exactly the limit')
})

t.test('parseRequestHead: bad', async (t) => {
  const P = (buf: Uint8Array) => parseRequestHead(buf, 16384)
  const L = 'GET http://a/ HTTP/1.1\r\n'
  bad(t, P, 'bad method token', 'G@T http://a/ HTTP/1.1\r\n\r\n', 'bad method "G@T"')
  bad(t, P, 'missing version', 'GET http://a/\r\n\r\n', 'request line "GET http://a/" has no HTTP version')
  bad(t, P, 'bad version', 'GET http://a/ HTTP/1\r\n\r\n', 'bad HTTP version "HTTP/1"')
  bad(t, P, 'lower-case version', 'GET http://a/ http/1.1\r\n\r\n', 'bad HTTP version "http/1.1"')
  bad(t, P, 'HTTP/2.0', 'GET http://a/ HTTP/2.0\r\n\r\n', 'unsupported HTTP version "HTTP/2.0"', 505)
  bad(t, P, 'double space', 'GET  http://a/ HTTP/1.1\r\n\r\n', 'bad request line "GET  http://a/ HTTP/1.1"')
  bad(
    t,
    P,
    'tab separator',
    'GET\thttp://a/ HTTP/1.1\r\n\r\n',
    'bad request line "GET\\thttp://a/ HTTP/1.1" (fields are separated by one space)',
  )
  bad(t, P, 'missing target', 'GET HTTP/1.1\r\n\r\n', 'bad request line "GET HTTP/1.1"')
  bad(t, P, 'HTTP/0.9 style', 'GET /\r\n\r\n', 'request line "GET /" has no HTTP version')
  bad(t, P, 'non-ASCII target', 'GET http://a/\xe9 HTTP/1.1\r\n\r\n', 'bad request target "http://a/\xe9"')
  bad(
    t,
    P,
    'bare LF line ends',
    'GET http://a/ HTTP/1.1\nHost: a\n\n',
    'line "GET http://a/ HTTP/1.1" in request head ends with a bare LF',
  )
  bad(t, P, 'bare LF in a field', L + 'Host: a\n\r\n', 'line "Host: a" in request head ends with a bare LF')
  bad(t, P, 'bare CR', L + 'Host: a\rb\r\n\r\n', 'bare CR in line "Host: a\\x0db"')
  bad(t, P, 'obs-fold', L + 'X-A: 1\r\n  continued\r\n\r\n', 'obsolete line folding: header line "  continued"')
  bad(t, P, 'tab fold', L + 'X-A: 1\r\n\tcontinued\r\n\r\n', 'obsolete line folding')
  bad(t, P, 'whitespace before colon', L + 'Host : a\r\n\r\n', 'whitespace before colon in header "Host "')
  bad(t, P, 'no colon', L + 'Host a\r\n\r\n', 'header line "Host a" has no colon')
  bad(t, P, 'empty name', L + ': a\r\n\r\n', 'empty header name in line ": a"')
  bad(t, P, 'bad name', L + 'X(y): a\r\n\r\n', 'bad header name "X(y)"')
  bad(t, P, 'NUL in a value', L + 'X: a\x00b\r\n\r\n', 'control character 0x00 in line "X: a\\x00"')
  bad(t, P, 'DEL in a value', L + 'X: a\x7f\r\n\r\n', 'control character 0x7f')
  bad(t, P, 'ESC in the request line', 'GET http://a/\x1b HTTP/1.1\r\n\r\n', 'control character 0x1b')
  bad(
    t,
    P,
    'conflicting Content-Length',
    L + 'Content-Length: 5\r\nContent-Length: 6\r\n\r\n',
    'conflicting Content-Length values "5" and "6"',
  )
  bad(t, P, 'conflicting list', L + 'Content-Length: 5, 6\r\n\r\n', 'conflicting Content-Length values "5" and "6"')
  bad(t, P, 'bad Content-Length', L + 'Content-Length: abc\r\n\r\n', 'bad Content-Length "abc"')
  bad(t, P, 'negative Content-Length', L + 'Content-Length: -1\r\n\r\n', 'bad Content-Length "-1"')
  bad(
    t,
    P,
    'huge Content-Length',
    L + 'Content-Length: 99999999999999999999\r\n\r\n',
    'bad Content-Length "99999999999999999999"',
  )
  bad(t, P, 'empty Content-Length', L + 'Content-Length:\r\n\r\n', 'bad Content-Length ""')
  bad(
    t,
    P,
    'CL with TE',
    L + 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    'both Content-Length and Transfer-Encoding',
  )
  bad(
    t,
    P,
    'TE not ending with chunked',
    L + 'Transfer-Encoding: chunked, gzip\r\n\r\n',
    'Transfer-Encoding "chunked, gzip" does not end with chunked',
  )
  bad(t, P, 'TE identity', L + 'Transfer-Encoding: identity\r\n\r\n', 'Transfer-Encoding "identity"')
  bad(
    t,
    P,
    'TE twice chunked',
    L + 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
    'does not end with chunked',
  )
  bad(
    t,
    P,
    'TE in HTTP/1.0',
    'POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n',
    'Transfer-Encoding "chunked" in an HTTP/1.0 request',
  )
  bad(t, P, 'two Host fields', L + 'Host: a\r\nHost: b\r\n\r\n', '2 Host header fields ("a", "b")')
  bad(t, P, 'too many fields', L + 'X: 1\r\n'.repeat(129) + '\r\n', 'has 129 header fields, more than 128', 431)
  bad(t, P, '64 KiB field', L + 'X: ' + 'x'.repeat(65536), 'http: request head exceeds 16384 bytes', 431)
  bad(t, P, '64 KiB of empty lines', '\r\n'.repeat(32768), 'http: request head exceeds 16384 bytes', 431)
  bad(t, P, 'TLS ClientHello on the proxy port', Buffer.from('160301020001', 'hex'), 'control character 0x16')
  const over = 'GET http://a/ HTTP/1.1\r\nX: ' + 'x'.repeat(16384 - 30) + '\r\n\r\n'
  t.equal(over.length, 16385)
  t.match(
    parseRequestHead(enc(over), 16384),
    { status: 'invalid', error: /exceeds 16384 bytes/ },
    'one byte over the limit',
  )
  t.match(
    parseRequestHead(enc(L), 10),
    { status: 'invalid', error: 'http: request head exceeds 10 bytes' },
    'custom limit',
  )
})

t.test('parseRequestHead: a bad request line is refused before the head ends', async (t) => {
  t.match(parseRequestHead(enc('G@T / HTTP/1.1\r\nHost: a\r\n')), { status: 'invalid', error: /bad method/ })
  t.match(parseRequestHead(enc('GET http://a/\r\nHost')), { status: 'invalid', error: /no HTTP version/ })
  t.equal(parseRequestHead(enc('GET http://a/ HTTP/1.1\r\nHost')).status, 'need-more')
  t.equal(parseRequestHead(enc('\r\n')).status, 'need-more', 'an empty line before the request line')
  t.equal(parseRequestHead(enc('\r')).status, 'need-more')
})

// ------------------------------------------------------------ response head

t.test('parseResponseHead', async (t) => {
  const P = (buf: Uint8Array) => parseResponseHead(buf)
  good(t, P, '200 with fields', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\n', {
    version: 'HTTP/1.1',
    statusCode: 200,
    reason: 'OK',
    headers: [
      ['Content-Length', '3'],
      ['X-A', 'b'],
    ],
  })
  good(t, P, 'empty reason', 'HTTP/1.1 204 \r\n\r\n', { statusCode: 204, reason: '' })
  good(t, P, 'no space after the code', 'HTTP/1.0 404\r\n\r\n', { statusCode: 404, reason: '' })
  good(t, P, 'reason with spaces', 'HTTP/1.1 200 Connection established\r\n\r\n', { reason: 'Connection established' })
  bad(t, P, 'bad status line', 'HTTP/1.1 OK\r\n\r\n', 'bad status line "HTTP/1.1 OK"', 502)
  bad(t, P, 'status 099', 'HTTP/1.1 099 x\r\n\r\n', 'bad status code "099"', 502)
  bad(t, P, 'HTTP/2', 'HTTP/2.0 200 OK\r\n\r\n', 'unsupported HTTP version "HTTP/2.0"', 502)
  bad(t, P, 'bare LF', 'HTTP/1.1 200 OK\n\n', 'bare LF', 502)
  bad(t, P, 'obs-fold', 'HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n', 'obsolete line folding', 502)
  bad(t, P, '64 KiB', 'HTTP/1.1 200 OK\r\nX: ' + 'x'.repeat(65536), 'response head exceeds 16384 bytes', 502)
  t.same(parseResponseHead(CONNECT_ESTABLISHED), {
    status: 'ok',
    consumed: CONNECT_ESTABLISHED.length,
    version: 'HTTP/1.1',
    statusCode: 200,
    reason: 'Connection established',
    headers: [],
  })
})

// ------------------------------------------------------------ proxy targets

t.test('parseProxyTarget: good', async (t) => {
  const cases: Array<[string, string, Record<string, unknown>]> = [
    ['CONNECT', 'example.com:443', { kind: 'connect', host: 'example.com', port: 443 }],
    ['CONNECT', 'example.com', { kind: 'connect', host: 'example.com', port: 443 }],
    ['CONNECT', '10.0.0.1:22', { kind: 'connect', host: '10.0.0.1', port: 22 }],
    ['CONNECT', '[2001:db8::1]:443', { kind: 'connect', host: '2001:db8::1', port: 443 }],
    ['CONNECT', '[::1]', { kind: 'connect', host: '::1', port: 443 }],
    ['CONNECT', 'fqdn.example.:8443', { kind: 'connect', host: 'fqdn.example.', port: 8443 }],
    [
      'GET',
      'http://example.com/a/b?q=1&r=2',
      { kind: 'absolute', host: 'example.com', port: 80, path: '/a/b?q=1&r=2' },
    ],
    ['GET', 'http://example.com', { kind: 'absolute', host: 'example.com', port: 80, path: '/' }],
    ['GET', 'http://example.com?x=1', { kind: 'absolute', host: 'example.com', path: '/?x=1' }],
    ['GET', 'HTTP://Example.COM:8080/x', { kind: 'absolute', host: 'Example.COM', port: 8080, path: '/x' }],
    ['GET', 'http://example.com:/x', { kind: 'absolute', port: 80, path: '/x' }],
    ['GET', 'http://example.com/p#frag', { kind: 'absolute', path: '/p' }],
    ['POST', 'http://[2001:db8::1]:8080/', { kind: 'absolute', host: '2001:db8::1', port: 8080, path: '/' }],
    ['GET', 'http://192.168.1.1/cgi-bin/luci', { kind: 'absolute', host: '192.168.1.1', port: 80 }],
  ]
  for (const [method, target, want] of cases) {
    t.match(parseProxyTarget(head(method, target)), { status: 'ok', ...want }, `${method} ${target}`)
  }
})

t.test('parseProxyTarget: bad', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['GET', '/index.html', 'request target "/index.html" is not an absolute http:// URI (this is a proxy)'],
    ['OPTIONS', '*', 'request target "*" is not an absolute http:// URI'],
    ['GET', 'https://example.com/', '"https://example.com/" is an https URI: use CONNECT'],
    ['GET', 'ftp://example.com/', 'unsupported scheme "ftp"'],
    ['GET', 'example.com:80', 'not an absolute http:// URI'],
    ['GET', 'http:///x', 'missing host'],
    ['GET', 'http://user:pw@example.com/', 'user info in request target'],
    ['GET', 'http://example.com:0/', 'port "0" is not a number 1-65535'],
    ['GET', 'http://example.com:99999/', 'port "99999"'],
    ['GET', 'http://ex_ample!.com/', 'host "ex_ample!.com" is not a valid host name'],
    ['GET', 'http://[2001:db8::1/', 'missing "]"'],
    ['GET', 'http://[::g]/', '"::g" is not an IPv6 address'],
    ['GET', 'http://999.1.1.1/', 'host "999.1.1.1"'],
    ['CONNECT', 'example.com:', 'port "" is not a number 1-65535'],
    ['CONNECT', 'example.com:https', 'port "https"'],
    ['CONNECT', '2001:db8::1:443', 'an IPv6 address needs brackets'],
    ['CONNECT', '[2001:db8::1]x', 'unexpected "x" after "]"'],
    ['CONNECT', 'http://example.com/', 'CONNECT target "http://example.com/" is not host:port'],
    ['CONNECT', 'u@example.com:443', 'is not host:port'],
    ['CONNECT', ':443', 'missing host'],
  ]
  for (const [method, target, error] of cases) {
    const r = parseProxyTarget(head(method, target))
    t.equal(r.status, 'invalid', `${method} ${target}`)
    if (r.status === 'invalid') {
      t.ok(r.error.includes(error), `${JSON.stringify(r.error)} contains ${JSON.stringify(error)}`)
      t.equal(r.code, 400)
    }
  }
})

// ------------------------------------------------------------ body framing

t.test('bodyFraming (requests)', async (t) => {
  const cases: Array<[Header[], string, unknown]> = [
    [[], 'HTTP/1.1', { kind: 'none' }],
    [[['Content-Length', '11']], 'HTTP/1.1', { kind: 'length', length: 11 }],
    [[['content-length', '0']], 'HTTP/1.0', { kind: 'length', length: 0 }],
    [[['Content-Length', '7, 7']], 'HTTP/1.1', { kind: 'length', length: 7 }],
    [[['Transfer-Encoding', 'chunked']], 'HTTP/1.1', { kind: 'chunked' }],
    [
      [
        ['Transfer-Encoding', 'gzip'],
        ['Transfer-Encoding', 'Chunked'],
      ],
      'HTTP/1.1',
      { kind: 'chunked' },
    ],
    [
      [
        ['Content-Length', '1'],
        ['Transfer-Encoding', 'chunked'],
      ],
      'HTTP/1.1',
      { kind: 'invalid', error: /both/ },
    ],
    [[['Transfer-Encoding', 'gzip']], 'HTTP/1.1', { kind: 'invalid', error: /"gzip" does not end with chunked/ }],
    [
      [
        ['Content-Length', '1'],
        ['Content-Length', '2'],
      ],
      'HTTP/1.1',
      { kind: 'invalid', error: /conflicting/ },
    ],
    [[['Content-Length', '1.5']], 'HTTP/1.1', { kind: 'invalid', error: /bad Content-Length "1.5"/ }],
  ]
  for (const [headers, version, want] of cases)
    t.match(bodyFraming({ version, headers }), want, JSON.stringify(headers))
  t.same(bodyFraming({ version: 'HTTP/1.1', headers: [['Content-Length', '9007199254740991']] }), {
    kind: 'length',
    length: Number.MAX_SAFE_INTEGER,
  })
})

t.test('responseFraming', async (t) => {
  const cl: Header[] = [['Content-Length', '5']]
  const te: Header[] = [['Transfer-Encoding', 'chunked']]
  const cases: Array<[number, Header[], string, unknown]> = [
    [100, [], 'GET', { kind: 'none' }],
    [101, [], 'GET', { kind: 'none' }],
    [204, cl, 'GET', { kind: 'none' }],
    [304, cl, 'GET', { kind: 'none' }],
    [200, cl, 'HEAD', { kind: 'none' }],
    [200, [], 'CONNECT', { kind: 'none' }],
    [407, cl, 'CONNECT', { kind: 'length', length: 5 }],
    [200, cl, 'GET', { kind: 'length', length: 5 }],
    [200, te, 'GET', { kind: 'chunked' }],
    [200, [...te, ...cl], 'GET', { kind: 'chunked' }],
    [200, [['Transfer-Encoding', 'gzip']], 'GET', { kind: 'until-close' }],
    [200, [], 'GET', { kind: 'until-close' }],
    [404, [], 'POST', { kind: 'until-close' }],
    [200, [['Content-Length', 'x']], 'GET', { kind: 'invalid', error: /bad Content-Length "x"/ }],
    [
      200,
      [
        ['Content-Length', '1'],
        ['Content-Length', '2'],
      ],
      'GET',
      { kind: 'invalid', error: /conflicting/ },
    ],
  ]
  for (const [status, headers, method, want] of cases) {
    t.match(responseFraming(status, { headers }, method), want, `${method} → ${status} ${JSON.stringify(headers)}`)
  }
})

// ---------------------------------------------------------- chunked scanner

/** Feed `body` (+ `tail`) split at the given sizes; the total consumed must be body.length and the end found once. */
function scanSplit(
  body: Uint8Array,
  tail: Uint8Array,
  sizes: () => number,
): { consumed: number; done: boolean; error?: string } {
  const all = cat(body, tail)
  const s = new ChunkedScanner()
  let off = 0
  let consumed = 0
  while (off < all.length) {
    const n = Math.max(1, Math.min(sizes(), all.length - off))
    const r = s.feed(all.subarray(off, off + n))
    if (r.status === 'invalid') return { consumed, done: false, error: r.error }
    consumed += r.consumed
    if (r.status === 'done') return { consumed, done: true }
    if (r.consumed !== n) return { consumed, done: false, error: 'need-more did not consume everything' }
    off += n
  }
  return { consumed, done: s.done }
}

t.test('ChunkedScanner: good bodies, whole, byte by byte, random splits, with the next request after', async (t) => {
  const bodies: Array<[string, string]> = [
    ['simple', '5\r\nhello\r\n0\r\n\r\n'],
    ['two chunks', '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'],
    ['upper-case hex', 'A\r\n0123456789\r\n0\r\n\r\n'],
    ['lower-case hex', 'a\r\n0123456789\r\n0\r\n\r\n'],
    ['leading zeros', '0005\r\nhello\r\n000\r\n\r\n'],
    ['extensions', '5;name=val;q="a b;c"\r\nhello\r\n0;last\r\n\r\n'],
    ['whitespace before ;', '5 ;ext\r\nhello\r\n0\t;x\r\n\r\n'],
    ['trailers', '5\r\nhello\r\n0\r\nX-Sum: abc\r\nY: 2\r\n\r\n'],
    ['data containing CRLF and 0\\r\\n\\r\\n', '9\r\n0\r\n\r\nabcd\r\n0\r\n\r\n'],
    ['empty body', '0\r\n\r\n'],
    ['binary data', '3\r\n\x00\xff\n\r\n0\r\n\r\n'],
  ]
  for (const [name, text] of bodies) {
    const body = enc(text)
    const whole = new ChunkedScanner().feed(body)
    t.same(whole, { status: 'done', consumed: body.length }, `${name}: whole`)
    t.same(
      scanSplit(body, new Uint8Array(), () => 1),
      { consumed: body.length, done: true },
      `${name}: byte by byte`,
    )
    t.same(
      scanSplit(body, NEXT, () => 1),
      { consumed: body.length, done: true },
      `${name}: byte by byte, next request after`,
    )
    const rand = rng(body.length)
    for (let i = 0; i < 20; i++) {
      const r = scanSplit(body, NEXT, () => 1 + Math.floor(rand() * 8))
      if (r.consumed !== body.length || !r.done) t.fail(`${name}: random split ${i}: ${JSON.stringify(r)}`)
    }
    t.same(
      new ChunkedScanner().feed(cat(body, NEXT)),
      { status: 'done', consumed: body.length },
      `${name}: whole + next`,
    )
  }
  const s = new ChunkedScanner()
  t.same(s.feed(enc('0\r\n\r\n')), { status: 'done', consumed: 5 })
  t.ok(s.done)
  t.same(s.feed(enc('more')), { status: 'done', consumed: 0 }, 'after the end nothing more is consumed')
  const big = new ChunkedScanner()
  t.same(big.feed(enc('10000\r\n')), { status: 'need-more', consumed: 7 }, '64 KiB chunk: size line')
  t.same(big.feed(new Uint8Array(65536)), { status: 'need-more', consumed: 65536 }, '64 KiB chunk: data')
  t.same(big.feed(enc('\r\n0\r\n\r\nX')), { status: 'done', consumed: 7 }, '64 KiB chunk: end')
})

t.test('ChunkedScanner: bad bodies', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['garbage size', 'zz\r\n', 'bad chunk size line "z"'],
    ['negative size', '-1\r\n', 'bad chunk size line "-"'],
    ['0x prefix', '0x5\r\nhello\r\n', 'bad chunk size line "0x"'],
    ['empty size line', '\r\n', 'bad chunk size line "\\r"'],
    ['size then junk', '5 x\r\n', 'bad chunk size line "5 x"'],
    ['bare LF after size', '5\nhello\r\n0\r\n\r\n', 'chunk size line "5" ends with a bare LF'],
    ['bare LF after extension', '5;a\nhello', 'chunk size line "5;a" ends with a bare LF'],
    ['CR without LF', '5\rhello', 'chunk size line "5" not ended by CRLF (got 0x68 after CR)'],
    ['data too long', '5\r\nhelloX\r\n', 'chunk data not followed by CRLF (got 0x58)'],
    ['data then bare LF', '5\r\nhello\n0\r\n\r\n', 'chunk data not followed by CRLF (got 0x0a)'],
    ['17 digits', '0'.repeat(16) + '1\r\n', 'chunk size "00000000000000001"... has more than 16 hex digits'],
    ['too large (2^52)', '10000000000000\r\n', 'chunk size "10000000000000" is too large'],
    ['64 KiB of zeros', '0'.repeat(65536), 'has more than 16 hex digits'],
    ['2^48 + 1', '1000000000001\r\n', 'chunk size "1000000000001" is too large'],
    ['64 KiB extension', '5;' + 'x'.repeat(65536), 'exceeds 4096 bytes'],
    ['control char in extension', '5;a\x01\r\n', 'control character 0x01 in chunk extension'],
    ['64 KiB trailer line', '0\r\nX: ' + 'x'.repeat(65536), 'trailer line exceeds 4096 bytes'],
    ['64 KiB of trailers', '0\r\n' + 'X: 1234567\r\n'.repeat(6000), 'trailer section exceeds 16384 bytes'],
    ['bare LF in trailer', '0\r\nX: 1\n\r\n', 'trailer line ends with a bare LF'],
    ['obs-fold in trailer', '0\r\nX: 1\r\n 2\r\n\r\n', 'obsolete line folding in chunked trailer'],
    ['final CR without LF', '0\r\n\rX', 'chunked body not ended by CRLF'],
  ]
  for (const [name, text, error] of cases) {
    const body = enc(text)
    const r = new ChunkedScanner().feed(body)
    t.equal(r.status, 'invalid', `${name}: invalid`)
    if (r.status === 'invalid')
      t.ok(r.error.includes(error), `${name}: ${JSON.stringify(r.error)} contains ${JSON.stringify(error)}`)
    const split = scanSplit(body, new Uint8Array(), () => 1)
    t.ok(split.error?.includes(error), `${name}: byte by byte gives the same error (${JSON.stringify(split.error)})`)
  }
  const s = new ChunkedScanner()
  t.equal(s.feed(enc('zz')).status, 'invalid')
  t.equal(s.feed(enc('0\r\n\r\n')).status, 'invalid', 'an error is sticky')
  const small = new ChunkedScanner({ maxLineBytes: 8, maxTrailerBytes: 10 })
  t.match(small.feed(enc('5;abcdefgh\r\n')), { status: 'invalid', error: /exceeds 8 bytes/ }, 'custom line limit')
})

// ---------------------------------------------------- forwarding a request

t.test('rewriteForOrigin', async (t) => {
  const parse = (s: string): RequestHead => {
    const r = parseRequestHead(enc(s))
    if (r.status !== 'ok') throw new Error(`test head does not parse: ${JSON.stringify(r)}`)
    return r
  }
  const fwd = (s: string, close = false): string => {
    const h = parse(s)
    const target = parseProxyTarget(h)
    if (target.status !== 'ok' || target.kind !== 'absolute') throw new Error('test target')
    return txt(rewriteForOrigin(h, target, { close }))
  }
  t.equal(
    fwd(CURL_GET),
    'GET /a/b?q=1&r=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n',
    'curl GET: origin-form, Proxy-Connection dropped',
  )
  t.equal(
    fwd(CURL_POST),
    'POST /post HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n' +
      'Content-Length: 11\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n',
    'curl POST: Content-Length kept in place',
  )
  t.equal(
    fwd(CURL_GET_V6_HTTP10),
    'GET / HTTP/1.0\r\nHost: [2001:db8::1]:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n',
    'HTTP/1.0 and IPv6 kept',
  )
  t.equal(
    fwd(
      'GET http://a.example/x HTTP/1.1\r\nConnection: X-Drop, keep-alive, Content-Length, Host, transfer-encoding\r\n' +
        'x-drop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: websocket\r\n' +
        'Proxy-Authorization: Basic dTpw\r\nProxy-Authenticate: x\r\nContent-Length: 0\r\nX-Keep: yes\r\n\r\n',
    ),
    'GET /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\nX-Keep: yes\r\n\r\n',
    'hop-by-hop and Connection-named fields dropped, framing fields never',
  )
  t.equal(
    fwd('GET http://a.example:8080/x HTTP/1.1\r\nAccept: */*\r\nhost: evil.example\r\nX: 1\r\n\r\n'),
    'GET /x HTTP/1.1\r\nAccept: */*\r\nhost: a.example:8080\r\nX: 1\r\n\r\n',
    'a Host that disagrees with the URI is replaced in place (RFC 9112 §3.2.2), name case kept',
  )
  t.equal(
    fwd('GET http://a.example/ HTTP/1.0\r\nAccept: */*\r\n\r\n'),
    'GET / HTTP/1.0\r\nHost: a.example\r\nAccept: */*\r\n\r\n',
    'missing Host added first',
  )
  t.equal(
    fwd('GET http://a/?q HTTP/1.1\r\nHost: a\r\n\r\n', true),
    'GET /?q HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    'close option',
  )
  t.equal(
    fwd('GET http://a/ HTTP/1.1\r\nX-L: caf\xe9\r\n\r\n'),
    'GET / HTTP/1.1\r\nHost: a\r\nX-L: caf\xe9\r\n\r\n',
    'obs-text bytes survive',
  )
})

t.test('keepAlive', async (t) => {
  const cases: Array<[string, Header[], boolean]> = [
    ['HTTP/1.1', [], true],
    ['HTTP/1.1', [['Connection', 'close']], false],
    ['HTTP/1.1', [['Connection', 'Keep-Alive, Close']], false],
    ['HTTP/1.1', [['Proxy-Connection', 'close']], false],
    ['HTTP/1.1', [['Connection', 'keep-alive']], true],
    ['HTTP/1.0', [], false],
    ['HTTP/1.0', [['Connection', 'keep-alive']], true],
    ['HTTP/1.0', [['Proxy-Connection', 'Keep-Alive']], true],
    [
      'HTTP/1.0',
      [
        ['Connection', 'keep-alive'],
        ['Proxy-Connection', 'close'],
      ],
      false,
    ],
  ]
  for (const [version, headers, want] of cases)
    t.equal(keepAlive({ version, headers }), want, `${version} ${JSON.stringify(headers)}`)
})

// ------------------------------------------------------ proxy authentication

t.test('parseBasicAuth', async (t) => {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64')
  const good: Array<[string, { user: string; pass: string }]> = [
    ['Basic dTpwQHNz', { user: 'u', pass: 'p@ss' }],
    ['basic dTpwQHNz', { user: 'u', pass: 'p@ss' }],
    ['BASIC   dTpwQHNz  ', { user: 'u', pass: 'p@ss' }],
    [`Basic ${b64('Aladdin:open sesame')}`, { user: 'Aladdin', pass: 'open sesame' }],
    [`Basic ${b64('u:')}`, { user: 'u', pass: '' }],
    [`Basic ${b64(':p')}`, { user: '', pass: 'p' }],
    [`Basic ${b64('u:p:q')}`, { user: 'u', pass: 'p:q' }],
    [`Basic ${b64('jürg:пароль')}`, { user: 'jürg', pass: 'пароль' }],
  ]
  for (const [v, want] of good) t.same(parseBasicAuth(v), want, v)
  const badValues = [
    '',
    'Basic',
    'Basic ',
    'Bearer dTpwQHNz',
    'Basic dTpwQHNz=',
    'Basic dTpwQHN',
    'Basic dTpw QHNz',
    'Basic dTp-QHNz',
    `Basic ${b64('nocolon')}`,
    `Basic ${Buffer.from([0x75, 0x3a, 0xff]).toString('base64')}`,
    'Basic QR==',
    `Basic ${'A'.repeat(5000)}`,
    'Digest username="u"',
  ]
  for (const v of badValues) t.equal(parseBasicAuth(v), null, JSON.stringify(v.slice(0, 30)))
})

t.test('checkProxyAuth', async (t) => {
  const users = new Map([
    ['u', 'p@ss'],
    ['alice', 's3cret'],
  ])
  const h = (...headers: Header[]) => ({ headers })
  const auth = (s: string) => 'Basic ' + Buffer.from(s).toString('base64')
  t.equal(checkProxyAuth(parseRequestHead(enc(CURL_CONNECT_AUTH)) as RequestHead, users), 'u', 'curl capture')
  t.equal(checkProxyAuth(h(['proxy-authorization', auth('alice:s3cret')]), users), 'alice')
  t.equal(checkProxyAuth(h(['Proxy-Authorization', auth('alice:s3cre')]), users), null, 'wrong password')
  t.equal(checkProxyAuth(h(['Proxy-Authorization', auth('alice:s3cret!')]), users), null, 'longer password')
  t.equal(checkProxyAuth(h(['Proxy-Authorization', auth('bob:s3cret')]), users), null, 'unknown user')
  t.equal(checkProxyAuth(h(['Authorization', auth('alice:s3cret')]), users), null, 'Authorization is for the origin')
  t.equal(checkProxyAuth(h(), users), null, 'no field')
  t.equal(
    checkProxyAuth(h(['Proxy-Authorization', auth('alice:s3cret')], ['Proxy-Authorization', auth('u:p@ss')]), users),
    null,
    'two fields',
  )
})

// ----------------------------------------------------------- ugate replies

t.test('encodeResponse and CONNECT_ESTABLISHED', async (t) => {
  t.equal(txt(CONNECT_ESTABLISHED), 'HTTP/1.1 200 Connection established\r\n\r\n')
  t.equal(
    txt(encodeResponse(502, 'Bad Gateway', 'connect to example.com:80 failed: ECONNREFUSED\n')),
    'HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 47\r\nConnection: close\r\n\r\n' +
      'connect to example.com:80 failed: ECONNREFUSED\n',
  )
  t.equal(
    txt(encodeResponse(407, 'Proxy Authentication Required', 'auth\n')),
    'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n' +
      'Connection: close\r\nProxy-Authenticate: Basic realm="ugate"\r\n\r\nauth\n',
  )
  t.equal(
    txt(encodeResponse(407, undefined, '', [['Proxy-Authenticate', 'Basic realm="lan"']])),
    'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n' +
      'Connection: close\r\nProxy-Authenticate: Basic realm="lan"\r\n\r\n',
    'default reason, own realm',
  )
  const utf = encodeResponse(400, 'Bad Request', 'é')
  t.match(txt(utf), /Content-Length: 2\r\n/, 'Content-Length counts UTF-8 bytes')
  const back = parseResponseHead(encodeResponse(504, 'Gateway Timeout', 'x', [['Retry-After', '5']]))
  t.match(back, {
    status: 'ok',
    statusCode: 504,
    reason: 'Gateway Timeout',
    headers: [[], ['Content-Length', '1'], [], ['Retry-After', '5']],
  })
  t.throws(() => encodeResponse(400, 'Bad', '', [['X', 'a\r\nInjected: 1']]), RangeError)
  t.throws(() => encodeResponse(400, 'Bad\r\n', ''), RangeError)
  t.throws(() => encodeResponse(99, 'x', ''), RangeError)
})

t.test('httpStatusForErrno', async (t) => {
  const cases: Array<[string, number]> = [
    ['connect-timeout', 504],
    ['dns-timeout', 504],
    ['ETIMEDOUT', 504],
    ['connect-error:ECONNREFUSED', 502],
    ['dns-error', 502],
    ['EHOSTUNREACH', 502],
  ]
  for (const [name, code] of cases) t.equal(httpStatusForErrno(name), code, name)
})

// ------------------------------------------------------------------- fuzz

t.test('fuzz: mutated heads and bodies never throw', async (t) => {
  const seeds = [CURL_GET, CURL_CONNECT_AUTH, CURL_POST, CURL_GET_V6_HTTP10].map(enc)
  const alphabet = enc('\r\n :;,\t\x00\x7f\xffaZ09/-=?#[]@')
  const rand = rng(2024)
  let problems = 0
  for (let i = 0; i < 3000; i++) {
    let buf = Uint8Array.from(seeds[i % seeds.length]!)
    const flips = 1 + Math.floor(rand() * 4)
    for (let f = 0; f < flips; f++)
      buf[Math.floor(rand() * buf.length)] = alphabet[Math.floor(rand() * alphabet.length)]!
    if (rand() < 0.3) buf = buf.subarray(0, Math.floor(rand() * buf.length))
    try {
      const r = parseRequestHead(buf)
      if (r.status === 'ok') {
        if (r.consumed > buf.length) problems++
        const target = parseProxyTarget(r)
        if (target.status === 'ok' && target.kind === 'absolute') rewriteForOrigin(r, target)
        keepAlive(r)
        bodyFraming(r)
      } else if (r.status === 'invalid' && !(r.error.startsWith('http: ') && r.code >= 400)) problems++
      parseResponseHead(buf)
      const s = new ChunkedScanner()
      const c = s.feed(buf)
      if (c.status !== 'invalid' && c.consumed > buf.length) problems++
    } catch (e) {
      problems++
      t.comment(String(e))
    }
  }
  t.equal(problems, 0, '3000 mutated inputs')
})
