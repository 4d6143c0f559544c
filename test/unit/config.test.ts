import t from 'tap'
import { formatEndpoint } from '../../src/core/address.js'
import {
  type Config,
  type DnsListenerConfig,
  type TproxyListenerConfig,
  captureOptions,
  captureTcpTproxy,
  formatDnsServer,
  parseConfigText,
  validateConfig,
} from '../../src/core/config.js'
import { ConfigError } from '../../src/core/errors.js'
import { configFromUci } from '../../src/core/uci-config.js'

const fwd = (over: Record<string, unknown> = {}) => ({
  name: 'iperf',
  type: 'forward',
  listen: '127.0.0.1:6000',
  target: '127.0.0.1:5201',
  ...over,
})

t.test('full example from the docs', async (t) => {
  const config = validateConfig({
    log: { level: 'debug' },
    relay: { splice: false, idleTimeout: 60, shutdownGrace: 2.5 },
    dial: { connectTimeout: 3, mark: 255 },
    listeners: [fwd({ backlog: 128 })],
  })
  const want: Config = {
    log: { level: 'debug', syslog: '' },
    relay: { splice: false, idleTimeoutMs: 60000, shutdownGraceMs: 2500 },
    dial: { connectTimeoutMs: 3000, mark: 255 },
    limits: { maxConnections: 1024, maxPerSource: 256, handshakeTimeoutMs: 10000 },
    sniff: { maxBytes: 16384, timeoutMs: 300 },
    admin: { socket: '', listen: null, secret: '' },
    ubus: { socket: '' },
    listeners: [
      {
        name: 'iperf',
        type: 'forward',
        listen: { host: '127.0.0.1', port: 6000, kind: 'ipv4' },
        target: { host: '127.0.0.1', port: 5201, kind: 'ipv4' },
        upstream: '',
        backlog: 128,
        allow: ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
      },
    ],
    upstreams: [],
    rules: [],
    capture: {
      enabled: false,
      listener: '',
      udp: false,
      udpListener: '',
      tproxyMark: 0x7567,
      tproxyTable: 0x7567,
      lanInterfaces: ['br-lan'],
      routerSelf: false,
      ipv6: true,
      ports: [80, 443],
      bypass: [],
      includeSrc: [],
      excludeSrc: [],
      includeMac: [],
      excludeMac: [],
      dns: false,
      dnsListener: '',
    },
    mesh: null,
    sniRelay: [],
    reverse: [],
  }
  t.same(config, want)
})

t.test('defaults are filled in', async (t) => {
  const config = validateConfig({ listeners: [fwd()] })
  t.same(config.log, { level: 'info', syslog: '' })
  t.same(config.relay, { splice: true, idleTimeoutMs: 900000, shutdownGraceMs: 5000 })
  t.same(config.dial, { connectTimeoutMs: 10000, mark: 0 })
  t.equal(config.listeners[0]!.backlog, 511)
})

t.test('good variants', async (t) => {
  const ok = (raw: unknown) => t.doesNotThrow(() => validateConfig(raw), JSON.stringify(raw))
  ok({ relay: { idleTimeout: 0, shutdownGrace: 0 }, listeners: [fwd()] })
  ok({ dial: { mark: 4294967295 }, listeners: [fwd()] })
  ok({ listeners: [fwd({ listen: '[::1]:6000', target: '[::1]:5201' })] })
  ok({ listeners: [fwd({ listen: '127.0.0.1:0' }), fwd({ name: 'b', listen: '127.0.0.1:0' })] })
  ok({ listeners: [fwd({ target: 'localhost:80' })] })
  ok({ listeners: [fwd({ name: 'A_b-9' })] })
  ok({ listeners: [fwd({ listen: '0.0.0.0:6000' }), fwd({ name: 'v6', listen: '[::1]:6000' })] })
})

