// A forward on [::1] to an upstream on [::1].

import t from 'tap'
import { connect, collect, echoServer, prngBytes, sha256, within } from '../lib/servers.js'
import { finish, fwd, startUgate } from '../lib/ugate.js'

t.test('IPv6 forward [::1]:0=[::1]:PORT', async (t) => {
  const srv = await echoServer(t, '::1')
  t.equal(srv.target, `[::1]:${srv.port}`)
  const ug = await startUgate(t, ['run', ...fwd('[::1]:0', srv.target)])
  t.equal(ug.listeners[0]?.host, '::1', 'listener bound to ::1')
  t.match(ug.listeners[0]?.addr, /^\[::1\]:\d+$/, 'listening addr is [::1]:PORT')

  const payload = prngBytes(0x66, 100_000)
  const c = await connect(ug.port(), '::1')
  const cport = c.localPort
  const got = collect(c)
  c.end(payload)
  const echoed = await within(got, 10_000, 'echo over IPv6')
  t.equal(sha256(echoed), sha256(payload), 'payload echoed intact over IPv6')
  c.destroy()

  const [conn] = await ug.waitForConns(1)
  t.match(
    conn!.fields,
    { listener: 'fwd1', reason: 'eof', up: String(payload.length), down: String(payload.length) },
    'conn line',
  )
  t.match(conn!.fields.src, new RegExp(`::1\\]?:${cport}$`), 'src is the IPv6 client')
  t.match(conn!.fields.dst, new RegExp(`::1\\]?:${srv.port}$`), 'dst is the IPv6 upstream')
  await finish(t, ug, 1)
})
