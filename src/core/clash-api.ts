// The Clash/mihomo external-controller API as dashboards (yacd,
// metacubexd, zashboard) read it: the route table and the JSON shapes,
// built from plain records so they are testable without the runtime.
// docs/api.md is the contract; field names follow mihomo's hub/route.

import { splitHostPort } from './address.js'
import { isIpLiteral } from './ip.js'
import type { LogLevel } from './log.js'
import type { RuleAction, RuleSpec } from './rules/index.js'

// ---- routes ---------------------------------------------------------------------

export type RouteName =
  | 'page'
  | 'version'
  | 'configs'
  | 'proxies'
  | 'proxy'
  | 'delay'
  | 'rules'
  | 'connections'
  | 'connection'
  | 'traffic'
  | 'memory'
  | 'logs'
  | 'metrics'
  | 'status'

interface RouteDef {
  name: RouteName
  /** Path segments; ':x' captures one (percent-decoded). */
  path: string[]
  methods: string[]
}

const ROUTES: RouteDef[] = [
  { name: 'page', path: [], methods: ['GET'] },
  { name: 'version', path: ['version'], methods: ['GET'] },
  { name: 'configs', path: ['configs'], methods: ['GET', 'PATCH'] },
  { name: 'proxies', path: ['proxies'], methods: ['GET'] },
  { name: 'proxy', path: ['proxies', ':name'], methods: ['GET'] },
  { name: 'delay', path: ['proxies', ':name', 'delay'], methods: ['GET'] },
  { name: 'rules', path: ['rules'], methods: ['GET'] },
  { name: 'connections', path: ['connections'], methods: ['GET', 'DELETE'] },
  { name: 'connection', path: ['connections', ':id'], methods: ['DELETE'] },
  { name: 'traffic', path: ['traffic'], methods: ['GET'] },
  { name: 'memory', path: ['memory'], methods: ['GET'] },
  { name: 'logs', path: ['logs'], methods: ['GET'] },
  { name: 'metrics', path: ['metrics'], methods: ['GET'] },
  { name: 'status', path: ['ugate', 'status'], methods: ['GET'] },
]

export type RouteMatch =
  | { status: 'ok'; name: RouteName; params: Record<string, string>; query: URLSearchParamsLike }
  | { status: 'error'; code: 400 | 404 | 405; message: string; allow?: string[] }

/** What the handlers read from a query string. */
export interface URLSearchParamsLike {
  get(name: string): string | null
}

/** Split an origin-form request target into a route and its parameters. */
export function matchRoute(method: string, target: string): RouteMatch {
  if (!target.startsWith('/')) return { status: 'error', code: 400, message: `request target ${target} is not a path` }
  const q = target.indexOf('?')
  const pathText = q < 0 ? target : target.slice(0, q)
  const query = parseQuery(q < 0 ? '' : target.slice(q + 1))
  if (query === null) return { status: 'error', code: 400, message: 'bad percent-encoding in the query' }
  const segments = pathText.split('/').slice(1)
  if (segments[segments.length - 1] === '') segments.pop() // "/proxies/" is "/proxies"
  const decoded: string[] = []
  for (const s of segments) {
    const d = percentDecode(s)
    if (d === null) return { status: 'error', code: 400, message: 'bad percent-encoding in the path' }
    decoded.push(d)
  }
  for (const r of ROUTES) {
    if (r.path.length !== decoded.length) continue
    const params: Record<string, string> = {}
    if (!r.path.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = decoded[i]!), true) : p === decoded[i])))
      continue
    if (!r.methods.includes(method) && !(method === 'HEAD' && r.methods.includes('GET'))) {
      return { status: 'error', code: 405, message: `${method} is not allowed here`, allow: r.methods }
    }
    return { status: 'ok', name: r.name, params, query: { get: (k) => query.get(k) ?? null } }
  }
  return { status: 'error', code: 404, message: 'Resource not found' }
}

function percentDecode(s: string): string | null {
  try {
    return decodeURIComponent(s)
  } catch {
    return null
  }
}

function parseQuery(text: string): Map<string, string> | null {
  const out = new Map<string, string>()
  if (text === '') return out
  for (const part of text.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const k = percentDecode((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, ' '))
    const v = percentDecode((eq < 0 ? '' : part.slice(eq + 1)).replace(/\+/g, ' '))
    if (k === null || v === null) return null
    if (!out.has(k)) out.set(k, v)
  }
  return out
}

// ---- log levels -----------------------------------------------------------------

/** Clash's names: "warning" where ugate says "warn"; "silent" has no ugate level. */
export function clashLevel(level: LogLevel): string {
  return level === 'warn' ? 'warning' : level
}

export function ugateLevel(clash: string): LogLevel | null {
  switch (clash) {
    case 'debug':
    case 'info':
    case 'error':
      return clash
    case 'warning':
      return 'warn'
    default:
      return null
  }
}

