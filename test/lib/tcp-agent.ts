// TCP peers inside network namespaces: the agent protocol of udp.ts (one JSON
// request and answer a line) with TCP operations, for end-to-end tests whose
// clients and servers live in namespaces the test creates (hbone-netns.ts).
// Payloads are random; each side hashes what it sends and what it receives
// (sha256), so the test compares the two ends' digests. Every wait ends on a
// socket event; the agent's timeout only turns a hang into a failure.

import type { TestLike } from './ugate.js'
import { type Agent, startAgent } from './udp.js'

const TCP_AGENT_SCRIPT = `
import net from 'node:net'
import http2 from 'node:http2'
import readline from 'node:readline'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'

const plain = (a) => String(a).replace(/^::ffff:/, '')
const reply = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
const results = new Map()  // port -> finished server connections
const held = new Map()     // port -> sockets a 'hold' server keeps unread
const released = new Set()
let wake = []
const changed = () => { const w = wake; wake = []; for (const f of w) f() }
const until = async (cond) => { while (!cond()) await new Promise((res) => wake.push(res)) }
const record = (port, r) => { results.set(port, [...(results.get(port) ?? []), r]); changed() }

/** n random bytes onto s (respecting back-pressure), hashed; the digest. */
async function sendRandom(s, n) {
  const h = createHash('sha256')
  for (let left = n; left > 0; ) {
    const b = randomBytes(Math.min(left, 1 << 20))
    h.update(b)
    left -= b.length
    if (s.destroyed) throw new Error('socket closed while sending')
    if (!s.write(b)) await new Promise((res) => { s.once('drain', res); s.once('close', res) })
  }
  return h.digest('hex')
}

/** Hash what s delivers until its EOF (rejects on an error before it). */
function hashIn(s) {
  const h = createHash('sha256')
  let n = 0
  s.on('data', (d) => { h.update(d); n += d.length })
  return new Promise((res, rej) => {
    s.once('end', () => res({ sha: h.digest('hex'), n }))
    s.once('error', (e) => rej(e))
  })
}

const ended = (s) => new Promise((res) => (s.closed ? res() : s.once('close', res)))
const errCode = (e) => (e && (e.code || e.message)) || String(e)

function connect(m) {
  return new Promise((res, rej) => {
    const s = net.connect({ host: m.to, port: m.port, allowHalfOpen: true })
    s.once('connect', () => { s.off('error', rej); res(s) })
    s.once('error', rej)
  })
}

const servers = {
  // Sends size bytes and half-closes while it hashes what comes in, both at once.
  bulk: async (s, m) => {
    const [sent, got] = await Promise.all([sendRandom(s, m.size).then((sha) => (s.end(), sha)), hashIn(s)])
    return { sent, got: got.sha, gotBytes: got.n }
  },
  // Reads to the client's EOF, then sends size bytes and half-closes.
  cfirst: async (s, m) => {
    const got = await hashIn(s)
    const sent = await sendRandom(s, m.size)
    s.end()
    return { got: got.sha, gotBytes: got.n, sent }
  },
  // Sends size bytes and half-closes first, then reads to the client's EOF.
  sfirst: async (s, m) => {
    const got = hashIn(s)
    const sent = await sendRandom(s, m.size)
    s.end()
    const g = await got
    return { sent, got: g.sha, gotBytes: g.n }
  },
  // Keeps the connection unread until 'release', then echoes (half-close included).
  hold: async (s, m) => {
    held.set(m.port, [...(held.get(m.port) ?? []), s])
    changed()
    await until(() => released.has(m.port))
    s.pipe(s)
    await ended(s)
    return {}
  },
  // Resets the connection at its first byte.
  reset: async (s) => {
    await new Promise((res) => s.once('data', res))
    s.resetAndDestroy()
    return {}
  },
  // Echoes the first byte, then tells how the connection ended: the client's EOF or an error.
  watch: async (s) => {
    const how = new Promise((res) => {
      s.once('end', () => res('end'))
      s.once('error', (e) => res('error:' + errCode(e)))
    })
    s.once('data', (d) => s.write(d.subarray(0, 1)))
    return { how: await how }
  },
}

const clients = {
  // Sends size bytes and half-closes while it hashes what comes back, both at once.
  bulk: async (m) => {
    const s = await connect(m)
    let early = false  // a byte arrived before our EOF left
    let finished = false
    s.once('finish', () => (finished = true))
    s.once('data', () => (early = !finished))
    const [sent, got] = await Promise.all([sendRandom(s, m.size).then((sha) => (s.end(), sha)), hashIn(s)])
    await ended(s)
    return { sent, got: got.sha, gotBytes: got.n, dataBeforeOurEof: early }
  },
  // Reads to the server's EOF first, then sends size bytes and half-closes.
  sfirst: async (m) => {
    const s = await connect(m)
    const got = await hashIn(s)
    const sent = await sendRandom(s, m.size)
    s.end()
    await ended(s)
    return { got: got.sha, gotBytes: got.n, sent }
  },
  // count connections at once, size bytes each way (to an echo): how many came back exact.
  many: async (m) => {
    const one = async () => {
      const s = await connect(m)
      const [sent, got] = await Promise.all([sendRandom(s, m.size).then((sha) => (s.end(), sha)), hashIn(s)])
      await ended(s)
      return sent === got.sha && got.n === m.size ? 'exact' : 'differs'
    }
    const all = await Promise.all(Array.from({ length: m.count }, () => one().catch((e) => errCode(e))))
    const tally = {}
    for (const r of all) tally[r] = (tally[r] ?? 0) + 1
    return { tally }
  },
  // A mesh client as ztunnel's outbound (Node's http2: TLS 1.3, client certificate from
  // m.dir, no SNI, the peer's SPIFFE id m.expect, ztunnel's windows): count CONNECT
  // streams to m.authority on one connection, size bytes each way (to an echo).
  h2many: async (m) => {
    const read = (f) => readFileSync(m.dir + '/' + f)
    const session = http2.connect('https://' + m.peer, {
      key: read('key.pem'),
      cert: read('cert-chain.pem'),
      ca: read('root-cert.pem'),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: ['h2'],
      servername: '',
      checkServerIdentity: (_host, cert) =>
        String(cert.subjectaltname).split(', ').includes('URI:' + m.expect) ? undefined : new Error('peer is ' + cert.subjectaltname),
      settings: { initialWindowSize: 4 << 20, maxFrameSize: 1 << 20, enablePush: false },
      maxSessionMemory: 256,
    })
    await new Promise((res, rej) => { session.once('remoteSettings', res); session.once('error', rej) })
    session.on('error', () => {})
    session.setLocalWindowSize(16 << 20)
    const one = async () => {
      const st = session.request({ ':method': 'CONNECT', ':authority': m.authority })
      const status = new Promise((res) => st.once('response', (h) => res(h[':status'])))
      const [sent, got] = await Promise.all([sendRandom(st, m.size).then((sha) => (st.end(), sha)), hashIn(st)])
      if ((await status) !== 200) return 'status ' + (await status)
      return sent === got.sha && got.n === m.size ? 'exact' : 'differs'
    }
    const all = await Promise.all(Array.from({ length: m.count }, () => one().catch((e) => errCode(e))))
    const tally = {}
    for (const r of all) tally[r] = (tally[r] ?? 0) + 1
    const maxConcurrentStreams = session.remoteSettings.maxConcurrentStreams
    await new Promise((res) => session.close(res))
    return { tally, maxConcurrentStreams }
  },
  // One byte, then waits for the end: how it came (an error code, or 'end' for an EOF).
  reset: async (m) => {
    const s = await connect(m)
    const how = new Promise((res) => {
      s.once('end', () => res('end'))
      s.once('error', (e) => res('error:' + errCode(e)))
    })
    s.write('x')
    return { how: await how }
  },
  // One byte, its echo, then an RST (SO_LINGER 0).
  abort: async (m) => {
    const s = await connect(m)
    s.on('error', () => {})
    s.write('x')
    await new Promise((res) => s.once('data', res))
    s.resetAndDestroy()
    return {}
  },
}

async function handle(m) {
  switch (m.op) {
    case 'listen': {
      const run = servers[m.mode]
      if (!run) throw new Error('unknown server mode ' + m.mode)
      const srv = net.createServer({ allowHalfOpen: true }, (s) => {
        s.on('error', () => {})
        const peer = plain(s.remoteAddress)
        run(s, m).then(
          (r) => record(m.port, { peer, ...r }),
          (e) => record(m.port, { peer, error: errCode(e) }),
        )
      })
      await new Promise((res, rej) => { srv.once('error', rej); srv.listen(m.port, m.addr, res) })
      return {}
    }
    case 'results':  // the first count finished connections of the server on port
      await until(() => (results.get(m.port) ?? []).length >= m.count)
      return { results: results.get(m.port).slice(0, m.count) }
    case 'held':
      await until(() => (held.get(m.port) ?? []).length >= m.count)
      return {}
    case 'release':
      released.add(m.port)
      changed()
      return {}
    default: {
      const run = clients[m.op]
      if (!run) throw new Error('unknown op ' + m.op)
      return await run(m)
    }
  }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  handle(m).then(
    (r) => reply({ seq: m.seq, ok: true, ...r }),
    (e) => reply({ seq: m.seq, ok: false, error: errCode(e) }),
  )
})
reply({ seq: 0, ok: true, ready: true })
`

/** Start the TCP agent in namespace ns (killed on teardown). */
export function startTcpAgent(t: TestLike, ns: string, dir: string, name: string): Promise<Agent> {
  return startAgent(t, ns, dir, name, { file: 'tcp-agent.mjs', script: TCP_AGENT_SCRIPT })
}
