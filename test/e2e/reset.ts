// Upstream resets mid-stream: the client side is closed and the log
// shows a server-error reason. And the mirror case: the client resets,
// the upstream side is closed, the log shows a client-error reason.

import t from 'tap'
import type { Socket } from 'node:net'
import { connect, echoServer, KiB, resetServer, waitClose, within } from '../lib/servers.js'
import type { CloseInfo } from '../lib/servers.js'
import { finish, fwd, startUgate } from '../lib/ugate.js'

const PREFIX = 64 * KiB

for (const mode of ['splice', 'copy'] as const) {
  t.test(`upstream RST mid-stream (${mode})`, async (t) => {
    const srv = await resetServer(t, { prefix: PREFIX, seed: 0x7e5e })
    const ug = await startUgate(t, [
      'run',
      ...fwd('127.0.0.1:0', srv.target),
      ...(mode === 'copy' ? ['--no-splice'] : []),
    ])
    const c = await connect(ug.port())
    const closed = waitClose(c)
    // Wait for the server's prefix to arrive, then poke the server: it resets.
    await within(
      new Promise<void>((res) => {
        let n = 0
        const onData = (d: Buffer) => {
          n += d.length
          if (n >= PREFIX) {
            c.off('data', onData)
            res()
          }
        }
        c.on('data', onData)
      }),
      10_000,
      'prefix received through ugate',
    )
    c.write('x')
    await within(srv.resetDone, 10_000, 'server reset the connection')
    const info = await within(closed, 10_000, 'client closed after the upstream reset')
    t.equal(info.bytes, PREFIX, 'client got exactly the prefix')
    t.ok(info.ended || info.error?.code === 'ECONNRESET', 'client got EOF or a reset', {
      ended: info.ended,
      error: info.error?.code,
    })

    const [conn] = await ug.waitForConns(1)
    t.match(conn!.fields.reason, /^server-error:E[A-Z0-9]+$/, 'conn reason is server-error:<errno>')
    t.comment(`reason=${conn!.fields.reason}`)
    t.match(conn!.fields, { listener: 'fwd1', up: '1', down: String(PREFIX) }, 'conn byte counts')
    await finish(t, ug, 1)
  })
}

for (const mode of ['splice', 'copy'] as const) {
  t.test(`client RST mid-stream (${mode})`, async (t) => {
    const srv = await echoServer(t)
    const upstream = new Promise<CloseInfo>((res) => {
      srv.server.once('connection', (s: Socket) => res(waitClose(s)))
    })
    const ug = await startUgate(t, [
      'run',
      ...fwd('127.0.0.1:0', srv.target),
      ...(mode === 'copy' ? ['--no-splice'] : []),
    ])
    const c = await connect(ug.port())
    await within(
      new Promise<void>((res) => {
        c.once('data', () => res())
        c.write('hello')
      }),
      10_000,
      'echo through the relay',
    )
    c.resetAndDestroy()
    const info = await within(upstream, 10_000, 'upstream closed after the client reset')
    t.ok(info.ended || info.error !== null, 'upstream saw EOF or an error', {
      ended: info.ended,
      error: info.error?.code,
    })
    const [conn] = await ug.waitForConns(1)
    t.match(conn!.fields.reason, /^client-error:E[A-Z0-9]+$/, 'conn reason is client-error:<errno>')
    t.comment(`reason=${conn!.fields.reason}`)
    t.match(conn!.fields, { listener: 'fwd1', up: '5', down: '5' }, 'conn byte counts')
    await finish(t, ug, 1)
  })
}
