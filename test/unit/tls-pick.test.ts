// tls_server_pick (native/tls.c), the server's peek at a ClientHello's
// cipher suites, compiled with ASan/UBSan with its driver
// test/native/tls-pick-test.c: hand-written ClientHellos (our order, a
// client putting ChaCha20-Poly1305 first, nothing in common, session ids of
// 0, 32 and 255 bytes, an odd list length, a list past the record, wrong
// record and handshake types, each cut at every byte), then a fixed-seed fuzz
// of valid, mutated and random inputs, each judged against the model below.
// Each input sits in a buffer of exactly its size, so a read past it is an
// ASan report.

import { spawnSync } from 'node:child_process'
import t from 'tap'
import { rng } from '../lib/rng.js'
import { SANITIZER_RE, mustMakeNative, sanitizerEnv } from '../lib/drivers.js'

const bin = mustMakeNative('tls-pick-test', true)

// The TLS 1.3 suites' IANA ids (RFC 8446 B.4).
const AES128 = 0x1301
const AES256 = 0x1302
const CHACHA = 0x1303
const OURS_AES = [AES128, AES256, CHACHA]
const OURS_CHACHA = [CHACHA, AES128, AES256]

type Input = { suites: number[]; hello: Uint8Array }
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const u16 = (v: number) => [(v >> 8) & 0xff, v & 0xff]

/** The driver's answer to each input, and what the sanitizers said. */
function pickAll(inputs: Input[]): { answers: string[]; stderr: string; status: number | null } {
  const line = ({ suites, hello }: Input) =>
    suites.map((s) => s.toString(16).padStart(4, '0')).join('') + ' ' + hex(hello)
  const input = inputs.map((i) => line(i) + '\n').join('')
  const r = spawnSync(bin, [], { env: sanitizerEnv, input, encoding: 'utf8', maxBuffer: 64 << 20 })
  return { answers: r.stdout.split('\n').slice(0, -1), stderr: r.stderr, status: r.status }
}

/**
 * Read as RFC 8446 lays a ClientHello out, field by field: record header
 * (type 22, version, length), handshake header (type 1, 3-byte length),
 * legacy_version, 32-byte random, session id (1-byte length), cipher suites
 * (2-byte length, 2 bytes each). The list must be whole in the bytes given
 * and in the record, of an even length. Then: the suites of ours the client
 * offers; ChaCha20-Poly1305 when it is the first of them in the client's
 * order, else the one earliest in ours. Where the list ends, so the cut tests
 * know when a whole answer is due.
 */
function model(suites: number[], h: Uint8Array): { pick: number; listEnd: number } {
  const none = { pick: -1, listEnd: Infinity }
  const fields = [5, 4, 2, 32]
  const sidAt = fields.reduce((a, b) => a + b)
  if (h.length <= sidAt || h[0] !== 22 || h[5] !== 1) return none
  const lenAt = sidAt + 1 + h[sidAt]!
  if (h.length < lenAt + 2) return none
  const listLen = h[lenAt]! * 256 + h[lenAt + 1]!
  const listEnd = lenAt + 2 + listLen
  const recordEnd = 5 + h[3]! * 256 + h[4]!
  if (listLen % 2 === 1 || listEnd > h.length || listEnd > recordEnd) return { pick: -1, listEnd }
  const offered: number[] = []
  for (let i = lenAt + 2; i < listEnd; i += 2) offered.push(h[i]! * 256 + h[i + 1]!)
  const common = offered.filter((s) => suites.includes(s))
  if (common.length === 0) return { pick: -1, listEnd }
  if (common[0] === CHACHA) return { pick: suites.indexOf(CHACHA), listEnd }
  return { pick: Math.min(...common.map((s) => suites.indexOf(s))), listEnd }
}

/** A ClientHello record: the given suites, session id and extensions; lengths true unless overridden. */
function hello(
  offered: number[],
  o: { sid?: number; listLen?: number; recLen?: number; type?: number; hsType?: number; ext?: number } = {},
): Uint8Array {
  const sid = new Array(o.sid ?? 32).fill(0x5a)
  const list = offered.flatMap(u16)
  const ext = new Array(o.ext ?? 40).fill(0)
  const body = [
    ...[3, 3],
    ...new Array(32).fill(0xa5),
    sid.length,
    ...sid,
    ...u16(o.listLen ?? list.length),
    ...list,
    ...[1, 0], // compression: null
    ...u16(ext.length),
    ...ext,
  ]
  const hs = [o.hsType ?? 1, 0, ...u16(body.length), ...body]
  return Uint8Array.from([o.type ?? 22, 3, 1, ...u16(o.recLen ?? hs.length), ...hs])
}

