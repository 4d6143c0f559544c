// /etc/config/ugate → Config for the mesh: an hbone listener (its peers,
// HBONE's default address), hbone upstreams (identity, trust domain, the
// default port, ping_interval / ping_timeout) and rules on the mesh peer (src_identity, src_trust_domain,
// src_node); errors name the file, line and uci option.

import t from 'tap'
import { configFromUci } from '../../src/core/uci-config.js'

const NODE = 'ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ'

const BASE = `config listener 'hbone'
	option type 'hbone'
	list peers 'spiffe://home.arpa/ns/routers/sa/gw-a'
	list peers 'spiffe://home.arpa/ns/routers/sa/gw-c'

config upstream 'gwb'
	option type 'hbone'
	option server '192.0.2.2'
	option identity 'spiffe://home.arpa/ns/routers/sa/gw-b'

config upstream 'ztunnel'
	option type 'hbone'
	option server 'fd00::7'
	option port '15009'
	option trust_domain 'cluster.local'
	option ping_interval '2.5'
	option ping_timeout '5'

config rule 'gwa'
	list src_identity 'spiffe://home.arpa/ns/routers/sa/gw-a'
	list src_node '${NODE.toLowerCase()}'
	option action 'direct'

config rule 'others'
	list src_trust_domain 'home.arpa'
	option action 'upstream'
	option upstream 'gwb'

config mesh 'mesh'
	option trust_domain 'home.arpa'
`

const FILE = '/etc/config/ugate'

t.test('hbone listener, hbone upstreams and mesh-peer rules from uci', async (t) => {
  const c = configFromUci(BASE, FILE)
  t.match(c.listeners[0], {
    name: 'hbone',
    type: 'hbone',
    listen: { host: '::', port: 15008 },
    peers: ['spiffe://home.arpa/ns/routers/sa/gw-a', 'spiffe://home.arpa/ns/routers/sa/gw-c'],
    pingIntervalMs: 10000,
    pingTimeoutMs: 20000,
  })
  t.same(c.upstreams, [
    {
      name: 'gwb',
      type: 'hbone',
      server: { kind: 'ipv4', host: '192.0.2.2', port: 15008 },
      node: '',
      identity: 'spiffe://home.arpa/ns/routers/sa/gw-b',
      trustDomain: '',
      relay: false,
      pingIntervalMs: 10000,
      pingTimeoutMs: 20000,
    },
    {
      name: 'ztunnel',
      type: 'hbone',
      server: { kind: 'ipv6', host: 'fd00::7', port: 15009 },
      node: '',
      identity: '',
      trustDomain: 'cluster.local',
      relay: false,
      pingIntervalMs: 2500,
      pingTimeoutMs: 5000,
    },
  ])
  t.same(c.rules, [
    {
      name: 'gwa',
      srcIdentity: ['spiffe://home.arpa/ns/routers/sa/gw-a'],
      srcNode: [NODE.toLowerCase()],
      action: { type: 'direct' },
    },
    { name: 'others', srcTrustDomain: ['home.arpa'], action: { type: 'upstream', name: 'gwb' } },
  ])
  const own = configFromUci(
    BASE.replace(
      "\toption type 'hbone'\n",
      "\toption type 'hbone'\n\toption address '127.0.0.1'\n\toption port '15010'\n",
    ),
    FILE,
  )
  t.match(own.listeners[0], { listen: { host: '127.0.0.1', port: 15010 } }, 'address and port when given')
  const fwd = `config listener 'web'
	option type 'forward'
	option address '127.0.0.1'
	option port '8080'
	option target '10.1.0.5:80'
	option upstream 'gwb'

`
  const f = configFromUci(fwd + BASE, FILE)
  t.match(f.listeners[0], { name: 'web', type: 'forward', upstream: 'gwb' }, 'a forward through an upstream')
  t.throws(
    () => configFromUci(fwd.replace("'gwb'", "'gwx'") + BASE, FILE),
    { message: `${FILE}:1: web.upstream: upstream "gwx" is not in upstreams (known: gwb, ztunnel)` },
    'an unknown upstream is named',
  )
})

