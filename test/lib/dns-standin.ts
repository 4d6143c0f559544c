// A small authoritative DNS server for the DNS tests, written here (Node
// dgram + net, its own encoder: nothing shared with ugate's codec): UDP and
// TCP on one port, in this process's network or inside a namespace. It
// answers A/AAAA for the names of its zone (TTL 300), NXDOMAIN with a SOA
// (minimum 30) for other names, and for BIG_NAME 40 A records: too large
// for 512 bytes, so over UDP it answers TC=1 with no records (the client
// must retry over TCP). Every query it receives is printed as a JSON line
// {name, type, proto, from, conn}, which the tests count. With `tls` it also
// serves DNS over TLS (RFC 7858: TCP's framing in node:tls) on a port of its own.
// Names in `silent` are seen (printed) and never answered: a name server that
// does not respond, for the timeouts of the clients that ask it.

import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { inNs } from './netns.js'
import type { TestLike } from './ugate.js'

export const BIG_NAME = 'big.example.test'
export const ZONE_TTL = 300

export interface Zone {
  [name: string]: { A?: string[]; AAAA?: string[] }
}

export interface SeenQuery {
  name: string
  type: number
  proto: 'udp' | 'tcp' | 'tls'
  from: string
  /** tcp and tls: the client's port, one per connection. */
  conn?: number
}

export interface DnsStandinTls {
  certPem: string
  keyPem: string
  /** Highest TLS version offered (default TLSv1.3). */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3'
  /** The first TLS query for this name closes its connection unanswered (a server's idle close). */
  closeOnce?: string
}

export interface DnsStandin {
  port: number
  /** DNS over TLS (opts.tls), else 0. */
  tlsPort: number
  queries: SeenQuery[]
  /** Queries for `name` seen so far. */
  seen(name: string): SeenQuery[]
  /** Resolves once `count` queries for `name` were seen. */
  waitFor(name: string, count: number): Promise<SeenQuery[]>
  stop(): Promise<void>
}

const SCRIPT = `
import dgram from 'node:dgram'
import net from 'node:net'
import tls from 'node:tls'
const [host, portText, zoneText, big, extraText] = process.argv.slice(2)
const zone = JSON.parse(zoneText)
const extra = JSON.parse(extraText)
const tlsOpts = extra.tls ?? null
const silent = new Set(extra.silent)
const TTL = ${ZONE_TTL}
const u16 = (v) => [(v >> 8) & 255, v & 255]
const u32 = (v) => [...u16(Math.floor(v / 65536)), ...u16(v & 65535)]
const name = (s) => [...s.split('.').filter(Boolean).flatMap((l) => [l.length, ...Buffer.from(l)]), 0]
const v4 = (a) => a.split('.').map(Number)
function v6(a) {
  const [h, t] = a.split('::')
  const head = h ? h.split(':') : []
  const tail = t !== undefined && t ? t.split(':') : []
  const groups = [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail]
  return groups.flatMap((g) => u16(parseInt(g, 16)))
}
function parse(buf) {
  if (buf.length < 12) return null
  let off = 12
  const labels = []
  while (off < buf.length && buf[off] !== 0) {
    labels.push(buf.subarray(off + 1, off + 1 + buf[off]).toString('latin1'))
    off += 1 + buf[off]
  }
  if (off + 5 > buf.length) return null
  return { id: buf.readUInt16BE(0), rd: buf[2] & 1, name: labels.join('.').toLowerCase(), type: buf.readUInt16BE(off + 1), qEnd: off + 5 }
}
function reply(buf, q, tcp) {
  const question = [...buf.subarray(12, q.qEnd)]
  const rr = (type, data) => [0xc0, 12, ...u16(type), ...u16(1), ...u32(TTL), ...u16(data.length), ...data]
  let answers = []
  let authority = []
  let rcode = 0
  let tc = 0
  if (q.name === big) {
    if (q.type === 1) answers = Array.from({ length: 40 }, (_, i) => rr(1, [10, 9, 8, i + 1]))
    if (!tcp) { answers = []; tc = 1 }
  } else if (zone[q.name]) {
    const e = zone[q.name]
    if (q.type === 1) answers = (e.A || []).map((a) => rr(1, v4(a)))
    if (q.type === 28) answers = (e.AAAA || []).map((a) => rr(28, v6(a)))
  } else {
    rcode = 3
  }
  if (answers.length === 0 && !tc) {
    const soa = [...name('ns.test'), ...name('admin.test'), ...u32(1), ...u32(3600), ...u32(600), ...u32(86400), ...u32(30)]
    authority = [[...name('test'), ...u16(6), ...u16(1), ...u32(TTL), ...u16(soa.length), ...soa]]
  }
  const head = [...u16(q.id), 0x84 | (tc << 1) | q.rd, rcode, ...u16(1), ...u16(answers.length), ...u16(authority.length), ...u16(0)]
  return Buffer.from([...head, ...question, ...answers.flat(), ...authority.flat()])
}
const log = (q, proto, from, conn) => process.stdout.write(JSON.stringify({ name: q.name, type: q.type, proto, from, conn }) + '\\n')
const udpSocket = () => {
  const udp = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false })
  udp.on('message', (msg, rinfo) => {
    const q = parse(msg)
    if (!q) return
    log(q, 'udp', rinfo.address)
    if (silent.has(q.name)) return
    udp.send(reply(msg, q, false), rinfo.port, rinfo.address)
  })
  return udp
}
const closedOnce = new Set()
// Length-prefixed messages on a stream (RFC 1035 4.2.2), over TCP or TLS.
const serveStream = (s, proto) => {
  let buf = Buffer.alloc(0)
  s.on('error', () => {})
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d])
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
      buf = buf.subarray(2 + msg.length)
      const q = parse(msg)
      if (!q) continue
      log(q, proto, s.remoteAddress, s.remotePort)
      if (silent.has(q.name)) continue
      if (proto === 'tls' && q.name === tlsOpts.closeOnce && !closedOnce.has(q.name)) {
        closedOnce.add(q.name)
        s.end()
        return
      }
      const r = reply(msg, q, true)
      s.write(Buffer.concat([Buffer.from(u16(r.length)), r]))
    }
  })
}
const tcp = net.createServer((s) => serveStream(s, 'tcp'))
const dot = tlsOpts && tls.createServer(
  { cert: tlsOpts.certPem, key: tlsOpts.keyPem, minVersion: 'TLSv1.2', maxVersion: tlsOpts.maxVersion || 'TLSv1.3' },
  (s) => serveStream(s, 'tls'),
)
// Port 0: the UDP port the kernel picks may be taken for TCP (by another
// test's connection), so a refused TCP listen tries another UDP port.
function start(udp, tries) {
  udp.bind(Number(portText), host, () => {
    const port = udp.address().port
    const retry = (e) => {
      if (e.code !== 'EADDRINUSE' || portText !== '0' || tries <= 1) throw e
      udp.close(() => start(udpSocket(), tries - 1))
    }
    tcp.once('error', retry)
    tcp.listen({ port, host, ipv6Only: false }, () => {
      tcp.off('error', retry)
      if (!dot) return process.stdout.write('ready ' + port + ' 0\\n')
      dot.listen({ port: 0, host, ipv6Only: false }, () => process.stdout.write('ready ' + port + ' ' + dot.address().port + '\\n'))
    })
  })
}
start(udpSocket(), 20)
`

