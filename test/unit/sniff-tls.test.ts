import { readFileSync } from 'node:fs'
import t from 'tap'
import type { Test } from 'tap'
import { sniff } from '../../src/core/sniff/index.js'
import { sniffTls, TLS_MAX_HELLO } from '../../src/core/sniff/tls.js'
import type { SniffResult } from '../../src/core/sniff/types.js'

// ---------------------------------------------------------------------------
// Helpers (test-side, independent of the code under test)

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../fixtures/handshakes/${name}.bin`, import.meta.url)))
}

interface Rec {
  type: number
  version: number
  payload: Uint8Array
}

/** The TLS records in buf (whole ones only). */
function records(buf: Uint8Array): Rec[] {
  const out: Rec[] = []
  let p = 0
  while (p + 5 <= buf.length) {
    const len = (buf[p + 3]! << 8) | buf[p + 4]!
    if (p + 5 + len > buf.length) break
    out.push({ type: buf[p]!, version: (buf[p + 1]! << 8) | buf[p + 2]!, payload: buf.subarray(p + 5, p + 5 + len) })
    p += 5 + len
  }
  return out
}

/** The whole ClientHello handshake message (4-byte header + body) from a capture. */
function handshake(buf: Uint8Array): Uint8Array {
  const parts = records(buf)
    .filter((r) => r.type === 22)
    .map((r) => r.payload)
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    all.set(p, o)
    o += p.length
  }
  const len = (all[1]! << 16) | (all[2]! << 8) | all[3]!
  return all.subarray(0, 4 + len)
}

/** Rewrite the record layer: hs split into records of the given sizes (cycled). */
function reframe(hs: Uint8Array, sizes: number[], version = 0x0301): Uint8Array {
  const out: number[] = []
  let p = 0
  let k = 0
  while (p < hs.length) {
    const n = Math.min(sizes[k++ % sizes.length]!, hs.length - p)
    out.push(22, version >> 8, version & 0xff, n >> 8, n & 0xff)
    for (let i = 0; i < n; i++) out.push(hs[p + i]!)
    p += n
  }
  return new Uint8Array(out)
}

/** A copy of a handshake message with its u24 length field set to len. */
function withLength(hs: Uint8Array, len: number): Uint8Array {
  const b = new Uint8Array(hs)
  b[1] = (len >> 16) & 0xff
  b[2] = (len >> 8) & 0xff
  b[3] = len & 0xff
  return b
}

/** Extension types of a ClientHello handshake message, in order, with their bodies. */
function extensions(hs: Uint8Array): Array<[number, Uint8Array]> {
  let p = 4 + 2 + 32
  p += 1 + hs[p]!
  p += 2 + ((hs[p]! << 8) | hs[p + 1]!)
  p += 1 + hs[p]!
  const end = p + 2 + ((hs[p]! << 8) | hs[p + 1]!)
  p += 2
  const out: Array<[number, Uint8Array]> = []
  while (p < end) {
    const type = (hs[p]! << 8) | hs[p + 1]!
    const len = (hs[p + 2]! << 8) | hs[p + 3]!
    out.push([type, hs.subarray(p + 4, p + 4 + len)])
    p += 4 + len
  }
  return out
}

const ascii = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0))
const u16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff]
const vec8 = (b: number[]): number[] => [b.length, ...b]
const vec16 = (b: number[]): number[] => [...u16(b.length), ...b]
const ext = (type: number, body: number[]): number[] => [...u16(type), ...u16(body.length), ...body]
const sniExt = (name: string | number[]): number[] =>
  ext(0, vec16([0, ...vec16(typeof name === 'string' ? ascii(name) : name)]))
const alpnExt = (names: string[]): number[] => ext(16, vec16(names.flatMap((n) => vec8(ascii(n)))))

interface HelloParts {
  version?: number[]
  sid?: number[]
  cs?: number[]
  cm?: number[]
  /** Extension bytes; null: no extensions block at all. */
  exts?: number[][] | null
  /** Bytes used for the extensions block instead of vec16(exts). */
  rawExts?: number[]
}

/** A ClientHello handshake message (type, u24 length, body) from parts. */
function hello(p: HelloParts = {}): number[] {
  const body = [
    ...(p.version ?? [3, 3]),
    ...new Array<number>(32).fill(7),
    ...(p.sid ?? vec8(new Array<number>(32).fill(1))),
    ...(p.cs ?? vec16([0x13, 0x01, 0x13, 0x02])),
    ...(p.cm ?? vec8([0])),
    ...(p.rawExts ?? (p.exts === null ? [] : vec16((p.exts ?? [sniExt('synth.test'), alpnExt(['h2'])]).flat()))),
  ]
  return [1, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff, ...body]
}

/** One record (or several, when longer than 16384) around a handshake message. */
function wrap(hs: number[], version = 0x0301): Uint8Array {
  return reframe(new Uint8Array(hs), [16384], version)
}

/** Feed buf growing by `step` bytes; every shorter prefix must be need-more. Returns the last result. */
function feed(t: Test, buf: Uint8Array, step: number, label: string): SniffResult {
  let bad = 0
  for (let n = 0; n < buf.length; n += step) {
    const r = sniffTls(buf.subarray(0, n))
    if (r.status !== 'need-more' && bad++ < 3) t.fail(`${label}: prefix ${n}/${buf.length} gave ${JSON.stringify(r)}`)
  }
  t.equal(bad, 0, `${label}: every prefix (step ${step}) is need-more`)
  return sniffTls(buf)
}

// ---------------------------------------------------------------------------
// Real captures

const FIXTURES: Array<[string, string | undefined, string[] | undefined]> = [
  ['curl-tls', 'example.test', ['h2', 'http/1.1']],
  ['openssl-sni-alpn', 'openssl.test', ['http/1.1']],
  ['openssl-noservername', undefined, undefined],
  [
    'openssl-fragmented',
    'frag.openssl.test',
    [...Array.from({ length: 12 }, (_, i) => `x${String(i).padStart(2, '0')}-${'x'.repeat(56)}`), 'http/1.1'],
  ],
  ['chromium-tls', 'chromium.test', ['h2', 'http/1.1']],
]

t.test('real ClientHellos: host and ALPN', async (t) => {
  for (const [name, host, alpn] of FIXTURES) {
    const buf = fixture(name)
    const want: SniffResult = { status: 'ok', proto: 'tls' }
    if (host !== undefined) want.host = host
    if (alpn !== undefined) want.alpn = alpn
    t.same(sniffTls(buf), want, `${name} (${buf.length} bytes)`)
    t.same(sniff(buf, { maxBytes: 65536 }), want, `${name} via sniff()`)
  }
})

t.test('real ClientHellos: every prefix is need-more', async (t) => {
  for (const [name] of FIXTURES) {
    const r = feed(t, fixture(name), 1, name)
    t.equal(r.status, 'ok', `${name} whole`)
    // and through sniff(), with a limit above the size
    const buf = fixture(name)
    let bad = 0
    for (let n = 1; n < buf.length; n++)
      if (sniff(buf.subarray(0, n), { maxBytes: 65536 }).status !== 'need-more') bad++
    t.equal(bad, 0, `${name}: sniff() prefixes are need-more`)
  }
})

t.test('openssl -max_send_frag 512: a real ClientHello in several records', async (t) => {
  const recs = records(fixture('openssl-fragmented'))
  t.ok(recs.length >= 3, `${recs.length} records`)
  t.ok(
    recs.every((r) => r.type === 22 && r.payload.length <= 512),
    'all handshake records of <= 512 bytes',
  )
  const hs = handshake(fixture('openssl-fragmented'))
  t.ok(hs.length > 1024, `hello of ${hs.length} bytes`)
})

t.test('chromium: large, GREASE, post-quantum key share', async (t) => {
  const hs = handshake(fixture('chromium-tls'))
  t.ok(hs.length > 1500, `hello of ${hs.length} bytes`)
  const exts = extensions(hs)
  const isGrease = (v: number): boolean => (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff)
  t.ok(
    exts.some(([type]) => isGrease(type)),
    'a GREASE extension',
  )
  const ks = exts.find(([type]) => type === 51)
  t.ok(ks, 'key_share present')
  const groups: number[] = []
  if (ks) {
    const b = ks[1]
    for (let p = 2; p + 4 <= b.length;) {
      groups.push((b[p]! << 8) | b[p + 1]!)
      p += 4 + ((b[p + 2]! << 8) | b[p + 3]!)
    }
  }
  t.ok(groups.includes(0x11ec), `X25519MLKEM768 key share (groups ${groups.map((g) => g.toString(16)).join(',')})`)
})

// ---------------------------------------------------------------------------
// Record-layer fragmentation and byte-at-a-time delivery, derived from captures

t.test('re-fragmented records, fed 1 byte at a time', async (t) => {
  const cases: Array<[string, number[]]> = [
    ['curl-tls', [1]],
    ['openssl-sni-alpn', [1, 2, 3]],
    ['chromium-tls', [7]],
    ['chromium-tls', [1, 100, 2, 513, 3]],
    ['openssl-fragmented', [5, 1]],
  ]
  for (const [name, sizes] of cases) {
    const orig = sniffTls(fixture(name))
    const hs = handshake(fixture(name))
    const buf = reframe(hs, sizes)
    t.ok(records(buf).length > 3, `${name} in ${records(buf).length} records of ${sizes.join('/')} bytes`)
    const r = feed(t, buf, 1, `${name} records ${sizes.join('/')}`)
    t.same(r, orig, `${name} records ${sizes.join('/')}: same result as the capture`)
  }
})

t.test('chromium hello in 1-byte records, fed in 1-byte steps', async (t) => {
  const buf = reframe(handshake(fixture('chromium-tls')), [1])
  const r = feed(t, buf, 1, 'chromium 1-byte records')
  t.same(r, { status: 'ok', proto: 'tls', host: 'chromium.test', alpn: ['h2', 'http/1.1'] })
})

t.test('record versions 0x0301-0x0304 mixed; bytes after the hello ignored', async (t) => {
  const hs = handshake(fixture('curl-tls'))
  const a = reframe(hs.subarray(0, 100), [100], 0x0301)
  const b = reframe(hs.subarray(100), [1000], 0x0303)
  const tail = new Uint8Array([20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 5, 1, 2, 3]) // ChangeCipherSpec, application data
  const buf = new Uint8Array([...a, ...b, ...tail])
  t.same(sniffTls(buf), { status: 'ok', proto: 'tls', host: 'example.test', alpn: ['h2', 'http/1.1'] })
  t.equal(sniffTls(reframe(hs, [200], 0x0304)).status, 'ok', 'record version 0x0304')
  // The hello ends inside a record that goes on (and is not complete yet).
  const c = new Uint8Array([...reframe(hs, [hs.length]).subarray(0, 5 + hs.length), 99])
  c[3] = ((hs.length + 10) >> 8) & 0xff
  c[4] = (hs.length + 10) & 0xff
  t.equal(sniffTls(c).status, 'ok', 'hello complete before its record is')
})

// ---------------------------------------------------------------------------
// Synthetic ClientHellos: names, ALPN, limits

t.test('synthetic: SNI forms', async (t) => {
  const ok: Array<[number[][] | null, string | undefined, string[] | undefined]> = [
    [[sniExt('Example.TEST.')], 'example.test', undefined], // lower-cased, trailing dot stripped
    [[sniExt('a-b_c.1.example')], 'a-b_c.1.example', undefined],
    [
      [sniExt(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`)],
      `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
      undefined,
    ],
    [[alpnExt(['h2'])], undefined, ['h2']],
    [[], undefined, undefined], // empty extensions block
    [null, undefined, undefined], // no extensions block (TLS 1.2 and older)
    [[ext(0xfe0d, [1, 2, 3]), sniExt('x.test'), ext(0x0a0a, [])], 'x.test', undefined], // unknown and GREASE ones skipped
    [[ext(0, vec16([9, ...vec16([1, 2]), 0, ...vec16(ascii('y.test'))]))], 'y.test', undefined], // unknown name_type skipped
    [[alpnExt(['h2', 'http/1.1', 'a\\b', '\x01'])], undefined, ['h2', 'http/1.1', 'a\\x5cb', '\\x01']],
  ]
  for (const [exts, host, alpn] of ok) {
    const want: SniffResult = { status: 'ok', proto: 'tls' }
    if (host !== undefined) want.host = host
    if (alpn !== undefined) want.alpn = alpn
    t.same(sniffTls(wrap(hello({ exts }))), want, JSON.stringify(want))
  }
})

t.test('synthetic: bad ClientHellos are invalid, with the reason', async (t) => {
  const long = `${'a'.repeat(63)}.`.repeat(4) + 'b' // 257 chars
  const cases: Array<[string, number[], RegExp]> = [
    [
      'SNI length overruns',
      hello({ rawExts: vec16([...u16(0), ...u16(9), 0, 2, 0, 0]) }),
      /^tls: extension 0 length 9 exceeds remaining 4$/,
    ],
    [
      'extensions length too big',
      hello({ rawExts: [...u16(20), ...sniExt('a.b')] }),
      /^tls: extensions length 20 does not match remaining 12$/,
    ],
    [
      'extensions length too small',
      hello({ rawExts: [...u16(3), ...sniExt('a.b')] }),
      /^tls: extensions length 3 does not match remaining 12$/,
    ],
    ['one stray byte', hello({ rawExts: [0] }), /^tls: 1 stray byte after compression_methods$/],
    [
      'extension header cut',
      hello({ rawExts: vec16([0, 0, 0]) }),
      /^tls: extension header truncated \(3 bytes left\)$/,
    ],
    [
      'duplicate extension',
      hello({ exts: [sniExt('a.test'), alpnExt(['h2']), sniExt('b.test')] }),
      /^tls: extension 0 appears twice$/,
    ],
    [
      'server_name_list too long',
      hello({ exts: [ext(0, [...u16(12), 0, ...vec16(ascii('a.test'))])] }),
      /^tls: server_name_list length 12 does not match remaining 9$/,
    ],
    ['server_name_list empty', hello({ exts: [ext(0, [0, 0])] }), /^tls: server_name_list is empty$/],
    ['server_name extension empty', hello({ exts: [ext(0, [])] }), /^tls: server_name extension length 0 too short/],
    [
      'host_name overruns',
      hello({ exts: [ext(0, vec16([0, ...u16(30), ...ascii('a.test')]))] }),
      /^tls: server_name length 30 exceeds remaining 6$/,
    ],
    ['server_name entry cut', hello({ exts: [ext(0, vec16([0, 0]))] }), /^tls: server_name entry truncated/],
    [
      'two host_names',
      hello({ exts: [ext(0, vec16([0, ...vec16(ascii('a.test')), 0, ...vec16(ascii('b.test'))]))] }),
      /^tls: more than one host_name/,
    ],
    ['empty host_name', hello({ exts: [sniExt('')] }), /^tls: server_name host_name is empty$/],
    ['just a dot', hello({ exts: [sniExt('.')] }), /is not a DNS name: empty name$/],
    [
      'space in name',
      hello({ exts: [sniExt('exa mple.test')] }),
      /^tls: server_name "exa mple.test" is not a DNS name: bad character 0x20 at 3$/,
    ],
    [
      'NUL in name',
      hello({ exts: [sniExt([0x61, 0, 0x62])] }),
      /"a\\x00b" is not a DNS name: bad character 0x00 at 1$/,
    ],
    ['UTF-8 in name', hello({ exts: [sniExt([0xc3, 0xa9, 0x2e, 0x63, 0x6f])] }), /bad character 0xc3 at 0$/],
    ['empty label', hello({ exts: [sniExt('a..b')] }), /empty label at 2$/],
    ['IPv6 literal', hello({ exts: [sniExt('::1')] }), /bad character 0x3a/],
    ['label of 64', hello({ exts: [sniExt(`${'a'.repeat(64)}.test`)] }), /label longer than 63$/],
    ['name of 257', hello({ exts: [sniExt(long)] }), /^tls: server_name host_name length 257 exceeds 253$/],
    ['name of 254', hello({ exts: [sniExt(long.slice(0, 254))] }), /name longer than 253 \(254\)$/],
    ['ALPN list empty', hello({ exts: [ext(16, [0, 0])] }), /^tls: ALPN protocol_name_list is empty$/],
    [
      'ALPN list mismatch',
      hello({ exts: [ext(16, [0, 9, 2, 0x68, 0x32])] }),
      /^tls: ALPN protocol_name_list length 9 does not match remaining 3$/,
    ],
    ['ALPN name empty', hello({ exts: [ext(16, vec16([0]))] }), /^tls: empty ALPN protocol name$/],
    [
      'ALPN name overruns',
      hello({ exts: [ext(16, vec16([5, 0x68, 0x32]))] }),
      /^tls: ALPN protocol name length 5 exceeds remaining 2$/,
    ],
    ['ALPN extension too short', hello({ exts: [ext(16, [2])] }), /^tls: ALPN extension length 1 too short/],
    ['session_id of 33', hello({ sid: vec8(new Array<number>(33).fill(0)) }), /^tls: session_id length 33 exceeds 32$/],
    [
      'cipher_suites odd',
      hello({ cs: vec16([0x13, 0x01, 0x13]) }),
      /^tls: cipher_suites length 3 is not a positive even number$/,
    ],
    ['cipher_suites empty', hello({ cs: [0, 0] }), /^tls: cipher_suites length 0/],
    [
      'cipher_suites overrun',
      hello({ cs: [0x7f, 0xfe, 0x13, 0x01], cm: [], exts: null }),
      /^tls: cipher_suites length 32766 exceeds remaining 2$/,
    ],
    ['no compression method', hello({ cm: [0] }), /^tls: compression_methods is empty$/],
    [
      'compression overrun',
      hello({ cm: [9, 0], exts: null }),
      /^tls: compression_methods length 9 exceeds remaining 1$/,
    ],
    ['legacy version 0x0200', hello({ version: [2, 0] }), /^tls: client_hello version 0x0200 is not 0x0300-0x0304$/],
    [
      'too short',
      [1, 0, 0, 10, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0],
      /^tls: client_hello length 10 too short for version and random$/,
    ],
    [
      'ends before session_id',
      [1, 0, 0, 34, 3, 3, ...new Array<number>(32).fill(0)],
      /^tls: client_hello ends before session_id$/,
    ],
    [
      'ends before cipher_suites',
      [1, 0, 0, 36, 3, 3, ...new Array<number>(32).fill(0), 0, 0],
      /^tls: client_hello ends before cipher_suites$/,
    ],
  ]
  for (const [label, hs, re] of cases) {
    const r = sniffTls(wrap(hs))
    t.equal(r.status, 'invalid', label)
    t.match('error' in r ? r.error : '', re, label)
    t.equal('proto' in r ? r.proto : undefined, 'tls', `${label}: proto`)
  }
})

t.test('record layer: bad records are invalid, with the reason', async (t) => {
  const hs = handshake(fixture('curl-tls'))
  const good = reframe(hs, [300])
  const second = 5 + 300 // offset of the second record
  const mut = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = new Uint8Array(good)
    f(b)
    return b
  }
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['empty record', new Uint8Array([22, 3, 1, 0, 0]), /^tls: empty handshake record at offset 0$/],
    [
      'record of 16385',
      new Uint8Array([22, 3, 1, 0x40, 0x01, 1, 0, 0, 5]),
      /^tls: record length 16385 at offset 0 exceeds 16384$/,
    ],
    ['server_hello', new Uint8Array([22, 3, 3, 0, 4, 2, 0, 0, 0]), /^tls: handshake type 2 is not client_hello \(1\)$/],
    ['handshake type seen in the first byte', new Uint8Array([22, 3, 1, 0, 200, 11]), /^tls: handshake type 11 /],
    [
      'alert inside the hello',
      mut((b) => {
        b[second] = 21
      }),
      /^tls: record type 21 at offset 305 interrupts the client_hello \(want 22\)$/,
    ],
    [
      'application data inside the hello',
      mut((b) => {
        b[second] = 23
      }),
      /^tls: record type 23 at offset 305/,
    ],
    [
      'bad version in record 2',
      mut((b) => {
        b[second + 2] = 9
      }),
      /^tls: record version 0x0309 at offset 305 is not 0x0301-0x0304$/,
    ],
    [
      'empty record 2',
      new Uint8Array([...good.subarray(0, second), 22, 3, 1, 0, 0]),
      /^tls: empty handshake record at offset 305$/,
    ],
    [
      'hello length 1 short',
      reframe(withLength(hs, hs.length - 5), [300]),
      /^tls: extensions length \d+ does not match remaining \d+$/,
    ],
    [
      'hello length 1 long, 1 byte more',
      reframe(new Uint8Array([...withLength(hs, hs.length - 3), 0]), [300]),
      /^tls: extensions length \d+ does not match remaining \d+$/,
    ],
    [
      'declared 64 KiB hello',
      new Uint8Array([22, 3, 1, 0, 4, 1, 1, 0, 0]),
      /^tls: client_hello length 65536 exceeds limit 16384$/,
    ],
    [
      'declared 16 MiB hello',
      new Uint8Array([22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]),
      /^tls: client_hello length 16777215 exceeds limit 16384$/,
    ],
  ]
  for (const [label, buf, re] of cases) {
    const r = sniffTls(buf)
    t.equal(r.status, 'invalid', label)
    t.match('error' in r ? r.error : '', re, label)
  }
  // Every hello length past the limit is refused as soon as its 4 header bytes are in.
  t.equal(sniffTls(new Uint8Array([22, 3, 1, 0, 4, 1, 0, 0x40, 0x01])).status, 'invalid', 'limit + 1')
  t.equal(sniffTls(new Uint8Array([22, 3, 1, 0, 4, 1, 0, 0x40, 0x00])).status, 'need-more', 'limit itself')
  // Header split across 1-byte records: still caught.
  t.match(sniffTls(new Uint8Array([22, 3, 1, 0, 1, 1, 22, 3, 1, 0, 1, 1, 22, 3, 1, 0, 1, 0, 22, 3, 1, 0, 1, 0])), {
    status: 'invalid',
    error: /client_hello length 65536 exceeds limit/,
  })
})

t.test('maxHello option', async (t) => {
  const buf = fixture('chromium-tls')
  const len = handshake(buf).length - 4
  t.equal(sniffTls(buf, { maxHello: len }).status, 'ok', 'exactly at the limit')
  t.match(sniffTls(buf, { maxHello: len - 1 }), {
    status: 'invalid',
    error: `tls: client_hello length ${len} exceeds limit ${len - 1}`,
  })
  t.equal(TLS_MAX_HELLO, 16384)
  t.match(sniff(buf, { maxBytes: 65536, maxHello: 512 }), { status: 'invalid', error: /exceeds limit 512/ })
  // A 16 KiB hello (padding extension) in records of 16384: accepted at the default limit.
  const big = hello({ exts: [sniExt('big.test'), ext(21, new Array<number>(16384 - 120).fill(0))] })
  t.equal(big.length - 4 <= TLS_MAX_HELLO, true)
  t.same(sniffTls(wrap(big)), { status: 'ok', proto: 'tls', host: 'big.test' }, `hello of ${big.length - 4} bytes`)
  // 64 KiB hello padding: refused.
  const huge = hello({ exts: [sniExt('big.test'), ext(21, new Array<number>(65000).fill(0))] })
  t.match(sniffTls(wrap(huge)), { status: 'invalid', error: /exceeds limit 16384/ })
})

t.test('not TLS: not-mine', async (t) => {
  const zeros = new Uint8Array(65536)
  const cases: Array<[string, Uint8Array, RegExp]> = [
    [
      'HTTP',
      new Uint8Array(ascii('GET / HTTP/1.1\r\n\r\n')),
      /^tls: first byte 0x47 is not a handshake record \(0x16\)$/,
    ],
    ['application data', new Uint8Array([23, 3, 3, 0, 1, 0]), /first byte 0x17/],
    ['SSLv2 hello', new Uint8Array([0x80, 0x2e, 1, 3, 1]), /first byte 0x80/],
    ['bad major', new Uint8Array([22, 2, 0]), /^tls: record version major 0x02 is not 0x03$/],
    ['SSL 3.0 record', new Uint8Array([22, 3, 0, 0, 4]), /^tls: record version 0x0300 is not 0x0301-0x0304$/],
    ['record version 0x0305', new Uint8Array([22, 3, 5]), /0x0305/],
    ['64 KiB of zeros', zeros, /first byte 0x00/],
    ['0x16 then 64 KiB of zeros', new Uint8Array([22, ...zeros]), /record version major 0x00/],
    ['SOCKS5', new Uint8Array([5, 1, 0]), /first byte 0x05/],
  ]
  for (const [label, buf, re] of cases) {
    const r = sniffTls(buf)
    t.equal(r.status, 'not-mine', label)
    t.match('error' in r ? r.error : '', re, label)
  }
  t.same(sniffTls(new Uint8Array(0)), { status: 'need-more' }, 'empty')
  t.same(sniffTls(new Uint8Array([22])), { status: 'need-more', proto: 'tls' }, 'one byte')
})

t.test('truncated captures are need-more; garbage never throws', async (t) => {
  // Deterministic PRNG (xorshift32).
  let seed = 0x12345678
  const rnd = (n: number): number => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) % n
  }
  const statuses = new Map<string, number>()
  let threw = 0
  for (const [name] of FIXTURES) {
    const base = fixture(name)
    for (let k = 0; k < 400; k++) {
      const b = new Uint8Array(base)
      const flips = 1 + rnd(4)
      for (let f = 0; f < flips; f++) b[5 + rnd(b.length - 5)] = rnd(256)
      const cut = rnd(4) === 0 ? b.subarray(0, rnd(b.length)) : b
      try {
        const r = sniffTls(cut)
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
        if (r.status === 'invalid' && !(r.error ?? '').startsWith('tls: ')) t.fail(`error without "tls: ": ${r.error}`)
        if (r.status === 'ok' && r.host !== undefined && !/^[a-z0-9_.-]+$/.test(r.host)) t.fail(`bad host ${r.host}`)
      } catch (e) {
        if (threw++ < 3) t.fail(`threw on a mutation of ${name}: ${String(e)}`)
      }
    }
  }
  t.equal(threw, 0, 'no mutation threw')
  t.ok((statuses.get('invalid') ?? 0) > 0, `statuses: ${JSON.stringify(Object.fromEntries(statuses))}`)
  // Random bytes after a handshake record header.
  for (let k = 0; k < 300; k++) {
    const len = 1 + rnd(3000)
    const b = new Uint8Array(5 + len)
    b.set([22, 3, 1, (len >> 8) & 0xff, len & 0xff])
    for (let i = 5; i < b.length; i++) b[i] = rnd(256)
    b[5] = 1
    const r = sniffTls(b)
    if (r.status === 'ok') t.fail(`random body parsed: ${JSON.stringify(r)}`)
  }
})

t.test('sniff(): dispatch and the byte limit', async (t) => {
  const buf = fixture('curl-tls')
  t.match(sniff(buf.subarray(0, 100), { maxBytes: 100 }), {
    status: 'invalid',
    proto: 'tls',
    error: /^sniff: first flight incomplete after 100 bytes \(limit 100\)$/,
  })
  t.equal(sniff(buf.subarray(0, 99), { maxBytes: 100 }).status, 'need-more')
  t.same(
    sniff(new Uint8Array([22, 2, 0]), { maxBytes: 100 }),
    { status: 'ok', proto: 'unknown' },
    'not-mine TLS-like bytes are unknown',
  )
  t.same(sniff(new Uint8Array(0), { maxBytes: 100 }), { status: 'need-more' })
  t.same(sniff(new Uint8Array([22, 3, 1, 0, 0]), { maxBytes: 100 }), {
    status: 'invalid',
    proto: 'tls',
    error: 'tls: empty handshake record at offset 0',
  })
})
