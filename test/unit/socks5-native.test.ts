// The SOCKS5 server parsers in C (native/socks5.c, used by the native SOCKS
// handshake in native/mod_gate.c), compiled with ASan/UBSan with their
// driver test/native/socks5-test.c. The oracle is src/core/socks.ts, the
// JS path's parsers: on every input both must say the same (need more,
// refused with the same reply code and error text, or parsed to the same
// values and host text). Hand-picked cases, then a fixed-seed fuzz of valid,
// mutated and random greetings, RFC 1929 messages and requests, each in a
// buffer of exactly its size (a read past it is an ASan report).

import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import t from 'tap'
import { formatHostPort } from '../../src/core/address.js'
import { utf8Encode } from '../../src/core/bytes.js'
import {
  chooseSocks5Method,
  parseSocks5Greeting,
  parseSocks5Request,
  parseSocks5UserPass,
} from '../../src/core/socks.js'
import { rng } from '../lib/rng.js'
import { SANITIZER_RE, compileSanitized, sanitizerEnv } from '../lib/drivers.js'
import { repoRoot } from '../lib/ugate.js'

const outDir = resolve(repoRoot, 'build/socks5-test')
const bin = resolve(outDir, 'socks5-test')
compileSanitized(bin, ['test/native/socks5-test.c', 'native/socks5.c'])

type Kind = 'g' | 'G' | 'u' | 'r'
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const hexOrDash = (b: Uint8Array) => (b.length === 0 ? '-' : hex(b))

function runAll(inputs: Array<[Kind, Uint8Array]>): { answers: string[]; stderr: string; status: number | null } {
  const input = inputs.map(([k, d]) => `${k} ${hex(d)}\n`).join('')
  const r = spawnSync(bin, [], { env: sanitizerEnv, input, encoding: 'utf8', maxBuffer: 64 << 20 })
  return { answers: r.stdout.split('\n').slice(0, -1), stderr: r.stderr, status: r.status }
}

const ATYP = { ipv4: 1, domain: 3, ipv6: 4 } as const

/** What the JS parsers say, in the driver's words. */
function oracle(kind: Kind, d: Uint8Array): string {
  if (kind === 'g' || kind === 'G') {
    const r = parseSocks5Greeting(d)
    if (r.status === 'need-more') return 'need'
    if (r.status === 'invalid') return `bad 0 ${r.error}`
    return `ok ${r.consumed} ${chooseSocks5Method(r.methods, kind === 'G')}`
  }
  if (kind === 'u') {
    const r = parseSocks5UserPass(d)
    if (r.status === 'need-more') return 'need'
    if (r.status === 'invalid') return `bad 0 ${r.error}`
    return `ok ${r.consumed} ${hexOrDash(utf8Encode(r.username))} ${hexOrDash(utf8Encode(r.password))}`
  }
  const r = parseSocks5Request(d)
  if (r.status === 'need-more') return 'need'
  if (r.status === 'invalid') return `bad ${r.reply} ${r.error}`
  return `ok ${r.consumed} ${r.cmd} ${ATYP[r.atyp]} ${r.port} ${formatHostPort(r.host, r.port)} ${r.host}`
}

const bytes = (...parts: Array<number[] | string | Uint8Array>) =>
  new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : [...p])))