t.test('bad configs name the path and the value', async (t) => {
  const cases: Array<[unknown, string]> = [
    [null, 'config: expected an object, got null'],
    [[], 'config: expected an object, got []'],
    [
      { listeners: [fwd()], foo: 1 },
      'foo: unknown key (expected one of: log, relay, dial, limits, sniff, admin, ubus, listeners, upstreams, rules, capture, mesh, sniRelay, reverse)',
    ],
    [{ listeners: [fwd()], log: 'info' }, 'log: expected an object, got "info"'],
    [{ listeners: [fwd()], log: { level: 'verbose' } }, 'log.level: "verbose" is not one of error, warn, info, debug'],
    [{ listeners: [fwd()], log: { lvl: 'info' } }, 'log.lvl: unknown key (expected one of: level, syslog)'],
    [{ listeners: [fwd()], relay: { splice: 'yes' } }, 'relay.splice: "yes" is not true or false'],
    [{ listeners: [fwd()], relay: { splice: null } }, 'relay.splice: null is not true or false'],
    [
      { listeners: [fwd()], relay: { idleTimeout: -1 } },
      'relay.idleTimeout: -1 is not a number of seconds from 0 to 2147483 (0 = never)',
    ],
    [
      { listeners: [fwd()], relay: { idleTimeout: '900' } },
      'relay.idleTimeout: "900" is not a number of seconds from 0 to 2147483 (0 = never)',
    ],
    [
      { listeners: [fwd()], relay: { shutdownGrace: 3601 } },
      'relay.shutdownGrace: 3601 is not a number of seconds from 0 to 3600',
    ],
    [
      { listeners: [fwd()], relay: { idle: 1 } },
      'relay.idle: unknown key (expected one of: splice, idleTimeout, shutdownGrace)',
    ],
    [
      { listeners: [fwd()], dial: { connectTimeout: 0 } },
      'dial.connectTimeout: 0 is not a number of seconds from 0.001 to 3600',
    ],
    [{ listeners: [fwd()], dial: { mark: -1 } }, 'dial.mark: -1 is not an integer 0-4294967295'],
    [{ listeners: [fwd()], dial: { mark: 1.5 } }, 'dial.mark: 1.5 is not an integer 0-4294967295'],
    [{ listeners: [fwd()], dial: { mark: '0x10' } }, 'dial.mark: "0x10" is not an integer 0-4294967295'],
    [{}, 'listeners: missing (at least one listener is required)'],
    [{ listeners: [] }, 'listeners: at least one listener is required'],
    [{ listeners: {} }, 'listeners: expected an array, got {}'],
    [{ listeners: ['x'] }, 'listeners[0]: expected an object, got "x"'],
    [
      { listeners: [fwd({ type: undefined })] },
      'listeners[0].type: missing (known: forward, socks, http, mixed, redirect, tproxy, sni, park, hbone, dns)',
    ],
    [
      { listeners: [fwd({ type: 'udp' })] },
      'listeners[0].type: "udp" is not a listener type (known: forward, socks, http, mixed, redirect, tproxy, sni, park, hbone, dns)',
    ],
    [{ listeners: [fwd({ name: undefined })] }, 'listeners[0].name: missing'],
    // relay over SNI
    [{ listeners: [fwd()], sniRelay: [{ name: 'vps' }] }, 'sniRelay[0].relay: missing'],
    [
      { listeners: [fwd()], sniRelay: [{ name: 'vps', relay: 'vps.test:15009', pool: 0 }] },
      'sniRelay[0].pool: 0 is not an integer 1-64',
    ],
    [
      { listeners: [fwd()], sniRelay: [{ name: 'vps', relay: 'vps.test:15009', pool: 4, maxPool: 2 }] },
      'sniRelay[0].maxPool: 2 is not an integer 4-1024',
    ],
    [
      { listeners: [fwd()], sniRelay: [{ name: 'vps', relay: 'vps.test:15009', relayId: 'spiffe://td/x' }] },
      'sniRelay[0].relayId: "spiffe://td/x" is not a SPIFFE id: has no /ns/NAMESPACE/sa/SERVICE-ACCOUNT path',
    ],
    [
      { listeners: [fwd()], sniRelay: [{ name: 'vps', relay: 'vps.test:15009', names: ['a b.test'] }] },
      'sniRelay[0].names[0]: "a b.test" is not a host name: bad character 0x20 at 1',
    ],
    [
      { listeners: [fwd()], sniRelay: [{ name: 'iperf', relay: 'vps.test:15009' }] },
      'sniRelay[0].name: "iperf" is already the name of a listener (the rules could not tell them apart)',
    ],
    [
      { listeners: [fwd()], sniRelay: [{ name: 'vps', relay: 'vps.test:15009', retry: 0 }] },
      'sniRelay[0].retry: 0 is not a number of seconds from 0.01 to 3600',
    ],
    [
      { listeners: [fwd()], mesh: { trustDomain: 'Bad' } },
      'mesh.trustDomain: "Bad" may only hold a-z, 0-9, ".", "-" and "_"',
    ],
    [{ listeners: [fwd()], mesh: { identityDir: 'rel' } }, 'mesh.identityDir: "rel" is not an absolute file path'],
    [
      { listeners: [{ name: 'p', type: 'park', listen: '0.0.0.0:1' }] },
      'listeners[0]: a park listener requires the "mesh" section (the identity it proves)',
    ],
    [
      { listeners: [fwd()], sniRelay: [{ name: 'vps', relay: 'vps.test:15009' }] },
      'sniRelay[0]: relay over SNI requires the "mesh" section (the identity it proves)',
    ],
    [
      { listeners: [{ name: 's', type: 'sni', listen: '0.0.0.0:443', pair: 'nope' }] },
      'listeners[0].pair: "nope" is not a park listener (known: none configured)',
    ],
    [
      { listeners: [{ name: 's', type: 'sni', listen: '0.0.0.0:443', pair: 'p', pairTimeout: 61 }] },
      'listeners[0].pairTimeout: 61 is not a number of seconds from 0.001 to 60',
    ],
    [
      { listeners: [{ name: 'p', type: 'park', listen: '0.0.0.0:1', grants: { 'spiffe://td/ns/a/sa/b': ['*.'] } }] },
      'listeners[0].grants.spiffe://td/ns/a/sa/b[0]: "*." is not a host name or *.suffix: empty name',
    ],
    [
      { listeners: [{ name: 'p', type: 'park', listen: '0.0.0.0:1', grants: { 'x.test': [] } }] },
      'listeners[0].grants.x.test: "x.test" is not a SPIFFE id: does not start with "spiffe://"',
    ],
    [
      { listeners: [fwd({ name: 'a b' })] },
      'listeners[0].name: "a b" is not a name of 1-64 letters, digits, "_" or "-"',
    ],
    [{ listeners: [fwd({ name: '' })] }, 'listeners[0].name: "" is not a name of 1-64 letters, digits, "_" or "-"'],
    [{ listeners: [fwd({ name: 7 })] }, 'listeners[0].name: 7 is not a name of 1-64 letters, digits, "_" or "-"'],
    [
      { listeners: [fwd({ extra: true })] },
      'listeners[0].extra: unknown key (expected one of: name, type, listen, backlog, allow, target, upstream)',
    ],
    [{ listeners: [fwd({ listen: undefined })] }, 'listeners[0].listen: missing'],
    [{ listeners: [fwd({ listen: 6000 })] }, 'listeners[0].listen: 6000 is not a string "IP:PORT"'],
    [
      { listeners: [fwd({ listen: 'localhost:6000' })] },
      'listeners[0].listen: "localhost:6000" is not a listen address (host "localhost" must be an IP address, e.g. 0.0.0.0 or [::])',
    ],
    [{ listeners: [fwd({ target: undefined })] }, 'listeners[0].target: missing'],
    [{ listeners: [fwd({ target: 5201 })] }, 'listeners[0].target: 5201 is not a string "HOST:PORT"'],
    [
      { listeners: [fwd({ target: '127.0.0.1:x' })] },
      'listeners[0].target: "127.0.0.1:x" is not HOST:PORT (port "x" is not a number 1-65535)',
    ],
    [
      { listeners: [fwd({ target: '127.0.0.1:0' })] },
      'listeners[0].target: "127.0.0.1:0" is not HOST:PORT (port "0" is not a number 1-65535)',
    ],
    [{ listeners: [fwd({ backlog: 0 })] }, 'listeners[0].backlog: 0 is not an integer 1-65535'],
    [
      { listeners: [fwd(), fwd({ listen: '127.0.0.1:6001' })] },
      'listeners[1].name: "iperf" is already the name of listeners[0]',
    ],
    [
      { listeners: [fwd(), fwd({ name: 'b' })] },
      'listeners[1].listen: "127.0.0.1:6000" is already used by listeners[0] ("iperf", 127.0.0.1:6000)',
    ],
    [
      { listeners: [fwd({ listen: '0.0.0.0:6000' }), fwd({ name: 'v6', listen: '[::]:6000' })] },
      'listeners[1].listen: "[::]:6000" is already used by listeners[0] ("iperf", 0.0.0.0:6000)',
    ],
    [
      { listeners: [fwd(), fwd({ name: 'b', listen: '0.0.0.0:6000' })] },
      'listeners[1].listen: "0.0.0.0:6000" is already used by listeners[0] ("iperf", 127.0.0.1:6000)',
    ],
  ]
  for (const [raw, message] of cases) {
    t.throws(() => validateConfig(raw), { name: 'ConfigError', message }, message)
  }
})

