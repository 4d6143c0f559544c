// The DNS core (src/core/dns): message codec with compression, the cache
// (TTLs counted down, RFC 2308 negative answers, bounds), static hosts, the
// address → name map, the local answer decision, and a fixed-seed fuzz of
// the decoder.

import t from 'tap'
import {
  CLASS_IN,
  DnsError,
  type DnsMessage,
  FLAG,
  RCODE,
  TYPE,
  decodeMessage,
  encodeMessage,
  encodeWithin,
  formErrBytes,
  messageId,
  nameToWire,
  queryMessage,
  rcodeOf,
  replyTo,
  udpLimit,
} from '../../src/core/dns/message.js'
import { DnsCache, cacheTtl } from '../../src/core/dns/cache.js'
import { AddressNames } from '../../src/core/dns/names.js'
import { StaticHosts, addressRecord } from '../../src/core/dns/hosts.js'
import { answerLocally, answersQuery, clientReply, servfail } from '../../src/core/dns/local.js'
import { compileRules } from '../../src/core/rules/index.js'
import { rng } from '../lib/rng.js'

const u16 = (v: number) => [v >> 8, v & 255]
const u32 = (v: number) => [...u16(Math.floor(v / 65536)), ...u16(v & 0xffff)]
const label = (s: string) => [s.length, ...Buffer.from(s, 'latin1')]

/** A reply to example.com/A written by hand with compression pointers: CNAME then A. */
function handReply(): Uint8Array {
  const bytes = [
    ...u16(0x1234),
    ...u16(0x8180),
    ...u16(1),
    ...u16(2),
    ...u16(0),
    ...u16(0),
    // question at offset 12: www.example.com A IN
    ...label('www'),
    ...label('example'),
    ...label('com'),
    0,
    ...u16(1),
    ...u16(1),
    // answer 1: name → pointer to 12, CNAME cdn.<pointer to example.com at 16>
    0xc0,
    12,
    ...u16(5),
    ...u16(1),
    ...u32(300),
    ...u16(6),
    ...label('cdn'),
    0xc0,
    16,
    // answer 2: cdn.example.com (pointer to the CNAME data) A 192.0.2.7
    0xc0,
    45,
    ...u16(1),
    ...u16(1),
    ...u32(60),
    ...u16(4),
    192,
    0,
    2,
    7,
  ]
  return Uint8Array.from(bytes)
}

t.test('decode: header, question, compressed CNAME and A', async (t) => {
  const m = decodeMessage(handReply())
  t.equal(m.id, 0x1234)
  t.equal(rcodeOf(m), RCODE.NOERROR)
  t.same(m.questions, [{ name: 'www.example.com', type: TYPE.A, class: CLASS_IN }])
  t.same(m.answers[0], {
    name: 'www.example.com',
    type: TYPE.CNAME,
    class: 1,
    ttl: 300,
    data: { kind: 'name', name: 'cdn.example.com' },
  })
  t.same(m.answers[1], {
    name: 'cdn.example.com',
    type: TYPE.A,
    class: 1,
    ttl: 60,
    data: { kind: 'address', address: '192.0.2.7' },
  })
})

t.test('encode → decode round trip of every data kind, OPT kept opaque', async (t) => {
  const m: DnsMessage = {
    id: 7,
    flags: FLAG.QR | FLAG.RD | FLAG.RA,
    questions: [{ name: 'a.example', type: TYPE.ANY, class: CLASS_IN }],
    answers: [
      addressRecord('a.example', TYPE.A, '198.51.100.1', 5),
      addressRecord('a.example', TYPE.AAAA, '2001:db8::1', 5),
      {
        name: 'a.example',
        type: TYPE.MX,
        class: 1,
        ttl: 9,
        data: { kind: 'mx', preference: 10, name: 'mx.a.example' },
      },
      { name: 'a.example', type: TYPE.TXT, class: 1, ttl: 9, data: { kind: 'raw', bytes: Uint8Array.of(2, 104, 105) } },
      { name: 'we\\046ird\\032x.example', type: TYPE.PTR, class: 1, ttl: 1, data: { kind: 'name', name: 'p.example' } },
    ],
    authority: [
      {
        name: 'example',
        type: TYPE.SOA,
        class: 1,
        ttl: 30,
        data: {
          kind: 'soa',
          soa: {
            mname: 'ns.example',
            rname: 'h.example',
            serial: 4294967295,
            refresh: 1,
            retry: 2,
            expire: 3,
            minimum: 4,
          },
        },
      },
    ],
    additional: [
      {
        name: '',
        type: TYPE.OPT,
        class: 1232,
        ttl: 0x8000,
        data: { kind: 'raw', bytes: Uint8Array.of(0, 10, 0, 2, 1, 2) },
      },
    ],
  }
  t.same(decodeMessage(encodeMessage(m)), m)
  t.equal(udpLimit(m), 1232)
  t.equal(udpLimit(queryMessage(1, 'x', TYPE.A)), 512)
})

