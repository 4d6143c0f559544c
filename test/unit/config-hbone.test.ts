// The hbone listener and the hbone upstream in the config: defaults, and
// every bad value named with its path.

import t from 'tap'
import { validateConfig } from '../../src/core/config.js'
import { ConfigError } from '../../src/core/errors.js'

const fwd = { name: 'f', type: 'forward', listen: '127.0.0.1:1000', target: '127.0.0.1:2000' }
const up = (over: Record<string, unknown> = {}) => ({ name: 'peer', type: 'hbone', server: '10.0.0.2:15008', ...over })

t.test('hbone listener', async (t) => {
  const c = validateConfig({ listeners: [{ name: 'mesh', type: 'hbone' }] })
  t.match(c.listeners[0], { type: 'hbone', listen: { host: '::', port: 15008 }, peers: [] }, 'default: [::]:15008')
  t.match(c.listeners[0], { pingIntervalMs: 10_000, pingTimeoutMs: 20_000 }, "keep-alive: ztunnel's 10 s / 20 s")
  const p = validateConfig({ listeners: [{ name: 'mesh', type: 'hbone', pingInterval: 0.5, pingTimeout: 1 }] })
  t.match(p.listeners[0], { pingIntervalMs: 500, pingTimeoutMs: 1000 }, 'pingInterval, pingTimeout in seconds')
  t.throws(
    () => validateConfig({ listeners: [{ name: 'mesh', type: 'hbone', pingTimeout: 0.05 }] }),
    new ConfigError('listeners[0].pingTimeout', '0.05 is not a number of seconds from 0.1 to 3600'),
  )
  const d = validateConfig({
    listeners: [{ name: 'mesh', type: 'hbone', listen: '127.0.0.1:0', peers: ['spiffe://td/ns/a/sa/b'] }],
  })
  t.match(d.listeners[0], { listen: { host: '127.0.0.1', port: 0 }, peers: ['spiffe://td/ns/a/sa/b'] })
  t.throws(
    () => validateConfig({ listeners: [{ name: 'mesh', type: 'hbone', peers: ['td/ns/a'] }] }),
    new ConfigError('listeners[0].peers[0]', '"td/ns/a" is not a SPIFFE id: does not start with "spiffe://"'),
  )
})

t.test('hbone upstream', async (t) => {
  const c = validateConfig({ listeners: [fwd], upstreams: [up({ server: '10.0.0.2' })] })
  t.match(
    c.upstreams[0],
    {
      name: 'peer',
      type: 'hbone',
      server: { host: '10.0.0.2', port: 15008 },
      identity: '',
      trustDomain: '',
      pingIntervalMs: 10_000,
      pingTimeoutMs: 20_000,
    },
    "a bare IP: the HBONE port; ztunnel's PING timing",
  )
  t.match(validateConfig({ listeners: [fwd], upstreams: [up({ server: '10.0.0.3', relay: true })] }).upstreams[0], {
    relay: true,
  })
  t.throws(
    () =>
      validateConfig({ listeners: [fwd], upstreams: [up({ server: undefined, node: 'A'.repeat(52), relay: true })] }),
    new ConfigError('upstreams[0].relay', 'a relay needs a server (its streams are dialed, not on a reverse tunnel)'),
  )
  t.throws(
    () => validateConfig({ listeners: [fwd], upstreams: [up({ server: '10.0.0.3', relay: 'yes' })] }),
    new ConfigError('upstreams[0].relay', '"yes" is not true or false'),
  )
  const ping = validateConfig({ listeners: [fwd], upstreams: [up({ pingInterval: 0.5, pingTimeout: 1 })] })
  t.match(ping.upstreams[0], { pingIntervalMs: 500, pingTimeoutMs: 1000 }, 'pingInterval, pingTimeout in seconds')
  const v6 = validateConfig({
    listeners: [fwd],
    upstreams: [up({ server: 'fd00::2', identity: 'spiffe://td/ns/a/sa/b', trustDomain: 'td' })],
  })
  t.match(v6.upstreams[0], { server: { host: 'fd00::2', port: 15008 }, identity: 'spiffe://td/ns/a/sa/b' })
  const bad: Array<[Record<string, unknown>, string, string]> = [
    [
      up({ server: 'peer.example:15008' }),
      'upstreams[0].server',
      '"peer.example:15008" is not an IP address: an hbone peer is given as IP or IP:PORT',
    ],
    [up({ identity: 'nope' }), 'upstreams[0].identity', '"nope" is not a SPIFFE id: does not start with "spiffe://"'],
    [
      up({ trustDomain: 'Bad Domain' }),
      'upstreams[0].trustDomain',
      '"Bad Domain" may only hold a-z, 0-9, ".", "-" and "_"',
    ],
    [
      up({ identity: 'spiffe://other/ns/a/sa/b', trustDomain: 'td' }),
      'upstreams[0].identity',
      '"spiffe://other/ns/a/sa/b" is not in trustDomain "td"',
    ],
    [
      up({ username: 'u' }),
      'upstreams[0].username',
      'unknown key (expected one of: name, type, server, identity, trustDomain, node, relay, pingInterval, pingTimeout)',
    ],
    [up({ pingInterval: 0 }), 'upstreams[0].pingInterval', '0 is not a number of seconds from 0.1 to 3600'],
    [up({ pingInterval: '5' }), 'upstreams[0].pingInterval', '"5" is not a number of seconds from 0.1 to 3600'],
    [up({ pingTimeout: 7200 }), 'upstreams[0].pingTimeout', '7200 is not a number of seconds from 0.1 to 3600'],
    [up({ pingTimeout: -1 }), 'upstreams[0].pingTimeout', '-1 is not a number of seconds from 0.1 to 3600'],
  ]
  for (const [u, path, detail] of bad)
    t.throws(() => validateConfig({ listeners: [fwd], upstreams: [u] }), new ConfigError(path, detail), path)
  t.throws(
    () => validateConfig({ listeners: [fwd], upstreams: [{ name: 'x', type: 'quic', server: '1.2.3.4:1' }] }),
    new ConfigError('upstreams[0].type', '"quic" is not "socks5", "http" or "hbone"'),
  )
})

