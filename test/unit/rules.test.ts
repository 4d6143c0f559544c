import t from 'tap'
import { ConfigError } from '../../src/core/errors.js'
import { compileRules, route, type RouteQuery, type RuleAction, type RuleSpec } from '../../src/core/rules/index.js'

const REJECT: RuleAction = { type: 'reject' }
const up = (name: string): RuleAction => ({ type: 'upstream', name })

/** A query with defaults for the fields a case does not care about. */
function q(over: Partial<RouteQuery>): RouteQuery {
  return { dstPort: 443, srcIp: '192.168.1.50', listener: 'redir', ...over }
}

/** Index of the rule that wins for each query. */
function winners(rules: RuleSpec[], queries: Array<Partial<RouteQuery>>): number[] {
  const c = compileRules(rules)
  return queries.map((x) => route(c, q(x)).ruleIndex)
}

t.test('domainSuffix: label boundary, case, trailing dot', async (t) => {
  const c = compileRules([{ domainSuffix: ['example.com', 'Co.UK.'], action: REJECT }])
  const good = [
    'example.com',
    'a.example.com',
    'a.b.example.com',
    'EXAMPLE.COM',
    'www.Example.Com.',
    'example.com.',
    'x.co.uk',
    'co.uk',
  ]
  const bad = [
    'badexample.com',
    'example.com.evil',
    'example.co',
    'com',
    'xexample.com',
    'example-com',
    'uk',
    'aco.uk',
    '',
    '.',
  ]
  for (const host of good) t.equal(route(c, q({ host })).ruleIndex, 0, `matches ${JSON.stringify(host)}`)
  for (const host of bad) t.equal(route(c, q({ host })).ruleIndex, -1, `no match ${JSON.stringify(host)}`)
  t.equal(route(c, q({})).ruleIndex, -1, 'no host: a domain rule does not match')
  t.equal(route(c, q({ dstIp: '93.184.216.34' })).ruleIndex, -1, 'address only: no match')
})

t.test('domain: exact only', async (t) => {
  const c = compileRules([{ domain: ['example.com', 'Mixed.Case.ORG.'], action: REJECT }])
  for (const host of ['example.com', 'EXAMPLE.com.', 'mixed.case.org', 'MIXED.case.org'])
    t.equal(route(c, q({ host })).ruleIndex, 0, host)
  for (const host of ['a.example.com', 'badexample.com', 'example.com.x', 'case.org', 'x.mixed.case.org']) {
    t.equal(route(c, q({ host })).ruleIndex, -1, host)
  }
})

// More than 12 distinct keywords switch from includes() to the automaton:
// the keyword tests run with both.
const FILLER: RuleSpec[] = [{ domainKeyword: Array.from({ length: 20 }, (_, i) => `qqz${i}`), action: REJECT }]

for (const [mode, filler] of [
  ['includes', []],
  ['automaton', FILLER],
] as const) {
  t.test(`domainKeyword: substring anywhere (${mode})`, async (t) => {
    const c = compileRules([
      { domainKeyword: ['ads'], action: REJECT },
      { domainKeyword: ['tracker', 'ker.i'], action: REJECT },
      { domainKeyword: ['abcab'], action: REJECT },
      ...filler,
    ])
    const cases: Array<[string, number]> = [
      ['ads.example.com', 0],
      ['myad-server.net', -1],
      ['myadserver.net', 0],
      ['x.ADS', 0],
      ['tracker.io', 1],
      ['bunker.io', 1], // 'ker.i'
      ['trackeR', 1],
      ['xxabcabx', 2],
      ['abcaabcab', 2], // needs the automaton's failure links
      ['abcaabca', -1],
      ['münchen-ads.de', 0], // non-ASCII characters reset the automaton
    ]
    for (const [host, want] of cases) t.equal(route(c, q({ host })).ruleIndex, want, host)
    // overlapping keywords: every keyword a host contains is found, not only the first
    const overlap = compileRules([
      { domainKeyword: ['bcd'], action: REJECT },
      { domainKeyword: ['abc'], action: REJECT },
      { domainKeyword: ['cdef-x'], dstPort: [1], action: REJECT },
      { domainKeyword: ['c'], action: REJECT },
      ...filler,
    ])
    const o = (host: string, dstPort = 443) => route(overlap, q({ host, dstPort })).ruleIndex
    t.equal(o('abcd'), 0, 'abc matches first, but bcd (rule 0) is found too')
    t.equal(o('xabcx'), 1)
    t.equal(o('zzcdef-x', 1), 2)
    t.equal(o('zzcdef-x'), 3, 'port fails for rule 2, the shorter keyword c wins')
    t.equal(o('zzz'), -1)
    t.equal(o('xqqz19x'), filler.length > 0 ? 4 : -1)
    // through a state with many edges (qqz → 0-19): no edge for 'q' → failure link → root
    t.equal(o('qqzqqz7'), filler.length > 0 ? 4 : -1)
    t.equal(o('qqzqq'), filler.length > 0 ? -1 : -1)
  })
}

