// The hbone upstream's trustDomain: what the peer must present, in place of
// the mesh section's. ugate (mesh trust domain td.test) dials Node's http2
// as a ztunnel-like server whose id is in other.test (same CA): accepted
// through an upstream with trustDomain other.test, refused through one
// without (the mesh's td.test) and through one with other.test towards a
// td.test server (each refusal next to a twin that differs only in
// trustDomain and goes through).

import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { mesh } from '../lib/mesh.js'
import { socks5Connect } from '../lib/proxy.js'
import { prngBytes, sha256 } from '../lib/servers.js'
import { finish } from '../lib/ugate.js'

const ids = mesh(t, { x: 'other.test' })

t.test('an hbone upstream trusts the trust domain it names', async (t) => {
  const echo = (stream: import('node:http2').ServerHttp2Stream) => {
    stream.respond({ ':status': 200 })
    stream.pipe(stream)
  }
  const other = ids.server('x', echo)
  const otherPort = await other.listen()
  const same = ids.server('y', echo)
  const samePort = await same.listen()
  const ug = await startConfig(
    t,
    proxyConfig([listener('socks', 'socks')], {
      upstreams: [
        { name: 'other', type: 'hbone', server: `127.0.0.1:${otherPort}`, trustDomain: 'other.test' },
        { name: 'mesh-td', type: 'hbone', server: `127.0.0.1:${otherPort}` },
        { name: 'wrong', type: 'hbone', server: `127.0.0.1:${samePort}`, trustDomain: 'other.test' },
        { name: 'same', type: 'hbone', server: `127.0.0.1:${samePort}` },
      ],
      rules: [
        { dstPort: [1], action: 'upstream:other' },
        { dstPort: [2], action: 'upstream:mesh-td' },
        { dstPort: [3], action: 'upstream:wrong' },
        { dstPort: [4], action: 'upstream:same' },
      ],
      ...ids.config('a'),
    }),
  )
  t.equal(ids.spiffe('x'), 'spiffe://other.test/ns/test/sa/x', 'the server is in other.test')

  const payload = prngBytes(9, 1 << 20)
  const s = await socks5Connect(ug.port('socks'), { host: '10.9.9.9', port: 1 })
  t.equal(s.reply?.[1], 0, 'trustDomain other.test: the other.test server is accepted')
  s.reader.sock.end(payload)
  const back = await s.reader.rest()
  t.equal(sha256(back.data), sha256(payload), '1 MiB each way, exact')

  const viaMesh = await socks5Connect(ug.port('socks'), { host: '10.9.9.9', port: 2 })
  t.not(viaMesh.reply?.[1], 0, "no trustDomain: the mesh's td.test applies, the other.test server is refused")
  const wrong = await socks5Connect(ug.port('socks'), { host: '10.9.9.9', port: 3 })
  t.not(wrong.reply?.[1], 0, 'trustDomain other.test: a td.test server is refused')

  const control = await socks5Connect(ug.port('socks'), { host: '10.9.9.9', port: 4 })
  t.equal(control.reply?.[1], 0, "no trustDomain: the td.test server is accepted (the mesh's domain)")
  control.reader.sock.end('x')
  t.equal((await control.reader.rest()).data.toString(), 'x', 'and echoes')

  const lines = await waitConnsOf(ug, 'socks', 4)
  const via = (name: string) => lines.find((l) => l.fields.via === name)?.fields
  t.match(via('other'), { reason: 'eof', action: 'upstream' }, 'other: relayed')
  t.match(via('mesh-td'), { reason: 'upstream-error' }, 'mesh-td: the handshake failed')
  t.match(via('wrong'), { reason: 'upstream-error' }, 'wrong: the handshake failed')
  // Each refusal has a twin that differs only in trustDomain and goes through:
  // the handshake is what failed (the id check's words: test/e2e/tls.ts).
  t.equal(
    ug.lines.filter((l) => / info hbone-closed .*reason=handshake-error /.test(l)).length,
    2,
    'two tunnels ended in their handshake',
  )
  other.goaway()
  same.goaway()
  await ug.waitForLines(/ info hbone-closed .*reason=goaway/, 2)
  await finish(t, ug, 4)
})
