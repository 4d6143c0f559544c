import t from 'tap'
import { CidrTree, allowList } from '../../src/core/rules/cidr-tree.js'
import { AddressCache, formatCidr, formatIp, parseCidr, parseIpInto } from '../../src/core/ip.js'

const words = (s: string, query = false): [number, number[]] => {
  const out = new Int32Array(4)
  const f = parseIpInto(s, out, query)
  return [f, f === 4 ? [out[0]! >>> 0] : f === 6 ? [...out].map((w) => w >>> 0) : []]
}

t.test('parseIpInto', async (t) => {
  t.same(words('1.2.3.4'), [4, [0x01020304]])
  t.same(words('255.255.255.255'), [4, [0xffffffff]])
  t.same(words('::'), [6, [0, 0, 0, 0]])
  t.same(words('::1'), [6, [0, 0, 0, 1]])
  t.same(words('1::'), [6, [0x00010000, 0, 0, 0]])
  t.same(words('2001:DB8::8:800:200C:417A'), [6, [0x20010db8, 0, 0x00080800, 0x200c417a]])
  t.same(words('1:2:3:4:5:6:7::'), [6, [0x00010002, 0x00030004, 0x00050006, 0x00070000]])
  t.same(words('::ffff:1.2.3.4'), [6, [0, 0, 0xffff, 0x01020304]], 'mapped stays IPv6 for configs')
  t.same(words('::ffff:1.2.3.4', true), [4, [0x01020304]], 'mapped becomes IPv4 for queries')
  t.same(words('fe80::1%br-lan', true), [6, [0xfe800000, 0, 0, 1]], 'zone id ignored for queries')
  for (const bad of [
    '',
    '1.2.3',
    '1.2.3.4.',
    '01.2.3.4',
    '1.2.3.256',
    '1.2.3.-1',
    ' 1.2.3.4',
    ':',
    ':::',
    '1:2',
    '1::2::3',
    '12345::',
    ':1::',
    '1:2:3:4:5:6:7:8:9',
    '::1.2.3',
    '::ffff:1.2.3.04',
    'fe80::1%eth0',
    'g::',
    '1:2:3:4:5:6:7:8::',
    '1.2.3.4::',
  ]) {
    t.equal(parseIpInto(bad, new Int32Array(4)), 0, JSON.stringify(bad))
  }
})

t.test('formatIp is RFC 5952', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run is shortened
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of equal runs
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['FE80:0:0:0:0:0:0:0', 'fe80::'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
  ]
  for (const [input, want] of cases) {
    const out = new Int32Array(4)
    t.equal(parseIpInto(input, out), 6)
    t.equal(formatIp(6, out), want, input)
  }
  t.equal(formatIp(4, Int32Array.of(-1)), '255.255.255.255')
})

t.test('parseCidr / formatCidr', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['10.1.2.3/8', '10.0.0.0/8'], // host bits cleared
    ['10.1.2.3', '10.1.2.3'],
    ['10.1.2.3/32', '10.1.2.3'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['1.2.3.4/0', '0.0.0.0/0'],
    ['::/0', '::/0'],
    ['2001:db8::1/32', '2001:db8::/32'],
    ['2001:db8::1/128', '2001:db8::1'],
    ['::ffff:192.168.1.0/120', '192.168.1.0/24'], // unmapped for routing
    ['::ffff:0:0/96', '0.0.0.0/0'],
    ['::ffff:0:0/95', '::fffe:0:0/95'], // wider than the mapped range: stays IPv6 (host bit 95 cleared)
    ['10.0.0.0/33', null],
    ['10.0.0.0/', null],
    ['10.0.0.0/8/8', null],
    ['10.0.0.0/08', null],
    ['::/129', null],
    ['x/8', null],
  ]
  for (const [input, want] of cases) {
    const c = parseCidr(input)
    t.equal(c === null ? null : formatCidr(c), want, input)
  }
  const kept = parseCidr('::ffff:0:0/96', false)
  t.equal(kept && formatCidr(kept), '::ffff:0:0/96', 'unmap=false keeps IPv6 (for nft)')
})