t.test('dstCidr: IPv4 edges', async (t) => {
  const rules: RuleSpec[] = [
    { dstCidr: ['10.0.0.0/8'], action: REJECT },
    { dstCidr: ['192.168.1.1'], action: REJECT }, // plain address = /32
    { dstCidr: ['172.16.5.4/32'], action: REJECT },
    { dstCidr: ['100.64.0.0/10'], action: REJECT },
    { dstCidr: ['0.0.0.0/0'], action: up('catch4') },
  ]
  const cases: Array<[string, number]> = [
    ['10.0.0.0', 0],
    ['10.255.255.255', 0],
    ['192.168.1.1', 1],
    ['192.168.1.2', 4],
    ['172.16.5.4', 2],
    ['172.16.5.5', 4],
    ['100.64.0.0', 3],
    ['100.127.255.255', 3],
    ['100.128.0.0', 4],
    ['100.63.255.255', 4],
    ['255.255.255.255', 4],
    ['0.0.0.0', 4],
    ['::ffff:10.1.2.3', 0], // IPv4-mapped: routed as IPv4
    ['::FFFF:192.168.1.1', 1],
    ['2001:db8::1', -1], // /0 of IPv4 does not cover IPv6
    ['not-an-ip', -1],
    ['10.0.0.256', -1],
    ['010.0.0.1', -1],
  ]
  const c = compileRules(rules)
  for (const [dstIp, want] of cases) t.equal(route(c, q({ dstIp })).ruleIndex, want, dstIp)
  t.equal(route(c, q({})).ruleIndex, -1, 'no dstIp: a CIDR rule does not match')
})

t.test('dstCidr: IPv6 edges', async (t) => {
  const rules: RuleSpec[] = [
    { dstCidr: ['2001:db8::/32'], action: REJECT },
    { dstCidr: ['2001:db8:1::/48'], action: up('never-first') }, // inside rule 0: rule 0 wins
    { dstCidr: ['fe80::1/128'], action: REJECT },
    { dstCidr: ['::1'], action: REJECT },
    { dstCidr: ['2a00:1450:4001:80b::200e/127'], action: REJECT },
    { dstCidr: ['::ffff:198.51.100.0/120'], action: REJECT }, // mapped prefix = IPv4 198.51.100.0/24
    { dstCidr: ['::/0'], action: up('catch6') },
  ]
  const cases: Array<[string, number]> = [
    ['2001:db8::1', 0],
    ['2001:db8:1::1', 0],
    ['2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff', 0],
    ['2001:db9::', 6],
    ['fe80::1', 2],
    ['fe80::1%br-lan', 2], // zone id ignored
    ['fe80::2', 6],
    ['::1', 3],
    ['::', 6],
    ['2a00:1450:4001:80b::200e', 4],
    ['2a00:1450:4001:80b::200f', 4],
    ['2a00:1450:4001:80b::2010', 6],
    ['198.51.100.77', 5],
    ['::ffff:198.51.100.77', 5],
    ['198.51.101.1', -1],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 6],
    ['1:2:3:4:5:6:7:8:9', -1],
  ]
  const c = compileRules(rules)
  for (const [dstIp, want] of cases) t.equal(route(c, q({ dstIp })).ruleIndex, want, dstIp)
})

t.test('srcCidr and listener and proto', async (t) => {
  const rules: RuleSpec[] = [
    { srcCidr: ['192.168.1.128/25'], action: REJECT },
    { listener: ['socks'], proto: ['tls', 'h2'], action: up('a') },
    { proto: ['http'], action: up('b') },
    { listener: ['http-proxy'], action: up('c') },
  ]
  const cases: Array<[Partial<RouteQuery>, number]> = [
    [{ srcIp: '192.168.1.200' }, 0],
    [{ srcIp: '192.168.1.100' }, -1],
    [{ srcIp: '::ffff:192.168.1.129' }, 0],
    [{ listener: 'socks', proto: 'tls' }, 1],
    [{ listener: 'socks', proto: 'h2' }, 1],
    [{ listener: 'socks', proto: 'unknown' }, -1],
    [{ listener: 'socks' }, -1], // proto not known yet: a proto condition does not hold
    [{ listener: 'socks', proto: 'http' }, 2],
    [{ listener: 'http-proxy', proto: 'http' }, 2],
    [{ listener: 'http-proxy' }, 3],
  ]
  const c = compileRules(rules)
  for (const [x, want] of cases) t.equal(route(c, q(x)).ruleIndex, want, JSON.stringify(x))
})

