// A memo of what a route decides, per query: a caller that turns the same
// query into the same answer again and again (the native SOCKS5 handshake's
// CONNECTs: one answer object per destination) keeps it here instead of
// routing and building it per connection. Exact by construction: the key
// holds every query field the rule set can look at (the source and the mesh
// peer only when a rule matches on them: CompiledRules.bySource), and the
// cache belongs to one CompiledRules: a new rule set (a reload) empties it.
// The caller caches only what is a function of the query alone.

import type { CompiledRules } from './engine.js'
import type { RouteQuery } from './types.js'

const DEFAULT_ENTRIES = 4096

// Every field of RouteQuery, and whether it says who connects: a field added
// to RouteQuery does not compile until it is listed here (and so in the key).
const FIELDS: { readonly [K in keyof Required<RouteQuery>]: 'dst' | 'src' } = {
  host: 'dst',
  dstIp: 'dst',
  dstPort: 'dst',
  listener: 'dst',
  proto: 'dst',
  network: 'dst',
  srcIp: 'src',
  srcIdentity: 'src',
  srcNode: 'src',
}
const DST_KEYS = (Object.keys(FIELDS) as Array<keyof RouteQuery>).filter((k) => FIELDS[k] === 'dst')
const ALL_KEYS = Object.keys(FIELDS) as Array<keyof RouteQuery>

export class RouteCache<T> {
  private rules: CompiledRules | null = null
  private keys: ReadonlyArray<keyof RouteQuery> = DST_KEYS
  private readonly map = new Map<string, T>()

  /** At most `maxEntries` answers; a full cache starts again empty (no per-hit bookkeeping). */
  constructor(private readonly maxEntries = DEFAULT_ENTRIES) {}

  get size(): number {
    return this.map.size
  }

  /** The key of q under `rules` (emptying the cache when `rules` is not the rule set it holds). */
  key(rules: CompiledRules, q: RouteQuery): string {
    if (rules !== this.rules) {
      this.map.clear()
      this.rules = rules
      this.keys = rules.bySource ? ALL_KEYS : DST_KEYS
    }
    // Each value as its length and its text: no separator a host name could
    // hold makes two queries one key.
    const keys = this.keys
    let k = ''
    for (let i = 0; i < keys.length; i++) {
      const v = q[keys[i]!]
      k += v === undefined ? '~' : typeof v === 'number' ? `${v},` : `${v.length}:${v}`
    }
    return k
  }

  /** What was set for `key` (from key(), with the same rule set). */
  get(key: string): T | undefined {
    return this.map.get(key)
  }

  set(key: string, value: T): void {
    if (this.map.size >= this.maxEntries) this.map.clear()
    this.map.set(key, value)
  }
}
