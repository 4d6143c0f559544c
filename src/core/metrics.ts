// Prometheus text exposition format (version 0.0.4): metric families with
// HELP and TYPE lines, label values escaped, one sample per line.

export type MetricType = 'counter' | 'gauge'

export interface Sample {
  labels?: Record<string, string>
  value: number
}

export interface Family {
  /** Counters end in _total, as the format's conventions ask. */
  name: string
  type: MetricType
  help: string
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

/** The exposition text of `families`; a bad metric or label name is a caller bug (RangeError). */
export function exposition(families: readonly Family[]): string {
  let out = ''
  for (const f of families) {
    if (!NAME.test(f.name)) throw new RangeError(`metrics: bad metric name ${f.name}`)
    out += `# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${f.name} ${f.type}\n`
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {})
      for (const [k] of labels)
        if (!LABEL.test(k) || k.startsWith('__')) throw new RangeError(`metrics: bad label ${k}`)
      const l = labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`
      out += `${f.name}${l} ${formatValue(s.value)}\n`
    }
  }
  return out
}

/** Samples of a map keyed by label values joined with "\0" (see labelKey). */
export function samplesOf(map: ReadonlyMap<string, number>, names: readonly string[]): Sample[] {
  return [...map].map(([key, value]) => {
    const values = key.split('\0')
    const labels: Record<string, string> = {}
    names.forEach((n, i) => (labels[n] = values[i] ?? ''))
    return { labels, value }
  })
}

/** The key of one label combination in a counter map. */
export function labelKey(...values: string[]): string {
  return values.join('\0')
}

/** Add n to the counter of `key`. */
function count(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n)
}

/** What every closed connection adds to /metrics; one per gateway. */
export class ClosedCounters {
  /** listener, action, result → connections. */
  readonly connections = new Map<string, number>()
  /** listener, reason → connections closed before their relay began. */
  readonly handshakeFailures = new Map<string, number>()
  /** listener, direction → bytes of closed connections. */
  readonly bytes = new Map<string, number>()
  /** mode (splice, copy) → relays that used it. */
  readonly relayModes = new Map<string, number>()

  /**
   * A connection is over: `fields.action` is the routing action (absent: not
   * routed, e.g. a forward listener or a failed handshake), `reason` its
   * access-line reason.
   */
  closed(
    listener: string,
    fields: { action?: unknown },
    reason: string,
    up: number,
    down: number,
    relayed: boolean,
    splice: boolean,
  ): void {
    const action = typeof fields.action === 'string' ? fields.action : 'none'
    count(this.connections, labelKey(listener, action, reason))
    if (!relayed && reason !== 'rejected') count(this.handshakeFailures, labelKey(listener, reason))
    if (relayed) count(this.relayModes, splice ? 'splice' : 'copy')
    count(this.bytes, labelKey(listener, 'up'), up)
    count(this.bytes, labelKey(listener, 'down'), down)
  }
}