t.test('network: udp, tcp; a query without network is TCP', async (t) => {
  const rules: RuleSpec[] = [
    { network: ['udp'], dstPort: [443], action: REJECT },
    { network: ['tcp'], action: up('t') },
    { network: ['udp', 'tcp'], listener: ['redir'], action: up('both') },
  ]
  const cases: Array<[Partial<RouteQuery>, number]> = [
    [{ network: 'udp' }, 0], // QUIC forced back to TCP
    [{ network: 'udp', dstPort: 53 }, 2],
    [{ network: 'udp', dstPort: 53, listener: 'other' }, -1],
    [{ network: 'tcp' }, 1],
    [{}, 1],
  ]
  const c = compileRules(rules)
  for (const [x, want] of cases) t.equal(route(c, q(x)).ruleIndex, want, JSON.stringify(x))
  t.throws(() => compileRules([{ network: ['quic'] as unknown as Array<'udp'>, action: REJECT }]), {
    message: 'rules[0].network[0]: "quic" is not a network (tcp, udp)',
  })
  t.throws(() => compileRules([{ network: [] as Array<'udp'>, action: REJECT }]), {
    message: 'rules[0].network: must not be empty (leave the field out to match anything)',
  })
})

// Node ids: 52 base32 characters, the last A or Q (one bit of a SHA-256 left).
const NODE_A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.repeat(2).slice(0, 51) + 'A'
const NODE_B = '7'.repeat(51) + 'Q'

t.test('srcIdentity, srcTrustDomain, srcNode: the mesh peer; others never match', async (t) => {
  const alice = 'spiffe://td.test/ns/home/sa/alice'
  const bob = 'spiffe://td.test/ns/home/sa/bob'
  const rules: RuleSpec[] = [
    { srcIdentity: [alice], dstPort: [22], action: up('ssh') },
    { srcIdentity: [bob], action: REJECT },
    { srcNode: [NODE_B.toLowerCase()], action: up('node-b') }, // any case; kept upper case
    { srcTrustDomain: ['other.test', 'td.test'], domainSuffix: ['home.arpa'], action: up('home') },
    { srcTrustDomain: ['other.test'], action: up('other') },
  ]
  const cases: Array<[Partial<RouteQuery>, number]> = [
    [{ srcIdentity: alice, dstPort: 22 }, 0],
    [{ srcIdentity: alice, srcNode: NODE_A, dstPort: 443 }, -1],
    [{ srcIdentity: bob }, 1],
    [{ srcIdentity: alice, srcNode: NODE_B }, 2],
    [{ srcNode: NODE_B }, 2],
    [{ srcIdentity: alice, host: 'nas.home.arpa' }, 3],
    [{ srcIdentity: 'spiffe://other.test/ns/x/sa/y', host: 'nas.home.arpa' }, 3],
    [{ srcIdentity: 'spiffe://other.test/ns/x/sa/y' }, 4],
    [{ srcIdentity: 'spiffe://other.testing/ns/x/sa/y' }, -1], // the domain, not a prefix of it
    // not from the mesh: no identity, so no identity rule holds
    [{ dstPort: 22 }, -1],
    [{ host: 'nas.home.arpa' }, -1],
    [{ srcIdentity: '', srcNode: '', host: 'nas.home.arpa' }, -1],
  ]
  const c = compileRules(rules)
  for (const [x, want] of cases) t.equal(route(c, q(x)).ruleIndex, want, JSON.stringify(x))
  const bad: Array<[RuleSpec, string]> = [
    [
      { srcIdentity: ['td.test/ns/a/sa/b'], action: REJECT },
      'rules[0].srcIdentity[0]: "td.test/ns/a/sa/b" is not a SPIFFE id: does not start with "spiffe://"',
    ],
    [
      { srcIdentity: [alice, 'spiffe://td.test/a'], action: REJECT },
      'rules[0].srcIdentity[1]: "spiffe://td.test/a" is not a SPIFFE id: has no /ns/NAMESPACE/sa/SERVICE-ACCOUNT path',
    ],
    [
      { srcTrustDomain: ['TD.test'], action: REJECT },
      'rules[0].srcTrustDomain[0]: "TD.test" is not a trust domain: it may only hold a-z, 0-9, ".", "-" and "_"',
    ],
    [{ srcTrustDomain: [''], action: REJECT }, 'rules[0].srcTrustDomain[0]: "" is not a trust domain: it is empty'],
    [{ srcNode: ['ABC'], action: REJECT }, 'rules[0].srcNode[0]: "ABC" is not a node id (52 base32 characters, not 3)'],
    [
      { srcNode: [NODE_A.slice(0, 51) + 'B'], action: REJECT },
      `rules[0].srcNode[0]: "${NODE_A.slice(0, 51)}B" is not a node id (base32: A-Z and 2-7, the last one A or Q)`,
    ],
    [
      { srcNode: ['1' + NODE_A.slice(1)], action: REJECT },
      `rules[0].srcNode[0]: "1${NODE_A.slice(1)}" is not a node id (base32: A-Z and 2-7, the last one A or Q)`,
    ],
    [{ srcNode: [7], action: REJECT } as unknown as RuleSpec, 'rules[0].srcNode[0]: 7 is not a string'],
    [
      { srcIdentity: [], action: REJECT },
      'rules[0].srcIdentity: must not be empty (leave the field out to match anything)',
    ],
  ]
  for (const [spec, message] of bad) t.throws(() => compileRules([spec]), { message }, message)
})

