// The Clash API's routes and JSON shapes (src/core/clash-api.ts) and the
// Prometheus exposition (src/core/metrics.ts), without the runtime.

import t from 'tap'
import {
  clashLevel,
  clashRule,
  connectionView,
  connectionsSnapshot,
  connId,
  matchRoute,
  parseConnId,
  proxiesView,
  proxyView,
  rulesView,
  ugateLevel,
} from '../../src/core/clash-api.js'
import { ClosedCounters, exposition, labelKey, samplesOf } from '../../src/core/metrics.js'
import type { RuleSpec } from '../../src/core/rules/index.js'
import { rng } from '../lib/rng.js'

t.test('routes: names, parameters, 404, 405 with Allow, bad encodings', async (t) => {
  t.match(matchRoute('GET', '/version'), { status: 'ok', name: 'version' })
  t.match(matchRoute('GET', '/'), { status: 'ok', name: 'page' })
  t.match(matchRoute('GET', '/ugate/status'), { status: 'ok', name: 'status' })
  t.match(matchRoute('GET', '/proxies/'), { status: 'ok', name: 'proxies' })
  t.match(matchRoute('GET', '/proxies/my%20proxy'), { status: 'ok', name: 'proxy', params: { name: 'my proxy' } })
  const delay = matchRoute('GET', '/proxies/DIRECT/delay?url=http%3A%2F%2Fa%2F&timeout=500')
  t.match(delay, { status: 'ok', name: 'delay', params: { name: 'DIRECT' } })
  if (delay.status === 'ok') {
    t.equal(delay.query.get('url'), 'http://a/')
    t.equal(delay.query.get('timeout'), '500')
    t.equal(delay.query.get('nope'), null)
  }
  t.match(matchRoute('DELETE', '/connections/17'), { status: 'ok', name: 'connection', params: { id: '17' } })
  t.match(matchRoute('HEAD', '/rules'), { status: 'ok', name: 'rules' }, 'HEAD goes where GET goes')
  t.match(matchRoute('POST', '/rules'), { status: 'error', code: 405, allow: ['GET'] })
  t.match(matchRoute('PUT', '/configs'), { status: 'error', code: 405, allow: ['GET', 'PATCH'] })
  t.match(matchRoute('GET', '/nope'), { status: 'error', code: 404, message: 'Resource not found' })
  t.match(matchRoute('GET', '/proxies/a/b/c'), { status: 'error', code: 404 })
  t.match(matchRoute('GET', '/proxies/%zz'), { status: 'error', code: 400, message: /percent-encoding in the path/ })
  t.match(matchRoute('GET', '/logs?level=%'), { status: 'error', code: 400, message: /in the query/ })
  t.match(matchRoute('GET', 'http://x/version'), { status: 'error', code: 400 })
})

t.test('routes: fixed-seed fuzz of request targets never throws', async (t) => {
  const r = rng(99)
  const alphabet = '/%?&=+abcdeflnoprstvxy0123456789:.#-_~ '
  const statuses = new Set<string>()
  for (let i = 0; i < 20000; i++) {
    let s = i % 3 === 0 ? '' : '/'
    const n = Math.floor(r() * 30)
    for (let k = 0; k < n; k++) s += alphabet[Math.floor(r() * alphabet.length)]
    const m = matchRoute(['GET', 'DELETE', 'PATCH', 'X'][i % 4]!, s)
    statuses.add(m.status === 'ok' ? 'ok' : String(m.code))
  }
  t.same([...statuses].sort(), ['400', '404', '405', 'ok'], 'every answer is one of the four kinds')
})

t.test('log levels in Clash words', async (t) => {
  t.equal(clashLevel('warn'), 'warning')
  t.equal(clashLevel('debug'), 'debug')
  t.equal(ugateLevel('warning'), 'warn')
  t.equal(ugateLevel('error'), 'error')
  t.equal(ugateLevel('silent'), null)
  t.equal(ugateLevel('warn'), null, 'the API speaks Clash')
})

const specs: RuleSpec[] = [
  { domainSuffix: ['google.com'], action: { type: 'upstream', name: 'up1' } },
  { name: 'ads', domainKeyword: ['ads', 'track'], action: { type: 'reject' } },
  { dstCidr: ['10.0.0.0/8'], dstPort: [443, [8000, 8080]], action: { type: 'direct' } },
  { action: { type: 'forward', host: 'x', port: 1 } },
]

