// The WebSocket wire format (src/core/websocket.ts): accept key (RFC 6455
// §1.3's example), client frames (masking, lengths, control-frame rules,
// reserved bits), server frames, and a fixed-seed fuzz of the parser.

import { createHash } from 'node:crypto'
import t from 'tap'
import {
  CLOSE,
  OP,
  acceptKey,
  closeCodeOf,
  closePayload,
  encodeFrame,
  isWebSocketKey,
  parseClientFrame,
} from '../../src/core/websocket.js'
import { rng } from '../lib/rng.js'

/** A client frame as a browser sends it: masked with `mask`. */
function clientFrame(opcode: number, payload: Uint8Array, opts: { fin?: boolean; mask?: number[]; rsv?: number } = {}) {
  const mask = opts.mask ?? [0x12, 0x34, 0x56, 0x78]
  const n = payload.length
  const head: number[] = [((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode]
  if (n < 126) head.push(0x80 | n)
  else if (n < 65536) head.push(0x80 | 126, n >> 8, n & 0xff)
  else head.push(0x80 | 127, 0, 0, 0, 0, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)
  const out = new Uint8Array(head.length + 4 + n)
  out.set(head)
  out.set(mask, head.length)
  for (let i = 0; i < n; i++) out[head.length + 4 + i] = payload[i]! ^ mask[i & 3]!
  return out
}

const text = (s: string) => new TextEncoder().encode(s)

t.test("accept key: the RFC 6455 example (the binary's SHA-1: test/e2e/admin-api.ts)", async (t) => {
  const sha1 = (b: Uint8Array) => new Uint8Array(createHash('sha1').update(b).digest())
  t.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ==', sha1), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
  t.ok(isWebSocketKey('dGhlIHNhbXBsZSBub25jZQ=='))
  t.notOk(isWebSocketKey('dGhlIHNhbXBsZQ=='), '11 bytes')
  t.notOk(isWebSocketKey('not base64!'))
})

t.test('client frames: masked text, lengths in each form, partial input', async (t) => {
  for (const n of [0, 5, 125, 126, 65535, 65536, 70000]) {
    const payload = new Uint8Array(n).map((_, i) => i & 0xff)
    const f = clientFrame(OP.BINARY, payload)
    const r = parseClientFrame(f, 1 << 20)
    t.equal(r.status, 'ok', `${n} bytes`)
    if (r.status !== 'ok') continue
    t.equal(r.consumed, f.length)
    t.ok(Buffer.from(r.payload).equals(Buffer.from(payload)), `payload of ${n} bytes unmasked`)
    for (const cut of [1, 2, 3, f.length - 1]) {
      if (cut < f.length) t.equal(parseClientFrame(f.subarray(0, cut), 1 << 20).status, 'need-more', `cut at ${cut}`)
    }
  }
  const two = Buffer.concat([clientFrame(OP.TEXT, text('a'), { fin: false }), clientFrame(OP.CONTINUATION, text('b'))])
  const first = parseClientFrame(two, 100)
  t.match(first, { status: 'ok', fin: false, opcode: OP.TEXT, consumed: 7 })
})

t.test('client frames: what RFC 6455 refuses', async (t) => {
  const unmasked = Uint8Array.from([0x81, 0x01, 0x61])
  t.match(parseClientFrame(unmasked, 100), { status: 'invalid', closeCode: CLOSE.PROTOCOL, error: /not masked/ })
  t.match(parseClientFrame(clientFrame(OP.TEXT, text('x'), { rsv: 4 }), 100), {
    status: 'invalid',
    error: /reserved bits/,
  })
  t.match(parseClientFrame(clientFrame(0x3, text('x')), 100), { status: 'invalid', error: /unknown opcode 3/ })
  t.match(parseClientFrame(clientFrame(OP.PING, new Uint8Array(126)), 1000), {
    status: 'invalid',
    error: /control frame/,
  })
  t.match(parseClientFrame(clientFrame(OP.PING, text('x'), { fin: false }), 100), {
    status: 'invalid',
    error: /control frame/,
  })
  t.match(parseClientFrame(clientFrame(OP.TEXT, new Uint8Array(101)), 100), {
    status: 'invalid',
    closeCode: CLOSE.TOO_BIG,
    error: /101 bytes is over the 100-byte limit/,
  })
  const long = Uint8Array.from([0x82, 0x80 | 126, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, 0, 0])
  t.match(parseClientFrame(long, 100), { status: 'invalid', error: /shortest form/ })
  const top = Uint8Array.from([0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0])
  t.match(parseClientFrame(top, 100), { status: 'invalid', error: /top bit/ })
  t.match(parseClientFrame(clientFrame(OP.CLOSE, Uint8Array.from([3])), 100), {
    status: 'invalid',
    error: /1-byte payload/,
  })
})

t.test('server frames and close payloads', async (t) => {
  t.same([...encodeFrame(OP.TEXT, 'hi')], [0x81, 2, 0x68, 0x69])
  const mid = encodeFrame(OP.TEXT, new Uint8Array(300))
  t.same([...mid.subarray(0, 4)], [0x81, 126, 1, 44])
  const big = encodeFrame(OP.BINARY, new Uint8Array(70000))
  t.same([...big.subarray(0, 10)], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70])
  t.equal(big.length, 70010)
  t.same([...closePayload(1000, 'ok')], [0x03, 0xe8, 0x6f, 0x6b])
  t.equal(closePayload(1002, 'x'.repeat(300)).length, 125, 'reason cut to fit a control frame')
  t.equal(closeCodeOf(closePayload(1009)), 1009)
  t.equal(closeCodeOf(new Uint8Array(0)), 1005)
})

t.test('fuzz: random and mutated frames never throw, and ok consumes within the buffer', async (t) => {
  const r = rng(0x5eed)
  const valid = [
    clientFrame(OP.TEXT, text('{"hello":1}')),
    clientFrame(OP.PING, text('p')),
    clientFrame(OP.CLOSE, closePayload(1000, 'bye')),
    clientFrame(OP.BINARY, new Uint8Array(300)),
  ]
  const counts: Record<string, number> = {}
  for (let i = 0; i < 20000; i++) {
    let buf: Uint8Array
    if (i % 2 === 0) {
      buf = new Uint8Array(Math.floor(r() * 40)).map(() => Math.floor(r() * 256))
    } else {
      buf = Uint8Array.from(valid[i % valid.length]!)
      for (let k = 0; k < 1 + Math.floor(r() * 3); k++) buf[Math.floor(r() * buf.length)] = Math.floor(r() * 256)
      buf = buf.subarray(0, Math.floor(r() * (buf.length + 1)))
    }
    const res = parseClientFrame(buf, 1024)
    counts[res.status] = (counts[res.status] ?? 0) + 1
    if (res.status === 'ok' && (res.consumed > buf.length || res.consumed < 6)) {
      t.fail(`consumed ${res.consumed} of ${buf.length}`)
      return
    }
    if (res.status === 'invalid' && (res.error === '' || ![1002, 1009].includes(res.closeCode))) {
      t.fail(`invalid without a reason or with close code ${res.closeCode}`)
      return
    }
  }
  t.ok((counts.ok ?? 0) > 0 && (counts.invalid ?? 0) > 0 && (counts['need-more'] ?? 0) > 0, JSON.stringify(counts))
})