t.test('dstPort: numbers, ranges and strings', async (t) => {
  const rules: RuleSpec[] = [
    { dstPort: [22, '2222'], action: REJECT },
    { dstPort: [[8000, 8080], '9000-9001'], action: up('web') },
    { dstPort: ['1-1023'], action: up('low') },
    { dstPort: [65535], action: up('top') },
  ]
  const cases: Array<[number, number]> = [
    [22, 0],
    [2222, 0],
    [7999, -1],
    [8000, 1],
    [8042, 1],
    [8080, 1],
    [8081, -1],
    [9001, 1],
    [9002, -1],
    [1, 2],
    [443, 2],
    [1023, 2],
    [1024, -1],
    [65535, 3],
  ]
  const c = compileRules(rules)
  for (const [dstPort, want] of cases) t.equal(route(c, q({ dstPort })).ruleIndex, want, String(dstPort))
})

t.test('all conditions of a rule must hold', async (t) => {
  const rules: RuleSpec[] = [
    { domainSuffix: ['example.com'], dstPort: [443], srcCidr: ['10.0.0.0/8'], action: REJECT },
    { domain: ['a.example.org'], domainSuffix: ['example.org'], action: up('both') },
    { dstCidr: ['203.0.113.0/24'], domainKeyword: ['cdn'], action: up('cdn') },
    { listener: ['lan'], dstPort: ['80'], dstCidr: ['198.51.100.0/24', '2001:db8::/32'], action: up('web') },
  ]
  const cases: Array<[Partial<RouteQuery>, number]> = [
    [{ host: 'www.example.com', srcIp: '10.1.1.1' }, 0],
    [{ host: 'www.example.com', srcIp: '10.1.1.1', dstPort: 80 }, -1],
    [{ host: 'www.example.com', srcIp: '11.1.1.1' }, -1],
    [{ host: 'www.example.com', srcIp: 'garbage' }, -1],
    [{ host: 'a.example.org' }, 1],
    [{ host: 'b.example.org' }, -1],
    [{ host: 'cdn.x.net', dstIp: '203.0.113.9' }, 2],
    [{ host: 'cdn.x.net' }, -1],
    [{ dstIp: '203.0.113.9' }, -1],
    [{ listener: 'lan', dstPort: 80, dstIp: '198.51.100.1' }, 3],
    [{ listener: 'lan', dstPort: 80, dstIp: '2001:db8::5' }, 3],
    [{ listener: 'wan', dstPort: 80, dstIp: '198.51.100.1' }, -1],
  ]
  const c = compileRules(rules)
  for (const [x, want] of cases) t.equal(route(c, q(x)).ruleIndex, want, JSON.stringify(x))
})

t.test('first match wins across index types', async (t) => {
  // Each query matches several rules found through different indexes; the
  // smallest index must win whichever index finds it.
  const rules: RuleSpec[] = [
    /* 0 */ { dstPort: [25], action: REJECT },
    /* 1 */ { domainKeyword: ['video'], action: up('kw') },
    /* 2 */ { domainSuffix: ['example.com'], action: up('suffix') },
    /* 3 */ { domain: ['video.example.com'], action: up('exact') },
    /* 4 */ { dstCidr: ['93.184.0.0/16'], action: up('cidr') },
    /* 5 */ { srcCidr: ['192.168.1.0/24'], dstPort: [8443], action: up('src') },
    /* 6 */ { listener: ['redir'], dstPort: [8443], action: up('listener') },
    /* 7 */ { proto: ['tls'], action: up('proto') },
    /* 8 */ { action: up('catch-all') },
    /* 9 */ { domain: ['late.example.net'], action: up('unreachable') },
  ]
  const cases: Array<[Partial<RouteQuery>, number]> = [
    [{ host: 'video.example.com', dstIp: '93.184.216.34', dstPort: 25 }, 0],
    [{ host: 'video.example.com', dstIp: '93.184.216.34' }, 1],
    [{ host: 'www.example.com', dstIp: '93.184.216.34' }, 2],
    [{ host: 'other.net', dstIp: '93.184.216.34', proto: 'tls' }, 4],
    [{ host: 'other.net', dstPort: 8443, proto: 'tls' }, 5],
    [{ host: 'other.net', dstPort: 8443, srcIp: '10.0.0.1', proto: 'tls' }, 6],
    [{ host: 'other.net', srcIp: '10.0.0.1', proto: 'tls' }, 7],
    [{ host: 'late.example.net' }, 8],
    [{}, 8],
  ]
  const c = compileRules(rules)
  for (const [x, want] of cases) t.equal(route(c, q(x)).ruleIndex, want, JSON.stringify(x))
  // Reversed order: the later rules now come first.
  const reversed = compileRules(rules.slice().reverse())
  const r = (x: Partial<RouteQuery>) => route(reversed, q(x)).ruleIndex
  t.equal(r({ host: 'late.example.net' }), 0)
  t.equal(r({ host: 'video.example.com', dstIp: '93.184.216.34', dstPort: 25 }), 1, 'catch-all is now rule 1')
})