t.test('rules in Clash terms, with hit counts and the default as the final Match', async (t) => {
  t.same(clashRule(specs[0]!), { type: 'DomainSuffix', payload: 'google.com' })
  t.same(clashRule(specs[1]!), { type: 'OR', payload: '((DomainKeyword,ads) || (DomainKeyword,track))' })
  t.same(clashRule(specs[2]!), {
    type: 'AND',
    payload: '((IPCIDR,10.0.0.0/8) && ((DstPort,443) || (DstPort,8000-8080)))',
  })
  t.same(clashRule(specs[3]!), { type: 'Match', payload: '' })
  t.same(
    clashRule({ srcIdentity: ['spiffe://td/ns/a/sa/b'], action: { type: 'reject' } }),
    { type: 'SrcIdentity', payload: 'spiffe://td/ns/a/sa/b' },
    'a mesh peer condition is not a catch-all',
  )
  t.same(clashRule({ srcTrustDomain: ['td'], srcNode: ['N'], action: { type: 'reject' } }), {
    type: 'AND',
    payload: '((SrcTrustDomain,td) && (SrcNode,N))',
  })
  const hits = new Map([
    ['ads', { hits: 3, lastMs: Date.UTC(2026, 0, 2, 3, 4, 5) }],
    ['default', { hits: 1, lastMs: Date.UTC(2026, 0, 1) }],
  ])
  const v = rulesView(specs, hits)
  t.equal(v.rules.length, 5)
  t.same(v.rules[1], {
    index: 1,
    type: 'OR',
    payload: '((DomainKeyword,ads) || (DomainKeyword,track))',
    proxy: 'REJECT',
    size: -1,
    extra: { disabled: false, hitCount: 3, hitAt: '2026-01-02T03:04:05.000Z' },
  })
  t.match(v.rules[0], { proxy: 'up1', extra: { hitCount: 0, hitAt: '0001-01-01T00:00:00Z' } })
  t.match(v.rules[3], { proxy: 'DIRECT' }, 'a forward rule leaves directly')
  t.match(v.rules[4], { index: 4, type: 'Match', proxy: 'DIRECT', extra: { hitCount: 1 } })
})

t.test('proxies: the shape yacd and metacubexd read', async (t) => {
  const v = proxiesView([
    { name: 'DIRECT', type: 'Direct', udp: false, history: [] },
    { name: 'up1', type: 'Socks5', udp: false, history: [{ time: Date.UTC(2026, 0, 1), delay: 0 }] },
  ])
  t.same(Object.keys(v.proxies), ['DIRECT', 'up1'])
  t.same(v.proxies.up1, {
    name: 'up1',
    type: 'Socks5',
    udp: false,
    alive: false,
    history: [{ time: '2026-01-01T00:00:00.000Z', delay: 0 }],
    extra: {},
  })
  t.equal(v.proxies.DIRECT!.alive, true)
  // A mesh peer: ugate's own type and its tunnels beside the fields dashboards read.
  const tunnel = {
    id: 3,
    state: 'open',
    peerId: 'spiffe://td/ns/a/sa/b',
    streams: 1,
    streamsTotal: 9,
    bytesOut: 10,
    bytesIn: 20,
    rttMs: 0.4,
    ageMs: 5000,
  }
  const peer = proxyView({
    name: 'b',
    type: 'Hbone',
    udp: false,
    history: [],
    mesh: { server: '10.0.0.2:15008', identity: '', tunnels: [tunnel] },
  })
  t.same(peer, {
    name: 'b',
    type: 'Hbone',
    udp: false,
    alive: true,
    history: [],
    extra: {},
    mesh: { server: '10.0.0.2:15008', identity: '', tunnels: [tunnel] },
  })
  t.notOk('mesh' in v.proxies.up1!, 'no mesh field on other proxies')
})

t.test('connections: mihomo metadata from a tracked connection', async (t) => {
  const start = Date.UTC(2026, 5, 1, 12)
  const named = connectionView(
    {
      id: 7,
      network: 'tcp',
      listener: 'mix',
      listenerType: 'mixed',
      src: '192.168.1.5:50000',
      dst: 'www.google.com:443',
      rule: '#0',
      action: { type: 'upstream', name: 'up1' },
      startMs: start,
      up: 10,
      down: 20,
    },
    specs,
  )
  t.same(named, {
    id: '7',
    metadata: {
      network: 'tcp',
      type: 'Mixed',
      sourceIP: '192.168.1.5',
      destinationIP: '',
      sourcePort: '50000',
      destinationPort: '443',
      inboundName: 'mix',
      host: 'www.google.com',
      sniffHost: '',
      dnsMode: 'normal',
      process: '',
      processPath: '',
      specialProxy: '',
      specialRules: '',
      remoteDestination: '',
    },
    upload: 10,
    download: 20,
    start: '2026-06-01T12:00:00.000Z',
    chains: ['up1'],
    rule: 'DomainSuffix',
    rulePayload: 'google.com',
  })
  const captured = connectionView(
    {
      id: 8,
      network: 'tcp',
      listener: 'tp',
      listenerType: 'redirect',
      src: '[fd00::5]:1234',
      dst: '[2001:db8::1]:443',
      sniffHost: 'example.org',
      rule: 'default',
      action: { type: 'direct' },
      startMs: start,
      up: 0,
      down: 0,
    },
    specs,
  )
  t.match(captured, {
    metadata: {
      type: 'Redir',
      sourceIP: 'fd00::5',
      destinationIP: '2001:db8::1',
      destinationPort: '443',
      host: 'example.org',
      sniffHost: 'example.org',
    },
    chains: ['DIRECT'],
    rule: 'Match',
    rulePayload: '',
  })
  const handshaking = connectionView(
    { id: 9, network: 'tcp', listener: 's', listenerType: 'socks', src: '127.0.0.1:1', startMs: start, up: 0, down: 0 },
    specs,
  )
  t.match(handshaking, { metadata: { type: 'Socks5', host: '', destinationPort: '' }, rule: '', chains: ['DIRECT'] })
  const snap = connectionsSnapshot([], specs, { up: 5, down: 6 }, 1234)
  t.same(snap, { downloadTotal: 6, uploadTotal: 5, connections: [], memory: 1234 })
  const flow = connectionView(
    {
      id: 9,
      network: 'udp',
      listener: 'udp',
      listenerType: 'tproxy',
      src: '10.0.0.2:5353',
      dst: '192.0.2.1:443',
      sniffHost: 'quic.example',
      rule: 'default',
      action: { type: 'direct' },
      startMs: start,
      up: 1200,
      down: 3000,
    },
    specs,
  )
  t.match(
    flow,
    {
      id: 'udp-9',
      metadata: {
        network: 'udp',
        type: 'TProxy',
        sourceIP: '10.0.0.2',
        sourcePort: '5353',
        destinationIP: '192.0.2.1',
        destinationPort: '443',
        host: 'quic.example',
      },
      upload: 1200,
      download: 3000,
      chains: ['DIRECT'],
      rule: 'Match',
    },
    'a UDP flow: network udp, its own id space',
  )
  const meshStream = connectionView(
    {
      id: 10,
      network: 'tcp',
      listener: 'mesh',
      listenerType: 'hbone',
      src: '10.0.0.3:40000',
      startMs: start,
      up: 0,
      down: 0,
    },
    specs,
  )
  t.match(meshStream, { metadata: { type: 'Hbone', inboundName: 'mesh' } }, 'a stream from a mesh peer')
})

