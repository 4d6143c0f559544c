// The SOCKS5 UDP request header parser (native/socks_udp.c), compiled with
// ASan/UBSan with its driver test/native/socks-udp-test.c, which answers
// each datagram it reads: hand-checked IPv4, IPv6 and domain headers, then a
// fixed-seed fuzz of valid, mutated (truncated, lying lengths, every ATYP,
// domain length 0 and 255, bytes flipped) and random datagrams, each judged
// against the rules socks_udp.h documents. Each datagram sits in a buffer of
// exactly its size, so a read past it is an ASan report.

import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import t from 'tap'
import { rng } from '../lib/rng.js'
import { SANITIZER_RE, compileSanitized, sanitizerEnv } from '../lib/drivers.js'
import { repoRoot } from '../lib/ugate.js'

const outDir = resolve(repoRoot, 'build/socks-udp-test')
const SOURCES = [
  'test/native/socks-udp-test.c',
  'native/socks_udp.c',
  'native/udp.c',
  'native/udp_send.c',
  'native/engine.c',
]
const bin = resolve(outDir, 'socks-udp-test')
compileSanitized(bin, [...SOURCES, '-lpthread'])

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** The driver's answer to each datagram, and what the sanitizers said. */
function parseAll(datagrams: Uint8Array[]): { answers: string[]; stderr: string; status: number | null } {
  const input = datagrams.map((d) => hex(d) + '\n').join('')
  const r = spawnSync(bin, [], { env: sanitizerEnv, input, encoding: 'utf8', maxBuffer: 64 << 20 })
  return { answers: r.stdout.split('\n').slice(0, -1), stderr: r.stderr, status: r.status }
}

/**
 * What socks_udp.h documents: "00 00 FRAG ATYP DST.ADDR DST.PORT"; 0 when
 * shorter than 4 bytes or RSV is not zero, -1 for FRAG ≠ 0, then 0 for an
 * ATYP other than 1, 3, 4, a domain of length 0 or not printable ASCII
 * (0x21-0x7e), a header longer than the datagram, or port 0.
 */
type Want = { code: 0 | -1 } | { code: 1; len: number; atyp: 1 | 3 | 4; addr: Uint8Array; port: number; domain: string }
function model(d: Uint8Array): Want {
  if (d.length < 4 || d[0] !== 0 || d[1] !== 0) return { code: 0 }
  if (d[2] !== 0) return { code: -1 }
  const atyp = d[3]!
  let len: number
  if (atyp === 1) len = 10
  else if (atyp === 4) len = 22
  else if (atyp === 3 && d.length >= 5 && d[4]! > 0) len = 7 + d[4]!
  else return { code: 0 }
  if (d.length < len) return { code: 0 }
  const addr = d.subarray(atyp === 3 ? 5 : 4, len - 2)
  if (atyp === 3 && addr.some((c) => c < 0x21 || c > 0x7e)) return { code: 0 }
  const port = (d[len - 2]! << 8) | d[len - 1]!
  if (port === 0) return { code: 0 }
  return { code: 1, len, atyp, addr, port, domain: atyp === 3 ? Buffer.from(addr).toString('latin1') : '' }
}

/** An IPv6 address in one spelling (the URL standard's), from text or 16 bytes. */
const v6Text = (s: string) => new URL(`http://[${s}]/`).hostname
const v6Bytes = (b: Uint8Array) =>
  v6Text(Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(':'))

/** Whether the driver's answer is the model's; why not when it is not. */
function judge(d: Uint8Array, answer: string | undefined): string | null {
  const want = model(d)
  if (answer === undefined) return 'no answer'
  if (want.code !== 1) return answer === String(want.code) ? null : `want ${want.code}`
  const [len, host, port, taken, ...rest] = answer.split(' ')
  if (rest.length > 0 || taken === undefined) return 'not a parsed answer'
  if (len !== String(want.len)) return `want length ${want.len}`
  if (port !== String(want.port)) return `want port ${want.port}`
  const ip =
    want.atyp === 1 ? Array.from(want.addr).join('.') : want.atyp === 4 ? `[${v6Bytes(want.addr)}]` : want.domain
  const hostIp = want.atyp === 4 ? `[${v6Text(host!)}]` : host
  if (hostIp !== ip) return `want host ${ip}`
  if (want.atyp === 3) return taken === '-' ? null : 'a domain header is no reply header'
  const [tLen, tFamily, tAddr, tPort] = taken.split('/')
  const tIp = want.atyp === 4 ? `[${v6Text(tAddr!)}]` : tAddr
  const family = want.atyp === 1 ? '4' : '6'
  if (tLen !== len || tFamily !== family || tIp !== ip || tPort !== port)
    return `want taken ${len}/${family}/${ip}/${port}`
  return null
}