// ---- rules ----------------------------------------------------------------------

/** A rule as /rules lists it and as a connection names it. */
export interface ClashRule {
  type: string
  payload: string
}

const CONDITION_TYPES: Array<[keyof RuleSpec, string]> = [
  ['domain', 'Domain'],
  ['domainSuffix', 'DomainSuffix'],
  ['domainKeyword', 'DomainKeyword'],
  ['dstCidr', 'IPCIDR'],
  ['dstPort', 'DstPort'],
  ['srcCidr', 'SrcIPCIDR'],
  ['listener', 'InName'],
  ['proto', 'Protocol'],
  // the mesh peer (no Clash equivalent: named after the fields)
  ['srcIdentity', 'SrcIdentity'],
  ['srcTrustDomain', 'SrcTrustDomain'],
  ['srcNode', 'SrcNode'],
]

/**
 * One ugate rule in Clash's terms: a single condition keeps its type
 * (DomainSuffix, google.com); values of one field are OR, fields are AND,
 * written as mihomo writes logic rules: ((DomainSuffix,a) || (DomainSuffix,b)).
 */
export function clashRule(spec: RuleSpec): ClashRule {
  const fields: string[][] = []
  for (const [key, type] of CONDITION_TYPES) {
    const values = spec[key] as unknown[] | undefined
    if (values === undefined || values.length === 0) continue
    fields.push(values.map((v) => `${type},${Array.isArray(v) ? v.join('-') : String(v)}`))
  }
  if (fields.length === 0) return { type: 'Match', payload: '' }
  if (fields.length === 1 && fields[0]!.length === 1) {
    const [type, ...rest] = fields[0]![0]!.split(',')
    return { type: type!, payload: rest.join(',') }
  }
  const group = (alts: string[]) => (alts.length === 1 ? `(${alts[0]})` : `(${alts.map((a) => `(${a})`).join(' || ')})`)
  if (fields.length === 1) return { type: 'OR', payload: group(fields[0]!) }
  return { type: 'AND', payload: `(${fields.map(group).join(' && ')})` }
}

/** The proxy name an action goes through: DIRECT, REJECT, an upstream's name. */
function proxyName(a: RuleAction): string {
  switch (a.type) {
    case 'direct':
    case 'forward':
      // A forward rewrites the destination; the connection still leaves directly.
      return 'DIRECT'
    case 'reject':
      return 'REJECT'
    case 'upstream':
      return a.name
    case 'mesh':
      return 'MESH'
  }
}

/** The label a rule's hits are counted under (outbound.ts): its name, or "#index". */
export function ruleLabel(spec: RuleSpec, index: number): string {
  return spec.name ?? `#${index}`
}

export interface RuleHit {
  hits: number
  /** Wall clock of the last hit, ms; 0 = never. */
  lastMs: number
}

/** GET /rules: every rule in order, then the default route as Clash's final Match. */
export function rulesView(specs: readonly RuleSpec[], hits: ReadonlyMap<string, RuleHit>) {
  const list = specs.map((s, i) => ({ ...clashRule(s), proxy: proxyName(s.action), label: ruleLabel(s, i) }))
  list.push({ type: 'Match', payload: '', proxy: 'DIRECT', label: 'default' })
  return {
    rules: list.map((r, index) => {
      const h = hits.get(r.label)
      return {
        index,
        type: r.type,
        payload: r.payload,
        proxy: r.proxy,
        size: -1,
        extra: { disabled: false, hitCount: h?.hits ?? 0, hitAt: goTime(h?.lastMs ?? 0) },
      }
    }),
  }
}

/** Go's JSON time: RFC 3339; the zero time for "never", as mihomo sends it. */
function goTime(ms: number): string {
  return ms === 0 ? '0001-01-01T00:00:00Z' : new Date(ms).toISOString()
}

// ---- proxies --------------------------------------------------------------------

export interface DelayRecord {
  /** Wall clock, ms. */
  time: number
  /** ms; 0 = failed (as mihomo records a failed test). */
  delay: number
}

export interface ProxyInfo {
  name: string
  /** Clash's adapter type: Direct, Reject, Socks5, Http; ugate's own: Hbone (a mesh peer). */
  type: string
  udp: boolean
  history: readonly DelayRecord[]
  /** An hbone upstream: the peer and its live tunnels (mihomo has no such field; dashboards ignore it). */
  mesh?: MeshPeer
}

export interface MeshPeer {
  /** The peer's HBONE address, IP:PORT; null: reached only through its reverse tunnel. */
  server: string | null
  /** The SPIFFE id the peer must present; '' = any of the trust domain. */
  identity: string
  tunnels: readonly MeshTunnel[]
}

/** One pooled connection to the peer, as `ugate ctl status` lists it. */
export interface MeshTunnel {
  id: number
  state: string
  /** The SPIFFE id the peer presented ('' during the handshake). */
  peerId: string
  streams: number
  streamsTotal: number
  bytesOut: number
  bytesIn: number
  /** Last PING round trip; null before the first. */
  rttMs: number | null
  ageMs: number
}

