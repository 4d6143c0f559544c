// The routing engine: the compiled lookups of an ordered rule list (one
// index per primary condition, verify() for the others) and the query state
// of route(). How a lookup works: index.ts. compile.ts builds the entries.

import { CidrSet, CidrTree, type ListSink } from './cidr-tree.js'
import { DomainTrie } from './domain-trie.js'
import { AddressCache, type Cidr, type Family } from '../ip.js'
import { KeywordMatcher } from './keywords.js'
import { spiffeTrustDomain } from '../identity.js'
import type { RouteQuery, RouteResult, RuleAction } from './types.js'

// Condition kinds (also the primary-index kinds).
export const K_NONE = 0
export const K_DOMAIN = 1
export const K_SUFFIX = 2
export const K_DST = 3
export const K_KEYWORD = 4
export const K_SRC = 5
export const K_PORT = 6
export const K_LISTENER = 7

/** A set of short strings: linear compares for a few, a Set beyond. */
export class StringSet {
  private readonly list: string[]
  private readonly set: Set<string> | null
  constructor(values: string[]) {
    this.list = values
    this.set = values.length > 8 ? new Set(values) : null
  }
  has(s: string): boolean {
    if (this.set !== null) return this.set.has(s)
    const l = this.list
    for (let i = 0; i < l.length; i++) if (l[i] === s) return true
    return false
  }
}

/** A rule's own suffix list: endsWith at a label boundary for a few, a trie beyond. */
export class SuffixSet {
  private readonly list: string[]
  private readonly trie: DomainTrie | null
  constructor(values: string[]) {
    this.list = values
    this.trie = null
    if (values.length > 8) {
      this.trie = new DomainTrie()
      for (const v of values) this.trie.insert(v, 0, 'suffix')
      this.trie.finish()
    }
  }
  matches(host: string): boolean {
    if (this.trie !== null) return this.trie.matches(host)
    const l = this.list
    for (let i = 0; i < l.length; i++) {
      const v = l[i]!
      if (host === v) return true
      const cut = host.length - v.length - 1
      if (cut > 0 && host.charCodeAt(cut) === 46 /* . */ && host.endsWith(v)) return true
    }
    return false
  }
}

/**
 * What verify() checks for a candidate: the rule's conditions other than its
 * primary one. null (no object at all) for the many rules whose only
 * condition is the primary one.
 */
export interface Check {
  exact: StringSet | null
  suffix: SuffixSet | null
  keywords: string[] | null
  dst: CidrSet | null
  src: CidrSet | null
  ports: number[] | null // sorted, merged [lo, hi] pairs
  listeners: StringSet | null
  protoMask: number // 0 = any
  networkMask: number // 0 = any; NETWORK_BITS
  // the mesh peer (never indexed: few rules have them)
  identities: StringSet | null
  trustDomains: StringSet | null
  nodes: StringSet | null
}

/** Bits of the `network` condition; a query without `network` is TCP. */
export const NETWORK_BITS = { tcp: 1, udp: 2 } as const

/** The query, parsed once per route() call into preallocated fields. */
class QueryState {
  host: string | null = null
  dstFamily: Family = 0
  readonly dst = new Int32Array(4)
  srcFamily: Family = 0
  readonly src = new Int32Array(4)
  port = 0
  listener = ''
  protoBit = 0
  networkBit = 0
  identity: string | null = null
  trustDomain: string | null = null
  node: string | null = null
}

/** Counts for logs and the benchmark. */
export interface RuleStats {
  rules: number
  domainNames: number
  keywords: number
  dstPrefixes: number
  srcPrefixes: number
  treeNodes: number
  portValues: number
  portRanges: number
  listenerNames: number
  scanned: number
}

export class CompiledRules implements ListSink {
  /** Number of rules. */
  readonly size: number
  /** Upstream names the rules use (for the caller to check they exist). */
  readonly upstreams: ReadonlySet<string>
  /** Listener names the rules use. */
  readonly listeners: ReadonlySet<string>
  readonly stats: RuleStats
  /**
   * Whether a rule looks at who connects (srcCidr, or the mesh peer's
   * srcIdentity, srcTrustDomain, srcNode): without one, the answer for a
   * query does not depend on its srcIp, srcIdentity or srcNode (RouteCache).
   */
  readonly bySource: boolean
  private readonly checks: Array<Check | null>
  private readonly results: RouteResult[]
  private readonly defaultResult: RouteResult
  private readonly domains = new DomainTrie()
  private readonly keywords = new KeywordMatcher()
  private readonly dst4 = new CidrTree(4)
  private readonly dst6 = new CidrTree(6)
  private readonly src4 = new CidrTree(4)
  private readonly src6 = new CidrTree(6)
  private readonly portMap = new Map<number, number[]>()
  private readonly portRanges: number[] // triples lo, hi, rule; by rule
  private readonly listenerMap = new Map<string, number[]>()
  private readonly scanList: number[]
  private readonly needDst: boolean
  private readonly needSrc: boolean
  private readonly q = new QueryState()
  private readonly addresses = new AddressCache()
  private best = 0

