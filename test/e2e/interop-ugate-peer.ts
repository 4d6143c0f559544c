// ugate's HBONE against the Rust ztunnel-like peer (build/ztunnel-peer: h2 +
// rustls + tokio, the libraries ztunnel uses), both directions.
// ugate's hbone upstream → Rust server: exact data (sha256 of the echo, 64
// KiB on each of 100 streams open at once on one pooled connection, 16 MiB
// on one stream), ugate's identity, forwarded / baggage / traceparent as
// the peer received them, 401 for an identity the server does not allow and
// 503 for a target it cannot reach, each a failed SOCKS CONNECT and
// `upstream-refused:STATUS` on the access line.
// Rust client → ugate's hbone listener: exact data on 100 concurrent streams
// (the payload hashed here too) and 16 MiB on one stream, TLS 1.3 + h2 with
// no SNI and ugate's SPIFFE id pinned, 400 (bad authority), 401 (a reject
// rule; a client not among the listener's peers), 503 (dial refused); ugate's
// access lines carry the client's identity and its ztunnel headers.

import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import {
  issueIdentity,
  makeIdentity,
  meshConfig,
  MiB,
  peerPayload,
  runRustClient,
  startRustServer,
} from '../lib/hbone.js'
import { socks5Connect } from '../lib/proxy.js'
import { echoServer, prngBytes, refusedPort, sha256 } from '../lib/servers.js'
import { checkCleanExit, finish, settleFds } from '../lib/ugate.js'

const TD = 'mesh.test'

/** One connection through ugate's SOCKS listener: the reply code, and what came back for `payload`. */
async function viaSocks(port: number, dst: { host: string; port: number }, payload: Buffer) {
  const s = await socks5Connect(port, dst)
  const rep = s.reply?.[1] ?? -1
  if (rep !== 0) {
    s.reader.sock.destroy()
    return { rep, sha: '', bytes: 0 }
  }
  s.reader.sock.end(payload)
  const back = await s.reader.rest()
  return { rep, sha: sha256(back.data), bytes: back.data.length, ended: back.ended }
}

t.test("ugate's hbone upstream → Rust server", async (t) => {
  const ugId = makeIdentity(t, TD, 'ugate')
  const rustId = issueIdentity(t, ugId, TD, 'rust-server')
  const echo = await echoServer(t)
  const rust = await startRustServer(t, { id: rustId, roots: rustId.root, trustDomain: TD })
  const strict = await startRustServer(t, { id: rustId, roots: rustId.root, trustDomain: TD, allow: [rustId.id] })
  const refused = await refusedPort()
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      upstreams: [
        { name: 'rust', type: 'hbone', server: `127.0.0.1:${rust.port}`, identity: rustId.id },
        { name: 'strict', type: 'hbone', server: `127.0.0.1:${strict.port}`, identity: rustId.id },
      ],
      rules: [
        { name: 'strict', dstPort: [String(echo.port + 1)], action: 'upstream:strict' },
        { name: 'mesh', action: 'upstream:rust' },
      ],
      ...meshConfig(ugId, TD),
    }),
  )
  const socks = ug.port('socks')
  const target = { host: '127.0.0.1', port: echo.port }

  // 100 streams open at once (each SOCKS reply means the peer answered 200), then the data.
  const n = 100
  const opened = await Promise.all(Array.from({ length: n }, () => socks5Connect(socks, target)))
  t.equal(opened.filter((s) => s.reply?.[1] === 0).length, n, `${n} CONNECTs answered 200 by the Rust server`)
  const payloads = opened.map((_, i) => prngBytes(300 + i, 64 * 1024))
  const backs = await Promise.all(
    opened.map((s, i) => {
      s.reader.sock.end(payloads[i])
      return s.reader.rest()
    }),
  )
  t.equal(
    backs.filter((b, i) => b.ended && sha256(b.data) === sha256(payloads[i]!)).length,
    n,
    'exact data back on every stream (sha256), half-close passed on',
  )
  const tls = rust.events.filter((e) => e.event === 'tls')
  t.equal(tls.length, 1, 'the 100 streams shared one pooled connection')
  t.match(tls[0], { peer: ugId.id, version: 'TLSv1_3', alpn: 'h2', cipher: /AES_(128|256)_GCM/ }, "ugate's identity")

  const big = prngBytes(77, 16 * MiB)
  const b = await viaSocks(socks, target, big)
  t.same([b.rep, b.bytes, b.sha], [0, big.length, sha256(big)], '16 MiB each way on one stream, exact')

  const streams = rust.events.filter((e) => e.event === 'stream')
  t.equal(streams.filter((e) => e.status === 200 && e.authority === echo.target).length, n + 1, 'all seen by the peer')
  t.ok(
    streams.every((e) => e.method === 'CONNECT' && e.peer === ugId.id),
    'CONNECT, from ugate',
  )
  t.ok(
    streams.every((e) => e.forwarded === 'for="127.0.0.1"'),
    'forwarded: for="<the SOCKS client>"',
  )
  t.ok(
    streams.every((e) => e.baggage === 'k8s.namespace.name=home,service.name=ugate'),
    "baggage: ugate's namespace and service account",
  )
  t.ok(
    streams.every((e) => /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/.test(String(e.traceparent))),
    'traceparent: W3C trace context',
  )
  t.equal(new Set(streams.map((e) => e.traceparent)).size, streams.length, 'a trace context per stream')

  const r503 = await viaSocks(socks, { host: '127.0.0.1', port: refused }, Buffer.alloc(0))
  t.not(r503.rep, 0, 'unreachable target: the SOCKS CONNECT fails')
  await rust.next((e) => e.event === 'stream' && e.status === 503)
  const r401 = await viaSocks(socks, { host: '127.0.0.1', port: echo.port + 1 }, Buffer.alloc(0))
  t.not(r401.rep, 0, 'identity not allowed by the server: the SOCKS CONNECT fails')
  await strict.next((e) => e.event === 'stream' && e.status === 401)
  const lines = await waitConnsOf(ug, 'socks', n + 3)
  t.equal(lines.filter((l) => l.fields.reason === 'eof' && l.fields.via === 'rust').length, n + 1, 'access lines: eof')
  for (const status of [503, 401])
    t.equal(lines.filter((l) => l.fields.reason === `upstream-refused:${status}`).length, 1, `${status} logged`)
  t.equal(echo.accepted, n + 1, 'nothing else was dialed')
  // The pool keeps its two idle connections (to rust and strict) until its idle timeout.
  await settleFds(ug, 2)
  t.equal(ug.fdCount(), ug.baselineFds + 2, 'fds: the baseline and the two pooled connections', { fds: ug.fdList() })
  checkCleanExit(t, ug, await ug.stop())
})