export function proxyView(p: ProxyInfo) {
  const last = p.history[p.history.length - 1]
  return {
    name: p.name,
    type: p.type,
    udp: p.udp,
    alive: last === undefined || last.delay > 0,
    history: p.history.map((h) => ({ time: goTime(h.time), delay: h.delay })),
    // mihomo's extra is per test URL; ugate tests one URL at a time and keeps it empty.
    extra: {},
    ...(p.mesh !== undefined ? { mesh: p.mesh } : {}),
  }
}

export function proxiesView(list: readonly ProxyInfo[]) {
  const proxies: Record<string, ReturnType<typeof proxyView>> = {}
  for (const p of list) proxies[p.name] = proxyView(p)
  return { proxies }
}

// ---- connections ----------------------------------------------------------------

/**
 * Which live thing an API id names: a TCP connection ("17", its number since
 * start) or a UDP flow ("udp-17": flows are numbered on their own).
 */
export type ConnRef = { network: 'tcp' | 'udp'; id: number }

const UDP_ID = 'udp-'

/** The API id of a connection or flow (mihomo's ids are opaque strings). */
export function connId(ref: ConnRef): string {
  return ref.network === 'udp' ? `${UDP_ID}${ref.id}` : String(ref.id)
}

/** An id as DELETE /connections/:id and `ugate ctl close` take it; null when it is none. */
export function parseConnId(text: string): ConnRef | null {
  const udp = text.startsWith(UDP_ID)
  const digits = udp ? text.slice(UDP_ID.length) : text
  if (!/^[0-9]{1,15}$/.test(digits) || Number(digits) < 1) return null
  return { network: udp ? 'udp' : 'tcp', id: Number(digits) }
}

/** One live connection or UDP flow as the gateway tracks it. */
export interface ConnInfo {
  /** Numbered per network (ConnRef). */
  id: number
  network: 'tcp' | 'udp'
  listener: string
  listenerType: string
  /** Client IP:PORT. */
  src: string
  /** Requested destination HOST:PORT, once known. */
  dst?: string
  /** Sniffed name (TLS SNI, HTTP Host). */
  sniffHost?: string
  /** Rule label (outbound.ts) and its action. */
  rule?: string
  action?: RuleAction
  /** Wall clock of accept, ms. */
  startMs: number
  up: number
  down: number
}

const INBOUND_TYPES: Record<string, string> = {
  forward: 'Tunnel',
  socks: 'Socks5',
  http: 'HTTP',
  mixed: 'Mixed',
  redirect: 'Redir',
  sni: 'Sni',
  tproxy: 'TProxy',
  hbone: 'Hbone',
}

function hostPort(text: string | undefined): { host: string; port: string } {
  if (text === undefined) return { host: '', port: '' }
  const s = splitHostPort(text)
  return 'portText' in s ? { host: s.host, port: s.portText } : { host: '', port: '' }
}

/** The rule type and payload of a connection's rule label. */
function ruleOfLabel(specs: readonly RuleSpec[], label: string | undefined): ClashRule {
  if (label === undefined) return { type: '', payload: '' }
  if (label === 'default') return { type: 'Match', payload: '' }
  const i = specs.findIndex((s, i) => ruleLabel(s, i) === label)
  return i < 0 ? { type: '', payload: '' } : clashRule(specs[i]!)
}

export function connectionView(c: ConnInfo, specs: readonly RuleSpec[]) {
  const src = hostPort(c.src)
  const dst = hostPort(c.dst)
  const ip = isIpLiteral(dst.host)
  const rule = ruleOfLabel(specs, c.rule)
  return {
    id: connId(c),
    metadata: {
      network: c.network,
      type: INBOUND_TYPES[c.listenerType] ?? c.listenerType,
      sourceIP: src.host,
      destinationIP: ip ? dst.host : '',
      sourcePort: src.port,
      destinationPort: dst.port,
      inboundName: c.listener,
      host: ip ? (c.sniffHost ?? '') : dst.host,
      sniffHost: c.sniffHost ?? '',
      dnsMode: 'normal',
      process: '',
      processPath: '',
      specialProxy: '',
      specialRules: '',
      remoteDestination: '',
    },
    upload: c.up,
    download: c.down,
    start: new Date(c.startMs).toISOString(),
    chains: [c.action === undefined ? 'DIRECT' : proxyName(c.action)],
    rule: rule.type,
    rulePayload: rule.payload,
  }
}

export function connectionsSnapshot(
  conns: readonly ConnInfo[],
  specs: readonly RuleSpec[],
  totals: { up: number; down: number },
  memory: number,
) {
  return {
    downloadTotal: totals.down,
    uploadTotal: totals.up,
    connections: conns.map((c) => connectionView(c, specs)),
    memory,
  }
}
