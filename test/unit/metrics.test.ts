// Histograms and the mesh counters of /metrics (src/core/metrics.ts),
// without the runtime: bucket arithmetic and its exposition, and mesh
// counters that never go back while tunnels open, publish and close in any
// order the engine's reports and the published stats allow.

import t from 'tap'
import {
  Histograms,
  MeshCounters,
  type Family,
  type TunnelEvent,
  type TunnelStat,
  exposition,
  labelKey,
} from '../../src/core/metrics.js'

t.test('histogram: cumulative buckets, le last, _sum and _count; exposition', async (t) => {
  const h = new Histograms([0.001, 0.01, 0.1])
  for (const v of [0.0004, 0.001, 0.002, 0.05, 3]) h.observe(labelKey('dns', 'cache'), v)
  h.observe(labelKey('dns', 'upstream'), 0.02)
  const text = exposition([
    { name: 'x_seconds', type: 'histogram', help: 'x', samples: h.samples(['listener', 'source']) },
  ])
  t.equal(
    text,
    [
      '# HELP x_seconds x',
      '# TYPE x_seconds histogram',
      'x_seconds_bucket{listener="dns",source="cache",le="0.001"} 2',
      'x_seconds_bucket{listener="dns",source="cache",le="0.01"} 3',
      'x_seconds_bucket{listener="dns",source="cache",le="0.1"} 4',
      'x_seconds_bucket{listener="dns",source="cache",le="+Inf"} 5',
      'x_seconds_sum{listener="dns",source="cache"} 3.0534',
      'x_seconds_count{listener="dns",source="cache"} 5',
      'x_seconds_bucket{listener="dns",source="upstream",le="0.001"} 0',
      'x_seconds_bucket{listener="dns",source="upstream",le="0.01"} 0',
      'x_seconds_bucket{listener="dns",source="upstream",le="0.1"} 1',
      'x_seconds_bucket{listener="dns",source="upstream",le="+Inf"} 1',
      'x_seconds_sum{listener="dns",source="upstream"} 0.02',
      'x_seconds_count{listener="dns",source="upstream"} 1',
      '',
    ].join('\n'),
    'a value on a bound counts in that bucket (le: less or equal)',
  )
  t.throws(
    () => exposition([{ name: 'g', type: 'gauge', help: '', samples: [{ value: 1, suffix: '_sum' }] }]),
    RangeError,
    'a suffix outside a histogram',
  )
  t.throws(
    () => exposition([{ name: 'h', type: 'histogram', help: '', samples: [{ value: 1 }] }]),
    RangeError,
    'a histogram sample without one',
  )
})

/** name{labels} → value of the families' samples. */
function values(families: Family[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const f of families)
    for (const s of f.samples)
      out.set(`${f.name}{${Object.entries(s.labels ?? {}).map(([k, v]) => `${k}=${v}`)}}`, s.value)
  return out
}

const ev = (e: Partial<TunnelEvent> & Pick<TunnelEvent, 'kind'>): TunnelEvent => ({
  tunnel: 0,
  tag: 0,
  status: 0,
  reason: '',
  toTunnel: 0,
  toSocket: 0,
  ...e,
})

const stat = (s: Partial<TunnelStat> & Pick<TunnelStat, 'id' | 'role'>): TunnelStat => ({
  streams: 0,
  streamsTotal: 0,
  bytesOut: 0,
  bytesIn: 0,
  rttMs: -1,
  ...s,
})

