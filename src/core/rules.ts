// The routing engine: ordered rules, first match wins.
//
// A rule is a list of conditions and an action. Every condition the rule
// has must hold; a list condition holds when any of its values matches.
// `domain`, `domainSuffix` and `domainKeyword` are three separate conditions
// (so a rule with two of them needs both); a domain condition never holds
// without a host name, a dstCidr condition never without a destination
// address, a proto condition never without a sniffed protocol (the caller
// routes again once it knows more).
//
// How 10 000 rules stay cheap (compileRules → CompiledRules):
//
//  1. Each rule gets ONE primary condition, the most selective one it has,
//     in this order: domain, domainSuffix, dstCidr, domainKeyword, srcCidr,
//     dstPort, listener. The rule's index goes into that condition's index
//     only: a reversed-label suffix trie (domain, domainSuffix), a
//     path-compressed binary prefix tree per family (dstCidr, srcCidr), an
//     Aho–Corasick automaton (domainKeyword), a port Map plus a range list
//     (dstPort), a Map (listener). Rules without any of these (only `proto`,
//     or no condition at all: a catch-all) go to a short scan list.
//  2. A lookup asks each index for the lists of rules whose primary
//     condition holds for the query. Every list is sorted by rule index.
//  3. Each list is read in order and each candidate is verified against its
//     other conditions (small per-rule matchers: a few string compares,
//     masked integer compares, a port-range search). A list stops at the
//     first rule that verifies or at the best (smallest) index found so far,
//     so the answer is the smallest index whose conditions all hold: first
//     match wins, across all index types.
//
// Cost per lookup: one Map lookup per host label, one tree walk per address,
// one pass over the host for keywords, plus the candidates that fail
// verification (few in real rule sets). Query parsing writes into
// preallocated arrays and every rule's result object is built at compile
// time, so route() allocates only the host's label strings (and a lower-case
// copy when the host has capitals). Parsed addresses are cached by their
// text (AddressCache), and host handling prefers native string calls: on
// QuickJS a JS loop costs ~0.1-0.2 µs per character.

import { CidrSet, CidrTree, type ListSink } from './rules/cidr-tree.js'
import { DomainTrie } from './rules/domain-trie.js'
import { AddressCache, parseCidr, parseIpInto, type Cidr, type Family } from './ip.js'
import { KeywordMatcher } from './rules/keywords.js'
import { hostNameProblem } from './address.js'
import { ConfigError, show } from './errors.js'
import type { SniffProto } from './sniff/types.js'

// ---- public types -----------------------------------------------------------------

export type RuleAction =
  | { type: 'direct' }
  | { type: 'reject' }
  | { type: 'upstream'; name: string }
  | { type: 'forward'; host: string; port: number }

/** A port, an inclusive range, or text: "80", "8000-8080". */
export type PortSpec = number | [number, number] | string

export interface RuleSpec {
  name?: string
  /** Exact names; case and a trailing dot are ignored. */
  domain?: string[]
  /** "example.com" matches example.com and every name below it (label boundary). */
  domainSuffix?: string[]
  /** Substring of the host name. */
  domainKeyword?: string[]
  /** IPv4/IPv6 CIDRs or plain addresses. */
  dstCidr?: string[]
  dstPort?: PortSpec[]
  srcCidr?: string[]
  listener?: string[]
  proto?: SniffProto[]
  action: RuleAction
}

export interface RouteQuery {
  /** Host name when known (SNI, HTTP Host, SOCKS/CONNECT name). */
  host?: string
  /** Destination IP literal when known. */
  dstIp?: string
  dstPort: number
  srcIp: string
  listener: string
  proto?: SniffProto
}

export interface RouteResult {
  action: RuleAction
  /** Index of the matching rule, -1 for the default action. */
  ruleIndex: number
  /** The rule's name, when it has one. */
  ruleName?: string
}

export const DEFAULT_ACTION: RuleAction = Object.freeze({ type: 'direct' })

// ---- compiled form ------------------------------------------------------------------

