import t from 'tap'
import {
  MAX_FRAME,
  PoolTarget,
  SniRegistry,
  backoffMs,
  decodeFrame,
  encodeFrame,
  gateText,
  nameGranted,
  pairFrame,
  parseChallenge,
  parseHello,
  parsePair,
  parseRegister,
  registeredNames,
  relayText,
  sniNodeLabel,
} from '../../src/core/sni-relay.js'

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

t.test('registry: park, take by name or node id, waiters, limits, conflicts', async (t) => {
  const reg = new SniRegistry<string>(2, 2)
  const a = { spiffe: 'spiffe://td/ns/h/sa/a', nodeId: 'NODEA', names: ['a.test'] }
  const b = { spiffe: 'spiffe://td/ns/h/sa/b', nodeId: 'NODEB', names: ['b.test'] }
  t.equal(reg.park(a, 'a1'), 'parked')
  t.equal(reg.park(a, 'a2'), 'parked')
  t.match(reg.park(a, 'a3'), { refused: /already has 2 parked/ }, 'maxParked per gate')
  t.match(reg.park(b, 'b1'), 'parked')
  t.match(reg.park({ ...b, names: ['a.test'] }, 'b2'), { refused: 'name a.test is registered by node NODEA' })
  t.same(reg.take('A.TEST'), { conn: 'a1', gate: a }, 'by name, case-blind, oldest first')
  t.same(reg.take('nodea.ns.td'), { conn: 'a2', gate: a }, 'by node id as the first label')
  t.equal(reg.take('a.test'), undefined, 'none left: the gate is forgotten')
  t.equal(reg.gateFor('a.test'), undefined)
  t.equal(reg.take('nobody.test'), undefined)

  const got: string[] = []
  const stop1 = reg.wait('a.test', (c) => got.push(`w1:${c}`))
  const stop2 = reg.wait('nodea.x', (c) => got.push(`w2:${c}`))
  t.equal(
    reg.wait('a.test', () => {}),
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
    [['NODEB', 1]],
  )
  // A new registration with other names drops the old ones.
  t.equal(reg.park({ ...b, names: ['c.test'] }, 'b3'), 'parked')
  t.equal(reg.gateFor('b.test'), undefined, 'old name forgotten')
  t.equal(reg.gateFor('c.test')?.nodeId, 'NODEB')
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
