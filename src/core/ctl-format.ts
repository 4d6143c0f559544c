// What `ugate ctl` prints for people: aligned tables of the admin socket's
// answers and one traffic line per second. (--json prints the answers as
// they are.) Unknown or missing fields print as "-": a newer daemon's extra
// fields never break an older ctl.

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  return all
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

/** 1536 → "1.5 KiB"; under 1 KiB in bytes. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`
}

type Obj = Record<string, unknown>

const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '-')
const num = (v: unknown): number => (typeof v === 'number' ? v : 0)
const list = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : [])
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {})

export function formatStatus(s: Obj): string {
  const c = obj(s.connections)
  const b = obj(s.bytes)
  const r = obj(s.relays)
  const cap = obj(s.capture)
  const lines = [
    `ugate ${str(s.version)}, pid ${str(s.pid)}, up ${str(s.uptime)} s`,
    `connections: ${num(c.live)} live, ${num(c.total)} total; bytes up ${humanBytes(num(b.up))}, down ${humanBytes(num(b.down))}`,
    `relays: ${num(r.active)} active, ${num(r.total)} total; splice calls ${num(r.spliceCalls)}, copy calls ${num(r.copyCalls)}`,
    `capture: ${cap.enabled === true ? `on (listener ${str(cap.listener)})` : 'off'}`,
  ]
  const mesh = obj(s.mesh)
  if (typeof mesh.nodeId === 'string') lines.push(`mesh: ${str(mesh.spiffeId)}, node id ${mesh.nodeId}`)
  // UDP and DNS only when the daemon reports them (an older one does not).
  const u = obj(s.udp)
  if (typeof u.flowsTotal === 'number') {
    const drops = Object.entries(obj(u.drops)).filter(([, n]) => num(n) > 0)
    lines.push(
      `udp: ${num(u.flowsLive)} flows live, ${num(u.flowsTotal)} total, ${num(u.flowsEvicted)} evicted (flow cap), ${num(u.flowsExpired)} idle; ` +
        `datagrams up ${num(u.packetsUp)} (${humanBytes(num(u.bytesUp))}), down ${num(u.packetsDown)} (${humanBytes(num(u.bytesDown))}); ` +
        `drops ${drops.length === 0 ? '0' : drops.map(([k, n]) => `${k} ${num(n)}`).join(', ')}`,
    )
  }
  const dns = list(obj(s.dns).listeners)
  lines.push(
    '',
    table(
      ['LISTENER', 'TYPE', 'ADDRESS'],
      list(s.listeners).map((l) => [str(l.name), str(l.type), str(l.addr)]),
    ),
  )
  if (dns.length > 0) {
    const cols = ['queries', 'cached', 'local', 'forwarded', 'failed', 'malformed', 'dropped']
    lines.push(
      '',
      table(
        ['DNS', ...cols.map((c) => c.toUpperCase())],
        dns.map((d) => [str(d.name), ...cols.map((c) => str(d[c]))]),
      ),
    )
  }
  const tunnels = list(s.hbone)
  if (tunnels.length > 0)
    lines.push(
      '',
      table(
        ['TUNNEL', 'ROLE', 'PEER', 'PEER ID', 'STATE', 'STREAMS', 'TOTAL', 'OUT', 'IN', 'RTT'],
        tunnels.map((x) => [
          str(x.id),
          x.reverse === true ? `${str(x.role)} reverse` : str(x.role),
          str(x.peer),
          str(x.peerId) === '' ? '-' : str(x.peerId),
          str(x.state),
          str(x.streams),
          str(x.streamsTotal),
          humanBytes(num(x.bytesOut)),
          humanBytes(num(x.bytesIn)),
          typeof x.rttMs === 'number' ? `${x.rttMs} ms` : '-',
        ]),
      ),
    )
  // Reverse tunnels (docs/mesh.md): gates registered here, and this gate's own links.
  const rev = obj(s.reverse)
  const registered = list(rev.registered)
  if (registered.length > 0)
    lines.push(
      '',
      table(
        ['REVERSE', 'LISTENER', 'IDENTITY', 'NODE', 'PEER', 'AGE'],
        registered.map((x) => [
          str(x.tunnel),
          str(x.listener),
          str(x.identity),
          str(x.node),
          str(x.peer),
          `${(num(x.ageMs) / 1000).toFixed(0)}s`,
        ]),
      ),
    )
  const links = list(rev.links)
  if (links.length > 0)
    lines.push(
      '',
      table(
        ['REVERSE LINK', 'RELAY', 'STATE', 'TUNNEL', 'RELAY ID', 'FAILURES', 'UP'],
        links.map((x) => [
          str(x.name),
          str(x.relay),
          str(x.state),
          str(x.tunnel),
          str(x.peerId) === '' ? '-' : str(x.peerId),
          str(x.failures),
          x.state === 'up' ? `${(num(x.upMs) / 1000).toFixed(0)}s` : '-',
        ]),
      ),
    )
  return lines.join('\n') + '\n'
}

export function formatConnections(a: Obj): string {
  const conns = list(a.connections)
  const flows = list(a.udpFlows)
  if (conns.length === 0 && flows.length === 0) return 'no live connections\n'
  const rule = (c: Obj) =>
    typeof c.rule === 'string' ? `${c.rule}${typeof c.action === 'string' ? `→${c.action}` : ''}` : '-'
  const rows = conns.map((c) => [
    str(c.id),
    str(c.listener),
    str(c.src),
    str(c.dst),
    typeof c.host === 'string' ? c.host : '-',
    rule(c),
    str(c.stage),
    `${(num(c.ms) / 1000).toFixed(1)}s`,
    humanBytes(num(c.up)),
    humanBytes(num(c.down)),
  ])
  // A UDP flow's id is "udp-N" (what `ugate ctl close` takes); its stage is its network.
  for (const f of flows)
    rows.push([
      `udp-${str(f.id)}`,
      str(f.listener),
      str(f.src),
      str(f.dst),
      typeof f.host === 'string' ? f.host : '-',
      rule(f),
      'udp',
      `${(num(f.ms) / 1000).toFixed(1)}s`,
      humanBytes(num(f.up)),
      humanBytes(num(f.down)),
    ])
  return table(['ID', 'LISTENER', 'SOURCE', 'DESTINATION', 'HOST', 'RULE', 'STAGE', 'AGE', 'UP', 'DOWN'], rows) + '\n'
}

export function formatRules(a: Obj): string {
  const rows = list(a.rules).map((r) => [
    str(r.index),
    str(r.type),
    str(r.payload) === '' ? '*' : str(r.payload),
    str(r.proxy),
    str(obj(r.extra).hitCount),
  ])
  return table(['#', 'TYPE', 'PAYLOAD', 'PROXY', 'HITS'], rows) + '\n'
}

/** One second of traffic from two byte totals a second apart. */
export function trafficSample(prev: { up: number; down: number }, now: { up: number; down: number }) {
  return { up: now.up - prev.up, down: now.down - prev.down, upTotal: now.up, downTotal: now.down }
}

export function formatTraffic(s: ReturnType<typeof trafficSample>): string {
  return `up ${humanBytes(s.up)}/s  down ${humanBytes(s.down)}/s  (total up ${humanBytes(s.upTotal)}, down ${humanBytes(s.downTotal)})\n`
}
