// An `sni` listener: TLS routed by the ClientHello's server name and plain
// HTTP by Host, both to backends chosen by rules (forward:127.0.0.1:PORT).
// Backends record what they receive: it must be exactly what the client
// sent, ClientHello first, also when the hello arrives one byte per TCP
// segment or split into 1-byte TLS records.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Socket } from 'node:net'
import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import {
  CURL_UA,
  TLS_TUNNEL_REASON,
  curl,
  curlHead,
  curlInfo,
  httpOrigin,
  originSummary,
  recordingServer,
} from '../lib/http.js'
import { connectReader } from '../lib/proxy.js'
import { connect, waitClose, within } from '../lib/servers.js'
import { makePki, parseClientHello, reframe, tlsConnectRecording } from '../lib/tls.js'
import { finish, repoRoot } from '../lib/ugate.js'

const fixture = (name: string) => readFileSync(join(repoRoot, 'test', 'fixtures', 'handshakes', name))

/** Write `data` one byte per write (Nagle off), each after the previous write's callback. */
async function sendByteByByte(s: Socket, data: Buffer): Promise<void> {
  s.setNoDelay(true)
  for (let i = 0; i < data.length; i++) {
    await new Promise<void>((res, rej) => s.write(data.subarray(i, i + 1), (e) => (e ? rej(e) : res())))
  }
}

t.test('TLS by SNI and HTTP by Host to backends chosen by rules', async (t) => {
  const pki = makePki(t, ['a.test', 'b.test'])
  const A = await httpOrigin(t, { name: 'A', tls: { key: pki.keyPem, cert: pki.certPem } })
  const B = await httpOrigin(t, { name: 'B', tls: { key: pki.keyPem, cert: pki.certPem } })
  const HA = await httpOrigin(t, { name: 'HA' })
  const HB = await httpOrigin(t, { name: 'HB' })
  const rules = [
    { name: 'a-tls', domain: ['a.test'], proto: ['tls'], action: `forward:127.0.0.1:${A.port}` },
    { name: 'b-tls', domain: ['b.test'], proto: ['tls'], action: `forward:127.0.0.1:${B.port}` },
    { name: 'a-http', domain: ['a.test'], proto: ['http'], action: `forward:127.0.0.1:${HA.port}` },
    { name: 'b-http', domain: ['b.test'], proto: ['http'], action: `forward:127.0.0.1:${HB.port}` },
    { name: 'other', domainSuffix: ['test'], action: 'reject' },
  ]
  const ug = await startConfig(t, proxyConfig([listener('sni', 'sni')], { rules }))
  const port = ug.port('sni')
  let n = 0

  for (const [name, backend, other] of [
    ['a.test', A, B],
    ['b.test', B, A],
  ] as const) {
    const before = backend.conns.length
    const r = await curl([
      '--resolve',
      `${name}:${port}:127.0.0.1`,
      '--cacert',
      pki.caFile,
      '-A',
      CURL_UA,
      `https://${name}:${port}/tls-${name}`,
    ])
    t.equal(r.code, 0, `${name}: curl exit 0 (the backend's certificate verified for ${name})`, curlInfo(r))
    const req = await backend.request(backend.requests.length - 1)
    t.equal(r.stdout.toString(), originSummary(backend.name, req), `${name}: answered by backend ${backend.name}`)
    t.equal(req.rawHeaders[1], `${name}:${port}`, `${name}: Host as curl sent it`)
    t.equal(backend.conns.length, before + 1, `${name}: one connection at backend ${backend.name}`)
    const rec = req.conn.received()
    const hello = parseClientHello(rec)
    t.ok(hello, `${name}: backend's first bytes are a complete ClientHello`)
    t.equal(hello?.sni, name, `${name}: ClientHello SNI`)
    t.equal(rec[0], 0x16, `${name}: first byte is a TLS handshake record`)
    t.equal(
      other.conns.filter((c) => parseClientHello(c.received())?.sni === name).length,
      0,
      `${name}: never sent to backend ${other.name}`,
    )
    const c = (await waitConnsOf(ug, 'sni', ++n))[n - 1]!
    t.match(
      c.fields,
      {
        listener: 'sni',
        dst: `${name}:443`,
        up: String(req.conn.bytes),
        reason: TLS_TUNNEL_REASON,
        proto: 'tls',
        host: name,
        rule: `${name[0]}-tls`,
        action: 'forward',
        via: `127.0.0.1:${backend.port}`,
      },
      `${name}: access line`,
    )
  }

  // A Node TLS client that records its own bytes: the backend got exactly them.
  const before = B.conns.length
  const rt = await tlsConnectRecording(port, { servername: 'b.test', ca: pki.caPem })
  let text = ''
  const response = new Promise<string>((res) => {
    rt.socket.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      const i = text.indexOf('\r\n\r\n')
      const len = /\r\ncontent-length: (\d+)\r\n/i.exec(text)
      if (i >= 0 && len && text.length >= i + 4 + Number(len[1])) res(text)
    })
  })
  rt.socket.write('GET /recorded HTTP/1.1\r\nHost: b.test\r\n\r\n')
  t.match(
    await within(response, 10_000, 'recording TLS client: response'),
    /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nB GET \/recorded 0 /,
    'recording TLS client: answered by B',
  )
  // The client closes first (close_notify, FIN), so every byte it sent is due at B.
  rt.socket.end()
  await within(rt.raw.closed, 10_000, 'recording TLS client: closed')
  const c = (await waitConnsOf(ug, 'sni', ++n))[n - 1]!
  const sent = Buffer.concat(rt.sent)
  const atB = await within(
    B.conns[before]!.ended.then(() => B.conns[before]!.received()),
    10_000,
    'B saw the FIN',
  )
  t.equal(atB.length, sent.length, `backend B got as many bytes as the client sent (${sent.length})`)
  t.ok(atB.equals(sent), 'backend B got exactly the bytes the client sent, ClientHello included')
  const hello = parseClientHello(sent)
  t.ok(
    hello && atB.subarray(0, hello.bytes).equals(sent.subarray(0, hello.bytes)),
    'the ClientHello records are byte-identical',
  )
  t.equal(hello?.sni, 'b.test', 'the recorded ClientHello names b.test')
  t.match(
    c.fields,
    { dst: 'b.test:443', up: String(sent.length), host: 'b.test', rule: 'b-tls', reason: TLS_TUNNEL_REASON },
    'recording client: access line',
  )

  // Plain HTTP by Host, to other backends; the bytes arrive untouched (no proxy rewrite here).
  for (const [name, backend] of [
    ['a.test', HA],
    ['b.test', HB],
  ] as const) {
    const r = await curl(['--resolve', `${name}:${port}:127.0.0.1`, '-A', CURL_UA, `http://${name}:${port}/plain`])
    t.equal(r.code, 0, `http ${name}: curl exit 0`, curlInfo(r))
    const req = await backend.request(0)
    t.equal(r.stdout.toString(), originSummary(backend.name, req), `http ${name}: answered by ${backend.name}`)
    t.equal(
      req.conn.received().toString('latin1'),
      curlHead('GET', '/plain', `${name}:${port}`),
      `http ${name}: exact bytes`,
    )
    const hc = (await waitConnsOf(ug, 'sni', ++n))[n - 1]!
    t.match(
      hc.fields,
      {
        dst: `${name}:80`,
        up: String(req.conn.bytes),
        reason: 'eof',
        proto: 'http',
        host: name,
        rule: `${name[0]}-http`,
        action: 'forward',
        via: `127.0.0.1:${backend.port}`,
      },
      `http ${name}: access line`,
    )
  }

  // A name no forward rule covers is rejected: the client is reset, no backend sees it.
  const rej = await curl(['--resolve', `c.test:${port}:127.0.0.1`, '--cacert', pki.caFile, `https://c.test:${port}/`])
  t.not(rej.code, 0, 'c.test: curl fails', curlInfo(rej))
  const rc = (await waitConnsOf(ug, 'sni', ++n))[n - 1]!
  t.match(
    rc.fields,
    { dst: 'c.test:443', up: '0', down: '0', reason: 'rejected', host: 'c.test', rule: 'other', action: 'reject' },
    'c.test: rejected',
  )

  // No server name at all.
  const s = await connect(port)
  const closed = waitClose(s)
  s.write(fixture('openssl-noservername.bin'))
  const info = await within(closed, 10_000, 'no SNI: closed')
  t.equal(info.bytes, 0, 'no SNI: nothing sent back')
  const nc = (await waitConnsOf(ug, 'sni', ++n))[n - 1]!
  t.match(nc.fields, { dst: '-', reason: 'no-server-name', proto: 'tls' }, 'no SNI: reason=no-server-name')
  t.equal(A.conns.length + B.conns.length, 3, 'backends saw only the routed TLS connections')
  await finish(t, ug, n)
})

