// Half-close: the client sends, then shuts its write side; the server
// replies with 1 MiB only after it saw EOF, then closes. The client must
// receive the whole reply. Also for a short exchange in splice mode, which
// the relay copies (no read is big enough to switch it to splice).

import t from 'tap'
import { connect, dataServer, hashIncoming, KiB, MiB, sendPrng, within } from '../lib/servers.js'
import { finish, fwd, startUgate } from '../lib/ugate.js'

const cases = [
  { mode: 'splice', spliced: '1', REQUEST: 300 * KiB + 7, REPLY: 1 * MiB },
  { mode: 'copy', spliced: '0', REQUEST: 300 * KiB + 7, REPLY: 1 * MiB },
  { mode: 'splice', spliced: '0', REQUEST: 211, REPLY: 1500 },
] as const

for (const { mode, spliced, REQUEST, REPLY } of cases) {
  t.test(`reply after client EOF (${mode}, ${REQUEST} + ${REPLY} bytes)`, async (t) => {
    const srv = await dataServer(t, { bytes: REPLY, seed: 0x4a1f, mode: 'after-eof' })
    const ug = await startUgate(t, [
      'run',
      ...fwd('127.0.0.1:0', srv.target),
      ...(mode === 'copy' ? ['--no-splice'] : []),
    ])
    const c = await connect(ug.port())
    const got = hashIncoming(c)
    // sendPrng ends (shuts down the write side) after the last byte
    const sent = await within(sendPrng(c, 0x5e4d, REQUEST), 30_000, 'client send + end')
    const sc = await srv.conn(0)
    const serverGot = await within(sc.received, 30_000, 'server sees the request and EOF')
    t.equal(serverGot.bytes, REQUEST, 'server got the whole request before EOF')
    t.equal(serverGot.hash, sent.hash, 'request sha256 matches')

    const serverSent = await within(sc.sent, 30_000, 'server reply')
    const clientGot = await within(got, 30_000, 'client receives the reply and EOF')
    t.equal(clientGot.bytes, REPLY, 'client received the whole reply after its own EOF')
    t.equal(clientGot.hash, serverSent.hash, 'reply sha256 matches')

    const [conn] = await ug.waitForConns(1)
    t.match(
      conn!.fields,
      {
        listener: 'fwd1',
        up: String(REQUEST),
        down: String(REPLY),
        reason: 'eof',
        splice: spliced,
      },
      'conn line',
    )
    c.destroy()
    await finish(t, ug, 1)
  })
}
