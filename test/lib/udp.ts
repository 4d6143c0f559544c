// UDP peers for the transparent UDP tests: one Node "agent" process per
// network namespace, driven over stdin/stdout with one JSON object per line.
// The agent binds sockets, sends datagrams, runs echo and "whoami" servers
// and waits for datagrams, answering each request with one line (same
// `seq`). Waits end on the awaited datagrams; a timeout only turns a hang
// into a failure.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestLike } from './ugate.js'
import { inNs } from './netns.js'

const AGENT_SCRIPT = `
import dgram from 'node:dgram'
import readline from 'node:readline'

const plain = (a) => String(a).replace(/^::ffff:/, '')
const socks = new Map()
const inbox = new Map()    // socket id -> received [{from, port, data}]
const waiters = new Map()  // socket id -> () => void
const reply = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
const kind = (addr) => (addr.includes(':') ? 'udp6' : 'udp4')
const bytes = (seed, i, size) => {
  const b = Buffer.alloc(size)
  let x = (Math.imul(seed, 2654435761) + Math.imul(i, 40503) + 1) >>> 0
  for (let k = 0; k < size; k++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; b[k] = x >>> 24 }
  return b
}

function open(id, addr, port, onMessage) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: kind(addr), ipv6Only: kind(addr) === 'udp6', recvBufferSize: 4 << 20 })
    s.once('error', reject)
    s.on('message', (data, r) => onMessage(s, data, r))
    s.bind({ address: addr, port }, () => {
      s.off('error', reject)
      s.on('error', () => {})
      if (id !== undefined) socks.set(id, s)
      resolve(s)
    })
  })
}

function collect(id) {
  return (s, data, r) => {
    const list = inbox.get(id) ?? []
    list.push({ from: plain(r.address), port: r.port, data: data.toString('hex') })
    inbox.set(id, list)
    waiters.get(id)?.()
  }
}

async function handle(m) {
  switch (m.op) {
    case 'bind': {
      const s = await open(m.id, m.addr, m.port ?? 0, collect(m.id))
      return { port: s.address().port }
    }
    case 'echo':  // every datagram back, exactly
      await open(undefined, m.addr, m.port, (s, data, r) => s.send(data, r.port, r.address))
      return {}
    case 'whoami':  // answers with the sender's address as it saw it
      await open(undefined, m.addr, m.port, (s, data, r) => s.send(plain(r.address) + ' ' + r.port, r.port, r.address))
      return {}
    case 'send': {  // one datagram, or several back to back (m.data an array), as a client sends them
      const s = socks.get(m.id)
      const all = Array.isArray(m.data) ? m.data : [m.data]
      await Promise.all(all.map((d) => new Promise((res, rej) => s.send(Buffer.from(d, 'hex'), m.port, m.to, (e) => (e ? rej(e) : res())))))
      return {}
    }
    case 'recv': {  // wait until count datagrams arrived on the socket
      const have = () => (inbox.get(m.id) ?? []).length >= m.count
      if (!have()) await new Promise((res) => waiters.set(m.id, () => have() && res()))
      waiters.delete(m.id)
      const got = inbox.get(m.id).splice(0, m.count)
      return { msgs: got }
    }
    case 'spray': {  // m.flows sockets from m.addr, one datagram each, no waiting for answers
      // Ports basePort.. (outside the ephemeral range): one new flow each, no port reused.
      for (let f = 0; f < m.flows; f++) {
        const s = await open(undefined, m.addr, m.basePort + f, () => {})
        await new Promise((res) => s.send(bytes(m.seed + f, 0, m.size), m.port, m.to, () => res()))
        s.close()
      }
      return {}
    }
    case 'close':
      socks.get(m.id)?.close()
      socks.delete(m.id)
      return {}
    case 'burst': {
      // m.flows sockets from m.addr, m.count datagrams each to m.to:m.port;
      // every echo must come back exactly, from m.to:m.port. m.warm: each
      // flow's first echo comes back before the others leave (the flow is
      // routed: they are relayed in batches, not queued).
      const results = await Promise.all(Array.from({ length: m.flows }, async (_, f) => {
        const want = new Map()
        for (let i = 0; i < m.count; i++) want.set(bytes(m.seed + f, i, m.size).toString('hex'), true)
        let wrongSource = 0
        let unexpected = 0
        const s = await open(undefined, m.addr, 0, () => {})
        s.removeAllListeners('message')
        let first
        const warm = new Promise((res) => { first = res })
        const done = new Promise((res) => {
          s.on('message', (data, r) => {
            if (plain(r.address) !== m.to || r.port !== m.port) wrongSource++
            if (!want.delete(data.toString('hex'))) unexpected++
            first()
            if (want.size === 0) res()
          })
        })
        let i = 0
        if (m.warm) {
          s.send(bytes(m.seed + f, i++, m.size), m.port, m.to)
          await warm
        }
        for (; i < m.count; i++) s.send(bytes(m.seed + f, i, m.size), m.port, m.to)
        await done
        s.close()
        return { wrongSource, unexpected }
      }))
      return {
        flows: results.length,
        wrongSource: results.reduce((a, r) => a + r.wrongSource, 0),
        unexpected: results.reduce((a, r) => a + r.unexpected, 0),
      }
    }
    default:
      throw new Error('unknown op ' + m.op)
  }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  handle(m).then(
    (r) => reply({ seq: m.seq, ok: true, ...r }),
    (e) => reply({ seq: m.seq, ok: false, error: String(e && e.message || e) }),
  )
})
reply({ seq: 0, ok: true, ready: true })
`

