// Rules on the mesh peer, end to end: Node's http2 as three mesh clients of
// one hbone listener, each with its own certificate (SPIFFE id and key),
// routed by srcIdentity, srcNode and srcTrustDomain — one let through by its
// id, one by its node id, one refused (401) by its trust domain — and a
// SOCKS client of the same gate that no identity rule matches. The gate's
// own node id is in `ctl status`.

import http2 from 'node:http2'
import t from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { mesh, TRUST_DOMAIN } from '../lib/mesh.js'
import { socks5Connect } from '../lib/proxy.js'
import { echoServer, prngBytes, sha256, within } from '../lib/servers.js'
import { finish, runUgate } from '../lib/ugate.js'

const ids = mesh(t)

/** The node id `ugate identity show` prints for a node's certificate. */
function nodeId(node: string): string {
  const r = runUgate(['identity', 'show', '--dir', ids.dir(node)])
  const id = /^node id: ([A-Z2-7]{52})$/m.exec(r.stdout)?.[1]
  if (r.code !== 0 || id === undefined) throw new Error(`identity show ${node}: ${r.stderr.join('\n')}`)
  return id
}

/** One CONNECT as `node`: its status and what came back for `payload`. */
async function connectAs(node: string, port: number, target: string, payload: Buffer) {
  const client = ids.connect(node, port)
  try {
    await within(new Promise((ok) => client.once('remoteSettings', ok)), 10_000, `SETTINGS to ${node}`)
    const s = client.request({ ':method': 'CONNECT', ':authority': target })
    const chunks: Buffer[] = []
    let status = 0
    s.on('response', (h: http2.IncomingHttpHeaders) => (status = Number(h[':status'])))
    s.on('data', (d: Buffer) => chunks.push(d))
    s.on('error', () => {})
    const closed = new Promise<void>((ok) => s.on('close', ok))
    s.end(payload)
    await within(closed, 10_000, `stream of ${node}`)
    return { status, back: Buffer.concat(chunks) }
  } finally {
    await new Promise<void>((ok) => client.close(ok))
  }
}

t.test('two client identities routed differently by rules, a third by its node id', async (t) => {
  const echo = await echoServer(t)
  const byNode = nodeId('carol')
  const ug = await startConfig(
    t,
    proxyConfig([listener('mesh', 'hbone'), listener('socks', 'socks')], {
      rules: [
        { name: 'carol-node', srcNode: [byNode.toLowerCase()], dstPort: [echo.port], action: 'direct' },
        { name: 'alice', srcIdentity: [ids.spiffe('alice')], action: 'direct' },
        { name: 'mesh-rest', srcTrustDomain: [TRUST_DOMAIN], action: 'reject' },
      ],
      admin: { socket: ids.socket('b') },
      ...ids.config('b'),
    }),
  )
  const st = runUgate(['ctl', '--socket', ids.socket('b'), '--json', 'status'])
  t.same(
    JSON.parse(st.stdout).mesh,
    { spiffeId: ids.spiffe('b'), nodeId: nodeId('b') },
    'ctl status: our SPIFFE id and the node id identity show prints',
  )
  const port = ug.port('mesh')
  const payload = prngBytes(3, 256 << 10)

  const alice = await connectAs('alice', port, echo.target, payload)
  t.equal(alice.status, 200, 'alice: 200 (rule srcIdentity)')
  t.equal(sha256(alice.back), sha256(payload), 'alice: 256 KiB echoed exactly')

  const bob = await connectAs('bob', port, echo.target, payload)
  t.equal(bob.status, 401, 'bob: 401 (same trust domain, no rule for his id: rejected by srcTrustDomain)')
  t.equal(bob.back.length, 0, 'bob: nothing relayed')

  const carol = await connectAs('carol', port, echo.target, payload)
  t.equal(carol.status, 200, 'carol: 200 (rule srcNode)')
  t.equal(sha256(carol.back), sha256(payload), 'carol: echoed exactly')

  const lines = await waitConnsOf(ug, 'mesh', 3)
  const of = (who: string) => lines.find((l) => l.fields.identity === ids.spiffe(who))?.fields
  t.match(
    of('alice'),
    { rule: 'alice', action: 'direct', reason: 'eof', node: /^[A-Z2-7]{52}$/ },
    "alice's access line: her rule",
  )
  t.match(of('bob'), { rule: 'mesh-rest', action: 'reject', reason: 'rejected' }, "bob's access line: the reject rule")
  t.match(of('carol'), { rule: 'carol-node', action: 'direct', node: byNode }, 'the access line shows the node id')

  // Not from the mesh: no identity, so no identity rule holds (the default lets it through).
  const s = await socks5Connect(ug.port('socks'), { host: '127.0.0.1', port: echo.port })
  t.equal(s.reply?.[1], 0, 'SOCKS CONNECT succeeded')
  s.reader.sock.end(payload)
  const back = await s.reader.rest()
  t.equal(sha256(back.data), sha256(payload), 'SOCKS: echoed exactly')
  const [socksLine] = await waitConnsOf(ug, 'socks', 1)
  t.match(socksLine!.fields, { rule: 'default', action: 'direct' }, 'the SOCKS client matched no identity rule')
  t.notOk('identity' in socksLine!.fields, 'and has no identity')

  await ug.waitForLines(/ info hbone-closed /, 3)
  await finish(t, ug, 4)
})