t.test('names: escapes, limits, root', async (t) => {
  t.same([...nameToWire('')], [0])
  t.same([...nameToWire('a.')], [1, 97, 0])
  t.throws(() => nameToWire('a..b'), DnsError)
  t.throws(() => nameToWire('x'.repeat(64)), /label of 64 bytes/)
  t.throws(() => nameToWire(Array(130).fill('a').join('.')), /longer than 255/)
  t.throws(() => nameToWire('a b'), /must be escaped/)
  t.throws(() => nameToWire('a\\999'), /bad escape/)
})

t.test('decode errors name what is wrong', async (t) => {
  const good = handReply()
  t.throws(() => decodeMessage(good.subarray(0, 5)), /shorter than the 12-byte header/)
  t.throws(() => decodeMessage(good.subarray(0, good.length - 1)), /runs past the end/)
  t.throws(() => decodeMessage(Uint8Array.from([...good, 0])), /1 bytes after the last record/)
  // A pointer to itself: a loop.
  const loop = Uint8Array.from([...u16(1), ...u16(0), ...u16(1), 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])
  t.throws(() => decodeMessage(loop), /points forward or to itself/)
  // A forward pointer.
  const fwd = Uint8Array.from([...u16(1), ...u16(0), ...u16(1), 0, 0, 0, 0, 0, 0, 0xc0, 14, 0, 1, 0, 1])
  t.throws(() => decodeMessage(fwd), /points forward/)
  // Label type 0x40 (extended labels, RFC 6891 deprecated).
  const ext = Uint8Array.from([...u16(1), ...u16(0), ...u16(1), 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1])
  t.throws(() => decodeMessage(ext), /label type 0x40/)
  // A count that lies: 3 questions, one present.
  const lying = Uint8Array.from([...u16(1), ...u16(0), ...u16(3), 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
  t.throws(() => decodeMessage(lying), /question 2\/3: truncated name/)
  // An A record with 5 bytes.
  const badA = encodeMessage(replyTo(queryMessage(1, 'x', TYPE.A), 0))
  const withA = Uint8Array.from([
    ...badA.subarray(0, 6),
    ...u16(1),
    0,
    0,
    0,
    0,
    ...badA.subarray(12),
    0,
    ...u16(1),
    ...u16(1),
    ...u32(1),
    ...u16(5),
    1,
    2,
    3,
    4,
    5,
  ])
  t.throws(() => decodeMessage(withA), /A data of 5 bytes/)
  t.equal(messageId(Uint8Array.of(1)), -1)
  t.equal(messageId(good), 0x1234)
  t.same(decodeMessage(formErrBytes(0x4242)), {
    id: 0x4242,
    flags: FLAG.QR | FLAG.RA | RCODE.FORMERR,
    questions: [],
    answers: [],
    authority: [],
    additional: [],
  })
})

t.test('encodeWithin: too large for UDP → TC, question only', async (t) => {
  const q = queryMessage(9, 'big.example', TYPE.A)
  const reply = replyTo(q, 0)
  reply.answers = Array.from({ length: 40 }, (_, i) => addressRecord('big.example', TYPE.A, `10.0.0.${i}`, 60))
  const whole = encodeWithin(reply, 4096)
  t.same(decodeMessage(whole).answers.length, 40)
  const cut = decodeMessage(encodeWithin(reply, 512))
  t.ok(cut.flags & FLAG.TC, 'TC set')
  t.equal(cut.answers.length, 0)
  t.equal(cut.questions[0]?.name, 'big.example')
})

function aReply(name: string, ttls: number[], rcode = 0): DnsMessage {
  const r = replyTo(queryMessage(1, name, TYPE.A), rcode)
  r.answers = ttls.map((ttl, i) => addressRecord(name, TYPE.A, `192.0.2.${i + 1}`, ttl))
  return r
}

function negative(name: string, rcode: number, soaTtl: number, minimum: number): DnsMessage {
  const r = replyTo(queryMessage(1, name, TYPE.A), rcode)
  r.authority = [
    {
      name: 'example',
      type: TYPE.SOA,
      class: 1,
      ttl: soaTtl,
      data: { kind: 'soa', soa: { mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum } },
    },
  ]
  return r
}

t.test('cache: shortest TTL, counted down, expired, case-blind', async (t) => {
  const c = new DnsCache()
  t.ok(c.store(aReply('A.example', [300, 120]), 1000))
  const q = { name: 'a.EXAMPLE', type: TYPE.A, class: 1 }
  t.same(
    c.lookup(q, 1000)?.answers.map((r) => r.ttl),
    [300, 120],
  )
  t.same(
    c.lookup(q, 1000 + 45_500)?.answers.map((r) => r.ttl),
    [255, 75],
    'TTLs minus 45 whole seconds',
  )
  t.equal(c.lookup(q, 1000 + 120_000), undefined, 'gone after the shortest TTL')
  t.equal(c.size, 0)
  t.equal(c.lookup({ name: 'a.example', type: TYPE.AAAA, class: 1 }, 0), undefined, 'another type is another entry')
})

t.test('cache: negative answers by the SOA (RFC 2308), never SERVFAIL/TC/no SOA', async (t) => {
  t.equal(cacheTtl(negative('n.example', RCODE.NXDOMAIN, 900, 30)), 30, 'SOA minimum when smaller')
  t.equal(cacheTtl(negative('n.example', RCODE.NOERROR, 20, 600)), 20, 'NODATA: SOA TTL when smaller')
  t.equal(cacheTtl(replyTo(queryMessage(1, 'x', TYPE.A), RCODE.NXDOMAIN)), 0, 'no SOA: not cached')
  t.equal(cacheTtl(aReply('x', [50], RCODE.SERVFAIL)), 0)
  const tc = aReply('x', [50])
  tc.flags |= FLAG.TC
  t.equal(cacheTtl(tc), 0)
  t.equal(cacheTtl(aReply('x', [0])), 0)
  const c = new DnsCache()
  t.ok(c.store(negative('n.example', RCODE.NXDOMAIN, 900, 30), 0))
  const hit = c.lookup({ name: 'n.example', type: TYPE.A, class: 1 }, 10_000)
  t.equal(hit?.rcode, RCODE.NXDOMAIN)
  t.equal(hit?.authority[0]?.ttl, 890)
  t.equal(c.lookup({ name: 'n.example', type: TYPE.A, class: 1 }, 30_000), undefined)
})

t.test('cache: bounded, least recently used out; maxTtl caps', async (t) => {
  const c = new DnsCache({ maxEntries: 2, maxTtl: 10 })
  c.store(aReply('one', [100]), 0)
  c.store(aReply('two', [100]), 0)
  t.ok(c.lookup({ name: 'one', type: 1, class: 1 }, 0), 'one used: now the most recent')
  c.store(aReply('three', [100]), 0)
  t.equal(c.size, 2)
  t.equal(c.lookup({ name: 'two', type: 1, class: 1 }, 0), undefined, 'two went')
  t.equal(c.lookup({ name: 'one', type: 1, class: 1 }, 10_000), undefined, 'maxTtl 10 s')
})

t.test('address → name: learnt from answers, TTL, bounded, question name', async (t) => {
  const n = new AddressNames(2)
  const r = aReply('WWW.Example.com', [60, 30])
  r.answers.unshift({
    name: 'www.example.com',
    type: TYPE.CNAME,
    class: 1,
    ttl: 60,
    data: { kind: 'name', name: 'cdn.net' },
  })
  r.answers.push(addressRecord('cdn.net', TYPE.AAAA, '2001:db8:0::1', 60))
  t.equal(n.learn(r, 0), 3)
  t.equal(n.size, 2, 'bounded to 2')
  t.equal(n.lookup('192.0.2.1', 0), undefined, 'oldest went')
  t.equal(n.lookup('192.0.2.2', 29_999), 'www.example.com')
  t.equal(n.lookup('192.0.2.2', 30_000), undefined, 'expired with its record')
  t.equal(n.lookup('2001:db8::1', 1000), 'www.example.com', 'IPv6 by its canonical form')
  t.equal(n.learn(aReply('x', [60], RCODE.NXDOMAIN), 0), 0)
  t.equal(n.lookup('not an ip', 0), undefined)
})

t.test('address → name: onLearn hears each address taught, by its one spelling', async (t) => {
  const heard: string[] = []
  const n = new AddressNames(4, (key) => heard.push(key))
  n.add('2001:db8:0::1', 'a.example', 60, 0)
  n.add('192.0.2.1', 'b.example', 60, 0)
  n.add('192.0.2.9', 'c.example', 0, 0) // TTL 0: not learnt
  n.add('not an ip', 'd.example', 60, 0)
  t.same(heard, ['2001:db8::1', '192.0.2.1'])
})

t.test('static hosts: A and AAAA by family, others not static', async (t) => {
  const h = new StaticHosts({ 'Router.lan.': ['192.168.1.1', 'fd00::1'], 'v4.only': ['10.0.0.1'] })
  t.same(
    h.answer({ name: 'router.LAN', type: TYPE.A, class: 1 })?.map((r) => r.data),
    [{ kind: 'address', address: '192.168.1.1' }],
  )
  t.same(
    h.answer({ name: 'router.lan', type: TYPE.AAAA, class: 1 })?.map((r) => r.data),
    [{ kind: 'address', address: 'fd00::1' }],
  )
  t.same(h.answer({ name: 'v4.only', type: TYPE.AAAA, class: 1 }), [], 'NODATA for the missing family')
  t.equal(h.answer({ name: 'router.lan', type: TYPE.MX, class: 1 }), undefined)
  t.equal(h.answer({ name: 'other', type: TYPE.A, class: 1 }), undefined)
})

t.test('answerLocally: reject, static, cache, forward, invalid', async (t) => {
  const rules = compileRules([
    { domainSuffix: ['ads.example'], action: { type: 'reject' }, name: 'ads' },
    { domain: ['blocked.example'], listener: ['other'], action: { type: 'reject' } },
  ])
  const base = {
    rules,
    listener: 'dns',
    srcIp: '192.168.1.10',
    hosts: new StaticHosts({ 'nas.lan': ['192.168.1.5'] }),
    cache: new DnsCache(),
    rejectAddresses: [] as string[],
    nowMs: 0,
  }
  const q = (name: string, type: number = TYPE.A) => queryMessage(77, name, type)
  const rej = answerLocally(q('x.ads.example'), base)
  t.match(rej, { kind: 'reply', source: 'reject', rule: 'ads' })
  if (rej.kind === 'reply') t.equal(rcodeOf(rej.reply), RCODE.NXDOMAIN)
  const sinkhole = answerLocally(q('x.ads.example', TYPE.AAAA), { ...base, rejectAddresses: ['0.0.0.0', '::'] })
  if (sinkhole.kind === 'reply') {
    t.equal(rcodeOf(sinkhole.reply), RCODE.NOERROR)
    t.same(
      sinkhole.reply.answers.map((r) => r.data),
      [{ kind: 'address', address: '::' }],
    )
  } else t.fail('sinkhole answers')
  t.match(answerLocally(q('blocked.example'), base), { kind: 'forward', rule: 'default' }, 'listener condition')
  const st = answerLocally(q('NAS.lan'), base)
  t.match(st, { kind: 'reply', source: 'static' })
  if (st.kind === 'reply') t.equal(st.reply.id, 77)
  base.cache.store(aReply('cached.example', [100]), 0)
  t.match(answerLocally(q('cached.example'), { ...base, nowMs: 5000 }), { kind: 'reply', source: 'cache' })
  t.match(answerLocally(q('else.example'), base), { kind: 'forward' })
  const two = q('a')
  two.questions.push({ name: 'b', type: 1, class: 1 })
  const bad = answerLocally(two, base)
  if (bad.kind === 'reply') t.equal(rcodeOf(bad.reply), RCODE.FORMERR)
  else t.fail('FORMERR for two questions')
  const notify = q('a')
  notify.flags |= 4 << 11
  const ni = answerLocally(notify, base)
  if (ni.kind === 'reply') t.equal(rcodeOf(ni.reply), RCODE.NOTIMP)
  else t.fail('NOTIMP')
  const resp = q('a')
  resp.flags |= FLAG.QR
  t.same(answerLocally(resp, base), { kind: 'drop' })
})

t.test('clientReply, servfail, answersQuery', async (t) => {
  const q = queryMessage(5, 'Mixed.Case', TYPE.A)
  q.additional.push({ name: '', type: TYPE.OPT, class: 4096, ttl: 0, data: { kind: 'raw', bytes: new Uint8Array(0) } })
  const up = aReply('mixed.case', [10])
  up.id = 999
  t.ok(answersQuery({ ...q, id: 999 }, up))
  t.notOk(answersQuery(q, up), 'other id')
  up.flags |= FLAG.AA
  up.flags &= ~FLAG.RA
  const mine = clientReply(q, up)
  t.equal(mine.id, 5)
  t.equal(mine.flags & (FLAG.AA | FLAG.RA), FLAG.RA, 'AA cleared, RA set: a forwarder recurses')
  t.equal(mine.questions[0]?.name, 'Mixed.Case')
  t.equal(mine.additional.filter((r) => r.type === TYPE.OPT).length, 1)
  t.equal(rcodeOf(servfail(q)), RCODE.SERVFAIL)
})

t.test('fuzz: truncations, bit flips, random bytes, pointer games (fixed seed)', async (t) => {
  const next = rng(0xd45)
  const seeds = [
    handReply(),
    encodeMessage(negative('n.example', RCODE.NXDOMAIN, 9, 9)),
    formErrBytes(1),
    encodeMessage(aReply('many.example', [1, 2, 3, 4, 5])),
  ]
  let decoded = 0
  let rejected = 0
  const attempt = (buf: Uint8Array) => {
    try {
      const m = decodeMessage(buf)
      decoded++
      encodeMessage(m) // whatever decodes can be written back
    } catch (e) {
      if (!(e instanceof DnsError)) throw e
      rejected++
    }
  }
  for (const s of seeds) for (let n = 0; n <= s.length; n++) attempt(s.subarray(0, n))
  for (let i = 0; i < 20000; i++) {
    const s = seeds[Math.floor(next() * seeds.length)]!
    const b = Uint8Array.from(s)
    const flips = 1 + Math.floor(next() * 4)
    for (let f = 0; f < flips; f++) b[Math.floor(next() * b.length)]! ^= 1 << Math.floor(next() * 8)
    // Sometimes a pointer at a random place, sometimes lying counts.
    if (next() < 0.2) {
      const at = 12 + Math.floor(next() * (b.length - 13))
      b[at] = 0xc0 | Math.floor(next() * 4)
      b[at + 1] = Math.floor(next() * 256)
    }
    if (next() < 0.2) b[5 + 2 * Math.floor(next() * 4)] = Math.floor(next() * 256)
    attempt(b)
  }
  for (let i = 0; i < 5000; i++)
    attempt(Uint8Array.from({ length: Math.floor(next() * 200) }, () => Math.floor(next() * 256)))
  t.ok(rejected > 1000, `${rejected} rejected with a DnsError`)
  t.ok(decoded > 0, `${decoded} decoded and re-encoded`)
})