t.test('dns listener and capture.dns', async (t) => {
  const dns = (extra: Record<string, unknown> = {}) => ({
    name: 'dns',
    type: 'dns',
    listen: '[::]:5353',
    servers: ['9.9.9.9', '[2620:fe::fe]:5353', '127.0.0.1:53', '[2620:fe::9]'],
    ...extra,
  })
  const redirect = { name: 'cap', type: 'redirect', listen: '[::]:15080' }
  const c = validateConfig({
    listeners: [redirect, dns({ hosts: { 'nas.lan': ['192.168.1.5'] }, rejectAddresses: ['0.0.0.0'] })],
    capture: { enabled: true, listener: 'cap', dns: true, dnsListener: 'dns' },
  })
  t.same(c.listeners[1], {
    name: 'dns',
    type: 'dns',
    listen: { host: '::', port: 5353, kind: 'ipv6' },
    backlog: 511,
    allow: ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
    servers: [
      { transport: 'udp', endpoint: { host: '9.9.9.9', port: 53, kind: 'ipv4' }, tlsName: '' },
      { transport: 'udp', endpoint: { host: '2620:fe::fe', port: 5353, kind: 'ipv6' }, tlsName: '' },
      { transport: 'udp', endpoint: { host: '127.0.0.1', port: 53, kind: 'ipv4' }, tlsName: '' },
      { transport: 'udp', endpoint: { host: '2620:fe::9', port: 53, kind: 'ipv6' }, tlsName: '' },
    ],
    hosts: { 'nas.lan': ['192.168.1.5'] },
    rejectAddresses: ['0.0.0.0'],
    timeoutMs: 2000,
    cacheSize: 4096,
    caBundle: '/etc/ssl/certs/ca-certificates.crt',
  })
  const dot = validateConfig({
    listeners: [
      dns({
        servers: [
          'tls://9.9.9.9',
          'tls://Dns.Quad9.net.@9.9.9.9',
          'tls://dns.quad9.net@[2620:fe::fe]:8853',
          'tls://2620:fe::9',
          'tls://1.1.1.1@1.1.1.1:853',
          'tls://dns.quad9.net@[2620:fe::fe]',
        ],
        caBundle: '/etc/ugate/ca.pem',
      }),
    ],
  }).listeners[0] as DnsListenerConfig
  t.same(
    dot.servers.map((s) => [s.transport, formatEndpoint(s.endpoint), s.tlsName]),
    [
      ['tls', '9.9.9.9:853', ''],
      ['tls', '9.9.9.9:853', 'dns.quad9.net'],
      ['tls', '[2620:fe::fe]:8853', 'dns.quad9.net'],
      ['tls', '[2620:fe::9]:853', ''],
      ['tls', '1.1.1.1:853', '1.1.1.1'],
      ['tls', '[2620:fe::fe]:853', 'dns.quad9.net'],
    ],
    'tls:// resolvers: port 853 by default (a bracketed IPv6 too), the name lower-cased without its root dot',
  )
  t.same(
    dot.servers.map(formatDnsServer),
    [
      'tls://9.9.9.9:853',
      'tls://dns.quad9.net@9.9.9.9:853',
      'tls://dns.quad9.net@[2620:fe::fe]:8853',
      'tls://[2620:fe::9]:853',
      'tls://1.1.1.1@1.1.1.1:853',
      'tls://dns.quad9.net@[2620:fe::fe]:853',
    ],
    'formatDnsServer writes them back',
  )
  t.equal(dot.caBundle, '/etc/ugate/ca.pem')
  t.match(c.capture, { dns: true, dnsListener: 'dns' })
  const bad: Array<[unknown, string]> = [
    [{ listeners: [dns({ servers: undefined })] }, 'listeners[0].servers: missing'],
    [{ listeners: [dns({ servers: [] })] }, 'listeners[0].servers: at least one upstream resolver is required'],
    [
      { listeners: [dns({ servers: ['dns.google:53'] })] },
      'listeners[0].servers[0]: "dns.google:53" is not an IP address (a resolver is named by its address; DNS over TLS: "tls://[NAME@]IP[:PORT]")',
    ],
    [
      { listeners: [dns({ servers: ['tls://dns.quad9.net'] })] },
      'listeners[0].servers[0]: "tls://dns.quad9.net": "dns.quad9.net" is not an IP address (a resolver is named by its address; a name to verify goes before "@")',
    ],
    [
      { listeners: [dns({ servers: ['tls://dns quad9@9.9.9.9'] })] },
      'listeners[0].servers[0]: "tls://dns quad9@9.9.9.9": "dns quad9" is not a host name (bad character 0x20 at 3)',
    ],
    [
      { listeners: [dns({ servers: ['tls://@9.9.9.9'] })] },
      'listeners[0].servers[0]: "tls://@9.9.9.9": "" is not a host name (empty name)',
    ],
    [
      { listeners: [dns({ servers: ['tls://9.9.9.9:99999'] })] },
      'listeners[0].servers[0]: "tls://9.9.9.9:99999": "9.9.9.9:99999" is not HOST:PORT (port "99999" is not a number 1-65535)',
    ],

    [
      { listeners: [dns({ servers: ['[9.9.9.9]'] })] },
      'listeners[0].servers[0]: "[9.9.9.9]" is not an IP address (a resolver is named by its address; DNS over TLS: "tls://[NAME@]IP[:PORT]")',
    ],
    [
      { listeners: [dns({ servers: [53] })] },
      'listeners[0].servers[0]: 53 is not a string "IP[:PORT]" or "tls://[NAME@]IP[:PORT]"',
    ],
    [{ listeners: [dns({ caBundle: 'ca.pem' })] }, 'listeners[0].caBundle: "ca.pem" is not an absolute file path'],
    [
      { listeners: [dns({ hosts: { 'a b': ['1.2.3.4'] } })] },
      'listeners[0].hosts.a b: "a b" is not a host name: bad character 0x20 at 1',
    ],
    [{ listeners: [dns({ hosts: { nas: ['nas'] } })] }, 'listeners[0].hosts.nas[0]: "nas" is not an IP address'],
    [{ listeners: [dns({ hosts: { nas: [] } })] }, 'listeners[0].hosts.nas: no addresses'],
    [{ listeners: [dns({ rejectAddresses: ['x'] })] }, 'listeners[0].rejectAddresses[0]: "x" is not an IP address'],
    [{ listeners: [dns({ timeout: 0 })] }, 'listeners[0].timeout: 0 is not a number of seconds from 0.001 to 60'],
    [{ listeners: [dns({ cacheSize: -1 })] }, 'listeners[0].cacheSize: -1 is not an integer 0-1000000'],
    [
      { listeners: [redirect, dns()], capture: { enabled: true, listener: 'cap', dns: true } },
      'capture.dnsListener: missing: name the dns listener that captured queries go to',
    ],
    [
      { listeners: [redirect, dns()], capture: { enabled: true, listener: 'cap', dns: true, dnsListener: 'cap' } },
      'capture.dnsListener: "cap" is a redirect listener, not a dns listener',
    ],
    [
      {
        listeners: [redirect, dns({ listen: '127.0.0.1:5353' })],
        capture: { enabled: true, listener: 'cap', dns: true, dnsListener: 'dns' },
      },
      'capture.dnsListener: "dns" listens on 127.0.0.1:5353: a dns listener for capture must listen on [::]:PORT (both families) or 0.0.0.0:PORT',
    ],
    [
      {
        listeners: [redirect, dns({ listen: '0.0.0.0:5353' })],
        capture: { enabled: true, listener: 'cap', dns: true, dnsListener: 'dns' },
      },
      'capture.ipv6: is true but "dns" listens on 0.0.0.0:5353 (IPv4 only): listen on [::]:5353 to capture both families, or set capture.ipv6 to false',
    ],
    [{ listeners: [redirect], capture: { dns: 'yes' } }, 'capture.dns: "yes" is not true or false'],
  ]
  for (const [raw, message] of bad) t.throws(() => validateConfig(raw), { name: 'ConfigError', message }, message)
})

