import t from 'tap'
import type { Test } from 'tap'
import {
  SOCKS5_REPLY,
  chooseSocks5Method,
  encodeSocks4Reply,
  encodeSocks5Connect,
  encodeSocks5Greeting,
  encodeSocks5MethodChoice,
  encodeSocks5Reply,
  encodeSocks5UserPass,
  encodeSocks5UserPassReply,
  parseSocks4Request,
  parseSocks5Greeting,
  parseSocks5Request,
  parseSocks5ServerChoice,
  parseSocks5ServerReply,
  parseSocks5UserPass,
  parseSocks5UserPassReply,
  socks5ReplyForErrno,
  socks5ReplyText,
} from '../../src/core/socks.js'
import { base64Decode, base64Encode, utf8Decode, utf8Encode } from '../../src/core/bytes.js'
import { formatIPv6, ipv4ToBytes, ipv6ToBytes } from '../../src/core/ip.js'
import { rng } from '../lib/rng.js'

// ------------------------------------------------------------------ helpers

type Result = { status: string; consumed?: number; error?: string; [k: string]: unknown }
type Parser = (buf: Uint8Array) => { status: string }
const run = (parse: Parser, buf: Uint8Array): Result => parse(buf) as Result

const b = (...parts: Array<number | number[] | string | Uint8Array>): Uint8Array => {
  const out: number[] = []
  for (const p of parts) {
    if (typeof p === 'number') out.push(p)
    else if (typeof p === 'string') for (const ch of Buffer.from(p, 'latin1')) out.push(ch)
    else out.push(...p)
  }
  return Uint8Array.from(out)
}
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const NEXT = b('next phase bytes \x00\x05\x01')

/** Whole → ok with consumed = length; every proper prefix → need-more; trailing bytes left alone. */
function good(t: Test, parse: Parser, name: string, bytes: Uint8Array, want: Record<string, unknown>): void {
  t.test(name, async (t) => {
    const whole = run(parse, bytes)
    t.equal(whole.status, 'ok', 'whole message parses')
    t.equal(whole.consumed, bytes.length, 'consumed = message length')
    t.match(whole, want, 'fields')
    const notNeedMore: number[] = []
    for (let k = 0; k < bytes.length; k++) if (parse(bytes.subarray(0, k)).status !== 'need-more') notNeedMore.push(k)
    t.same(notNeedMore, [], 'every proper prefix is need-more')
    const more = run(parse, b(bytes, NEXT))
    t.equal(more.status, 'ok', 'with the next phase after it')
    t.equal(more.consumed, bytes.length, 'consumed excludes the next phase')
    t.match(more, want, 'same fields with trailing bytes')
  })
}

/** Invalid, with the error containing `text`; no prefix is ok, none throws. */
function bad(
  t: Test,
  parse: Parser,
  name: string,
  bytes: Uint8Array,
  text: string | RegExp,
  extra: Record<string, unknown> = {},
): void {
  t.test(name, async (t) => {
    const r = run(parse, bytes)
    t.equal(r.status, 'invalid', 'invalid')
    if (typeof text === 'string')
      t.ok(r.error?.includes(text), `error ${JSON.stringify(r.error)} contains ${JSON.stringify(text)}`)
    else t.match(r.error, text)
    t.match(r, extra)
    const oks: number[] = []
    for (let k = 0; k < Math.min(bytes.length, 600); k++) if (parse(bytes.subarray(0, k)).status === 'ok') oks.push(k)
    t.same(oks, [], 'no prefix parses as ok')
  })
}

/** Deterministic PRNG for the fuzz loops. */

// ------------------------------------------------ real-world captures (curl)
// Recorded from curl 7.88.1 pointed at a local listener on 127.0.0.1.

/** curl -x socks5h://127.0.0.1:P http://example.com/ */
const CURL_SOCKS5H_GREETING = hex('05 02 00 01')
const CURL_SOCKS5H_CONNECT = hex('05 01 00 03 0b 6578616d706c652e636f6d 0050')
/** curl -x socks5h://alice:s3cret@127.0.0.1:P http://example.com/ */
const CURL_SOCKS5_AUTH_GREETING = hex('05 03 00 01 02')
const CURL_SOCKS5_USERPASS = hex('01 05 616c696365 06 733363726574')
/** curl -x socks5://127.0.0.1:P http://10.1.2.3:8080/ */
const CURL_SOCKS5_CONNECT_V4 = hex('05 01 00 01 0a010203 1f90')
/** curl -x socks5h://127.0.0.1:P http://[2001:db8::1]:8443/ */
const CURL_SOCKS5_CONNECT_V6 = hex('05 01 00 04 20010db8000000000000000000000001 20fb')
/** curl --socks4a 127.0.0.1:P http://example.com/ */
const CURL_SOCKS4A = hex('04 01 0050 00000001 00 6578616d706c652e636f6d 00')
/** curl -x socks4a://bob@127.0.0.1:P http://example.com/ */
const CURL_SOCKS4A_USER = hex('04 01 0050 00000001 626f6200 6578616d706c652e636f6d00')
/** curl --socks4 127.0.0.1:P http://10.1.2.3:8080/ */
const CURL_SOCKS4 = hex('04 01 1f90 0a010203 00')

