import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import { hostNameProblem } from '../../src/core/address.js'
import {
  MAX_FRAME,
  PoolTarget,
  SniRegistry,
  backoffMs,
  challengeFrame,
  decodeFrame,
  encodeFrame,
  gateText,
  helloFrame,
  nameGranted,
  pairFrame,
  parseChallenge,
  parseHello,
  parsePair,
  parseRegister,
  parseVerdict,
  registeredNames,
  registerFrame,
  relayText,
  sniNodeLabel,
  verdictFrame,
} from '../../src/core/sni-relay.js'
import { rng } from '../lib/rng.js'

const nonce = (b: number) => new Uint8Array(32).fill(b)
const CHAIN = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'

t.test('frames: round trip, partial input, limits, non-objects', async (t) => {
  const f = encodeFrame({ a: 1, s: 'é' })
  t.same(decodeFrame(f), { status: 'ok', consumed: f.length, value: { a: 1, s: 'é' } }, 'round trip')
  for (let i = 0; i < f.length; i++) t.equal(decodeFrame(f.subarray(0, i)).status, 'need-more', `${i} bytes: need more`)
  const two = new Uint8Array([...f, ...pairFrame({ src: '1.2.3.4:5', sni: 'x.test' })])
  const first = decodeFrame(two)
  t.equal(first.status === 'ok' && first.consumed, f.length, 'a frame followed by another: only its own bytes')
  const big = new Uint8Array(4)
  new DataView(big.buffer).setUint32(0, MAX_FRAME + 1)
  t.match(decodeFrame(big), { status: 'invalid', error: /frame length 32769/ }, 'over MAX_FRAME: invalid at once')
  t.match(decodeFrame(new Uint8Array(4)), { status: 'invalid' }, 'length 0: invalid')
  const arr = encodeFrame([1, 2] as unknown as object)
  t.match(decodeFrame(arr), { status: 'invalid', error: 'frame is not a JSON object' })
  const bad = new Uint8Array([0, 0, 0, 2, 0xff, 0xfe])
  t.match(decodeFrame(bad), { status: 'invalid', error: 'frame is not UTF-8' })
  const notJson = new Uint8Array([0, 0, 0, 1, 0x7b])
  t.match(decodeFrame(notJson), { status: 'invalid', error: 'frame is not JSON' })
})