  /** Use compileRules(). */
  constructor(compiled: CompiledRule[], defaultAction: RuleAction) {
    this.size = compiled.length
    this.checks = compiled.map((r) => r.check)
    this.results = compiled.map((r) => r.result)
    this.defaultResult = Object.freeze({ action: defaultAction, ruleIndex: -1 })
    const upstreams = new Set<string>()
    const listeners = new Set<string>()
    const ranges: number[] = []
    const scan: number[] = []
    let needDst = false
    let needSrc = false
    compiled.forEach((r, i) => {
      const v = r.values
      if (r.result.action.type === 'upstream') upstreams.add(r.result.action.name)
      for (const l of v.listener) listeners.add(l)
      if (v.dstCidr.length > 0) needDst = true
      if (v.srcCidr.length > 0) needSrc = true
      switch (r.primary) {
        case K_DOMAIN:
          for (const d of v.domain) this.domains.insert(d, i, 'exact')
          break
        case K_SUFFIX:
          for (const d of v.domainSuffix) this.domains.insert(d, i, 'suffix')
          break
        case K_DST:
          for (const c of v.dstCidr) (c.family === 4 ? this.dst4 : this.dst6).insert(c, i)
          break
        case K_KEYWORD:
          for (const k of v.domainKeyword) this.keywords.insert(k, i)
          break
        case K_SRC:
          for (const c of v.srcCidr) (c.family === 4 ? this.src4 : this.src6).insert(c, i)
          break
        case K_PORT:
          for (const [lo, hi] of v.dstPort) {
            if (lo === hi) appendId(this.portMap, lo, i)
            else ranges.push(lo, hi, i)
          }
          break
        case K_LISTENER:
          for (const l of v.listener) appendId(this.listenerMap, l, i)
          break
        default:
          scan.push(i)
      }
    })
    this.domains.finish()
    this.keywords.finish()
    for (const t of [this.dst4, this.dst6, this.src4, this.src6]) t.finish()
    this.portRanges = ranges
    this.scanList = scan
    this.needDst = needDst
    this.needSrc = needSrc
    this.bySource =
      needSrc ||
      this.checks.some((c) => c !== null && (c.identities !== null || c.trustDomains !== null || c.nodes !== null))
    this.upstreams = upstreams
    this.listeners = listeners
    this.stats = {
      rules: compiled.length,
      domainNames: this.domains.size,
      keywords: this.keywords.size,
      dstPrefixes: this.dst4.size + this.dst6.size,
      srcPrefixes: this.src4.size + this.src6.size,
      treeNodes: this.dst4.nodes + this.dst6.nodes + this.src4.nodes + this.src6.nodes,
      portValues: this.portMap.size,
      portRanges: ranges.length / 3,
      listenerNames: this.listenerMap.size,
      scanned: scan.length,
    }
  }

  route(query: RouteQuery): RouteResult {
    const q = this.q
    q.host = normalizeHost(query.host)
    q.dstFamily = this.needDst && typeof query.dstIp === 'string' ? this.addresses.parse(query.dstIp, q.dst) : 0
    q.srcFamily = this.needSrc && typeof query.srcIp === 'string' ? this.addresses.parse(query.srcIp, q.src) : 0
    q.port = query.dstPort
    q.listener = query.listener
    q.protoBit = protoBit(query.proto)
    q.networkBit = query.network === 'udp' ? NETWORK_BITS.udp : NETWORK_BITS.tcp
    const id = query.srcIdentity
    q.identity = typeof id === 'string' && id !== '' ? id : null
    q.trustDomain = q.identity === null ? null : spiffeTrustDomain(q.identity) || null
    q.node = typeof query.srcNode === 'string' && query.srcNode !== '' ? query.srcNode : null
    this.best = this.size
    const host = q.host
    if (host !== null) {
      this.domains.lookup(host, this)
      this.keywords.lookup(host, this)
    }
    if (q.dstFamily === 4) this.dst4.lookup(q.dst, this)
    else if (q.dstFamily === 6) this.dst6.lookup(q.dst, this)
    if (q.srcFamily === 4) this.src4.lookup(q.src, this)
    else if (q.srcFamily === 6) this.src6.lookup(q.src, this)
    if (this.portMap.size > 0) {
      const byPort = this.portMap.get(q.port)
      if (byPort !== undefined) this.take(byPort)
    }
    const ranges = this.portRanges
    for (let i = 0; i < ranges.length; i += 3) {
      const r = ranges[i + 2]!
      if (r >= this.best) break
      if (q.port >= ranges[i]! && q.port <= ranges[i + 1]! && this.verify(this.checks[r] ?? null)) {
        this.best = r
        break
      }
    }
    if (this.listenerMap.size > 0) {
      const byListener = this.listenerMap.get(q.listener)
      if (byListener !== undefined) this.take(byListener)
    }
    if (this.scanList.length > 0) this.take(this.scanList)
    const best = this.best
    q.host = null
    return best < this.size ? this.results[best]! : this.defaultResult
  }