// ------------------------------------------------------------ SOCKS5 greeting

t.test('parseSocks5Greeting: good', async (t) => {
  good(t, parseSocks5Greeting, 'curl socks5h', CURL_SOCKS5H_GREETING, { methods: [0, 1] })
  good(t, parseSocks5Greeting, 'curl socks5h with credentials', CURL_SOCKS5_AUTH_GREETING, { methods: [0, 1, 2] })
  good(t, parseSocks5Greeting, 'one method', b(5, 1, 0), { methods: [0] })
  good(t, parseSocks5Greeting, 'only user/pass', b(5, 1, 2), { methods: [2] })
  const all = Array.from({ length: 255 }, (_, i) => i)
  good(t, parseSocks5Greeting, '255 methods', b(5, 255, all), { methods: all })
  const big = new Uint8Array(64 * 1024).fill(0x41)
  big.set([5, 3, 0, 1, 2])
  const r = parseSocks5Greeting(big)
  t.match(r, { status: 'ok', consumed: 5, methods: [0, 1, 2] }, '64 KiB buffer: only the greeting is consumed')
})

t.test('parseSocks5Greeting: bad', async (t) => {
  bad(t, parseSocks5Greeting, 'SOCKS4 version', b(4, 1, 0), 'unsupported version 0x04')
  bad(t, parseSocks5Greeting, 'HTTP', b('GET / HTTP/1.1\r\n'), 'unsupported version 0x47')
  bad(t, parseSocks5Greeting, 'TLS ClientHello', hex('16 03 01 02 00 01'), 'unsupported version 0x16')
  bad(t, parseSocks5Greeting, 'no methods', b(5, 0), 'NMETHODS 0x00')
  t.equal(parseSocks5Greeting(b()).status, 'need-more', 'empty buffer')
  t.equal(parseSocks5Greeting(b(5, 3, 0, 1)).status, 'need-more', 'truncated method list')
})

t.test('chooseSocks5Method', async (t) => {
  const cases: Array<[number[], boolean, number]> = [
    [[0], false, 0x00],
    [[0, 1, 2], false, 0x00],
    [[0, 1, 2], true, 0x02],
    [[2], true, 0x02],
    [[0], true, 0xff],
    [[2], false, 0xff],
    [[1], false, 0xff],
    [[], false, 0xff],
  ]
  for (const [m, auth, want] of cases) t.equal(chooseSocks5Method(m, auth), want, `${JSON.stringify(m)} auth=${auth}`)
  t.same(encodeSocks5MethodChoice(0x02), b(5, 2))
  t.same(encodeSocks5MethodChoice(0xff), b(5, 0xff))
})

// ---------------------------------------------------------- RFC 1929 auth

t.test('parseSocks5UserPass: good', async (t) => {
  good(t, parseSocks5UserPass, 'curl alice:s3cret', CURL_SOCKS5_USERPASS, { username: 'alice', password: 's3cret' })
  good(t, parseSocks5UserPass, 'empty password', b(1, 3, 'bob', 0), { username: 'bob', password: '' })
  good(t, parseSocks5UserPass, 'UTF-8 user', b(1, 5, utf8Encode('jürg'), 2, 'pw'), { username: 'jürg', password: 'pw' })
  const u = 'u'.repeat(255)
  const p = 'p'.repeat(255)
  good(t, parseSocks5UserPass, '255-byte fields', b(1, 255, u, 255, p), { username: u, password: p })
  const big = new Uint8Array(64 * 1024).fill(0x61)
  big.set([1, 255])
  big[2 + 255] = 255
  t.match(parseSocks5UserPass(big), { status: 'ok', consumed: 3 + 255 + 255 }, '64 KiB buffer: 513 bytes consumed')
})

