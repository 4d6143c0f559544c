// Prometheus text exposition format (version 0.0.4): metric families with
// HELP and TYPE lines, label values escaped, one sample per line; the
// counters /metrics keeps beside the runtime's own (closed connections,
// latency histograms, mesh tunnels).

export type MetricType = 'counter' | 'gauge' | 'histogram'

export interface Sample {
  labels?: Record<string, string>
  value: number
  /** A histogram's series after the family's name: _bucket (with `le`), _sum, _count. */
  suffix?: '_bucket' | '_sum' | '_count'
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
      if ((f.type === 'histogram') !== (s.suffix !== undefined))
        throw new RangeError(`metrics: ${f.name}: a histogram's samples, and only they, have a suffix`)
      const l = labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`
      out += `${f.name}${s.suffix ?? ''}${l} ${formatValue(s.value)}\n`
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
    this.closedMany(listener, action, reason, 1, relayed, splice, up, down)
  }

  /** `n` connections alike closed (a native batch's group), with their bytes summed. */
  closedMany(
    listener: string,
    action: string,
    reason: string,
    n: number,
    relayed: boolean,
    splice: boolean,
    up: number,
    down: number,
  ): void {
    count(this.connections, labelKey(listener, action, reason), n)
    if (!relayed && reason !== 'rejected') count(this.handshakeFailures, labelKey(listener, reason), n)
    if (relayed) count(this.relayModes, splice ? 'splice' : 'copy', n)
    count(this.bytes, labelKey(listener, 'up'), up)
    count(this.bytes, labelKey(listener, 'down'), down)
  }
}

// ---- histograms -------------------------------------------------------------------

/** Bucket bounds (seconds) of the DNS answer histogram: a cache hit is sub-millisecond, a resolver tens of ms. */
export const DNS_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
]

/**
 * Bucket bounds (seconds) of the dial-time host name lookups: the DNS ones,
 * then the resolver's retry range (musl: 5 s a try, 2 tries by default).
 */
export const RESOLVE_BUCKETS: readonly number[] = [...DNS_BUCKETS, 10, 30]

interface Histogram {
  /** Observations per bucket (not cumulative); the last is above every bound (+Inf). */
  counts: number[]
  sum: number
}

/** Histograms of one family, one per label combination (keyed by labelKey). */
export class Histograms {
  private readonly map = new Map<string, Histogram>()

  constructor(private readonly bounds: readonly number[]) {}

  observe(key: string, value: number): void {
    let h = this.map.get(key)
    if (h === undefined) {
      h = { counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0 }
      this.map.set(key, h)
    }
    let i = 0
    while (i < this.bounds.length && value > this.bounds[i]!) i++
    h.counts[i]!++
    h.sum += value
  }

  /** The _bucket (cumulative, `le` last), _sum and _count samples, labels named by `names`. */
  samples(names: readonly string[]): Sample[] {
    const out: Sample[] = []
    for (const [key, h] of this.map) {
      const labels: Record<string, string> = {}
      const values = key.split('\0')
      names.forEach((n, i) => (labels[n] = values[i] ?? ''))
      let cumulative = 0
      h.counts.forEach((n, i) => {
        cumulative += n
        const le = i < this.bounds.length ? String(this.bounds[i]) : '+Inf'
        out.push({ labels: { ...labels, le }, value: cumulative, suffix: '_bucket' })
      })
      out.push({ labels, value: h.sum, suffix: '_sum' }, { labels, value: cumulative, suffix: '_count' })
    }
    return out
  }
}

// ---- mesh tunnels -------------------------------------------------------------------

/** A live HBONE tunnel as native.hboneStats() publishes it (the fields counted here). */
export interface TunnelStat {
  id: number
  role: 'server' | 'client'
  /** Client: the pool key, the upstream's name. */
  pool?: string
  streams: number
  streamsTotal: number
  bytesOut: number
  bytesIn: number
  /** Last PING round trip; -1 before the first (a server never pings). */
  rttMs: number
}

/** An HBONE event (native.HboneEvent), the fields counted here. */
export interface TunnelEvent {
  /** 'reverse' (a reverse tunnel up, reverse.ts) counts nothing here. */
  kind: 'request' | 'opened' | 'done' | 'closed' | 'reverse'
  tunnel: number
  tag: number
  status: number
  reason: string
  toTunnel: number
  toSocket: number
}

interface Counted {
  role: string
  name: string
  streamsTotal: number
  bytesOut: number
  bytesIn: number
}

/**
 * The mesh families of /metrics. A tunnel's counters live in C until it
 * closes; its `closed` event brings the final ones. A counter is the closed
 * tunnels' sum plus every tunnel not yet closed at its last seen values, so
 * it never goes back while a closed tunnel has left the published stats but
 * its event is still on the way. Labels: role (client: an hbone upstream's
 * pooled connections; server: accepted by an hbone listener) and name (the
 * upstream or the listener).
 */
export class MeshCounters {
  /** role, name → tunnels closed; streams they carried. */
  private readonly closedTunnels = new Map<string, number>()
  private readonly closedStreams = new Map<string, number>()
  /** role, name, direction → bytes of closed tunnels. */
  private readonly closedBytes = new Map<string, number>()
  /** role, name, reason → streams that never carried bytes. */
  private readonly failures = new Map<string, number>()
  /** Client streams being opened: hboneOpen's tag → the upstream, until their `done`. */
  private readonly tags = new Map<number, string>()
  /** Tunnels not yet closed, by id: labels and the counters last seen. */
  private readonly open = new Map<number, Counted>()

  /** A client stream was asked of upstream `name` (openHbone). */
  opening(tag: number, name: string): void {
    this.tags.set(tag, name)
  }

  /** Every HBONE event, before hbone.ts handles it; listenerOf names a server tunnel's listener. */
  observe(batch: readonly TunnelEvent[], listenerOf: (tunnel: number) => string | undefined): void {
    for (const ev of batch) {
      switch (ev.kind) {
        case 'opened': {
          const name = this.tags.get(ev.tag)
          if (name === undefined) break
          if (ev.tunnel !== 0 && !this.open.has(ev.tunnel)) this.open.set(ev.tunnel, counted('client', name))
          if (ev.status !== 200)
            count(this.failures, labelKey('client', name, ev.status > 0 ? `refused:${ev.status}` : ev.reason))
          break
        }
        case 'done':
          if (ev.tag !== 0) this.tags.delete(ev.tag)
          else if (ev.reason === 'refused')
            count(this.failures, labelKey('server', listenerOf(ev.tunnel) ?? '', 'refused'))
          break
        case 'closed': {
          const c = this.open.get(ev.tunnel) ?? counted('server', listenerOf(ev.tunnel) ?? '')
          this.open.delete(ev.tunnel)
          count(this.closedTunnels, labelKey(c.role, c.name))
          count(this.closedStreams, labelKey(c.role, c.name), ev.status)
          count(this.closedBytes, labelKey(c.role, c.name, 'sent'), ev.toTunnel)
          count(this.closedBytes, labelKey(c.role, c.name, 'received'), ev.toSocket)
          break
        }
      }
    }
  }

  /** The mesh families from the live tunnels now (native.hboneStats()). */
  families(live: readonly TunnelStat[], listenerOf: (tunnel: number) => string | undefined): Family[] {
    const tunnels = new Map<string, number>()
    const streams = new Map<string, number>()
    const rtt: Sample[] = []
    for (const t of live) {
      const name = t.role === 'client' ? (t.pool ?? '') : (listenerOf(t.id) ?? '')
      const c = this.open.get(t.id) ?? counted(t.role, name)
      c.streamsTotal = Math.max(c.streamsTotal, t.streamsTotal)
      c.bytesOut = Math.max(c.bytesOut, t.bytesOut)
      c.bytesIn = Math.max(c.bytesIn, t.bytesIn)
      this.open.set(t.id, c)
      count(tunnels, labelKey(t.role, name))
      count(streams, labelKey(t.role, name), t.streams)
      if (t.rttMs >= 0) rtt.push({ labels: { role: t.role, name, tunnel: String(t.id) }, value: t.rttMs / 1000 })
    }
    const total = new Map(this.closedTunnels)
    const streamsTotal = new Map(this.closedStreams)
    const bytes = new Map(this.closedBytes)
    for (const c of this.open.values()) {
      count(total, labelKey(c.role, c.name))
      count(streamsTotal, labelKey(c.role, c.name), c.streamsTotal)
      count(bytes, labelKey(c.role, c.name, 'sent'), c.bytesOut)
      count(bytes, labelKey(c.role, c.name, 'received'), c.bytesIn)
    }
    const rn = ['role', 'name']
    return [
      {
        name: 'ugate_mesh_tunnels_active',
        type: 'gauge',
        help: 'HBONE tunnels (mesh connections) open now, by role (client: an hbone upstream; server: an hbone listener) and name.',
        samples: samplesOf(tunnels, rn),
      },
      {
        name: 'ugate_mesh_tunnels_total',
        type: 'counter',
        help: 'HBONE tunnels opened since start, by role and name.',
        samples: samplesOf(total, rn),
      },
      {
        name: 'ugate_mesh_streams_active',
        type: 'gauge',
        help: 'CONNECT streams open now on HBONE tunnels, by role and name.',
        samples: samplesOf(streams, rn),
      },
      {
        name: 'ugate_mesh_streams_total',
        type: 'counter',
        help: 'CONNECT streams started on HBONE tunnels (any outcome), by role and name.',
        samples: samplesOf(streamsTotal, rn),
      },
      {
        name: 'ugate_mesh_stream_failures_total',
        type: 'counter',
        help: 'CONNECT streams that never opened, by role, name and reason (refused:STATUS by the peer, refused by this listener, or why no answer came).',
        samples: samplesOf(this.failures, [...rn, 'reason']),
      },
      {
        name: 'ugate_mesh_bytes_total',
        type: 'counter',
        help: 'Stream payload bytes through HBONE tunnels, by role, name and direction (sent: into the tunnel).',
        samples: samplesOf(bytes, [...rn, 'direction']),
      },
      {
        name: 'ugate_mesh_rtt_seconds',
        type: 'gauge',
        help: 'Last HTTP/2 PING round trip of each client tunnel, by role, name and tunnel id.',
        samples: rtt,
      },
    ]
  }
}

function counted(role: string, name: string): Counted {
  return { role, name, streamsTotal: 0, bytesOut: 0, bytesIn: 0 }
}
