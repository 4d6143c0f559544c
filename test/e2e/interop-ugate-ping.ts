// A peer that never answers PING: ugate's hbone upstream declares its
// pooled connection dead after `pingTimeout` (here 1 s, PINGs every 0.5 s:
// the upstream's per-peer options), logs `hbone-closed … reason=ping-timeout`,
// resets the stream it carried (its SOCKS client gets a reset, not a FIN),
// and the next stream goes on a new connection. The peer is an HTTP/2 server written in the test with its
// frames built by hand (test/lib/hbone.ts: startHandH2Server) so that it can
// leave PINGs unanswered. Positive control beside it: the same server
// answering PINGs keeps its one connection across several PING rounds, and
// streams go on it (its timeout 3 s). The same on a public gate: an hbone listener with
// `pingInterval` / `pingTimeout` drops a reverse tunnel whose gate leaves
// its PINGs unanswered, and keeps one that answers.

import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { connectHandReverse, issueIdentity, makeIdentity, meshConfig, startHandH2Server } from '../lib/hbone.js'
import { socks5Connect } from '../lib/proxy.js'
import { prngBytes, sha256 } from '../lib/servers.js'
import { checkCleanExit, finish, parseLogLine, settleFds } from '../lib/ugate.js'

const TD = 'mesh.test'

t.test('a peer that never answers PING is replaced; one that answers is kept', async (t) => {
  const ugId = makeIdentity(t, TD, 'ugate')
  const peerId = issueIdentity(t, ugId, TD, 'peer')
  const silent = await startHandH2Server(t, { id: peerId, roots: peerId.root, ackPing: false })
  const answering = await startHandH2Server(t, { id: peerId, roots: peerId.root, ackPing: true })
  const ping = { pingInterval: 0.5, pingTimeout: 1 }
  // The control's timeout is 3 s: its PINGs are answered by this test's own
  // process, which a loaded machine may hold up for over a second.
  const controlPing = { pingInterval: 0.5, pingTimeout: 3 }
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      upstreams: [
        { name: 'silent', type: 'hbone', server: `127.0.0.1:${silent.port}`, ...ping },
        { name: 'answering', type: 'hbone', server: `127.0.0.1:${answering.port}`, ...controlPing },
      ],
      rules: [
        { name: 'silent', dstPort: ['1'], action: 'upstream:silent' },
        { name: 'answering', dstPort: ['2'], action: 'upstream:answering' },
      ],
      ...meshConfig(ugId, TD),
    }),
  )
  /** A stream through upstream `port` (1 silent, 2 answering): echoes `data`, stays open. */
  const open = async (port: number, seed: number) => {
    const s = await socks5Connect(ug.port('socks'), { host: '10.0.0.1', port })
    t.equal(s.reply?.[1], 0, `CONNECT through ${port === 1 ? 'the silent' : 'the answering'} peer: 200`)
    const data = prngBytes(seed, 32 * 1024)
    s.reader.sock.write(data)
    t.equal(sha256(await s.reader.read(data.length)), sha256(data), 'its echo, exact')
    return s
  }

  // Control: PINGs answered, the connection stays (eight rounds outlast its 3 s timeout).
  const a1 = await open(2, 1)
  await answering.pinged(8)
  const a2 = await open(2, 2)
  t.equal(answering.connections, 1, 'control: both streams on the one connection, kept across 8 PINGs')

  // The silent peer: its connection dies with the stream on it.
  const s1 = await open(1, 3)
  const ended = s1.reader.rest()
  const line = parseLogLine(
    await ug.waitForLine(new RegExp(` info hbone-closed .*peer=127\\.0\\.0\\.1:${silent.port} .*reason=ping-timeout`)),
  )!
  t.match(line.fields, { reason: 'ping-timeout', streams: '1' }, 'ugate logs the dead connection: ping-timeout')
  t.ok(silent.pings >= 1, `the silent peer got PINGs (${silent.pings}) and answered none`)
  const how = await ended
  t.equal(how.error?.code, 'ECONNRESET', 'the stream it carried was reset, and so was its SOCKS client')
  t.equal(how.ended, false, 'not a FIN: nothing passes for a clean end')
  const s2 = await open(1, 4)
  t.equal(silent.connections, 2, 'the next stream went on a new connection')

  t.equal(answering.connections, 1, 'control: still the one connection')
  t.notOk(
    ug.lines.some((l) => l.includes(`peer=127.0.0.1:${answering.port}`) && / hbone-closed /.test(l)),
    'control: no hbone-closed for it',
  )
  for (const s of [a1, a2, s2]) s.reader.sock.end()
  const conns = await waitConnsOf(ug, 'socks', 4)
  t.equal(
    conns.filter((l) => l.fields.reason === 'server-error:ECONNRESET').length,
    1,
    'its access line: server-error:ECONNRESET',
  )
  // The two live pooled connections stay (until their idle timeout).
  await settleFds(ug, 2)
  t.equal(ug.fdCount(), ug.baselineFds + 2, 'fds: the baseline and the two pooled connections', { fds: ug.fdList() })
  checkCleanExit(t, ug, await ug.stop())
})

t.test(
  "an hbone listener's keep-alive on reverse tunnels: a silent gate is dropped, one that answers is kept",
  async (t) => {
    const ugId = makeIdentity(t, TD, 'ugate')
    const silentId = issueIdentity(t, ugId, TD, 'silent')
    const answeringId = issueIdentity(t, ugId, TD, 'answering')
    const ug = await startConfig(t, {
      listeners: [
        // 3 s: the gates' PINGs are answered by this test's own process, which a
        // loaded machine may hold up for over a second.
        listener('hb', 'hbone', { reverse: [silentId.id, answeringId.id], pingInterval: 0.5, pingTimeout: 3 }),
      ],
      ...meshConfig(ugId, TD),
    })
    const dial = (id: typeof ugId, ackPing: boolean) =>
      connectHandReverse({ port: ug.port('hb'), id, roots: ugId.root, ackPing })
    const answering = await dial(answeringId, true)
    const silent = await dial(silentId, false)
    const port = (c: typeof silent) => c.sock.localPort
    const line = parseLogLine(
      await ug.waitForLine(
        new RegExp(` info hbone-closed .*peer=127\\.0\\.0\\.1:${port(silent)} .*reason=ping-timeout`),
      ),
    )!
    t.match(line.fields, { reason: 'ping-timeout', streams: '0' }, 'ugate logs the silent gate: ping-timeout')
    await ug.waitForLine(new RegExp(` info hbone-reverse-gone identity=${silentId.id} .*reason=ping-timeout`))
    await silent.closed
    t.ok(silent.pings >= 1, `the silent gate got PINGs (${silent.pings}) and answered none`)
    // Eight more rounds outlast the 3 s timeout.
    await answering.pinged(silent.pings + 8)
    t.notOk(answering.sock.closed, 'control: the answering gate is still connected')
    t.notOk(
      ug.lines.some((l) => l.includes(`peer=127.0.0.1:${port(answering)}`) && / hbone-closed /.test(l)),
      'control: no hbone-closed for it',
    )
    answering.sock.end()
    await answering.closed
    await ug.waitForLine(new RegExp(` info hbone-reverse-gone identity=${answeringId.id} `))
    await finish(t, ug, 0)
  },
)