t.test('parseSocks5UserPass: bad', async (t) => {
  bad(t, parseSocks5UserPass, 'version 5 (a common client bug)', b(5, 1, 'a', 1, 'b'), 'auth version 0x05')
  bad(t, parseSocks5UserPass, 'version 0', b(0, 1, 'a', 1, 'b'), 'auth version 0x00')
  bad(t, parseSocks5UserPass, 'user not UTF-8', b(1, 2, 0xff, 0xfe, 1, 'b'), 'username "\\xff\\xfe" is not UTF-8')
  bad(t, parseSocks5UserPass, 'password not UTF-8', b(1, 1, 'a', 1, 0xc0), 'password is not UTF-8')
  t.equal(parseSocks5UserPass(b(1, 5, 'ali')).status, 'need-more', 'truncated user')
  t.equal(parseSocks5UserPass(b(1, 5, 'alice', 6, 's3c')).status, 'need-more', 'truncated password')
})

t.test('RFC 1929 round trips and status replies', async (t) => {
  for (const [u, p] of [
    ['alice', 's3cret'],
    ['', ''],
    ['ü', 'пароль'],
    ['x'.repeat(255), 'y'.repeat(255)],
  ] as const) {
    t.match(
      parseSocks5UserPass(encodeSocks5UserPass(u, p)),
      { status: 'ok', username: u, password: p },
      `${u.slice(0, 8)}`,
    )
  }
  t.same(encodeSocks5UserPass('alice', 's3cret'), CURL_SOCKS5_USERPASS, 'same bytes as curl')
  t.throws(() => encodeSocks5UserPass('x'.repeat(256), ''), RangeError)
  t.throws(() => encodeSocks5UserPass('a', 'é'.repeat(128)), RangeError, '256 UTF-8 bytes')
  t.same(encodeSocks5UserPassReply(true), b(1, 0))
  t.same(encodeSocks5UserPassReply(false), b(1, 1))
  t.match(parseSocks5UserPassReply(b(1, 0, 9)), { status: 'ok', consumed: 2, success: true })
  t.match(parseSocks5UserPassReply(b(1, 1)), { status: 'ok', consumed: 2, success: false })
  t.match(parseSocks5UserPassReply(b(1, 0xff)), { status: 'ok', success: false })
  t.equal(parseSocks5UserPassReply(b(1)).status, 'need-more')
  t.match(parseSocks5UserPassReply(b(5, 0)), { status: 'invalid', error: /version 0x05/ })
})

// ------------------------------------------------------------ SOCKS5 request

t.test('parseSocks5Request: good', async (t) => {
  const P = parseSocks5Request
  good(t, P, 'curl socks5h domain', CURL_SOCKS5H_CONNECT, { cmd: 1, host: 'example.com', port: 80, atyp: 'domain' })
  good(t, P, 'curl socks5 IPv4', CURL_SOCKS5_CONNECT_V4, { cmd: 1, host: '10.1.2.3', port: 8080, atyp: 'ipv4' })
  good(t, P, 'curl socks5h IPv6', CURL_SOCKS5_CONNECT_V6, { cmd: 1, host: '2001:db8::1', port: 8443, atyp: 'ipv6' })
  good(t, P, 'BIND', b(5, 2, 0, 1, 0, 0, 0, 0, 0, 0), { cmd: 2, host: '0.0.0.0', port: 0, atyp: 'ipv4' })
  good(t, P, 'UDP ASSOCIATE', b(5, 3, 0, 1, 192, 168, 1, 2, 0x30, 0x39), { cmd: 3, host: '192.168.1.2', port: 12345 })
  good(t, P, 'IPv6 ::1 port 65535', b(5, 1, 0, 4, new Array(15).fill(0), 1, 0xff, 0xff), { host: '::1', port: 65535 })
  good(t, P, 'IPv4-mapped IPv6', b(5, 1, 0, 4, new Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 1, 0, 80), {
    host: '::ffff:192.0.2.1',
    atyp: 'ipv6',
  })
  good(t, P, 'upper-case hex never appears', b(5, 1, 0, 4, hex('FE80000000000000ABCD00000000EF01'), 1, 187), {
    host: 'fe80::abcd:0:0:ef01',
    port: 443,
  })
  const long = 'a'.repeat(63) + '.' + 'b'.repeat(63) + '.' + 'c'.repeat(63) + '.' + 'd'.repeat(63)
  good(t, P, '255-byte domain', b(5, 1, 0, 3, 255, long, 1, 187), { host: long, atyp: 'domain' })
  good(t, P, 'one-letter domain', b(5, 1, 0, 3, 1, 'x', 0, 22), { host: 'x', port: 22 })
  good(t, P, 'IDN as punycode', b(5, 1, 0, 3, 16, 'xn--bcher-kva.ch', 0, 80), { host: 'xn--bcher-kva.ch' })
  const big = new Uint8Array(64 * 1024).fill(0x61)
  big.set([5, 1, 0, 3, 255])
  t.match(P(big), { status: 'ok', consumed: 4 + 1 + 255 + 2, atyp: 'domain' }, '64 KiB buffer: consumed exact')
})