t.test('ConfigError carries path and detail', async (t) => {
  try {
    validateConfig({ listeners: [fwd({ target: 'x' })] })
    t.fail('should throw')
  } catch (e) {
    t.type(e, ConfigError)
    const err = e as ConfigError
    t.equal(err.path, 'listeners[0].target')
    t.equal(err.detail, '"x" is not HOST:PORT (missing ":PORT")')
  }
})

t.test('parseConfigText', async (t) => {
  t.same(parseConfigText('{"a":1}', 'f.json'), { a: 1 })
  t.same(parseConfigText('\uFEFF{"a":1}', 'f.json'), { a: 1 }, 'BOM is skipped')
  t.throws(() => parseConfigText('{"a":', '/etc/ugate.json'), {
    name: 'ConfigError',
    path: '/etc/ugate.json',
    message: /^\/etc\/ugate\.json: invalid JSON: /,
  })
})

t.test('long bad values are cut short', async (t) => {
  t.throws(() => validateConfig({ listeners: [fwd({ name: 'x'.repeat(200) })] }), {
    message: `listeners[0].name: "${'x'.repeat(76)}... is not a name of 1-64 letters, digits, "_" or "-"`,
  })
})

const redirect = { name: 'cap', type: 'redirect', listen: '[::]:15001' }
const tproxy = (over: Record<string, unknown> = {}) => ({ name: 'u', type: 'tproxy', listen: '[::]:15002', ...over })
const udpCapture = (over: Record<string, unknown> = {}) => ({
  enabled: true,
  listener: 'cap',
  udp: true,
  udpListener: 'u',
  ...over,
})