t.test('hand-picked inputs: the C answer is the JS one', async (t) => {
  const v6 = (...g: number[]) => g.flatMap((x) => [x >> 8, x & 255])
  const cases: Array<[string, Kind, Uint8Array, string]> = [
    ['greeting, no auth', 'g', bytes([5, 1, 0]), 'ok 3 0'],
    ['greeting, only user/pass offered, no users', 'g', bytes([5, 1, 2]), 'ok 3 255'],
    ['greeting with users', 'G', bytes([5, 2, 0, 2]), 'ok 4 2'],
    ['greeting with users, no 0x02', 'G', bytes([5, 1, 0]), 'ok 3 255'],
    [
      'greeting NMETHODS 0',
      'g',
      bytes([5, 0]),
      'bad 0 socks5: greeting offers no authentication methods (NMETHODS 0x00)',
    ],
    ['greeting short', 'g', bytes([5, 3, 0]), 'need'],
    ['greeting version 4', 'g', bytes([4, 1]), 'bad 0 socks5: unsupported version 0x04 in greeting'],
    ['user/pass', 'u', bytes([1, 3], 'bob', [2], 'pw'), 'ok 8 626f62 7077'],
    ['user/pass, empty both', 'u', bytes([1, 0, 0]), 'ok 3 - -'],
    ['user/pass, UTF-8 user', 'u', bytes([1, 2, 0xc3, 0xa9, 1], 'x'), 'ok 6 c3a9 78'],
    ['user/pass, bad UTF-8 user', 'u', bytes([1, 2, 0xc3, 0x28, 0]), 'bad 0 socks5: username "\\xc3(" is not UTF-8'],
    ['user/pass, surrogate password', 'u', bytes([1, 0, 3, 0xed, 0xa0, 0x80]), 'bad 0 socks5: password is not UTF-8'],
    ['user/pass, version 5', 'u', bytes([5, 0, 0]), 'bad 0 socks5: unsupported username/password auth version 0x05'],
    ['CONNECT IPv4', 'r', bytes([5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]), 'ok 10 1 1 8080 127.0.0.1:8080 127.0.0.1'],
    [
      'CONNECT IPv6',
      'r',
      bytes([5, 1, 0, 4], v6(0x2001, 0xdb8, 0, 0, 0, 0, 8, 1), [0, 80]),
      'ok 22 1 4 80 [2001:db8::8:1]:80 2001:db8::8:1',
    ],
    [
      'CONNECT v4-mapped',
      'r',
      bytes([5, 1, 0, 4], v6(0, 0, 0, 0, 0, 0xffff, 0x0a00, 1), [0, 80]),
      'ok 22 1 4 80 [::ffff:10.0.0.1]:80 ::ffff:10.0.0.1',
    ],
    [
      'CONNECT one zero group',
      'r',
      bytes([5, 1, 0, 4], v6(1, 0, 2, 3, 4, 5, 6, 7), [0, 80]),
      'ok 22 1 4 80 [1:0:2:3:4:5:6:7]:80 1:0:2:3:4:5:6:7',
    ],
    [
      'CONNECT domain',
      'r',
      bytes([5, 1, 0, 3, 11], 'example.com', [1, 0xbb]),
      'ok 18 1 3 443 example.com:443 example.com',
    ],
    ['CONNECT domain with a colon', 'r', bytes([5, 1, 0, 3, 3], 'a:b', [0, 80]), 'ok 10 1 3 80 [a:b]:80 a:b'],
    ['UDP ASSOCIATE', 'r', bytes([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]), 'ok 10 3 1 0 0.0.0.0:0 0.0.0.0'],
    ['command 4', 'r', bytes([5, 4, 0, 1]), 'bad 7 socks5: unsupported command 0x04'],
    ['RSV 1', 'r', bytes([5, 1, 1, 1]), 'bad 1 socks5: reserved byte is 0x01, not 0x00'],
    ['ATYP 2', 'r', bytes([5, 1, 0, 2]), 'bad 8 socks5: unsupported address type 0x02 in request'],
    ['empty domain', 'r', bytes([5, 1, 0, 3, 0]), 'bad 1 socks5: empty domain name in request'],
    [
      'domain with a space, incomplete',
      'r',
      bytes([5, 1, 0, 3, 9], 'a b'),
      'bad 1 socks5: bad byte 0x20 in domain name "a b" in request',
    ],
    ['request version 4', 'r', bytes([4, 1, 0, 1]), 'bad 1 socks5: unsupported version 0x04 in request'],
    ['IPv4 request short', 'r', bytes([5, 1, 0, 1, 1, 2, 3, 4, 0]), 'need'],
  ]
  const { answers, stderr, status } = runAll(cases.map((c) => [c[1], c[2]]))
  cases.forEach(([what, kind, d, want], i) => {
    t.equal(answers[i], want, what)
    t.equal(answers[i], oracle(kind, d), `${what}: as src/core/socks.ts says`)
  })
  t.equal(status, 0, 'exit 0')
  t.notMatch(stderr, SANITIZER_RE, 'no sanitizer report')
})