export interface Datagram {
  from: string
  port: number
  data: string
}

export interface Agent {
  /** Send one request; resolves with the answer, rejects when the agent says it failed. */
  call(req: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>
  bind(id: string, addr: string, port?: number): Promise<number>
  /** One datagram, or several sent back to back. */
  send(id: string, to: string, port: number, data: Buffer | Buffer[]): Promise<void>
  recv(id: string, count: number, timeoutMs?: number): Promise<Datagram[]>
}

/**
 * Start an agent in namespace ns; it is killed on teardown. `source`: another
 * agent program speaking the same protocol (one JSON request and answer a
 * line, same `seq`; a `{seq: 0, ok: true}` line once ready), e.g. the TCP
 * agent of test/lib/tcp-agent.ts.
 */
export async function startAgent(
  t: TestLike,
  ns: string,
  dir: string,
  name: string,
  source: { file: string; script: string } = { file: 'udp-agent.mjs', script: AGENT_SCRIPT },
): Promise<Agent> {
  const script = join(dir, source.file)
  writeFileSync(script, source.script)
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const proc: ChildProcess = spawn('ip', inNs(ns, [process.execPath, script]).slice(1), {
    stdio: ['pipe', 'pipe', 'pipe'],
    env,
  })
  const closed = new Promise<void>((res) => proc.once('close', () => res()))
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await closed
  })
  let err = ''
  proc.stderr!.setEncoding('utf8')
  proc.stderr!.on('data', (d: string) => (err += d))
  const pending = new Map<number, (o: Record<string, unknown>) => void>()
  let buf = ''
  proc.stdout!.setEncoding('utf8')
  proc.stdout!.on('data', (d: string) => {
    buf += d
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const o = JSON.parse(buf.slice(0, i)) as Record<string, unknown>
      buf = buf.slice(i + 1)
      const seq = o.seq as number
      pending.get(seq)?.(o)
      pending.delete(seq)
    }
  })
  let seq = 0
  const call = (req: Record<string, unknown>, timeoutMs = 20_000, n = ++seq) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name} agent: no answer to ${JSON.stringify(req)} in ${timeoutMs}ms; stderr: ${err}`)),
        timeoutMs,
      )
      pending.set(n, (o) => {
        clearTimeout(timer)
        if (o.ok === true) resolve(o)
        else reject(new Error(`${name} agent: ${JSON.stringify(req)} failed: ${String(o.error)}`))
      })
      if (n !== 0) proc.stdin!.write(JSON.stringify({ ...req, seq: n }) + '\n')
    })
  await call({}, 20_000, 0) // the ready line
  return {
    call: (req, timeoutMs) => call(req, timeoutMs),
    bind: async (id, addr, port = 0) => (await call({ op: 'bind', id, addr, port })).port as number,
    send: async (id, to, port, data) => {
      const hex = Array.isArray(data) ? data.map((d) => d.toString('hex')) : data.toString('hex')
      await call({ op: 'send', id, to, port, data: hex })
    },
    recv: async (id, count, timeoutMs) => (await call({ op: 'recv', id, count }, timeoutMs)).msgs as Datagram[],
  }
}