/**
 * Start the stand-in on host:port (port 0: any free port; host an IPv6 or
 * IPv4 address, default `::`) in namespace `ns` (or here). Queries for the
 * names in `silent` get no answer.
 */
export async function startDnsStandin(
  t: TestLike,
  dir: string,
  zone: Zone,
  opts: { ns?: string; host?: string; port?: number; tls?: DnsStandinTls; silent?: string[] } = {},
): Promise<DnsStandin> {
  const script = join(dir, `dns-standin-${process.pid}-${Math.floor(Math.random() * 1e9)}.mjs`)
  writeFileSync(script, SCRIPT)
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const extra = { tls: opts.tls, silent: opts.silent ?? [] }
  const argv = [
    process.execPath,
    script,
    opts.host ?? '::',
    String(opts.port ?? 0),
    JSON.stringify(zone),
    BIG_NAME,
    JSON.stringify(extra),
  ]
  const full = opts.ns === undefined ? argv : inNs(opts.ns, argv)
  const proc: ChildProcess = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env })
  const closed = new Promise<void>((res) => proc.once('close', () => res()))
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await closed
  }
  t.teardown(stop)
  const queries: SeenQuery[] = []
  const waiters: Array<() => void> = []
  let err = ''
  proc.stderr!.setEncoding('utf8')
  proc.stderr!.on('data', (d: string) => (err += d))
  proc.stdout!.setEncoding('utf8')
  let partial = ''
  const [port, tlsPort] = await new Promise<[number, number]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`DNS stand-in not ready; stderr: ${err}`)), 15_000)
    proc.once('close', (code) => reject(new Error(`DNS stand-in exited (${code}); stderr: ${err}`)))
    proc.stdout!.on('data', (d: string) => {
      partial += d
      let nl: number
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl)
        partial = partial.slice(nl + 1)
        const ready = /^ready (\d+) (\d+)$/.exec(line)
        if (ready) {
          clearTimeout(timer)
          resolve([Number(ready[1]), Number(ready[2])])
        } else if (line.startsWith('{')) {
          queries.push(JSON.parse(line) as SeenQuery)
          for (const w of waiters.splice(0)) w()
        }
      }
    })
  })
  const seen = (name: string) => queries.filter((q) => q.name === name)
  return {
    port,
    tlsPort,
    queries,
    seen,
    stop,
    waitFor(name, count) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`stand-in saw ${seen(name).length} < ${count} queries for ${name}`)),
          15_000,
        )
        const check = () => {
          if (seen(name).length >= count) {
            clearTimeout(timer)
            resolve(seen(name))
          } else waiters.push(check)
        }
        check()
      })
    },
  }
}

export interface DigResult {
  code: number | null
  status: string
  flags: string
  answers: Array<{ name: string; ttl: number; type: string; data: string }>
  raw: string
}

/** Parse `dig +noall +comments +answer` output. */
export function parseDig(code: number | null, out: string): DigResult {
  const status = /status: ([A-Z]+)/.exec(out)?.[1] ?? ''
  const flags = /;; flags: ([a-z ]+);/.exec(out)?.[1] ?? ''
  const answers = out
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith(';'))
    .map((l) => l.split(/\s+/))
    .filter((p) => p.length >= 5)
    .map((p) => ({ name: p[0]!, ttl: Number(p[1]), type: p[3]!, data: p[4]! }))
  return { code, status, flags, answers, raw: out }
}

/** The dig arguments every test uses: one try, short wait, only header and answers. */
export function digArgs(server: string, port: number, name: string, type: string, extra: string[] = []): string[] {
  return [
    'dig',
    `@${server}`,
    '-p',
    String(port),
    name,
    type,
    '+tries=1',
    '+time=5',
    '+noall',
    '+comments',
    '+answer',
    ...extra,
  ]
}

/** Fail early, naming the package, when dig is missing. */
export function requireDig(): void {
  const r = spawnSync('dig', ['-v'], { encoding: 'utf8' })
  if (r.error)
    throw new Error(`the DNS tests need \`dig\` (${r.error.message}): install it with apt-get install bind9-dnsutils`)
}
