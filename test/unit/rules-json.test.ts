import t from 'tap'
import {
  compileRules,
  parseActionString,
  parseRuleJson,
  parseRulesJson,
  route,
  type RouteQuery,
} from '../../src/core/rules/index.js'
import { originalLookupRules } from '../lib/original-lookup.js'

function q(over: Partial<RouteQuery>): RouteQuery {
  return { dstPort: 443, srcIp: '192.168.1.50', listener: 'redir', ...over }
}

t.test('parseActionString: good', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['direct', { type: 'direct' }],
    ['reject', { type: 'reject' }],
    ['upstream:vpn', { type: 'upstream', name: 'vpn' }],
    ['upstream:my_proxy-2.eu', { type: 'upstream', name: 'my_proxy-2.eu' }],
    ['forward:10.0.0.2:8080', { type: 'forward', host: '10.0.0.2', port: 8080 }],
    ['forward:[2001:db8::1]:443', { type: 'forward', host: '2001:db8::1', port: 443 }],
    ['forward:Backend.LAN:22', { type: 'forward', host: 'backend.lan', port: 22 }],
  ]
  for (const [text, want] of cases) t.same(parseActionString(text, 'rules[0].action'), want, text)
})

t.test('parseActionString: bad', async (t) => {
  const cases: Array<[unknown, string]> = [
    ['drop', '"drop" is not an action ("direct", "reject", "mesh", "upstream:NAME" or "forward:HOST:PORT")'],
    ['Direct', '"Direct" is not an action ("direct", "reject", "mesh", "upstream:NAME" or "forward:HOST:PORT")'],
    [
      { type: 'direct' },
      '{"type":"direct"} is not an action ("direct", "reject", "mesh", "upstream:NAME" or "forward:HOST:PORT")',
    ],
    ['upstream:', '"upstream:" is not an action (upstream NAME is 1-64 of A-Z a-z 0-9 _ . -)'],
    ['upstream:a b', '"upstream:a b" is not an action (upstream NAME is 1-64 of A-Z a-z 0-9 _ . -)'],
    ['forward:10.0.0.2', '"forward:10.0.0.2" is not an action (missing HOST:PORT)'],
    ['forward:10.0.0.2:0', '"forward:10.0.0.2:0" is not an action (port "0" is not a number 1-65535)'],
    ['forward:10.0.0.2:65536', '"forward:10.0.0.2:65536" is not an action (port "65536" is not a number 1-65535)'],
    [
      'forward:2001:db8::1:443',
      '"forward:2001:db8::1:443" is not an action (an IPv6 HOST needs brackets: "[ADDR]:PORT")',
    ],
    ['forward:[2001:db8::1]443', '"forward:[2001:db8::1]443" is not an action (an IPv6 HOST is written "[ADDR]:PORT")'],
    ['forward:[10.0.0.1]:443', '"forward:[10.0.0.1]:443" is not an action ("10.0.0.1" is not an IPv6 address)'],
    ['forward:bad host:80', '"forward:bad host:80" is not an action ("bad host" is not an IP address or host name)'],
    [
      'forward:10.0.0.256:80',
      '"forward:10.0.0.256:80" is not an action ("10.0.0.256" is not an IP address or host name)',
    ],
  ]
  for (const [text, message] of cases) {
    t.throws(
      () => parseActionString(text, 'rules[2].action'),
      { name: 'ConfigError', message: `rules[2].action: ${message}` },
      String(text),
    )
  }
})

t.test('parseRuleJson / parseRulesJson', async (t) => {
  const json = JSON.parse(`[
    {"name": "ads", "domainKeyword": ["doubleclick"], "action": "reject"},
    {"domainSuffix": ["example.com"], "dstPort": [443, "8000-8080", [9000, 9001]], "action": "upstream:vpn"},
    {"dstCidr": ["10.0.0.0/8", "fd00::/8"], "action": "direct"},
    {"listener": ["ssh-in"], "action": "forward:10.0.0.2:22"}
  ]`)
  const specs = parseRulesJson(json)
  t.same(specs[1], {
    domainSuffix: ['example.com'],
    dstPort: [443, '8000-8080', [9000, 9001]],
    action: { type: 'upstream', name: 'vpn' },
  })
  const c = compileRules(specs)
  t.equal(route(c, q({ host: 'ad.doubleclick.net' })).ruleName, 'ads')
  t.same(route(c, q({ host: 'www.example.com', dstPort: 8042 })).action, { type: 'upstream', name: 'vpn' })
  t.same(route(c, q({ listener: 'ssh-in', dstPort: 22 })).action, { type: 'forward', host: '10.0.0.2', port: 22 })

  const bad: Array<[unknown, string]> = [
    [{ domainSuffix: ['example.com'] }, 'rules[3].action: is missing'],
    [
      { action: 'upstream:' },
      'rules[3].action: "upstream:" is not an action (upstream NAME is 1-64 of A-Z a-z 0-9 _ . -)',
    ],
    [
      { dstCidr: ['10.0.0.0/8', '300.0.0.0/8'], action: 'direct' },
      'rules[3].dstCidr[1]: "300.0.0.0/8" is not an IPv4 or IPv6 address or CIDR',
    ],
    [
      { dstPort: ['http'], action: 'direct' },
      'rules[3].dstPort[0]: "http" is not a port (1-65535) or a range ("8000-8080" or [8000, 8080])',
    ],
    [{ domain: 'example.com', action: 'direct' }, 'rules[3].domain: must be an array, not "example.com"'],
    [
      { host: ['example.com'], action: 'direct' },
      'rules[3]: unknown field "host" (known: name, domain, domainSuffix, domainKeyword, dstCidr, dstPort, srcCidr, listener, proto, network, srcIdentity, srcTrustDomain, srcNode, action)',
    ],
    ['reject', 'rules[3]: must be a rule object, not "reject"'],
    [[], 'rules[3]: must be a rule object, not []'],
  ]
  for (const [obj, message] of bad) {
    t.throws(() => parseRuleJson(obj, 'rules[3]'), { name: 'ConfigError', message }, message)
  }
  t.throws(() => parseRulesJson({}, 'gw.rules'), { message: 'gw.rules: must be an array of rules, not {}' })
  t.throws(() => parseRulesJson([{ action: 'direct' }, { action: 'nope' }], 'gw.rules'), {
    message:
      'gw.rules[1].action: "nope" is not an action ("direct", "reject", "mesh", "upstream:NAME" or "forward:HOST:PORT")',
  })
})

