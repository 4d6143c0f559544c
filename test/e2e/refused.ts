// Upstream refuses: the client is closed promptly, the log says
// connect-error:ECONNREFUSED, and the listener keeps serving.

import net from 'node:net'
import t from 'tap'
import {
  echoRoundTrip,
  echoServerOn,
  prngBytes,
  refusedPort,
  sha256,
  track,
  waitClose,
  within,
} from '../lib/servers.js'
import { finish, fwd, startUgate } from '../lib/ugate.js'

t.test('upstream refuses the connection', async (t) => {
  const port = await refusedPort()
  const ug = await startUgate(t, ['run', ...fwd('127.0.0.1:0', `127.0.0.1:${port}`)])

  // Do not wait for 'connect': ugate may close (even reset) the client so
  // fast that Node reports the RST as the outcome of the connect itself.
  const c = track(net.connect({ port: ug.port(), host: '127.0.0.1', allowHalfOpen: true }))
  let cport: number | undefined
  c.once('connect', () => {
    cport = c.localPort
  })
  const info = await within(waitClose(c), 10_000, 'client closed after the upstream refused')
  t.comment(`client: connected=${cport !== undefined} ended=${info.ended} error=${info.error?.code ?? 'none'}`)
  t.equal(info.bytes, 0, 'client received no data')
  t.ok(info.ended || info.error !== null, 'client saw EOF or an error before close', {
    ended: info.ended,
    error: info.error?.code,
  })

  const [conn] = await ug.waitForConns(1)
  t.match(
    conn!.fields,
    {
      listener: 'fwd1',
      src: cport === undefined ? /^127\.0\.0\.1:\d+$/ : `127.0.0.1:${cport}`,
      dst: `127.0.0.1:${port}`,
      up: '0',
      down: '0',
      reason: 'connect-error:ECONNREFUSED',
    },
    'conn line reports connect-error:ECONNREFUSED',
  )

  // The same listener serves the next connection once the upstream is up.
  await echoServerOn(t, port)
  const payload = prngBytes(0x2ef, 20_000)
  const echoed = await within(echoRoundTrip(ug.port(), payload), 10_000, 'echo after refusal')
  t.equal(echoed.length, payload.length, 'following connection echoed all bytes')
  t.equal(sha256(echoed), sha256(payload), 'following connection echoed the right bytes')
  const conns = await ug.waitForConns(2)
  t.match(
    conns[1]!.fields,
    { reason: 'eof', up: String(payload.length), down: String(payload.length) },
    'second conn line',
  )
  await finish(t, ug, 2)
})