// Condition kinds (also the primary-index kinds).
const K_NONE = 0
const K_DOMAIN = 1
const K_SUFFIX = 2
const K_DST = 3
const K_KEYWORD = 4
const K_SRC = 5
const K_PORT = 6
const K_LISTENER = 7

/** A set of short strings: linear compares for a few, a Set beyond. */
class StringSet {
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
class SuffixSet {
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
interface Check {
  exact: StringSet | null
  suffix: SuffixSet | null
  keywords: string[] | null
  dst: CidrSet | null
  src: CidrSet | null
  ports: number[] | null // sorted, merged [lo, hi] pairs
  listeners: StringSet | null
  protoMask: number // 0 = any
}

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
    if (r.ports !== null && !portIn(r.ports, q.port)) return false
    if (r.listeners !== null && !r.listeners.has(q.listener)) return false
    const host = q.host
    if (r.exact !== null && (host === null || !r.exact.has(host))) return false
    if (r.suffix !== null && (host === null || !r.suffix.matches(host))) return false
    if (r.keywords !== null && (host === null || !anyIncluded(host, r.keywords))) return false
    if (r.dst !== null && (q.dstFamily === 0 || !r.dst.matches(q.dstFamily, q.dst))) return false
    if (r.src !== null && (q.srcFamily === 0 || !r.src.matches(q.srcFamily, q.src))) return false
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

// ---- compiling --------------------------------------------------------------------

/** A rule's condition values, validated and normalised. */
interface IndexedValues {
  domain: string[]
  domainSuffix: string[]
  domainKeyword: string[]
  dstCidr: Cidr[]
  srcCidr: Cidr[]
  dstPort: Array<[number, number]>
  listener: string[]
}

const RULE_FIELDS = [
  'name',
  'domain',
  'domainSuffix',
  'domainKeyword',
  'dstCidr',
  'dstPort',
  'srcCidr',
  'listener',
  'proto',
  'action',
] as const
const RULE_FIELD_SET: ReadonlySet<string> = new Set(RULE_FIELDS)

/**
 * Compile rules (in order; first match wins) into indexed lookups. Throws
 * ConfigError naming the rule ("rules[3]"), the field and the bad value.
 * `basePath` is the config path of the array (default "rules").
 */
export function compileRules(
  specs: readonly RuleSpec[],
  defaultAction: RuleAction = DEFAULT_ACTION,
  basePath = 'rules',
): CompiledRules {
  if (!Array.isArray(specs)) throw new ConfigError(basePath, `must be an array of rules, not ${show(specs)}`, specs)
  const def = checkAction(defaultAction, 'default action')
  const actions = new Map<string, RuleAction>() // identical actions shared: less memory
  const compiled = specs.map((spec, i) => compileRule(spec, `${basePath}[${i}]`, i, actions))
  return new CompiledRules(compiled, def)
}

/** First matching rule's action, or the default (ruleIndex -1). Never throws for odd queries. */
export function route(c: CompiledRules, q: RouteQuery): RouteResult {
  return c.route(q)
}

/** One rule, checked and split into its index entries and its verification. */
interface CompiledRule {
  primary: number // K_*
  values: IndexedValues
  check: Check | null
  result: RouteResult
}

function compileRule(spec: RuleSpec, path: string, index: number, actions?: Map<string, RuleAction>): CompiledRule {
  const fail = (field: string, detail: string, value: unknown, sub = ''): never => {
    throw new ConfigError(`${path}${field === '' ? '' : '.' + field}${sub}`, detail, value)
  }
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec))
    fail('', `must be a rule object, not ${show(spec)}`, spec)
  for (const key in spec) {
    if (!RULE_FIELD_SET.has(key)) fail('', `unknown field ${show(key)} (known: ${RULE_FIELDS.join(', ')})`, key)
  }
  let name: string | undefined
  if (spec.name !== undefined) {
    if (typeof spec.name !== 'string' || !PRINTABLE.test(spec.name)) {
      fail('name', `${show(spec.name)} is not a rule name (1-64 printable ASCII characters, no spaces)`, spec.name)
    }
    name = spec.name
  }
  // Each list condition: absent, or a non-empty array of valid values.
  const list = <T>(field: keyof RuleSpec, parse: (v: unknown) => T): T[] => {
    const raw = (spec as unknown as Record<string, unknown>)[field]
    if (raw === undefined) return []
    if (!Array.isArray(raw)) return fail(field, `must be an array, not ${show(raw)}`, raw)
    if (raw.length === 0) return fail(field, 'must not be empty (leave the field out to match anything)', raw)
    return raw.map((v, k) => {
      try {
        return parse(v)
      } catch (e) {
        if (e instanceof Why) return fail(field, `${show(v)} ${e.why}`, v, `[${k}]`)
        throw e
      }
    })
  }
  const domain = list('domain', (v) => domainName(v, false))
  const domainSuffix = list('domainSuffix', (v) => domainName(v, true))
  const domainKeyword = list('domainKeyword', keyword)
  const dstCidr = list('dstCidr', cidr)
  const srcCidr = list('srcCidr', cidr)
  const dstPort = list('dstPort', portRange)
  const listener = list('listener', listenerName)
  const proto = list('proto', protoName)
  if (spec.action === undefined) fail('action', 'is missing', undefined)
  let action = checkAction(spec.action, `${path}.action`)