t.test('originalLookupRules: the original order as rules', async (t) => {
  // Key order in the object is deliberately scrambled: the groups decide.
  const routes = {
    '*': { forwardTo: 'fallback.lan:3128' },
    ':22': { forwardTo: '10.0.0.2:22' },
    'example.com': { forwardTo: 'web.lan:8080' },
    'example.com:443': { forwardTo: 'tls.lan:8443' },
    '10.1.2.3:80': { forwardTo: '[2001:db8::5]:80' },
    '2001:db8::9': {},
    'Mixed.Case.com': { forwardTo: 'mixed.lan:1' },
  }
  const specs = originalLookupRules(routes)
  t.same(specs, [
    {
      name: 'route:example.com:443',
      domain: ['example.com'],
      dstPort: [443],
      action: { type: 'forward', host: 'tls.lan', port: 8443 },
    },
    {
      name: 'route:10.1.2.3:80',
      dstCidr: ['10.1.2.3'],
      dstPort: [80],
      action: { type: 'forward', host: '2001:db8::5', port: 80 },
    },
    { name: 'route:example.com', domain: ['example.com'], action: { type: 'forward', host: 'web.lan', port: 8080 } },
    { name: 'route:2001:db8::9', dstCidr: ['2001:db8::9'], action: { type: 'direct' } },
    {
      name: 'route:Mixed.Case.com',
      domain: ['mixed.case.com'],
      action: { type: 'forward', host: 'mixed.lan', port: 1 },
    },
    { name: 'route::22', dstPort: [22], action: { type: 'forward', host: '10.0.0.2', port: 22 } },
    { name: 'route:*', action: { type: 'forward', host: 'fallback.lan', port: 3128 } },
  ])
  const c = compileRules(specs)
  const to = (x: Partial<RouteQuery>) => {
    const a = route(c, q(x)).action
    return a.type === 'forward' ? `${a.host}:${a.port}` : a.type
  }
  t.equal(to({ host: 'example.com', dstPort: 443 }), 'tls.lan:8443', 'host:port first')
  t.equal(to({ host: 'example.com', dstPort: 22 }), 'web.lan:8080', 'then host (before :port)')
  t.equal(to({ host: 'EXAMPLE.com.', dstPort: 80 }), 'web.lan:8080')
  t.equal(to({ host: 'www.example.com', dstPort: 22 }), '10.0.0.2:22', 'exact host only; then :port')
  t.equal(to({ dstIp: '10.1.2.3', dstPort: 80 }), '2001:db8::5:80', 'an IP key matches the address')
  t.equal(to({ dstIp: '10.1.2.3', dstPort: 81 }), 'fallback.lan:3128', 'then *')
  t.equal(to({ dstIp: '2001:db8::9', dstPort: 81 }), 'direct', 'no forwardTo keeps the original destination')
  t.same(originalLookupRules({}), [], 'no routes: no rules (default action)')
})

t.test('originalLookupRules: bad keys and targets', async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ ':0': {} }, 'routes[":0"]: is not ":PORT" (port 1-65535)'],
    [{ ':http': {} }, 'routes[":http"]: is not ":PORT" (port 1-65535)'],
    [{ 'a b': {} }, 'routes["a b"]: is not "host:port", "host", ":port" or "*" (bad host name)'],
    [
      { 'host:99999': {} },
      'routes["host:99999"]: is not "host:port", "host", ":port" or "*" (port "99999" is not a number 1-65535)',
    ],
    [{ 'a.com': { forwardTo: 'nohost' } }, 'routes["a.com"].forwardTo: "nohost" is not HOST:PORT (missing HOST:PORT)'],
    [{ 'a.com': { forwardTo: 5 } }, 'routes["a.com"].forwardTo: 5 is not HOST:PORT (not a string)'],
    [{ 'a.com': { to: 'x:1' } }, 'routes["a.com"]: unknown field "to"'],
    [{ 'a.com': 'x:1' }, 'routes["a.com"]: must be an object with "forwardTo", not "x:1"'],
  ]
  for (const [routes, message] of cases) {
    t.throws(
      () => originalLookupRules(routes as Record<string, { forwardTo?: string }>),
      { name: 'ConfigError', message },
      message,
    )
  }
})
