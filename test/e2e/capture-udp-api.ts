// The admin API and `ugate ctl` with live UDP flows: flows made through
// nftables TPROXY in network namespaces (test/lib/udp-capture.ts) are listed
// as mihomo lists them, with bytes growing while they live, counted in
// /metrics (promtool-clean) and the ctl tables, and ended by DELETE
// /connections/udp-N, `ugate ctl close udp-N` and ubus `close {"id":"udp-N"}`
// (ubusd's stand-in, test/lib/ubusd-standin.ts).

import { spawnSync } from 'node:child_process'
import t from 'tap'
import { checkMetrics, sample } from '../lib/metrics.js'
import { ADDR, type Topology, inNs, run } from '../lib/netns.js'
import { prngBytes } from '../lib/servers.js'
import { ECHO, exchange, peers, start } from '../lib/udp-capture.js'
import { UbusdStandin } from '../lib/ubusd-standin.js'
import { type Ugate, checkCleanExit, ugateBin } from '../lib/ugate.js'

/** The admin HTTP API inside the router namespace (curl there): status code and parsed body. */
async function api(topo: Topology, ug: Ugate, secret: string, path: string, method = 'GET') {
  const url = `http://127.0.0.1:${ug.port('admin-http')}${path}`
  const argv = ['curl', '-s', '-X', method, '-H', `Authorization: Bearer ${secret}`, '-w', '\n%{http_code}', url]
  const r = await run(inNs(topo.router, argv))
  const lines = r.stdout.trimEnd().split('\n')
  const status = Number(lines.pop())
  const text = lines.join('\n')
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {
    // metrics, an empty 204
  }
  return { status, body, text }
}