const bytes = (...parts: Array<number[] | string | Uint8Array>) =>
  new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : [...p])))

t.test('hand-checked headers: IPv4, IPv6, domain, refusals', async (t) => {
  const cases: Array<[string, Uint8Array, string]> = [
    ['IPv4 with payload', bytes([0, 0, 0, 1, 127, 0, 0, 1, 0, 53], 'query'), '10 127.0.0.1 53 10/4/127.0.0.1/53'],
    ['IPv4, no payload', bytes([0, 0, 0, 1, 10, 1, 2, 3, 0xff, 0xff]), '10 10.1.2.3 65535 10/4/10.1.2.3/65535'],
    ['IPv6 loopback', bytes([0, 0, 0, 4], new Array(15).fill(0), [1, 1, 0xbb], 'x'), '22 ::1 443 22/6/::1/443'],
    [
      'IPv6 2001:db8::8:1',
      bytes([0, 0, 0, 4, 0x20, 0x01, 0x0d, 0xb8], new Array(8).fill(0), [0, 8, 0, 1, 0x1f, 0x90]),
      '22 2001:db8::8:1 8080 22/6/2001:db8::8:1/8080',
    ],
    ['domain', bytes([0, 0, 0, 3, 11], 'example.com', [0, 80], 'GET'), '18 example.com 80 -'],
    ['domain of one byte', bytes([0, 0, 0, 3, 1], 'x', [0x12, 0x34]), '8 x 4660 -'],
    ['domain of 255 bytes', bytes([0, 0, 0, 3, 255], 'a'.repeat(255), [0, 1]), `262 ${'a'.repeat(255)} 1 -`],
    ['domain of length 0', bytes([0, 0, 0, 3, 0, 0, 80]), '0'],
    ['domain one byte short', bytes([0, 0, 0, 3, 4], 'abc', [0, 80]), '0'],
    ['domain with a space', bytes([0, 0, 0, 3, 3], 'a b', [0, 80]), '0'],
    ['domain with a NUL', bytes([0, 0, 0, 3, 3], 'a\0b', [0, 80]), '0'],
    ['domain with a byte over 0x7e', bytes([0, 0, 0, 3, 3], 'a\x7fb', [0, 80]), '0'],
    ['fragment', bytes([0, 0, 1, 1, 127, 0, 0, 1, 0, 53]), '-1'],
    ['fragment, the rest cut', bytes([0, 0, 0x80, 1]), '-1'],
    ['RSV not zero', bytes([0, 1, 0, 1, 127, 0, 0, 1, 0, 53]), '0'],
    ['RSV not zero with a fragment', bytes([1, 0, 1, 1, 127, 0, 0, 1, 0, 53]), '0'],
    ['ATYP 2', bytes([0, 0, 0, 2, 127, 0, 0, 1, 0, 53]), '0'],
    ['ATYP 0', bytes([0, 0, 0, 0, 127, 0, 0, 1, 0, 53]), '0'],
    ['IPv4 one byte short', bytes([0, 0, 0, 1, 127, 0, 0, 1, 0]), '0'],
    ['IPv6 one byte short', bytes([0, 0, 0, 4], new Array(17).fill(1)), '0'],
    ['port 0', bytes([0, 0, 0, 1, 127, 0, 0, 1, 0, 0]), '0'],
    ['3 bytes', bytes([0, 0, 0]), '0'],
    ['empty', bytes(), '0'],
  ]
  const { answers, stderr, status } = parseAll(cases.map((c) => c[1]))
  cases.forEach(([what, d, want], i) => {
    t.equal(answers[i], want, what)
    t.equal(judge(d, answers[i]), null, `${what}: as the model says`)
  })
  t.equal(status, 0, 'exit 0')
  t.notMatch(stderr, SANITIZER_RE, 'no sanitizer report')
})

