// The LuCI views of luci-app-ugate, loaded in the stand-in of LuCI's runtime
// (test/lib/luci-standin.ts): the settings form's schema (sections, widgets,
// datatypes, depends), its validators against the daemon's own reader and
// validator (src/core/uci-config.ts → config.ts), saving, and the status page.
//
// The validators are compared with the daemon on whole configs: the same uci
// text is given to configFromUci (the daemon) and to the form (every shown
// field checked as LuCI checks it). Table cases pin the verdicts. Seeded
// random mutations of valid values look for disagreements twice: the checks
// of resources/ugate.js (ug.*) called directly, which must agree with the
// daemon on every value, and the whole form on the same values (LuCI's
// datatypes in front of ug.*), where a few disagreements are known and
// allowed, each for a stated reason (KNOWN_DIFFERENCES below).

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { formatHostPort, listenAddressesClash, parseEndpoint } from '../../src/core/address.js'
import { configFromUci } from '../../src/core/uci-config.js'
import { parseUci, type UciPackage, writeUci } from '../../src/core/uci.js'
import {
  checkDatatype,
  compileDatatype,
  loadModule,
  loadView,
  luciDir,
  scanRequires,
  type FakeNode,
  type LuciPage,
  type SectionInfo,
} from '../lib/luci-standin.js'

// ---- a config as data -----------------------------------------------------------------

type Value = string | string[]
interface Sec {
  type: string
  name?: string
  options: Record<string, Value>
}

/** A valid config that uses every section type and most options. */
const BASE: Sec[] = [
  {
    type: 'ugate',
    name: 'main',
    options: {
      enabled: '1',
      log_level: 'info',
      mark: '255',
      admin_socket: '/var/run/ugate.sock',
      admin_listen: '127.0.0.1:9090',
    },
  },
  {
    type: 'listener',
    options: {
      name: 'proxy',
      type: 'mixed',
      address: '127.0.0.1',
      port: '1080',
      users: ['alice:secret'],
      allow: ['127.0.0.0/8', '192.168.1.0/24'],
    },
  },
  { type: 'listener', options: { name: 'redir', type: 'redirect', address: '::', port: '1081' } },
  {
    type: 'listener',
    options: { name: 'fwd', type: 'forward', address: '::1', port: '6000', target: 'example.com:80' },
  },
  {
    type: 'listener',
    options: { name: 'sni', type: 'sni', address: '127.0.0.1', port: '8443', tls_port: '443', http_port: '80' },
  },
  {
    type: 'listener',
    options: {
      name: 'tp',
      type: 'tproxy',
      address: '::',
      port: '1082',
      networks: ['udp'],
      udp_idle_timeout: '60',
      udp_dns_idle_timeout: '10',
      max_flows: '4096',
    },
  },
  {
    type: 'listener',
    options: {
      name: 'dns',
      type: 'dns',
      address: '::',
      port: '1053',
      server: ['1.1.1.1', '[2606:4700::1111]:53', 'tls://dns.quad9.net@9.9.9.9'],
      ca_bundle: '/etc/ssl/certs/ca-certificates.crt',
      host: ['192.168.1.20 printer.lan nas.lan'],
      reject_address: ['0.0.0.0', '::'],
      timeout: '2',
      cache_size: '4096',
    },
  },
  {
    type: 'listener',
    options: {
      name: 'hb',
      type: 'hbone',
      address: '::',
      port: '15008',
      peers: ['spiffe://home.arpa/ns/routers/sa/gw-a'],
      reverse: ['spiffe://home.arpa/ns/home/sa/gate-c'],
    },
  },
  {
    type: 'upstream',
    options: { name: 'vpn', type: 'socks5', server: '10.0.0.2', port: '1080', username: 'u', password: 'p' },
  },
  { type: 'upstream', options: { name: 'corp', type: 'http', server: 'proxy.example.com', port: '3128' } },
  {
    type: 'upstream',
    options: {
      name: 'gwb',
      type: 'hbone',
      server: '192.0.2.2',
      port: '15008',
      identity: 'spiffe://home.arpa/ns/routers/sa/gw-b',
      trust_domain: 'home.arpa',
    },
  },
  {
    type: 'rule',
    options: { name: 'ads', domain_keyword: ['doubleclick'], network: ['tcp', 'udp'], action: 'reject' },
  },
  {
    type: 'rule',
    options: { domain_suffix: ['example.com'], dst_port: ['443', '8000-8080'], action: 'upstream', upstream: 'vpn' },
  },
  { type: 'rule', options: { domain: ['printer.lan'], action: 'forward', forward: '192.168.1.20:631' } },
  {
    type: 'rule',
    options: {
      dst_cidr: ['10.0.0.0/8'],
      src_cidr: ['192.168.1.0/24'],
      listener: ['redir'],
      proto: ['tls', 'http'],
      action: 'direct',
    },
  },
  {
    type: 'rule',
    options: {
      name: 'gwa',
      src_identity: ['spiffe://home.arpa/ns/routers/sa/gw-a'],
      src_trust_domain: ['home.arpa'],
      src_node: ['ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ'],
      action: 'upstream',
      upstream: 'gwb',
    },
  },
  {
    type: 'capture',
    name: 'capture',
    options: {
      enabled: '1',
      listener: 'redir',
      udp: '1',
      udp_listener: 'tp',
      tproxy_mark: '30055',
      tproxy_table: '30055',
      dns: '1',
      dns_listener: 'dns',
      lan: ['br-lan'],
      ports: ['80', '443'],
      router_self: '1',
      ipv6: '1',
      bypass: ['203.0.113.0/24'],
      include_src: ['192.168.1.0/24'],
      exclude_src: ['192.168.1.1'],
      exclude_mac: ['aa:bb:cc:dd:ee:ff'],
    },
  },
  {
    type: 'mesh',
    name: 'mesh',
    options: { identity_dir: '/etc/ugate/identity', trust_domain: 'home.arpa', root_cert: '/etc/ugate/mesh-ca.pem' },
  },
  // Named, without a name option (as docs/mesh.md writes it): the form shows the section's name.
  {
    type: 'reverse',
    name: 'vps',
    options: {
      server: 'vps.example.net',
      port: '15008',
      relay_id: 'spiffe://home.arpa/ns/vps/sa/relay',
      retry: '0.5',
      retry_max: '30',
      ping_interval: '10',
      ping_timeout: '20',
    },
  },
]

function uciText(secs: Sec[]): string {
  const pkg: UciPackage = {
    name: null,
    sections: secs.map((s, index) => ({
      type: s.type,
      name: s.name ?? null,
      index,
      options: new Map(Object.entries(s.options)),
      line: 0,
    })),
  }
  return writeUci(pkg)
}

/** "main", "capture", or "TYPE:N" (the N-th section of that type). */
function locate(secs: Sec[], at: string): Sec {
  const [type, n] = at.includes(':') ? [at.split(':')[0]!, Number(at.split(':')[1])] : [at === 'main' ? 'ugate' : at, 0]
  const s = secs.filter((x) => x.type === type)[n]
  if (!s) throw new Error(`no section ${at}`)
  return s
}

type Edit = Record<string, Value | null>

/** BASE with options of some sections changed; null removes an option. */
function edited(at: string, set: Edit, more: Array<[string, Edit]> = []): Sec[] {
  const secs: Sec[] = structuredClone(BASE)
  for (const [where, changes] of [[at, set] as [string, Edit], ...more]) {
    const s = locate(secs, where)
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || (Array.isArray(v) && v.length === 0)) delete s.options[k]
      else s.options[k] = v
    }
  }
  return secs
}

/** The daemon's verdict on a uci text: true, or its error message. */
function daemon(text: string): true | string {
  try {
    configFromUci(text, '/etc/config/ugate')
    return true
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}

const settings = (text: string) => loadView('ugate/settings', { uci: { ugate: text } })

// About 11 000 daemon verdicts and as many form checks: ~40 s of CPU, more than
// tap's 120 s on a machine shared with builds.
t.setTimeout(600_000)

/** The form's sid of a located section. */
function sidOf(page: LuciPage, at: string): string {
  if (at === 'main' || at === 'capture' || at === 'mesh') return at
  const [type, n] = [at.split(':')[0]!, Number(at.split(':')[1])]
  const sid = page.sids(type)[n]
  if (sid === undefined) throw new Error(`no sid for ${at}`)
  return sid
}

t.test('the base config is valid for the daemon and for the form', async (t) => {
  const text = uciText(BASE)
  t.equal(daemon(text), true)
  const page = await settings(text)
  t.same(page.errors(), [])
})

// ---- the stand-in itself ------------------------------------------------------------

t.test('stand-in: the loader scans directives like luci.js', async (t) => {
  t.same(
    scanRequires(`'use strict';\n'require view';\n'require form';\n'require tools.widgets as widgets';\nreturn 1;`),
    [
      { name: 'view', as: 'view' },
      { name: 'form', as: 'form' },
      { name: 'tools.widgets', as: 'widgets' },
    ],
  )
  t.same(scanRequires(`'require view.ugate.x';`), [{ name: 'view.ugate.x', as: 'view_ugate_x' }])
  t.same(scanRequires(`// 'require nope'\n/* 'require nope2' */ 'require rpc'; 'other'; 'require late';`), [
    { name: 'rpc', as: 'rpc' },
  ])
  t.same(scanRequires(`"use strict"; "require uci"`), [{ name: 'uci', as: 'uci' }])
  await t.rejects(loadView('ugate/nonexistent'), /HTTP error 404/)
})

t.test('stand-in: LuCI datatypes behave as validation.js', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['port', '0', true],
    ['port', '65535', true],
    ['port', '65536', false],
    ['port', '-0', true], // parseInteger("-0") is -0, which is >= 0
    ['uinteger', '5', true],
    ['uinteger', '5.0', false],
    ['ufloat', '0.5', true],
    ['ufloat', '.5', false],
    ['ufloat', '1e3', false],
    ['portrange', '80-8080', true],
    ['portrange', '8080-80', false],
    ['ipaddr', '10.0.0.1', true],
    ['ipaddr', '10.0.0.0/8', true],
    ['ipaddr', '10.0.0.0/255.0.0.0', true],
    ['ipaddr', '010.0.0.1', true], // leading zeros pass LuCI's parser
    ['ipaddr', '2001:db8::/32', true],
    ['ipaddr', '1:2:3:4:5:6:7::', false], // LuCI's parser miscounts a "::" of one group
    ['ipaddr("nomask")', '10.0.0.0/8', false],
    ['cidr', '10.0.0.1', false],
    ['cidr', '10.0.0.0/8', true],
    ['macaddr', 'aa:bb:cc:dd:ee:ff', true],
    ['macaddr', '01:00:5e:00:00:01', false],
    ['host', 'example.com', true],
    ['host', '::1', true],
    ['host', 'a.b_', false],
    ['netdevname', 'br-lan', true],
    ['netdevname', '..', false],
    ['and(uinteger,max(10))', '10', true],
    ['and(uinteger,max(10))', '11', false],
    ['or(port,"auto")', 'auto', true],
    ['list(port)', '80 443', true],
    ['list(port)', '80 x', false],
    ['neg(port)', '!80', true],
  ]
  for (const [type, value, ok] of cases)
    t.equal(checkDatatype(type, value) === true, ok, `${type} ${JSON.stringify(value)}`)
  t.throws(() => compileDatatype('portt'), /Unhandled token "portt"/)
})

// ---- the settings form's schema -----------------------------------------------------------

interface Expect {
  widget: string
  datatype?: string
  depends?: Array<Record<string, string>>
  choices?: string[]
  required?: boolean
}

const SCHEMA: Record<
  string,
  {
    kind: string
    type: string
    name?: string
    anonymous?: boolean
    addremove: boolean
    sortable?: boolean
    options: Record<string, Expect>
  }
