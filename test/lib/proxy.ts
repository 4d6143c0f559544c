// Raw proxy clients (SOCKS5/SOCKS4 by hand, to see the exact reply bytes)
// and third-party proxies used as upstreams (microsocks, tinyproxy, a second
// ugate). Waiting is event based; timeouts only turn a hang into a failure.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { refusedPort, track, within } from './servers.js'
import { requireCommand } from './http.js'
import type { TestLike } from './ugate.js'
import { tempDir } from './temp.js'

// ---------------------------------------------------------------------------
// reading a socket by byte counts

/** Buffers what a socket delivers; read(n) takes exactly n bytes in order. */
export class Reader {
  private buf = Buffer.alloc(0)
  private ended = false
  private closed = false
  private error: Error | null = null
  private wake: (() => void) | null = null

  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      this.poke()
    })
    sock.on('end', () => {
      this.ended = true
      this.poke()
    })
    sock.on('error', (e) => {
      this.error = e
      this.poke()
    })
    sock.on('close', () => {
      this.closed = true
      this.poke()
    })
  }

  private poke() {
    const w = this.wake
    this.wake = null
    w?.()
  }

  private next(): Promise<void> {
    return new Promise<void>((res) => {
      this.wake = res
    })
  }

  /** Bytes buffered and not read yet. */
  get pending(): Buffer {
    return this.buf
  }

  /** Exactly n bytes; rejects when the stream ends first (the message says what came). */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended || this.closed || this.error) {
        throw new Error(
          `stream ended after ${this.buf.length}/${n} bytes (${this.error ? String(this.error) : this.ended ? 'FIN' : 'closed'}): ${this.buf.toString('hex')}`,
        )
      }
      await this.next()
    }
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return out
  }

  /** Everything until the peer's FIN or close; also tells how it ended. */
  async rest(): Promise<{ data: Buffer; ended: boolean; error: NodeJS.ErrnoException | null }> {
    while (!this.ended && !this.closed && !this.error) await this.next()
    const data = this.buf
    this.buf = Buffer.alloc(0)
    return { data, ended: this.ended, error: this.error as NodeJS.ErrnoException | null }
  }
}

/** Connect (allowHalfOpen, tracked, Nagle off) and wrap in a Reader. */
export function connectReader(port: number, host = '127.0.0.1', localAddress?: string): Promise<Reader> {
  return new Promise<Reader>((resolve, reject) => {
    const s = track(net.connect({ port, host, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) }))
    s.setNoDelay(true)
    const r = new Reader(s)
    s.once('connect', () => {
      s.off('error', reject)
      resolve(r)
    })
    s.once('error', reject)
  })
}

// ---------------------------------------------------------------------------
// SOCKS by hand

/** SOCKS5 address field for a host (IPv4 literal, IPv6 literal or name) and port. */
export function socks5Address(host: string, port: number): Buffer {
  const p = Buffer.from([port >> 8, port & 0xff])
  if (net.isIPv4(host)) return Buffer.concat([Buffer.from([1, ...host.split('.').map(Number)]), p])
  if (net.isIPv6(host)) {
    const full = new net.SocketAddress({ address: host, family: 'ipv6' }).address
    const groups = expandV6(full)
    const b = Buffer.alloc(16)
    groups.forEach((g, i) => b.writeUInt16BE(g, i * 2))
    return Buffer.concat([Buffer.from([4]), b, p])
  }
  const name = Buffer.from(host, 'latin1')
  return Buffer.concat([Buffer.from([3, name.length]), name, p])
}

function expandV6(a: string): number[] {
  const [l, r] = a.split('::') as [string, string | undefined]
  const left = l ? l.split(':').map((x) => parseInt(x, 16)) : []
  const right = r ? r.split(':').map((x) => parseInt(x, 16)) : []
  return r === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right]
}

export interface Socks5Result {
  reader: Reader
  /** The server's method choice (2 bytes). */
  choice: Buffer
  /** The RFC 1929 status (2 bytes) when user/pass was used. */
  auth?: Buffer
  /** The whole CONNECT reply (VER REP RSV ATYP ADDR PORT), when one came. */
  reply?: Buffer
}

/**
 * SOCKS5 CONNECT by hand: greeting (no auth, or user/pass when given),
 * RFC 1929 login, request; stops early when the server refuses a step.
 */
export async function socks5Connect(
  proxyPort: number,
  dst: { host: string; port: number },
  auth?: { user: string; pass: string },
): Promise<Socks5Result> {
  const reader = await connectReader(proxyPort)
  const s = reader.sock
  s.write(auth ? Buffer.from([5, 1, 2]) : Buffer.from([5, 1, 0]))
  const choice = await reader.read(2)
  const out: Socks5Result = { reader, choice }
  if (choice[1] === 0xff) return out
  if (choice[1] === 2) {
    const u = Buffer.from(auth?.user ?? '', 'utf8')
    const p = Buffer.from(auth?.pass ?? '', 'utf8')
    s.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]))
    out.auth = await reader.read(2)
    if (out.auth[1] !== 0) return out
  }
  s.write(Buffer.concat([Buffer.from([5, 1, 0]), socks5Address(dst.host, dst.port)]))
  const head = await reader.read(4)
  if (head[3] === 3) {
    const len = await reader.read(1)
    out.reply = Buffer.concat([head, len, await reader.read(len[0]! + 2)])
  } else {
    out.reply = Buffer.concat([head, await reader.read((head[3] === 4 ? 16 : 4) + 2)])
  }
  return out
}