t.test('tproxy listener and UDP capture', async (t) => {
  const c = validateConfig({
    listeners: [redirect, tproxy({ udpIdleTimeout: 30, maxFlows: 100 })],
    capture: udpCapture(),
  })
  t.match(c.listeners[1], {
    type: 'tproxy',
    networks: ['udp'],
    udpIdleTimeoutMs: 30000,
    udpDnsIdleTimeoutMs: 10000,
    maxFlows: 100,
  })
  t.match(c.capture, { udp: true, udpListener: 'u', tproxyMark: 0x7567, tproxyTable: 0x7567 })
  const d = validateConfig({ listeners: [tproxy()] })
  t.match(d.listeners[0], { udpIdleTimeoutMs: 60000, maxFlows: 4096 }, 'defaults: 60 s, 4096 flows')

  const bad: Array<[Record<string, unknown>, string]> = [
    [{ listeners: [tproxy({ networks: ['sctp'] })] }, 'listeners[0].networks[0]: "sctp" is not a network (udp, tcp)'],
    [
      { listeners: [redirect, tproxy({ networks: ['tcp'] })], capture: udpCapture() },
      'capture.udpListener: "u" takes tcp, not udp: add "udp" to its networks',
    ],
    [{ listeners: [tproxy({ networks: [] })] }, 'listeners[0].networks: must not be empty (default: ["udp"])'],
    [
      { listeners: [tproxy({ udpIdleTimeout: 0 })] },
      'listeners[0].udpIdleTimeout: 0 is not a number of seconds from 0.001 to 86400',
    ],
    [{ listeners: [tproxy({ maxFlows: 0 })] }, 'listeners[0].maxFlows: 0 is not an integer 1-1000000'],
    [
      { listeners: [tproxy({ target: 'x:1' })] },
      'listeners[0].target: unknown key (expected one of: name, type, listen, backlog, allow, networks, udpIdleTimeout, udpDnsIdleTimeout, maxFlows)',
    ],
    [
      { listeners: [redirect, tproxy()], capture: udpCapture({ udpListener: undefined }) },
      'capture.udpListener: missing: name the tproxy listener that captured UDP goes to',
    ],
    [
      { listeners: [redirect, tproxy()], capture: udpCapture({ udpListener: 'nope' }) },
      'capture.udpListener: "nope" is not the name of a listener',
    ],
    [
      { listeners: [redirect, tproxy()], capture: udpCapture({ udpListener: 'cap' }) },
      'capture.udpListener: "cap" is a redirect listener, not a tproxy listener',
    ],
    [
      { listeners: [redirect, tproxy({ listen: '0.0.0.0:15002' })], capture: udpCapture() },
      'capture.ipv6: is true but "u" listens on 0.0.0.0:15002 (IPv4 only): listen on [::]:15002 to capture both families, or set capture.ipv6 to false',
    ],
    [
      { listeners: [redirect, tproxy()], capture: udpCapture({ udp: 'yes' }) },
      'capture.udp: "yes" is not true or false',
    ],
    [
      { listeners: [redirect, tproxy()], capture: udpCapture({ tproxyMark: 0 }) },
      'capture.tproxyMark: 0 is not an integer 1-4294967295',
    ],
    [
      { listeners: [redirect, tproxy()], dial: { mark: 0x7567 }, capture: udpCapture() },
      "capture.tproxyMark: 30055 is also dial.mark: TPROXYed packets and ugate's own must carry different marks",
    ],
    [
      { listeners: [redirect, tproxy()], capture: udpCapture({ tproxyTable: 254 }) },
      'capture.tproxyTable: 254 is not a routing table number 1-2147483647 (not 253-255)',
    ],
  ]
  for (const [raw, message] of bad) {
    t.throws(() => validateConfig(raw), { name: 'ConfigError', message }, message)
  }
  t.doesNotThrow(
    () =>
      validateConfig({
        listeners: [redirect, tproxy({ listen: '0.0.0.0:15002' })],
        capture: udpCapture({ ipv6: false }),
      }),
    'IPv4-only capture takes a 0.0.0.0 tproxy listener',
  )
})