> = {
  main: {
    kind: 'NamedSection',
    type: 'ugate',
    name: 'main',
    addremove: false,
    options: {
      enabled: { widget: 'Flag' },
      log_level: { widget: 'ListValue', choices: ['error', 'warn', 'info', 'debug'] },
      splice: { widget: 'Flag' },
      mark: { widget: 'Value', datatype: 'uinteger' },
      admin_socket: { widget: 'Value' },
      admin_listen: { widget: 'Value' },
      admin_secret: { widget: 'Value' },
      max_connections: { widget: 'Value', datatype: 'uinteger' },
      max_per_source: { widget: 'Value', datatype: 'uinteger' },
      handshake_timeout: { widget: 'Value', datatype: 'ufloat' },
      idle_timeout: { widget: 'Value', datatype: 'ufloat' },
      connect_timeout: { widget: 'Value', datatype: 'ufloat' },
      shutdown_grace: { widget: 'Value', datatype: 'ufloat' },
      sniff_timeout: { widget: 'Value', datatype: 'ufloat' },
      sniff_max_bytes: { widget: 'Value', datatype: 'uinteger' },
    },
  },
  listener: {
    kind: 'GridSection',
    type: 'listener',
    anonymous: true,
    addremove: true,
    options: {
      name: { widget: 'Value', required: true },
      type: {
        widget: 'ListValue',
        choices: ['forward', 'socks', 'http', 'mixed', 'redirect', 'sni', 'tproxy', 'dns', 'hbone'],
        required: true,
      },
      address: { widget: 'Value', datatype: 'ipaddr', required: true },
      port: { widget: 'Value', datatype: 'port', required: true },
      // LuCI's "cidr" wants a "/": the daemon also takes plain addresses, so "ipaddr" (both) plus validate
      allow: { widget: 'DynamicList', datatype: 'ipaddr' },
      users: { widget: 'DynamicList', depends: [{ type: 'mixed' }, { type: 'socks' }, { type: 'http' }] },
      target: { widget: 'Value', depends: [{ type: 'forward' }], required: true },
      upstream: { widget: 'ListValue', depends: [{ type: 'forward' }] },
      tls_port: { widget: 'Value', datatype: 'port', depends: [{ type: 'sni' }] },
      http_port: { widget: 'Value', datatype: 'port', depends: [{ type: 'sni' }] },
      networks: { widget: 'DynamicList', depends: [{ type: 'tproxy' }] },
      udp_idle_timeout: {
        widget: 'Value',
        datatype: 'ufloat',
        depends: [{ type: 'tproxy' }, { type: 'socks' }, { type: 'mixed' }],
      },
      udp_dns_idle_timeout: { widget: 'Value', datatype: 'ufloat', depends: [{ type: 'tproxy' }] },
      max_flows: { widget: 'Value', datatype: 'uinteger', depends: [{ type: 'tproxy' }] },
      server: { widget: 'DynamicList', depends: [{ type: 'dns' }], required: true },
      ca_bundle: { widget: 'Value', depends: [{ type: 'dns' }] },
      host: { widget: 'DynamicList', depends: [{ type: 'dns' }] },
      reject_address: { widget: 'DynamicList', datatype: 'ipaddr', depends: [{ type: 'dns' }] },
      timeout: { widget: 'Value', datatype: 'ufloat', depends: [{ type: 'dns' }] },
      cache_size: { widget: 'Value', datatype: 'uinteger', depends: [{ type: 'dns' }] },
      peers: { widget: 'DynamicList', depends: [{ type: 'hbone' }] },
      reverse: { widget: 'DynamicList', depends: [{ type: 'hbone' }] },
      ping_interval: { widget: 'Value', datatype: 'ufloat', depends: [{ type: 'hbone' }] },
      ping_timeout: { widget: 'Value', datatype: 'ufloat', depends: [{ type: 'hbone' }] },
      backlog: { widget: 'Value', datatype: 'uinteger' },
    },
  },
  rule: {
    kind: 'GridSection',
    type: 'rule',
    anonymous: true,
    addremove: true,
    sortable: true,
    options: {
      name: { widget: 'Value' },
      domain: { widget: 'DynamicList' },
      domain_suffix: { widget: 'DynamicList' },
      domain_keyword: { widget: 'DynamicList' },
      dst_cidr: { widget: 'DynamicList', datatype: 'ipaddr' },
      dst_port: { widget: 'DynamicList', datatype: 'portrange' },
      src_cidr: { widget: 'DynamicList', datatype: 'ipaddr' },
      listener: { widget: 'DynamicList' },
      proto: { widget: 'MultiValue', choices: ['tls', 'http', 'h2', 'unknown'] },
      network: { widget: 'MultiValue', choices: ['tcp', 'udp'] },
      src_identity: { widget: 'DynamicList' },
      src_trust_domain: { widget: 'DynamicList' },
      src_node: { widget: 'DynamicList' },
      action: { widget: 'ListValue', choices: ['direct', 'reject', 'upstream', 'forward', 'mesh'], required: true },
      upstream: { widget: 'ListValue', depends: [{ action: 'upstream' }], required: true },
      forward: { widget: 'Value', depends: [{ action: 'forward' }], required: true },
    },
  },
  upstream: {
    kind: 'GridSection',
    type: 'upstream',
    anonymous: true,
    addremove: true,
    options: {
      name: { widget: 'Value', required: true },
      type: { widget: 'ListValue', choices: ['socks5', 'http', 'hbone'], required: true },
      // required but for an hbone peer named by identity or node (its check says so: CASES)
      server: { widget: 'Value', datatype: 'host' },
      // required but for an hbone peer (15008)
      port: { widget: 'Value', datatype: 'port' },
      username: { widget: 'Value', depends: [{ type: 'socks5' }, { type: 'http' }] },
      password: { widget: 'Value', depends: [{ type: 'socks5' }, { type: 'http' }] },
      identity: { widget: 'Value', depends: [{ type: 'hbone' }] },
      trust_domain: { widget: 'Value', depends: [{ type: 'hbone' }] },
      node: { widget: 'Value', depends: [{ type: 'hbone' }] },
      // its check is on server (a relay needs one): a Flag has no validator
      relay: { widget: 'Flag', depends: [{ type: 'hbone' }] },
      ping_interval: { widget: 'Value', datatype: 'ufloat', depends: [{ type: 'hbone' }] },
      ping_timeout: { widget: 'Value', datatype: 'ufloat', depends: [{ type: 'hbone' }] },
    },
  },
  capture: {
    kind: 'NamedSection',
    type: 'capture',
    name: 'capture',
    addremove: false,
    options: {
      enabled: { widget: 'Flag' },
      listener: { widget: 'ListValue' },
      udp: { widget: 'Flag' },
      udp_listener: { widget: 'ListValue' },
      tproxy_mark: { widget: 'Value', datatype: 'uinteger' },
      tproxy_table: { widget: 'Value', datatype: 'uinteger' },
      dns: { widget: 'Flag' },
      dns_listener: { widget: 'ListValue' },
      lan: { widget: 'DynamicList', datatype: 'netdevname' },
      ports: { widget: 'DynamicList', datatype: 'port' },
      router_self: { widget: 'Flag' },
      ipv6: { widget: 'Flag' },
      bypass: { widget: 'DynamicList', datatype: 'ipaddr' },
      include_src: { widget: 'DynamicList', datatype: 'ipaddr' },
      exclude_src: { widget: 'DynamicList', datatype: 'ipaddr' },
      include_mac: { widget: 'DynamicList', datatype: 'macaddr' },
      exclude_mac: { widget: 'DynamicList', datatype: 'macaddr' },
    },
  },
  mesh: {
    kind: 'NamedSection',
    type: 'mesh',
    name: 'mesh',
    addremove: true,
    options: {
      node_id: { widget: 'DummyValue' },
      identity_dir: { widget: 'Value' },
      trust_domain: { widget: 'Value' },
      node_suffix: { widget: 'Value' },
      cert_chain: { widget: 'Value' },
      key: { widget: 'Value' },
      root_cert: { widget: 'Value' },
    },
  },
  reverse: {
    kind: 'GridSection',
    type: 'reverse',
    anonymous: true,
    addremove: true,
    options: {
      name: { widget: 'Value', required: true },
      server: { widget: 'Value', datatype: 'host', required: true },
      port: { widget: 'Value', datatype: 'port' },
      relay_id: { widget: 'Value' },
      retry: { widget: 'Value', datatype: 'ufloat' },
      retry_max: { widget: 'Value', datatype: 'ufloat' },
      ping_interval: { widget: 'Value', datatype: 'ufloat' },
      ping_timeout: { widget: 'Value', datatype: 'ufloat' },
    },
  },
}

t.test('settings: sections, widgets, datatypes and depends', async (t) => {
  const page = await settings(uciText(BASE))
  t.equal(page.maps.length, 1)
  t.equal(page.map.config, 'ugate')
  t.same(page.uciPackages, ['ugate'])
  t.same(page.footer, { save: true, saveApply: true, reset: true })
  const schema = page.schema()
  t.same(
    schema.map((s) => s.name ?? s.type),
    ['main', 'listener', 'rule', 'upstream', 'capture', 'mesh', 'reverse'],
  )
  for (const [key, want] of Object.entries(SCHEMA)) {
    const s = schema.find((x) => (x.name ?? x.type) === key) as SectionInfo
    t.test(key, async (t) => {
      t.equal(s.kind, want.kind, 'section class')
      t.equal(s.type, want.type, 'section type')
      t.equal(s.addremove, want.addremove, 'addremove')
      if (want.anonymous !== undefined) t.equal(s.anonymous, want.anonymous, 'anonymous')
      if (want.sortable !== undefined) t.equal(s.sortable, want.sortable, 'sortable (first match wins: order matters)')
      t.same(s.options.map((o) => o.name).sort(), Object.keys(want.options).sort(), 'exactly these options')
      for (const [name, exp] of Object.entries(want.options)) {
        const o = s.options.find((x) => x.name === name)!
        t.equal(o.widget, exp.widget, `${name}: widget`)
        t.equal(o.datatype, exp.datatype, `${name}: datatype`)
        t.same(JSON.parse(JSON.stringify(o.depends)), exp.depends ?? [], `${name}: depends`)
        if (exp.choices) t.same([...o.choices].sort(), [...exp.choices].sort(), `${name}: choices`)
        if (exp.required) t.equal(o.rmempty || o.optional, false, `${name}: required`)
        if (!['Flag', 'DummyValue'].includes(o.widget) && !['type', 'action', 'log_level'].includes(name))
          t.ok(o.validate, `${name}: has a validator`)
      }
    })
  }
  const password = schema.find((s) => s.type === 'upstream')!.options.find((o) => o.name === 'password')!
  t.equal(password.password, true, 'password widget')
  // the choice lists come from the config
  t.same(page.option('rule', 'upstream').keylist, ['vpn', 'corp', 'gwb'])
  t.same(page.option('rule', 'listener').keylist, ['proxy', 'redir', 'fwd', 'sni', 'tp', 'dns', 'hb'])
  t.same(page.option('capture', 'listener').keylist, ['redir', 'tp'], 'redirect and tproxy listeners (TPROXY TCP)')
  t.same(page.option('capture', 'udp_listener').keylist, ['tp'], 'only tproxy listeners')
  t.same(page.option('capture', 'dns_listener').keylist, ['dns'], 'only dns listeners')
  const secret = schema.find((s) => s.name === 'main')!.options.find((o) => o.name === 'admin_secret')!
  t.equal(secret.password, true, 'admin secret: password widget')
})

t.test('settings: depends show the type-specific options', async (t) => {
  const page = await settings(uciText(BASE))
  const [proxy, redir, fwd, sni] = page.sids('listener') as [string, string, string, string]
  t.equal(page.active(proxy, 'users'), true)
  t.equal(page.active(proxy, 'target'), false)
  t.equal(page.active(fwd, 'target'), true)
  t.equal(page.active(fwd, 'users'), false)
  t.equal(page.active(sni, 'tls_port'), true)
  t.equal(page.active(redir, 'tls_port'), false)
  page.set(redir, 'type', 'forward')
  t.equal(page.active(redir, 'target'), true)
  const [, up, fw] = page.sids('rule') as [string, string, string]
  t.equal(page.active(up, 'upstream'), true)
  t.equal(page.active(up, 'forward'), false)
  t.equal(page.active(fw, 'forward'), true)
  const [, , , , tp, dns] = page.sids('listener') as string[]
  for (const o of ['networks', 'udp_idle_timeout', 'udp_dns_idle_timeout', 'max_flows']) {
    t.equal(page.active(tp!, o), true, `tproxy: ${o}`)
    t.equal(page.active(dns!, o), false, `dns: no ${o}`)
    // A mixed listener's SOCKS5 UDP ASSOCIATE has the idle timeout, none of the flow options.
    t.equal(page.active(proxy, o), o === 'udp_idle_timeout', `mixed: ${o === 'udp_idle_timeout' ? '' : 'no '}${o}`)
  }
  page.set(proxy, 'type', 'socks')
  t.equal(page.active(proxy, 'udp_idle_timeout'), true, 'socks: udp_idle_timeout')
  page.set(proxy, 'type', 'http')
  t.equal(page.active(proxy, 'udp_idle_timeout'), false, 'http: no udp_idle_timeout (no UDP)')
  page.set(proxy, 'type', 'mixed')
  for (const o of ['server', 'host', 'reject_address', 'timeout', 'cache_size', 'ca_bundle']) {
    t.equal(page.active(dns!, o), true, `dns: ${o}`)
    t.equal(page.active(tp!, o), false, `tproxy: no ${o}`)
  }
  t.equal(page.active(proxy, 'server'), false)
  t.equal(page.check('capture', 'udp_listener'), true)
  page.set('capture', 'udp_listener', '')
  t.match(page.check('capture', 'udp_listener'), /Choose the tproxy listener/, 'UDP capture needs its listener')
  page.set('capture', 'udp', '0')
  t.equal(page.check('capture', 'udp_listener'), true, 'and not without')
})