t.test('results: action, name, default', async (t) => {
  const c = compileRules(
    [
      { name: 'vpn-sites', domainSuffix: ['example.com'], action: up('vpn') },
      { dstPort: [22], action: { type: 'forward', host: '10.0.0.2', port: 2222 } },
    ],
    { type: 'reject' },
  )
  t.same(route(c, q({ host: 'example.com' })), {
    action: { type: 'upstream', name: 'vpn' },
    ruleIndex: 0,
    ruleName: 'vpn-sites',
  })
  t.same(route(c, q({ dstPort: 22 })), { action: { type: 'forward', host: '10.0.0.2', port: 2222 }, ruleIndex: 1 })
  t.same(route(c, q({ dstPort: 80 })), { action: { type: 'reject' }, ruleIndex: -1 })
  t.equal(
    route(c, q({ host: 'example.com' })),
    route(c, q({ host: 'a.example.com' })),
    'results are shared, not allocated',
  )
  t.same([...c.upstreams], ['vpn'])
  t.same(route(compileRules([]), q({})), { action: { type: 'direct' }, ruleIndex: -1 }, 'default: direct')
})

t.test('odd queries never throw', async (t) => {
  const c = compileRules([
    { domainSuffix: ['a.b'], action: REJECT },
    { dstCidr: ['0.0.0.0/0', '::/0'], srcCidr: ['0.0.0.0/0'], action: REJECT },
  ])
  const odd: Array<Partial<RouteQuery>> = [
    { host: '' },
    { host: '.' },
    { host: '..a.b' },
    { host: 'a..b' },
    { host: 'x'.repeat(5000) },
    { dstIp: '' },
    { dstIp: ':::' },
    { dstIp: '1.2.3.4.5' },
    { dstIp: '1:2:3:4:5:6:7:8:9:0:1:2:3:4:5:6:7:8:9' },
    { srcIp: '' },
    { dstPort: -1 },
    { dstPort: 1e9 },
  ]
  for (const x of odd) t.doesNotThrow(() => route(c, q(x)), JSON.stringify(x).slice(0, 60))
  t.equal(route(c, q({ dstIp: '8.8.8.8', srcIp: '1.1.1.1' })).ruleIndex, 1)
  t.equal(route(c, q({ dstIp: '8.8.8.8', srcIp: 'x' })).ruleIndex, -1)
})

t.test('large per-rule lists use their own indexes', async (t) => {
  const suffixes = Array.from({ length: 50 }, (_, i) => `s${i}.test`)
  const nets = Array.from({ length: 40 }, (_, i) => `10.${i}.0.0/16`)
  const nets6 = Array.from({ length: 40 }, (_, i) => `2001:db8:${i.toString(16)}::/48`)
  const names = Array.from({ length: 30 }, (_, i) => `n${i}.test`)
  const c = compileRules([
    // primary = domain (exact); the suffix list is verified by the rule's own trie
    {
      domain: names.map((n) => `x.s3.${n}`).concat(['a.s7.test', 'a.s49.test']),
      domainSuffix: suffixes,
      action: REJECT,
    },
    // primary = dstCidr; the srcCidr list is verified by the rule's own trees
    { dstCidr: ['198.51.100.0/24'], srcCidr: [...nets, ...nets6], action: REJECT },
  ])
  t.equal(route(c, q({ host: 'a.s7.test' })).ruleIndex, 0)
  t.equal(route(c, q({ host: 'a.s49.test' })).ruleIndex, 0)
  t.equal(route(c, q({ host: 'a.s50.test' })).ruleIndex, -1)
  t.equal(route(c, q({ dstIp: '198.51.100.1', srcIp: '10.39.1.1' })).ruleIndex, 1)
  t.equal(route(c, q({ dstIp: '198.51.100.1', srcIp: '10.40.1.1' })).ruleIndex, -1)
  t.equal(route(c, q({ dstIp: '198.51.100.1', srcIp: '2001:db8:27:ffff::1' })).ruleIndex, 1)
  t.equal(route(c, q({ dstIp: '198.51.100.1', srcIp: '2001:db8:28::1' })).ruleIndex, -1)
})

