// Mesh peers in the admin API (docs/api.md), over a real tunnel between two
// gateways (A's hbone upstream "b" → B's hbone listener "mesh"): /proxies
// lists the peer (type Hbone, its live tunnel), a delay test runs through
// it, and /metrics on both ends counts tunnels, streams, failures, bytes and
// the PING round trip with the values of known traffic, promtool-clean; a
// real Prometheus server scraping both gates answers PromQL over those
// families with the same values. No answer, metric or log line carries key
// material.

import { readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import type { Test } from 'tap'
import { request } from 'undici'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { requireCommand } from '../lib/http.js'
import { mesh } from '../lib/mesh.js'
import { checkMetrics, sample } from '../lib/metrics.js'
import { type PromSeries, startPrometheus } from '../lib/prometheus.js'
import { socks5Connect } from '../lib/proxy.js'
import { echoServer, pollUntil, prngBytes, refusedPort, sha256 } from '../lib/servers.js'
import { checkCleanExit, finish, runUgate, settleFds } from '../lib/ugate.js'

const ids = mesh(t)
const SECRET = 'mesh-admin-s3cret'

/** Every answer body of this test, for the key-material check. */
const seen: string[] = []

async function get(port: number, path: string): Promise<{ status: number; text: string; body: any }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, {
    headers: { Authorization: `Bearer ${SECRET}` },
    reset: true,
  })
  const text = await res.body.text()
  seen.push(text)
  let body: unknown = null
  try {
    body = JSON.parse(text)
  } catch {
    // metrics
  }
  return { status: res.statusCode, text, body }
}

/** Scrape until `ok` holds (bounded): the engine publishes tunnel counters once a second, PINGs every 10 s. */
async function scrapeUntil(t: Test, port: number, ok: (text: string) => boolean, what: string): Promise<string> {
  const m = await pollUntil(
    () => get(port, '/metrics'),
    (m) => ok(m.text),
    20_000,
    250,
  )
  t.ok(ok(m.text), what)
  return m.text
}