  let primary = K_NONE
  if (domain.length > 0) primary = K_DOMAIN
  else if (domainSuffix.length > 0) primary = K_SUFFIX
  else if (dstCidr.length > 0) primary = K_DST
  else if (domainKeyword.length > 0) primary = K_KEYWORD
  else if (srcCidr.length > 0) primary = K_SRC
  else if (dstPort.length > 0) primary = K_PORT
  else if (listener.length > 0) primary = K_LISTENER

  if (actions !== undefined) {
    const key =
      action.type === 'upstream'
        ? `u:${action.name}`
        : action.type === 'forward'
          ? `f:${action.host}:${action.port}`
          : action.type
    const shared = actions.get(key)
    if (shared === undefined) actions.set(key, action)
    else action = shared
  }
  const result: RouteResult =
    name === undefined ? { action, ruleIndex: index } : { action, ruleIndex: index, ruleName: name }
  // Matchers for the conditions verify() checks: all but the primary one,
  // which the primary index has already checked when a rule is a candidate.
  const needs = (kind: number, n: number) => n > 0 && kind !== primary
  const protoMask = proto.reduce((m, p) => m | protoBit(p), 0)
  let check: Check | null = null
  if (
    needs(K_DOMAIN, domain.length) ||
    needs(K_SUFFIX, domainSuffix.length) ||
    needs(K_KEYWORD, domainKeyword.length) ||
    needs(K_DST, dstCidr.length) ||
    needs(K_SRC, srcCidr.length) ||
    needs(K_PORT, dstPort.length) ||
    needs(K_LISTENER, listener.length) ||
    protoMask !== 0
  ) {
    check = {
      exact: needs(K_DOMAIN, domain.length) ? new StringSet(uniq(domain)) : null,
      suffix: needs(K_SUFFIX, domainSuffix.length) ? new SuffixSet(uniq(domainSuffix)) : null,
      keywords: needs(K_KEYWORD, domainKeyword.length) ? uniq(domainKeyword) : null,
      dst: needs(K_DST, dstCidr.length) ? new CidrSet(dstCidr) : null,
      src: needs(K_SRC, srcCidr.length) ? new CidrSet(srcCidr) : null,
      ports: needs(K_PORT, dstPort.length) ? mergeRanges(dstPort) : null,
      listeners: needs(K_LISTENER, listener.length) ? new StringSet(uniq(listener)) : null,
      protoMask,
    }
  }
  return {
    primary,
    values: { domain, domainSuffix, domainKeyword, dstCidr, srcCidr, dstPort, listener },
    check,
    result: Object.freeze(result),
  }
}

function uniq(values: string[]): string[] {
  return [...new Set(values)]
}

function mergeRanges(ranges: Array<[number, number]>): number[] {
  const sorted = ranges.slice().sort((a, b) => a[0] - b[0])
  const out: number[] = []
  for (const [lo, hi] of sorted) {
    const n = out.length
    if (n > 0 && lo <= out[n - 1]! + 1) out[n - 1] = Math.max(out[n - 1]!, hi)
    else out.push(lo, hi)
  }
  return out
}