t.test('hand-written ClientHellos, and each cut at every byte', async (t) => {
  const cases: Array<[string, number[], Uint8Array, number]> = [
    ['our order, client AES-256 first', OURS_AES, hello([AES256, AES128, CHACHA]), 0],
    ['our order, client lists only AES-256', OURS_AES, hello([AES256]), 1],
    ['ChaCha20 first on a ChaCha20-first server', OURS_CHACHA, hello([AES128, AES256, CHACHA]), 0],
    ['client puts ChaCha20 first: it gets ChaCha20', OURS_AES, hello([CHACHA, AES128, AES256]), 2],
    ['ChaCha20 first among ours, after suites we lack', OURS_AES, hello([0x1304, 0xc02b, CHACHA, AES128]), 2],
    ['ChaCha20 second: our order', OURS_AES, hello([AES256, CHACHA, AES128]), 0],
    ['ChaCha20 first, but we lack it', [AES128, AES256], hello([CHACHA, AES256]), 1],
    ['only ChaCha20 in common', [AES256, CHACHA], hello([AES128, CHACHA]), 1],
    ['no common suite', OURS_AES, hello([0x1304, 0x1305, 0xc02f]), -1],
    ['empty list', OURS_AES, hello([]), -1],
    ['session id of 32 bytes', OURS_AES, hello([AES256, AES128], { sid: 32 }), 0],
    ['session id of 0 bytes', OURS_AES, hello([AES256, AES128], { sid: 0 }), 0],
    ['session id of 255 bytes', OURS_AES, hello([CHACHA], { sid: 255 }), 2],
    ['odd list length', OURS_AES, hello([AES128, AES256], { listLen: 3 }), -1],
    ['list length 1', OURS_AES, hello([AES128], { listLen: 1 }), -1],
    ['list past the record', OURS_AES, hello([AES128, AES256], { recLen: 4 + 2 + 32 + 33 + 2 + 2, ext: 0 }), -1],
    [
      'list ending at the record end',
      OURS_AES,
      hello([AES256, AES128], { recLen: 4 + 2 + 32 + 33 + 2 + 4, ext: 0 }),
      0,
    ],
    ['list past the bytes given', OURS_AES, hello([AES128], { listLen: 200, ext: 0 }), -1],
    ['record type 23', OURS_AES, hello([AES128], { type: 23 }), -1],
    ['handshake type 2 (ServerHello)', OURS_AES, hello([AES128], { hsType: 2 }), -1],
    ['empty input', OURS_AES, new Uint8Array(0), -1],
  ]
  const inputs: Input[] = []
  const wants: Array<[string, number]> = []
  for (const [what, suites, h, pick] of cases) {
    inputs.push({ suites, hello: h })
    wants.push([what, pick])
    t.equal(model(suites, h).pick, pick, `${what}: the model agrees`)
    // Cut: -1 until the list is whole, then the whole answer.
    const { listEnd } = model(suites, h)
    for (let m = 0; m < h.length; m++) {
      inputs.push({ suites, hello: h.subarray(0, m) })
      wants.push([`${what}, cut at ${m}`, m >= listEnd ? pick : -1])
    }
  }
  const { answers, stderr, status } = pickAll(inputs)
  t.equal(answers.length, inputs.length, `one answer an input (${inputs.length})`)
  let wrong = 0
  wants.forEach(([what, pick], i) => {
    if (answers[i] !== String(pick) && wrong++ < 20) t.fail(`${what}: ${answers[i]}, want ${pick}`)
  })
  t.equal(wrong, 0, `every answer, whole and cut at each of ${inputs.length - cases.length} bytes, as written`)
  t.equal(status, 0, 'exit 0')
  t.notMatch(stderr, SANITIZER_RE, 'no sanitizer report')
})