t.test('an hbone upstream in /proxies, a delay test through it, mesh metrics on both ends', async (t) => {
  requireCommand('promtool', 'prometheus')
  const echo = await echoServer(t)
  const origin = http.createServer((req, res) => res.writeHead(req.method === 'HEAD' ? 204 : 404).end())
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
  t.teardown(() => origin.close())
  const originPort = (origin.address() as AddressInfo).port
  const denied = await refusedPort()
  const nobody = await refusedPort()

  const b = await startConfig(
    t,
    proxyConfig([listener('mesh', 'hbone')], {
      admin: { listen: '127.0.0.1:0', secret: SECRET },
      rules: [{ name: 'deny', dstPort: [String(denied)], action: 'reject' }],
      ...ids.config('b'),
    }),
  )
  const a = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      admin: { listen: '127.0.0.1:0', secret: SECRET, socket: ids.socket('a') },
      upstreams: [
        { name: 'b', type: 'hbone', server: `127.0.0.1:${b.port('mesh')}`, identity: ids.spiffe('b') },
        { name: 'ghost', type: 'hbone', server: `127.0.0.1:${nobody}` },
      ],
      rules: [
        { name: 'ghost', domain: ['ghost.test'], action: 'upstream:ghost' },
        { name: 'mesh', action: 'upstream:b' },
      ],
      ...ids.config('a'),
    }),
  )
  const adminA = a.port('admin-http')
  const adminB = b.port('admin-http')
  // A Prometheus server scrapes both ends all along: it is asked what the test did below.
  const prom = await startPrometheus(t, [adminA, adminB], SECRET)
  const gates: Record<string, string> = { [prom.instance(adminA)]: 'A', [prom.instance(adminB)]: 'B' }
  const gate = (r: PromSeries) => gates[r.metric.instance ?? ''] ?? 'both'
  /** `expr`'s answer as "gate labels…" → value, asked until it is `want`. */
  const promSame = async (expr: string, labels: string[], want: Record<string, number>, what: string) => {
    const key = (r: PromSeries) => [gate(r), ...labels.map((l) => r.metric[l])].join(' ')
    const view = (rs: PromSeries[]) => Object.fromEntries(rs.map((r) => [key(r), r.value]))
    t.same(view(await prom.query(expr, (rs) => isDeepStrictEqual(view(rs), want))), want, `Prometheus: ${what}`)
  }

  // Three streams of known size through the tunnel, echoed exactly.
  const size = 200_000
  const runs = [1, 2, 3].map(async (i) => {
    const payload = prngBytes(40 + i, size)
    const s = await socks5Connect(a.port('socks'), { host: '127.0.0.1', port: echo.port })
    s.reader.sock.end(payload)
    const back = await s.reader.rest()
    return back.ended && sha256(back.data) === sha256(payload)
  })
  t.same(await Promise.all(runs), [true, true, true], '3 streams echoed through the tunnel')
  // One refused by B's rule (401), one through a peer nobody listens for.
  const refused = await socks5Connect(a.port('socks'), { host: '127.0.0.1', port: denied })
  t.not(refused.reply?.[1], 0, "B's reject rule: the CONNECT fails")
  refused.reader.sock.destroy()
  const ghost = await socks5Connect(a.port('socks'), { host: 'ghost.test', port: 80 })
  t.not(ghost.reply?.[1], 0, 'no peer at ghost: the CONNECT fails')
  ghost.reader.sock.destroy()
  const lines = await waitConnsOf(a, 'socks', 5)
  t.ok(
    lines.some((l) => l.fields.reason === 'upstream-refused:401'),
    'the refusal logged',
  )
  await waitConnsOf(b, 'mesh', 4)

  // A: the client side, counted per upstream.
  const sent = 3 * size
  const ma = await scrapeUntil(
    t,
    adminA,
    (m) =>
      sample(m, 'ugate_mesh_bytes_total{role="client",name="b",direction="received"}') === sent &&
      sample(m, 'ugate_mesh_streams_active{role="client",name="b"}') === 0,
    'A: the tunnel counters published',
  )
  t.equal(sample(ma, 'ugate_mesh_tunnels_active{role="client",name="b"}'), 1, 'one pooled tunnel to b')
  t.equal(sample(ma, 'ugate_mesh_tunnels_total{role="client",name="b"}'), 1)
  t.equal(sample(ma, 'ugate_mesh_streams_total{role="client",name="b"}'), 4, '3 echoed + 1 refused')
  t.equal(sample(ma, 'ugate_mesh_bytes_total{role="client",name="b",direction="sent"}'), sent)
  t.equal(sample(ma, 'ugate_mesh_stream_failures_total{role="client",name="b",reason="refused:401"}'), 1)
  const ghostFailures = ma
    .split('\n')
    .filter((l) => l.startsWith('ugate_mesh_stream_failures_total{role="client",name="ghost",'))
  t.equal(ghostFailures.length, 1, `one failure through ghost (${ghostFailures[0]})`)
  t.match(ghostFailures[0], / 1$/)
  t.equal(sample(ma, 'ugate_mesh_tunnels_active{role="client",name="ghost"}'), undefined, 'no tunnel to ghost lives')
  checkMetrics(t, ma, 'A')

  // B: the server side, counted per listener.
  const mb = await scrapeUntil(
    t,
    adminB,
    (m) => sample(m, 'ugate_mesh_bytes_total{role="server",name="mesh",direction="sent"}') === sent,
    'B: the tunnel counters published',
  )
  t.equal(sample(mb, 'ugate_mesh_tunnels_active{role="server",name="mesh"}'), 1)
  t.equal(sample(mb, 'ugate_mesh_streams_total{role="server",name="mesh"}'), 4)
  t.equal(sample(mb, 'ugate_mesh_bytes_total{role="server",name="mesh",direction="received"}'), sent)
  t.equal(sample(mb, 'ugate_mesh_stream_failures_total{role="server",name="mesh",reason="refused"}'), 1)
  t.equal(sample(mb, 'ugate_mesh_rtt_seconds{role="server",name="mesh",tunnel="1"}'), undefined, 'servers do not PING')
  checkMetrics(t, mb, 'B')

  // The same counters through Prometheus, from both gates, before the delay test adds a stream.
  const rn = ['role', 'name']
  const byName = (ab: number, ghost: number, bm: number) => ({
    'A client b': ab,
    'A client ghost': ghost,
    'B server mesh': bm,
  })
  // The attempt at ghost counts as a tunnel (and a stream) that carried nothing.
  const promWant: Array<[string, string[], Record<string, number>, string]> = [
    ['ugate_mesh_tunnels_active', rn, { 'A client b': 1, 'B server mesh': 1 }, 'tunnels active'],
    ['ugate_mesh_tunnels_total', rn, byName(1, 1, 1), 'tunnels total'],
    ['ugate_mesh_streams_active', rn, { 'A client b': 0, 'B server mesh': 0 }, 'streams active'],
    ['ugate_mesh_streams_total', rn, byName(4, 1, 4), 'streams total'],
    ['sum by (instance, role, name) (ugate_mesh_stream_failures_total)', rn, byName(1, 1, 1), 'stream failures'],
    [
      'ugate_mesh_bytes_total',
      [...rn, 'direction'],
      {
        'A client b sent': sent,
        'A client b received': sent,
        'A client ghost sent': 0,
        'A client ghost received': 0,
        'B server mesh sent': sent,
        'B server mesh received': sent,
      },
      'payload bytes both ways at both ends',
    ],
  ]
  for (const [expr, labels, want, what] of promWant) await promSame(expr, labels, want, what)
  await promSame('sum(ugate_mesh_bytes_total{direction="sent"})', [], { both: 2 * sent }, 'summed over gates')

  // /proxies: the peer, with its tunnel.
  const proxies = await get(adminA, '/proxies')
  t.same(Object.keys(proxies.body.proxies), ['DIRECT', 'REJECT', 'b', 'ghost'])
  t.match(proxies.body.proxies.b, {
    name: 'b',
    type: 'Hbone',
    udp: false,
    alive: true,
    history: [],
    extra: {},
    mesh: {
      server: `127.0.0.1:${b.port('mesh')}`,
      identity: ids.spiffe('b'),
      tunnels: [{ state: 'open', peerId: ids.spiffe('b'), streams: 0, streamsTotal: 4, bytesOut: sent, bytesIn: sent }],
    },
  })
  t.same(proxies.body.proxies.ghost.mesh, { server: `127.0.0.1:${nobody}`, identity: '', tunnels: [] })
  // The same object but for what moves on its own: the tunnel's age, and its RTT after a PING.
  const steady = (p: any) => ({
    ...p,
    mesh: { ...p.mesh, tunnels: p.mesh.tunnels.map(({ ageMs: _a, rttMs: _r, ...rest }: any) => rest) },
  })
  t.same(steady((await get(adminA, '/proxies/b')).body), steady(proxies.body.proxies.b), '/proxies/b: the same object')

  // A delay test through the peer: a CONNECT stream on the pooled tunnel, then HEAD.
  const url = encodeURIComponent(`http://127.0.0.1:${originPort}/generate_204`)
  const d = await get(adminA, `/proxies/b/delay?url=${url}&timeout=5000`)
  t.equal(d.status, 200, 'delay through b')
  t.ok(Number.isInteger(d.body.delay) && d.body.delay > 0, `b: ${d.body.delay} ms`)
  // B dialed the test URL for A: a stream like any other, its access line names A.
  const line = await b.waitForLine(new RegExp(` info conn listener=mesh .*dst=127\\.0\\.0\\.1:${originPort} `))
  t.match(line, new RegExp(`identity=${ids.spiffe('a')} .*forwarded="for=\\\\"127\\.0\\.0\\.1\\\\""`))
  t.match(await get(adminA, `/proxies/ghost/delay?url=${url}&timeout=5000`), {
    status: 503,
    body: { message: 'An error occurred in the delay test' },
  })
  const after = await get(adminA, '/proxies')
  t.match(after.body.proxies.b, { alive: true, history: [{ delay: d.body.delay }] })
  t.match(after.body.proxies.ghost, { alive: false, history: [{ delay: 0 }] })
  t.equal(after.body.proxies.b.mesh.tunnels.length, 1, 'the delay test used the pooled tunnel')

  // The first PING goes out 10 s after the tunnel opened: then A has its round trip.
  const rtt = (m: string) =>
    m.split('\n').find((l) => l.startsWith('ugate_mesh_rtt_seconds{role="client",name="b",tunnel="'))
  const mr = await scrapeUntil(t, adminA, (m) => rtt(m) !== undefined, 'A: an RTT sample after the first PING')
  const seconds = Number(rtt(mr)!.split(' ')[1])
  // Unanswered for 20 s, a PING closes the tunnel: a kept RTT is below that.
  t.ok(seconds > 0 && seconds < 20, `RTT ${seconds} s`)
  t.equal(sample(mr, 'ugate_mesh_streams_total{role="client",name="b"}'), 5, 'the delay test was a stream too')
  checkMetrics(t, mr, 'A with RTT')
  const tunnel = (await get(adminA, '/proxies/b')).body.mesh.tunnels[0]
  t.ok(typeof tunnel.rttMs === 'number' && tunnel.rttMs > 0, `/proxies/b: rttMs ${tunnel.rttMs}`)
  const id = /tunnel="(\d+)"/.exec(rtt(mr)!)![1]
  const pr = await prom.query('ugate_mesh_rtt_seconds', (r) => r.length > 0)
  t.match(
    pr,
    [{ metric: { instance: prom.instance(adminA), role: 'client', name: 'b', tunnel: id } }],
    "Prometheus: the RTT of A's tunnel, only",
  )
  t.equal(pr.length, 1, "B's server tunnel has none")
  t.ok(pr[0]!.value > 0 && pr[0]!.value < 20, `Prometheus: RTT ${pr[0]?.value} s`)
  await promSame('ugate_mesh_streams_total', rn, byName(5, 2, 5), "the delay tests' streams")
  t.same(await prom.targets(), { [prom.instance(adminA)]: 'up', [prom.instance(adminB)]: 'up' })
  await prom.stop()
  await settleFds(a)

  // No key material anywhere: answers, metrics, ctl, log lines of both.
  const ctl = runUgate(['ctl', '--json', '--socket', ids.socket('a'), 'status']).stdout
  const keys = ['a', 'b'].flatMap((n) =>
    readFileSync(join(ids.dir(n), 'key.pem'), 'utf8')
      .split('\n')
      .filter((l) => l.length >= 32 && !l.startsWith('-----')),
  )
  t.ok(keys.length >= 2, 'key lines read')
  const everything = [...seen, ctl, ...a.lines, ...b.lines].join('\n')
  t.ok(everything.includes('ugate_mesh_tunnels_active') && everything.includes('Hbone'), 'answers were collected')
  for (const k of keys) t.notOk(everything.includes(k), `key line ${k.slice(0, 8)}… appears nowhere`)
  t.notOk(everything.includes(SECRET), 'the admin secret appears nowhere')

  checkCleanExit(t, b, await b.stop())
  await a.waitForLine(/ info hbone-closed .*reason=(goaway|tunnel-closed)/)
  await finish(t, a, 5)
})
