// /etc/config/ugate (uci) → the JSON-shaped config, so uci and JSON files
// share one validator. Errors name the uci file, line and section:
//   /etc/config/ugate:12: @listener[1].port: "80x" is not an integer 0-65535
// The option names are the contract with the LuCI app (luci/) and the shipped
// default config (files/etc/config/ugate); docs/openwrt.md lists them.

import { ConfigError, show } from './errors.js'
import { type Config, validateConfig } from './config.js'
import { type UciPackage, type UciSection, type UciValue, parseUci, uciSectionRef, uciSectionsOfType } from './uci.js'

type Obj = Record<string, unknown>

/** Where a JSON path came from, so errors point into the uci file. */
interface Origin {
  jsonPath: string
  section: UciSection
  ref: string
}

/** A config file's text: JSON when it starts with "{", else uci. */
export function looksLikeJson(text: string): boolean {
  return /^\uFEFF?\s*\{/.test(text)
}

export interface UciJson {
  json: Obj
  /** A validator error about `json`, pointed at the uci file, line and option. */
  relocate(e: ConfigError): ConfigError
}

/** Parse a uci file into the JSON shape (throws UciError/ConfigError naming file:line). */
export function uciConfigJson(text: string, file: string): UciJson {
  const pkg = parseUci(text, file)
  const origins: Origin[] = []
  const json = uciToJson(pkg, file, origins)
  return { json, relocate: (e) => locate(e, file, origins) }
}

/** Parse and validate a uci config file; throws ConfigError (or UciError for syntax). */
export function configFromUci(text: string, file: string): Config {
  const u = uciConfigJson(text, file)
  try {
    return validateConfig(u.json)
  } catch (e) {
    if (e instanceof ConfigError) throw u.relocate(e)
    throw e
  }
}

/** Map a JSON-path error back to the uci section it came from. */
function locate(e: ConfigError, file: string, origins: Origin[]): ConfigError {
  // Longest matching prefix: "listeners[1].listen" → the second listener section.
  let best: Origin | undefined
  for (const o of origins) {
    const hit = e.path === o.jsonPath || e.path.startsWith(`${o.jsonPath}.`) || e.path.startsWith(`${o.jsonPath}[`)
    if (hit && (!best || o.jsonPath.length > best.jsonPath.length)) best = o
  }
  if (!best) return new ConfigError(`${file}: ${e.path}`, e.detail)
  const rest = e.path.slice(best.jsonPath.length).replace(/^\./, '')
  // The first key takes its uci name; an index or a sub-key after it stays: "srcNode[0]" → "src_node[0]".
  const [, key = '', tail = ''] = /^([^.[]*)(.*)$/.exec(rest) ?? []
  return new ConfigError(
    `${file}:${best.section.line}: ${best.ref}${rest ? `.${UCI_PATH_NAME[e.path] ?? (UCI_NAME[key] ?? key) + tail}` : ''}`,
    e.detail,
  )
}

/** Whole JSON paths whose uci option name is not their last key's. */
const UCI_PATH_NAME: Record<string, string> = {
  'admin.socket': 'admin_socket',
  'admin.listen': 'admin_listen',
  'admin.secret': 'admin_secret',
  'ubus.socket': 'ubus_socket',
}

/** JSON key → uci option name, for error messages. */
const UCI_NAME: Record<string, string> = {
  listen: 'address/port',
  server: 'server/port',
  level: 'log_level',
  syslog: 'log_syslog',
  maxConnections: 'max_connections',
  maxPerSource: 'max_per_source',
  handshakeTimeout: 'handshake_timeout',
  idleTimeout: 'idle_timeout',
  connectTimeout: 'connect_timeout',
  shutdownGrace: 'shutdown_grace',
  lanInterfaces: 'lan',
  routerSelf: 'router_self',
  includeSrc: 'include_src',
  excludeSrc: 'exclude_src',
  includeMac: 'include_mac',
  excludeMac: 'exclude_mac',
  tlsPort: 'tls_port',
  httpPort: 'http_port',
  domainSuffix: 'domain_suffix',
  domainKeyword: 'domain_keyword',
  dstCidr: 'dst_cidr',
  dstPort: 'dst_port',
  srcCidr: 'src_cidr',
  srcIdentity: 'src_identity',
  srcTrustDomain: 'src_trust_domain',
  srcNode: 'src_node',
  servers: 'server',
  hosts: 'host',
  rejectAddresses: 'reject_address',
  cacheSize: 'cache_size',
  caBundle: 'ca_bundle',
  dnsListener: 'dns_listener',
  udpListener: 'udp_listener',
  tproxyMark: 'tproxy_mark',
  tproxyTable: 'tproxy_table',
  udpIdleTimeout: 'udp_idle_timeout',
  udpDnsIdleTimeout: 'udp_dns_idle_timeout',
  maxFlows: 'max_flows',
  pairTimeout: 'pair_timeout',
  maxWaiting: 'max_waiting',
  maxParked: 'max_parked',
  grants: 'grant',
  relayId: 'relay_id',
  maxPool: 'max_pool',
  retryMax: 'retry_max',
  pingInterval: 'ping_interval',
  pingTimeout: 'ping_timeout',
  identityDir: 'identity_dir',
  certChain: 'cert_chain',
  rootCert: 'root_cert',
  trustDomain: 'trust_domain',
  nodeSuffix: 'node_suffix',
}

/** The JSON shape of a uci package; `origins` records where each part came from. */
function uciToJson(pkg: UciPackage, file: string, origins: Origin[] = []): Obj {
  const root: Obj = {}
  const at = (s: UciSection) => `${file}:${s.line}: ${uciSectionRef(pkg, s)}`
  const reader = (s: UciSection) => new SectionReader(s, at(s))

  const mains = uciSectionsOfType(pkg, 'ugate')
  if (mains.length > 1) throw new ConfigError(at(mains[1]!), 'only one "config ugate" section is allowed')
  if (mains[0]) {
    const r = reader(mains[0])
    r.only([
      'enabled',
      'log_level',
      'splice',
      'mark',
      'admin_socket',
      'admin_listen',
      'admin_secret',
      'log_syslog',
      'ubus_socket',
      'max_connections',
      'max_per_source',
      'handshake_timeout',
      'idle_timeout',
      'connect_timeout',
      'shutdown_grace',
      'sniff_max_bytes',
      'sniff_timeout',
    ])
    put(root, 'log', { level: r.str('log_level'), syslog: r.str('log_syslog') })
    put(root, 'relay', {
      splice: r.bool('splice'),
      idleTimeout: r.num('idle_timeout'),
      shutdownGrace: r.num('shutdown_grace'),
    })
    put(root, 'dial', { connectTimeout: r.num('connect_timeout'), mark: r.num('mark') })
    put(root, 'limits', {
      maxConnections: r.num('max_connections'),
      maxPerSource: r.num('max_per_source'),
      handshakeTimeout: r.num('handshake_timeout'),
    })
    put(root, 'sniff', { maxBytes: r.num('sniff_max_bytes'), timeout: r.num('sniff_timeout') })
    put(root, 'admin', { socket: r.str('admin_socket'), listen: r.str('admin_listen'), secret: r.str('admin_secret') })
    put(root, 'ubus', { socket: r.str('ubus_socket') })
    for (const key of ['log', 'relay', 'dial', 'limits', 'sniff', 'admin', 'ubus']) {
      origins.push({ jsonPath: key, section: mains[0], ref: uciSectionRef(pkg, mains[0]) })
    }
  }

  root.listeners = uciSectionsOfType(pkg, 'listener').map((s, i) => {
    origins.push({ jsonPath: `listeners[${i}]`, section: s, ref: uciSectionRef(pkg, s) })
    const r = reader(s)
    r.only([
      'name',
      'type',
      'address',
      'port',
      'backlog',
      'allow',
      'users',
      'target',
      'upstream',
      'tls_port',
      'http_port',
      'server',
      'host',
      'reject_address',
      'timeout',
      'cache_size',
      'ca_bundle',
      'networks',
      'udp_idle_timeout',
      'udp_dns_idle_timeout',
      'max_flows',
      'pair',
      'pair_timeout',
      'max_waiting',
      'grant',
      'max_parked',
      'peers',
      'reverse',
      'ping_interval',
      'ping_timeout',
    ])
    const l: Obj = { name: r.str('name') ?? s.name ?? `listener${i + 1}`, type: r.str('type') }
    const address = r.str('address')
    const port = r.str('port')
    // An hbone listener without both: HBONE's own [::]:15008 (as in JSON).
    const hboneDefault = l.type === 'hbone' && address === undefined && port === undefined
    if (!hboneDefault && (address === undefined || port === undefined))
      throw new ConfigError(`${at(s)}.${address === undefined ? 'address' : 'port'}`, 'missing')
    if (address !== undefined && port !== undefined)
      l.listen = `${address.includes(':') ? `[${address}]` : address}:${port}`
    assign(l, {
      backlog: r.num('backlog'),
      allow: r.list('allow'),
      users: r.list('users')?.map((u, j) => userPass(u, `${at(s)}.users[${j}]`)),
      target: r.str('target'),
      upstream: r.str('upstream'),
      tlsPort: r.num('tls_port'),
      httpPort: r.num('http_port'),
      servers: r.list('server'),
      hosts: hostLines(r.list('host'), `${at(s)}.host`),
      rejectAddresses: r.list('reject_address'),
      timeout: r.num('timeout'),
      cacheSize: r.num('cache_size'),
      caBundle: r.str('ca_bundle'),
      networks: r.list('networks'),
      udpIdleTimeout: r.num('udp_idle_timeout'),
      udpDnsIdleTimeout: r.num('udp_dns_idle_timeout'),
      maxFlows: r.num('max_flows'),
      pair: r.str('pair'),
      pairTimeout: r.num('pair_timeout'),
      maxWaiting: r.num('max_waiting'),
      grants: grantLines(r.list('grant'), `${at(s)}.grant`),
      maxParked: r.num('max_parked'),
      peers: r.list('peers'),
      reverse: r.list('reverse'),
      pingInterval: r.num('ping_interval'),
      pingTimeout: r.num('ping_timeout'),
    })
    return l
  })

  root.upstreams = uciSectionsOfType(pkg, 'upstream').map((s, i) => {
    origins.push({ jsonPath: `upstreams[${i}]`, section: s, ref: uciSectionRef(pkg, s) })
    const r = reader(s)
    r.only([
      'name',
      'type',
      'server',
      'port',
      'username',
      'password',
      'identity',
      'trust_domain',
      'node',
      'relay',
      'ping_interval',
      'ping_timeout',
    ])
    const server = r.str('server')
    const port = r.str('port')
    const u: Obj = { name: r.str('name') ?? s.name ?? `upstream${i + 1}`, type: r.str('type') }
    assign(u, { identity: r.str('identity'), node: r.str('node') })
    // An hbone upstream that names its peer may go only through the peer's reverse tunnel.
    const reverseOnly = u.type === 'hbone' && server === undefined && (u.identity ?? u.node) !== undefined
    if (!reverseOnly) {
      // An hbone peer without a port: HBONE's 15008 (the validator adds it to a bare IP).
      if (server === undefined || (port === undefined && u.type !== 'hbone'))
        throw new ConfigError(`${at(s)}.${server === undefined ? 'server' : 'port'}`, 'missing')
      u.server = port === undefined ? server : `${server.includes(':') ? `[${server}]` : server}:${port}`
    }
    assign(u, {
      username: r.str('username'),
      password: r.str('password'),
      trustDomain: r.str('trust_domain'),
      pingInterval: r.num('ping_interval'),
      pingTimeout: r.num('ping_timeout'),
    })
    assign(u, { relay: r.bool('relay') })
    return u
  })

  root.rules = uciSectionsOfType(pkg, 'rule').map((s, i) => {
    origins.push({ jsonPath: `rules[${i}]`, section: s, ref: uciSectionRef(pkg, s) })
    const r = reader(s)
    r.only([
      'name',
      'domain',
      'domain_suffix',
      'domain_keyword',
      'dst_cidr',
      'dst_port',
      'src_cidr',
      'listener',
      'proto',
      'network',
      'src_identity',
      'src_trust_domain',
      'src_node',
      'action',
      'upstream',
      'forward',
    ])
    const rule: Obj = {}
    assign(rule, {
      name: r.str('name') ?? s.name ?? undefined,
      domain: r.list('domain'),
      domainSuffix: r.list('domain_suffix'),
      domainKeyword: r.list('domain_keyword'),
      dstCidr: r.list('dst_cidr'),
      dstPort: r.list('dst_port'),
      srcCidr: r.list('src_cidr'),
      listener: r.list('listener'),
      proto: r.list('proto'),
      network: r.list('network'),
      srcIdentity: r.list('src_identity'),
      srcTrustDomain: r.list('src_trust_domain'),
      srcNode: r.list('src_node'),
    })
    rule.action = ruleAction(r, at(s))
    return rule
  })

  const relays = uciSectionsOfType(pkg, 'sni_relay')
  if (relays.length > 0) {
    root.sniRelay = relays.map((s, i) => {
      origins.push({ jsonPath: `sniRelay[${i}]`, section: s, ref: uciSectionRef(pkg, s) })
      const r = reader(s)
      r.only(['name', 'server', 'port', 'relay_id', 'names', 'pool', 'max_pool', 'retry', 'retry_max'])
      const server = r.str('server')
      const port = r.str('port')
      if (server === undefined || port === undefined)
        throw new ConfigError(`${at(s)}.${server === undefined ? 'server' : 'port'}`, 'missing')
      const e: Obj = { name: r.str('name') ?? s.name ?? `relay${i + 1}` }
      e.relay = `${server.includes(':') ? `[${server}]` : server}:${port}`
      assign(e, {
        relayId: r.str('relay_id'),
        names: r.list('names'),
        pool: r.num('pool'),
        maxPool: r.num('max_pool'),
        retry: r.num('retry'),
        retryMax: r.num('retry_max'),
      })
      return e
    })
  }

  const reverse = uciSectionsOfType(pkg, 'reverse')
  if (reverse.length > 0) {
    root.reverse = reverse.map((s, i) => {
      origins.push({ jsonPath: `reverse[${i}]`, section: s, ref: uciSectionRef(pkg, s) })
      const r = reader(s)
      r.only(['name', 'server', 'port', 'relay_id', 'retry', 'retry_max', 'ping_interval', 'ping_timeout'])
      const server = r.str('server')
      if (server === undefined) throw new ConfigError(`${at(s)}.server`, 'missing')
      const e: Obj = { name: r.str('name') ?? s.name ?? `reverse${i + 1}` }
      // The HBONE port unless told otherwise.
      e.relay = `${server.includes(':') ? `[${server}]` : server}:${r.str('port') ?? '15008'}`
      assign(e, {
        relayId: r.str('relay_id'),
        retry: r.num('retry'),
        retryMax: r.num('retry_max'),
        pingInterval: r.num('ping_interval'),
        pingTimeout: r.num('ping_timeout'),
      })
      return e
    })
  }

  const captures = uciSectionsOfType(pkg, 'capture')
  if (captures.length > 1) throw new ConfigError(at(captures[1]!), 'only one "config capture" section is allowed')
  if (captures[0]) {
    origins.push({ jsonPath: 'capture', section: captures[0], ref: uciSectionRef(pkg, captures[0]) })
    const r = reader(captures[0])
    r.only([
      'enabled',
      'listener',
      'udp',
      'udp_listener',
      'tproxy_mark',
      'tproxy_table',
      'lan',
      'ports',
      'router_self',
      'ipv6',
      'bypass',
      'include_src',
      'exclude_src',
      'include_mac',
      'exclude_mac',
      'dns',
      'dns_listener',
    ])
    const c: Obj = {}
    assign(c, {
      enabled: r.bool('enabled'),
      listener: r.str('listener'),
      udp: r.bool('udp'),
      udpListener: r.str('udp_listener'),
      tproxyMark: r.num('tproxy_mark'),
      tproxyTable: r.num('tproxy_table'),
      lanInterfaces: r.list('lan'),
      ports: r.list('ports')?.map((p, j) => intText(p, `${at(captures[0]!)}.ports[${j}]`)),
      routerSelf: r.bool('router_self'),
      ipv6: r.bool('ipv6'),
      bypass: r.list('bypass'),
      includeSrc: r.list('include_src'),
      excludeSrc: r.list('exclude_src'),
      includeMac: r.list('include_mac'),
      excludeMac: r.list('exclude_mac'),
      dns: r.bool('dns'),
      dnsListener: r.str('dns_listener'),
    })
    root.capture = c
  }
  const meshes = uciSectionsOfType(pkg, 'mesh')
  if (meshes.length > 1) throw new ConfigError(at(meshes[1]!), 'only one "config mesh" section is allowed')
  if (meshes[0]) {
    origins.push({ jsonPath: 'mesh', section: meshes[0], ref: uciSectionRef(pkg, meshes[0]) })
    const r = reader(meshes[0])
    r.only(['identity_dir', 'cert_chain', 'key', 'root_cert', 'trust_domain', 'node_suffix'])
    const m: Obj = {}
    assign(m, {
      identityDir: r.str('identity_dir'),
      certChain: r.str('cert_chain'),
      key: r.str('key'),
      rootCert: r.str('root_cert'),
      trustDomain: r.str('trust_domain'),
      nodeSuffix: r.str('node_suffix'),
    })
    root.mesh = m
  }
  for (const s of pkg.sections) {
    if (!['ugate', 'listener', 'upstream', 'rule', 'capture', 'mesh', 'sni_relay', 'reverse'].includes(s.type)) {
      throw new ConfigError(
        at(s),
        `unknown section type ${show(s.type)} (known: ugate, listener, rule, upstream, capture, mesh, sni_relay, reverse)`,
      )
    }
  }
  return root
}

function ruleAction(r: SectionReader, where: string): string {
  const action = r.str('action') ?? 'direct'
  if (action === 'upstream') {
    const name = r.str('upstream')
    if (name === undefined) throw new ConfigError(`${where}.upstream`, 'missing (action is "upstream")')
    return `upstream:${name}`
  }
  if (action === 'forward') {
    const to = r.str('forward')
    if (to === undefined) throw new ConfigError(`${where}.forward`, 'missing (action is "forward")')
    return `forward:${to}`
  }
  return action
}

/** `list host 'ADDRESS NAME...'` lines (/etc/hosts order) → { name: [addresses] }. */
function hostLines(lines: string[] | undefined, where: string): Obj | undefined {
  if (lines === undefined) return undefined
  const hosts: Record<string, string[]> = {}
  lines.forEach((line, i) => {
    const [addr, ...names] = line.trim().split(/\s+/)
    if (addr === undefined || addr === '' || names.length === 0)
      throw new ConfigError(`${where}[${i}]`, `${show(line)} is not "ADDRESS NAME..."`)
    for (const n of names) hosts[n] = [...(hosts[n] ?? []), addr]
  })
  return hosts
}

/** `list grant 'SPIFFE-ID NAME...'` lines → the park listener's grants. */
function grantLines(lines: string[] | undefined, where: string): Obj | undefined {
  if (lines === undefined) return undefined
  const out: Obj = {}
  lines.forEach((line, i) => {
    const [id, ...names] = line.trim().split(/\s+/)
    if (id === undefined || id === '' || names.length === 0)
      throw new ConfigError(`${where}[${i}]`, `${show(line)} is not "SPIFFE-ID NAME..."`)
    out[id] = [...((out[id] as string[] | undefined) ?? []), ...names]
  })
  return out
}

function userPass(text: string, where: string): Obj {
  const colon = text.indexOf(':')
  if (colon <= 0 || colon === text.length - 1)
    throw new ConfigError(where, `${show(text.replace(/:.*/, ':***'))} is not "user:password"`)
  return { username: text.slice(0, colon), password: text.slice(colon + 1) }
}

function intText(text: string, where: string): number {
  if (!/^[0-9]{1,10}$/.test(text)) throw new ConfigError(where, `${show(text)} is not a whole number`)
  return Number(text)
}

/** Set obj[key] = values without the undefined ones; nothing when all are undefined. */
function put(root: Obj, key: string, values: Obj): void {
  const o: Obj = {}
  assign(o, values)
  if (Object.keys(o).length > 0) root[key] = o
}

function assign(target: Obj, values: Obj): void {
  for (const [k, v] of Object.entries(values)) if (v !== undefined) target[k] = v
}

/** Typed reads of one section's options, with errors naming file:line: section.option. */
class SectionReader {
  constructor(
    private readonly s: UciSection,
    private readonly where: string,
  ) {}

  only(known: string[]): void {
    for (const key of this.s.options.keys()) {
      if (!known.includes(key)) {
        throw new ConfigError(
          `${this.where}.${key}`,
          `unknown option (known for "${this.s.type}": ${known.join(', ')})`,
        )
      }
    }
  }

  private raw(key: string): UciValue | undefined {
    return this.s.options.get(key)
  }

  str(key: string): string | undefined {
    const v = this.raw(key)
    if (Array.isArray(v)) throw new ConfigError(`${this.where}.${key}`, 'is a list; use "option", not "list"')
    return v
  }

  list(key: string): string[] | undefined {
    const v = this.raw(key)
    if (v === undefined) return undefined
    return Array.isArray(v) ? v : [v] // uci lets a single "option" stand for a one-item list
  }

  bool(key: string): boolean | undefined {
    const v = this.str(key)
    if (v === undefined) return undefined
    if (['1', 'true', 'yes', 'on', 'enabled'].includes(v)) return true
    if (['0', 'false', 'no', 'off', 'disabled'].includes(v)) return false
    throw new ConfigError(`${this.where}.${key}`, `${show(v)} is not a boolean (1/0, true/false, yes/no, on/off)`)
  }

  num(key: string): number | undefined {
    const v = this.str(key)
    if (v === undefined) return undefined
    if (!/^-?[0-9]+(\.[0-9]+)?$/.test(v)) throw new ConfigError(`${this.where}.${key}`, `${show(v)} is not a number`)
    return Number(v)
  }
}
