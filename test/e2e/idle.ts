// --idle-timeout: a connection that sends nothing is closed with reason=idle.

import t from 'tap'
import { connect, echoServer, waitClose, within } from '../lib/servers.js'
import { finish, fwd, startUgate } from '../lib/ugate.js'

t.test('idle connection is closed after --idle-timeout', async (t) => {
  const srv = await echoServer(t)
  const ug = await startUgate(t, ['run', ...fwd('127.0.0.1:0', srv.target), '--idle-timeout', '1'])
  const t0 = Date.now()
  const c = await connect(ug.port())
  const info = await within(waitClose(c), 15_000, 'client closed by the idle timeout')
  const elapsed = Date.now() - t0
  t.equal(info.bytes, 0, 'client received nothing')
  t.ok(elapsed >= 900, `not closed before the 1 s idle timeout (${elapsed} ms)`)

  const [conn] = await ug.waitForConns(1)
  t.match(conn!.fields, { listener: 'fwd1', reason: 'idle', up: '0', down: '0' }, 'conn line reason=idle')
  t.ok(Number(conn!.fields.ms) >= 900, `conn ms reflects the idle time (${conn!.fields.ms})`)
  await finish(t, ug, 1)
})