t.test('TCP capture with TPROXY: capture.listener names a tproxy listener that takes tcp', async (t) => {
  const both = tproxy({ networks: ['udp', 'tcp', 'tcp'] })
  const c = validateConfig({ listeners: [both], capture: udpCapture({ listener: 'u' }) })
  t.same((c.listeners[0] as TproxyListenerConfig).networks, ['udp', 'tcp'], 'networks: both, once each')
  t.ok(captureTcpTproxy(c), 'TCP goes to the tproxy listener')
  t.match(
    captureOptions(c, 15002, 0, 15002),
    { udp: { port: 15002, mark: 0x7567, table: 0x7567 }, tcpTproxy: { port: 15002, mark: 0x7567, table: 0x7567 } },
    'the ruleset gets TCP TPROXY with the same mark and table',
  )
  const r = validateConfig({ listeners: [redirect, both], capture: udpCapture() })
  t.notOk(captureTcpTproxy(r), 'a redirect capture.listener: REDIRECT')
  t.equal(captureOptions(r, 15001, 0, 15002).tcpTproxy, undefined, 'no TCP TPROXY in its ruleset')
  const tcpOnly = validateConfig({
    listeners: [tproxy({ networks: ['tcp'] })],
    capture: { enabled: true, listener: 'u' },
  })
  t.match(captureOptions(tcpOnly, 15002).tcpTproxy, { port: 15002 }, 'TCP alone, without UDP capture')
  const bad: Array<[Record<string, unknown>, string]> = [
    [
      { listeners: [tproxy()], capture: { enabled: true, listener: 'u' } },
      'capture.listener: "u" takes udp, not tcp: add "tcp" to its networks',
    ],
    [
      { listeners: [tproxy({ networks: ['tcp'] })], dial: { mark: 0x7567 }, capture: { enabled: true, listener: 'u' } },
      "capture.tproxyMark: 30055 is also dial.mark: TPROXYed packets and ugate's own must carry different marks",
    ],
    [
      {
        listeners: [tproxy({ networks: ['tcp'], listen: '127.0.0.1:15002' })],
        capture: { enabled: true, listener: 'u' },
      },
      'capture.listener: "u" listens on 127.0.0.1:15002: a tproxy listener for capture must listen on [::]:PORT (both families) or 0.0.0.0:PORT',
    ],
  ]
  for (const [raw, message] of bad) t.throws(() => validateConfig(raw), { name: 'ConfigError', message }, message)
})