t.test('connection ids: TCP numbers and udp-N flows, both ways', async (t) => {
  t.same(parseConnId('17'), { network: 'tcp', id: 17 })
  t.same(parseConnId('udp-17'), { network: 'udp', id: 17 })
  for (const bad of ['', '0', 'udp-0', 'udp-', 'udp17', '-1', '1.5', 'x', '1234567890123456', 'UDP-1', ' 1'])
    t.equal(parseConnId(bad), null, `${JSON.stringify(bad)} is no id`)
  for (const ref of [
    { network: 'tcp', id: 3 },
    { network: 'udp', id: 3 },
  ] as const)
    t.same(parseConnId(connId(ref)), ref, `${connId(ref)} round-trips`)
})

t.test('metrics: exposition text, escaping, counters of closed connections', async (t) => {
  const c = new ClosedCounters()
  c.closed('mix', { action: 'direct' }, 'eof', 100, 2000, true, true)
  c.closed('mix', { action: 'direct' }, 'eof', 1, 2, true, false)
  c.closed('mix', {}, 'handshake-timeout', 0, 0, false, false)
  c.closed('mix', { action: 'reject' }, 'rejected', 0, 0, false, false)
  const g = new ClosedCounters()
  g.closedMany('fwd', 'none', 'eof', 3, true, true, 30, 60)
  g.closedMany('fwd', 'none', 'connect-error:ECONNREFUSED', 2, false, false, 0, 0)
  t.same(c.connections.get(labelKey('mix', 'direct', 'eof')), 2)
  t.same(c.handshakeFailures.get(labelKey('mix', 'handshake-timeout')), 1)
  t.same(
    [
      g.connections.get(labelKey('fwd', 'none', 'eof')),
      g.handshakeFailures.get(labelKey('fwd', 'connect-error:ECONNREFUSED')),
      g.bytes.get(labelKey('fwd', 'up')),
      g.bytes.get(labelKey('fwd', 'down')),
      g.relayModes.get('splice'),
    ],
    [3, 2, 30, 60, 3],
    'a group of alike connections counts as many',
  )
  t.equal(c.handshakeFailures.get(labelKey('mix', 'rejected')), undefined, 'a rejected connection did not fail')
  t.same(
    [...c.relayModes],
    [
      ['splice', 1],
      ['copy', 1],
    ],
  )
  const text = exposition([
    {
      name: 'x_total',
      type: 'counter',
      help: 'A help\\text\nline.',
      samples: samplesOf(c.bytes, ['listener', 'direction']),
    },
    { name: 'g', type: 'gauge', help: 'g', samples: [{ labels: { l: 'a"b\\c\nd' }, value: NaN }] },
  ])
  t.equal(
    text,
    [
      '# HELP x_total A help\\\\text\\nline.',
      '# TYPE x_total counter',
      'x_total{listener="mix",direction="up"} 101',
      'x_total{listener="mix",direction="down"} 2002',
      '# HELP g g',
      '# TYPE g gauge',
      'g{l="a\\"b\\\\c\\nd"} NaN',
      '',
    ].join('\n'),
  )
  t.throws(() => exposition([{ name: 'bad-name', type: 'gauge', help: '', samples: [] }]), RangeError)
  t.throws(() => exposition([{ name: 'ok', type: 'gauge', help: '', samples: [{ labels: { __x: '' }, value: 1 }] }]))
})
