// Reverse tunnels in the config (JSON and uci): the `reverse` entries of a
// gate behind NAT, the hbone listener's `reverse` list (off by default), the
// hbone upstream that names a gate instead of dialing it; every bad value
// named with its path.

import t from 'tap'
import { validateConfig } from '../../src/core/config.js'
import { ConfigError } from '../../src/core/errors.js'
import { configFromUci } from '../../src/core/uci-config.js'

const MESH = { trustDomain: 'mesh.test' }
const GATE = 'spiffe://mesh.test/ns/home/sa/gate-a'
const VPS = 'spiffe://mesh.test/ns/vps/sa/relay'
const NODE = 'NW4QXGYRBDI7NJX5TTQAS44KC52PSDW5MM5QTK3PBCFJXSXQDC6Q'
const local = { name: 'local', type: 'mixed', listen: '127.0.0.1:1080' }
const rev = (over: Record<string, unknown> = {}) => ({ name: 'vps', relay: '192.0.2.1', ...over })

t.test('reverse entries: defaults and overrides', async (t) => {
  const c = validateConfig({ mesh: MESH, listeners: [local], reverse: [rev()] })
  t.same(c.reverse, [
    {
      name: 'vps',
      relay: { host: '192.0.2.1', port: 15008, kind: 'ipv4' },
      relayId: '',
      retryMs: 500,
      retryMaxMs: 30000,
      pingIntervalMs: 10000,
      pingTimeoutMs: 20000,
    },
  ])
  const d = validateConfig({
    mesh: MESH,
    listeners: [local],
    reverse: [
      rev({ relay: 'vps.example.net:443', relayId: VPS, retry: 1, retryMax: 60, pingInterval: 1, pingTimeout: 2 }),
      rev({ name: 'v6', relay: '2001:db8::1' }),
    ],
  })
  t.match(d.reverse[0], {
    relay: { host: 'vps.example.net', port: 443 },
    relayId: VPS,
    retryMs: 1000,
    retryMaxMs: 60000,
    pingIntervalMs: 1000,
    pingTimeoutMs: 2000,
  })
  t.match(d.reverse[1], { relay: { host: '2001:db8::1', port: 15008 } }, 'a bare IPv6: the HBONE port')
  const small = validateConfig({ mesh: MESH, listeners: [local], reverse: [rev({ retry: 5, retryMax: 1 })] })
  t.equal(small.reverse[0]!.retryMaxMs, 5000, 'retryMax never below retry')
  t.same(validateConfig({ listeners: [local] }).reverse, [], 'none by default')
})

t.test('reverse entries: bad values named', async (t) => {
  const bad: Array<[unknown, string, string]> = [
    [[rev({ relay: 'vps.example.net' })], 'reverse[0].relay', ''],
    [[rev({ relayId: 'vps' })], 'reverse[0].relayId', '"vps" is not a SPIFFE id: does not start with "spiffe://"'],
    [[rev({ retry: 0 })], 'reverse[0].retry', ''],
    [[rev({ pingInterval: 0.01 })], 'reverse[0].pingInterval', '0.01 is not a number of seconds from 0.1 to 3600'],
    [[rev({ pingTimeout: 'x' })], 'reverse[0].pingTimeout', '"x" is not a number of seconds from 0.1 to 3600'],
    [
      [rev({ pool: 2 })],
      'reverse[0].pool',
      'unknown key (expected one of: name, relay, relayId, retry, retryMax, pingInterval, pingTimeout)',
    ],
    [[rev(), rev()], 'reverse[1].name', '"vps" is already the name of reverse[0]'],
    [
      [rev({ name: 'local' })],
      'reverse[0].name',
      '"local" is already the name of a listener or sniRelay entry (the rules could not tell them apart)',
    ],
    [[{ relay: '192.0.2.1' }], 'reverse[0].name', ''],
    [{}, 'reverse', ''],
  ]
  for (const [reverse, path, detail] of bad) {
    const e = t.throws(() => validateConfig({ mesh: MESH, listeners: [local], reverse }), ConfigError, path) as unknown
    t.equal((e as ConfigError).path, path, `${JSON.stringify(reverse)}: path`)
    if (detail !== '') t.equal((e as ConfigError).detail, detail, `${path}: detail`)
  }
  t.throws(
    () => validateConfig({ listeners: [local], reverse: [rev()] }),
    new ConfigError('reverse[0]', 'a reverse tunnel requires the "mesh" section (the identity it proves)'),
  )
})

