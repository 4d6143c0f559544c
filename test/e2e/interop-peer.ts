// The Rust ztunnel-like peer (build/ztunnel-peer: h2 + rustls + tokio, the
// libraries ztunnel uses) proven against a stack we did not write, Node's
// http2 (nghttp2), in both roles, before ugate's hbone listener/upstream
// are pointed at it: exact data on 100 concurrent CONNECT streams,
// 400/401/503, ztunnel's headers, PING, TLS 1.2 and foreign trust domains
// refused. Identities come from `ugate identity init`.

import { createHash } from 'node:crypto'
import type http2 from 'node:http2'
import t from 'tap'
import {
  connectNodeHbone,
  makeIdentity,
  peerPayload,
  issueIdentity,
  runRustClient,
  startNodeHboneServer,
  startRustServer,
  ztunnelHeaders,
} from '../lib/hbone.js'
import { echoServer, prngBytes, refusedPort, sha256 } from '../lib/servers.js'

const TD = 'mesh.test'

/** One CONNECT stream from Node: status, and the sha256 of what came back. */
function tunnel(s: http2.ClientHttp2Session, authority: string, payload: Buffer | null, i = 0, method = 'CONNECT') {
  const headers: http2.OutgoingHttpHeaders = { ':method': method, ...ztunnelHeaders(`127.0.0.1:${50000 + i}`, i) }
  if (method === 'CONNECT') headers[':authority'] = authority
  else headers[':path'] = '/'
  const req = s.request(headers, { endStream: false })
  return new Promise<{ status: number; sha: string; bytes: number; rst: number }>((res) => {
    let status = 0
    const h = createHash('sha256')
    let bytes = 0
    req.on('response', (hd) => {
      status = Number(hd[':status'])
      if (status === 200 && payload) req.end(payload)
    })
    req.on('data', (d: Buffer) => (h.update(d), (bytes += d.length)))
    req.on('error', () => {})
    req.on('close', () => res({ status, sha: h.digest('hex'), bytes, rst: req.rstCode ?? 0 }))
  })
}

t.test('Rust server, Node http2 client', async (t) => {
  const srvId = makeIdentity(t, TD, 'rust-server')
  const cliId = issueIdentity(t, srvId, TD, 'node-client')
  const roots = srvId.root
  const echo = await echoServer(t)
  const rust = await startRustServer(t, { id: srvId, roots, trustDomain: TD, pingMs: 200 })
  const s = await connectNodeHbone({ port: rust.port, id: cliId, roots, expectSan: srvId.id })
  t.teardown(() => s.destroy())
  const pinged = new Promise<void>((res) => s.once('ping', () => res()))

  const tls = await rust.next((e) => e.event === 'tls')
  t.equal(tls.peer, cliId.id, 'Rust server saw the client SPIFFE id')
  t.equal(tls.version, 'TLSv1_3', 'TLS 1.3')
  t.match(String(tls.cipher), /AES_(128|256)_GCM/, 'AES-GCM suite')
  t.equal(tls.alpn, 'h2', 'ALPN h2')

  const n = 100
  const size = 128 * 1024
  const payloads = Array.from({ length: n }, (_, i) => prngBytes(i + 1, size))
  const results = await Promise.all(payloads.map((p, i) => tunnel(s, echo.target, p, i)))
  t.equal(results.filter((r) => r.status === 200).length, n, `${n} concurrent streams answered 200`)
  t.equal(
    results.filter((r, i) => r.bytes === size && r.sha === sha256(payloads[i])).length,
    n,
    'exact data back on every stream',
  )
  const big = prngBytes(999, 24 * 1024 * 1024)
  const b = await tunnel(s, echo.target, big)
  t.same([b.status, b.bytes, b.sha], [200, big.length, sha256(big)], '24 MiB on one stream (past both windows), exact')

  const seen = rust.events.filter((e) => e.event === 'stream' && e.status === 200)
  t.equal(seen.length, n + 1, 'Rust server logged every stream')
  const first = seen.find((e) => e.forwarded === 'for="127.0.0.1:50000"')
  t.ok(first, 'forwarded header reached the Rust server')
  t.match(first?.baggage, /^k8s\.cluster\.name=interop,k8s\.namespace\.name=home,/, 'baggage reached it')
  t.match(first?.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'traceparent reached it')

  t.equal((await tunnel(s, echo.target, null, 0, 'GET')).status, 400, 'GET → 400')
  t.equal((await tunnel(s, 'not-an-ip:80', null)).status, 400, 'CONNECT to a host name → 400')
  t.equal((await tunnel(s, `127.0.0.1:${await refusedPort()}`, null)).status, 503, 'dial refused → 503')
  await pinged
  t.pass('Rust server sent PINGs')
})

