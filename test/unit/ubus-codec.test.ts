import t from 'tap'
import {
  BLOBMSG,
  BlobError,
  MAX_DEPTH,
  decodeFields,
  decodeTable,
  encodeAttr,
  encodeField,
  encodeTable,
  parseAttrs,
} from '../../src/core/ubus/blob.js'
import { ARG, addObjectMessage, eventMessage, readInvocation, replyMessages } from '../../src/core/ubus/client.js'
import { ATTR, MSG, MessageReader, decodeMessage, encodeMessage, nested } from '../../src/core/ubus/message.js'
import { rng } from '../lib/rng.js'
import { captured } from '../lib/ubus-fixtures.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const session = captured('real-session')
const ugate = captured('real-ugate')
const all = [...session, ...ugate]
const find = (list: typeof session, conn: number, dir: 's2c' | 'c2s', type: number) =>
  list.filter((m) => m.conn === conn && m.dir === dir).find((m) => m.bytes[1] === type)!.bytes

t.test('every message captured from the real ubusd decodes and re-encodes to the same bytes', async (t) => {
  t.ok(all.length > 60)
  for (const c of all) {
    const m = decodeMessage(c.bytes)
    t.equal(hex(encodeMessage(m)), hex(c.bytes), `conn ${c.conn} ${c.dir} type ${m.type}`)
  }
})

t.test('the real HELLO carries the client id in the header', async (t) => {
  const hello = decodeMessage(session[0]!.bytes)
  t.equal(hello.type, MSG.HELLO)
  t.equal(hello.peer, 0x7ceea070)
  t.equal(hello.attrs.size, 0)
})

t.test('ADD_OBJECT as libubus sends it (logd registering "log")', async (t) => {
  const real = find(session, 3, 'c2s', MSG.ADD_OBJECT)
  const ours = addObjectMessage(1, 'log', {
    read: { lines: ARG.INT32, stream: ARG.BOOL, oneshot: ARG.BOOL },
    write: { event: ARG.STRING },
  })
  t.equal(hex(encodeMessage(ours)), hex(real))
  const sig = decodeFields(nested(decodeMessage(real), ATTR.SIGNATURE)!)
  t.same(
    sig.map((f) => [f.name, f.type, f.value]),
    [
      ['read', BLOBMSG.TABLE, { lines: BLOBMSG.INT32, stream: BLOBMSG.INT8, oneshot: BLOBMSG.INT8 }],
      ['write', BLOBMSG.TABLE, { event: BLOBMSG.STRING }],
    ],
  )
})

t.test('an event as `ubus send` sends it', async (t) => {
  t.equal(hex(encodeMessage(eventMessage(1, 'ugate.test', { a: 1 }))), hex(find(session, 6, 'c2s', MSG.INVOKE)))
  t.equal(hex(encodeMessage(eventMessage(1, 'ugate.reload', { pid: 42 }))), hex(find(session, 8, 'c2s', MSG.INVOKE)))
})

t.test('a forwarded INVOKE is read, and answered as libubus answers it', async (t) => {
  const inv = readInvocation(decodeMessage(find(session, 3, 's2c', MSG.INVOKE)))
  if (typeof inv === 'string') throw new Error(inv)
  t.same(
    { method: inv.method, args: inv.args, peer: inv.peer, object: inv.object, seq: inv.seq },
    { method: 'write', args: { event: 'hello from ubus' }, peer: 0xb66b8599, object: 0x00936f28, seq: 2 },
  )
  const replies = replyMessages(inv, 0).map((m) => hex(encodeMessage(m)))
  t.same(replies, [hex(find(session, 3, 'c2s', MSG.STATUS))])
})

t.test('a reply with data: DATA then STATUS (ugate answering `connections` on the real ubusd)', async (t) => {
  const invBytes = ugate.filter((m) => m.conn === 9 && m.dir === 's2c' && m.bytes[1] === MSG.INVOKE)[1]!.bytes
  const inv = readInvocation(decodeMessage(invBytes))
  if (typeof inv === 'string') throw new Error(inv)
  t.equal(inv.method, 'connections')
  const out = replyMessages(inv, 0, { connections: [] }).map((m) => hex(encodeMessage(m)))
  const real = ugate.filter((m) => m.conn === 9 && m.dir === 'c2s' && m.bytes.length > 0).map((m) => hex(m.bytes))
  const at = real.indexOf(out[0]!)
  t.ok(at > 0, 'DATA found in the capture')
  t.equal(real[at + 1], out[1], 'STATUS right after it')
  t.same(decodeTable(nested(decodeMessage(Buffer.from(out[0]!, 'hex')), ATTR.DATA)!), { connections: [] })
})

t.test('close with an INT32 and a STRING id against the String signature (real ubusd, conns 18 and 19)', async (t) => {
  const sig = decodeFields(nested(decodeMessage(find(ugate, 9, 'c2s', MSG.ADD_OBJECT)), ATTR.SIGNATURE)!)
  t.same(sig.find((f) => f.name === 'close')!.value, { id: ARG.STRING }, 'the signature ugate registered')
  const closes = ugate.filter((m) => m.conn === 9 && m.dir === 's2c' && m.bytes[1] === MSG.INVOKE).slice(-2)
  const real = ugate.filter((m) => m.conn === 9 && m.dir === 'c2s').map((m) => hex(m.bytes))
  for (const [bytes, id] of [
    [closes[0]!.bytes, 1],
    [closes[1]!.bytes, '2'],
  ] as const) {
    const inv = readInvocation(decodeMessage(bytes))
    if (typeof inv === 'string') throw new Error(inv)
    t.same(
      { method: inv.method, args: inv.args },
      { method: 'close', args: { id } },
      `ubusd forwarded ${typeof id} ${id}`,
    )
    const out = replyMessages(inv, 0, { closed: id }).map((m) => hex(encodeMessage(m)))
    const at = real.indexOf(out[0]!)
    t.ok(at > 0 && real[at + 1] === out[1], `the reply {closed: ${JSON.stringify(id)}} as ugate sent it`)
  }
})