t.test('settings: a dns listener without upstream resolvers is not saved', async (t) => {
  const text = uciText(edited('listener:5', { server: null }))
  t.match(daemon(text), /server: missing/)
  const page = await settings(text)
  await t.rejects(page.save(), /Upstream resolvers" must not be empty/)
})

// ---- validators against the daemon -----------------------------------------------------------

interface Case {
  what: string
  at: string
  set: Record<string, Value | null>
  /** The daemon's verdict (asserted, so each case tests what it says). */
  daemon: boolean
  /**
   * A known difference: 'stricter' = the daemon accepts, the form refuses;
   * 'repairs' = the daemon refuses, the form shows a valid value (or hides
   * the option) and what it saves is accepted.
   */
  luci?: 'stricter' | 'repairs'
  /** The option whose widget reports the error (default: the first one set). */
  errorOn?: string
  /** The section of that widget, when it is not `at`. */
  errorAt?: string
  /** Changes to other sections, made together with `set`. */
  more?: Array<[string, Edit]>
}

const CASES: Case[] = [
  // listeners
  { what: 'a listener name with a space', at: 'listener:0', set: { name: 'my proxy' }, daemon: false },
  { what: 'a listener name of 64 characters', at: 'listener:0', set: { name: 'a'.repeat(64) }, daemon: true },
  { what: 'a listener name of 65 characters', at: 'listener:0', set: { name: 'a'.repeat(65) }, daemon: false },
  { what: 'a listener name with a dot', at: 'listener:0', set: { name: 'a.b' }, daemon: false },
  { what: 'two listeners with one name', at: 'listener:1', set: { name: 'proxy' }, daemon: false },
  { what: 'a listener without an address', at: 'listener:0', set: { address: null }, daemon: false },
  { what: 'listen on ::', at: 'listener:0', set: { address: '::' }, daemon: true },
  { what: 'listen on 256.1.1.1', at: 'listener:0', set: { address: '256.1.1.1' }, daemon: false },
  { what: 'listen on 010.0.0.1 (leading zero)', at: 'listener:0', set: { address: '010.0.0.1' }, daemon: false },
  { what: 'listen on [::1] (brackets)', at: 'listener:0', set: { address: '[::1]' }, daemon: false },
  { what: 'listen on 10.0.0.1/24 (a prefix)', at: 'listener:0', set: { address: '10.0.0.1/24' }, daemon: false },
  { what: 'listen on a host name', at: 'listener:0', set: { address: 'localhost' }, daemon: false },
  // LuCI's ipaddr datatype miscounts a "::" that stands for a single group
  {
    what: 'listen on 1:2:3:4:5:6:7::',
    at: 'listener:0',
    set: { address: '1:2:3:4:5:6:7::' },
    daemon: true,
    luci: 'stricter',
  },
  // A dotted quad only ends an IPv6 address (RFC 4291): daemon and form both refuse it
  {
    what: 'listen on 1.2.3.4:: (a dotted quad before "::")',
    at: 'listener:0',
    set: { address: '1.2.3.4::' },
    daemon: false,
  },
  { what: 'port 70000', at: 'listener:0', set: { port: '70000' }, daemon: false },
  { what: 'port 0 (any free port)', at: 'listener:0', set: { port: '0' }, daemon: true },
  { what: 'port -1', at: 'listener:0', set: { port: '-1' }, daemon: false },
  { what: 'port 1080x', at: 'listener:0', set: { port: '1080x' }, daemon: false },
  { what: 'no port', at: 'listener:0', set: { port: null }, daemon: false },
  { what: 'port 01080 (leading zero)', at: 'listener:0', set: { port: '01080' }, daemon: true },
  { what: '127.0.0.1:1080 twice', at: 'listener:3', set: { port: '1080' }, daemon: false },
  {
    what: '0.0.0.0:1080 next to 127.0.0.1:1080',
    at: 'listener:3',
    set: { address: '0.0.0.0', port: '1080' },
    daemon: false,
    errorOn: 'port',
  },
  {
    what: '[::]:1080 next to 127.0.0.1:1080 ("::" is dual-stack)',
    at: 'listener:3',
    set: { address: '::', port: '1080' },
    daemon: false,
    errorOn: 'port',
  },
  {
    what: '[::1]:1080 next to 127.0.0.1:1080 (other family)',
    at: 'listener:3',
    set: { address: '::1', port: '1080' },
    daemon: true,
  },
  {
    what: '[0::1]:6000 next to [::1]:6000 (one address)',
    at: 'listener:3',
    set: { address: '0::1', port: '6000' },
    daemon: false,
    errorOn: 'port',
  },
  {
    what: '127.0.0.2:1080 next to 127.0.0.1:1080',
    at: 'listener:3',
    set: { address: '127.0.0.2', port: '1080' },
    daemon: true,
  },
  {
    what: 'two listeners on port 0',
    at: 'listener:3',
    set: { port: '0' },
    daemon: true,
    more: [['listener:0', { port: '0' }]],
  },
  { what: 'allow a bad CIDR', at: 'listener:0', set: { allow: ['10.0.0.0/33'] }, daemon: false },
  { what: 'allow a plain address', at: 'listener:0', set: { allow: ['10.0.0.1', 'fe80::1'] }, daemon: true },
  { what: 'allow 1.2.3.4/24/1', at: 'listener:0', set: { allow: ['1.2.3.4/24/1'] }, daemon: false },
  {
    what: 'allow 10.0.0.0/255.0.0.0 (netmask)',
    at: 'listener:0',
    set: { allow: ['10.0.0.0/255.0.0.0'] },
    daemon: false,
  },
  { what: 'allow a prefix with a leading zero', at: 'listener:0', set: { allow: ['10.0.0.0/08'] }, daemon: false },
  { what: 'allow everyone', at: 'listener:0', set: { allow: ['0.0.0.0/0', '::/0'] }, daemon: true },
  { what: 'a user without password', at: 'listener:0', set: { users: ['bob'] }, daemon: false },
  { what: 'a user with an empty password', at: 'listener:0', set: { users: ['bob:'] }, daemon: false },
  { what: 'a password without user', at: 'listener:0', set: { users: [':pw'] }, daemon: false },
  { what: 'a password with colons', at: 'listener:0', set: { users: ['bob:pw:with:colons'] }, daemon: true },
  { what: 'one user twice', at: 'listener:0', set: { users: ['alice:x', 'alice:y'] }, daemon: false },
  { what: 'a user name of 256 characters', at: 'listener:0', set: { users: [`${'u'.repeat(256)}:pw`] }, daemon: false },
  { what: 'a tab in a password', at: 'listener:0', set: { users: ['bob:p\tw'] }, daemon: false },
  { what: 'users on a forward listener', at: 'listener:2', set: { users: ['a:b'] }, daemon: false, luci: 'repairs' },
  {
    what: 'a target on a mixed listener',
    at: 'listener:0',
    set: { target: 'example.com:80' },
    daemon: false,
    luci: 'repairs',
  },
  { what: 'a forward target without port', at: 'listener:2', set: { target: 'example.com' }, daemon: false },
  { what: 'a forward target [::1]:80', at: 'listener:2', set: { target: '[::1]:80' }, daemon: true },
  { what: 'a forward target ::1:80 (no brackets)', at: 'listener:2', set: { target: '::1:80' }, daemon: false },
  { what: 'a forward target on port 0', at: 'listener:2', set: { target: 'example.com:0' }, daemon: false },
  { what: 'a forward target with a space', at: 'listener:2', set: { target: 'exa mple.com:80' }, daemon: false },
  { what: 'a forward target 10.0.0.1:65535', at: 'listener:2', set: { target: '10.0.0.1:65535' }, daemon: true },
  { what: 'a forward target 10.0.0.01:80', at: 'listener:2', set: { target: '10.0.0.01:80' }, daemon: false },
  { what: 'a forward listener without target', at: 'listener:2', set: { target: null }, daemon: false },
  { what: 'tls_port 0', at: 'listener:3', set: { tls_port: '0' }, daemon: false },
  { what: 'tls_port 65536', at: 'listener:3', set: { tls_port: '65536' }, daemon: false },
  { what: 'http_port 8080', at: 'listener:3', set: { http_port: '8080' }, daemon: true },
  { what: 'tls_port 443.0', at: 'listener:3', set: { tls_port: '443.0' }, daemon: true, luci: 'stricter' },
  { what: 'backlog 0', at: 'listener:0', set: { backlog: '0' }, daemon: false },
  { what: 'backlog 65535', at: 'listener:0', set: { backlog: '65535' }, daemon: true },
  { what: 'an unknown listener type', at: 'listener:0', set: { type: 'tproxy' }, daemon: false, luci: 'repairs' },
  { what: 'a listener without type', at: 'listener:0', set: { type: null }, daemon: false, luci: 'repairs' },
  // general
  { what: 'log level verbose', at: 'main', set: { log_level: 'verbose' }, daemon: false, luci: 'repairs' },
  { what: 'mark -1', at: 'main', set: { mark: '-1' }, daemon: false },
  { what: 'mark 4294967295', at: 'main', set: { mark: '4294967295' }, daemon: true },
  { what: 'mark 4294967296', at: 'main', set: { mark: '4294967296' }, daemon: false },
  { what: 'mark abc', at: 'main', set: { mark: 'abc' }, daemon: false },
  { what: 'mark 0 while capturing the router itself', at: 'main', set: { mark: '0' }, daemon: false },
  { what: 'no mark while capturing the router itself', at: 'main', set: { mark: null }, daemon: false },
  { what: 'mark 255.0', at: 'main', set: { mark: '255.0' }, daemon: true, luci: 'stricter' },
  { what: 'a relative admin socket', at: 'main', set: { admin_socket: 'ugate.sock' }, daemon: false },
  {
    what: 'an admin socket path of 108 characters',
    at: 'main',
    set: { admin_socket: `/${'a'.repeat(107)}` },
    daemon: false,
  },
  {
    what: 'an admin socket path of 107 characters',
    at: 'main',
    set: { admin_socket: `/${'a'.repeat(106)}` },
    daemon: true,
  },
  { what: 'max_connections 1000001', at: 'main', set: { max_connections: '1000001' }, daemon: false },
  { what: 'max_connections 0 (no limit)', at: 'main', set: { max_connections: '0' }, daemon: true },
  { what: 'max_per_source 1.5', at: 'main', set: { max_per_source: '1.5' }, daemon: false },
  { what: 'handshake_timeout 0', at: 'main', set: { handshake_timeout: '0' }, daemon: false },
  { what: 'handshake_timeout 0.001', at: 'main', set: { handshake_timeout: '0.001' }, daemon: true },
  { what: 'handshake_timeout 3601', at: 'main', set: { handshake_timeout: '3601' }, daemon: false },
  { what: 'idle_timeout 0 (never)', at: 'main', set: { idle_timeout: '0' }, daemon: true },
  { what: 'idle_timeout 2147483', at: 'main', set: { idle_timeout: '2147483' }, daemon: true },
  { what: 'idle_timeout 2147484', at: 'main', set: { idle_timeout: '2147484' }, daemon: false },
  { what: 'idle_timeout -1', at: 'main', set: { idle_timeout: '-1' }, daemon: false },
  { what: 'connect_timeout 0.0005', at: 'main', set: { connect_timeout: '0.0005' }, daemon: false },
  { what: 'connect_timeout 1e3', at: 'main', set: { connect_timeout: '1e3' }, daemon: false },
  { what: 'shutdown_grace 3600', at: 'main', set: { shutdown_grace: '3600' }, daemon: true },
  { what: 'shutdown_grace 3600.5', at: 'main', set: { shutdown_grace: '3600.5' }, daemon: false },
  { what: 'sniff_timeout 61', at: 'main', set: { sniff_timeout: '61' }, daemon: false },
  { what: 'sniff_max_bytes 63', at: 'main', set: { sniff_max_bytes: '63' }, daemon: false },
  { what: 'sniff_max_bytes 65536', at: 'main', set: { sniff_max_bytes: '65536' }, daemon: true },
  // upstreams
  { what: 'an upstream name with a space', at: 'upstream:0', set: { name: 'my vpn' }, daemon: false },
  { what: 'two upstreams with one name', at: 'upstream:1', set: { name: 'vpn' }, daemon: false, errorOn: 'name' },
  { what: 'an upstream server with a "!"', at: 'upstream:0', set: { server: 'bad!host' }, daemon: false },
  { what: 'an IPv6 upstream server', at: 'upstream:0', set: { server: '2001:db8::1' }, daemon: true },
  { what: 'an IPv6 upstream server in brackets', at: 'upstream:0', set: { server: '[2001:db8::1]' }, daemon: false },
  { what: 'an upstream without server', at: 'upstream:0', set: { server: null }, daemon: false },
  { what: 'an upstream on port 0', at: 'upstream:0', set: { port: '0' }, daemon: false },
  { what: 'an upstream on port 65536', at: 'upstream:0', set: { port: '65536' }, daemon: false },
  { what: 'a user name without password', at: 'upstream:0', set: { password: null }, daemon: false },
  { what: 'a password without user name', at: 'upstream:0', set: { username: null }, daemon: false },
  {
    what: 'an upstream user name of 256 characters',
    at: 'upstream:0',
    set: { username: 'u'.repeat(256) },
    daemon: false,
  },
  { what: 'an upstream type https', at: 'upstream:0', set: { type: 'https' }, daemon: false, luci: 'repairs' },
  // rules
  { what: 'a rule name with a space', at: 'rule:0', set: { name: 'my rule' }, daemon: false },
  { what: 'a rule name with punctuation', at: 'rule:0', set: { name: 'ads!#1' }, daemon: true },
  { what: 'a domain with a space', at: 'rule:2', set: { domain: ['exa mple.com'] }, daemon: false },
  { what: 'a domain in capitals with a dot at the end', at: 'rule:2', set: { domain: ['Printer.LAN.'] }, daemon: true },
  { what: 'a domain label starting with "-"', at: 'rule:2', set: { domain: ['-bad.lan'] }, daemon: false },
  { what: 'a non-ASCII domain', at: 'rule:2', set: { domain: ['bücher.de'] }, daemon: false },
  { what: 'a punycode domain', at: 'rule:2', set: { domain: ['xn--bcher-kva.de'] }, daemon: true },
  { what: 'a suffix ".example.com"', at: 'rule:1', set: { domain_suffix: ['.example.com'] }, daemon: false },
  { what: 'a suffix "*.example.com"', at: 'rule:1', set: { domain_suffix: ['*.example.com'] }, daemon: false },
  { what: 'a suffix "com"', at: 'rule:1', set: { domain_suffix: ['com'] }, daemon: true },
  { what: 'a keyword with a space', at: 'rule:0', set: { domain_keyword: ['ad service'] }, daemon: false },
  { what: 'a keyword in capitals', at: 'rule:0', set: { domain_keyword: ['AdService'] }, daemon: true },
  { what: 'a destination CIDR /33', at: 'rule:3', set: { dst_cidr: ['10.0.0.0/33'] }, daemon: false },
  { what: 'an IPv6 destination CIDR', at: 'rule:3', set: { dst_cidr: ['2001:db8::/32'] }, daemon: true },
  { what: 'a source that is not an address', at: 'rule:3', set: { src_cidr: ['lan'] }, daemon: false },
  { what: 'destination port 0', at: 'rule:1', set: { dst_port: ['0'] }, daemon: false },
  { what: 'destination port 65536', at: 'rule:1', set: { dst_port: ['65536'] }, daemon: false },
  { what: 'a reversed port range', at: 'rule:1', set: { dst_port: ['8080-80'] }, daemon: false },
  { what: 'the whole port range', at: 'rule:1', set: { dst_port: ['1-65535'] }, daemon: true },
  { what: 'a rule port with a leading zero', at: 'rule:1', set: { dst_port: ['080'] }, daemon: false },
  { what: 'a listener name with a space in a rule', at: 'rule:3', set: { listener: ['no such'] }, daemon: false },
  { what: 'a rule naming a listener that does not exist', at: 'rule:3', set: { listener: ['nosuch'] }, daemon: true },
  { what: 'an unknown protocol', at: 'rule:3', set: { proto: ['tls', 'quic'] }, daemon: false },
  { what: 'an upstream name that does not exist', at: 'rule:1', set: { upstream: 'nosuch' }, daemon: false },
  { what: 'a forward without port', at: 'rule:2', set: { forward: 'printer.lan' }, daemon: false },
  { what: 'a forward to [2001:db8::5]:22', at: 'rule:2', set: { forward: '[2001:db8::5]:22' }, daemon: true },
  { what: 'a forward port with a leading zero', at: 'rule:2', set: { forward: 'printer.lan:0631' }, daemon: false },
  { what: 'a forward host whose last label is a number', at: 'rule:2', set: { forward: 'a.b.c.1:80' }, daemon: false },
  {
    what: 'a forward to an IPv6 address in brackets that is IPv4',
    at: 'rule:2',
    set: { forward: '[1.2.3.4]:80' },
    daemon: false,
  },
  {
    what: 'an upstream action without upstream',
    at: 'rule:1',
    set: { upstream: null },
    daemon: false,
    luci: 'repairs',
  },
  // capture
  { what: 'capture to a mixed listener', at: 'capture', set: { listener: 'proxy' }, daemon: false },
  { what: 'capture to a listener that does not exist', at: 'capture', set: { listener: 'nosuch' }, daemon: false },
  { what: 'capture without listener', at: 'capture', set: { listener: null }, daemon: false },
  {
    what: 'capture off with a mixed listener',
    at: 'capture',
    set: { enabled: '0', listener: 'proxy' },
    daemon: true,
    errorOn: 'listener',
  },
  {
    what: 'capture to a redirect listener on 127.0.0.1',
    at: 'listener:1',
    set: { address: '127.0.0.1' },
    daemon: false,
    errorAt: 'capture',
    errorOn: 'listener',
  },
  {
    what: 'IPv6 capture to a redirect listener on 0.0.0.0',
    at: 'listener:1',
    set: { address: '0.0.0.0' },
    daemon: false,
    errorAt: 'capture',
    errorOn: 'listener',
  },
  {
    what: 'IPv4 capture to a redirect listener on 0.0.0.0',
    at: 'listener:1',
    set: { address: '0.0.0.0' },
    more: [['capture', { ipv6: '0' }]],
    daemon: true,
  },
  { what: 'IPv6 capture to a redirect listener on 0::0', at: 'listener:1', set: { address: '0::0' }, daemon: true },
  { what: 'a LAN device name with a space', at: 'capture', set: { lan: ['br lan'] }, daemon: false },
  { what: 'a VLAN device', at: 'capture', set: { lan: ['eth0.2'] }, daemon: true },
  { what: 'a LAN device name of 16 characters', at: 'capture', set: { lan: ['a'.repeat(16)] }, daemon: false },
  { what: 'capture port 0', at: 'capture', set: { ports: ['0'] }, daemon: false },
  { what: 'capture port 65536', at: 'capture', set: { ports: ['65536'] }, daemon: false },
  { what: 'capture port 8080', at: 'capture', set: { ports: ['8080'] }, daemon: true },
  {
    what: 'an IPv6 include without IPv6 capture',
    at: 'capture',
    set: { ipv6: '0', include_src: ['fd00::/8'] },
    daemon: false,
    errorOn: 'include_src',
  },
  { what: 'an IPv6 include with IPv6 capture', at: 'capture', set: { include_src: ['fd00::/8'] }, daemon: true },
  { what: 'an IPv4-mapped bypass', at: 'capture', set: { bypass: ['::ffff:1.2.3.4'] }, daemon: false },
  { what: 'a bad bypass', at: 'capture', set: { bypass: ['10.0.0.0/40'] }, daemon: false },
  { what: 'a bad exclude', at: 'capture', set: { exclude_src: ['x'] }, daemon: false },
  { what: 'a MAC with a "g"', at: 'capture', set: { include_mac: ['aa:bb:cc:dd:ee:fg'] }, daemon: false },
  { what: 'a MAC in capitals', at: 'capture', set: { include_mac: ['AA:BB:CC:DD:EE:01'] }, daemon: true },
  { what: 'a MAC with "-"', at: 'capture', set: { exclude_mac: ['aa-bb-cc-dd-ee-ff'] }, daemon: false },
  // LuCI's macaddr refuses group addresses whose first octet is written in digits; no device sends from one
  {
    what: 'a multicast MAC',
    at: 'capture',
    set: { exclude_mac: ['01:00:5e:00:00:01'] },
    daemon: true,
    luci: 'stricter',
  },
  // the form checks capture values also while capture is off (the daemon only when it is on)
  {
    what: 'a bad MAC while capture is off',
    at: 'capture',
    set: { enabled: '0', exclude_mac: ['zz'] },
    daemon: true,
    luci: 'stricter',
    errorOn: 'exclude_mac',
  },
  // tproxy and dns listeners, the rules' network, UDP and DNS capture, admin HTTP
  // tp is capture.udp_listener: without udp it cannot be
  {
    what: 'a tproxy listener for tcp only',
    at: 'listener:4',
    set: { networks: ['tcp'] },
    daemon: false,
    errorAt: 'capture',
    errorOn: 'udp_listener',
  },
  { what: 'a tproxy listener for udp and tcp', at: 'listener:4', set: { networks: ['udp', 'tcp'] }, daemon: true },
  { what: 'TCP capture to a tproxy listener without tcp', at: 'capture', set: { listener: 'tp' }, daemon: false },
  { what: 'max_flows 0', at: 'listener:4', set: { max_flows: '0' }, daemon: false },
  { what: 'udp_idle_timeout 86401', at: 'listener:4', set: { udp_idle_timeout: '86401' }, daemon: false },
  {
    what: 'a dns server given by name',
    at: 'listener:5',
    set: { server: ['dns.example:53'] },
    daemon: false,
  },
  {
    what: 'a DNS-over-TLS server given by name only',
    at: 'listener:5',
    set: { server: ['tls://dns.quad9.net'] },
    daemon: false,
  },
  {
    what: 'a DNS-over-TLS server with a name to verify',
    at: 'listener:5',
    set: { server: ['tls://dns.quad9.net@[2620:fe::fe]:853'] },
    daemon: true,
  },
  {
    what: 'a DNS-over-TLS server at a bracketed IPv6, no port',
    at: 'listener:5',
    set: { server: ['tls://dns.quad9.net@[2620:fe::fe]', '[2620:fe::9]'] },
    daemon: true,
  },
  { what: 'a resolver at a bracketed IPv4', at: 'listener:5', set: { server: ['[9.9.9.9]'] }, daemon: false },
  { what: 'a relative CA bundle', at: 'listener:5', set: { ca_bundle: 'ca.pem' }, daemon: false },
  { what: 'udp_idle_timeout on a mixed listener', at: 'listener:0', set: { udp_idle_timeout: '30' }, daemon: true },
  {
    what: 'udp_idle_timeout on an http listener',
    at: 'listener:0',
    set: { type: 'http', udp_idle_timeout: '30' },
    daemon: false,
    // The form hides the option for http and drops it on save.
    luci: 'repairs',
  },
  { what: 'a static name line without a name', at: 'listener:5', set: { host: ['10.0.0.1'] }, daemon: false },
  {
    what: 'a rejected name resolving to a CIDR',
    at: 'listener:5',
    set: { reject_address: ['10.0.0.0/8'] },
    daemon: false,
  },
  { what: 'dns timeout 61', at: 'listener:5', set: { timeout: '61' }, daemon: false },
  { what: 'a rule for quic', at: 'rule:0', set: { network: ['quic'] }, daemon: false },
  {
    what: 'UDP capture to a redirect listener',
    at: 'capture',
    set: { udp_listener: 'redir' },
    daemon: false,
  },
  { what: 'DNS capture to a tproxy listener', at: 'capture', set: { dns_listener: 'tp' }, daemon: false },
  { what: 'UDP capture without a listener', at: 'capture', set: { udp_listener: null }, daemon: false },
  { what: 'tproxy_mark equal to the firewall mark', at: 'capture', set: { tproxy_mark: '255' }, daemon: false },
  {
    what: 'tproxy_mark equal to the firewall mark without UDP capture',
    at: 'capture',
    set: { tproxy_mark: '255', udp: '0' },
    daemon: true,
  },
  { what: 'tproxy_table 2147483648', at: 'capture', set: { tproxy_table: '2147483648' }, daemon: false },
  { what: 'admin HTTP on 0.0.0.0 without a secret', at: 'main', set: { admin_listen: '0.0.0.0:9090' }, daemon: false },
  {
    what: 'admin HTTP on 0.0.0.0 with a secret',
    at: 'main',
    set: { admin_listen: '0.0.0.0:9090', admin_secret: 's3cret' },
    daemon: true,
  },
  { what: 'admin HTTP on [::1] without a secret', at: 'main', set: { admin_listen: '[::1]:9090' }, daemon: true },
  { what: 'admin HTTP on a host name', at: 'main', set: { admin_listen: 'localhost:9090' }, daemon: false },
  // the mesh: hbone listener (listener:6) and upstream (upstream:2), rules on the peer (rule:4), the mesh section
  { what: 'a peer that is not a SPIFFE id', at: 'listener:6', set: { peers: ['gw-a'] }, daemon: false },
  {
    what: 'peers on a mixed listener',
    at: 'listener:0',
    set: { peers: ['spiffe://home.arpa/ns/routers/sa/gw-a'] },
    daemon: false,
    luci: 'repairs',
  },
  // the daemon takes HBONE's [::]:15008; the form asks for both (as for every listener)
  {
    what: 'an hbone listener without address and port',
    at: 'listener:6',
    set: { address: null, port: null },
    daemon: true,
    luci: 'stricter',
  },
  { what: 'an hbone peer given by name', at: 'upstream:2', set: { server: 'gw-b.home.arpa' }, daemon: false },
  { what: 'an hbone peer on IPv6', at: 'upstream:2', set: { server: 'fd00::2' }, daemon: true },
  { what: 'a socks5 upstream given by name', at: 'upstream:0', set: { server: 'vpn.example' }, daemon: true },
  { what: 'an hbone identity without spiffe://', at: 'upstream:2', set: { identity: 'gw-b' }, daemon: false },
  {
    what: 'an hbone identity outside its trust domain',
    at: 'upstream:2',
    set: { identity: 'spiffe://other.arpa/ns/routers/sa/gw-b' },
    daemon: false,
  },
  {
    what: 'an hbone trust domain the identity is not in',
    at: 'upstream:2',
    set: { trust_domain: 'other.arpa' },
    daemon: false,
    errorOn: 'identity',
  },
  { what: 'an hbone trust domain in capitals', at: 'upstream:2', set: { trust_domain: 'Home.arpa' }, daemon: false },
  {
    what: 'an hbone upstream with a user name',
    at: 'upstream:2',
    set: { username: 'u', password: 'p' },
    daemon: false,
    luci: 'repairs',
  },
  { what: 'an hbone upstream without port (15008)', at: 'upstream:2', set: { port: null }, daemon: true },
  { what: 'a socks5 upstream without port', at: 'upstream:0', set: { port: null }, daemon: false },
  // the public gate's side of a reverse tunnel: the peer named, no server
  {
    what: 'an hbone upstream named by identity, without server (reverse tunnel only)',
    at: 'upstream:2',
    set: { server: null, port: null },
    daemon: true,
  },
  {
    what: 'an hbone upstream named by node only, without server',
    at: 'upstream:2',
    set: { server: null, port: null, identity: null, node: 'ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ' },
    daemon: true,
  },
  {
    what: 'an hbone upstream with neither server, identity nor node',
    at: 'upstream:2',
    set: { server: null, identity: null },
    daemon: false,
  },
  {
    what: 'an hbone node id of 51 characters',
    at: 'upstream:2',
    set: { node: 'ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3N' },
    daemon: false,
  },
  {
    what: 'a node id on a socks5 upstream',
    at: 'upstream:0',
    set: { node: 'ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ' },
    daemon: false,
    luci: 'repairs',
  },
  {
    what: 'an identity on a socks5 upstream',
    at: 'upstream:0',
    set: { identity: 'spiffe://a/ns/b/sa/c' },
    daemon: false,
    luci: 'repairs',
  },
  {
    what: 'a rule on a peer id without a path',
    at: 'rule:4',
    set: { src_identity: ['spiffe://home.arpa'] },
    daemon: false,
  },
  {
    what: 'a rule on a peer trust domain with a space',
    at: 'rule:4',
    set: { src_trust_domain: ['home arpa'] },
    daemon: false,
  },
  {
    what: 'a rule on a node id in lower case',
    at: 'rule:4',
    set: { src_node: ['ze5xizvev35ccflg4rksnad2zkk3x6qmo7xao4qndqljib2du3nq'] },
    daemon: true,
  },
  {
    what: 'a rule on a node id ending in B',
    at: 'rule:4',
    set: { src_node: ['ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NB'] },
    daemon: false,
  },
  {
    what: 'a rule on a node id of 51 characters',
    at: 'rule:4',
    set: { src_node: ['ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3N'] },
    daemon: false,
  },
  { what: 'a mesh trust domain in capitals', at: 'mesh', set: { trust_domain: 'Home' }, daemon: false },
  { what: 'a relative identity directory', at: 'mesh', set: { identity_dir: 'etc/ugate' }, daemon: false },
  { what: 'a key file elsewhere', at: 'mesh', set: { key: '/etc/ugate/router.key' }, daemon: true },
  // routing by node name (docs/mesh.md): the node suffix, the mesh action, hbone relays
  { what: 'a node suffix', at: 'mesh', set: { node_suffix: 'mesh' }, daemon: true },
  { what: 'a node suffix in capitals (lower-cased)', at: 'mesh', set: { node_suffix: 'Nodes.Home' }, daemon: true },
  { what: 'a node suffix of digits', at: 'mesh', set: { node_suffix: '123' }, daemon: true },
  { what: 'a node suffix with an empty label', at: 'mesh', set: { node_suffix: 'a..b' }, daemon: false },
  { what: 'a node suffix starting with "-"', at: 'mesh', set: { node_suffix: '-x' }, daemon: false },
  { what: 'a node suffix with a leading dot', at: 'mesh', set: { node_suffix: '.mesh' }, daemon: false },
  { what: 'a node suffix with a trailing dot', at: 'mesh', set: { node_suffix: 'mesh.' }, daemon: false },
  { what: 'a node suffix label of 64', at: 'mesh', set: { node_suffix: `${'a'.repeat(64)}.mesh` }, daemon: false },
  { what: 'a node suffix not in ASCII', at: 'mesh', set: { node_suffix: 'mésh' }, daemon: false },
  { what: 'a rule with the mesh action', at: 'rule:2', set: { action: 'mesh', forward: null }, daemon: true },
  // the daemon reads upstream only for action upstream; the form hides it and drops it on save
  { what: 'a mesh rule with a leftover upstream', at: 'rule:1', set: { action: 'mesh' }, daemon: true },
  { what: 'an hbone relay', at: 'upstream:2', set: { relay: '1' }, daemon: true },
  { what: 'an hbone relay written "yes"', at: 'upstream:2', set: { relay: 'yes' }, daemon: true },
  // shown unchecked, dropped on save
  { what: 'an hbone relay flag "maybe"', at: 'upstream:2', set: { relay: 'maybe' }, daemon: false, luci: 'repairs' },
  {
    what: 'an hbone relay without server',
    at: 'upstream:2',
    set: { relay: '1', server: null, port: null },
    daemon: false,
    errorOn: 'server',
  },
  {
    what: 'an hbone upstream not a relay, without server',
    at: 'upstream:2',
    set: { relay: '0', server: null, port: null },
    daemon: true,
  },
  { what: 'a relay flag on a socks5 upstream', at: 'upstream:0', set: { relay: '1' }, daemon: false, luci: 'repairs' },
  // reverse tunnels: the public gate's listener, and the gate behind NAT's entries
  { what: 'a reverse id that is not a SPIFFE id', at: 'listener:6', set: { reverse: ['gate-c'] }, daemon: false },
  {
    what: 'a reverse list on a mixed listener',
    at: 'listener:0',
    set: { reverse: ['spiffe://home.arpa/ns/home/sa/gate-c'] },
    daemon: false,
    luci: 'repairs',
  },
  { what: 'a reverse entry named with a space', at: 'reverse:0', set: { name: 'my vps' }, daemon: false },
  { what: 'a reverse entry named as a listener', at: 'reverse:0', set: { name: 'proxy' }, daemon: false },
  { what: 'a reverse entry named explicitly', at: 'reverse:0', set: { name: 'relay-1' }, daemon: true },
  { what: 'a reverse relay with a "!"', at: 'reverse:0', set: { server: 'bad!host' }, daemon: false },
  { what: 'a reverse relay by IPv4', at: 'reverse:0', set: { server: '203.0.113.5' }, daemon: true },
  { what: 'a reverse relay by IPv6', at: 'reverse:0', set: { server: '2001:db8::5' }, daemon: true },
  { what: 'a reverse relay in brackets', at: 'reverse:0', set: { server: '[2001:db8::5]' }, daemon: false },
  { what: 'a reverse entry without relay', at: 'reverse:0', set: { server: null }, daemon: false },
  { what: 'a reverse relay without port (15008)', at: 'reverse:0', set: { port: null }, daemon: true },
  { what: 'a reverse relay on port 0', at: 'reverse:0', set: { port: '0' }, daemon: false },
  { what: 'a reverse relay on port 65536', at: 'reverse:0', set: { port: '65536' }, daemon: false },
  { what: 'a relay id without spiffe://', at: 'reverse:0', set: { relay_id: 'relay' }, daemon: false },
  { what: 'no relay id (any of the trust domain)', at: 'reverse:0', set: { relay_id: null }, daemon: true },
  { what: 'retry 0.001', at: 'reverse:0', set: { retry: '0.001' }, daemon: false },
  { what: 'retry 0.01', at: 'reverse:0', set: { retry: '0.01' }, daemon: true },
  { what: 'retry_max 3601', at: 'reverse:0', set: { retry_max: '3601' }, daemon: false },
  { what: 'retry_max below retry (the daemon waits retry)', at: 'reverse:0', set: { retry_max: '0.1' }, daemon: true },
  { what: 'ping_interval 0.05', at: 'reverse:0', set: { ping_interval: '0.05' }, daemon: false },
  { what: 'ping_interval 1e1', at: 'reverse:0', set: { ping_interval: '1e1' }, daemon: false },
  { what: 'ping_timeout 3600', at: 'reverse:0', set: { ping_timeout: '3600' }, daemon: true },
  { what: 'ping_timeout -1', at: 'reverse:0', set: { ping_timeout: '-1' }, daemon: false },
  // the same keep-alive on an hbone listener (listener:6) and an hbone upstream (upstream:2)
  { what: 'a listener ping_interval 0.5', at: 'listener:6', set: { ping_interval: '0.5' }, daemon: true },
  { what: 'a listener ping_interval 0.05', at: 'listener:6', set: { ping_interval: '0.05' }, daemon: false },
  { what: 'a listener ping_timeout 3601', at: 'listener:6', set: { ping_timeout: '3601' }, daemon: false },
  { what: 'an upstream ping_timeout 1', at: 'upstream:2', set: { ping_timeout: '1' }, daemon: true },
  { what: 'an upstream ping_interval "ten"', at: 'upstream:2', set: { ping_interval: 'ten' }, daemon: false },
]

t.test('settings: validators agree with the daemon', async (t) => {
  for (const c of CASES) {
    await t.test(c.what, async (t) => {
      const text = uciText(edited(c.at, c.set, c.more))
      const d = daemon(text)
      t.equal(d === true, c.daemon, `daemon: ${d === true ? 'accepts' : d}`)
      const page = await settings(text)
      const errors = page.errors()
      const luciAccepts = errors.length === 0
      const want = c.luci === 'stricter' ? false : c.luci === 'repairs' ? true : c.daemon
      t.equal(luciAccepts, want, `form: ${luciAccepts ? 'accepts' : JSON.stringify(errors)}`)
      if (!luciAccepts) {
        const where = c.errorAt ?? c.at
        const sid = sidOf(page, where)
        const option = c.errorOn ?? Object.keys(c.set)[0]!
        t.ok(
          errors.some((e) => e.sid === sid && e.option === option),
          `the error is on ${where}.${option}: ${JSON.stringify(errors)}`,
        )
        await t.rejects(page.save(), 'saving is refused')
        return
      }
      // What the form saves is what the daemon runs.
      await page.save()
      const saved = page.uci.export('ugate')
      t.equal(daemon(saved), true, 'the daemon accepts the saved config')
      if (c.daemon)
        t.same(configFromUci(saved, 'saved'), configFromUci(text, 'given'), 'saving changes nothing the daemon sees')
    })
  }
})

// ---- random mutations -------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** 1-3 random edits (insert, delete, replace) of a seed value. */
function mutate(rand: () => number, seeds: string[], alphabet: string): string {
  let s = seeds[Math.floor(rand() * seeds.length)]!
  const n = 1 + Math.floor(rand() * 3)
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rand() * (s.length + 1))
    const ch = alphabet[Math.floor(rand() * alphabet.length)]!
    const op = rand()
    if (op < 0.4) s = s.slice(0, at) + ch + s.slice(at)
    else if (op < 0.7) s = s.slice(0, at) + s.slice(at + 1)
    else s = s.slice(0, at) + ch + s.slice(at + 1)
  }
  return s
}

