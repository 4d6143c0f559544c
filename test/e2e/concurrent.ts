// 200 concurrent connections through one forward, each echoing its own payload.

import t from 'tap'
import { echoRoundTrip, echoServer, prngBytes, sha256, within } from '../lib/servers.js'
import { finish, fwd, startUgate } from '../lib/ugate.js'

const N = 200

t.test(`${N} concurrent echo connections`, async (t) => {
  const srv = await echoServer(t)
  const ug = await startUgate(t, ['run', ...fwd('127.0.0.1:0', srv.target)])
  const port = ug.port()
  const payloads = Array.from({ length: N }, (_, i) => prngBytes(1000 + i, 4096 + i * 97))
  const results = await within(
    Promise.allSettled(payloads.map((p) => echoRoundTrip(port, p))),
    60_000,
    `${N} round trips`,
  )
  let ok = 0
  const bad: string[] = []
  results.forEach((r, i) => {
    if (r.status === 'rejected') bad.push(`#${i}: ${String(r.reason)}`)
    else if (r.value.length !== payloads[i]!.length || sha256(r.value) !== sha256(payloads[i]!)) {
      bad.push(`#${i}: got ${r.value.length} bytes, wanted ${payloads[i]!.length}, content differs`)
    } else ok++
  })
  t.equal(ok, N, 'every connection echoed its own payload', { failures: bad.slice(0, 20) })
  t.equal(srv.accepted, N, 'upstream saw one connection per client')

  const conns = await ug.waitForConns(N)
  t.equal(conns.length, N, `${N} conn lines`)
  const reasons: Record<string, number> = {}
  for (const c of conns) reasons[c.fields.reason ?? '?'] = (reasons[c.fields.reason ?? '?'] ?? 0) + 1
  t.same(reasons, { eof: N }, 'all conn lines have reason=eof')
  const ups = conns.map((c) => Number(c.fields.up)).sort((a, b) => a - b)
  const sizes = payloads.map((p) => p.length).sort((a, b) => a - b)
  t.same(ups, sizes, 'up byte counts match the payload sizes')
  t.same(
    conns.map((c) => Number(c.fields.down)).sort((a, b) => a - b),
    sizes,
    'down byte counts match the payload sizes',
  )
  await finish(t, ug, N)
})
