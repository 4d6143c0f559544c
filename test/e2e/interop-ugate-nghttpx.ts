// nghttpx (nghttp2-proxy: nghttp2 + OpenSSL, in secure-proxy mode with
// client-certificate verification) as a third-party HTTP/2 CONNECT server
// for ugate's hbone upstream: SOCKS clients of ugate reach an echo server
// through it with exact data (sha256): 50 CONNECTs at once on ugate's one
// pooled connection (nghttpx tunnels 8 at a time to its HTTP/1 backend, the
// others wait in its queue) and 8 MiB each way on one; nghttpx's backend got
// a CONNECT for the target of each. Beside it, ugate with a certificate of
// another CA (its own roots still trusting nghttpx's) is refused by
// nghttpx: the SOCKS CONNECT through ugate fails, ugate logs that the peer
// ended the handshake (nghttpx closes at once, so ugate may hit the closed
// socket before it reads the alert) and nghttpx logs the bad certificate.
// nghttpx does not pass END_STREAM on to its HTTP/1 backend as a half-close
// (see interop-nghttpx.ts): the clients stop once the echo is complete and
// reset their connection, which ugate passes on as RST_STREAM (nghttpx then
// frees the backend connection for the next queued CONNECT).

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { issueIdentity, makeIdentity, meshConfig, MiB, type Identity } from '../lib/hbone.js'
import { startNghttpx } from '../lib/nghttpx.js'
import { socks5Connect } from '../lib/proxy.js'
import { echoServer, prngBytes, sha256 } from '../lib/servers.js'
import { checkCleanExit, finish, parseLogLine, settleFds } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const TD = 'mesh.test'

/** Through ugate's SOCKS port to dst: send payload, read as many bytes back, close. */
async function echoThrough(port: number, dst: { host: string; port: number }, payload: Buffer) {
  const s = await socks5Connect(port, dst)
  if (s.reply?.[1] !== 0) {
    s.reader.sock.destroy()
    return { rep: s.reply?.[1] ?? -1, sha: '' }
  }
  s.reader.sock.write(payload)
  const back = await s.reader.read(payload.length)
  // A reset, not a half-close: nghttpx would keep its backend connection open (see above).
  s.reader.sock.resetAndDestroy()
  return { rep: 0, sha: sha256(back) }
}

/** An identity directory with `id`'s certificate and key, trusting `id`'s root and `also`'s. */
function withExtraRoot(t: Parameters<typeof makeIdentity>[0], id: Identity, also: Identity): Identity {
  const dir = tempDir(t, 'ugate-id-two-roots-')
  writeFileSync(join(dir, 'cert-chain.pem'), id.certPem)
  writeFileSync(join(dir, 'key.pem'), id.keyPem, { mode: 0o600 })
  writeFileSync(join(dir, 'root-cert.pem'), id.rootPem + also.rootPem)
  return { ...id, dir, rootPem: id.rootPem + also.rootPem }
}

t.test("nghttpx as the CONNECT server of ugate's hbone upstream", async (t) => {
  const proxyId = makeIdentity(t, TD, 'nghttpx')
  const ugId = issueIdentity(t, proxyId, TD, 'ugate')
  const echo = await echoServer(t)
  const ng = await startNghttpx(t, proxyId)
  const upstream = { name: 'ng', type: 'hbone', server: `127.0.0.1:${ng.port}`, identity: proxyId.id }
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      upstreams: [upstream],
      rules: [{ name: 'mesh', action: 'upstream:ng' }],
      ...meshConfig(ugId, TD),
    }),
  )
  const target = { host: '127.0.0.1', port: echo.port }
  const n = 50
  const payloads = Array.from({ length: n }, (_, i) => prngBytes(500 + i, 256 * 1024))
  const rs = await Promise.all(payloads.map((p) => echoThrough(ug.port('socks'), target, p)))
  t.equal(rs.filter((r) => r.rep === 0).length, n, `${n} CONNECTs through nghttpx answered 200`)
  t.equal(rs.filter((r, i) => r.sha === sha256(payloads[i]!)).length, n, 'exact data back on every tunnel')
  const big = prngBytes(501, 8 * MiB)
  t.same(await echoThrough(ug.port('socks'), target, big), { rep: 0, sha: sha256(big) }, '8 MiB each way, exact')
  t.equal(ng.connects.length, n + 1, "nghttpx's backend got a CONNECT for each")
  t.ok(
    ng.connects.every((c) => c === echo.target),
    'for the target',
  )
  const lines = await waitConnsOf(ug, 'socks', n + 1)
  t.ok(
    lines.every((l) => l.fields.via === 'ng' && l.fields.action === 'upstream'),
    'access lines name the upstream',
  )
  t.equal(ug.events('hbone-closed').length, 0, 'no mesh connection failed')
  t.equal(ng.log().match(/Accepted connection from/g)?.length, 1, 'one pooled connection carried them all')

  // ugate with another CA's certificate: its roots trust nghttpx, nghttpx's do not trust it.
  const stranger = withExtraRoot(t, makeIdentity(t, TD, 'stranger'), proxyId)
  const bad = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      upstreams: [upstream],
      rules: [{ name: 'mesh', action: 'upstream:ng' }],
      ...meshConfig(stranger, TD),
    }),
  )
  const refused = await echoThrough(bad.port('socks'), target, Buffer.from('x'))
  t.not(refused.rep, 0, 'another CA: the SOCKS CONNECT through ugate fails')
  const closed = parseLogLine(await bad.waitForLine(/ info hbone-closed .*detail=/))!
  t.match(
    closed.fields,
    // nghttpx closes at once: ugate may hit the closed socket before it reads the alert,
    // during its handshake or with its first write after it (TLS 1.3: the client is done first).
    {
      reason: /^(tunnel-error|handshake-error)$/,
      detail:
        /^(peer sent alert \d+ \(\w+\)|peer closed the connection during the handshake.*|peer ended the connection after the handshake \((Broken pipe|Connection reset by peer): it probably refused our certificate\))$/,
    },
    'ugate logs why: the peer ended the handshake',
  )
  t.comment(closed.raw)
  const [bl] = await waitConnsOf(bad, 'socks', 1)
  t.equal(bl!.fields.reason, 'upstream-error', 'access line: upstream-error')
  t.match(ng.log(), /certificate verify error:num=7:certificate signature failure/, 'nghttpx logged the refusal')
  t.equal(ng.connects.length, n + 1, 'nothing reached the backend')
  await finish(t, bad, 1)
  // The pool keeps its idle connection to nghttpx.
  await settleFds(ug, 1)
  t.equal(ug.fdCount(), ug.baselineFds + 1, 'fds: the baseline and the pooled connection', { fds: ug.fdList() })
  checkCleanExit(t, ug, await ug.stop())
})