/** A value's problem, thrown by the value checkers below; compileRule adds the path. */
class Why {
  constructor(readonly why: string) {}
}

const PRINTABLE = /^[\x21-\x7e]{1,64}$/ // names: printable ASCII, no spaces
const NON_ASCII = /[^\x00-\x7f]/
const KEYWORD = /^[a-z0-9._-]{1,253}$/

/**
 * Lower case, one trailing dot dropped, then every label checked (a-z 0-9 _
 * -, 1-63 characters, no '-' at either end; names up to 253 characters).
 * Non-ASCII names must be written in punycode ("xn--...").
 */
function domainName(v: unknown, suffix: boolean): string {
  if (typeof v !== 'string') throw new Why('is not a string')
  let s = v.toLowerCase()
  if (s.endsWith('.')) s = s.slice(0, -1)
  if (suffix && (s.startsWith('.') || s.startsWith('*.'))) {
    throw new Why(
      `is not a domain suffix (write ${show(s.replace(/^\*?\./, ''))}: a suffix already matches the names below it)`,
    )
  }
  if (s.length === 0 || s.length > 253) throw new Why('is not a domain name (1-253 characters)')
  if (NON_ASCII.test(s)) throw new Why('is not a domain name (write non-ASCII names in punycode, "xn--...")')
  if (hostNameProblem(s) !== null) throw new Why('is not a domain name (labels of a-z 0-9 _ -, 1-63 characters each)')
  return s
}

function keyword(v: unknown): string {
  if (typeof v !== 'string') throw new Why('is not a string')
  const s = v.toLowerCase()
  if (!KEYWORD.test(s)) throw new Why('is not a domain keyword (1-253 of a-z 0-9 . _ -)')
  return s
}

function cidr(v: unknown): Cidr {
  const c = typeof v === 'string' ? parseCidr(v) : null
  if (c === null) throw new Why('is not an IPv4 or IPv6 address or CIDR')
  return c
}

function listenerName(v: unknown): string {
  if (typeof v !== 'string' || !PRINTABLE.test(v)) throw new Why('is not a listener name')
  return v
}

function protoName(v: unknown): SniffProto {
  if (v !== 'tls' && v !== 'http' && v !== 'h2' && v !== 'unknown')
    throw new Why('is not a protocol (tls, http, h2, unknown)')
  return v
}