t.test('a ClientHello arriving one byte per segment still routes, byte-exact', async (t) => {
  const R = await recordingServer(t)
  const rules = [
    {
      name: 'captures',
      domainSuffix: ['openssl.test', 'chromium.test', 'example.test'],
      action: `forward:${R.target}`,
    },
  ]
  const ug = await startConfig(t, proxyConfig([listener('sni', 'sni')], { rules }))
  const cases: Array<[string, Buffer, string]> = [
    ['openssl-fragmented.bin (3 records)', fixture('openssl-fragmented.bin'), 'frag.openssl.test'],
    ['chromium-tls.bin (1953 bytes)', fixture('chromium-tls.bin'), 'chromium.test'],
    ['curl-tls.bin re-framed into 1-byte records', reframe(fixture('curl-tls.bin'), 1), 'example.test'],
  ]
  let i = 0
  for (const [what, data, sni] of cases) {
    t.equal(parseClientHello(data)?.sni, sni, `${what}: the fixture's SNI is ${sni}`)
    const r = await connectReader(ug.port('sni'))
    await within(sendByteByByte(r.sock, data), 30_000, `${what}: sent byte by byte`)
    const rc = await within(R.conn(i), 10_000, `${what}: backend accepted`)
    const got = await within(rc.waitBytes(data.length), 10_000, `${what}: backend received ${data.length} bytes`)
    t.ok(got.equals(data), `${what}: backend received exactly the ${data.length} bytes sent`, {
      got: got.length,
      firstDiff: [...got].findIndex((b, k) => b !== data[k]),
    })
    t.equal(parseClientHello(got)?.sni, sni, `${what}: recorded bytes start with a ClientHello for ${sni}`)
    // Reply from the backend and close: the relay works both ways.
    rc.socket.write('server-bytes')
    r.sock.end()
    const rest = await within(r.rest(), 10_000, `${what}: client sees the backend's bytes and FIN`)
    t.equal(rest.data.toString(), 'server-bytes', `${what}: backend's bytes reached the client`)
    const c = (await waitConnsOf(ug, 'sni', ++i))[i - 1]!
    t.match(
      c.fields,
      {
        dst: `${sni}:443`,
        up: String(data.length),
        down: '12',
        reason: 'eof',
        proto: 'tls',
        host: sni,
        rule: 'captures',
        action: 'forward',
        via: R.target,
      },
      `${what}: access line`,
    )
  }
  await finish(t, ug, cases.length)
})
