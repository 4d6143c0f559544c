// The answer cache of the DNS listener: replies kept for their TTL and
// served with the TTLs counted down. Positive answers live as long as their
// shortest record; NXDOMAIN and NODATA (RFC 2308) as long as the SOA in the
// authority section says (the smaller of its TTL and its MINIMUM), and not
// at all without a SOA (§5). SERVFAIL, truncated replies and other rcodes
// are never kept. Bounded: past `maxEntries` the least recently used goes.

import { ExpiringMap } from './expiring.js'
import { CLASS_IN, type DnsMessage, type DnsQuestion, type DnsRecord, FLAG, RCODE, TYPE, rcodeOf } from './message.js'

interface Entry {
  rcode: number
  answers: DnsRecord[]
  authority: DnsRecord[]
  storedAt: number
}

/** What the cache answers: the records with their remaining TTLs. */
export interface CachedAnswer {
  rcode: number
  answers: DnsRecord[]
  authority: DnsRecord[]
}

export interface CacheLimits {
  maxEntries: number
  /** Longest time (s) anything is kept, whatever the TTL says. */
  maxTtl: number
}

export const DEFAULT_CACHE_LIMITS: CacheLimits = Object.freeze({ maxEntries: 4096, maxTtl: 86400 })

function keyOf(q: DnsQuestion): string {
  return `${q.name.toLowerCase()}/${q.type}/${q.class}`
}

/** Seconds the reply may be cached; 0 = not at all. */
export function cacheTtl(reply: DnsMessage): number {
  if (reply.flags & FLAG.TC || reply.questions.length !== 1) return 0
  const rcode = rcodeOf(reply)
  const answerTtl = reply.answers.reduce((min, r) => Math.min(min, r.ttl), Infinity)
  if (rcode === RCODE.NOERROR && reply.answers.length > 0) return answerTtl
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) return 0
  const soa = reply.authority.find((r) => r.type === TYPE.SOA && r.data.kind === 'soa')
  if (soa === undefined || soa.data.kind !== 'soa') return 0
  return Math.min(soa.ttl, soa.data.soa.minimum, answerTtl)
}

export class DnsCache {
  private readonly map: ExpiringMap<Entry>

  constructor(private readonly limits: CacheLimits = DEFAULT_CACHE_LIMITS) {
    this.map = new ExpiringMap(limits.maxEntries)
  }

  get size(): number {
    return this.map.size
  }

  /** Keep `reply` (to its one question) when it may be cached; true when kept. */
  store(reply: DnsMessage, nowMs: number): boolean {
    const q = reply.questions[0]
    const ttl = Math.min(cacheTtl(reply), this.limits.maxTtl)
    if (q === undefined || q.class !== CLASS_IN || ttl <= 0 || this.limits.maxEntries <= 0) return false
    const entry = {
      rcode: rcodeOf(reply),
      answers: reply.answers,
      authority: reply.authority.filter((r) => r.type === TYPE.SOA),
      storedAt: nowMs,
    }
    this.map.set(keyOf(q), entry, nowMs + ttl * 1000)
    return true
  }

  /** The cached answer to `q` with TTLs counted down, or undefined. */
  lookup(q: DnsQuestion, nowMs: number): CachedAnswer | undefined {
    const e = this.map.get(keyOf(q), nowMs, true)
    if (e === undefined) return undefined
    const age = Math.floor((nowMs - e.storedAt) / 1000)
    const aged = (r: DnsRecord): DnsRecord => ({ ...r, ttl: Math.max(0, r.ttl - age) })
    return { rcode: e.rcode, answers: e.answers.map(aged), authority: e.authority.map(aged) }
  }
}
