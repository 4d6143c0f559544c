// GET /metrics: the counters after known traffic, `promtool check metrics`
// on the text, and a real Prometheus server (Debian's `prometheus`)
// scraping ugate with the bearer secret and answering queries about it
// (bytes; the DNS latency histogram through histogram_quantile).

import net from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { requireCommand } from '../lib/http.js'
import { listener, startConfig } from '../lib/config.js'
import { connect, destroyClients, echoRoundTrip, echoServer, refusedPort } from '../lib/servers.js'
import { digArgs, parseDig, requireDig, startDnsStandin } from '../lib/dns-standin.js'
import { buckets, checkMetrics, histogramQuantile, sample } from '../lib/metrics.js'
import { startPrometheus } from '../lib/prometheus.js'
import { createNamespaces, inNs, ipBatch, run, setResolvConf } from '../lib/netns.js'
import { finish, runUgate, settleFds } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const SECRET = 'metrics-s3cret'
t.teardown(destroyClients)

async function get(port: number, path: string, auth = true): Promise<{ status: number; text: string }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, {
    headers: auth ? { Authorization: `Bearer ${SECRET}` } : {},
    reset: true,
  })
  return { status: res.statusCode, text: await res.body.text() }
}

t.test('metrics after known traffic; promtool; a Prometheus server scrapes it', async (t) => {
  requireCommand('promtool', 'prometheus')
  requireCommand('prometheus', 'prometheus')
  const echo = await echoServer(t)
  const dead = await refusedPort()
  const ug = await startConfig(t, {
    relay: { shutdownGrace: 1 },
    admin: { listen: '127.0.0.1:0', secret: SECRET },
    listeners: [
      listener('fwd', 'forward', { target: echo.target }),
      listener('down', 'forward', { target: `127.0.0.1:${dead}` }),
      listener('mix', 'mixed'),
    ],
  })
  const admin = ug.port('admin-http')
  const payload = Buffer.alloc(30000, 7)
  t.equal((await echoRoundTrip(ug.port('fwd'), payload)).length, payload.length)
  // ugate resets the client when the target refuses: possibly before 'connect' is seen.
  await new Promise<void>((r) => {
    const s = net.connect(ug.port('down'), '127.0.0.1')
    s.on('error', () => {})
    s.once('close', () => r())
  })
  const slow = await connect(ug.port('mix'))
  slow.on('error', () => {}) // ugate resets it
  slow.end(Buffer.from([0x05])) // a SOCKS greeting cut short: client-eof before any relay
  await ug.waitForConns(3)

  t.equal((await get(admin, '/metrics', false)).status, 401, 'the secret guards /metrics too')
  const m = await get(admin, '/metrics')
  t.equal(m.status, 200)
  t.equal(sample(m.text, 'ugate_connections_total{listener="fwd",action="none",result="eof"}'), 1)
  t.equal(sample(m.text, 'ugate_bytes_total{listener="fwd",direction="up"}'), payload.length)
  t.equal(sample(m.text, 'ugate_bytes_total{listener="fwd",direction="down"}'), payload.length)
  t.equal(sample(m.text, 'ugate_handshake_failures_total{listener="down",reason="connect-error:ECONNREFUSED"}'), 1)
  t.equal(sample(m.text, 'ugate_handshake_failures_total{listener="mix",reason="client-eof"}'), 1)
  // The relay decides splice or copy by itself: the metric agrees with the access line.
  const mode = ug.events('conn').find((c) => c.fields.listener === 'fwd')!.fields.splice === '1' ? 'splice' : 'copy'
  t.equal(sample(m.text, `ugate_relays_total{mode="${mode}"}`), 1, `one ${mode} relay`)
  const calls = ['splice', 'copy'].map((k) => sample(m.text, `ugate_relay_calls_total{mode="${k}"}`) ?? 0)
  t.ok(calls[0]! + calls[1]! > 0, 'relay calls counted')
  t.ok((sample(m.text, 'ugate_process_resident_memory_bytes') ?? 0) > 100000)
  t.equal(sample(m.text, 'ugate_process_open_fds'), ug.baselineFds + 1, 'the baseline and the scrape itself')
  t.match(m.text, /^# TYPE ugate_connections_active gauge$/m)

  checkMetrics(t, m.text)

  // A real server: scrape every second with the bearer secret, then ask it.
  const prom = await startPrometheus(t, [admin], SECRET)
  const up = await prom.query('ugate_bytes_total{listener="fwd",direction="up"}', (r) => r.length > 0)
  t.match(up, [{ metric: { job: 'ugate', instance: prom.instance(admin) } }], 'Prometheus answered')
  t.equal(up[0]?.value, payload.length, 'the value Prometheus scraped')
  t.same(await prom.targets(), { [prom.instance(admin)]: 'up' })
  await prom.stop()
  // Prometheus' scrape connections end with it; ugate closes its side once it reads their EOF.
  await settleFds(ug)
  await finish(t, ug, 3)
})

t.test('DNS counters in /metrics and ctl status: cache hits, local answers, upstream failures', async (t) => {
  requireCommand('promtool', 'prometheus')
  requireDig()
  const dir = tempDir(t, 'ugate-dnsm-')
  const up = await startDnsStandin(t, dir, { 'www.example.test': { A: ['192.0.2.10'] } }, { host: '::1' })
  const dead = await refusedPort()
  const socket = join(dir, 'ugate.sock')
  const ug = await startConfig(t, {
    relay: { shutdownGrace: 1 },
    admin: { listen: '127.0.0.1:0', secret: SECRET, socket },
    listeners: [
      listener('dns', 'dns', { servers: [`[::1]:${up.port}`], hosts: { 'nas.lan': ['192.168.7.7'] }, timeout: 2 }),
      listener('dead', 'dns', { servers: [`127.0.0.1:${dead}`], timeout: 0.3 }),
    ],
    rules: [{ name: 'no-ads', domainSuffix: ['ads.test'], action: 'reject' }],
  })
  const dig = async (listener: string, name: string) => {
    const r = await run(digArgs('127.0.0.1', ug.port(listener), name, 'A'))
    return parseDig(r.code, r.stdout + r.stderr).status
  }
  t.equal(await dig('dns', 'www.example.test'), 'NOERROR', 'forwarded')
  t.equal(await dig('dns', 'www.example.test'), 'NOERROR', 'from the cache')
  t.equal(await dig('dns', 'nas.lan'), 'NOERROR', 'a hosts entry')
  t.equal(await dig('dns', 'x.ads.test'), 'NXDOMAIN', 'a reject rule')
  t.equal(await dig('dead', 'www.example.test'), 'SERVFAIL', 'no resolver answers')

  const m = await get(ug.port('admin-http'), '/metrics')
  const want: Array<[string, string, number]> = [
    ['ugate_dns_queries_total', 'dns', 4],
    ['ugate_dns_cache_hits_total', 'dns', 1],
    ['ugate_dns_local_answers_total', 'dns', 2],
    ['ugate_dns_forwarded_total', 'dns', 1],
    ['ugate_dns_upstream_failures_total', 'dns', 0],
    ['ugate_dns_queries_total', 'dead', 1],
    ['ugate_dns_forwarded_total', 'dead', 1],
    ['ugate_dns_upstream_failures_total', 'dead', 1],
    ['ugate_dns_cache_hits_total', 'dead', 0],
  ]
  for (const [name, listener, value] of want)
    t.equal(sample(m.text, `${name}{listener="${listener}"}`), value, `${name} of ${listener}`)
  // The answer latency histogram: one series per listener and source, as many observations as answers.
  const perSource: Array<[string, string, number]> = [
    ['dns', 'upstream', 1],
    ['dns', 'cache', 1],
    ['dns', 'static', 1],
    ['dns', 'reject', 1],
    ['dead', 'servfail', 1],
  ]
  t.match(m.text, /^# TYPE ugate_dns_answer_duration_seconds histogram$/m)
  for (const [listener, source, n] of perSource) {
    const labels = `listener="${listener}",source="${source}"`
    t.equal(sample(m.text, `ugate_dns_answer_duration_seconds_count{${labels}}`), n, `${listener}/${source}: count`)
    t.equal(sample(m.text, `ugate_dns_answer_duration_seconds_bucket{${labels},le="+Inf"}`), n, '+Inf = count')
    const b = buckets(m.text, 'ugate_dns_answer_duration_seconds', labels).map(([, v]) => v)
    t.ok(
      b.length === 14 && b.every((v, i) => i === 0 || v >= b[i - 1]!),
      `${listener}/${source}: 14 cumulative buckets`,
    )
  }
  // SERVFAIL comes only after the resolver's 0.3 s timeout.
  const sum = (labels: string) => sample(m.text, `ugate_dns_answer_duration_seconds_sum{${labels}}`)!
  t.ok(sum('listener="dead",source="servfail"') >= 0.3, `servfail took ${sum('listener="dead",source="servfail"')} s`)
  t.equal(
    sample(m.text, 'ugate_dns_answer_duration_seconds_bucket{listener="dead",source="servfail",le="0.25"}'),
    0,
    'not within 0.25 s',
  )
  // No tproxy listener: the UDP families are there, at zero.
  t.equal(sample(m.text, 'ugate_udp_flows_total'), 0)
  t.equal(sample(m.text, 'ugate_udp_datagrams_total{direction="up"}'), 0)
  t.match(m.text, /^# TYPE ugate_udp_flows_active gauge$/m)
  checkMetrics(t, m.text)

  const json = JSON.parse(runUgate(['ctl', '--json', '--socket', socket, 'status']).stdout)
  t.match(json.dns.listeners, [
    { name: 'dns', queries: 4, cached: 1, local: 2, forwarded: 1, failed: 0 },
    { name: 'dead', queries: 1, cached: 0, local: 0, forwarded: 1, failed: 1 },
  ])
  const table = runUgate(['ctl', '--socket', socket, 'status']).stdout
  t.match(
    table,
    /\nDNS +QUERIES +CACHED +LOCAL +FORWARDED +FAILED +MALFORMED +DROPPED\ndns +4 +1 +2 +1 +0 +0 +0\ndead +1 +0 +0 +1 +1 +0 +0\n/,
  )

  // A Prometheus server answers PromQL over the histogram as the scraped buckets say.
  const admin = ug.port('admin-http')
  const prom = await startPrometheus(t, [admin], SECRET)
  const counts = await prom.query('sum by (listener) (ugate_dns_answer_duration_seconds_count)', (r) => r.length > 0)
  t.same(
    Object.fromEntries(counts.map((r) => [r.metric.listener, r.value])),
    { dns: 4, dead: 1 },
    'answers per listener, summed over sources',
  )
  const servfail = buckets(m.text, 'ugate_dns_answer_duration_seconds', 'listener="dead",source="servfail"')
  const q = await prom.query(
    'histogram_quantile(0.5, ugate_dns_answer_duration_seconds_bucket{listener="dead",source="servfail"})',
    (r) => r.length > 0,
  )
  t.equal(q[0]?.value, histogramQuantile(0.5, servfail), 'median of the SERVFAIL latency, as the buckets say')
  t.ok(q[0]!.value > 0.25, `above the 0.25 s bound (${q[0]?.value})`)
  // Summed over the four sources of listener "dns": one histogram of its 4 answers.
  const perLe = new Map<number, number>()
  for (const source of ['upstream', 'cache', 'static', 'reject'])
    for (const [le, n] of buckets(m.text, 'ugate_dns_answer_duration_seconds', `listener="dns",source="${source}"`))
      perLe.set(le, (perLe.get(le) ?? 0) + n)
  const q9 = await prom.query(
    'histogram_quantile(0.9, sum by (le) (ugate_dns_answer_duration_seconds_bucket{listener="dns"}))',
    (r) => r.length > 0,
  )
  t.equal(q9[0]?.value, histogramQuantile(0.9, [...perLe]), 'p90 over the sources of "dns"')
  await prom.stop()
  // Prometheus' scrape connections end with it; ugate closes its side once it reads their EOF.
  await settleFds(ug)
  await finish(t, ug, 0)
})

t.test('dial-time name lookups: ugate_resolve_duration_seconds by result', async (t) => {
  requireCommand('promtool', 'prometheus')
  requireCommand('curl', 'curl')
  // ugate in a namespace of its own whose resolv.conf names a DNS stand-in there: getaddrinfo's
  // answers (and its queries) stay on the namespace's loopback.
  const { ns, dir } = await createNamespaces(t, 'rs', ['g'] as const)
  await ipBatch(ns.g, ['link set lo up'])
  setResolvConf(ns.g, 'nameserver 127.0.0.1\n')
  const dns = await startDnsStandin(t, dir, { 'svc.example.test': { A: ['127.0.0.1'] } }, { ns: ns.g, port: 53 })
  const ug = await startConfig(
    t,
    {
      relay: { shutdownGrace: 1 },
      admin: { listen: '127.0.0.1:0', secret: SECRET },
      listeners: [
        listener('svc', 'forward', { target: 'svc.example.test:9' }),
        listener('nx', 'forward', { target: 'nx.example.test:9' }),
      ],
    },
    { netns: ns.g },
  )
  const curl = (port: number, path = '/', auth = false) =>
    run(
      inNs(ns.g, [
        'curl',
        '-s',
        '--max-time',
        '10',
        ...(auth ? ['-H', `Authorization: Bearer ${SECRET}`] : []),
        `http://127.0.0.1:${port}${path}`,
      ]),
    )
  // Two lookups that find an address (nothing listens on port 9: connect-error), one NXDOMAIN.
  for (const l of ['svc', 'svc', 'nx']) await curl(ug.port(l))
  const lines = await ug.waitForConns(3)
  t.same(lines.map((c) => `${c.fields.listener} ${c.fields.reason}`).sort(), [
    'nx dns-error',
    'svc connect-error:ECONNREFUSED',
    'svc connect-error:ECONNREFUSED',
  ])
  t.ok(dns.seen('svc.example.test').length >= 2 && dns.seen('nx.example.test').length >= 1, 'asked the stand-in')

  const m = await curl(ug.port('admin-http'), '/metrics', true)
  t.equal(m.code, 0, 'scraped inside the namespace')
  t.match(m.stdout, /^# TYPE ugate_resolve_duration_seconds histogram$/m)
  for (const [result, n] of [
    ['ok', 2],
    ['error', 1],
  ] as const) {
    const labels = `result="${result}"`
    t.equal(sample(m.stdout, `ugate_resolve_duration_seconds_count{${labels}}`), n, `${result}: count`)
    const b = buckets(m.stdout, 'ugate_resolve_duration_seconds', labels)
    t.same(
      b.map(([le]) => le),
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, Infinity],
      `${result}: the bounds`,
    )
    t.ok(
      b.every(([, v], i) => i === 0 || v >= b[i - 1]![1]),
      `${result}: cumulative`,
    )
    t.equal(b[b.length - 1]![1], n, `${result}: +Inf = count`)
    t.ok(sample(m.stdout, `ugate_resolve_duration_seconds_sum{${labels}}`)! > 0, `${result}: a duration`)
  }
  checkMetrics(t, m.stdout)
  // curl's connection ends when it exits; ugate closes its side once it reads the EOF.
  await settleFds(ug)
  await finish(t, ug, 3)
})
