// A string-keyed map whose entries expire, bounded to `max` entries: when
// full, the oldest goes (least recently used when reads `touch`). The one
// store behind the DNS cache and the address → name map.

interface Slot<V> {
  value: V
  expiresAt: number
}

export class ExpiringMap<V> {
  private readonly map = new Map<string, Slot<V>>()

  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size
  }

  set(key: string, value: V, expiresAt: number): void {
    if (this.max <= 0) return
    this.map.delete(key)
    while (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!)
    this.map.set(key, { value, expiresAt })
  }

  /** The live value of `key` (an expired one is dropped); `touch` makes it the most recent. */
  get(key: string, nowMs: number, touch = false): V | undefined {
    const slot = this.map.get(key)
    if (slot === undefined) return undefined
    if (nowMs >= slot.expiresAt) {
      this.map.delete(key)
      return undefined
    }
    if (touch) {
      this.map.delete(key)
      this.map.set(key, slot)
    }
    return slot.value
  }
}