t.test("Rust client → ugate's hbone listener", async (t) => {
  const ugId = makeIdentity(t, TD, 'ugate')
  const cli = issueIdentity(t, ugId, TD, 'rust-client')
  const echo = await echoServer(t)
  const refused = await refusedPort()
  const ug = await startConfig(
    t,
    proxyConfig(
      [listener('mesh', 'hbone'), listener('picky', 'hbone', { peers: ['spiffe://mesh.test/ns/home/sa/someone'] })],
      {
        rules: [{ name: 'deny', dstPort: [String(echo.port + 1)], action: 'reject' }],
        ...meshConfig(ugId, TD),
      },
    ),
  )
  const client = (o: { authority: string; streams?: number; bytes?: number; port?: number }) =>
    runRustClient({
      id: cli,
      roots: cli.root,
      peer: `127.0.0.1:${o.port ?? ug.port('mesh')}`,
      expectSan: ugId.id,
      authority: o.authority,
      streams: o.streams,
      bytes: o.bytes,
    })

  const n = 100
  const size = 64 * 1024
  const r = await client({ authority: echo.target, streams: n, bytes: size })
  t.equal(r.code, 0, 'client exit 0', { stderr: r.stderr, error: r.out.error })
  t.match(r.out, { version: 'TLSv1_3', alpn: 'h2', cipher: /AES_(128|256)_GCM/ }, 'TLS 1.3, h2, AES-GCM')
  t.equal(r.out.ok, n, `${n} concurrent streams: 200 and the echo equal to what was sent`)
  for (const i of [0, 1, 57, n - 1])
    t.equal(r.out.results?.[i]?.sha256, sha256(peerPayload(i, size)), `stream ${i}: exact (hashed here)`)
  const big = await client({ authority: echo.target, bytes: 16 * MiB })
  t.equal(big.out.ok, 1, '16 MiB each way on one stream')
  t.equal(big.out.results?.[0]?.sha256, sha256(peerPayload(0, 16 * MiB)), '16 MiB: exact (hashed here)')

  const lines = await waitConnsOf(ug, 'mesh', n + 1)
  t.equal(
    lines.filter((l) => l.fields.identity === cli.id && l.fields.reason === 'eof' && l.fields.dst === echo.target)
      .length,
    n + 1,
    "every access line carries the client's SPIFFE id",
  )
  const fwd = lines.map((l) => l.fields.forwarded)
  t.ok(
    Array.from({ length: n }, (_, i) => `for="127.0.0.1:${40000 + i}"`).every((f) => fwd.includes(f)),
    "the client's forwarded header of each stream",
  )
  t.ok(
    lines.every((l) =>
      /^k8s\.cluster\.name=interop,k8s\.namespace\.name=home,.*service\.name=ztunnel-peer/.test(l.fields.baggage ?? ''),
    ),
    'its baggage',
  )
  t.ok(
    lines.every((l) => /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/.test(l.fields.traceparent ?? '')),
    'its traceparent',
  )

  const status = async (o: { authority: string; port?: number }) => (await client(o)).out.results?.[0]?.status
  t.equal(await status({ authority: '127.0.0.1:0' }), 400, 'bad authority → 400')
  t.equal(await status({ authority: `127.0.0.1:${echo.port + 1}` }), 401, 'a reject rule → 401')
  t.equal(await status({ authority: echo.target, port: ug.port('picky') }), 401, 'not among the peers → 401')
  t.equal(await status({ authority: `127.0.0.1:${refused}` }), 503, 'dial refused → 503')
  const all = await waitConnsOf(ug, 'mesh', n + 4)
  const reasons = all.slice(n + 1).map((l) => l.fields.reason)
  t.same(reasons.sort(), ['bad-authority', 'connect-error:ECONNREFUSED', 'rejected'].sort(), 'each refusal logged')
  const picky = await waitConnsOf(ug, 'picky', 1)
  t.match(picky[0]!.fields, { reason: 'identity-denied', identity: cli.id }, 'identity-denied, naming the client')
  t.equal(echo.accepted, n + 1, 'nothing else was dialed')
  await finish(t, ug, n + 5)
})
