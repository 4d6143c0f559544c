// Admission before any handshake: a listener's `allow` list (a source
// outside it is reset and logged `denied`), and limits.maxPerSource (a third
// concurrent connection from one address is reset and logged
// `limit-reached`). Neither writes an access line; fds return to baseline.

import net from 'node:net'
import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { curl, curlInfo, httpOrigin } from '../lib/http.js'
import { connect, track, waitClose, within } from '../lib/servers.js'
import { finish, parseLogLine } from '../lib/ugate.js'

/** Connect without waiting for 'connect' (ugate may reset at once); resolves with how it closed. */
function tryConnect(port: number) {
  const s = track(net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }))
  let localPort: number | undefined
  s.once('connect', () => {
    localPort = s.localPort
  })
  return waitClose(s).then((info) => ({ info, localPort }))
}

t.test('allow list: a 127.0.0.1 client on a 10.0.0.0/8 listener is denied', async (t) => {
  const origin = await httpOrigin(t, { name: 'open' })
  const ug = await startConfig(
    t,
    proxyConfig([
      listener('lan-only', 'socks', { allow: ['10.0.0.0/8'] }),
      listener('lan-http', 'http', { allow: ['10.0.0.0/8', '192.168.0.0/16'] }),
      listener('local', 'socks', { allow: ['127.0.0.1/32'] }),
    ]),
  )
  const r = await within(tryConnect(ug.port('lan-only')), 10_000, 'denied client closed')
  t.equal(r.info.bytes, 0, 'denied client got no bytes')
  t.ok(r.info.error?.code === 'ECONNRESET' || r.info.ended, 'denied client was reset (or saw EOF)', {
    error: r.info.error?.code,
  })
  const line = parseLogLine(await ug.waitForLine(/ warn denied /))!
  t.match(
    line.fields,
    { listener: 'lan-only', src: /^127\.0\.0\.1:\d+$/, why: 'source not in allow list' },
    'denied line',
  )
  if (r.localPort !== undefined)
    t.equal(line.fields.src, `127.0.0.1:${r.localPort}`, 'denied line names the client port')

  const h = await curl(['-x', `http://127.0.0.1:${ug.port('lan-http')}`, `http://localhost:${origin.port}/`])
  t.not(h.code, 0, 'curl through the denied http listener fails', curlInfo(h))
  await ug.waitForLines(/ warn denied listener=lan-http /, 1)

  // The allowed listener of the same process still serves.
  const ok = await curl(['--socks5-hostname', `127.0.0.1:${ug.port('local')}`, `http://localhost:${origin.port}/ok`])
  t.equal(ok.code, 0, 'curl through the 127.0.0.1/32 listener works', curlInfo(ok))
  await waitConnsOf(ug, 'local', 1)
  t.equal(
    ug.events('conn').filter((c) => c.fields.listener !== 'local').length,
    0,
    'denied clients write no access line',
  )
  t.equal(origin.requests.length, 1, 'only the allowed request reached the origin')
  await finish(t, ug, 1)
})

t.test('maxPerSource: 2 refuses a third concurrent connection', async (t) => {
  const origin = await httpOrigin(t, { name: 'limited' })
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks'), listener('http', 'http')], {
      // The two held clients stay in their handshake through the whole test: a long timeout.
      limits: { maxPerSource: 2, handshakeTimeout: 60 },
    }),
  )
  // Two clients hold connections open in their handshake; each greeting is
  // answered, so ugate has admitted both before the third one connects.
  const held = [await connect(ug.port('socks')), await connect(ug.port('socks'))]
  const heldClosed = held.map((s) => waitClose(s))
  for (const [i, s] of held.entries()) {
    await within(
      new Promise<void>((res) => {
        s.once('data', () => res())
        s.write(Buffer.from([5, 1, 0]))
      }),
      10_000,
      `client ${i + 1} admitted`,
    )
  }
  // The limit is per source address, over all listeners.
  const third = await within(tryConnect(ug.port('http')), 10_000, 'third connection closed')
  t.equal(third.info.bytes, 0, 'third connection got no bytes')
  t.ok(third.info.error?.code === 'ECONNRESET' || third.info.ended, 'third connection was reset', {
    error: third.info.error?.code,
  })
  const limit = parseLogLine(await ug.waitForLine(/ warn limit-reached /))!
  t.match(limit.fields, { listener: 'http', src: /^127\.0\.0\.1:\d+$/, limit: 'maxPerSource=2' }, 'limit-reached line')
  const viaCurl = await curl(['--socks5-hostname', `127.0.0.1:${ug.port('socks')}`, `http://localhost:${origin.port}/`])
  // Reset right after the accept: curl says 7 (connect) or 97 (proxy handshake), by timing.
  t.ok(
    viaCurl.code === 7 || viaCurl.code === 97,
    'curl is refused too while two connections are open',
    curlInfo(viaCurl),
  )
  await ug.waitForLines(/ warn limit-reached /, 2)
  t.equal(ug.events('conn').length, 0, 'refused connections write no access line')

  // Once one of the two ends, a new connection is admitted again.
  held[0]!.end()
  await within(heldClosed[0]!, 10_000, 'first client closed')
  await waitConnsOf(ug, 'socks', 1)
  const ok = await curl(['--socks5-hostname', `127.0.0.1:${ug.port('socks')}`, `http://localhost:${origin.port}/again`])
  t.equal(ok.code, 0, 'admitted again after a connection ended', curlInfo(ok))
  held[1]!.end()
  await within(heldClosed[1]!, 10_000, 'second client closed')
  const conns = await ug.waitForConns(3)
  t.same(
    conns.map((c) => `${c.fields.listener}:${c.fields.reason}`).sort(),
    ['socks:client-eof', 'socks:client-eof', 'socks:eof'],
    'access lines: the two held clients (client-eof) and the admitted curl (eof)',
  )
  t.equal(ug.matching(/ warn limit-reached /).length, 2, 'exactly two limit-reached lines')
  await finish(t, ug, 3)
})