t.test('parseSocks5Request: bad, with the reply code to send', async (t) => {
  const P = parseSocks5Request
  bad(t, P, 'version 4', b(4, 1, 0, 1, 1, 2, 3, 4, 0, 80), 'unsupported version 0x04', { reply: 0x01 })
  bad(t, P, 'command 0x04', b(5, 4, 0, 1, 1, 2, 3, 4, 0, 80), 'unsupported command 0x04', { reply: 0x07 })
  bad(t, P, 'command 0x00', b(5, 0, 0, 1, 1, 2, 3, 4, 0, 80), 'unsupported command 0x00', { reply: 0x07 })
  bad(t, P, 'command 0xff', b(5, 0xff), 'unsupported command 0xff', { reply: 0x07 })
  bad(t, P, 'reserved byte 0x01', b(5, 1, 1, 1, 1, 2, 3, 4, 0, 80), 'reserved byte is 0x01', { reply: 0x01 })
  bad(t, P, 'address type 0x07', b(5, 1, 0, 7, 1, 2, 3, 4, 0, 80), 'unsupported address type 0x07', { reply: 0x08 })
  bad(t, P, 'address type 0x00', b(5, 1, 0, 0), 'unsupported address type 0x00', { reply: 0x08 })
  bad(t, P, 'address type 0x02', b(5, 1, 0, 2), 'unsupported address type 0x02', { reply: 0x08 })
  bad(t, P, 'empty domain', b(5, 1, 0, 3, 0, 0, 80), 'empty domain name', { reply: 0x01 })
  bad(t, P, 'NUL in domain', b(5, 1, 0, 3, 5, 'ab\x00cd', 0, 80), 'bad byte 0x00 in domain name "ab\\x00cd"')
  bad(t, P, 'space in domain', b(5, 1, 0, 3, 5, 'ab cd', 0, 80), 'bad byte 0x20')
  bad(t, P, 'non-ASCII domain', b(5, 1, 0, 3, 3, 0xc3, 0xa9, 'e', 0, 80), 'bad byte 0xc3')
  bad(t, P, 'bad domain byte seen before the rest arrives', b(5, 1, 0, 3, 200, 'a\n'), 'bad byte 0x0a')
  bad(t, P, '64 KiB of 0xff', new Uint8Array(64 * 1024).fill(0xff), 'unsupported version 0xff')
  const garbage = new Uint8Array(64 * 1024).fill(0x07)
  garbage.set([5, 1, 0])
  bad(t, P, '64 KiB, atyp 0x07', garbage, 'unsupported address type 0x07', { reply: 0x08 })
  for (const [name, bytes] of [
    ['ipv4 short', b(5, 1, 0, 1, 1, 2, 3, 4, 0)],
    ['ipv6 short', b(5, 1, 0, 4, new Array(16).fill(0), 0)],
    ['domain short', b(5, 1, 0, 3, 11, 'example.co')],
    ['header only', b(5, 1, 0)],
  ] as const) {
    t.equal(P(bytes).status, 'need-more', `truncated: ${name}`)
  }
})