t.test('compile errors name the rule, field and value', async (t) => {
  const bad: Array<[unknown, string]> = [
    [
      { domain: ['exa mple.com'], action: REJECT },
      'rules[0].domain[0]: "exa mple.com" is not a domain name (labels of a-z 0-9 _ -, 1-63 characters each)',
    ],
    [
      { domainSuffix: ['.example.com'], action: REJECT },
      'rules[0].domainSuffix[0]: ".example.com" is not a domain suffix (write "example.com": a suffix already matches the names below it)',
    ],
    [
      { domainSuffix: ['*.example.com'], action: REJECT },
      'rules[0].domainSuffix[0]: "*.example.com" is not a domain suffix (write "example.com": a suffix already matches the names below it)',
    ],
    [
      { domain: ['bücher.de'], action: REJECT },
      'rules[0].domain[0]: "bücher.de" is not a domain name (write non-ASCII names in punycode, "xn--...")',
    ],
    [{ domain: [''], action: REJECT }, 'rules[0].domain[0]: "" is not a domain name (1-253 characters)'],
    [{ domain: [5], action: REJECT }, 'rules[0].domain[0]: 5 is not a string'],
    [{ domain: 'example.com', action: REJECT }, 'rules[0].domain: must be an array, not "example.com"'],
    [{ domain: [], action: REJECT }, 'rules[0].domain: must not be empty (leave the field out to match anything)'],
    [
      { domainKeyword: ['a b'], action: REJECT },
      'rules[0].domainKeyword[0]: "a b" is not a domain keyword (1-253 of a-z 0-9 . _ -)',
    ],
    [
      { dstCidr: ['10.0.0.0/8', '10.0.0.300/8'], action: REJECT },
      'rules[0].dstCidr[1]: "10.0.0.300/8" is not an IPv4 or IPv6 address or CIDR',
    ],
    [
      { dstCidr: ['10.0.0.0/33'], action: REJECT },
      'rules[0].dstCidr[0]: "10.0.0.0/33" is not an IPv4 or IPv6 address or CIDR',
    ],
    [{ dstCidr: ['::/129'], action: REJECT }, 'rules[0].dstCidr[0]: "::/129" is not an IPv4 or IPv6 address or CIDR'],
    [
      { srcCidr: ['fe80::1%eth0'], action: REJECT },
      'rules[0].srcCidr[0]: "fe80::1%eth0" is not an IPv4 or IPv6 address or CIDR',
    ],
    [
      { srcCidr: ['10.0.0.0/08'], action: REJECT },
      'rules[0].srcCidr[0]: "10.0.0.0/08" is not an IPv4 or IPv6 address or CIDR',
    ],
    [
      { dstPort: [0], action: REJECT },
      'rules[0].dstPort[0]: 0 is not a port (1-65535) or a range ("8000-8080" or [8000, 8080])',
    ],
    [
      { dstPort: ['90-80'], action: REJECT },
      'rules[0].dstPort[0]: "90-80" is not a port (1-65535) or a range ("8000-8080" or [8000, 8080])',
    ],
    [
      { dstPort: [[1, 70000]], action: REJECT },
      'rules[0].dstPort[0]: [1,70000] is not a port (1-65535) or a range ("8000-8080" or [8000, 8080])',
    ],
    [
      { dstPort: [80.5], action: REJECT },
      'rules[0].dstPort[0]: 80.5 is not a port (1-65535) or a range ("8000-8080" or [8000, 8080])',
    ],
    [{ proto: ['quic'], action: REJECT }, 'rules[0].proto[0]: "quic" is not a protocol (tls, http, h2, unknown)'],
    [{ listener: ['a b'], action: REJECT }, 'rules[0].listener[0]: "a b" is not a listener name'],
    [
      { name: 'has space', action: REJECT },
      'rules[0].name: "has space" is not a rule name (1-64 printable ASCII characters, no spaces)',
    ],
    [
      { domainsuffix: ['x.com'], action: REJECT },
      'rules[0]: unknown field "domainsuffix" (known: name, domain, domainSuffix, domainKeyword, dstCidr, dstPort, srcCidr, listener, proto, network, srcIdentity, srcTrustDomain, srcNode, action)',
    ],
    [{ domain: ['x.com'] }, 'rules[0].action: is missing'],
    [
      { action: { type: 'drop' } },
      'rules[0].action: "drop" is not an action type (direct, reject, upstream, forward, mesh)',
    ],
    [
      { action: { type: 'upstream', name: '' } },
      'rules[0].action: upstream name "" is not a name (1-64 of A-Z a-z 0-9 _ . -)',
    ],
    [
      { action: { type: 'forward', host: 'a b', port: 1 } },
      'rules[0].action: forward host "a b" is not an IP address or host name',
    ],
    [
      { action: { type: 'forward', host: '10.0.0.1', port: 0 } },
      'rules[0].action: forward port 0 is not a number 1-65535',
    ],
    [{ action: { type: 'reject', extra: 1 } }, 'rules[0].action: unknown field "extra" in a reject action'],
    [null, 'rules[0]: must be a rule object, not null'],
  ]
  for (const [spec, message] of bad) {
    // the bad rule is placed second, after a good one: the index must say 1
    const specs = [{ action: REJECT }, spec] as RuleSpec[]
    const want = message.replace('rules[0]', 'rules[1]')
    t.throws(() => compileRules(specs), { name: 'ConfigError', message: want }, want)
  }
  try {
    compileRules([{ action: REJECT }, { dstCidr: ['10.0.0.0/8', 'nope'], action: REJECT }], undefined, 'gateway.rules')
    t.fail('no error')
  } catch (e) {
    t.ok(e instanceof ConfigError)
    const err = e as ConfigError
    t.equal(err.path, 'gateway.rules[1].dstCidr[1]')
    t.match(err.path, /\.rules\[1\]\./, 'the path names the rule index')
    t.match(err.path, /\]\.dstCidr\[/, 'the path names the field')
    t.equal(err.value, 'nope')
  }
  t.throws(() => compileRules([], { type: 'upstream', name: '-x' }), {
    message: 'default action: upstream name "-x" is not a name (1-64 of A-Z a-z 0-9 _ . -)',
  })
})