t.test('socks and mixed listeners: udpIdleTimeout of their UDP associations; http has none', async (t) => {
  const c = validateConfig({
    listeners: [
      { name: 's', type: 'socks', listen: '127.0.0.1:1080', udpIdleTimeout: 5 },
      { name: 'm', type: 'mixed', listen: '127.0.0.1:1081' },
    ],
  })
  t.match(c.listeners, [{ udpIdleTimeoutMs: 5000 }, { udpIdleTimeoutMs: 60000 }], 'given, and the 60 s default')
  t.throws(
    () => validateConfig({ listeners: [{ name: 's', type: 'socks', listen: '127.0.0.1:1080', udpIdleTimeout: 0 }] }),
    { name: 'ConfigError', message: 'listeners[0].udpIdleTimeout: 0 is not a number of seconds from 0.001 to 86400' },
  )
  t.throws(
    () => validateConfig({ listeners: [{ name: 'h', type: 'http', listen: '127.0.0.1:8080', udpIdleTimeout: 5 }] }),
    { name: 'ConfigError', message: /listeners\[0\]\.udpIdleTimeout: unknown key/ },
    'an http listener has no UDP',
  )
})

t.test('admin.listen and admin.secret (admin HTTP server)', async (t) => {
  const withAdmin = (admin: unknown) => validateConfig({ admin, listeners: [fwd()] }).admin
  t.same(withAdmin({}), { socket: '', listen: null, secret: '' }, 'off by default')
  t.same(withAdmin({ listen: '127.0.0.1:9090' }).listen, { host: '127.0.0.1', port: 9090, kind: 'ipv4' })
  t.equal(withAdmin({ listen: '[::1]:9090' }).listen?.host, '::1', 'IPv6 loopback needs no secret')
  t.equal(withAdmin({ listen: '0.0.0.0:9090', secret: 'hunter2' }).secret, 'hunter2')
  t.throws(() => withAdmin({ listen: '0.0.0.0:9090' }), {
    name: 'ConfigError',
    message:
      'admin.listen: "0.0.0.0:9090" is not a loopback address: set admin.secret, or listen on 127.0.0.1 or [::1]',
  })
  t.throws(() => withAdmin({ listen: '192.168.1.1:9090', secret: '' }), {
    message: /"192.168.1.1:9090" is not a loopback/,
  })
  t.throws(() => withAdmin({ listen: 'router:9090' }), { message: /^admin.listen: / })
  t.throws(() => withAdmin({ listen: '127.0.0.1:9090', secret: 'bad\nsecret' }), {
    message: 'admin.secret: "***": expected 1-255 printable characters',
  })
  t.throws(() => withAdmin({ port: 9090 }), { message: /admin/ })
})