t.test('SOCKS5 client side: CONNECT round trips', async (t) => {
  const cases: Array<[string, number, string, string]> = [
    ['example.com', 80, 'example.com', 'domain'],
    ['10.1.2.3', 8080, '10.1.2.3', 'ipv4'],
    ['0.0.0.0', 0, '0.0.0.0', 'ipv4'],
    ['2001:db8::1', 8443, '2001:db8::1', 'ipv6'],
    ['[2001:db8::1]', 443, '2001:db8::1', 'ipv6'],
    ['2001:0DB8:0:0:0:0:0:0001', 1, '2001:db8::1', 'ipv6'],
    ['::ffff:192.0.2.1', 65535, '::ffff:192.0.2.1', 'ipv6'],
    ['01.2.3.4', 80, '01.2.3.4', 'domain'],
    ['a'.repeat(255), 1, 'a'.repeat(255), 'domain'],
  ]
  for (const [host, port, wantHost, atyp] of cases) {
    const r = parseSocks5Request(encodeSocks5Connect(host, port))
    t.match(r, { status: 'ok', cmd: 1, host: wantHost, port, atyp }, `${host.slice(0, 20)}:${port}`)
  }
  t.same(encodeSocks5Connect('example.com', 80), CURL_SOCKS5H_CONNECT, 'same bytes as curl (domain)')
  t.same(encodeSocks5Connect('10.1.2.3', 8080), CURL_SOCKS5_CONNECT_V4, 'same bytes as curl (IPv4)')
  t.same(encodeSocks5Connect('2001:db8::1', 8443), CURL_SOCKS5_CONNECT_V6, 'same bytes as curl (IPv6)')
  t.match(
    parseSocks5Request(encodeSocks5Connect('0.0.0.0', 0, 3)),
    { status: 'ok', cmd: 3, host: '0.0.0.0', port: 0 },
    'UDP ASSOCIATE (cmd 3) for 0.0.0.0:0, what ugate asks an upstream',
  )
  t.throws(() => encodeSocks5Connect('', 80), RangeError, 'empty host')
  t.throws(() => encodeSocks5Connect('a'.repeat(256), 80), RangeError, '256-byte host')
  t.throws(() => encodeSocks5Connect('example.com', 65536), RangeError, 'port 65536')
  t.throws(() => encodeSocks5Connect('example.com', -1), RangeError, 'port -1')
  t.throws(() => encodeSocks5Connect('example.com', 1.5), RangeError, 'port 1.5')
})

t.test('SOCKS5 client side: greeting and server choice', async (t) => {
  t.same(encodeSocks5Greeting(false), b(5, 1, 0))
  t.same(encodeSocks5Greeting(true), b(5, 2, 0, 2))
  for (const withAuth of [false, true]) {
    const g = parseSocks5Greeting(encodeSocks5Greeting(withAuth))
    t.equal(g.status, 'ok')
    if (g.status === 'ok') t.equal(chooseSocks5Method(g.methods, withAuth), withAuth ? 2 : 0, `withAuth=${withAuth}`)
  }
  good(t, parseSocks5ServerChoice, 'no auth', b(5, 0), { method: 0 })
  good(t, parseSocks5ServerChoice, 'user/pass', b(5, 2), { method: 2 })
  good(t, parseSocks5ServerChoice, 'no acceptable method', b(5, 0xff), { method: 0xff })
  bad(t, parseSocks5ServerChoice, 'SOCKS4-style reply', b(0, 0x5a), 'version 0x00')
  bad(t, parseSocks5ServerChoice, 'HTTP reply', b('HTTP/1.1 400'), 'version 0x48')
})

t.test('SOCKS5 replies: encode and parse back', async (t) => {
  t.same(encodeSocks5Reply(0), b(5, 0, 0, 1, 0, 0, 0, 0, 0, 0), 'default 0.0.0.0:0')
  t.same(encodeSocks5Reply(SOCKS5_REPLY.CONNECTION_REFUSED), b(5, 5, 0, 1, 0, 0, 0, 0, 0, 0))
  t.same(encodeSocks5Reply(0, '192.168.1.1', 1080), b(5, 0, 0, 1, 192, 168, 1, 1, 0x04, 0x38))
  t.same(encodeSocks5Reply(0, '::1', 443), b(5, 0, 0, 4, new Array(15).fill(0), 1, 1, 187))
  t.same(encodeSocks5Reply(0, 'proxy.lan', 80), b(5, 0, 0, 3, 9, 'proxy.lan', 0, 80))
  const cases: Array<[number, string, number, string, string]> = [
    [0, '192.168.1.1', 1080, '192.168.1.1', 'ipv4'],
    [0, '[fe80::1]', 40000, 'fe80::1', 'ipv6'],
    [4, '0.0.0.0', 0, '0.0.0.0', 'ipv4'],
    [0, 'proxy.lan', 80, 'proxy.lan', 'domain'],
  ]
  for (const [code, addr, port, host, atyp] of cases) {
    const bytes = encodeSocks5Reply(code, addr, port)
    good(t, parseSocks5ServerReply, `${code} ${addr}`, bytes, { reply: code, host, port, atyp })
  }
  for (let code = 0; code <= 8; code++) {
    t.match(parseSocks5ServerReply(encodeSocks5Reply(code)), { status: 'ok', reply: code }, `reply ${code}`)
  }
  bad(t, parseSocks5ServerReply, 'version 4', b(4, 0, 0, 1, 0, 0, 0, 0, 0, 0), 'version 0x04')
  bad(t, parseSocks5ServerReply, 'reserved 0x02', b(5, 0, 2, 1, 0, 0, 0, 0, 0, 0), 'reserved byte is 0x02')
  bad(t, parseSocks5ServerReply, 'atyp 0x05', b(5, 0, 0, 5, 0, 0, 0, 0, 0, 0), 'unsupported address type 0x05')
  bad(t, parseSocks5ServerReply, 'empty domain', b(5, 0, 0, 3, 0, 0, 0), 'empty domain name')
})

