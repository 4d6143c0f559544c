// Static names of the DNS listener ("hosts" in the config, like
// /etc/hosts): a name listed here gets its listed addresses for A and AAAA
// (and an empty NOERROR for the family it has none of) without asking an
// upstream; other types of it go upstream as usual.

import { ipKey, isIPv4, isIPv6 } from '../ip.js'
import { CLASS_IN, type DnsQuestion, type DnsRecord, TYPE } from './message.js'

/** TTL (s) of static and sinkhole answers: short, so an edit shows soon after a reload. */
export const STATIC_TTL = 60

export class StaticHosts {
  private readonly map = new Map<string, string[]>()

  /** `hosts`: name → addresses (already validated by the config). */
  constructor(hosts: Readonly<Record<string, readonly string[]>> = {}) {
    for (const [name, addrs] of Object.entries(hosts)) {
      const key = name.toLowerCase().replace(/\.$/, '')
      this.map.set(key, [...(this.map.get(key) ?? []), ...addrs.map(ipKey)])
    }
  }

  get size(): number {
    return this.map.size
  }

  /** The A/AAAA records for `q` when its name is static (maybe none: NODATA), else undefined. */
  answer(q: DnsQuestion): DnsRecord[] | undefined {
    if (q.class !== CLASS_IN || (q.type !== TYPE.A && q.type !== TYPE.AAAA)) return undefined
    const addrs = this.map.get(q.name.toLowerCase())
    if (addrs === undefined) return undefined
    const fits = q.type === TYPE.A ? isIPv4 : isIPv6
    return addrs.filter((a) => fits(a)).map((address) => addressRecord(q.name, q.type, address, STATIC_TTL))
  }
}

export function addressRecord(name: string, type: number, address: string, ttl: number): DnsRecord {
  return { name, type, class: CLASS_IN, ttl, data: { kind: 'address', address } }
}