t.test('CidrTree agrees with a linear scan', async (t) => {
  let seed = 99
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296
  for (const family of [4, 6] as const) {
    const tree = new CidrTree(family)
    const prefixes: string[] = []
    for (let i = 0; i < 400; i++) {
      const len = family === 4 ? Math.floor(rand() * 33) : Math.floor(rand() * 129)
      // few distinct top bits, so prefixes nest and share paths
      const addr =
        family === 4
          ? `${[10, 11][Math.floor(rand() * 2)]}.${Math.floor(rand() * 4)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`
          : `2001:db8:${Math.floor(rand() * 4).toString(16)}::${Math.floor(rand() * 65536).toString(16)}`
      prefixes.push(`${addr}/${len}`)
    }
    prefixes.forEach((p, i) => tree.insert(parseCidr(p)!, i))
    tree.finish()
    let mismatches = 0
    for (let k = 0; k < 2000; k++) {
      const q =
        family === 4
          ? `${[10, 11, 12][Math.floor(rand() * 3)]}.${Math.floor(rand() * 4)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`
          : `2001:db8:${Math.floor(rand() * 5).toString(16)}::${Math.floor(rand() * 65536).toString(16)}`
      const addr = new Int32Array(4)
      parseIpInto(q, addr)
      const got: number[] = []
      tree.lookup(addr, { take: (list) => got.push(...list) })
      const want = prefixes
        .map((p, i) => [parseCidr(p)!, i] as const)
        .filter(([c]) => {
          for (let w = 0, rest = c.len; rest > 0; w++, rest -= 32) {
            const mask = rest >= 32 ? -1 : ~(-1 >>> rest)
            if (((c.words[w]! ^ addr[w]!) & mask) !== 0) return false
          }
          return true
        })
        .map(([, i]) => i)
      if (
        got
          .slice()
          .sort((a, b) => a - b)
          .join() !== want.join()
      )
        mismatches++
    }
    t.equal(mismatches, 0, `IPv${family}: 2000 lookups in 400 nested prefixes`)
  }
})

t.test('AddressCache returns what parseIpInto returns', async (t) => {
  const cache = new AddressCache(3)
  const a = new Int32Array(4)
  const b = new Int32Array(4)
  for (const s of [
    '1.2.3.4',
    '2001:db8::1',
    '::ffff:9.8.7.6',
    'junk',
    '1.2.3.4',
    '2001:db8::1',
    '::ffff:9.8.7.6',
    '5.5.5.5',
    '6.6.6.6',
    '1.2.3.4',
  ]) {
    const f1 = cache.parse(s, a)
    const f2 = parseIpInto(s, b, true)
    t.equal(f1, f2, `${s} family`)
    if (f1 === 4) t.equal(a[0], b[0], `${s} word`)
    if (f1 === 6) t.same([...a], [...b], `${s} words`)
  }
})

t.test("allowList: a listener's allow list as a test of peer addresses", async (t) => {
  const lan = allowList(['192.168.1.0/24', 'fd00::/8'])
  t.ok(lan('192.168.1.7'))
  t.notOk(lan('192.168.2.7'))
  t.ok(lan('::ffff:192.168.1.7'), 'an IPv4-mapped peer of a dual-stack socket counts as IPv4')
  t.ok(lan('fd12::1'))
  t.notOk(lan('fe80::1'))
  t.notOk(lan('not-an-ip'), 'unparsable: refused')
  t.notOk(lan(''), 'empty: refused')
  const any = allowList(['0.0.0.0/0', '::/0'])
  t.ok(any('203.0.113.9') && any('2001:db8::1'))
  t.notOk(allowList([])('127.0.0.1'), 'an empty list allows no one')
})
