// /etc/config/ugate → Config for relay over SNI: the mesh section, a park
// listener with grants, an sni listener pairing with it, and a sni_relay.

import t from 'tap'
import { configFromUci } from '../../src/core/uci-config.js'

const RELAY = `
config mesh 'mesh'
	option identity_dir '/etc/ugate/identity'
	option trust_domain 'mesh.test'

config listener 'park'
	option type 'park'
	option address '0.0.0.0'
	option port '15009'
	list allow '0.0.0.0/0'
	list grant 'spiffe://mesh.test/ns/home/sa/gate-a app.home.test *.a.home.test'
	option max_parked '32'

config listener 'tls'
	option type 'sni'
	option address '0.0.0.0'
	option port '443'
	list allow '0.0.0.0/0'
	option pair 'park'
	option pair_timeout '2'
	option max_waiting '128'
`

const GATE = `
config listener 'local'
	option type 'mixed'
	option address '127.0.0.1'
	option port '1080'

config sni_relay 'vps'
	option server 'vps.example.net'
	option port '15009'
	option relay_id 'spiffe://mesh.test/ns/vps/sa/relay'
	list names 'app.home.test'
	option pool '2'
	option max_pool '8'
	option retry '1'
	option retry_max '60'

config rule 'app'
	list domain 'app.home.test'
	list listener 'vps'
	option action 'forward'
	option forward '192.168.1.10:443'

config mesh
	option trust_domain 'mesh.test'
`

t.test('relay side: mesh, park listener with grants, sni listener with pair', async (t) => {
  const c = configFromUci(RELAY, '/etc/config/ugate')
  t.match(c.mesh, { identityDir: '/etc/ugate/identity', trustDomain: 'mesh.test', key: '/etc/ugate/identity/key.pem' })
  t.match(c.listeners[0], {
    type: 'park',
    maxParked: 32,
    grants: { 'spiffe://mesh.test/ns/home/sa/gate-a': ['app.home.test', '*.a.home.test'] },
  })
  t.match(c.listeners[1], { type: 'sni', pair: 'park', pairTimeoutMs: 2000, maxWaiting: 128 })
})

t.test('gate side: sni_relay section', async (t) => {
  const c = configFromUci(GATE, '/etc/config/ugate')
  t.same(c.sniRelay, [
    {
      name: 'vps',
      relay: { host: 'vps.example.net', port: 15009, kind: 'name' },
      relayId: 'spiffe://mesh.test/ns/vps/sa/relay',
      names: ['app.home.test'],
      pool: 2,
      maxPool: 8,
      retryMs: 1000,
      retryMaxMs: 60000,
    },
  ])
})

t.test('bad options name the file, line and uci option', async (t) => {
  const cases: Array<[string, string, string]> = [
    [GATE, "option pool '2'", '/etc/config/ugate:7: vps.pool: 0 is not an integer 1-64'],
    [GATE, "option server 'vps.example.net'", '/etc/config/ugate:7: vps.server: missing'],
    [RELAY, "list grant 'spiffe", '/etc/config/ugate:6: park.grant[0]: "x" is not "SPIFFE-ID NAME..."'],
    [RELAY, "option pair 'park'", '/etc/config/ugate:14: tls.pair: "nope" is not a park listener (known: park)'],
    [
      RELAY,
      "option trust_domain 'mesh.test'",
      '/etc/config/ugate:2: mesh.trust_domain: "Mesh" may only hold a-z, 0-9, ".", "-" and "_"',
    ],
    [
      GATE,
      'config mesh\n',
      '/etc/config/ugate:7: vps: relay over SNI requires the "mesh" section (the identity it proves)',
    ],
  ]
  const replace: Record<string, string> = {
    'config mesh\n': '#',
    "option pool '2'": "option pool '0'",
    "option server 'vps.example.net'": '',
    "list grant 'spiffe": "list grant 'x'\n#",
    "option pair 'park'": "option pair 'nope'",
    "option trust_domain 'mesh.test'": "option trust_domain 'Mesh'",
  }
  for (const [base, from, message] of cases) {
    t.throws(() => configFromUci(base.replace(from, replace[from]!), '/etc/config/ugate'), { message }, message)
  }
})