/** IPv6 text in which "::" stands for one group (8 groups in all): valid, but LuCI's parser miscounts it. */
function oneGroupGap(v: string): boolean {
  const addr = v.replace(/^\[|\].*$/g, '').replace(/\/.*$/, '')
  if (!addr.includes('::')) return false
  const groups = addr.split('::').flatMap((h) => (h === '' ? [] : h.split(':')))
  const count = groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0)
  return count === 7
}

/**
 * Disagreements of the whole form that are known and accepted: the form
 * refuses, the daemon accepts. Each is a quirk of LuCI's own datatypes (the
 * form keeps the datatypes for LuCI's hints), in front of ug.*.
 */
const KNOWN_DIFFERENCES: Array<{ why: string; test: (kind: string, v: string) => boolean }> = [
  { why: 'LuCI\'s IPv6 parser refuses a "::" that stands for one group', test: (_k, v) => oneGroupGap(v) },
  {
    why: "LuCI's uinteger/port want digits only; the uci reader also takes 5.0 and -0",
    test: (k, v) => k === 'number' && /^-?[0-9]+\.[0-9]+$|^-0+$/.test(v),
  },
  {
    why: "LuCI's macaddr refuses group addresses with a first octet in digits",
    test: (k, v) => k === 'mac' && /^[0-9]{2}:/.test(v) && Number(v.slice(0, 2)) % 2 === 1,
  },
  { why: 'LuCI\'s netdevname refuses "." and ".."', test: (k, v) => k === 'ifname' && (v === '.' || v === '..') },
  {
    why: 'LuCI\'s hostname wants a letter or digit at the end unless the name has only letters, digits and "_"',
    test: (k, v) => k === 'server' && /_$/.test(v) && /[^A-Za-z0-9_]/.test(v),
  },
]