t.test('seeded fuzz: every datagram parsed as sent or refused with its code', async (t) => {
  const r = rng(0x50c55)
  const int = (n: number) => Math.floor(r() * n)
  const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256))
  const printable = (n: number) => Uint8Array.from({ length: n }, () => 0x21 + int(0x7f - 0x21))
  // IPv6 addresses inet_ntop spells in other ways: ::, ::1, v4-mapped, v4-compatible, a zero run.
  const v6 = (): Uint8Array => {
    const b = randomBytes(16)
    switch (int(6)) {
      case 0:
        return new Uint8Array(16)
      case 1:
        return bytes(new Array(15).fill(0), [1])
      case 2:
        return bytes(new Array(10).fill(0), [0xff, 0xff], randomBytes(4))
      case 3:
        return bytes(new Array(12).fill(0), randomBytes(4))
      case 4:
        b.fill(0, int(8) * 2, 16 - int(4) * 2)
        return b
      default:
        return b
    }
  }
  const valid = (): Uint8Array => {
    const port = int(20) === 0 ? [0, 0] : [...randomBytes(2)]
    const payload = randomBytes(int(4) === 0 ? 0 : int(40))
    switch (int(3)) {
      case 0:
        return bytes([0, 0, 0, 1], randomBytes(4), port, payload)
      case 1:
        return bytes([0, 0, 0, 4], v6(), port, payload)
      default: {
        const n = [1, 255, 254, 1 + int(255)][int(4)]!
        return bytes([0, 0, 0, 3, n], printable(n), port, payload)
      }
    }
  }
  const mutate = (d: Uint8Array): Uint8Array => {
    const m = Uint8Array.from(d)
    switch (int(9)) {
      case 0: // truncated
        return m.subarray(0, int(m.length + 1))
      case 1: // bytes flipped
        for (let k = 1 + int(3); k > 0; k--) m[int(m.length)] = int(256)
        return m
      case 2: // a domain length that lies, 0 or 255 among them
        if (m.length > 4) m[4] = [0, 255, int(256)][int(3)]!
        return m
      case 3: // every ATYP, the address read as another one's
        m[3] = int(3) === 0 ? int(256) : [1, 3, 4][int(3)]!
        return m
      case 4: // a fragment
        m[2] = 1 + int(255)
        return m
      case 5: // RSV
        m[int(2)] = 1 + int(255)
        return m
      case 6: // a byte a name may not hold
        if (m[3] === 3 && m.length > 5) m[5 + int(Math.min(m[4]!, m.length - 5))] = [0, 0x20, 0x7f, 0x80, 0xff][int(5)]!
        return m
      case 7: // extended
        return bytes(m, randomBytes(1 + int(300)))
      default: // cut inside the header
        return m.subarray(0, int(Math.min(m.length, 263) + 1))
    }
  }
  const garbage = (): Uint8Array => {
    const d = randomBytes(int(300))
    if (d.length >= 3 && int(2) === 0) d.fill(0, 0, 3) // past RSV and FRAG
    return d
  }
  const datagrams: Uint8Array[] = []
  for (let i = 0; i < 30000; i++) {
    const k = int(10)
    datagrams.push(k < 3 ? valid() : k < 9 ? mutate(valid()) : garbage())
  }
  const { answers, stderr, status } = parseAll(datagrams)
  t.equal(answers.length, datagrams.length, 'one answer a datagram')
  const seen = new Map<string, number>()
  let wrong = 0
  datagrams.forEach((d, i) => {
    const why = judge(d, answers[i])
    const want = model(d)
    const kind = want.code === 1 ? `atyp ${want.atyp}` : `code ${want.code}`
    seen.set(kind, (seen.get(kind) ?? 0) + 1)
    if (why !== null && wrong++ < 20) t.fail(`${hex(d)} → ${answers[i]}: ${why}`)
  })
  t.equal(wrong, 0, "every answer is the model's")
  for (const kind of ['atyp 1', 'atyp 3', 'atyp 4', 'code 0', 'code -1'])
    t.ok((seen.get(kind) ?? 0) >= 1000, `${kind}: ${seen.get(kind) ?? 0} datagrams`)
  t.equal(status, 0, 'exit 0')
  t.notMatch(stderr, SANITIZER_RE, 'no sanitizer report')
})