// ---- differential test against a naive matcher ---------------------------------

/** A tiny deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** IPv4 text → bigint-free 32-bit number; IPv6 text → 8 groups. Only the forms the generator writes. */
function v4num(s: string): number {
  return s.split('.').reduce((a, o) => a * 256 + Number(o), 0)
}

function naiveCidr(cidr: string, ip: string | undefined): boolean {
  if (ip === undefined) return false
  const [net, lenText] = cidr.split('/')
  const v6 = net!.includes(':')
  if (v6 !== ip.includes(':')) return false
  if (!v6) {
    const len = Number(lenText ?? 32)
    const div = 2 ** (32 - len)
    return Math.floor(v4num(net!) / div) === Math.floor(v4num(ip) / div)
  }
  // the generator writes full 8-group IPv6 text
  const bits = (s: string) =>
    s
      .split(':')
      .map((g) => parseInt(g, 16).toString(2).padStart(16, '0'))
      .join('')
  const len = Number(lenText ?? 128)
  return bits(net!).slice(0, len) === bits(ip).slice(0, len)
}

function naiveRoute(rules: RuleSpec[], x: RouteQuery): number {
  const host = x.host?.toLowerCase().replace(/\.$/, '')
  return rules.findIndex((r) => {
    if (r.domain && !(host !== undefined && r.domain.includes(host))) return false
    if (r.domainSuffix && !(host !== undefined && r.domainSuffix.some((s) => host === s || host.endsWith('.' + s))))
      return false
    if (r.domainKeyword && !(host !== undefined && r.domainKeyword.some((k) => host.includes(k)))) return false
    if (r.dstCidr && !r.dstCidr.some((c) => naiveCidr(c, x.dstIp))) return false
    if (r.srcCidr && !r.srcCidr.some((c) => naiveCidr(c, x.srcIp))) return false
    if (
      r.dstPort &&
      !r.dstPort.some((p) =>
        typeof p === 'number' ? p === x.dstPort : Array.isArray(p) && x.dstPort >= p[0] && x.dstPort <= p[1],
      )
    )
      return false
    if (r.listener && !r.listener.includes(x.listener)) return false
    if (r.proto && !(x.proto !== undefined && r.proto.includes(x.proto))) return false
    if (r.network && !r.network.includes(x.network ?? 'tcp')) return false
    const td = x.srcIdentity?.split('/')[2]
    if (r.srcIdentity && !(x.srcIdentity !== undefined && r.srcIdentity.includes(x.srcIdentity))) return false
    if (r.srcTrustDomain && !(td !== undefined && r.srcTrustDomain.includes(td))) return false
    if (r.srcNode && !(x.srcNode !== undefined && r.srcNode.includes(x.srcNode))) return false
    return true
  })
}