t.test('hbone listener: reverse off by default, exact SPIFFE ids', async (t) => {
  const c = validateConfig({ mesh: MESH, listeners: [{ name: 'mesh', type: 'hbone' }] })
  t.match(c.listeners[0], { type: 'hbone', reverse: [] }, 'off')
  const d = validateConfig({ mesh: MESH, listeners: [{ name: 'mesh', type: 'hbone', reverse: [GATE] }] })
  t.match(d.listeners[0], { reverse: [GATE] })
  t.throws(
    () => validateConfig({ mesh: MESH, listeners: [{ name: 'mesh', type: 'hbone', reverse: ['*'] }] }),
    new ConfigError('listeners[0].reverse[0]', '"*" is not a SPIFFE id: does not start with "spiffe://"'),
    'no wildcard: never an open relay',
  )
  t.throws(
    () => validateConfig({ mesh: MESH, listeners: [{ name: 'mesh', type: 'hbone', reverse: GATE }] }),
    ConfigError,
    'a list',
  )
})

t.test('hbone upstream: a gate named by identity or node, no server needed', async (t) => {
  const up = (u: Record<string, unknown>) =>
    validateConfig({ mesh: MESH, listeners: [local], upstreams: [{ name: 'home', type: 'hbone', ...u }] }).upstreams[0]
  t.match(up({ identity: GATE }), { server: null, identity: GATE, node: '' }, 'identity only')
  t.match(up({ node: NODE }), { server: null, node: NODE }, 'node id only')
  t.match(up({ node: NODE, server: '192.0.2.9' }), { server: { host: '192.0.2.9', port: 15008 }, node: NODE })
  t.throws(() => up({}), new ConfigError('upstreams[0].server', 'missing'), 'neither: a server is required')
  t.throws(
    () => up({ node: 'nw4qxgyrbdi7' }),
    new ConfigError('upstreams[0].node', '"nw4qxgyrbdi7" is not a node id (52 characters A-Z, 2-7)'),
  )
  t.throws(() => up({ node: 7 }), new ConfigError('upstreams[0].node', '7 is not a string'))
})

const UCI_VPS = `
config mesh
	option trust_domain 'mesh.test'

config listener 'mesh'
	option type 'hbone'
	option address '0.0.0.0'
	option port '15008'
	list allow '0.0.0.0/0'
	list reverse '${GATE}'

config listener 'socks'
	option type 'mixed'
	option address '127.0.0.1'
	option port '1080'

config upstream 'home'
	option type 'hbone'
	option identity '${GATE}'

config upstream 'home2'
	option type 'hbone'
	option node '${NODE}'
	option server '192.0.2.7'
	option port '15008'

config rule
	list dst_cidr '192.168.1.0/24'
	option action 'upstream'
	option upstream 'home'
`

const UCI_GATE = `
config mesh
	option trust_domain 'mesh.test'

config listener 'local'
	option type 'mixed'
	option address '127.0.0.1'
	option port '1080'

config reverse 'vps'
	option server 'vps.example.net'
	option relay_id '${VPS}'
	option retry '0.5'
	option retry_max '30'
	option ping_interval '10'
	option ping_timeout '20'

config reverse 'v6'
	option server '2001:db8::1'
	option port '443'

config rule
	list listener 'vps'
	list dst_port '8080'
	option action 'forward'
	option forward '192.168.1.10:8080'
`

t.test('uci: the public gate (hbone listener reverse list, upstreams naming the gate)', async (t) => {
  const c = configFromUci(UCI_VPS, '/etc/config/ugate')
  t.match(c.listeners[0], { type: 'hbone', reverse: [GATE] })
  t.match(c.upstreams[0], { name: 'home', type: 'hbone', server: null, identity: GATE })
  t.match(c.upstreams[1], { name: 'home2', server: { host: '192.0.2.7', port: 15008 }, node: NODE })
})

t.test('uci: the gate behind NAT (reverse sections)', async (t) => {
  const c = configFromUci(UCI_GATE, '/etc/config/ugate')
  t.same(c.reverse, [
    {
      name: 'vps',
      relay: { host: 'vps.example.net', port: 15008, kind: 'name' },
      relayId: VPS,
      retryMs: 500,
      retryMaxMs: 30000,
      pingIntervalMs: 10000,
      pingTimeoutMs: 20000,
    },
    {
      name: 'v6',
      relay: { host: '2001:db8::1', port: 443, kind: 'ipv6' },
      relayId: '',
      retryMs: 500,
      retryMaxMs: 30000,
      pingIntervalMs: 10000,
      pingTimeoutMs: 20000,
    },
  ])
  t.throws(
    () => configFromUci(`${UCI_GATE}\nconfig reverse 'x'\n\toption port '1'\n`, '/etc/config/ugate'),
    /ugate:28: x.server: missing/,
    'server is required',
  )
  t.throws(
    () => configFromUci(`${UCI_GATE}\nconfig reverse 'y'\n\toption server '192.0.2.1'\n\toption pool '2'\n`, 'f'),
    /pool/,
    'an unknown option is named',
  )
  t.throws(
    () => configFromUci(UCI_GATE.replace("option retry '0.5'", "option retry 'soon'"), '/etc/config/ugate'),
    /retry/,
    'a bad value is named',
  )
})