t.test('messages: what parses and what is refused, naming the value', async (t) => {
  const hex = 'ab'.repeat(32)
  t.same(parseHello({ v: 1, nonce: hex }), { nonce: nonce(0xab) })
  t.match(parseHello({ v: 2, nonce: hex }), /protocol version 2/)
  t.match(parseHello({ v: 1, nonce: 'AB'.repeat(32) }), /nonce is not 32 bytes of lower-case hex/)
  t.match(parseHello({ v: 1, nonce: 'ab' }), /nonce is not 32 bytes/)
  t.match(parseChallenge({ v: 1, nonce: hex, chain: 'x', sig: 'AAAA' }), /chain is not a PEM chain/)
  t.match(parseChallenge({ v: 1, nonce: hex, chain: CHAIN, sig: '' }), /sig is not a base64 signature/)
  t.match(parseChallenge({ v: 1, nonce: hex, chain: CHAIN, sig: 'AAEC' }), {
    chain: CHAIN,
    sig: new Uint8Array([0, 1, 2]),
  })
  t.match(parseRegister({ chain: CHAIN, names: ['A.Test', 'a.test'], sig: 'AAEC' }), { names: ['a.test'] })
  t.match(parseRegister({ chain: CHAIN, names: ['bad name'], sig: 'AAEC' }), /name "bad name": bad character/)
  t.match(parseRegister({ chain: CHAIN, names: 'a.test', sig: 'AAEC' }), /names is not an array/)
  t.match(
    parseRegister({ chain: CHAIN, names: ['中.test'], sig: 'AAEC' }),
    /name "中.test": bad character U\+4e2d at 0/,
    'a character above Latin-1 is named as itself, not by its low byte',
  )
  const long = parseHello({ v: 'x'.repeat(5000), nonce: hex })
  t.match(long, /^Error: protocol version "x{60,}\.\.\. \(this gate speaks 1\)$/, 'a long bad value is cut short')
  t.match(parseRegister({ chain: CHAIN, names: ['y'.repeat(300)], sig: 'AAEC' }), /^Error: name "y+\.\.\.: name longer/)
  t.match(registeredNames(Array.from({ length: 65 }, (_, i) => `n${i}.test`)), /65 names \(at most 64\)/)
  t.same(parsePair({ pair: { src: '1.2.3.4:5', sni: 'x.test' } }), { src: '1.2.3.4:5', sni: 'x.test' })
  t.match(parsePair({ ok: true }), /not a pair frame/)
})

t.test('signed texts bind both nonces, the role and the names', async (t) => {
  const g = nonce(1)
  const r = nonce(2)
  const texts = [
    relayText(g, r),
    relayText(r, g),
    gateText(r, g, ['a.test']),
    gateText(g, r, ['a.test']),
    gateText(r, g, ['b.test']),
    gateText(r, g, []),
  ].map((b) => Buffer.from(b).toString())
  t.equal(new Set(texts).size, texts.length, 'every change gives another text')
  t.match(texts[0], /^ugate-sni-relay\/1 relay\n0101/, 'the relay text starts with its role and the gate nonce')
  t.equal(
    texts[2],
    `ugate-sni-relay/1 gate\n${'02'.repeat(32)}\n${'01'.repeat(32)}\na.test\n`,
    'the gate text, exactly',
  )
})

t.test('names granted, node labels', async (t) => {
  t.ok(nameGranted('a.home.test', ['a.home.test']))
  t.ok(nameGranted('x.home.test', ['*.home.test']))
  t.notOk(nameGranted('home.test', ['*.home.test']), '*.suffix does not grant the suffix itself')
  t.notOk(nameGranted('xhome.test', ['*.home.test']), 'nor a name that only ends in the same letters')
  t.notOk(nameGranted('b.test', []))
  t.equal(sniNodeLabel('abcd.default.mesh.test'), 'ABCD')
  t.equal(sniNodeLabel('abcd'), 'ABCD')
})

const NODE_A = 'NW4QXGYRBDI7NJX5TTQAS44KC52PSDW5MM5QTK3PBCFJXSXQDC6Q'
const NODE_B = 'B'.repeat(51) + 'A'
const a = { spiffe: 'spiffe://td.test/ns/h/sa/a', nodeId: NODE_A, names: ['a.test'] }
const b = { spiffe: 'spiffe://td.test/ns/h/sa/b', nodeId: NODE_B, names: ['b.test'] }
const aName = `${NODE_A.toLowerCase()}.h.td.test`

t.test('registry: park, take by name or node name, waiters, limits, conflicts', async (t) => {
  const reg = new SniRegistry<string>(2, 2)
  t.equal(reg.park(a, 'a1'), 'parked')
  t.equal(reg.park(a, 'a2'), 'parked')
  t.match(reg.park(a, 'a3'), { refused: /already has 2 parked/ }, 'maxParked per gate')
  t.match(reg.park(b, 'b1'), 'parked')
  t.match(reg.park({ ...b, names: ['a.test'] }, 'b2'), { refused: `name a.test is registered by node ${NODE_A}` })
  t.same(reg.take('A.TEST'), { conn: 'a1', gate: a }, 'by name, case-blind, oldest first')
  t.same(reg.take(aName.toUpperCase()), { conn: 'a2', gate: a }, 'by its full node name, case-blind')
  t.equal(reg.take('a.test'), undefined, 'none left: the gate is forgotten')
  t.equal(reg.gateFor('a.test'), undefined)
  t.equal(reg.take('nobody.test'), undefined)

  const got: string[] = []
  const refuse = (why: string) => got.push(`refused:${why}`)
  const stop1 = reg.wait('a.test', (c) => got.push(`w1:${c}`), refuse)
  const stop2 = reg.wait(aName, (c) => got.push(`w2:${c}`), refuse)
  t.equal(
    reg.wait('a.test', () => {}, refuse),
    null,
    'maxWaiting reached: refused',
  )
  t.ok(stop1 && stop2)
  t.equal(reg.park(a, 'a4'), 'paired', 'a registration goes to a waiter first')
  t.same(got, ['w1:a4'])
  stop2!()
  t.equal(reg.waiting, 0, 'stopped waiting')
  t.equal(reg.park(a, 'a5'), 'parked')
  t.ok(reg.remove('a5'), 'a parked connection that died is removed')
  t.notOk(reg.remove('a5'), 'once')
  t.same(reg.all(), ['b1'])
  t.same(
    reg.snapshot().map((g) => [g.nodeId, g.parked]),
    [[NODE_B, 1]],
  )
  // A new registration with other names drops the old ones.
  t.equal(reg.park({ ...b, names: ['c.test'] }, 'b3'), 'parked')
  t.equal(reg.gateFor('b.test'), undefined, 'old name forgotten')
  t.match(reg.gateFor('c.test'), { nodeId: NODE_B })
})

t.test("registry: a node name pairs only when all of it is the gate's", async (t) => {
  const reg = new SniRegistry<string>(8, 4, 'mesh')
  t.equal(reg.park(a, 'a1'), 'parked')
  const id = NODE_A.toLowerCase()
  const wrong: Array<[string, string]> = [
    [`${id}.other.td.test`, 'another namespace'],
    [`${id}.h.other.test`, 'another trust domain'],
    [`${id}.h.td.test.evil.example`, 'the right name with more after it'],
    [`${id}.td.test`, 'no namespace'],
    [`${id}.mesh.example`, 'another short suffix'],
    [`${id}`, 'the node id alone'],
  ]
  for (const [sni, what] of wrong) {
    t.match(reg.gateFor(sni), { refused: `is not a name of node ${NODE_A} (${a.spiffe})` }, `${what}: refused`)
    t.match(reg.take(sni), { refused: /h\.td\.test or .*\.mesh$/ }, `${what}: nothing taken, the names it wants said`)
  }
  t.match(reg.gateFor(`${id}.H.TD.test.`), { nodeId: NODE_A }, 'the full name, any case, a trailing dot')
  t.match(reg.gateFor(`${id}.mesh`), { nodeId: NODE_A }, 'the short form, when configured')
  reg.setLimits(8, 4, '')
  t.match(
    reg.gateFor(`${id}.mesh`),
    { refused: /\(spiffe:\/\/td\.test\/ns\/h\/sa\/a\): [a-z2-7]+\.h\.td\.test$/ },
    'no short form configured',
  )
  t.same(reg.take(aName), { conn: 'a1', gate: a }, 'still parked after the refusals')

  // Waiting: a registration refuses the waiters that name its node id wrongly, pairs the right one.
  const got: string[] = []
  reg.wait(
    `${id}.other.td.test`,
    (c) => got.push(`bad:${c}`),
    (why) => got.push(`refused ${why}`),
  )
  reg.wait(
    aName,
    (c) => got.push(`good:${c}`),
    (why) => got.push(`refused ${why}`),
  )
  reg.wait(
    'b.test',
    (c) => got.push(`b:${c}`),
    (why) => got.push(`refused ${why}`),
  )
  t.equal(reg.park(a, 'a2'), 'paired')
  t.match(got, [/^refused .*other\.td\.test" is not a name of node/, 'good:a2'])
  t.equal(reg.waiting, 1, 'the waiter for another gate still waits')
  t.match(reg.gateFor(`${NODE_B.toLowerCase()}.h.td.test`), undefined, 'a node not registered: nothing to refuse yet')
})

t.test('pool target grows when demand outruns it, shrinks when quiet', async (t) => {
  const p = new PoolTarget(2, 8, 1000)
  p.paired(1, 0)
  t.equal(p.target, 2, 'one left: no growth')
  p.paired(0, 10)
  t.equal(p.target, 4, 'none left: doubles')
  p.paired(0, 20)
  p.paired(0, 30)
  t.equal(p.target, 8, 'bounded by max')
  p.tick(500)
  t.equal(p.target, 8, 'not quiet yet')
  p.tick(1030)
  t.equal(p.target, 4, 'quiet: halves')
  p.tick(2030)
  p.tick(3030)
  t.equal(p.target, 2, 'never below min')
})

t.test('backoff: exponential, capped, jittered within 50-100 %', async (t) => {
  t.equal(backoffMs(1, 500, 30000, 0.999999), 500)
  t.equal(backoffMs(1, 500, 30000, 0), 250)
  t.equal(backoffMs(3, 500, 30000, 0.999999), 2000)
  t.equal(backoffMs(20, 500, 30000, 0.999999), 30000, 'capped')
  t.equal(backoffMs(1000, 500, 30000, 0), 15000, 'no overflow for many failures')
})

// ---- seeded fuzz of the frame decoder and the message parsers ------------------------

/** What decodeFrame must answer, from Node's own UTF-8 and JSON: the oracle. */
function frameOracle(buf: Uint8Array): ReturnType<typeof decodeFrame> {
  const len = buf.length >= 4 ? Buffer.from(buf.buffer, buf.byteOffset, 4).readUInt32BE(0) : -1
  if (len === 0 || len > MAX_FRAME) return { status: 'invalid', error: `frame length ${len} (1-${MAX_FRAME})` }
  if (len < 0 || buf.length < 4 + len) return { status: 'need-more' }
  // The refusal of the step that failed: each step sets the next one's.
  let error = 'frame is not UTF-8'
  try {
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf.subarray(4, 4 + len))
    error = 'frame is not JSON'
    const value: unknown = JSON.parse(text)
    error = 'frame is not a JSON object'
    if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
      return { status: 'ok', consumed: 4 + len, value: value as Record<string, unknown> }
  } catch {}
  return { status: 'invalid', error }
}

/** Why a message parser's answer breaks its contract, or null. */
function messageProblem(what: string, r: unknown): string | null {
  if (r instanceof Error) {
    // A refusal names the bad value, cut short: it goes to the log and into a verdict frame.
    if (r.message.length === 0 || r.message.length > 200) return `${what}: error of ${r.message.length} chars`
    return null
  }
  const o = r as Record<string, unknown>
  const bytes = (v: unknown, min: number, max: number) => v instanceof Uint8Array && v.length >= min && v.length <= max
  const str = (v: unknown, max: number) => typeof v === 'string' && v.length <= max
  const ok =
    what === 'hello'
      ? bytes(o.nonce, 32, 32)
      : what === 'challenge'
        ? bytes(o.nonce, 32, 32) && str(o.chain, MAX_FRAME) && bytes(o.sig, 1, 1024)
        : what === 'register'
          ? str(o.chain, MAX_FRAME) &&
            bytes(o.sig, 1, 1024) &&
            Array.isArray(o.names) &&
            o.names.length <= 64 &&
            new Set(o.names).size === o.names.length &&
            o.names.every((n) => typeof n === 'string' && hostNameProblem(n) === null && n === n.toLowerCase())
          : what === 'verdict'
            ? (o.ok === true && typeof o.node === 'string') || (o.ok === false && str(o.error, 300))
            : str(o.src, 64) && str(o.sni, 253)
  return ok ? null : `${what}: ${JSON.stringify(r)}`
}

const PARSERS = [
  ['hello', parseHello],
  ['challenge', parseChallenge],
  ['register', parseRegister],
  ['verdict', parseVerdict],
  ['pair', parsePair],
] as const

t.test('seeded fuzz: every frame decoded as Node reads it or refused, every message parsed or refused', async (t) => {
  const r = rng(0x5e1a7)
  const int = (n: number) => Math.floor(r() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256))
  const CHARS = ['a', 'Z', '0', '.', '-', '_', ' ', '"', '\\', '\n', '\u0000', 'é', '中', '😀', '\ud800', '\udc00', '=']
  const str = (max: number) => Array.from({ length: int(max + 1) }, () => pick(CHARS)).join('')
  const json = (depth: number): unknown => {
    switch (int(depth > 0 ? 8 : 5)) {
      case 0:
        return null
      case 1:
        return pick([true, false])
      case 2:
        return pick([0, 1, -1, 2, 1.5, 1e308, -0, 2 ** 53])
      case 3:
        return str(20)
      case 4:
        return 'x'.repeat(pick([0, 64, 253, 254, 300, 5000]))
      case 5:
        return Array.from({ length: int(5) }, () => json(depth - 1))
      default:
        return Object.fromEntries(
          Array.from({ length: int(5) }, () => [
            pick([
              'v',
              'nonce',
              'chain',
              'sig',
              'names',
              'ok',
              'error',
              'node',
              'pair',
              'src',
              'sni',
              '__proto__',
              str(4),
            ]),
            json(depth - 1),
          ]),
        )
    }
  }
  const nonceHex = () => Buffer.from(randomBytes(32)).toString('hex')
  const sig = () => randomBytes(1 + int(pick([3, 64, 1024])))
  const name = () =>
    pick([
      'a.test',
      'Node.Example',
      `n${int(100)}.home.test`,
      'x'.repeat(63) + '.test',
      'bad name',
      '-a.test',
      'é.test',
      '中.test',
      '',
    ])
  // Valid messages (what the builders write), and the same with a field replaced or removed.
  const message = (): object => {
    switch (int(5)) {
      case 0:
        return { v: 1, nonce: nonceHex() }
      case 1:
        return { v: 1, nonce: nonceHex(), chain: CHAIN, sig: Buffer.from(sig()).toString('base64') }
      case 2:
        return {
          chain: CHAIN,
          names: Array.from({ length: int(pick([3, 66])) }, name),
          sig: Buffer.from(sig()).toString('base64'),
        }
      case 3:
        return pick([{ ok: true, node: 'NODE' + int(10) }, { error: str(400) }])
      default:
        return { pair: { src: `10.0.0.${int(256)}:${int(65536)}`, sni: pick([name(), 'y'.repeat(300)]) } }
    }
  }
  const mutateMessage = (m: object): object => {
    const o = structuredClone(m) as Record<string, unknown>
    const keys = Object.keys(o)
    const k = int(3)
    if (k === 0) o[pick(keys)] = json(2)
    else if (k === 1) delete o[pick(keys)]
    else o[pick(['v', 'nonce', 'names', 'pair', 'ok'])] = json(2)
    return o
  }
  const frameOf = (value: unknown) => encodeFrame(value as object)
  const setLen = (f: Uint8Array, len: number) => {
    const c = Uint8Array.from(f)
    if (c.length >= 4) new DataView(c.buffer).setUint32(0, len)
    return c
  }
  const BAD_UTF8 = [
    [0xc0, 0x80],
    [0xed, 0xa0, 0x80],
    [0xf5, 0x80, 0x80, 0x80],
    [0xe2, 0x82],
    [0xff],
    [0xef, 0xbb, 0xbf],
    [0xf4, 0x90, 0x80, 0x80],
  ]
  const mutateFrame = (f: Uint8Array): Uint8Array => {
    const c = Uint8Array.from(f)
    switch (int(8)) {
      case 0: // bytes flipped, the length prefix among them
        for (let k = 1 + int(3); k > 0; k--) c[int(c.length)] = int(256)
        return c
      case 1: // truncated
        return c.subarray(0, int(c.length + 1))
      case 2: // extended: garbage or another frame after it
        return new Uint8Array([...c, ...(int(2) ? randomBytes(1 + int(50)) : frameOf(message()))])
      case 3: // a length that lies
        return setLen(c, pick([0, 1, c.length - 5, c.length - 3, MAX_FRAME, MAX_FRAME + 1, 0xffffffff, int(2 ** 32)]))
      case 4: {
        // bad UTF-8 inside the body
        const at = 4 + int(Math.max(1, c.length - 4))
        const bad = pick(BAD_UTF8)
        const body = [...c.subarray(4, at), ...bad, ...c.subarray(at)]
        return setLen(new Uint8Array([0, 0, 0, 0, ...body]), body.length)
      }
      case 5: // a JSON value that is not an object
        return frameOf(pick([[1, 2], 'text', 3, null, true, [{}]]))
      case 6: // not JSON: cut inside, or trailing junk
        return setLen(new Uint8Array([...c, pick([0x7d, 0x2c, 0x20, 0x00])]), c.length - 3)
      default: // the largest frames
        return frameOf({ v: 1, pad: 'p'.repeat(MAX_FRAME - 20 + int(30)) })
    }
  }

  let cases = 0
  let wrong = 0
  const status = new Map<string, number>()
  const fail = (what: string) => {
    if (wrong++ < 20) t.fail(what)
  }
  for (let i = 0; i < 20000; i++) {
    const k = int(10)
    const m = k < 2 ? message() : mutateMessage(message())
    const input = k < 4 ? frameOf(m) : k < 9 ? mutateFrame(frameOf(m)) : randomBytes(int(40))
    cases++
    // Read as a stream: frame after frame while they decode; each one takes bytes, so this ends.
    for (let at = 0, steps = 0; steps <= input.length; steps++) {
      const rest = input.subarray(at)
      const shown = Buffer.from(rest.subarray(0, 40)).toString('hex')
      let got: ReturnType<typeof decodeFrame>
      try {
        got = decodeFrame(rest)
      } catch (e) {
        fail(`decodeFrame threw ${String(e)} on ${shown}`)
        break
      }
      status.set(got.status, (status.get(got.status) ?? 0) + 1)
      if (!isDeepStrictEqual(got, frameOracle(rest)))
        fail(`decodeFrame(${shown}…) = ${JSON.stringify(got).slice(0, 200)}`)
      if (got.status !== 'ok') break
      for (const [what, parse] of PARSERS) {
        let res: unknown
        try {
          res = parse(got.value)
        } catch (e) {
          fail(`${what} threw ${String(e)} on ${JSON.stringify(got.value).slice(0, 200)}`)
          continue
        }
        const problem = messageProblem(what, res)
        if (problem !== null) fail(problem.slice(0, 300))
      }
      if (got.consumed <= 4) fail(`a frame of ${got.consumed} bytes`)
      at += got.consumed
    }
  }
  t.equal(wrong, 0, `${cases} inputs: each as the oracle says, no throw, messages within their contract`)
  for (const s of ['ok', 'invalid', 'need-more']) t.ok((status.get(s) ?? 0) >= 1000, `${s}: ${status.get(s) ?? 0}`)
})

t.test('valid frames of every message round-trip through decode and parse', async (t) => {
  const r = rng(0xf4a3e)
  const b = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(r() * 256))
  for (let i = 0; i < 200; i++) {
    const nonce = b(32)
    const sig = b(1 + Math.floor(r() * 1024))
    const names = Array.from({ length: Math.floor(r() * 65) }, (_, k) => `n${k}.t${i}.test`)
    const node = `NODE${i}`
    const frames = [
      [helloFrame({ nonce }), parseHello, { nonce }],
      [challengeFrame({ nonce, chain: CHAIN, sig }), parseChallenge, { nonce, chain: CHAIN, sig }],
      [registerFrame({ chain: CHAIN, names, sig }), parseRegister, { chain: CHAIN, names, sig }],
      [verdictFrame({ ok: true, node }), parseVerdict, { ok: true, node }],
      [verdictFrame({ ok: false, error: `no ${i}` }), parseVerdict, { ok: false, error: `no ${i}` }],
      [
        pairFrame({ src: `10.0.0.1:${i}`, sni: names[0] ?? 'a.test' }),
        parsePair,
        { src: `10.0.0.1:${i}`, sni: names[0] ?? 'a.test' },
      ],
    ] as const
    // All of them in one stream: each decode takes exactly its frame, the last one leaves nothing.
    const stream = new Uint8Array(frames.flatMap(([f]) => [...f]))
    let at = 0
    for (const [f, parse, want] of frames) {
      const d = decodeFrame(stream.subarray(at))
      if (
        d.status !== 'ok' ||
        d.consumed !== f.length ||
        !isDeepStrictEqual((parse as (v: Record<string, unknown>) => unknown)(d.value), want)
      ) {
        t.fail(`frame ${i} at ${at}: ${JSON.stringify(d).slice(0, 200)}`)
        return
      }
      at += d.consumed
    }
    if (at !== stream.length) t.fail(`frame ${i}: ${stream.length - at} bytes left`)
  }
  t.pass('200 rounds of six frames')
})