t.test('rules on the mesh peer: srcIdentity, srcTrustDomain, srcNode', async (t) => {
  const node = '7'.repeat(51) + 'Q'
  const c = validateConfig({
    listeners: [{ name: 'mesh', type: 'hbone' }],
    rules: [
      { srcIdentity: ['spiffe://td/ns/a/sa/b'], action: 'direct' },
      { srcTrustDomain: ['td'], srcNode: [node.toLowerCase()], action: 'reject' },
    ],
  })
  t.same(
    c.rules.map((r) => [r.srcIdentity, r.srcTrustDomain, r.srcNode]),
    [
      [['spiffe://td/ns/a/sa/b'], undefined, undefined],
      [undefined, ['td'], [node.toLowerCase()]],
    ],
    'kept as written (the engine upper-cases node ids)',
  )
  const bad: Array<[Record<string, unknown>, string, string]> = [
    [
      { srcIdentity: ['spiffe://td/ns/a'], action: 'direct' },
      'rules[0].srcIdentity[0]',
      '"spiffe://td/ns/a" is not a SPIFFE id: has no /ns/NAMESPACE/sa/SERVICE-ACCOUNT path',
    ],
    [
      { srcTrustDomain: ['td', 'a b'], action: 'direct' },
      'rules[0].srcTrustDomain[1]',
      '"a b" is not a trust domain: it may only hold a-z, 0-9, ".", "-" and "_"',
    ],
    [
      { srcNode: [node.slice(1)], action: 'direct' },
      'rules[0].srcNode[0]',
      `"${node.slice(1)}" is not a node id (52 base32 characters, not 51)`,
    ],
    [{ srcNode: 'x', action: 'direct' }, 'rules[0].srcNode', 'must be an array, not "x"'],
  ]
  for (const [rule, path, detail] of bad)
    t.throws(
      () => validateConfig({ listeners: [{ name: 'mesh', type: 'hbone' }], rules: [rule] }),
      { message: `${path}: ${detail}` },
      path,
    )
})

t.test('a forward listener through an upstream', async (t) => {
  const direct = validateConfig({ listeners: [fwd] })
  t.match(direct.listeners[0], { type: 'forward', upstream: '' }, 'no upstream: dialed directly')
  const c = validateConfig({ listeners: [{ ...fwd, upstream: 'peer' }], upstreams: [up()] })
  t.match(c.listeners[0], { type: 'forward', target: { host: '127.0.0.1', port: 2000 }, upstream: 'peer' })
  t.throws(
    () => validateConfig({ listeners: [{ ...fwd, upstream: 'gw-b' }], upstreams: [up()] }),
    new ConfigError('listeners[0].upstream', 'upstream "gw-b" is not in upstreams (known: peer)'),
    'an unknown name is refused, with the names there are',
  )
  t.throws(
    () => validateConfig({ listeners: [{ ...fwd, upstream: 'peer' }] }),
    new ConfigError('listeners[0].upstream', 'upstream "peer" is not in upstreams (known: none configured)'),
  )
  t.throws(
    () => validateConfig({ listeners: [{ ...fwd, upstream: 'upstream:peer' }], upstreams: [up()] }),
    new ConfigError('listeners[0].upstream', '"upstream:peer" is not a name of 1-64 letters, digits, "_" or "-"'),
    "the name alone, not a rule's action",
  )
  t.throws(
    () => validateConfig({ listeners: [{ ...fwd, upstream: 7 }], upstreams: [up()] }),
    new ConfigError('listeners[0].upstream', '7 is not a name of 1-64 letters, digits, "_" or "-"'),
  )
  t.throws(
    () => validateConfig({ listeners: [{ name: 's', type: 'socks', listen: '127.0.0.1:1', upstream: 'peer' }] }),
    /listeners\[0\]\.upstream: unknown key/,
    'only forward listeners have one (the others route by rules)',
  )
})
