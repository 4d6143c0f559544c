// Address → name, learnt from the answers ugate's DNS listener gives: a
// later connection (or UDP flow) to one of these addresses carries no name,
// but the client got the address by asking for one, so the rules can route
// it by that name. Bounded (oldest first out) and each entry lives as long
// as the record that taught it. The name kept is the question's, not a
// CNAME target's: it is the name the client asked for and the rules name.

import { ipKey, isIpLiteral } from '../ip.js'
import { ExpiringMap } from './expiring.js'
import { type DnsMessage, RCODE, TYPE, rcodeOf } from './message.js'

const DEFAULT_NAME_ENTRIES = 16384

export class AddressNames {
  private readonly map: ExpiringMap<string>

  /** onLearn(key): an address (its ipKey) is about to route by a name it may not have routed by before. */
  constructor(
    maxEntries = DEFAULT_NAME_ENTRIES,
    private readonly onLearn?: (key: string) => void,
  ) {
    this.map = new ExpiringMap(maxEntries)
  }

  get size(): number {
    return this.map.size
  }

  /** Remember `address` → `name` for `ttl` seconds (a later answer replaces an earlier one). */
  add(address: string, name: string, ttl: number, nowMs: number): void {
    if (ttl <= 0 || name === '' || !isIpLiteral(address)) return
    const key = ipKey(address)
    this.onLearn?.(key)
    this.map.set(key, name.toLowerCase(), nowMs + ttl * 1000)
  }

  /** Every A/AAAA answer of a NOERROR reply, under the question's name; returns how many. */
  learn(reply: DnsMessage, nowMs: number): number {
    const q = reply.questions[0]
    if (q === undefined || rcodeOf(reply) !== RCODE.NOERROR) return 0
    let n = 0
    for (const r of reply.answers) {
      if ((r.type === TYPE.A || r.type === TYPE.AAAA) && r.data.kind === 'address') {
        this.add(r.data.address, q.name, r.ttl, nowMs)
        n++
      }
    }
    return n
  }

  /** The name an address was an answer for, while that answer lives. */
  lookup(address: string, nowMs: number): string | undefined {
    return this.map.get(ipKey(address), nowMs)
  }
}