t.test('SOCKS5 reply codes: names and errno mapping', async (t) => {
  t.same(SOCKS5_REPLY, {
    SUCCEEDED: 0,
    GENERAL_FAILURE: 1,
    NOT_ALLOWED: 2,
    NETWORK_UNREACHABLE: 3,
    HOST_UNREACHABLE: 4,
    CONNECTION_REFUSED: 5,
    TTL_EXPIRED: 6,
    COMMAND_NOT_SUPPORTED: 7,
    ADDRESS_TYPE_NOT_SUPPORTED: 8,
  })
  t.equal(socks5ReplyText(5), 'connection refused')
  t.equal(socks5ReplyText(8), 'address type not supported')
  t.equal(socks5ReplyText(0x2a), 'unassigned reply 0x2a')
  const cases: Array<[string, number]> = [
    ['ECONNREFUSED', 0x05],
    ['connect-error:ECONNREFUSED', 0x05],
    ['ENETUNREACH', 0x03],
    ['connect-error:ENETUNREACH', 0x03],
    ['EHOSTUNREACH', 0x04],
    ['ENOTFOUND', 0x04],
    ['EAI_NONAME', 0x04],
    ['EAI_AGAIN', 0x04],
    ['dns-error', 0x04],
    ['dns-timeout', 0x04],
    ['unknown-node', 0x04],
    ['relay-unreachable', 0x04],
    ['relay-refused-503', 0x04],
    ['relay-refused-401', 0x01],
    ['ETIMEDOUT', 0x06],
    ['connect-timeout', 0x06],
    ['EACCES', 0x01],
    ['ECONNRESET', 0x01],
    ['shutdown', 0x01],
    ['', 0x01],
  ]
  for (const [name, code] of cases) t.equal(socks5ReplyForErrno(name), code, name)
})

// ------------------------------------------------------------------ SOCKS4

t.test('parseSocks4Request: good', async (t) => {
  const P = parseSocks4Request
  good(t, P, 'curl --socks4', CURL_SOCKS4, {
    cmd: 1,
    host: '10.1.2.3',
    port: 8080,
    atyp: 'ipv4',
    userid: '',
    socks4a: false,
  })
  good(t, P, 'curl --socks4a', CURL_SOCKS4A, {
    cmd: 1,
    host: 'example.com',
    port: 80,
    atyp: 'domain',
    userid: '',
    socks4a: true,
  })
  good(t, P, 'curl socks4a://bob@', CURL_SOCKS4A_USER, { host: 'example.com', userid: 'bob', socks4a: true })
  good(t, P, 'BIND with user id', b(4, 2, 0, 21, 192, 0, 2, 7, 'ftp-user', 0), {
    cmd: 2,
    host: '192.0.2.7',
    port: 21,
    userid: 'ftp-user',
  })
  good(t, P, '0.0.0.0 is plain SOCKS4', b(4, 1, 0, 80, 0, 0, 0, 0, 0), { host: '0.0.0.0', socks4a: false })
  good(t, P, '0.0.0.255 is SOCKS4a', b(4, 1, 0, 80, 0, 0, 0, 255, 0, 'h', 0), { host: 'h', socks4a: true })
  const u = 'u'.repeat(255)
  const h = 'h'.repeat(255)
  good(t, P, '255-byte user id and host name', b(4, 1, 0, 80, 0, 0, 0, 1, u, 0, h, 0), { userid: u, host: h })
  const big = new Uint8Array(64 * 1024).fill(0x61)
  big.set([4, 1, 0, 80, 0, 0, 0, 1, 0x61, 0, 0x68, 0])
  t.match(P(big), { status: 'ok', consumed: 12, host: 'h', userid: 'a' }, '64 KiB buffer: consumed exact')
})