t.test('Rust server: 401 for an identity not allowed, refusals at the handshake', async (t) => {
  const srvId = makeIdentity(t, TD, 'rust-server')
  const cliId = issueIdentity(t, srvId, TD, 'node-client')
  const other = issueIdentity(t, srvId, 'other.test', 'stranger')
  const expired = issueIdentity(t, srvId, TD, 'old', { expired: true })
  const roots = srvId.root
  const echo = await echoServer(t)
  const rust = await startRustServer(t, {
    id: srvId,
    roots,
    trustDomain: TD,
    allow: ['spiffe://mesh.test/ns/home/sa/someone-else'],
  })
  const s = await connectNodeHbone({ port: rust.port, id: cliId, roots, expectSan: srvId.id })
  t.teardown(() => s.destroy())
  t.equal((await tunnel(s, echo.target, null)).status, 401, 'identity not in the allow list → 401')
  t.equal(echo.accepted, 0, 'nothing dialed')

  await t.rejects(
    connectNodeHbone({ port: rust.port, id: other, roots, expectSan: srvId.id }),
    'foreign trust domain refused',
  )
  const ref = await rust.next((e) => e.event === 'refused' && /trust domain/.test(String(e.error)))
  t.match(
    ref.error,
    /spiffe:\/\/other\.test\/ns\/home\/sa\/stranger is not in trust domain mesh\.test/,
    'the refusal names the identity',
  )
  await t.rejects(
    connectNodeHbone({ port: rust.port, id: expired, roots, expectSan: srvId.id }),
    'expired client certificate refused',
  )
  await rust.next((e) => e.event === 'refused' && /expired/i.test(String(e.error)))
  await t.rejects(
    connectNodeHbone({ port: rust.port, id: cliId, roots, expectSan: srvId.id, maxVersion: 'TLSv1.2' }),
    'TLS 1.2 client refused',
  )
  await t.rejects(
    connectNodeHbone({ port: rust.port, id: cliId, roots, expectSan: 'spiffe://mesh.test/ns/home/sa/not-it' }),
    'Node client refuses the Rust server when the pinned SAN differs',
  )
})

t.test('Rust client, Node http2 ztunnel-like server', async (t) => {
  const srvId = makeIdentity(t, TD, 'node-server')
  const cliId = issueIdentity(t, srvId, TD, 'rust-client')
  const roots = srvId.root
  const echo = await echoServer(t)
  const node = await startNodeHboneServer(t, { id: srvId, roots, trustDomain: TD })
  const peer = `127.0.0.1:${node.port}`
  const n = 100
  const size = 64 * 1024
  const r = await runRustClient({
    id: cliId,
    roots,
    peer,
    expectSan: srvId.id,
    authority: echo.target,
    streams: n,
    bytes: size,
  })
  t.equal(r.code, 0, 'client exit 0', { stderr: r.stderr })
  t.equal(r.out.version, 'TLSv1_3', 'TLS 1.3', { first: r.out.results?.[0] })
  t.equal(r.out.alpn, 'h2')
  t.equal(r.out.ok, n, `${n} concurrent streams: 200 and the echo equal to what was sent`)
  // Independent of the client's own comparison: hash its payload here.
  for (const i of [0, 1, n - 1]) t.equal(r.out.results?.[i]?.sha256, sha256(peerPayload(i, size)), `stream ${i} exact`)
  t.same(node.sni, [false], 'one connection, no SNI')
  t.equal(node.streams.length, n, 'Node saw every stream')
  const st = node.streams[0]
  t.equal(st.peer, cliId.id, 'Node saw the Rust client SPIFFE id')
  t.match(
    st.baggage,
    /^k8s\.cluster\.name=[^,]+,k8s\.namespace\.name=[^,]+,k8s\.deployment\.name=[^,]+,service\.name=[^,]+,service\.version=/,
  )
  t.match(st.forwarded, /^for="127\.0\.0\.1:\d+"$/)
  t.match(st.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
  t.equal(new Set(node.streams.map((s) => s.traceparent)).size, n, 'a span id per stream')

  const status = async (authority: string) =>
    (await runRustClient({ id: cliId, roots, peer, expectSan: srvId.id, authority })).out.results?.[0]?.status
  t.equal(await status(`127.0.0.1:${await refusedPort()}`), 503, 'dial refused → 503')
  t.equal(await status('backend.example:80'), 400, 'host name authority → 400')

  const strict = await startNodeHboneServer(t, { id: srvId, roots, trustDomain: TD, allow: [srvId.id] })
  const denied = await runRustClient({
    id: cliId,
    roots,
    peer: `127.0.0.1:${strict.port}`,
    expectSan: srvId.id,
    authority: echo.target,
  })
  t.equal(denied.out.results?.[0]?.status, 401, 'identity not allowed → 401')

  const pin = await runRustClient({
    id: cliId,
    roots,
    peer,
    expectSan: 'spiffe://mesh.test/ns/home/sa/not-it',
    authority: echo.target,
  })
  t.equal(pin.code, 2, 'pinned SAN mismatch: exit 2')
  t.match(pin.out.error, /is not spiffe:\/\/mesh\.test\/ns\/home\/sa\/not-it/, 'the error names the expected identity')

  const other = issueIdentity(t, srvId, 'other.test', 'stranger')
  const f = await runRustClient({ id: other, roots, peer, expectSan: srvId.id, authority: echo.target })
  t.not(f.out.ok, 1, 'a client from another trust domain gets no tunnel')
  t.same(node.refused, [other.id], 'Node server refused it by trust domain')
})