t.test('uci: admin_listen and admin_secret', async (t) => {
  const text = `config ugate 'main'\n\toption admin_listen '0.0.0.0:9090'\n\toption admin_secret 'xyz'\n\nconfig listener\n\toption type 'mixed'\n\toption address '127.0.0.1'\n\toption port '1080'\n`
  const c = configFromUci(text, '/etc/config/ugate')
  t.same(c.admin.listen, { host: '0.0.0.0', port: 9090, kind: 'ipv4' })
  t.equal(c.admin.secret, 'xyz')
  t.throws(() => configFromUci(text.replace(/\toption admin_secret 'xyz'\n/, ''), '/etc/config/ugate'), {
    message: /^\/etc\/config\/ugate:1: main.admin_listen: "0.0.0.0:9090" is not a loopback address/,
  })
})

t.test('relay over SNI: a relay and a gate config, with defaults', async (t) => {
  const relay = validateConfig({
    mesh: { identityDir: '/srv/id/', trustDomain: 'mesh.test' },
    listeners: [
      {
        name: 'park',
        type: 'park',
        listen: '0.0.0.0:15009',
        grants: { 'spiffe://mesh.test/ns/h/sa/a': ['A.Home.Test', '*.h.test'] },
      },
      { name: 'tls', type: 'sni', listen: '0.0.0.0:443', pair: 'park' },
    ],
  })
  t.same(relay.mesh, {
    identityDir: '/srv/id',
    certChain: '/srv/id/cert-chain.pem',
    key: '/srv/id/key.pem',
    rootCert: '/srv/id/root-cert.pem',
    trustDomain: 'mesh.test',
    nodeSuffix: '',
  })
  t.match(relay.listeners[0], {
    type: 'park',
    maxParked: 64,
    grants: { 'spiffe://mesh.test/ns/h/sa/a': ['a.home.test', '*.h.test'] },
  })
  t.match(relay.listeners[1], { type: 'sni', pair: 'park', pairTimeoutMs: 2000, maxWaiting: 64 })
  const gate = validateConfig({
    mesh: {},
    listeners: [fwd()],
    sniRelay: [{ name: 'vps', relay: 'vps.example.net:15009', names: ['A.home.test'], pool: 3 }],
  })
  t.same(gate.sniRelay, [
    {
      name: 'vps',
      relay: { host: 'vps.example.net', port: 15009, kind: 'name' },
      relayId: '',
      names: ['a.home.test'],
      pool: 3,
      maxPool: 16,
      retryMs: 500,
      retryMaxMs: 30000,
    },
  ])
})
