import { readFileSync } from 'node:fs'
import t from 'tap'
import type { Test } from 'tap'
import { sniffQuic, type QuicInitial, type QuicOpen, type QuicOpened } from '../../src/core/sniff/quic.js'
import { sniffClientHelloMessage } from '../../src/core/sniff/tls.js'
import { clientInitialKeys, nodeQuicOpen, QUIC_V1, QUIC_V2 } from '../lib/quic.js'
import { rng } from '../lib/rng.js'

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../fixtures/quic/${name}.bin`, import.meta.url)))
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

const rfc9001 = fixture('rfc9001-client-initial')
const rfc9369 = fixture('rfc9369-client-initial')
const v1 = [0, 1, 2, 3, 4, 5].map((i) => fixture(`chromium-v1-${i}`))
const v2 = [0, 1, 2].map((i) => fixture(`chromium-v2-${i}`))

/** The RFC 9001 A.2 / RFC 9369 A.2 CRYPTO frame (the rest of the 1162-byte payload is PADDING). */
const RFC_CRYPTO_FRAME =
  '060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578616d706c652e636f6dff01000100000a00080006001d0017001800100007000504616c706e000500050100000000003300260024001d00209370b2c9caa47fbabaf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b0003020304000d0010000e0403050306030203080408050806002d00020101001c00024001003900320408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806048000ffff'
const RFC_DCID = '8394c8f03e515708'

function packets(o: QuicOpened): QuicInitial[] {
  if ('error' in o) throw new Error(o.message)
  return o.packets
}

// ---------------------------------------------------------------------------
// The node:crypto opener against the RFCs' vectors (it is the reference the
// native opener is compared with in test/e2e/quic-sniff.ts)

t.test('initial keys: RFC 9001 A.1 (v1) and RFC 9369 A.1 (v2)', async (t) => {
  const k1 = clientInitialKeys(QUIC_V1, fromHex(RFC_DCID))
  t.equal(k1.key.toString('hex'), '1f369613dd76d5467730efcbe3b1a22d')
  t.equal(k1.iv.toString('hex'), 'fa044b2f42a3fd3b46fb255c')
  t.equal(k1.hp.toString('hex'), '9f50449e04a0e810283a1e9933adedd2')
  const k2 = clientInitialKeys(QUIC_V2, fromHex(RFC_DCID))
  t.equal(k2.key.toString('hex'), '8b1a0bc121284290a29e0971b5cd045d')
  t.equal(k2.iv.toString('hex'), '91f73e2351d8fa91660e909f')
  t.equal(k2.hp.toString('hex'), '45b95e15235d6f45a6b19cbcb0294ba9')
})

t.test('open: the RFC client Initials give the RFC frames', async (t) => {
  for (const [name, d, version] of [
    ['RFC 9001 A.2', rfc9001, QUIC_V1],
    ['RFC 9369 A.2', rfc9369, QUIC_V2],
  ] as const) {
    const ps = packets(nodeQuicOpen(d))
    t.equal(ps.length, 1, name)
    const p = ps[0]!
    t.equal(p.version, version, `${name}: version`)
    t.equal(hex(p.dcid), RFC_DCID, `${name}: DCID`)
    t.equal(p.pn, 2, `${name}: packet number`)
    t.equal(p.frames.length, 1162, `${name}: payload length`)
    t.equal(hex(p.frames.subarray(0, RFC_CRYPTO_FRAME.length / 2)), RFC_CRYPTO_FRAME, `${name}: CRYPTO frame`)
    t.ok(
      p.frames.subarray(RFC_CRYPTO_FRAME.length / 2).every((b) => b === 0),
      `${name}: PADDING after it`,
    )
  }
})

t.test('open: errors name what is wrong', async (t) => {
  const err = (d: Uint8Array): string => {
    const o = nodeQuicOpen(d)
    return 'error' in o ? o.error : 'ok'
  }
  t.equal(err(new Uint8Array([0x40, 1, 2, 3, 4, 5, 6, 7])), 'not-quic', 'short header')
  t.equal(err(new Uint8Array([0x16, 3, 1, 0, 5])), 'not-quic', 'a TLS record')
  const draft = new Uint8Array(rfc9001)
  draft.set([0xff, 0, 0, 0x1d], 1)
  t.equal(err(draft), 'version', 'draft-29')
  const vn = new Uint8Array(rfc9001)
  vn.set([0, 0, 0, 0], 1)
  t.equal(err(vn), 'version', 'version negotiation')
  const hs = new Uint8Array(rfc9001)
  hs[0] = 0xe0 // type 2: Handshake
  t.equal(err(hs), 'not-initial', 'a Handshake packet')
  t.equal(err(rfc9001.subarray(0, 1199)), 'truncated', 'one byte short')
  t.equal(err(rfc9001.subarray(0, 30)), 'truncated', 'cut in the payload')
  const flipped = new Uint8Array(rfc9001)
  flipped[500] ^= 1
  t.equal(err(flipped), 'bad-tag', 'a flipped payload bit')
  const v2AsV1 = new Uint8Array(rfc9369)
  v2AsV1.set([0, 0, 0, 1], 1)
  t.equal(err(v2AsV1), 'not-initial', 'v2 type bits read as v1: 0-RTT')
  const longCid = new Uint8Array(rfc9001)
  longCid[5] = 21
  t.equal(err(longCid), 'malformed', 'DCID of 21 bytes')
})

t.test('open: coalesced packets after an Initial are stepped over, padding ends the datagram', async (t) => {
  const zeroRtt = new Uint8Array([0xd0, 0, 0, 0, 1, 0, 0, 3, 9, 9, 9]) // 0-RTT, empty CIDs, length 3
  const d = new Uint8Array([...rfc9001, ...zeroRtt, ...rfc9001, 0, 0, 0])
  const ps = packets(nodeQuicOpen(d))
  t.equal(ps.length, 2, 'both Initials, the 0-RTT packet skipped')
  t.same(ps[1]!.frames, ps[0]!.frames)
})

// ---------------------------------------------------------------------------
// The sniffer on real captures

t.test('sniff: RFC vectors (one packet, v1 and v2)', async (t) => {
  for (const d of [rfc9001, rfc9369]) {
    t.same(sniffQuic([d], nodeQuicOpen), { status: 'ok', proto: 'quic', host: 'example.com', alpn: ['alpn'] })
  }
})

t.test('sniff: Chromium v1, ClientHello in two Initial packets with scrambled CRYPTO frames', async (t) => {
  const want = { status: 'ok', proto: 'quic', host: 'quic.test', alpn: ['h3'] }
  t.same(sniffQuic([v1[0]!], nodeQuicOpen), { status: 'need-more', proto: 'quic' }, 'first datagram only')
  t.same(sniffQuic([v1[1]!], nodeQuicOpen), { status: 'need-more', proto: 'quic' }, 'second only (no offset 0)')
  t.same(sniffQuic(v1.slice(0, 2), nodeQuicOpen), want, 'both')
  t.same(sniffQuic([v1[1]!, v1[0]!], nodeQuicOpen), want, 'in the other order')
  t.same(sniffQuic(v1, nodeQuicOpen), want, 'with the retransmissions and the closing datagram')
  // Retransmissions alone (datagrams 2-4 repeat the ClientHello) suffice too.
  t.same(sniffQuic(v1.slice(2, 5), nodeQuicOpen), want, 'retransmissions only')
  const sizes = v1.slice(0, 2).map((d) => packets(nodeQuicOpen(d))[0]!.frames.length)
  t.ok(
    sizes.every((n) => n > 1000),
    `two full packets (${sizes.join(', ')} bytes of frames)`,
  )
})

t.test('sniff: Chromium v2 (--quic-version=RFCv2)', async (t) => {
  t.same(sniffQuic(v2.slice(0, 2), nodeQuicOpen), { status: 'ok', proto: 'quic', host: 'quic.test', alpn: ['h3'] })
  t.equal(packets(nodeQuicOpen(v2[0]!))[0]!.version, QUIC_V2)
})

t.test('sniff: not QUIC, other versions and packet types are not-mine; damage is invalid', async (t) => {
  t.same(sniffQuic([], nodeQuicOpen), { status: 'need-more' })
  t.equal(sniffQuic([new Uint8Array([0x16, 3, 1, 0, 5, 1])], nodeQuicOpen).status, 'not-mine')
  t.equal(sniffQuic([new Uint8Array(0)], nodeQuicOpen).status, 'not-mine', 'empty datagram')
  const draft = new Uint8Array(rfc9001)
  draft.set([0xff, 0, 0, 0x1d], 1)
  t.match(sniffQuic([draft], nodeQuicOpen), { status: 'not-mine', error: /version/ })
  const flipped = new Uint8Array(v1[0]!)
  flipped[700] ^= 0x80
  t.match(sniffQuic([flipped, v1[1]!], nodeQuicOpen), { status: 'invalid', proto: 'quic', error: /bad-tag|tag/ })
  t.match(sniffQuic([v1[0]!.subarray(0, 600)], nodeQuicOpen), {
    status: 'invalid',
    proto: 'quic',
    error: /truncated/,
  })
})

t.test("sniff: later datagrams that are not this connection's Initials are passed over", async (t) => {
  const want = { status: 'ok', proto: 'quic', host: 'quic.test', alpn: ['h3'] }
  const flipped = new Uint8Array(v1[1]!)
  flipped[900] ^= 1
  t.same(sniffQuic([v1[0]!, flipped], nodeQuicOpen), { status: 'need-more', proto: 'quic' }, 'a damaged one')
  t.same(sniffQuic([v1[0]!, flipped, v1[1]!], nodeQuicOpen), want, 'then the good copy')
  t.same(sniffQuic([v1[0]!, rfc9001, v1[1]!], nodeQuicOpen), want, 'another DCID in between')
  t.same(sniffQuic([v1[0]!, new Uint8Array([0x40, 1, 2]), v1[1]!], nodeQuicOpen), want, 'a short header')
})

// ---------------------------------------------------------------------------
// Frames and CRYPTO reassembly (the opener faked: each datagram stands for
// the packets the test lists)

const DCID = new Uint8Array([1, 2, 3, 4])

/** A QuicOpen that answers, for the i-th datagram given, the i-th entry (datagrams are [i]). */
function fakeOpen(answers: QuicOpened[]): { open: QuicOpen; datagrams: Uint8Array[] } {
  return { open: (d) => answers[d[0]!]!, datagrams: answers.map((_, i) => new Uint8Array([i])) }
}
const pkt = (frames: number[] | Uint8Array, pn = 0): QuicInitial => ({
  version: QUIC_V1,
  dcid: DCID,
  pn,
  frames: new Uint8Array(frames),
})
const varint = (v: number): number[] =>
  v < 64
    ? [v]
    : v < 16384
      ? [0x40 | (v >> 8), v & 0xff]
      : [0x80 | (v >>> 24), (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff]
const crypto = (offset: number, data: Uint8Array | number[]): number[] => [
  6,
  ...varint(offset),
  ...varint(data.length),
  ...data,
]

/** The RFC's ClientHello (a handshake message) as bytes. */
const HELLO = fromHex(RFC_CRYPTO_FRAME).subarray(4)
t.equal(sniffClientHelloMessage(HELLO).status, 'ok', 'the RFC ClientHello parses on its own')

function sniffFrames(...datagrams: number[][][]) {
  const { open, datagrams: ds } = fakeOpen(datagrams.map((d) => ({ packets: d.map((f, i) => pkt(f, i)) })))
  return sniffQuic(ds, open)
}

t.test('frames: PADDING, PING, ACK, ACK_ECN, CONNECTION_CLOSE around CRYPTO pieces in any order', async (t) => {
  const a = HELLO.subarray(0, 100)
  const b = HELLO.subarray(100)
  const ack = [2, 5, 0, 1, 0, 1, 1] // largest 5, delay 0, 1 range, first 0, gap 1 len 1
  const ackEcn = [3, 5, 0, 0, 0, 1, 2, 3]
  const close = [0x1c, 0, 0, 3, ...Buffer.from('bye')]
  const r = sniffFrames([[...crypto(100, b), 0, 0, 1, ...ack]], [[...ackEcn, ...close, ...crypto(0, a), 0, 0, 0]])
  t.same(r, { status: 'ok', proto: 'quic', host: 'example.com', alpn: ['alpn'] })
})

t.test('frames: overlapping and repeated CRYPTO data must agree', async (t) => {
  const ok = sniffFrames(
    [[...crypto(0, HELLO.subarray(0, 150)), ...crypto(50, HELLO.subarray(50))]],
    [[...crypto(0, HELLO)]],
  )
  t.equal(ok.status, 'ok', 'overlaps that agree')
  const other = new Uint8Array(HELLO.subarray(40, 60))
  other[5] ^= 1
  t.match(sniffFrames([[...crypto(0, HELLO), ...crypto(40, other)]]), {
    status: 'invalid',
    proto: 'quic',
    error: /offset 45 differs/,
  })
})

t.test('frames: what an Initial may not carry, and lying lengths, are invalid', async (t) => {
  const cases: Array<[string, number[], RegExp]> = [
    ['STREAM', [0x08, 0, 1, 0x61], /frame type 0x08 is not allowed/],
    ['HANDSHAKE_DONE', [0x1e], /frame type 0x1e/],
    ['CONNECTION_CLOSE (application)', [0x1d, 0, 0], /frame type 0x1d/],
    ['a 2-byte frame type', [0x40, 0x40], /frame type 0x40 is not allowed/],
    ['CRYPTO as a 2-byte frame type', [0x40, 0x06, 0, 1, 0], /frame type 0x06 at offset \d+ is not minimally encoded/],
    ['CRYPTO longer than the packet', [6, 0, 0x40, 200, 1, 2, 3], /CRYPTO length 200 exceeds/],
    ['CRYPTO cut in its header', [6, 0x40], /truncated/],
    ['ACK with more ranges than bytes', [2, 1, 0, 0x40, 100, 0, 1, 1], /ACK range count 100 exceeds/],
    ['ACK cut', [2, 1, 0], /truncated/],
    ['ACK_ECN without its counts', [3, 1, 0, 0, 0, 1], /truncated/],
    ['CONNECTION_CLOSE reason too long', [0x1c, 0, 0, 9, 1], /reason length 9 exceeds/],
  ]
  for (const [name, frames, error] of cases) {
    t.match(
      sniffFrames([[...crypto(0, HELLO.subarray(0, 10)), ...frames]]),
      { status: 'invalid', proto: 'quic', error },
      name,
    )
  }
  t.match(sniffFrames([[]]), { status: 'invalid', error: /empty payload/ }, 'no frame at all')
  t.match(
    sniffFrames([[...crypto(20000, [1])]]),
    { status: 'invalid', error: /CRYPTO data up to offset 20001 exceeds the ClientHello limit/ },
    'CRYPTO past the ClientHello limit',
  )
  t.match(
    sniffFrames([[...crypto(0, [2, 0, 0, 4, 1, 2, 3, 4])]]),
    { status: 'invalid', proto: 'quic', error: /tls: handshake type 2 is not client_hello/ },
    'the CRYPTO stream does not start with a ClientHello',
  )
})

t.test('frames: an incomplete ClientHello is need-more until maxDatagrams', async (t) => {
  const part = [[...crypto(0, HELLO.subarray(0, 50))]]
  const { open, datagrams } = fakeOpen([0, 1, 2].map(() => ({ packets: part.map((f) => pkt(f)) })))
  t.same(sniffQuic(datagrams.slice(0, 2), open, { maxDatagrams: 3 }), { status: 'need-more', proto: 'quic' })
  t.match(sniffQuic(datagrams, open, { maxDatagrams: 3 }), {
    status: 'invalid',
    error: /incomplete after 3 datagrams \(limit 3\)/,
  })
  t.match(sniffFrames([[...crypto(0, HELLO)]]).status, 'ok')
  const { open: o2, datagrams: d2 } = fakeOpen([{ packets: [pkt(crypto(0, HELLO))] }])
  t.match(sniffQuic(d2, o2, { maxHello: 100 }), {
    status: 'invalid',
    error: /CRYPTO data up to offset 241 exceeds the ClientHello limit \(104 bytes\)/,
  })
  const { open: o3, datagrams: d3 } = fakeOpen([{ packets: [pkt(crypto(0, [1, 0, 0x10, 0, 3, 3]))] }])
  t.match(sniffQuic(d3, o3, { maxHello: 100 }), {
    status: 'invalid',
    error: /client_hello length 4096 exceeds limit 100/,
  })
})

// ---------------------------------------------------------------------------
// Fixed-seed fuzz: never throws, never hangs, always a documented status

const STATUSES = new Set(['need-more', 'not-mine', 'invalid', 'ok'])

/** Run 3000 fixed-seed cases: none may throw or answer an undocumented status; the results must vary. */
function fuzz(t: Test, seed: number, makeCase: (rand: () => number) => [Uint8Array[], QuicOpen]): void {
  const rand = rng(seed)
  let bad = 0
  const seen = new Map<string, number>()
  for (let i = 0; i < 3000; i++) {
    const [datagrams, open] = makeCase(rand)
    let r
    try {
      r = sniffQuic(datagrams, open)
    } catch (e) {
      if (bad++ < 3) t.fail(`iteration ${i} threw ${String(e)}`)
      continue
    }
    if (!STATUSES.has(r.status) && bad++ < 3) t.fail(`iteration ${i}: status ${r.status}`)
    seen.set(r.status, (seen.get(r.status) ?? 0) + 1)
  }
  t.equal(bad, 0, 'no exception, only documented statuses')
  t.ok((seen.get('invalid') ?? 0) > 0 && (seen.get('ok') ?? 0) > 0, `a mix of results: ${JSON.stringify([...seen])}`)
}

t.test('fuzz: damaged datagrams through the node:crypto opener', async (t) => {
  const sources = [rfc9001, rfc9369, ...v1, ...v2]
  fuzz(t, 0x9001, (rand) => {
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!
    const ds = [pick(sources), pick(sources)].map((d) => new Uint8Array(d))
    const d = pick(ds)
    switch (Math.floor(rand() * 4)) {
      case 0: // truncation
        ds[ds.indexOf(d)] = d.subarray(0, Math.floor(rand() * d.length))
        break
      case 1: // bit flips in the header (lengths, CIDs, type bits)
        for (let k = 0; k < 1 + rand() * 3; k++) d[Math.floor(rand() * 30)]! ^= 1 << Math.floor(rand() * 8)
        break
      case 2: // a lying Length field
        d[24] = Math.floor(rand() * 256)
        d[25] = Math.floor(rand() * 256)
        break
      default: // bit flips anywhere
        d[Math.floor(rand() * d.length)]! ^= 1 << Math.floor(rand() * 8)
    }
    return [ds, nodeQuicOpen]
  })
})

t.test('fuzz: damaged frames (lying lengths, random offsets, duplicates)', async (t) => {
  const real = [...v1.slice(0, 2), ...v2.slice(0, 2)].map((d) => packets(nodeQuicOpen(d))[0]!.frames)
  fuzz(t, 0x9369, (rand) => {
    const n = 1 + Math.floor(rand() * 3)
    const answers: QuicOpened[] = []
    for (let k = 0; k < n; k++) {
      const f = new Uint8Array(real[Math.floor(rand() * real.length)]!)
      const mode = Math.floor(rand() * 4)
      if (mode === 0)
        for (let j = 0; j < 1 + rand() * 4; j++) f[Math.floor(rand() * f.length)]! ^= 1 << Math.floor(rand() * 8)
      // A CRYPTO frame with random offset and length in the middle.
      if (mode === 1)
        f.set(
          [6, 0x80 | Math.floor(rand() * 64), rand() * 256, rand() * 256, rand() * 256, 0x44, rand() * 256],
          Math.floor(rand() * (f.length - 8)),
        )
      // An ACK with a huge range count.
      if (mode === 2) f.set([2, 1, 0, 0xbf, 0xff, 0xff, 0xff, 0], Math.floor(rand() * (f.length - 8)))
      const frames = mode === 3 ? f.subarray(0, Math.floor(rand() * f.length)) : f
      answers.push({ packets: [pkt(frames, k)] })
    }
    const { open, datagrams } = fakeOpen(answers)
    return [datagrams, open]
  })
})