t.test('parseSocks4Request: bad', async (t) => {
  const P = parseSocks4Request
  bad(t, P, 'version 5', b(5, 1, 0, 80, 1, 2, 3, 4, 0), 'unsupported version 0x05')
  bad(t, P, 'command 3', b(4, 3, 0, 80, 1, 2, 3, 4, 0), 'unsupported command 0x03')
  bad(
    t,
    P,
    'user id of 256 bytes',
    b(4, 1, 0, 80, 1, 2, 3, 4, 'u'.repeat(256), 0),
    /user id "u+\.\.\." is longer than 255 bytes/,
  )
  bad(t, P, '64 KiB user id, no NUL', b(4, 1, 0, 80, 1, 2, 3, 4, 'u'.repeat(65536)), 'longer than 255 bytes')
  bad(t, P, 'user id not UTF-8', b(4, 1, 0, 80, 1, 2, 3, 4, 0xff, 0), 'user id "\\xff" is not UTF-8')
  bad(t, P, 'SOCKS4a empty host', b(4, 1, 0, 80, 0, 0, 0, 1, 0, 0), 'empty host name')
  bad(t, P, 'SOCKS4a host of 256 bytes', b(4, 1, 0, 80, 0, 0, 0, 1, 0, 'h'.repeat(256), 0), 'longer than 255 bytes')
  bad(t, P, 'SOCKS4a 64 KiB host', b(4, 1, 0, 80, 0, 0, 0, 1, 0, 'h'.repeat(65536)), /host name "h+\.\.\." is longer/)
  bad(t, P, 'SOCKS4a host with a space', b(4, 1, 0, 80, 0, 0, 0, 1, 0, 'a b', 0), 'bad byte 0x20 in domain name "a b"')
  bad(t, P, 'SOCKS4a host with CR', b(4, 1, 0, 80, 0, 0, 0, 1, 0, 'a\r'), 'bad byte 0x0d')
  t.equal(P(b(4, 1, 0, 80, 1, 2, 3)).status, 'need-more', 'truncated header')
  t.equal(P(b(4, 1, 0, 80, 1, 2, 3, 4, 'bob')).status, 'need-more', 'user id without NUL yet')
  t.equal(P(b(4, 1, 0, 80, 0, 0, 0, 1, 0, 'example.com')).status, 'need-more', 'host without NUL yet')
})

t.test('encodeSocks4Reply', async (t) => {
  t.same(encodeSocks4Reply(true), b(0, 0x5a, 0, 0, 0, 0, 0, 0))
  t.same(encodeSocks4Reply(false), b(0, 0x5b, 0, 0, 0, 0, 0, 0))
  t.same(encodeSocks4Reply(true, 8080, '10.1.2.3'), b(0, 0x5a, 0x1f, 0x90, 10, 1, 2, 3))
  t.throws(() => encodeSocks4Reply(true, 80, '::1'), RangeError)
})

// ------------------------------------------------------------------- fuzz

t.test('fuzz: random and mutated input never throws, consumed stays in bounds', async (t) => {
  const parsers: Array<[string, Parser, Uint8Array[]]> = [
    ['greeting', parseSocks5Greeting, [CURL_SOCKS5H_GREETING, CURL_SOCKS5_AUTH_GREETING]],
    ['userpass', parseSocks5UserPass, [CURL_SOCKS5_USERPASS]],
    ['request', parseSocks5Request, [CURL_SOCKS5H_CONNECT, CURL_SOCKS5_CONNECT_V4, CURL_SOCKS5_CONNECT_V6]],
    ['server reply', parseSocks5ServerReply, [encodeSocks5Reply(0, '::1', 1), encodeSocks5Reply(0, 'a.b', 2)]],
    ['socks4', parseSocks4Request, [CURL_SOCKS4, CURL_SOCKS4A, CURL_SOCKS4A_USER]],
  ]
  const rand = rng(12345)
  for (const [name, parse, seeds] of parsers) {
    let problems = 0
    for (let i = 0; i < 3000; i++) {
      let buf: Uint8Array
      if (i % 2 === 0) {
        buf = new Uint8Array(Math.floor(rand() * 300))
        for (let k = 0; k < buf.length; k++) buf[k] = Math.floor(rand() * 256)
        if (buf.length > 0 && rand() < 0.7) buf[0] = name === 'socks4' ? 4 : name === 'userpass' ? 1 : 5
      } else {
        buf = Uint8Array.from(seeds[i % seeds.length]!)
        const flips = 1 + Math.floor(rand() * 3)
        for (let f = 0; f < flips; f++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256)
        if (rand() < 0.3) buf = buf.subarray(0, Math.floor(rand() * buf.length))
      }
      try {
        const r = run(parse, buf)
        if (!['ok', 'need-more', 'invalid'].includes(r.status)) problems++
        if (r.status === 'ok' && !(r.consumed! > 0 && r.consumed! <= buf.length)) problems++
        if (r.status === 'invalid' && !(typeof r.error === 'string' && r.error.length > 0)) problems++
      } catch {
        problems++
      }
    }
    t.equal(problems, 0, `${name}: 3000 inputs`)
  }
})