t.test('seeded fuzz: every input answered as src/core/socks.ts answers it', async (t) => {
  const r = rng(0x5c5c5)
  const int = (n: number) => Math.floor(r() * n)
  const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256))
  const printable = (n: number) => Uint8Array.from({ length: n }, () => 0x21 + int(0x7f - 0x21))
  const utf8ish = (n: number) =>
    int(3) === 0
      ? randomBytes(n)
      : utf8Encode(Array.from({ length: n }, () => String.fromCodePoint(int(0x2ffff))).join(''))
  const v6 = (): Uint8Array => {
    const b = randomBytes(16)
    switch (int(6)) {
      case 0:
        return new Uint8Array(16)
      case 1:
        return bytes(new Array(10).fill(0), [0xff, 0xff], randomBytes(4))
      case 2:
        return bytes(new Array(12).fill(0), randomBytes(4))
      case 3: // zero runs of every length and place, single zero groups
        for (let k = 0; k < 3; k++) {
          const at = int(8) * 2
          b.fill(0, at, Math.min(16, at + 2 * (1 + int(4))))
        }
        return b
      default:
        return b
    }
  }
  const greeting = (): Uint8Array => {
    const n = int(10) === 0 ? 255 : 1 + int(4)
    return bytes(
      [5, n],
      Uint8Array.from({ length: n }, () => (int(2) === 0 ? int(4) : int(256))),
    )
  }
  const userpass = (): Uint8Array => {
    const u = utf8ish(int(6)).subarray(0, 255)
    const p = utf8ish(int(6)).subarray(0, 255)
    return bytes([1, u.length], u, [p.length], p)
  }
  const request = (): Uint8Array => {
    const head = [5, [1, 1, 1, 2, 3][int(5)]!, 0]
    switch (int(3)) {
      case 0:
        return bytes(head, [1], randomBytes(6))
      case 1:
        return bytes(head, [4], v6(), randomBytes(2))
      default: {
        const n = [1, 255, 1 + int(255)][int(3)]!
        return bytes(head, [3, n], printable(n), randomBytes(2))
      }
    }
  }
  const mutate = (d: Uint8Array): Uint8Array => {
    const m = Uint8Array.from(d)
    switch (int(6)) {
      case 0: // truncated
        return m.subarray(0, int(m.length + 1))
      case 1: // bytes flipped
        for (let k = 1 + int(3); k > 0; k--) m[int(m.length)] = int(256)
        return m
      case 2: // a length that lies (NMETHODS, ULEN, the domain's)
        m[[1, 1, 4][int(3)]!] = [0, 255, int(256)][int(3)]!
        return m
      case 3: // a version, command, RSV or ATYP byte
        m[int(4)] = int(3) === 0 ? int(256) : int(6)
        return m
      case 4: // a byte a domain may not hold
        if (m.length > 5) m[5 + int(m.length - 5)] = [0, 0x20, 0x7f, 0x80, 0xff, 0x22, 0x5c][int(7)]!
        return m
      default: // pipelined bytes after it
        return bytes(m, randomBytes(1 + int(20)))
    }
  }
  const inputs: Array<[Kind, Uint8Array]> = []
  for (let i = 0; i < 30000; i++) {
    const k = int(4)
    const kind: Kind = k === 0 ? (int(2) === 0 ? 'g' : 'G') : k === 1 ? 'u' : 'r'
    const make = kind === 'u' ? userpass : kind === 'r' ? request : greeting
    const v = int(10)
    inputs.push([kind, v < 3 ? make() : v < 9 ? mutate(make()) : randomBytes(int(300))])
  }
  const { answers, stderr, status } = runAll(inputs)
  t.equal(answers.length, inputs.length, 'one answer an input')
  const seen = new Map<string, number>()
  let wrong = 0
  inputs.forEach(([kind, d], i) => {
    const want = oracle(kind, d)
    const key = `${kind.toLowerCase()} ${want.split(' ')[0]}`
    seen.set(key, (seen.get(key) ?? 0) + 1)
    if (answers[i] !== want && wrong++ < 20) t.fail(`${kind} ${hex(d)}: C says ${answers[i]}, JS ${want}`)
  })
  t.equal(wrong, 0, 'every answer is the JS one')
  for (const key of ['g ok', 'g bad', 'g need', 'u ok', 'u bad', 'u need', 'r ok', 'r bad', 'r need'])
    t.ok((seen.get(key) ?? 0) >= 200, `${key}: ${seen.get(key) ?? 0} inputs`)
  t.equal(status, 0, 'exit 0')
  t.notMatch(stderr, SANITIZER_RE, 'no sanitizer report')
})