function protoBit(p: unknown): number {
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

/** 80, [8000, 8080], "80", "8000-8080" → [lo, hi]. */
function portRange(v: unknown): [number, number] {
  const isPort = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535
  if (isPort(v)) return [v, v]
  if (Array.isArray(v) && v.length === 2 && isPort(v[0]) && isPort(v[1]) && v[0] <= v[1]) return [v[0], v[1]]
  if (typeof v === 'string') {
    const m = /^([1-9][0-9]{0,4})(?:-([1-9][0-9]{0,4}))?$/.exec(v)
    if (m) {
      const lo = Number(m[1])
      const hi = m[2] === undefined ? lo : Number(m[2])
      if (isPort(lo) && isPort(hi) && lo <= hi) return [lo, hi]
    }
  }
  throw new Why('is not a port (1-65535) or a range ("8000-8080" or [8000, 8080])')
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/

function checkAction(a: unknown, path: string): RuleAction {
  const fail = (detail: string): never => {
    throw new ConfigError(path, detail, a)
  }
  if (a === null || typeof a !== 'object') return fail(`${show(a)} is not an action`)
  const o = a as Record<string, unknown>
  const extra = (allowed: string[]) => {
    for (const k of Object.keys(o))
      if (!allowed.includes(k)) fail(`unknown field ${show(k)} in a ${String(o.type)} action`)
  }
  switch (o.type) {
    case 'direct':
    case 'reject':
      extra(['type'])
      return Object.freeze({ type: o.type })
    case 'upstream':
      extra(['type', 'name'])
      if (typeof o.name !== 'string' || !NAME.test(o.name)) {
        fail(`upstream name ${show(o.name)} is not a name (1-64 of A-Z a-z 0-9 _ . -)`)
      }
      return Object.freeze({ type: 'upstream', name: o.name as string })
    case 'forward': {
      extra(['type', 'host', 'port'])
      const host = typeof o.host === 'string' ? checkForwardHost(o.host) : null
      if (host === null) fail(`forward host ${show(o.host)} is not an IP address or host name`)
      if (typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
        fail(`forward port ${show(o.port)} is not a number 1-65535`)
      }
      return Object.freeze({ type: 'forward', host: host!, port: o.port as number })
    }
    default:
      return fail(`${show(o.type)} is not an action type (direct, reject, upstream, forward)`)
  }
}

const ipScratch = new Int32Array(4)

/** An IP literal (IPv6 without brackets) or a host name; the normalised host, or null. */
function checkForwardHost(h: string): string | null {
  if (parseIpInto(h, ipScratch) !== 0) return h.toLowerCase()
  let n: string
  try {
    n = domainName(h, false)
  } catch {
    return null
  }
  // a last label of digits only is a mistyped IPv4 address, not a name
  return /(^|\.)[0-9]+$/.test(n) ? null : n
}

// ---- JSON form -------------------------------------------------------------------

/**
 * Parse an action string: "direct", "reject", "upstream:NAME",
 * "forward:HOST:PORT" (IPv6 hosts in brackets: "forward:[2001:db8::1]:443").
 */
export function parseActionString(text: unknown, path: string): RuleAction {
  const fail = (why: string): never => {
    throw new ConfigError(path, `${show(text)} is not an action (${why})`, text)
  }
  if (typeof text !== 'string') return fail('"direct", "reject", "upstream:NAME" or "forward:HOST:PORT"')
  if (text === 'direct' || text === 'reject') return Object.freeze({ type: text })
  if (text.startsWith('upstream:')) {
    const name = text.slice('upstream:'.length)
    if (!NAME.test(name)) fail('upstream NAME is 1-64 of A-Z a-z 0-9 _ . -')
    return Object.freeze({ type: 'upstream', name })
  }
  if (text.startsWith('forward:')) {
    const hp = splitHostPort(text.slice('forward:'.length))
    if (typeof hp === 'string') return fail(hp)
    return checkAction({ type: 'forward', host: hp[0], port: hp[1] }, path)
  }
  return fail('"direct", "reject", "upstream:NAME" or "forward:HOST:PORT"')
}

/** "host:port" / "[v6]:port" → [host, port], or why not. */
function splitHostPort(s: string): [string, number] | string {
  let host: string
  let portText: string
  if (s.startsWith('[')) {
    const close = s.indexOf(']')
    if (close < 0 || s[close + 1] !== ':') return 'an IPv6 HOST is written "[ADDR]:PORT"'
    host = s.slice(1, close)
    portText = s.slice(close + 2)
    if (parseIpInto(host, ipScratch) !== 6) return `${show(host)} is not an IPv6 address`
  } else {
    const colon = s.lastIndexOf(':')
    if (colon <= 0) return 'missing HOST:PORT'
    host = s.slice(0, colon)
    portText = s.slice(colon + 1)
    if (host.includes(':')) return 'an IPv6 HOST needs brackets: "[ADDR]:PORT"'
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > 65535)
    return `port ${show(portText)} is not a number 1-65535`
  if (checkForwardHost(host) === null) return `${show(host)} is not an IP address or host name`
  return [host, Number(portText)]
}

/**
 * Map one rule of the config's JSON `rules` array onto a RuleSpec and check
 * it completely (values too), so `ugate check` reports every problem with its
 * path: `{"domainSuffix": ["example.com"], "dstPort": [443, "8000-8080"],
 * "action": "upstream:vpn"}`. `path` is the rule's path ("rules[3]").
 */
export function parseRuleJson(obj: unknown, path: string): RuleSpec {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ConfigError(path, `must be a rule object, not ${show(obj)}`, obj)
  }
  const o = obj as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (!(RULE_FIELDS as readonly string[]).includes(key)) {
      throw new ConfigError(path, `unknown field ${show(key)} (known: ${RULE_FIELDS.join(', ')})`, key)
    }
  }
  if (o.action === undefined) throw new ConfigError(`${path}.action`, 'is missing', undefined)
  const spec = { ...o, action: parseActionString(o.action, `${path}.action`) } as RuleSpec
  compileRule(spec, path, -1) // every value checked, errors named by path
  return spec
}