t.test('mesh counters: labels, failures, RTT, and no step back when a tunnel closes', async (t) => {
  const m = new MeshCounters()
  const listeners = new Map([[7, 'mesh']])
  const listenerOf = (id: number) => listeners.get(id)
  // Client: two streams asked of upstream "peer" on tunnel 3; one refused by the peer.
  m.opening(1, 'peer')
  m.opening(2, 'peer')
  m.observe(
    [
      ev({ kind: 'opened', tunnel: 3, tag: 1, status: 200 }),
      ev({ kind: 'opened', tunnel: 3, tag: 2, status: 503, reason: 'refused' }),
      ev({ kind: 'done', tunnel: 3, tag: 2, reason: 'refused' }),
      // Server tunnel 7: one stream refused by this listener.
      ev({ kind: 'request', tunnel: 7, status: 0 }),
      ev({ kind: 'done', tunnel: 7, reason: 'refused' }),
    ],
    listenerOf,
  )
  const live = [
    stat({ id: 3, role: 'client', pool: 'peer', streams: 1, streamsTotal: 2, bytesOut: 100, bytesIn: 50, rttMs: 1.5 }),
    stat({ id: 7, role: 'server', streams: 0, streamsTotal: 1 }),
  ]
  const v1 = values(m.families(live, listenerOf))
  t.equal(v1.get('ugate_mesh_tunnels_active{role=client,name=peer}'), 1)
  t.equal(v1.get('ugate_mesh_tunnels_active{role=server,name=mesh}'), 1)
  t.equal(v1.get('ugate_mesh_streams_active{role=client,name=peer}'), 1)
  t.equal(v1.get('ugate_mesh_streams_total{role=client,name=peer}'), 2)
  t.equal(v1.get('ugate_mesh_bytes_total{role=client,name=peer,direction=sent}'), 100)
  t.equal(v1.get('ugate_mesh_bytes_total{role=client,name=peer,direction=received}'), 50)
  t.equal(v1.get('ugate_mesh_stream_failures_total{role=client,name=peer,reason=refused:503}'), 1)
  t.equal(v1.get('ugate_mesh_stream_failures_total{role=server,name=mesh,reason=refused}'), 1)
  t.equal(v1.get('ugate_mesh_rtt_seconds{role=client,name=peer,tunnel=3}'), 0.0015)
  t.equal(v1.get('ugate_mesh_rtt_seconds{role=server,name=mesh,tunnel=7}'), undefined, 'a server has no RTT')

  // Tunnel 3 closed: gone from the published stats before its event is handled.
  const v2 = values(m.families([live[1]!], listenerOf))
  t.equal(v2.get('ugate_mesh_tunnels_active{role=client,name=peer}'), undefined, 'no live client tunnel')
  t.equal(v2.get('ugate_mesh_tunnels_total{role=client,name=peer}'), 1, 'still counted')
  t.equal(v2.get('ugate_mesh_bytes_total{role=client,name=peer,direction=sent}'), 100, 'its bytes as last seen')
  m.observe([ev({ kind: 'done', tunnel: 3, tag: 1, reason: 'eof', toTunnel: 120, toSocket: 60 })], listenerOf)
  m.observe([ev({ kind: 'closed', tunnel: 3, status: 2, toTunnel: 120, toSocket: 60 })], listenerOf)
  const v3 = values(m.families([live[1]!], listenerOf))
  t.equal(v3.get('ugate_mesh_tunnels_total{role=client,name=peer}'), 1, 'counted once')
  t.equal(v3.get('ugate_mesh_streams_total{role=client,name=peer}'), 2)
  t.equal(v3.get('ugate_mesh_bytes_total{role=client,name=peer,direction=sent}'), 120, 'its final bytes')

  // A server tunnel that opens and closes between two scrapes: labelled by its listener.
  listeners.set(9, 'mesh')
  m.observe([ev({ kind: 'closed', tunnel: 9, status: 4, toTunnel: 10, toSocket: 20 })], listenerOf)
  const v4 = values(m.families([live[1]!], listenerOf))
  t.equal(v4.get('ugate_mesh_tunnels_total{role=server,name=mesh}'), 2)
  t.equal(v4.get('ugate_mesh_streams_total{role=server,name=mesh}'), 5)
  t.equal(v4.get('ugate_mesh_bytes_total{role=server,name=mesh,direction=received}'), 20)

  // A client stream whose tunnel could not even be made: a failure without a tunnel.
  m.opening(4, 'peer')
  m.observe(
    [
      ev({ kind: 'opened', tunnel: 0, tag: 4, reason: 'tunnel-error' }),
      ev({ kind: 'done', tunnel: 0, tag: 4, reason: 'tunnel-error' }),
    ],
    listenerOf,
  )
  const v5 = values(m.families([], listenerOf))
  t.equal(v5.get('ugate_mesh_stream_failures_total{role=client,name=peer,reason=tunnel-error}'), 1)
  t.equal(v5.get('ugate_mesh_tunnels_total{role=client,name=peer}'), 1, 'no tunnel counted for it')
  t.equal(v5.get('ugate_mesh_tunnels_total{role=server,name=mesh}'), 2, 'tunnel 7 still counted (no event yet)')
})