t.test("seeded fuzz: every answer is the model's", async (t) => {
  const r = rng(0x7157)
  const int = (n: number) => Math.floor(r() * n)
  const pickOf = <T>(a: T[]): T => a[int(a.length)]!
  const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256))
  // Ours and others: TLS 1.3's other ids, TLS 1.2's, the SCSV, GREASE, anything.
  const POOL = [AES128, AES256, CHACHA, AES128, AES256, CHACHA, 0x1304, 0x1305, 0xc02b, 0xc02f, 0x00ff, 0x0a0a]
  const oursOf = (): number[] => {
    const all = [...OURS_AES]
    for (let i = all.length - 1; i > 0; i--) {
      const j = int(i + 1)
      ;[all[i], all[j]] = [all[j]!, all[i]!]
    }
    return int(4) === 0 ? all.slice(0, 1 + int(3)) : all
  }
  const offered = () =>
    Array.from({ length: int(4) === 0 ? int(3) : 1 + int(12) }, () => (int(8) ? pickOf(POOL) : int(0x10000)))
  const valid = (): Uint8Array =>
    hello(offered(), { sid: pickOf([0, 32, 255, int(256)]), ext: int(3) === 0 ? 0 : int(200) })
  const sidAt = 5 + 4 + 2 + 32
  const mutate = (h: Uint8Array): Uint8Array => {
    const m = Uint8Array.from(h)
    const lenAt = sidAt + 1 + m[sidAt]!
    switch (int(9)) {
      case 0: // cut anywhere
        return m.subarray(0, int(m.length + 1))
      case 1: // cut near the list's end
        return m.subarray(
          0,
          Math.max(0, Math.min(m.length, lenAt + 2 + ((m[lenAt]! << 8) | m[lenAt + 1]!) - 3 + int(6))),
        )
      case 2: {
        // a list length that lies: odd, off by a little, huge
        const v = pickOf([int(0x10000), ((m[lenAt]! << 8) | m[lenAt + 1]!) + int(9) - 4, 1 + 2 * int(20), 0xffff, 0])
        m.set(u16(v & 0xffff), lenAt)
        return m
      }
      case 3: {
        // a record length that lies
        m.set(u16(pickOf([int(0x10000), m.length - 5 - int(8), 0, 0xffff]) & 0xffff), 3)
        return m
      }
      case 4: // a session id length that lies
        m[sidAt] = pickOf([0, 255, int(256), m[sidAt]! + 1, m[sidAt]! - 1]) & 0xff
        return m
      case 5: // record or handshake type
        m[pickOf([0, 5])] = pickOf([21, 23, 2, 0, int(256)])
        return m
      case 6: // bytes flipped
        for (let k = 1 + int(4); k > 0; k--) m[int(m.length)] = int(256)
        return m
      case 7: // extended
        return Uint8Array.from([...m, ...randomBytes(1 + int(300))])
      default: // bytes flipped within the headers and the list
        for (let k = 1 + int(3); k > 0; k--) m[int(Math.min(m.length, lenAt + 40))] = int(256)
        return m
    }
  }
  const garbage = (): Uint8Array => {
    const d = randomBytes(int(400))
    if (d.length > 5 && int(2) === 0) ((d[0] = 22), (d[5] = 1))
    return d
  }
  const inputs: Input[] = []
  for (let i = 0; i < 30000; i++) {
    const k = int(10)
    inputs.push({ suites: oursOf(), hello: k < 3 ? valid() : k < 9 ? mutate(valid()) : garbage() })
  }
  const { answers, stderr, status } = pickAll(inputs)
  t.equal(answers.length, inputs.length, 'one answer an input')
  const seen = new Map<string, number>()
  let wrong = 0
  inputs.forEach(({ suites, hello: h }, i) => {
    const want = model(suites, h).pick
    const kind = want < 0 ? 'none' : suites[want] === CHACHA ? 'ChaCha20' : 'AES'
    seen.set(kind, (seen.get(kind) ?? 0) + 1)
    if (answers[i] !== String(want) && wrong++ < 20) t.fail(`${suites} ${hex(h)} → ${answers[i]}, want ${want}`)
  })
  t.equal(wrong, 0, "every answer is the model's")
  for (const kind of ['none', 'ChaCha20', 'AES'])
    t.ok((seen.get(kind) ?? 0) >= 1000, `${kind}: ${seen.get(kind) ?? 0} inputs`)
  t.equal(status, 0, 'exit 0')
  t.notMatch(stderr, SANITIZER_RE, 'no sanitizer report')
})