t.test(
  'the API lists live UDP flows (bytes growing), metrics count them, DELETE, ctl close and ubus close end them',
  async (t) => {
    const SECRET = 'udp-api-s3cret'
    const { topo, client } = await peers(t)
    const admin = `${topo.dir}/admin.sock`
    const ubusd = new UbusdStandin(`${topo.dir}/ubus.sock`)
    t.teardown(() => ubusd.stop())
    await ubusd.start()
    const ug = await start(t, topo, { admin, http: SECRET, ubus: ubusd.path })
    await ug.waitForLine(/ info ubus-registered object=ugate /)
    const port = await client.bind('a', ADDR.client4)
    const first = prngBytes(31, 1000)
    t.equal((await exchange(client, 'a', ADDR.server4, ECHO, first)).data, first.toString('hex'), 'echo through ugate')

    const isFlow = (c: any) => c.metadata.network === 'udp' && c.metadata.sourcePort === String(port)
    const snap = await api(topo, ug, SECRET, '/connections')
    t.equal(snap.status, 200)
    const flow = snap.body.connections.find(isFlow)
    t.match(
      flow,
      {
        id: /^udp-[0-9]+$/,
        metadata: {
          network: 'udp',
          type: 'TProxy',
          inboundName: 'udp',
          sourceIP: ADDR.client4,
          destinationIP: ADDR.server4,
          destinationPort: String(ECHO),
        },
        upload: 1000,
        download: 1000,
        chains: ['DIRECT'],
        rule: 'Match',
      },
      'the flow as mihomo shows one: network udp, source, destination, rule, chains, bytes',
    )
    t.ok(snap.body.uploadTotal >= 1000 && snap.body.downloadTotal >= 1000, 'the totals (as /traffic) count UDP bytes')

    await exchange(client, 'a', ADDR.server4, ECHO, prngBytes(32, 500))
    const later = (await api(topo, ug, SECRET, '/connections')).body.connections.find(isFlow)
    t.match(later, { id: flow.id, upload: 1500, download: 1500 }, 'the same flow, its bytes live')

    const table = spawnSync('ip', ['netns', 'exec', topo.router, ugateBin, 'ctl', '--socket', admin, 'connections'], {
      encoding: 'utf8',
    }).stdout
    t.match(
      table,
      new RegExp(
        `\\n${flow.id} +udp +198\\.18\\.1\\.2:${port} +198\\.19\\.2\\.2:${ECHO} +- +default→direct +udp +[0-9.]+s +1\\.5 KiB +1\\.5 KiB\\n`,
      ),
      'ctl connections: the flow as a row',
    )
    const status = spawnSync('ip', ['netns', 'exec', topo.router, ugateBin, 'ctl', '--socket', admin, 'status'], {
      encoding: 'utf8',
    }).stdout
    t.match(
      status,
      /\nudp: 1 flows live, 1 total, 0 evicted \(flow cap\), 0 idle; datagrams up 2 \(1\.5 KiB\), down 2 \(1\.5 KiB\); drops 0\n/,
    )

    const m = await api(topo, ug, SECRET, '/metrics')
    t.equal(sample(m.text, 'ugate_udp_flows_active'), 1)
    t.equal(sample(m.text, 'ugate_udp_flows_total'), 1)
    t.equal(sample(m.text, 'ugate_udp_datagrams_total{direction="up"}'), 2)
    t.equal(sample(m.text, 'ugate_udp_bytes_total{direction="down"}'), 1500)
    t.equal(sample(m.text, 'ugate_udp_drops_total{reason="queueFull"}'), 0)
    t.equal(sample(m.text, 'ugate_connections_active{listener="udp"}'), undefined, 'flows are not TCP connections')
    checkMetrics(t, m.text)

    t.equal((await api(topo, ug, SECRET, `/connections/${flow.id}`, 'DELETE')).status, 204, 'DELETE ends the flow')
    const line = await ug.waitForLine(new RegExp(` info udp .*src=198\\.18\\.1\\.2:${port} `))
    t.match(line, /reason=closed/, 'its access line says closed')
    t.notOk((await api(topo, ug, SECRET, '/connections')).body.connections.some(isFlow), 'gone from the list')
    t.match(await api(topo, ug, SECRET, `/connections/${flow.id}`, 'DELETE'), {
      status: 404,
      body: { message: /no live connection/ },
    })

    // ctl close takes the same id.
    const port2 = await client.bind('b', ADDR.client4)
    await exchange(client, 'b', ADDR.server4, ECHO, Buffer.from('two'))
    const second = (await api(topo, ug, SECRET, '/connections')).body.connections.find(
      (c: any) => c.metadata.network === 'udp' && c.metadata.sourcePort === String(port2),
    )
    const closed = spawnSync(
      'ip',
      ['netns', 'exec', topo.router, ugateBin, 'ctl', '--socket', admin, 'close', second.id],
      {
        encoding: 'utf8',
      },
    )
    t.equal(closed.stdout, `closed ${second.id}\n`, 'ctl close udp-N')
    t.match(await ug.waitForLine(new RegExp(` info udp .*src=198\\.18\\.1\\.2:${port2} `)), /reason=closed/)

    // ubus close takes it too, as a string; the listing is what the admin socket answers.
    const port3 = await client.bind('c', ADDR.client4)
    await exchange(client, 'c', ADDR.server4, ECHO, Buffer.from('three'))
    const listed = (await ubusd.call('connections')).data as { udpFlows: Array<{ id: number; src: string }> }
    const third = listed.udpFlows.find((f) => f.src === `${ADDR.client4}:${port3}`)
    t.ok(third, 'ubus connections lists the flow')
    const id = `udp-${third!.id}`
    t.same(await ubusd.call('close', { id }), { status: 0, data: { closed: id } }, 'ubus close udp-N')
    t.match(await ug.waitForLine(new RegExp(` info udp .*src=198\\.18\\.1\\.2:${port3} `)), /reason=closed/)
    t.same(await ubusd.call('close', { id }), { status: 4, data: undefined }, 'closed once: NOT_FOUND')
    t.same(await ubusd.call('close', { id: 'udp-x' }), { status: 2, data: undefined }, 'not an id: INVALID_ARGUMENT')
    t.same(await ubusd.call('close', { id: 'udp-0' }), { status: 2, data: undefined }, 'udp-0: INVALID_ARGUMENT')

    const res = await ug.stop()
    checkCleanExit(t, ug, res)
  },
)