/** The config's whole `rules` array (see parseRuleJson). */
export function parseRulesJson(arr: unknown, path = 'rules'): RuleSpec[] {
  if (!Array.isArray(arr)) throw new ConfigError(path, `must be an array of rules, not ${show(arr)}`, arr)
  return arr.map((r, i) => parseRuleJson(r, `${path}[${i}]`))
}

// ---- the original ugate's lookup order ----------------------------------------------

/**
 * The original (Go) ugate looked a stream up in `routes` as "host:port",
 * then "host", then ":port", then "*"; a route's `forwardTo` ("HOST:PORT")
 * replaced the destination, a route without it kept the original one
 * (direct). This returns the same decisions as ordered rules: all
 * "host:port" keys first, then "host", ":port" and "*". A host that is an IP
 * literal becomes a dstCidr condition (the original compared the address
 * text; ugate routes addresses by value). Throws ConfigError naming the key.
 */
export function originalLookupRules(routes: Record<string, { forwardTo?: string }>, path = 'routes'): RuleSpec[] {
  if (routes === null || typeof routes !== 'object' || Array.isArray(routes)) {
    throw new ConfigError(path, `must be an object of routes, not ${show(routes)}`, routes)
  }
  const groups: RuleSpec[][] = [[], [], [], []]
  for (const [key, route] of Object.entries(routes)) {
    const where = `${path}[${show(key)}]`
    const bad = (detail: string): never => {
      throw new ConfigError(where, detail, key)
    }
    if (route === null || typeof route !== 'object') bad(`must be an object with "forwardTo", not ${show(route)}`)
    for (const k of Object.keys(route)) if (k !== 'forwardTo') bad(`unknown field ${show(k)}`)
    let action: RuleAction = { type: 'direct' }
    if (route.forwardTo !== undefined) {
      const hp = typeof route.forwardTo === 'string' ? splitHostPort(route.forwardTo) : 'not a string'
      if (typeof hp === 'string') {
        throw new ConfigError(
          `${where}.forwardTo`,
          `${show(route.forwardTo)} is not HOST:PORT (${hp})`,
          route.forwardTo,
        )
      }
      action = { type: 'forward', host: checkForwardHost(hp[0])!, port: hp[1] }
    }
    const name = `route:${key}`.replace(/[^\x21-\x7e]/g, '_').slice(0, 64)
    if (key === '*') {
      groups[3]!.push({ name, action })
      continue
    }
    if (key.startsWith(':')) {
      const text = key.slice(1)
      if (!/^[1-9][0-9]{0,4}$/.test(text) || Number(text) > 65535) bad('is not ":PORT" (port 1-65535)')
      groups[2]!.push({ name, dstPort: [Number(text)], action })
      continue
    }
    // "host:port", "[v6]:port", "host", or a bare IPv6 address
    let host = key
    let port: number | null = null
    if (parseIpInto(key, ipScratch) === 0 && (key.startsWith('[') || key.includes(':'))) {
      const hp = splitHostPort(key)
      if (typeof hp === 'string') return bad(`is not "host:port", "host", ":port" or "*" (${hp})`)
      host = hp[0]
      port = hp[1]
    } else if (checkForwardHost(key) === null) {
      bad('is not "host:port", "host", ":port" or "*" (bad host name)')
    }
    const condition: Partial<RuleSpec> =
      parseIpInto(host, ipScratch) !== 0 ? { dstCidr: [host] } : { domain: [host.toLowerCase()] }
    if (port === null) groups[1]!.push({ name, ...condition, action })
    else groups[0]!.push({ name, ...condition, dstPort: [port], action })
  }
  return groups.flat()
}
