// 64 MiB each way at the same time through one forward, in splice mode
// and in copy mode: both directions arrive intact (sha256).

import t from 'tap'
import { connect, dataServer, hashIncoming, MiB, sendPrng, within } from '../lib/servers.js'
import { finish, fwd, startUgate } from '../lib/ugate.js'

const SIZE = 64 * MiB

for (const mode of ['splice', 'copy'] as const) {
  t.test(`64 MiB each way at once (${mode})`, async (t) => {
    const srv = await dataServer(t, { bytes: SIZE, seed: 0xd0e5, mode: 'simultaneous' })
    const ug = await startUgate(t, [
      'run',
      ...fwd('127.0.0.1:0', srv.target),
      ...(mode === 'copy' ? ['--no-splice'] : []),
    ])
    const c = await connect(ug.port())
    const cport = c.localPort
    const [clientGot, clientSent] = await within(
      Promise.all([hashIncoming(c), sendPrng(c, 0xc11e, SIZE)]),
      90_000,
      'client transfer',
    )
    const sc = await srv.conn(0)
    const [serverGot, serverSent] = await within(Promise.all([sc.received, sc.sent]), 30_000, 'server transfer')

    t.equal(clientSent.bytes, SIZE, 'client sent 64 MiB')
    t.equal(serverSent.bytes, SIZE, 'server sent 64 MiB')
    t.equal(serverGot.bytes, SIZE, 'server received 64 MiB')
    t.equal(clientGot.bytes, SIZE, 'client received 64 MiB')
    t.equal(serverGot.hash, clientSent.hash, 'upstream sha256 matches')
    t.equal(clientGot.hash, serverSent.hash, 'downstream sha256 matches')

    const [conn] = await ug.waitForConns(1)
    t.match(
      conn!.fields,
      {
        listener: 'fwd1',
        src: `127.0.0.1:${cport}`,
        dst: srv.target,
        up: String(SIZE),
        down: String(SIZE),
        reason: 'eof',
        splice: mode === 'splice' ? '1' : '0',
      },
      'conn line',
    )
    t.ok(Number(conn!.fields.ms) >= 0, 'conn line has ms')
    c.destroy()
    await finish(t, ug, 1)
  })
}
