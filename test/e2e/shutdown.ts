// Graceful stop on SIGTERM/SIGINT.

import net from 'node:net'
import t from 'tap'
import { collect, connect, echoServer, track, waitClose, within } from '../lib/servers.js'
import { checkCleanExit, checkFds, fwd, parseLogLine, startUgate } from '../lib/ugate.js'

t.test('SIGTERM with a live idle relay and --grace 1 aborts it', async (t) => {
  const srv = await echoServer(t)
  const ug = await startUgate(t, ['run', ...fwd('127.0.0.1:0', srv.target), '--grace', '1'])
  const c = await connect(ug.port())
  const closed = waitClose(c)
  // Make sure the relay is live end to end: one echo round trip.
  await within(
    new Promise<void>((res) => {
      c.once('data', () => res())
      c.write('ping')
    }),
    10_000,
    'echo through the relay',
  )
  t.equal(ug.matching(/ info conn /).length, 0, 'no conn line while the relay is live')

  const t0 = Date.now()
  ug.signal('SIGTERM')
  const info = await within(closed, 15_000, 'client closed by the shutdown')
  const elapsed = Date.now() - t0
  t.ok(elapsed >= 900, `relay kept open for the grace period (${elapsed} ms)`)

  const [conn] = await ug.waitForConns(1)
  t.match(conn!.fields, { listener: 'fwd1', reason: 'shutdown', up: '4', down: '4' }, 'conn line reason=shutdown')
  t.ok(info.bytes === 4, 'client got only the echo')
  const res = await ug.waitExit()
  checkCleanExit(t, ug, res)
  const stats = res.stderr.map(parseLogLine).find((l) => l?.event === 'stats')
  t.equal(stats?.fields.relays, '1', 'stats relays=1')
  const iConn = res.stderr.findIndex((l) => / info conn /.test(l))
  const iStopped = res.stderr.findIndex((l) => / info stopped/.test(l))
  t.ok(iConn >= 0 && iConn < iStopped, 'conn line comes before stopped')
})

t.test('SIGTERM stops accepting but lets a live relay finish within the grace period', async (t) => {
  const srv = await echoServer(t)
  const ug = await startUgate(t, ['run', ...fwd('127.0.0.1:0', srv.target), '--grace', '30'])
  const port = ug.port()
  const c = await connect(port)
  const got = collect(c)
  const echoOnce = (msg: string) =>
    new Promise<void>((res) => {
      let seen = ''
      const onData = (d: Buffer) => {
        seen += d.toString()
        if (seen.endsWith(msg)) {
          c.off('data', onData)
          res()
        }
      }
      c.on('data', onData)
      c.write(msg)
    })
  await within(echoOnce('ping'), 10_000, 'echo before SIGTERM')

  const t0 = Date.now()
  ug.signal('SIGTERM')
  // Not part of the documented contract: ugate logs `stopping` once it has
  // closed its listeners; waiting for it makes the following steps race-free.
  const stopping = await ug.waitForLine(/ info stopping /)
  t.match(parseLogLine(stopping)?.fields, { live: '1' }, 'stopping line counts the live relay')

  const refused = await within(
    new Promise<string>((res) => {
      const s = track(net.connect({ port, host: '127.0.0.1' }))
      s.on('connect', () => {
        s.destroy()
        res('connected')
      })
      s.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? String(e)))
    }),
    10_000,
    'connect attempt after SIGTERM',
  )
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused after SIGTERM')

  await within(echoOnce('pong'), 10_000, 'echo during the grace period')
  t.equal(ug.matching(/ info conn /).length, 0, 'live relay not aborted during the grace period')
  c.end()
  const all = await within(got, 10_000, 'relay finishes after the client EOF')
  t.equal(all.toString(), 'pingpong', 'client got both echoes')

  const res = await ug.waitExit()
  const elapsed = Date.now() - t0
  const [conn] = ug.events('conn')
  t.match(conn?.fields, { reason: 'eof', up: '8', down: '8' }, 'relay ended by EOF, not aborted')
  checkCleanExit(t, ug, res)
  t.ok(elapsed < 15_000, `exited once the relay finished, without waiting for the 30 s grace (${elapsed} ms)`)
})

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${sig} with no connections exits 0 at once`, async (t) => {
    const srv = await echoServer(t)
    const ug = await startUgate(t, ['run', ...fwd('127.0.0.1:0', srv.target), '--grace', '30'])
    checkFds(t, ug)
    const t0 = Date.now()
    ug.signal(sig)
    const res = await ug.waitExit(25_000)
    const elapsed = Date.now() - t0
    checkCleanExit(t, ug, res)
    t.ok(elapsed < 15_000, `exited without waiting for the 30 s grace (${elapsed} ms)`)
    const stats = res.stderr.map(parseLogLine).find((l) => l?.event === 'stats')
    t.equal(stats?.fields.relays, '0', 'stats relays=0')
    t.equal(ug.matching(/ info conn /).length, 0, 'no conn lines')
  })
}