t.test('random rule sets agree with a naive first-match scan', async (t) => {
  const rand = rng(12345)
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!
  const labels = ['a', 'b', 'ab', 'ba', 'c', 'com', 'net', 'ex']
  const name = () => Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(labels)).join('.')
  const v4 = () => [10, pick([0, 1, 2]), pick([0, 128, 255]), pick([0, 1, 200])].join('.')
  const v6 = () => ['2001', 'db8', pick(['0', '1', 'ff']), '0', '0', '0', '0', pick(['0', '1', '8000'])].join(':')
  const listeners = ['l1', 'l2', 'l3']
  const protos = ['tls', 'http', 'h2', 'unknown'] as const
  const identities = ['spiffe://td.a/ns/n/sa/x', 'spiffe://td.a/ns/n/sa/y', 'spiffe://td.b/ns/n/sa/x']
  let mismatches = 0
  let checked = 0
  let matched = 0
  let deepest = -1
  for (let round = 0; round < 40; round++) {
    const rules: RuleSpec[] = []
    const n = 1 + Math.floor(rand() * 60)
    for (let i = 0; i < n; i++) {
      const r: RuleSpec = { action: REJECT }
      const many = <T>(f: () => T) => Array.from({ length: 1 + Math.floor(rand() * 3) }, f)
      if (rand() < 0.25) r.domain = many(name)
      if (rand() < 0.3) r.domainSuffix = many(name)
      if (rand() < 0.15) r.domainKeyword = many(() => pick(['a', 'ab', 'b.c', 'aba', 'om']))
      if (rand() < 0.25)
        r.dstCidr = many(() =>
          rand() < 0.5
            ? `${v4()}/${pick([0, 8, 16, 17, 24, 31, 32])}`
            : `${v6()}/${pick([0, 32, 48, 63, 64, 127, 128])}`,
        )
      if (rand() < 0.15) r.srcCidr = many(() => `${v4()}/${pick([8, 16, 24, 32])}`)
      if (rand() < 0.25)
        r.dstPort = many(() =>
          rand() < 0.5
            ? pick([80, 443, 8080])
            : (([pick([1, 80, 444]), pick([443, 8080, 65535])] as [number, number]).sort((a, b) => a - b) as [
                number,
                number,
              ]),
        )
      if (rand() < 0.15) r.listener = many(() => pick(listeners))
      if (rand() < 0.15) r.proto = many(() => pick(protos))
      if (rand() < 0.15) r.network = many(() => pick(['tcp', 'udp'] as const))
      if (rand() < 0.1) r.srcIdentity = many(() => pick(identities))
      if (rand() < 0.1) r.srcTrustDomain = many(() => pick(['td.a', 'td.b']))
      if (rand() < 0.1) r.srcNode = many(() => pick([NODE_A, NODE_B]))
      // mostly selective rules, a few broad ones (port, listener or proto only, or catch-all)
      if (!r.domain && !r.domainSuffix && !r.domainKeyword && !r.dstCidr && !r.srcCidr && rand() < 0.85)
        r.domain = [name()]
      rules.push(r)
    }
    // half of the rounds: enough keywords (never matching) for the automaton path
    if (round % 2 === 1) rules.push({ domainKeyword: Array.from({ length: 13 }, (_, i) => `zzq${i}`), action: REJECT })
    const c = compileRules(rules)
    for (let k = 0; k < 200; k++) {
      const x: RouteQuery = { dstPort: pick([80, 443, 8080, 22, 65535]), srcIp: v4(), listener: pick(listeners) }
      if (rand() < 0.8) x.host = name() + (rand() < 0.1 ? '.' : '')
      if (rand() < 0.8) x.dstIp = rand() < 0.5 ? v4() : v6()
      if (rand() < 0.7) x.proto = pick(protos)
      if (rand() < 0.6) x.network = pick(['tcp', 'udp'] as const)
      if (rand() < 0.5) x.srcIdentity = pick(identities)
      if (rand() < 0.5) x.srcNode = pick([NODE_A, NODE_B])
      const want = naiveRoute(rules, x)
      const got = route(c, x).ruleIndex
      checked++
      if (want >= 0) matched++
      deepest = Math.max(deepest, want)
      if (got !== want) {
        mismatches++
        if (mismatches <= 5) t.fail(`round ${round}: ${JSON.stringify(x)} → ${got}, naive ${want}`)
      }
    }
  }
  t.equal(mismatches, 0, `${checked} queries (${matched} matched a rule) agree`)
  t.ok(deepest > 30, `winners reach deep into the list (rule ${deepest})`)
  t.ok(
    matched > checked / 5 && matched < checked * 0.9,
    `the generator produces a useful mix of hits and misses (${matched}/${checked})`,
  )
})
