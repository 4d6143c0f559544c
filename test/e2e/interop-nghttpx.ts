// nghttpx (nghttp2-proxy) as a third-party HTTP/2 CONNECT server in
// secure-proxy mode with client-certificate verification, proven with Node's
// http2 and the Rust peer as clients, so that ugate's hbone upstream only has
// to be pointed at it: tunnels with exact data for a client with a mesh
// certificate, refusal without one or with one from another CA.
// nghttpx does not pass a client's END_STREAM on to its HTTP/1 backend as a
// half-close (seen with 1.52), so the clients here stop once the echo is
// complete instead of waiting for the server's END_STREAM.

import { createHash } from 'node:crypto'
import type http2 from 'node:http2'
import t from 'tap'
import { connectNodeHbone, issueIdentity, makeIdentity, runRustClient, ztunnelHeaders } from '../lib/hbone.js'
import { startNghttpx } from '../lib/nghttpx.js'
import { echoServer, prngBytes, sha256 } from '../lib/servers.js'

const TD = 'mesh.test'

function tunnel(s: http2.ClientHttp2Session, authority: string, payload: Buffer, i: number) {
  const req = s.request({
    ':method': 'CONNECT',
    ':authority': authority,
    ...ztunnelHeaders(`127.0.0.1:${40000 + i}`, i),
  })
  return new Promise<{ status: number; sha: string; bytes: number }>((res) => {
    let status = 0
    let bytes = 0
    const h = createHash('sha256')
    req.on('response', (hd) => {
      status = Number(hd[':status'])
      req.end(payload)
    })
    req.on('data', (d: Buffer) => {
      h.update(d)
      bytes += d.length
      if (bytes >= payload.length) req.close()
    })
    req.on('error', () => {})
    req.on('close', () => res({ status, sha: h.digest('hex'), bytes }))
  })
}

t.test('nghttpx secure proxy with client certificates', async (t) => {
  const proxyId = makeIdentity(t, TD, 'nghttpx')
  const cliId = issueIdentity(t, proxyId, TD, 'node-client')
  const echo = await echoServer(t)
  const ng = await startNghttpx(t, proxyId)

  const s = await connectNodeHbone({ port: ng.port, id: cliId, roots: proxyId.root, expectSan: proxyId.id })
  t.teardown(() => s.destroy())
  const n = 20
  const payloads = Array.from({ length: n }, (_, i) => prngBytes(100 + i, 256 * 1024))
  const rs = await Promise.all(payloads.map((p, i) => tunnel(s, echo.target, p, i)))
  t.equal(rs.filter((r) => r.status === 200).length, n, `${n} CONNECT streams through nghttpx answered 200`)
  t.equal(rs.filter((r, i) => r.sha === sha256(payloads[i])).length, n, 'exact data back on every stream')
  t.ok(
    ng.connects.every((c) => c === echo.target) && ng.connects.length === n,
    'the backend proxy got CONNECT for the target',
  )

  const rust = await runRustClient({
    id: cliId,
    roots: proxyId.root,
    peer: `127.0.0.1:${ng.port}`,
    expectSan: proxyId.id,
    authority: echo.target,
    streams: 100,
    bytes: 64 * 1024,
    untilEchoed: true,
  })
  t.equal(rust.out.ok, 100, 'the Rust peer: 100 concurrent tunnels through nghttpx, exact', { stderr: rust.stderr })

  await t.rejects(
    connectNodeHbone({ port: ng.port, id: cliId, roots: proxyId.root, expectSan: proxyId.id, anonymous: true }),
    'a client without certificate is refused',
  )
  const stranger = makeIdentity(t, TD, 'stranger') // its own CA, unknown to nghttpx
  await t.rejects(
    connectNodeHbone({ port: ng.port, id: stranger, roots: proxyId.root, expectSan: proxyId.id }),
    'a certificate from another CA is refused',
  )
  t.match(
    ng.log(),
    /client certificate|certificate verify|alert|peer did not return a certificate/i,
    'nghttpx logged the refusal',
  )
})