  /** ListSink (internal): a sorted list of candidates whose primary condition holds. */
  take(list: readonly number[]): void {
    const best = this.best
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!
      if (r >= best) return
      if (this.verify(this.checks[r] ?? null)) {
        this.best = r
        return
      }
    }
  }

  /** The rule's conditions other than its primary one (which its index already checked; it has no matcher). */
  private verify(r: Check | null): boolean {
    if (r === null) return true
    const q = this.q
    if (r.protoMask !== 0 && (r.protoMask & q.protoBit) === 0) return false
    if (r.networkMask !== 0 && (r.networkMask & q.networkBit) === 0) return false
    if (r.ports !== null && !portIn(r.ports, q.port)) return false
    if (r.listeners !== null && !r.listeners.has(q.listener)) return false
    const host = q.host
    if (r.exact !== null && (host === null || !r.exact.has(host))) return false
    if (r.suffix !== null && (host === null || !r.suffix.matches(host))) return false
    if (r.keywords !== null && (host === null || !anyIncluded(host, r.keywords))) return false
    if (r.dst !== null && (q.dstFamily === 0 || !r.dst.matches(q.dstFamily, q.dst))) return false
    if (r.src !== null && (q.srcFamily === 0 || !r.src.matches(q.srcFamily, q.src))) return false
    if (r.identities !== null && (q.identity === null || !r.identities.has(q.identity))) return false
    if (r.trustDomains !== null && (q.trustDomain === null || !r.trustDomains.has(q.trustDomain))) return false
    if (r.nodes !== null && (q.node === null || !r.nodes.has(q.node))) return false
    return true
  }
}

function appendId<K>(m: Map<K, number[]>, key: K, id: number): void {
  const list = m.get(key)
  if (list === undefined) m.set(key, [id])
  else if (list[list.length - 1] !== id) list.push(id)
}

function portIn(ranges: readonly number[], port: number): boolean {
  for (let i = 0; i < ranges.length; i += 2) {
    if (port < ranges[i]!) return false // sorted: no later range can hold it
    if (port <= ranges[i + 1]!) return true
  }
  return false
}

function anyIncluded(host: string, keywords: string[]): boolean {
  for (let i = 0; i < keywords.length; i++) if (host.includes(keywords[i]!)) return true
  return false
}

const UPPER = /[A-Z]/

/**
 * Lower case, one trailing dot removed; null when empty or absent. Copies
 * only when needed; native calls only (a JS loop per character is slow on
 * QuickJS).
 */
function normalizeHost(host: string | undefined): string | null {
  if (typeof host !== 'string' || host.length === 0) return null
  if (host.charCodeAt(host.length - 1) === 46) host = host.slice(0, -1)
  if (host.length === 0) return null
  return UPPER.test(host) ? host.toLowerCase() : host
}

/** A rule's condition values, validated and normalised. */
export interface IndexedValues {
  domain: string[]
  domainSuffix: string[]
  domainKeyword: string[]
  dstCidr: Cidr[]
  srcCidr: Cidr[]
  dstPort: Array<[number, number]>
  listener: string[]
}

/** One rule, checked and split into its index entries and its verification. */
export interface CompiledRule {
  primary: number // K_*
  values: IndexedValues
  check: Check | null
  result: RouteResult
}

export function protoBit(p: unknown): number {
  switch (p) {
    case 'tls':
      return 1
    case 'http':
      return 2
    case 'h2':
      return 4
    case 'unknown':
      return 8
    default:
      return 0
  }
}
