// Compiling one rule: every value checked and normalised (errors are
// ConfigErrors naming the path, "rules[3].dstCidr[1]"), the primary
// condition chosen, and the matchers verify() needs for the others.

import { hostNameProblem, splitHostPort } from '../address.js'
import { ConfigError, show } from '../errors.js'
import { parseNodeId, spiffeIdProblem, trustDomainProblem } from '../identity.js'
import { parseCidr, parseIpInto, type Cidr } from '../ip.js'
import type { SniffProto } from '../sniff/types.js'
import { CidrSet } from './cidr-tree.js'
import {
  K_DOMAIN,
  K_DST,
  K_KEYWORD,
  K_LISTENER,
  K_NONE,
  K_PORT,
  K_SRC,
  K_SUFFIX,
  NETWORK_BITS,
  StringSet,
  SuffixSet,
  protoBit,
  type Check,
  type CompiledRule,
} from './engine.js'
import type { RouteResult, RuleAction, RuleSpec } from './types.js'

export const RULE_FIELDS = [
  'name',
  'domain',
  'domainSuffix',
  'domainKeyword',
  'dstCidr',
  'dstPort',
  'srcCidr',
  'listener',
  'proto',
  'network',
  'srcIdentity',
  'srcTrustDomain',
  'srcNode',
  'action',
] as const
const RULE_FIELD_SET: ReadonlySet<string> = new Set(RULE_FIELDS)

export function compileRule(
  spec: RuleSpec,
  path: string,
  index: number,
  actions?: Map<string, RuleAction>,
): CompiledRule {
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
  const network = list('network', networkName)
  const srcIdentity = list('srcIdentity', spiffeIdValue)
  const srcTrustDomain = list('srcTrustDomain', trustDomainValue)
  const srcNode = list('srcNode', nodeIdValue)
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
  const networkMask = network.reduce((m, n) => m | NETWORK_BITS[n], 0)
  let check: Check | null = null
  if (
    needs(K_DOMAIN, domain.length) ||
    needs(K_SUFFIX, domainSuffix.length) ||
    needs(K_KEYWORD, domainKeyword.length) ||
    needs(K_DST, dstCidr.length) ||
    needs(K_SRC, srcCidr.length) ||
    needs(K_PORT, dstPort.length) ||
    needs(K_LISTENER, listener.length) ||
    protoMask !== 0 ||
    networkMask !== 0 ||
    srcIdentity.length > 0 ||
    srcTrustDomain.length > 0 ||
    srcNode.length > 0
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
      networkMask,
      identities: srcIdentity.length > 0 ? new StringSet(uniq(srcIdentity)) : null,
      trustDomains: srcTrustDomain.length > 0 ? new StringSet(uniq(srcTrustDomain)) : null,
      nodes: srcNode.length > 0 ? new StringSet(uniq(srcNode)) : null,
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

function networkName(v: unknown): 'tcp' | 'udp' {
  if (v !== 'tcp' && v !== 'udp') throw new Why('is not a network (tcp, udp)')
  return v
}

function spiffeIdValue(v: unknown): string {
  const problem = spiffeIdProblem(v)
  if (problem !== null) throw new Why(problem)
  return v as string
}

function trustDomainValue(v: unknown): string {
  if (typeof v !== 'string') throw new Why('is not a string')
  const problem = trustDomainProblem(v)
  if (problem !== null) throw new Why(`is not a trust domain: it ${problem}`)
  return v
}

function nodeIdValue(v: unknown): string {
  const p = parseNodeId(v)
  if ('error' in p) throw new Why(p.error)
  return p.id
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

export const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/

export function checkAction(a: unknown, path: string): RuleAction {
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
    case 'mesh':
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
      return fail(`${show(o.type)} is not an action type (direct, reject, upstream, forward, mesh)`)
  }
}

const ipScratch = new Int32Array(4)

/** An IP literal (IPv6 without brackets) or a host name; the normalised host, or null. */
export function checkForwardHost(h: string): string | null {
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

/** "host:port" / "[v6]:port" → [host, port], or why not. */
export function forwardTarget(s: string): [string, number] | string {
  const split = splitHostPort(s)
  if ('why' in split) {
    switch (split.why) {
      case 'no-bracket-close':
      case 'no-port-after-bracket':
        return 'an IPv6 HOST is written "[ADDR]:PORT"'
      case 'not-ipv6':
        return `${show(split.host)} is not an IPv6 address`
      case 'no-port':
      case 'no-host':
        return 'missing HOST:PORT'
      case 'unbracketed-ipv6':
        return 'an IPv6 HOST needs brackets: "[ADDR]:PORT"'
    }
  }
  const { host, portText } = split
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > 65535)
    return `port ${show(portText)} is not a number 1-65535`
  if (checkForwardHost(host) === null) return `${show(host)} is not an IP address or host name`
  return [host, Number(portText)]
}