t.test('bad mesh options name the file, line and uci option', async (t) => {
  const cases: Array<[string, string, string]> = [
    [
      "list peers 'spiffe://home.arpa/ns/routers/sa/gw-c'",
      "list peers 'gw-c'",
      `${FILE}:1: hbone.peers[1]: "gw-c" is not a SPIFFE id: does not start with "spiffe://"`,
    ],
    [
      "\toption type 'hbone'\n\tlist peers",
      "\toption type 'hbone'\n\toption port '15008'\n\tlist peers",
      `${FILE}:1: hbone.address: missing`,
    ],
    [
      "option server '192.0.2.2'",
      "option server 'gw-b.home.arpa'",
      `${FILE}:6: gwb.server/port: "gw-b.home.arpa" is not an IP address: an hbone peer is given as IP or IP:PORT`,
    ],
    [
      "option identity 'spiffe://home.arpa/ns/routers/sa/gw-b'",
      "option identity 'gw-b'",
      `${FILE}:6: gwb.identity: "gw-b" is not a SPIFFE id: does not start with "spiffe://"`,
    ],
    [
      "option trust_domain 'cluster.local'",
      "option trust_domain 'Cluster'",
      `${FILE}:11: ztunnel.trust_domain: "Cluster" may only hold a-z, 0-9, ".", "-" and "_"`,
    ],
    [
      "option ping_timeout '5'",
      "option ping_timeout '0'",
      `${FILE}:11: ztunnel.ping_timeout: 0 is not a number of seconds from 0.1 to 3600`,
    ],
    [
      "option ping_interval '2.5'",
      "option ping_interval 'soon'",
      `${FILE}:11: ztunnel.ping_interval: "soon" is not a number`,
    ],
    [
      "option identity 'spiffe://home.arpa/ns/routers/sa/gw-b'",
      "option identity 'spiffe://home.arpa/ns/routers/sa/gw-b'\n\toption username 'me'",
      `${FILE}:6: gwb.username: unknown key (expected one of: name, type, server, identity, trustDomain, node, relay, pingInterval, pingTimeout)`,
    ],
    [
      "list src_identity 'spiffe://home.arpa/ns/routers/sa/gw-a'",
      "list src_identity 'spiffe://home.arpa/gw-a'",
      `${FILE}:19: gwa.src_identity[0]: "spiffe://home.arpa/gw-a" is not a SPIFFE id: has no /ns/NAMESPACE/sa/SERVICE-ACCOUNT path`,
    ],
    [
      `list src_node '${NODE.toLowerCase()}'`,
      "list src_node 'gw-a'",
      `${FILE}:19: gwa.src_node[0]: "gw-a" is not a node id (52 base32 characters, not 4)`,
    ],
    [
      "list src_trust_domain 'home.arpa'",
      "list src_trust_domain 'home arpa'",
      `${FILE}:24: others.src_trust_domain[0]: "home arpa" is not a trust domain: it may only hold a-z, 0-9, ".", "-" and "_"`,
    ],
  ]
  for (const [from, to, message] of cases) {
    t.ok(BASE.includes(from), `the case edits BASE: ${from}`)
    t.throws(() => configFromUci(BASE.replace(from, to), FILE), { message }, message)
  }
  // a socks5 upstream still needs its port; identity is not one of its options
  const socks = "config upstream 'vpn'\n\toption type 'socks5'\n\toption server '10.0.0.2'\n"
  t.throws(() => configFromUci(`${BASE}\n${socks}`, FILE), { message: /vpn\.port: missing/ })
  t.throws(() => configFromUci(`${BASE}\n${socks}\toption port '1080'\n\toption identity 'x'\n`, FILE), {
    message: /vpn\.identity: unknown key/,
  })
})

t.test("an hbone listener's keep-alive: ping_interval / ping_timeout", async (t) => {
  const text = "config listener 'hb'\n\toption type 'hbone'\n\toption ping_interval '3'\n\toption ping_timeout '7.5'\n"
  t.match(configFromUci(text, FILE).listeners[0], { pingIntervalMs: 3000, pingTimeoutMs: 7500 })
  t.throws(() => configFromUci(text.replace("'7.5'", "'0'"), FILE), {
    message: `${FILE}:1: hb.ping_timeout: 0 is not a number of seconds from 0.1 to 3600`,
  })
})