/** SOCKS4 (IPv4) or SOCKS4a (host name) CONNECT by hand; resolves with the 8-byte reply. */
export async function socks4Connect(
  proxyPort: number,
  dst: { host: string; port: number },
  userId = '',
): Promise<{ reader: Reader; reply: Buffer }> {
  const reader = await connectReader(proxyPort)
  const isIp = net.isIPv4(dst.host)
  const ip = isIp ? Buffer.from(dst.host.split('.').map(Number)) : Buffer.from([0, 0, 0, 1])
  const parts = [Buffer.from([4, 1, dst.port >> 8, dst.port & 0xff]), ip, Buffer.from(userId + '\0', 'latin1')]
  if (!isIp) parts.push(Buffer.from(dst.host + '\0', 'latin1'))
  reader.sock.write(Buffer.concat(parts))
  const reply = await reader.read(8)
  return { reader, reply }
}

// ---------------------------------------------------------------------------
// third-party upstream proxies

export interface Daemon {
  proc: ChildProcess
  port: number
  /** stdout + stderr so far. */
  output(): string
  stop(): Promise<void>
}

function spawnDaemon(t: TestLike, cmd: string, args: string[], port: number): Daemon {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout!.setEncoding('utf8')
  proc.stderr!.setEncoding('utf8')
  proc.stdout!.on('data', (d: string) => (out += d))
  proc.stderr!.on('data', (d: string) => (out += d))
  const exited = new Promise<void>((res) => proc.once('close', () => res()))
  const d: Daemon = {
    proc,
    port,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await within(exited, 10_000, `${cmd} exits after SIGTERM`).catch(() => proc.kill('SIGKILL'))
    },
  }
  t.teardown(() => d.stop())
  return d
}

/**
 * Resolve once something accepts TCP connections on 127.0.0.1:port. For a
 * daemon that prints nothing when it is ready (microsocks): each refused
 * attempt is retried after its 'error' event, 20 ms apart, up to timeoutMs.
 */
export async function waitListening(
  port: number,
  what: string,
  exited?: () => boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await new Promise<string>((res) => {
      const s = net.connect({ port, host: '127.0.0.1' })
      s.once('connect', () => {
        s.destroy()
        res('ok')
      })
      s.once('error', (e: NodeJS.ErrnoException) => res(e.code ?? String(e)))
    })
    if (r === 'ok') return
    if (exited?.()) throw new Error(`${what} exited before listening on ${port}`)
    if (r !== 'ECONNREFUSED' || Date.now() > deadline) throw new Error(`${what} not listening on ${port}: ${r}`)
    await new Promise<void>((res) => setTimeout(res, 20))
  }
}

/** microsocks (Debian package microsocks) on 127.0.0.1, optionally with -u/-P. */
export async function startMicrosocks(t: TestLike, auth?: { user: string; pass: string }): Promise<Daemon> {
  requireCommand('microsocks', 'microsocks')
  const port = await refusedPort()
  const args = ['-i', '127.0.0.1', '-p', String(port)]
  if (auth) args.push('-u', auth.user, '-P', auth.pass)
  const d = spawnDaemon(t, 'microsocks', args, port)
  await waitListening(port, 'microsocks', () => d.proc.exitCode !== null)
  // The readiness probe above was one connection microsocks served (and saw end at once).
  return d
}

/**
 * tinyproxy (Debian package tinyproxy-bin, or tinyproxy) in the foreground
 * (-d) with a config in a temp dir: Listen/Allow 127.0.0.1 and CONNECT only
 * to `connectPorts`. Ready when it logs "Accepting connections".
 */
export async function startTinyproxy(t: TestLike, connectPorts: number[]): Promise<Daemon> {
  requireCommand('tinyproxy', 'tinyproxy-bin')
  const dir = tempDir(t, 'ugate-tinyproxy-')
  const port = await refusedPort()
  const conf = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Allow 127.0.0.1',
    'Timeout 60',
    'MaxClients 50',
    'LogLevel Info',
    'DisableViaHeader Yes',
    ...connectPorts.map((p) => `ConnectPort ${p}`),
  ].join('\n')
  const file = join(dir, 'tinyproxy.conf')
  writeFileSync(file, conf + '\n')
  const d = spawnDaemon(t, 'tinyproxy', ['-d', '-c', file], port)
  await within(
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (/Accepting connections/.test(d.output())) resolve()
      }
      d.proc.stdout!.on('data', check)
      d.proc.stderr!.on('data', check)
      d.proc.once('close', (code) =>
        reject(new Error(`tinyproxy exited (${code}) before it was ready:\n${d.output()}`)),
      )
      check()
    }),
    10_000,
    `tinyproxy ready on ${port}`,
  )
  return d
}
