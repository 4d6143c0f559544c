import t, { type Test } from 'tap'
import { compileRules, route, type RouteQuery, type RuleSpec } from '../../src/core/rules/index.js'
import { RouteCache } from '../../src/core/rules/route-cache.js'

function q(over: Partial<RouteQuery>): RouteQuery {
  return { dstPort: 443, srcIp: '192.168.1.50', listener: 'mx', ...over }
}

/** What a caller does: the cached answer, or route() and keep it. */
function cached(c: RouteCache<number>, rules: ReturnType<typeof compileRules>, query: RouteQuery): number {
  const key = c.key(rules, query)
  const known = c.get(key)
  if (known !== undefined) return known
  const r = route(rules, query).ruleIndex
  c.set(key, r)
  return r
}

/** Every query answered twice through the cache agrees with route() itself. */
function agrees(t: Test, specs: RuleSpec[], queries: RouteQuery[]): void {
  const rules = compileRules(specs)
  const c = new RouteCache<number>()
  for (let round = 0; round < 2; round++)
    for (const x of queries) t.equal(cached(c, rules, x), route(rules, x).ruleIndex, JSON.stringify(x))
}

t.test('without source rules the source is not in the key', async (t) => {
  const rules = compileRules([{ domain: ['a.example'], action: { type: 'reject' } }])
  t.equal(rules.bySource, false)
  const c = new RouteCache<number>()
  t.equal(c.key(rules, q({ host: 'a.example' })), c.key(rules, q({ host: 'a.example', srcIp: '10.0.0.9' })))
  t.not(c.key(rules, q({ host: 'a.example' })), c.key(rules, q({ host: 'a.example', listener: 'other' })))
  t.not(c.key(rules, q({ host: 'a.example' })), c.key(rules, q({ host: 'a.example', dstPort: 80 })))
  t.not(c.key(rules, q({ dstIp: '10.0.0.1' })), c.key(rules, q({ dstIp: '10.0.0.1', host: 'a.example' })))
})

t.test('a srcCidr rule puts the source in the key: answers per client stay exact', async (t) => {
  const specs: RuleSpec[] = [
    { srcCidr: ['10.0.0.0/8'], dstPort: [443], action: { type: 'reject' } },
    { domain: ['a.example'], action: { type: 'forward', host: '127.0.0.1', port: 1 } },
  ]
  t.equal(compileRules(specs).bySource, true)
  agrees(t, specs, [
    q({ host: 'a.example', srcIp: '10.1.2.3' }),
    q({ host: 'a.example', srcIp: '192.168.1.2' }),
    q({ host: 'a.example', srcIp: '10.1.2.3', dstPort: 80 }),
    q({ host: 'a.example', srcIp: '192.168.1.2', dstPort: 80 }),
  ])
})

t.test('mesh peer rules put the peer in the key', async (t) => {
  for (const cond of [
    { srcIdentity: ['spiffe://td/ns/a/sa/b'] },
    { srcTrustDomain: ['td'] },
    { srcNode: ['a'.repeat(52)] },
  ]) {
    const specs: RuleSpec[] = [{ ...cond, action: { type: 'reject' } }]
    t.equal(compileRules(specs).bySource, true, Object.keys(cond)[0])
    agrees(t, specs, [
      q({ host: 'x.example', srcIdentity: 'spiffe://td/ns/a/sa/b', srcNode: 'a'.repeat(52) }),
      q({ host: 'x.example', srcIdentity: 'spiffe://other/ns/a/sa/b', srcNode: 'b'.repeat(52) }),
      q({ host: 'x.example' }),
    ])
  }
})

t.test('host names with separators and lengths do not collide', async (t) => {
  const rules = compileRules([])
  const c = new RouteCache<number>()
  const keys = new Set(
    [
      q({ host: 'a', dstIp: '1:b' }),
      q({ host: 'a1:b' }),
      q({ host: '1:a', listener: 'b' }),
      q({ host: 'a', listener: '1:b' }),
      q({ host: '~' }),
      q({}),
      q({ host: '443,' }),
      q({ host: 'a', proto: 'tls' }),
      q({ host: 'a', network: 'udp' }),
    ].map((x) => c.key(rules, x)),
  )
  t.equal(keys.size, 9)
})

t.test('a new rule set (a reload) empties the cache', async (t) => {
  const before = compileRules([{ domain: ['a.example'], action: { type: 'reject' } }])
  const after = compileRules([])
  const c = new RouteCache<number>()
  t.equal(cached(c, before, q({ host: 'a.example' })), 0)
  t.equal(c.size, 1)
  t.equal(cached(c, after, q({ host: 'a.example' })), -1, 'routed by the new rules, not the kept answer')
  t.equal(c.size, 1)
})

t.test('bounded: a full cache starts again empty', async (t) => {
  const rules = compileRules([])
  const c = new RouteCache<number>(3)
  for (let p = 1; p <= 3; p++) c.set(c.key(rules, q({ dstPort: p })), p)
  t.equal(c.size, 3)
  c.set(c.key(rules, q({ dstPort: 4 })), 4)
  t.equal(c.size, 1)
  t.equal(c.get(c.key(rules, q({ dstPort: 4 }))), 4)
  t.equal(c.get(c.key(rules, q({ dstPort: 1 }))), undefined)
})