t.test('blobmsg values round-trip', async (t) => {
  const v = { s: 'x', i: -5, big: 2 ** 40, d: 1.5, b: true, f: false, a: [1, 'two', { t: [] }], o: { n: null } }
  t.same(decodeTable(encodeTable(v)), { ...v, o: { n: '' } })
})

t.test('the stream reader splits and joins messages', async (t) => {
  const bytes = Buffer.concat(session.filter((m) => m.conn === 5 && m.dir === 's2c').map((m) => m.bytes))
  const r = new MessageReader()
  const got = []
  for (let i = 0; i < bytes.length; i += 7) got.push(...r.push(new Uint8Array(bytes.subarray(i, i + 7))))
  t.same(
    got.map((m) => m.type),
    [MSG.HELLO, MSG.DATA, MSG.STATUS, MSG.STATUS],
  )
})

const bad: Array<[string, () => unknown, RegExp]> = [
  ['attr length below header', () => parseAttrs(new Uint8Array([0, 0, 0, 2])), /below its header/],
  ['attr length past the end', () => parseAttrs(new Uint8Array([0, 0, 0, 40, 1, 2, 3, 4])), /runs past the end/],
  ['header cut short', () => parseAttrs(new Uint8Array([0, 0])), /cut short/],
  [
    'blobmsg without extended bit',
    () => decodeTable(encodeAttr(BLOBMSG.INT32, new Uint8Array(8))),
    /without the extended bit/,
  ],
  [
    'name length past the attribute',
    () => decodeTable(encodeAttr(BLOBMSG.INT32, new Uint8Array([0, 200, 0, 0]), true)),
    /name length 200/,
  ],
  [
    'INT32 with 2 bytes',
    () => decodeTable(encodeAttr(BLOBMSG.INT32, new Uint8Array([0, 1, 0x61, 0, 0, 0]), true)),
    /needs 4 bytes, got 2/,
  ],
  ['unknown type', () => decodeTable(encodeAttr(42, new Uint8Array([0, 1, 0x61, 0]), true)), /unknown blobmsg type 42/],
  [
    'string without NUL',
    () => decodeTable(encodeAttr(BLOBMSG.STRING, new Uint8Array([0, 1, 0x61, 0, 0x62]), true)),
    /without NUL/,
  ],
  ['nesting too deep', () => decodeTable(deep(MAX_DEPTH + 2)), /nesting deeper/],
  [
    'message length that lies',
    () => decodeMessage(Uint8Array.from([0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0])),
    /cut short/,
  ],
  [
    'message above 1 MiB',
    () => new MessageReader().push(Uint8Array.from([0, 2, 0, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff])),
    /exceeds/,
  ],
  [
    'unknown message type',
    () => decodeMessage(Uint8Array.from([0, 99, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4])),
    /unknown ubus message type 99/,
  ],
  [
    'u32 attribute of 2 bytes',
    () =>
      decodeMessage(
        Uint8Array.from([0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 12, ...encodeAttr(ATTR.STATUS, new Uint8Array(2))]),
      ),
    /expected 4 bytes, got 2/,
  ],
]

function deep(n: number): Uint8Array {
  let inner = encodeField('x', 1)
  for (let i = 0; i < n; i++) {
    const hdr = new Uint8Array([0, 1, 0x6e, 0])
    inner = encodeAttr(BLOBMSG.TABLE, Buffer.concat([hdr, inner]), true)
  }
  return inner
}

t.test('malformed input is a BlobError naming the problem', async (t) => {
  for (const [name, f, re] of bad) t.throws(f, { name: 'Error', message: re }, name)
  for (const [name, f] of bad)
    try {
      f()
    } catch (e) {
      t.ok(e instanceof BlobError, `${name}: BlobError`)
    }
  t.doesNotThrow(() => decodeTable(deep(MAX_DEPTH - 2)), 'nesting within the limit is fine')
})

t.test('fuzz: mutated real messages give a message or a BlobError, never anything else (seed 9)', async (t) => {
  const rand = rng(9)
  let ok = 0
  let rejected = 0
  for (let i = 0; i < 20000; i++) {
    const seed = all[i % all.length]!.bytes
    let buf = Uint8Array.from(seed)
    const flips = 1 + Math.floor(rand() * 4)
    for (let f = 0; f < flips; f++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256)
    if (rand() < 0.2) buf = buf.subarray(0, Math.floor(rand() * buf.length))
    try {
      const msgs = new MessageReader().push(buf)
      for (const m of msgs) {
        for (const id of [ATTR.DATA, ATTR.SIGNATURE]) {
          const d = nested(m, id)
          if (d) decodeFields(d)
        }
        if (m.type === MSG.INVOKE) readInvocation(m)
      }
      ok++
    } catch (e) {
      if (!(e instanceof BlobError)) throw e
      rejected++
    }
  }
  t.ok(ok > 1000, `${ok} decoded`)
  t.ok(rejected > 1000, `${rejected} rejected`)
})