/* eslint-disable @typescript-eslint/no-explicit-any */
/** resources/ugate.js as a view gets it ('require ugate as ug'): each check returns true or its message. */
type Ug = Record<string, (...args: any[]) => any>

interface Fuzz {
  kind: string
  at: string
  option: string
  list?: boolean
  /** A select (ListValue) in the form: the browser offers only its choices, so other values go to ug's check only. */
  select?: boolean
  seeds: string[]
  alphabet: string
}

/** BASE's listeners other than the N-th, as ug.checkListenPort takes them. */
function otherListeners(n: number): Array<{ name: string; address: string; port: string }> {
  return BASE.filter((s) => s.type === 'listener')
    .filter((_s, i) => i !== n)
    .map((s) => ({ name: String(s.options.name), address: String(s.options.address), port: String(s.options.port) }))
}

/** The first failing check, or true. */
const all = (...verdicts: Array<true | string>): true | string => verdicts.find((v) => v !== true) ?? true

const capture = locate(BASE, 'capture').options
const listener0 = locate(BASE, 'listener:0').options

const FUZZ: Fuzz[] = [
  {
    kind: 'address',
    at: 'listener:0',
    option: 'address',
    seeds: ['127.0.0.1', '::1', '0.0.0.0', '::', 'fe80::1', '2001:db8::1:2', '::ffff:10.0.0.1', '1:2:3:4:5:6:7:8'],
    alphabet: '0123456789abcdef:.:./[]%',
  },
  {
    kind: 'cidr',
    at: 'listener:0',
    option: 'allow',
    list: true,
    seeds: ['10.0.0.0/8', '192.168.1.1', 'fd00::/8', '::/0', '::ffff:1.2.3.0/120', '1::2:3'],
    alphabet: '0123456789abcdef:./',
  },
  {
    kind: 'cidr',
    at: 'capture',
    option: 'bypass',
    list: true,
    seeds: ['10.0.0.0/8', '203.0.113.7', 'fd00::/8', '::ffff:1.2.3.0/120', '2001:db8::/96'],
    alphabet: '0123456789abcdef:./f',
  },
  {
    kind: 'target',
    at: 'listener:2',
    option: 'target',
    seeds: ['example.com:80', '[::1]:80', '10.0.0.1:65535', 'a_b.example:8080', 'h:1', '[::ffff:1.2.3.4]:443'],
    alphabet: 'abc019.:-[]_',
  },
  {
    kind: 'forward',
    at: 'rule:2',
    option: 'forward',
    seeds: ['192.168.1.20:631', '[2001:db8::5]:22', 'printer.lan:80', 'A.example:443', 'x_y.z:65535'],
    alphabet: 'ab019.:-[]_*',
  },
  {
    kind: 'domain',
    at: 'rule:2',
    option: 'domain',
    list: true,
    seeds: ['printer.lan', 'Example.COM.', 'a-b.c_d', 'xn--x.y', 'a'.repeat(63) + '.b'],
    alphabet: 'az09.-_*A',
  },
  {
    kind: 'suffix',
    at: 'rule:1',
    option: 'domain_suffix',
    list: true,
    seeds: ['example.com', 'com', 'a.b.c'],
    alphabet: 'az09.-_*',
  },
  {
    kind: 'keyword',
    at: 'rule:0',
    option: 'domain_keyword',
    list: true,
    seeds: ['doubleclick', 'ad-service', 'x.y'],
    alphabet: 'aZ09.-_ /',
  },
  {
    kind: 'portrange',
    at: 'rule:1',
    option: 'dst_port',
    list: true,
    seeds: ['80', '8000-8080', '1-65535', '65535'],
    alphabet: '0123456789--',
  },
  {
    kind: 'users',
    at: 'listener:0',
    option: 'users',
    list: true,
    seeds: ['alice:secret', 'a:b:c', 'x:y'],
    alphabet: 'ab:\t :',
  },
  { kind: 'number', at: 'main', option: 'mark', seeds: ['0', '1', '4294967295', '255'], alphabet: '0123456789.-e ' },
  { kind: 'number', at: 'main', option: 'max_connections', seeds: ['0', '1000000', '1024'], alphabet: '0123456789.-' },
  {
    kind: 'number',
    at: 'main',
    option: 'idle_timeout',
    seeds: ['0', '2147483', '0.5', '900'],
    alphabet: '0123456789.-',
  },
  { kind: 'number', at: 'main', option: 'connect_timeout', seeds: ['0.001', '3600', '10'], alphabet: '0123456789.-' },
  { kind: 'number', at: 'listener:3', option: 'tls_port', seeds: ['443', '1', '65535'], alphabet: '0123456789.-' },
  { kind: 'port', at: 'listener:0', option: 'port', seeds: ['1080', '0', '65535'], alphabet: '0123456789.-+ ' },
  {
    kind: 'port',
    at: 'capture',
    option: 'ports',
    list: true,
    seeds: ['80', '443', '65535', '1'],
    alphabet: '0123456789.-',
  },
  {
    kind: 'mac',
    at: 'capture',
    option: 'exclude_mac',
    list: true,
    seeds: ['aa:bb:cc:dd:ee:ff', '00:11:22:33:44:55', '12:34:56:78:9a:bc'],
    alphabet: '0123456789abcdefABF:-',
  },
  {
    kind: 'ifname',
    at: 'capture',
    option: 'lan',
    list: true,
    seeds: ['br-lan', 'eth0.2', 'wan_6', 'abcdefghijklmno', '.'],
    alphabet: 'abr-._ 0:/%',
  },
  {
    kind: 'server',
    at: 'upstream:0',
    option: 'server',
    seeds: ['10.0.0.2', 'proxy.example.com', '2001:db8::1', 'a_b', 'x.y_'],
    alphabet: 'ab.-_019:',
  },
  { kind: 'name', at: 'listener:0', option: 'name', seeds: ['proxy', 'a-b_c', 'x'.repeat(64)], alphabet: 'aZ9-_. !' },
  {
    kind: 'socket',
    at: 'main',
    option: 'admin_socket',
    seeds: ['/var/run/ugate.sock', '/' + 'a'.repeat(106)],
    alphabet: '/a.\t ',
  },
  { kind: 'port', at: 'upstream:0', option: 'port', seeds: ['1080', '1', '65535'], alphabet: '0123456789.-+ ' },
  { kind: 'credential', at: 'upstream:0', option: 'username', seeds: ['u', 'x'.repeat(255)], alphabet: 'ab:\t ' },
  { kind: 'rulename', at: 'rule:0', option: 'name', seeds: ['ads', 'a!~', 'x'.repeat(64)], alphabet: 'aZ9 !~\t' },
  { kind: 'ref', at: 'rule:3', option: 'listener', list: true, seeds: ['redir', 'proxy'], alphabet: 'ab !\t' },
  { kind: 'proto', at: 'rule:3', option: 'proto', list: true, seeds: ['tls', 'http', 'h2'], alphabet: 'tlshp2unkow' },
  { kind: 'ref', at: 'rule:1', option: 'upstream', select: true, seeds: ['vpn', 'corp'], alphabet: 'vpncorx' },
  {
    kind: 'ref',
    at: 'capture',
    option: 'listener',
    select: true,
    seeds: ['redir', 'proxy', 'sni'],
    alphabet: 'redixpsn',
  },
  // tproxy (listener:4) and dns (listener:5) listeners, the rules' network, UDP and DNS capture, admin HTTP
  {
    kind: 'network',
    at: 'listener:4',
    option: 'networks',
    list: true,
    seeds: ['udp', 'tcp'],
    alphabet: 'udptc ',
  },
  {
    kind: 'number',
    at: 'listener:4',
    option: 'udp_idle_timeout',
    seeds: ['0.001', '86400', '60'],
    alphabet: '0123456789.-',
  },
  {
    kind: 'number',
    at: 'listener:4',
    option: 'udp_dns_idle_timeout',
    seeds: ['0.001', '86400', '10'],
    alphabet: '0123456789.-',
  },
  { kind: 'number', at: 'listener:4', option: 'max_flows', seeds: ['1', '1000000', '4096'], alphabet: '0123456789.-' },
  {
    kind: 'dnsserver',
    at: 'listener:5',
    option: 'server',
    list: true,
    seeds: [
      '1.1.1.1',
      '[2606:4700::1111]:53',
      '9.9.9.9:5353',
      '::1',
      'dns.example:53',
      '[::1]:1',
      'tls://9.9.9.9',
      'tls://dns.quad9.net@9.9.9.9:853',
      'tls://a_b.@[2620:fe::fe]:853',
      'tls://1.1.1.1@::1',
    ],
    alphabet: '0123456789abcdef:.[]x@/tls_-',
  },
  {
    kind: 'path',
    at: 'listener:5',
    option: 'ca_bundle',
    seeds: ['/etc/ssl/certs/ca-certificates.crt', '/a', '/etc/ugate/ca bundle.pem'],
    alphabet: '/.abc \t',
  },
  {
    kind: 'hostline',
    at: 'listener:5',
    option: 'host',
    list: true,
    seeds: ['192.168.1.20 printer.lan nas.lan', '::1 localhost', '10.0.0.1 a_b. c-d'],
    alphabet: '019.: \tab-_',
  },
  {
    kind: 'ip',
    at: 'listener:5',
    option: 'reject_address',
    list: true,
    seeds: ['0.0.0.0', '::', '192.0.2.1', '::ffff:1.2.3.4'],
    alphabet: '0123456789abcdef:./',
  },
  { kind: 'number', at: 'listener:5', option: 'timeout', seeds: ['0.001', '60', '2'], alphabet: '0123456789.-' },
  { kind: 'number', at: 'listener:5', option: 'cache_size', seeds: ['0', '1000000', '4096'], alphabet: '0123456789.-' },
  { kind: 'network', at: 'rule:0', option: 'network', list: true, seeds: ['tcp', 'udp'], alphabet: 'udptc ' },
  {
    kind: 'number',
    at: 'capture',
    option: 'tproxy_mark',
    seeds: ['1', '4294967295', '30055', '255'],
    alphabet: '0123456789.-',
  },
  {
    kind: 'number',
    at: 'capture',
    option: 'tproxy_table',
    seeds: ['1', '2147483647', '30055'],
    alphabet: '0123456789.-',
  },
  {
    kind: 'ref',
    at: 'capture',
    option: 'udp_listener',
    select: true,
    seeds: ['tp', 'redir', 'dns'],
    alphabet: 'tpredins',
  },
  {
    kind: 'ref',
    at: 'capture',
    option: 'dns_listener',
    select: true,
    seeds: ['dns', 'tp', 'redir'],
    alphabet: 'tpredins',
  },
  {
    kind: 'adminlisten',
    at: 'main',
    option: 'admin_listen',
    seeds: [
      '127.0.0.1:9090',
      '[::1]:0',
      '127.255.0.1:65535',
      '0.0.0.0:9090',
      '[::ffff:127.0.0.1]:80',
      '[::ffff:7f00:1]:80',
      '[::ffff:10.0.0.1]:80',
      'localhost:80',
    ],
    alphabet: '0123456789.:[]fl',
  },
  {
    kind: 'credential',
    at: 'main',
    option: 'admin_secret',
    seeds: ['s3cret', 'x'.repeat(255)],
    alphabet: 'ab:\t ',
  },
  // the mesh
  ...(['listener:6.peers', 'rule:4.src_identity'] as const).map((field): Fuzz => ({
    kind: 'spiffe',
    at: field.split('.')[0]!,
    option: field.split('.')[1]!,
    list: true,
    seeds: [
      'spiffe://home.arpa/ns/routers/sa/gw-a',
      'spiffe://a/ns/B.c/sa/d_e-f',
      `spiffe://t/ns/n/sa/${'x'.repeat(2020)}`,
    ],
    alphabet: 'spife:/.nsa_-Z. ',
  })),
  {
    kind: 'trustdomain',
    at: 'rule:4',
    option: 'src_trust_domain',
    list: true,
    seeds: ['home.arpa', 'a', 'x_y-z.1', 'd'.repeat(255)],
    alphabet: 'aZ.-_ 09/',
  },
  { kind: 'trustdomain', at: 'mesh', option: 'trust_domain', seeds: ['home.arpa', 'a'], alphabet: 'aZ.-_ 09/' },
  {
    kind: 'nodeid',
    at: 'rule:4',
    option: 'src_node',
    list: true,
    seeds: [
      'ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ',
      'ze5xizvev35ccflg4rksnad2zkk3x6qmo7xao4qndqljib2du3na',
    ],
    alphabet: 'AQaq27190 ',
  },
  {
    kind: 'spiffe',
    at: 'upstream:2',
    option: 'identity',
    seeds: ['spiffe://home.arpa/ns/routers/sa/gw-b', 'spiffe://home.arpa/ns/a/sa/b'],
    alphabet: 'spife:/.nsa_-Z. ',
  },
  {
    kind: 'trustdomain',
    at: 'upstream:2',
    option: 'trust_domain',
    seeds: ['home.arpa', 'home', 'home.arpa.x'],
    alphabet: 'ahome.rp-_ /',
  },
  {
    kind: 'server',
    at: 'upstream:2',
    option: 'server',
    seeds: ['192.0.2.2', 'fd00::2', 'gw.example', '::ffff:1.2.3.4'],
    alphabet: '0123456789abcdef:.x',
  },
  {
    kind: 'suffix',
    at: 'mesh',
    option: 'node_suffix',
    seeds: [
      'mesh',
      'nodes.home',
      'a_b',
      'x'.repeat(63),
      `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
    ],
    alphabet: 'amesh.-_09Z ',
  },
  { kind: 'path', at: 'mesh', option: 'identity_dir', seeds: ['/etc/ugate/identity', '/'], alphabet: '/a.\t ' },
  {
    kind: 'spiffe',
    at: 'listener:6',
    option: 'reverse',
    list: true,
    seeds: ['spiffe://home.arpa/ns/home/sa/gate-c', 'spiffe://a/ns/b/sa/c'],
    alphabet: 'spife:/.nsa_-Z. ',
  },
  {
    kind: 'nodeid',
    at: 'upstream:2',
    option: 'node',
    seeds: ['ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ'],
    alphabet: 'AQaq27190 ',
  },
  {
    kind: 'server',
    at: 'reverse:0',
    option: 'server',
    seeds: ['vps.example.net', '203.0.113.5', '2001:db8::5', 'a_b', '::ffff:1.2.3.4'],
    alphabet: '0123456789abcdef:.x_-[]',
  },
  {
    kind: 'spiffe',
    at: 'reverse:0',
    option: 'relay_id',
    seeds: ['spiffe://home.arpa/ns/vps/sa/relay'],
    alphabet: 'spife:/.nsa_-Z. ',
  },
  { kind: 'number', at: 'reverse:0', option: 'retry', seeds: ['0.01', '3600', '0.5'], alphabet: '0123456789.-e' },
  { kind: 'number', at: 'reverse:0', option: 'ping_timeout', seeds: ['0.1', '3600', '20'], alphabet: '0123456789.-' },
  { kind: 'port', at: 'reverse:0', option: 'port', seeds: ['15008', '1', '65535'], alphabet: '0123456789.-+ ' },
  {
    kind: 'name',
    at: 'reverse:0',
    option: 'name',
    seeds: ['vps', 'relay_1-b', 'a'.repeat(64), 'proxy'],
    alphabet: 'az09_-. ',
  },
]

/** BASE's listener named `name` as ug.checkCaptureListener takes it, or null. */
function baseListener(name: string): { type: string; address: string; networks: string[] } | null {
  const l = BASE.find((s) => s.type === 'listener' && s.options.name === name)
  const networks = l?.options.networks
  return l
    ? {
        type: String(l.options.type),
        address: String(l.options.address),
        networks: Array.isArray(networks) ? networks.map(String) : [],
      }
    : null
}

const upstream0 = locate(BASE, 'upstream:0').options
const upstream2 = locate(BASE, 'upstream:2').options

/** ug's verdict on a value of each fuzzed field (at.option), the other fields as in BASE. */
const UG_CHECK: Record<string, (ug: Ug, v: string) => true | string> = {
  'listener:0.address': (ug, v) =>
    all(ug.checkListenAddress(v), ug.checkListenPort(String(listener0.port), v, otherListeners(0))),
  'listener:0.allow': (ug, v) => ug.checkCidr(v),
  'capture.bypass': (ug, v) => ug.checkCaptureCidr(v, false),
  'listener:2.target': (ug, v) => ug.checkTarget(v),
  'rule:2.forward': (ug, v) => ug.checkForward(v),
  'rule:2.domain': (ug, v) => ug.checkDomainName(v),
  'rule:1.domain_suffix': (ug, v) => ug.checkDomainSuffix(v),
  'rule:0.domain_keyword': (ug, v) => ug.checkKeyword(v),
  'rule:1.dst_port': (ug, v) => ug.checkPortRange(v),
  'listener:0.users': (ug, v) => all(ug.checkUsers([v], v), ug.checkUsers([v], '')),
  'main.mark': (ug, v) => ug.checkMark(v, capture.enabled === '1' && capture.router_self === '1'),
  'main.max_connections': (ug, v) => ug.checkInteger(v, 0, 1000000),
  'main.idle_timeout': (ug, v) => ug.checkSeconds(v, 'idle_timeout'),
  'main.connect_timeout': (ug, v) => ug.checkSeconds(v, 'connect_timeout'),
  'listener:3.tls_port': (ug, v) => ug.checkInteger(v, 1, 65535),
  'listener:0.port': (ug, v) => ug.checkListenPort(v, String(listener0.address), otherListeners(0)),
  'capture.ports': (ug, v) => ug.checkCapturePort(v),
  'capture.exclude_mac': (ug, v) => ug.checkMac(v),
  'capture.lan': (ug, v) => ug.checkIfname(v),
  'upstream:0.server': (ug, v) => ug.checkServer(v),
  'listener:0.name': (ug, v) =>
    ug.checkName(
      v,
      otherListeners(0).map((l) => l.name),
      'listener',
    ),
  'main.admin_socket': (ug, v) => ug.checkSocketPath(v),
  'upstream:0.port': (ug, v) => ug.checkEndpointPort(v, 1),
  'upstream:0.username': (ug, v) =>
    all(ug.checkCredentialPair(v, String(upstream0.password)), ug.checkCredentialPair(String(upstream0.password), v)),
  'rule:0.name': (ug, v) => ug.checkRuleName(v),
  'rule:3.listener': (ug, v) => ug.checkListenerName(v),
  'rule:3.proto': (ug, v) => ug.checkProto(v),
  'rule:1.upstream': (ug, v) =>
    ug.checkUpstreamRef(
      v,
      BASE.filter((s) => s.type === 'upstream').map((s) => s.options.name),
    ),
  'capture.listener': (ug, v) => ug.checkCaptureListener(v, baseListener(v), capture.ipv6 === '1'),
  // tp is capture.udp_listener: it must take udp
  'listener:4.networks': (ug, v) =>
    all(
      ug.checkTproxyNetwork(v),
      ug.checkCaptureListener('tp', { ...baseListener('tp')!, networks: [v] }, capture.ipv6 === '1', 'tproxy'),
    ),
  'listener:4.udp_idle_timeout': (ug, v) => ug.checkSeconds(v, 'udp_idle_timeout'),
  'listener:4.udp_dns_idle_timeout': (ug, v) => ug.checkSeconds(v, 'udp_dns_idle_timeout'),
  'listener:4.max_flows': (ug, v) => ug.checkInteger(v, 1, 1000000),
  'listener:5.server': (ug, v) => ug.checkDnsServer(v),
  'listener:5.ca_bundle': (ug, v) => ug.checkFilePath(v),
  'listener:5.host': (ug, v) => ug.checkHostLine(v),
  'listener:5.reject_address': (ug, v) => ug.checkIp(v),
  'listener:5.timeout': (ug, v) => ug.checkSeconds(v, 'timeout'),
  'listener:5.cache_size': (ug, v) => ug.checkInteger(v, 0, 1000000),
  'rule:0.network': (ug, v) => ug.checkNetwork(v),
  'capture.tproxy_mark': (ug, v) =>
    ug.checkTproxyMark(v, locate(BASE, 'main').options.mark, capture.enabled === '1' && capture.udp === '1'),
  'capture.tproxy_table': (ug, v) => ug.checkInteger(v, 1, 2147483647),
  'capture.udp_listener': (ug, v) => ug.checkCaptureListener(v, baseListener(v), capture.ipv6 === '1', 'tproxy'),
  'capture.dns_listener': (ug, v) => ug.checkCaptureListener(v, baseListener(v), capture.ipv6 === '1', 'dns'),
  'main.admin_listen': (ug, v) => ug.checkAdminListen(v, ''),
  'main.admin_secret': (ug, v) => ug.checkSecret(v),
  'listener:6.peers': (ug, v) => ug.checkSpiffeId(v),
  'rule:4.src_identity': (ug, v) => ug.checkSpiffeId(v),
  'rule:4.src_trust_domain': (ug, v) => ug.checkTrustDomain(v),
  'mesh.trust_domain': (ug, v) => ug.checkTrustDomain(v),
  'rule:4.src_node': (ug, v) => ug.checkNodeId(v),
  'upstream:2.identity': (ug, v) => ug.checkUpstreamIdentity(v, String(upstream2.trust_domain)),
  'upstream:2.trust_domain': (ug, v) =>
    all(ug.checkTrustDomain(v), ug.checkUpstreamIdentity(String(upstream2.identity), v)),
  'upstream:2.server': (ug, v) => ug.checkUpstreamServer(v, 'hbone'),
  'mesh.identity_dir': (ug, v) => ug.checkFilePath(v),
  'mesh.node_suffix': (ug, v) => ug.checkNodeSuffix(v),
  'listener:6.reverse': (ug, v) => ug.checkSpiffeId(v),
  'upstream:2.node': (ug, v) => ug.checkUpstreamNode(v),
  'reverse:0.server': (ug, v) => all(ug.checkServer(v), ug.checkReverseMesh(true)),
  'reverse:0.relay_id': (ug, v) => ug.checkSpiffeId(v),
  'reverse:0.retry': (ug, v) => ug.checkSeconds(v, 'retry'),
  'reverse:0.ping_timeout': (ug, v) => ug.checkSeconds(v, 'ping_timeout'),
  'reverse:0.port': (ug, v) => ug.checkEndpointPort(v, 1),
  'reverse:0.name': (ug, v) =>
    ug.checkName(
      v,
      BASE.filter((s) => s.type === 'listener').map((s) => String(s.options.name)),
      'reverse tunnel or listener',
    ),
}

const SAMPLES = 200 // per field: 63 fields, 12 600 values

/**
 * The generated values of each field (seeded, so failures reproduce), then
 * the seeds themselves (the edges: 65535, 4294967295, 64 characters, ...),
 * with the daemon's verdict on each.
 */
const generated = (() => {
  const rand = prng(0x75676174)
  return FUZZ.map((f) => {
    const values: Array<{ v: string; daemon: true | string }> = []
    const add = (v: string) =>
      values.push({ v, daemon: daemon(uciText(edited(f.at, { [f.option]: f.list ? [v] : v }))) })
    for (let i = 0; i < SAMPLES; i++) {
      const v = mutate(rand, f.seeds, f.alphabet)
      if (v !== '') add(v) // empty means "unset": covered by the table
    }
    f.seeds.forEach(add)
    return { f, values }
  })
})()

t.test("random mutations: ug's checks and the daemon give the same verdict", async (t) => {
  const ug: Ug = await loadModule('ugate')
  let total = 0
  for (const { f, values } of generated) {
    const unexplained: string[] = []
    const check = UG_CHECK[`${f.at}.${f.option}`]
    if (!check) {
      t.fail(`no ug check for ${f.at}.${f.option}`)
      continue
    }
    for (const { v, daemon: d } of values) {
      const u = check(ug, v)
      if (u !== true && (typeof u !== 'string' || u === '')) unexplained.push(`${JSON.stringify(v)}: ug returned ${u}`)
      else if ((u === true) !== (d === true))
        unexplained.push(
          `${JSON.stringify(v)}: daemon ${d === true ? 'accepts' : `refuses (${d})`}, ug ${u === true ? 'accepts' : `refuses (${u})`}`,
        )
    }
    total += values.length
    t.same(unexplained, [], `${f.at}.${f.option}: ${values.length} values, the same verdict on each`)
  }
  t.ok(total > SAMPLES * FUZZ.length * 0.9, `${total} values checked`)
})

t.test("ug.checkListenPort's clash agrees with address.ts listenAddressesClash", async (t) => {
  const ug: Ug = await loadModule('ugate')
  const addresses = ['0.0.0.0', '127.0.0.1', '10.0.0.1', '::', '0:0::0', '::1', '0::01', '::ffff:127.0.0.1', 'fe80::1']
  const ports = ['0', '80', '080', '81']
  let clashes = 0
  for (const a of addresses)
    for (const b of addresses)
      for (const pa of ports)
        for (const pb of ports) {
          const ep = (host: string, port: string) => parseEndpoint(formatHostPort(host, Number(port)), 'listen')
          const daemonClash = listenAddressesClash(ep(a, pa), ep(b, pb))
          const r = ug.checkListenPort(pa, a, [{ name: 'other', address: b, port: pb }])
          if (daemonClash) clashes++
          t.equal(r !== true, daemonClash, `${a} port ${pa} / ${b} port ${pb}: ${r}`)
          if (daemonClash) t.equal(r, `${a} port ${pa} is already used by listener "other"`)
        }
  t.ok(clashes > 0, `${clashes} clashes among the pairs`)
})

t.test('random mutations: the whole form and the daemon give the same verdict', async (t) => {
  const page = await settings(uciText(BASE))
  const seen: Record<string, string[]> = {}
  for (const { f, values } of generated.filter((g) => !g.f.select)) {
    const sid = sidOf(page, f.at)
    const original = page.get(sid, f.option) as Value
    const unexplained: string[] = []
    let agreed = 0
    for (const { v, daemon: d } of values) {
      page.set(sid, f.option, f.list ? [v] : v)
      const errors = page.errors()
      page.set(sid, f.option, original)
      const luci = errors.length === 0
      if (luci === (d === true)) {
        agreed++
        continue
      }
      const known = !luci ? KNOWN_DIFFERENCES.find((k) => k.test(f.kind, v)) : undefined
      if (known) (seen[known.why] ??= []).push(`${f.option}=${JSON.stringify(v)}`)
      else
        unexplained.push(
          `${JSON.stringify(v)}: daemon ${d === true ? 'accepts' : `refuses (${d})`}, form ${luci ? 'accepts' : `refuses (${errors.map((e) => e.message).join('; ')})`}`,
        )
    }
    t.same(unexplained, [], `${f.at}.${f.option}: ${agreed} of ${values.length} agree, no unexplained disagreement`)
  }
  for (const [why, examples] of Object.entries(seen)) t.comment(`known: ${why}: ${examples.slice(0, 4).join(', ')}`)
})

// ---- editing --------------------------------------------------------------------------

t.test('settings: switching a listener to forward drops its users on save', async (t) => {
  const page = await settings(uciText(BASE))
  const proxy = page.sids('listener')[0]!
  page.set(proxy, 'type', 'forward')
  t.match(page.check(proxy, 'target'), /non-empty/, 'a forward listener needs a target')
  await t.rejects(page.save(), /must not be empty|invalid input/)
  page.set(proxy, 'target', '192.168.1.10:80')
  await page.save()
  const saved = page.uci.export('ugate')
  t.equal(daemon(saved), true)
  const l = configFromUci(saved, 'saved').listeners.find((x) => x.name === 'proxy')!
  t.equal(l.type, 'forward')
  t.notMatch(saved, /alice:secret/, 'users removed with the option hidden')
})

t.test('settings: a listener, an upstream and a rule added in the form reach the daemon', async (t) => {
  const page = await settings(uciText(BASE))
  const l = await page.add('listener')
  t.match(page.check(l, 'name'), /non-empty/, 'a new listener needs a name')
  page.set(l, 'name', 'kids')
  page.set(l, 'type', 'socks')
  page.set(l, 'address', '192.168.1.1')
  page.set(l, 'port', '1080')
  t.equal(page.check(l, 'port'), true, 'another address on the same port')
  page.set(l, 'address', '0.0.0.0')
  t.match(page.check(l, 'port'), /already used by listener "proxy"/, 'the wildcard clashes')
  page.set(l, 'address', '192.168.1.1')

  const u = await page.add('upstream')
  page.set(u, 'name', 'tor')
  page.set(u, 'type', 'socks5')
  page.set(u, 'server', '127.0.0.1')
  page.set(u, 'port', '9050')
  page.set(u, 'username', 'x')
  t.match(page.check(u, 'password'), /both/, 'user name without password')
  page.set(u, 'username', '')
  await page.save()

  // the new upstream is a choice now (the choices are loaded again after a save)
  t.ok(page.option('rule', 'upstream').keylist.includes('tor'))
  const r = await page.add('rule')
  page.set(r, 'listener', ['kids'])
  page.set(r, 'action', 'upstream')
  page.set(r, 'upstream', 'tor')
  await page.save()

  const config = configFromUci(page.uci.export('ugate'), 'saved')
  t.ok(config.listeners.some((x) => x.name === 'kids' && x.type === 'socks'))
  t.same(
    config.upstreams.map((x) => x.name),
    ['vpn', 'corp', 'gwb', 'tor'],
  )
  t.same(config.rules.at(-1), { listener: ['kids'], action: { type: 'upstream', name: 'tor' } })
})

t.test('settings: removing an upstream that a rule uses is reported on the rule', async (t) => {
  const page = await settings(uciText(BASE))
  await page.remove('upstream', page.sids('upstream')[0]!).catch(() => undefined)
  const rule = page.sids('rule')[1]!
  t.match(page.check(rule, 'upstream'), /not configured/)
  t.equal(daemon(page.uci.export('ugate')) === true, false, 'the daemon agrees')
})

t.test('settings: a config without capture and options loads with defaults', async (t) => {
  const text = uciText([
    { type: 'ugate', name: 'main', options: {} },
    { type: 'listener', options: { name: 'p', type: 'mixed', address: '127.0.0.1', port: '1080' } },
  ])
  t.equal(daemon(text), true)
  const page = await settings(text)
  t.same(page.errors(), [])
  t.same(page.sids('capture'), [], 'no capture section: nothing drawn')
  t.equal(page.get('main', 'log_level'), 'info')
  t.equal(page.get('main', 'splice'), '1')
  await page.save()
  t.same(configFromUci(page.uci.export('ugate'), 'saved'), configFromUci(text, 'given'))
})

const shipped = join(luciDir, '..', 'files/etc/config/ugate')
t.test(
  'settings: the shipped /etc/config/ugate',
  { skip: existsSync(shipped) ? false : 'files/etc/config/ugate not there' },
  async (t) => {
    const text = readFileSync(shipped, 'utf8')
    t.equal(daemon(text), true, 'the daemon accepts it')
    const page = await settings(text)
    t.same(page.errors(), [], 'the form accepts it')
    await page.save()
    t.same(
      configFromUci(page.uci.export('ugate'), 'saved'),
      configFromUci(text, 'shipped'),
      'saving it unchanged changes nothing',
    )
    page.set('capture', 'enabled', true)
    t.match(page.check('capture', 'listener'), /redirect listener/, 'capture needs a redirect listener first')

    // Its commented mesh example, uncommented, is a config the daemon and the form accept.
    const mesh = text.replace(/^#(config |\t|$)/gm, '$1')
    t.equal(daemon(mesh), true, 'the daemon accepts the mesh example')
    const config = configFromUci(mesh, 'shipped')
    t.equal(config.mesh?.nodeSuffix, 'mesh')
    t.match(config.upstreams, [{ name: 'vps', type: 'hbone', relay: true }])
    t.match(config.rules, [{ name: 'nodes', listener: ['lan'], action: { type: 'mesh' } }])
    const meshPage = await settings(mesh)
    const hbone = meshPage.sids('listener')[1]!
    t.same(
      meshPage.errors().map((e) => `${e.sid}.${e.option}`),
      [`${hbone}.address`, `${hbone}.port`],
      "the form asks only for the hbone listener's address and port (stricter: CASES)",
    )
    meshPage.set(hbone, 'address', '::')
    meshPage.set(hbone, 'port', '15008')
    t.same(meshPage.errors(), [], 'then it accepts it')
    await meshPage.save()
    t.same(configFromUci(meshPage.uci.export('ugate'), 'saved'), config, 'saving it unchanged changes nothing')
  },
)

t.test('settings: the mesh section shows the node id in use, and is added from the form', async (t) => {
  const mesh = {
    spiffeId: 'spiffe://home.arpa/ns/routers/sa/gw-b',
    nodeId: 'ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ',
  }
  const acl = JSON.parse(readFileSync(join(luciDir, 'root/usr/share/rpcd/acl.d/luci-app-ugate.json'), 'utf8'))
  const running = await loadView('ugate/settings', {
    uci: { ugate: uciText(BASE) },
    rpc: { 'ugate.status': () => ({ running: true, mesh }) },
    acl,
  })
  t.same(JSON.parse(JSON.stringify(running.declared)), [{ object: 'ugate', method: 'status', expect: { '': {} } }])
  t.equal(
    running.option('mesh', 'node_id').cfgvalue('mesh'),
    `${mesh.nodeId} (${mesh.spiffeId})`,
    "the node id from the gateway's status (the ACL grants it)",
  )
  const stopped = await settings(uciText(BASE))
  t.equal(stopped.option('mesh', 'node_id').cfgvalue('mesh'), 'not running with a mesh identity', 'no answer: said so')
  t.same(stopped.errors(), [], 'the form works without the status')

  // A config without the section: none drawn; "Add" makes config mesh 'mesh'.
  const without = BASE.filter((x) => x.type !== 'mesh')
  const page = await settings(uciText(without))
  t.same(page.sids('mesh'), [], 'no mesh section: nothing drawn')
  t.equal(await page.add('mesh'), 'mesh')
  t.same(page.sids('mesh'), ['mesh'])
  page.set('mesh', 'trust_domain', 'Home')
  t.match(page.check('mesh', 'trust_domain'), /may only hold/)
  page.set('mesh', 'trust_domain', 'home.arpa')
  await page.save()
  const saved = page.uci.export('ugate')
  t.match(saved, /config mesh 'mesh'\n\toption trust_domain 'home\.arpa'/)
  t.match(configFromUci(saved, 'saved').mesh, { identityDir: '/etc/ugate/identity', trustDomain: 'home.arpa' })
})

t.test('settings: a reverse tunnel added in the form reaches the daemon; without the mesh it is refused', async (t) => {
  const page = await settings(uciText(BASE))
  t.same(page.sids('reverse'), ['vps'])
  t.equal(page.get('vps', 'name'), 'vps', "a named section without a name option shows the daemon's name")
  const r = await page.add('reverse')
  t.match(page.check(r, 'name'), /non-empty/, 'a new entry needs a name')
  t.match(page.check(r, 'server'), /non-empty/, 'and a public gate')
  page.set(r, 'name', 'vps')
  t.match(page.check(r, 'name'), /"vps" is already the name of another reverse tunnel or listener/)
  page.set(r, 'name', 'hb')
  t.match(page.check(r, 'name'), /already the name/, "a listener's name: the rules could not tell them apart")
  page.set(r, 'name', 'office')
  page.set(r, 'server', '2001:db8::7')
  page.set(r, 'relay_id', 'spiffe://home.arpa/ns/office/sa/relay')
  page.set(r, 'ping_interval', '0.01')
  t.match(page.check(r, 'ping_interval'), /from 0\.1 to 3600/)
  await t.rejects(page.save(), /Keep-alive/, 'a bad value is not saved')
  page.set(r, 'ping_interval', '5')
  await page.save()
  const saved = page.uci.export('ugate')
  t.equal(daemon(saved), true, 'the daemon accepts what the form saved')
  t.same(
    configFromUci(saved, 'saved').reverse.map((x) => ({ ...x, relay: formatHostPort(x.relay.host, x.relay.port) })),
    [
      {
        name: 'vps',
        relay: 'vps.example.net:15008',
        relayId: 'spiffe://home.arpa/ns/vps/sa/relay',
        retryMs: 500,
        retryMaxMs: 30000,
        pingIntervalMs: 10000,
        pingTimeoutMs: 20000,
      },
      {
        name: 'office',
        relay: '[2001:db8::7]:15008',
        relayId: 'spiffe://home.arpa/ns/office/sa/relay',
        retryMs: 500,
        retryMaxMs: 30000,
        pingIntervalMs: 5000,
        pingTimeoutMs: 20000,
      },
    ],
  )

  // Without the mesh identity the daemon refuses any reverse entry: the form says so on each.
  await t.rejects(page.remove('mesh', 'mesh'), /"Public gate".*needs the mesh identity/, 'removing it is not saved')
  t.match(daemon(page.uci.export('ugate')), /requires the "mesh" section/, 'the daemon agrees')
  for (const sid of page.sids('reverse')) t.match(page.check(sid, 'server'), /needs the mesh identity/)
  await t.rejects(page.save(), /Public gate/)
})

t.test('settings: routing by node name set up in the form reaches the daemon', async (t) => {
  const page = await settings(uciText(BASE))
  const gwb = page.sids('upstream')[2]!
  t.equal(page.active(page.sids('upstream')[0]!, 'relay'), false, 'a socks5 upstream has no relay flag')
  t.equal(page.active(gwb, 'relay'), true)
  page.set(gwb, 'relay', true)
  page.set(gwb, 'server', '')
  t.match(page.check(gwb, 'server'), /A relay needs a server/, 'a relay without server')
  await t.rejects(page.save(), /Server/, 'is not saved')
  page.set(gwb, 'server', '192.0.2.2')
  page.set('mesh', 'node_suffix', 'a..b')
  t.match(page.check('mesh', 'node_suffix'), /"a\.\.b" is not a host name suffix/)
  page.set('mesh', 'node_suffix', 'Mesh')
  const r = await page.add('rule')
  page.set(r, 'domain_suffix', ['mesh'])
  page.set(r, 'action', 'mesh')
  t.equal(page.active(r, 'upstream'), false, 'a mesh rule has no upstream')
  t.equal(page.active(r, 'forward'), false, 'nor a forward target')
  await page.save()
  const saved = page.uci.export('ugate')
  t.match(saved, /option relay '1'/)
  t.match(saved, /option node_suffix 'Mesh'/)
  t.match(saved, /option action 'mesh'/)
  t.equal(daemon(saved), true, 'the daemon accepts what the form saved')
  const config = configFromUci(saved, 'saved')
  t.match(config.upstreams[2], { name: 'gwb', type: 'hbone', relay: true })
  t.equal(config.mesh?.nodeSuffix, 'mesh', 'lower-cased by the daemon')
  t.same(config.rules.at(-1), { domainSuffix: ['mesh'], action: { type: 'mesh' } })
  // unchecked again: the option goes, the daemon's default (no relay)
  page.set(gwb, 'relay', false)
  await page.save()
  t.notMatch(page.uci.export('ugate'), /option relay '/)
  t.match(configFromUci(page.uci.export('ugate'), 'saved').upstreams[2], { relay: false })
})

// The daemon reads these as booleans (uci-config.ts bool); a form.Flag ticks only '1'.
const TRUE_WORDS = ['1', 'yes', 'on', 'true', 'enabled']
const FALSE_WORDS = ['0', 'no', 'off', 'false', 'disabled']
// where each section's flags are tried: the hbone upstream has the relay flag
const FLAG_AT: Record<string, string> = { main: 'main', capture: 'capture', upstream: 'upstream:2' }

t.test("settings: every flag shows and saves all the daemon's boolean spellings", async (t) => {
  const flags = (await settings(uciText(BASE)))
    .schema()
    .flatMap((s) => s.options.filter((o) => o.widget === 'Flag').map((o) => ({ key: s.name ?? s.type, o })))
  t.same(
    flags.map((f) => `${f.key}.${f.o.name}`),
    [
      'main.enabled',
      'main.splice',
      'upstream.relay',
      'capture.enabled',
      'capture.udp',
      'capture.dns',
      'capture.router_self',
      'capture.ipv6',
    ],
    'these flags (a new one needs a FLAG_AT entry)',
  )
  for (const { key, o } of flags) {
    const at = FLAG_AT[key]!
    t.test(`${key}.${o.name}`, async (t) => {
      // the form with '1' / '0': what "yes" / "no" must behave as
      const saveWith = async (word: string) => {
        const given = uciText(edited(at, { [o.name]: word }))
        t.equal(daemon(given), true, `the daemon reads ${o.name} '${word}'`)
        const page = await settings(given)
        const shown = page.get(sidOf(page, at), o.name)
        await page.save()
        const saved = page.uci.export('ugate')
        const pkg = parseUci(saved, 'saved')
        const sec = locate(
          pkg.sections.map((x) => ({
            type: x.type,
            name: x.name ?? undefined,
            options: Object.fromEntries(x.options),
          })),
          at,
        )
        return { shown, saved, written: sec.options[o.name], config: configFromUci(saved, 'saved') }
      }
      const on = await saveWith('1')
      const off = await saveWith('0')
      t.equal(on.shown, '1')
      t.equal(off.shown, '0')
      for (const word of TRUE_WORDS.slice(1)) {
        const r = await saveWith(word)
        t.equal(r.shown, '1', `'${word}' shows ticked`)
        t.equal(r.written, '1', `'${word}' is saved as 1`)
        t.same(r.config, on.config, `the daemon reads the saved '${word}' as on`)
      }
      for (const word of FALSE_WORDS.slice(1)) {
        const r = await saveWith(word)
        t.equal(r.shown, '0', `'${word}' shows unticked`)
        t.equal(r.written, off.written, `'${word}' is saved as '0' is`)
        t.same(r.config, off.config, `the daemon reads the saved '${word}' as off`)
      }
      t.not(on.written, off.written, 'on and off differ in the file')
    })
  }
})

t.test('settings: loads with only the ACL of luci-app-ugate', async (t) => {
  const acl = JSON.parse(readFileSync(join(luciDir, 'root/usr/share/rpcd/acl.d/luci-app-ugate.json'), 'utf8'))
  const page = await loadView('ugate/settings', { uci: { ugate: uciText(BASE) }, acl })
  t.equal(page.map.readonly, undefined, 'writable')
  t.equal(page.sids('listener').length, BASE.filter((s) => s.type === 'listener').length)
  page.set('main', 'log_level', 'debug')
  await page.save()
  t.match(page.uci.export('ugate'), /option log_level 'debug'/)
  const denied = await loadView('ugate/settings', { uci: { ugate: uciText(BASE) }, acl: {} })
  t.equal(denied.map.readonly, true, 'without the grant the form is read-only')
  t.same(denied.sids('listener'), [], 'and gets no data')
})

// ---- the status page -------------------------------------------------------------------

const STATUS = {
  running: true,
  version: '0.1.0',
  pid: 4242,
  uptime: 3725,
  listeners: [
    { name: 'proxy', type: 'mixed', addr: '127.0.0.1:1080' },
    { name: 'redir', type: 'redirect', addr: '0.0.0.0:1081' },
  ],
  connections: { live: 2, total: 17 },
  relays: { active: 2, total: 17, spliceCalls: 10, copyCalls: 0 },
  bytes: { up: 123456, down: 7890123 },
  rules: [
    { rule: 'ads', hits: 3 },
    { rule: 'rules[1]', hits: 9 },
  ],
  capture: { enabled: true, listener: 'redir' },
}

const CONNECTIONS = {
  connections: [
    {
      listener: 'proxy',
      src: '127.0.0.1:50000',
      stage: 'relay',
      ms: 1500,
      dst: 'example.com:443',
      up: 100,
      down: 2048,
    },
    { listener: 'redir', src: '192.168.1.20:40000', stage: 'sniff', ms: 20 },
  ],
}

const SERVICE = {
  ugate: { instances: { instance1: { running: true, pid: 4242, command: ['/usr/bin/ugate', 'run'] } } },
}

/** The status page of a gateway whose ubus object answers `status` and `connections` so; procd lists it. */
function statusOf(status: unknown = STATUS, connections: unknown = CONNECTIONS): Promise<LuciPage> {
  return loadView('ugate/status', {
    rpc: { 'service.list': () => SERVICE, 'ugate.status': () => status, 'ugate.connections': () => connections },
  })
}

t.test('status: declares its rpc calls, polls every 5 s (the graph every 2 s) and has no save buttons', async (t) => {
  const page = await loadView('ugate/status', {
    rpc: {
      'service.list': () => SERVICE,
      'ugate.status': () => STATUS,
      'ugate.connections': () => CONNECTIONS,
    },
  })
  t.same(JSON.parse(JSON.stringify(page.declared)), [
    { object: 'service', method: 'list', params: ['name'], expect: { '': {} } },
    { object: 'ugate', method: 'status', expect: { '': {} } },
    { object: 'ugate', method: 'connections', expect: { '': {} } },
  ])
  t.same(page.calls, [
    { object: 'service', method: 'list', params: { name: 'ugate' } },
    { object: 'ugate', method: 'status', params: {} },
    { object: 'ugate', method: 'connections', params: {} },
  ])
  t.same(
    page.polls.map((p) => p.interval),
    [5, 2],
    'tables every 5 s, the throughput graph every 2 s',
  )
  t.same(page.footer, { save: false, saveApply: false, reset: false })
  t.equal(page.view.handleSave, null)
  t.equal(page.view.handleSaveApply, null)
  t.equal(page.view.handleReset, null)
  t.same(page.maps, [], 'no form')
  t.same(page.uciPackages, [])
})

t.test('status: shows service, listeners, traffic, rule hits and connections, and refreshes', async (t) => {
  let status: Record<string, unknown> = STATUS
  const page = await loadView('ugate/status', {
    rpc: {
      'service.list': () => SERVICE,
      'ugate.status': () => status,
      'ugate.connections': () => CONNECTIONS,
    },
  })
  const text = page.text
  for (const s of [
    'Running',
    'PID 4242',
    '0.1.0',
    '1h 2m 5s',
    'Live connections 2',
    'Connections since start 17',
    '120.6 KiB',
    '7.5 MiB',
    'on, to listener "redir"',
    'proxy mixed 127.0.0.1:1080',
    'redir redirect 0.0.0.0:1081',
    'rules[1] 9 ads 3', // most hits first
    'proxy 127.0.0.1:50000 example.com:443 relay 1s 100 B 2.0 KiB',
    'redir 192.168.1.20:40000 - sniff 0s',
  ]) {
    t.ok(text.includes(s), `shows ${JSON.stringify(s)}`)
  }
  status = { ...STATUS, connections: { live: 5, total: 40 }, bytes: { up: 0, down: 1 } }
  await page.tick()
  t.ok(page.text.includes('Live connections 5'), 'the poll refreshed the page')
  t.ok(page.text.includes('Bytes down (server to client) 1 B'))
  t.equal(page.calls.length, 7, 'one tick: the same three calls, and status once more for the graph')
})

t.test('status: the throughput graph, from the byte totals every 2 s', async (t) => {
  let traffic: Record<string, number> | undefined = { up: 1000, down: 5000 }
  const page = await loadView('ugate/status', {
    rpc: {
      'service.list': () => SERVICE,
      'ugate.status': () => (traffic === undefined ? STATUS : { ...STATUS, traffic }),
      'ugate.connections': () => CONNECTIONS,
    },
  })
  const root = () => page.nodes as FakeNode
  const points = (key: string) => {
    const p = root().querySelector(`polyline[class="ugate-${key}"]`)?.attributes.points ?? ''
    return p === '' ? [] : p.split(' ').map((xy) => xy.split(',').map(Number))
  }
  t.ok(root().querySelector('svg'), 'an SVG graph')
  t.same(points('up'), [], 'one sample: no rate yet')
  t.ok(page.text.includes('waiting for a second sample'))
  const graphPoll = page.polls.find((p) => p.interval === 2)!
  traffic = { up: 3000, down: 5000 }
  await graphPoll.fn()
  traffic = { up: 4000, down: 9000 }
  await graphPoll.fn()
  t.equal(points('up').length, 2, 'two rates from three samples')
  t.equal(points('down').length, 2)
  const [[x1, y1], [x2]] = points('up') as [number[], number[]]
  t.ok(x1! < x2! && x2 === 600, 'newest on the right edge')
  t.ok(y1! < 150, 'up: bytes in the first interval: above the bottom line')
  const downs = points('down').map((p) => p[1]!)
  t.equal(downs[0], 150, 'down: nothing in the first interval: on the bottom line')
  t.ok(page.text.includes('Up ') && page.text.includes('Down '), 'the legend names both directions')
  // A restarted gateway: the totals go back; no negative rate.
  traffic = { up: 10, down: 10 }
  await graphPoll.fn()
  t.equal(points('up')[2]![1], 150, 'a total that went back draws 0')
  // An older gateway without `traffic`: the closed-connection bytes are used.
  traffic = undefined
  await graphPoll.fn()
  t.equal(points('up').length, 4, 'still drawn from `bytes`')
  t.equal(page.calls.filter((c) => c.method === 'status').length, 5, 'the graph asks only for status')
})

t.test('status: UDP counters, UDP flows and DNS counters; absent on an older gateway', async (t) => {
  const status = {
    ...STATUS,
    capture: { enabled: true, listener: 'redir', udp: true, udpListener: 'tp' },
    dns: {
      names: 12,
      listeners: [
        { name: 'dns', queries: 40, cached: 25, local: 3, forwarded: 14, failed: 1, malformed: 0, dropped: 0 },
      ],
    },
    udp: {
      flowsLive: 2,
      flowsPending: 0,
      flowsPendingPeak: 0,
      flowsTotal: 31,
      flowsExpired: 29,
      flowsEvicted: 0,
      replySockets: 2,
      packetsUp: 700,
      bytesUp: 2048,
      packetsDown: 650,
      bytesDown: 3 * 1024 * 1024,
      drops: {
        queueFull: 3,
        rejected: 0,
        busy: 2,
        noOrigDst: 0,
        truncated: 0,
        sendFailed: 0,
        replySocket: 0,
        noMemory: 0,
      },
    },
  }
  const connections = {
    ...CONNECTIONS,
    udpFlows: [
      {
        id: 1,
        listener: 'tp',
        src: '192.168.1.20:5353',
        dst: '[2001:db8::1]:443',
        action: 'direct',
        up: 1200,
        down: 4096,
        pktUp: 3,
        pktDown: 4,
        ms: 61000,
        idleMs: 2000,
      },
    ],
  }
  const page = await statusOf(status, connections)
  for (const s of [
    'on, to listener "redir"; UDP to listener "tp"',
    'UDP flows 2 live, 31 since start',
    'UDP datagrams 700 up, 650 down',
    'UDP bytes 2.0 KiB up, 3.0 MiB down',
    'UDP datagrams dropped 5 (queueFull 3, busy 2)',
    'Names learnt from DNS 12',
    'dns 40 25 3 14 1 0 0',
    'tp 192.168.1.20:5353 [2001:db8::1]:443 direct 1m 1s 2s 1.2 KiB 4.0 KiB',
  ])
    t.ok(page.text.includes(s), `shows ${JSON.stringify(s)}`)

  // A gateway from before UDP and DNS: no udp, dns or udpFlows in its answers.
  const old = await statusOf()
  t.notOk(old.text.includes('UDP datagrams'), 'no UDP counters')
  t.notOk(old.text.includes('Names learnt'), 'no DNS names')
  t.ok(old.text.includes('No tproxy listener'), 'the UDP flow list says why it is empty')
  t.ok(old.text.includes('No DNS listener'))
  t.ok(old.text.includes('proxy 127.0.0.1:50000 example.com:443'), 'the TCP connections still show')
})

t.test('status: mesh tunnels marked reverse; reverse tunnels on both sides; absent on an older gateway', async (t) => {
  const tunnel = {
    peer: '198.51.100.7:40000',
    state: 'open',
    streams: 1,
    streamsTotal: 3,
    bytesOut: 2048,
    bytesIn: 4096,
  }
  const status = {
    ...STATUS,
    hbone: [
      {
        id: 4,
        role: 'server',
        reverse: true,
        listener: 'mesh',
        peerId: 'spiffe://home.arpa/ns/home/sa/gate-a',
        rttMs: 1.5,
        ...tunnel,
      },
      {
        id: 9,
        role: 'client',
        reverse: true,
        pool: '',
        peerId: 'spiffe://home.arpa/ns/vps/sa/relay',
        rttMs: null,
        ...tunnel,
      },
      { id: 11, role: 'client', pool: 'gwb', peerId: 'spiffe://home.arpa/ns/routers/sa/gw-b', rttMs: null, ...tunnel },
    ],
    reverse: {
      registered: [
        {
          tunnel: 4,
          identity: 'spiffe://home.arpa/ns/home/sa/gate-a',
          node: 'ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ',
          listener: 'mesh',
          peer: '198.51.100.7:40000',
          ageMs: 125000,
        },
      ],
      links: [
        {
          name: 'vps',
          relay: 'vps.example.net:15008',
          state: 'up',
          tunnel: 9,
          peer: '203.0.113.5:15008',
          peerId: 'spiffe://home.arpa/ns/vps/sa/relay',
          failures: 0,
          upMs: 61000,
        },
        {
          name: 'office',
          relay: '[2001:db8::7]:15008',
          state: 'waiting',
          tunnel: null,
          peer: '',
          peerId: '',
          failures: 3,
          upMs: 0,
        },
      ],
    },
  }
  const page = await statusOf(status)
  for (const s of [
    'server reverse mesh 198.51.100.7:40000 spiffe://home.arpa/ns/home/sa/gate-a open 1 / 3 2.0 KiB 4.0 KiB 1.5 ms',
    'client reverse - 198.51.100.7:40000 spiffe://home.arpa/ns/vps/sa/relay open',
    'client gwb 198.51.100.7:40000',
    'registered here mesh 198.51.100.7:40000 spiffe://home.arpa/ns/home/sa/gate-a ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ up - 2m 5s',
    'to a public gate vps vps.example.net:15008 spiffe://home.arpa/ns/vps/sa/relay - up 0 1m 1s',
    'to a public gate office [2001:db8::7]:15008 - - waiting 3 -',
  ])
    t.ok(page.text.includes(s), `shows ${JSON.stringify(s)}`)

  const old = await statusOf()
  t.ok(old.text.includes('No reverse tunnels'), 'a gateway without reverse tunnels (or from before them)')
})

t.test('status: ugate not running, or not on ubus', async (t) => {
  // Not running: procd lists nothing and the ubus object does not exist.
  const stopped = await loadView('ugate/status', { rpc: { 'service.list': () => ({}) } })
  t.ok(stopped.text.includes('Not running'))
  t.ok(stopped.text.includes('No answer from the ubus object ugate'), 'says why there are no figures')
  t.ok(stopped.text.includes('No listeners'))

  const noPlugin = await loadView('ugate/status', { rpc: { 'service.list': () => SERVICE } })
  t.ok(noPlugin.text.includes('Started by procd, not answering'))
  t.ok(noPlugin.text.includes('No answer from the ubus object ugate'))

  const denied = await loadView('ugate/status', {
    rpc: {
      'service.list': () => SERVICE,
      'ugate.status': () => STATUS,
      'ugate.connections': () => CONNECTIONS,
    },
    acl: {},
  })
  t.ok(denied.text.includes('No answer from the ubus object ugate'), 'permission denied looks like no answer')
})

t.test('status: works with only the ACL of luci-app-ugate', async (t) => {
  const acl = JSON.parse(readFileSync(join(luciDir, 'root/usr/share/rpcd/acl.d/luci-app-ugate.json'), 'utf8'))
  const page = await loadView('ugate/status', {
    rpc: {
      'service.list': () => SERVICE,
      'ugate.status': () => STATUS,
      'ugate.connections': () => CONNECTIONS,
    },
    acl,
  })
  t.ok(page.text.includes('Running'))
  t.ok(page.text.includes('example.com:443'))
})

t.test('status: lists at most 200 connections', async (t) => {
  const many = {
    connections: Array.from({ length: 250 }, (_, i) => ({
      listener: 'proxy',
      src: `10.0.0.${i % 250}:1`,
      stage: 'relay',
      ms: 1,
    })),
  }
  const page = await statusOf(STATUS, many)
  t.ok(page.text.includes('50 more connections not shown'))
  const rows = (page.nodes as { querySelectorAll(s: string): unknown[] }).querySelectorAll('tr')
  t.ok(rows.length < 250)
})