// ------------------------------------------------------------ bytes helpers

t.test('bytes: IPv6 text is RFC 5952 canonical', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['2001:DB8::ABCD', '2001:db8::abcd'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::ffff:c000:0201', '::ffff:192.0.2.1'],
    ['64:ff9b::10.0.0.1', '64:ff9b::a00:1'],
  ]
  for (const [text, want] of cases) t.equal(formatIPv6(ipv6ToBytes(text)!), want, text)
  for (const s of ['', ':', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7', '[::1]', 'fe80::1%eth0', '::1.2.3']) {
    t.equal(ipv6ToBytes(s), null, JSON.stringify(s))
  }
  // Against Node's URL parser (WHATWG compresses the same way, except mapped IPv4).
  const rand = rng(99)
  let mismatches = 0
  for (let i = 0; i < 2000; i++) {
    const a = new Uint8Array(16)
    for (let g = 0; g < 8; g++) {
      if (rand() < 0.5) continue
      a[2 * g] = rand() < 0.5 ? 0 : Math.floor(rand() * 256)
      a[2 * g + 1] = Math.floor(rand() * 256)
    }
    const mine = formatIPv6(a)
    if (mine.startsWith('::ffff:') && mine.includes('.')) continue
    const node = new URL(`http://[${mine}]/`).hostname.slice(1, -1)
    if (node !== mine || formatIPv6(ipv6ToBytes(mine)!) !== mine) mismatches++
  }
  t.equal(mismatches, 0, '2000 random addresses agree with URL')
  t.same(ipv4ToBytes('192.0.2.1'), b(192, 0, 2, 1))
  t.equal(ipv4ToBytes('01.2.3.4'), null)
  t.equal(ipv4ToBytes('256.0.0.1'), null)
})

t.test('bytes: UTF-8 and base64 agree with Buffer', async (t) => {
  const strings = ['', 'abc', 'jürg', '€', '𝄞 music', 'пароль', '\u0000\u007f\u0080\u07ff\u0800\uffff']
  for (const s of strings) {
    t.same(utf8Encode(s), Uint8Array.from(Buffer.from(s, 'utf8')), `encode ${JSON.stringify(s)}`)
    t.equal(utf8Decode(utf8Encode(s)), s, `round trip ${JSON.stringify(s)}`)
  }
  t.same(utf8Encode('\ud800'), b(0xef, 0xbf, 0xbd), 'lone surrogate → U+FFFD')
  const badUtf8: Array<[string, number[]]> = [
    ['overlong /', [0xc0, 0xaf]],
    ['overlong 3-byte', [0xe0, 0x80, 0xaf]],
    ['surrogate', [0xed, 0xa0, 0x80]],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['truncated', [0xe2, 0x82]],
    ['lone continuation', [0x80]],
    ['0xff', [0xff]],
  ]
  for (const [name, bytes] of badUtf8) t.equal(utf8Decode(Uint8Array.from(bytes)), null, name)
  const rand = rng(7)
  let mismatches = 0
  for (let i = 0; i < 500; i++) {
    const a = new Uint8Array(Math.floor(rand() * 40))
    for (let k = 0; k < a.length; k++) a[k] = Math.floor(rand() * 256)
    const enc = base64Encode(a)
    if (enc !== Buffer.from(a).toString('base64')) mismatches++
    const dec = base64Decode(enc)
    if (dec === null || Buffer.compare(Buffer.from(dec), Buffer.from(a)) !== 0) mismatches++
  }
  t.equal(mismatches, 0, 'base64 round trips')
  for (const s of ['QQ', 'QR==', 'QUI=x', 'QU=I', '====', 'Q===', 'QUJD\n', 'QU-_', 'QUJ=']) {
    t.equal(base64Decode(s), null, JSON.stringify(s))
  }
})
