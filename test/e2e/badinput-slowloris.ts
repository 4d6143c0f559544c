// Slow clients: with limits.handshakeTimeout = 5 s, a client that sends its
// handshake one byte per second (slowloris), or nothing at all, is closed at
// the timeout with reason=handshake-timeout, on a socks, an http and an sni
// listener; meanwhile the gateway keeps serving other clients at once.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Socket } from 'node:net'
import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { curl, curlInfo, httpOrigin, originSummary } from '../lib/http.js'
import { connect, waitClose, within } from '../lib/servers.js'
import type { CloseInfo } from '../lib/servers.js'
import { finish, repoRoot } from '../lib/ugate.js'

// Long enough that the fast clients (three curl runs) are served inside it on a
// loaded machine under ASan.
const TIMEOUT_S = 5

/**
 * Send `data` one byte per second until the socket closes (or the data runs
 * out); resolves with how the socket closed and when. The 1 s pacing is the
 * client's behaviour under test, not a synchronisation.
 */
async function slowloris(s: Socket, data: Buffer): Promise<{ info: CloseInfo; ms: number; sent: number }> {
  const t0 = Date.now()
  s.setNoDelay(true)
  const closed = waitClose(s)
  let done = false
  void closed.then(() => {
    done = true
  })
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  const tick = () => {
    if (done || s.destroyed || sent >= data.length) return
    s.write(data.subarray(sent, sent + 1))
    sent++
    timer = setTimeout(tick, 1000)
  }
  tick()
  const info = await closed
  clearTimeout(timer)
  return { info, ms: Date.now() - t0, sent }
}

t.test(`slowloris and silent clients are closed at the ${TIMEOUT_S} s handshake timeout`, async (t) => {
  const origin = await httpOrigin(t, { name: 'busy' })
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks'), listener('http', 'http'), listener('sni', 'sni')], {
      limits: { handshakeTimeout: TIMEOUT_S },
      rules: [{ domain: ['fast.test'], action: `forward:127.0.0.1:${origin.port}` }],
    }),
  )
  // Handshakes longer than 5 bytes, so that none completes before the timeout.
  const socks5Greeting = Buffer.from([5, 255, ...Array.from({ length: 255 }, (_, i) => i)])
  const httpHead = Buffer.from(`GET http://127.0.0.1:${origin.port}/slow HTTP/1.1\r\nHost: x\r\n\r\n`)
  const clientHello = readFileSync(join(repoRoot, 'test', 'fixtures', 'handshakes', 'curl-tls.bin'))
  const slow = await Promise.all(
    (
      [
        ['socks', socks5Greeting],
        ['http', httpHead],
        ['sni', clientHello],
      ] as const
    ).flatMap(([lname, data]) => [
      connect(ug.port(lname)).then((s) => ({ lname, kind: 'slowloris', run: slowloris(s, data) })),
      connect(ug.port(lname)).then((s) => ({ lname, kind: 'silent', run: slowloris(s, Buffer.alloc(0)) })),
    ]),
  )

  // Meanwhile: other clients on the same listeners are served at once.
  const sniPort = ug.port('sni')
  const [viaSocks, viaHttp, viaSni] = await Promise.all([
    curl(['--socks5-hostname', `127.0.0.1:${ug.port('socks')}`, `http://localhost:${origin.port}/socks`]),
    curl(['-x', `http://127.0.0.1:${ug.port('http')}`, `http://localhost:${origin.port}/http`]),
    curl(['--resolve', `fast.test:${sniPort}:127.0.0.1`, `http://fast.test:${sniPort}/sni`]),
  ])
  t.equal(viaSocks.code, 0, 'socks client served during the slowloris', curlInfo(viaSocks))
  t.equal(viaHttp.code, 0, 'http client served during the slowloris', curlInfo(viaHttp))
  t.equal(viaSni.code, 0, 'sni client served during the slowloris', curlInfo(viaSni))
  t.equal(
    ug.matching(/ reason=handshake-timeout /).length,
    0,
    'the fast clients were served while every slow client was still waiting',
  )
  const socksReq = origin.requests.find((r) => r.url === '/socks')
  t.equal(viaSocks.stdout.toString(), socksReq && originSummary('busy', socksReq), 'socks answer intact')
  t.equal(origin.requests.length, 3, 'the origin saw the three fast requests')

  const results = await within(Promise.all(slow.map((x) => x.run)), 15_000, 'slow clients closed')
  results.forEach((r, i) => {
    const { lname, kind } = slow[i]!
    t.ok(
      r.ms >= TIMEOUT_S * 1000 - 100,
      `${lname} ${kind}: not closed before the timeout (${r.ms} ms, ${r.sent} bytes sent)`,
    )
    t.ok(r.ms < TIMEOUT_S * 1000 + 3000, `${lname} ${kind}: closed at the timeout (${r.ms} ms)`)
    t.equal(r.info.bytes, 0, `${lname} ${kind}: nothing sent back`)
  })
  for (const lname of ['socks', 'http', 'sni']) {
    const conns = await waitConnsOf(ug, lname, 3)
    const timedOut = conns.filter((c) => c.fields.reason === 'handshake-timeout')
    t.equal(timedOut.length, 2, `${lname}: two conn lines with reason=handshake-timeout`, {
      conns: conns.map((c) => c.raw),
    })
    for (const c of timedOut) {
      t.match(c.fields, { up: '0', down: '0', dst: '-', splice: '0' }, `${lname}: handshake-timeout line`)
      const ms = Number(c.fields.ms)
      t.ok(ms >= TIMEOUT_S * 1000 - 50 && ms < TIMEOUT_S * 1000 + 3000, `${lname}: ms=${ms} is the timeout`)
    }
    t.equal(conns.filter((c) => c.fields.reason === 'eof').length, 1, `${lname}: the fast client ended with eof`)
  }
  await finish(t, ug, 9)
})
