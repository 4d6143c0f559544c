// Node TCP fixtures for the end-to-end tests: upstream servers, clients,
// deterministic data and stream hashing. Everything binds to loopback (port
// 0, or refusedPort's checked free one) and is closed on test teardown.

import { createHash, randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import type { Server, Socket } from 'node:net'
import type { TestLike } from './ugate.js'

export const KiB = 1024
export const MiB = 1024 * 1024

// ---------------------------------------------------------------------------
// deterministic data

/** xorshift32 byte stream: the same seed always yields the same bytes. */
export class Prng {
  private s: number
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9
  }
  /** The next n bytes. */
  next(n: number): Buffer {
    const words = new Uint32Array(Math.ceil(n / 4))
    let s = this.s
    for (let i = 0; i < words.length; i++) {
      s ^= s << 13
      s >>>= 0
      s ^= s >>> 17
      s ^= s << 5
      s >>>= 0
      words[i] = s
    }
    this.s = s
    return Buffer.from(words.buffer, 0, n)
  }
}

/** n deterministic pseudo-random bytes. */
export function prngBytes(seed: number, n: number): Buffer {
  return new Prng(seed).next(n)
}

export function sha256(b: Buffer | Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

export interface Digest {
  hash: string
  bytes: number
}

/**
 * Write `total` bytes of Prng(seed) to the socket, honouring backpressure,
 * then end() it when `end` (default true). Resolves with what was written.
 */
export function sendPrng(
  sock: Socket,
  seed: number,
  total: number,
  opts: { end?: boolean; chunk?: number } = {},
): Promise<Digest> {
  const chunk = opts.chunk ?? 256 * KiB
  const prng = new Prng(seed)
  const h = createHash('sha256')
  return new Promise<Digest>((resolve, reject) => {
    let sent = 0
    const onError = (e: Error) => reject(e)
    const onClose = () => reject(new Error(`socket closed after sending ${sent}/${total} bytes`))
    sock.once('error', onError)
    sock.once('close', onClose)
    const done = () => {
      sock.off('error', onError)
      sock.off('close', onClose)
      resolve({ hash: h.digest('hex'), bytes: sent })
    }
    const pump = () => {
      while (sent < total) {
        const b = prng.next(Math.min(chunk, total - sent))
        h.update(b)
        sent += b.length
        if (!sock.write(b)) {
          sock.once('drain', pump)
          return
        }
      }
      if (opts.end !== false) sock.end(done)
      else done()
    }
    pump()
  })
}

/** Hash everything the socket delivers; resolves on 'end', rejects on error or close without end. */
export function hashIncoming(sock: Socket): Promise<Digest> {
  const h = createHash('sha256')
  let bytes = 0
  return new Promise<Digest>((resolve, reject) => {
    sock.on('data', (d: Buffer) => {
      h.update(d)
      bytes += d.length
    })
    sock.once('end', () => resolve({ hash: h.digest('hex'), bytes }))
    sock.once('error', (e) => reject(e))
    sock.once('close', () => reject(new Error(`closed without end after ${bytes} bytes`)))
  })
}

/** Collect everything the socket delivers until 'end'. */
export function collect(sock: Socket): Promise<Buffer> {
  const parts: Buffer[] = []
  return new Promise<Buffer>((resolve, reject) => {
    sock.on('data', (d: Buffer) => parts.push(d))
    sock.once('end', () => resolve(Buffer.concat(parts)))
    sock.once('error', (e) => reject(e))
    sock.once('close', () => reject(new Error('closed without end')))
  })
}

export interface CloseInfo {
  /** 'end' (FIN) was received before close. */
  ended: boolean
  /** The error that closed the socket, if any (e.g. ECONNRESET). */
  error: NodeJS.ErrnoException | null
  /** Bytes received over the socket's life (from attach time). */
  bytes: number
}

/** Resolve on the socket's 'close' event, telling how it ended. Consumes data. */
export function waitClose(sock: Socket): Promise<CloseInfo> {
  const info: CloseInfo = { ended: false, error: null, bytes: 0 }
  return new Promise<CloseInfo>((resolve) => {
    sock.on('data', (d: Buffer) => {
      info.bytes += d.length
    })
    sock.on('end', () => {
      info.ended = true
      // allowHalfOpen sockets stay open after the peer's FIN: finish our side too
      sock.end()
    })
    sock.on('error', (e: NodeJS.ErrnoException) => {
      info.error = e
    })
    if (sock.destroyed && !sock.connecting) {
      resolve(info)
      return
    }
    sock.once('close', () => resolve(info))
  })
}

/** Bound a promise with a failure timeout. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms}ms: ${what}`)), ms)
  })
  return Promise.race([p, guard]).finally(() => clearTimeout(timer))
}

/**
 * Read `get` every `everyMs` until `ok` holds of it or `ms` have passed, for
 * state no event announces (fd counts, counters published once a second).
 * Returns the last value either way: the caller asserts on it.
 */
export async function pollUntil<T>(
  get: () => T | Promise<T>,
  ok: (value: T) => boolean,
  ms: number,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await get()
    if (ok(value) || Date.now() > deadline) return value
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

// ---------------------------------------------------------------------------
// clients

const clients = new Set<Socket>()

/**
 * Remember a client socket so that destroyClients() can close it: a test
 * that fails half way must not leave half-open sockets keeping Node alive.
 */
export function track(s: Socket): Socket {
  clients.add(s)
  s.once('close', () => clients.delete(s))
  return s
}

/** Destroy every tracked client socket (run on test teardown). */
export function destroyClients(): void {
  for (const s of clients) s.destroy()
  clients.clear()
}

/** Connect (allowHalfOpen) and resolve once connected. */
export function connect(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = track(net.connect({ port, host, allowHalfOpen: true }))
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}

/** Connect, send payload, end(), and resolve with everything received until 'end'. */
export async function echoRoundTrip(port: number, payload: Buffer, host = '127.0.0.1'): Promise<Buffer> {
  const s = await connect(port, host)
  const got = collect(s)
  s.end(payload)
  try {
    return await got
  } finally {
    s.destroy()
  }
}

// ---------------------------------------------------------------------------
// servers

export interface Fixture {
  server: Server
  host: string
  port: number
  /** host:port as used on the ugate command line ([::1]:p for IPv6). */
  target: string
  sockets: Set<Socket>
  /** Number of connections accepted so far. */
  accepted: number
  close(): Promise<void>
}

/** A TCP server on host, port 0, closed at teardown: onConn gets each accepted socket (errors ignored). */
export function listenFixture(t: TestLike, host: string, onConn: (s: Socket, f: Fixture) => void): Promise<Fixture> {
  return new Promise<Fixture>((resolve, reject) => {
    const sockets = new Set<Socket>()
    const server = net.createServer({ allowHalfOpen: true })
    const f: Fixture = {
      server,
      host,
      port: 0,
      target: '',
      sockets,
      accepted: 0,
      close: () =>
        new Promise<void>((res) => {
          for (const s of sockets) s.destroy()
          if (!server.listening) return res()
          server.close(() => res())
        }),
    }
    server.on('connection', (s) => {
      f.accepted++
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      // Fixtures must never crash the test process on a peer reset.
      s.on('error', () => {})
      onConn(s, f)
    })
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      const a = server.address() as net.AddressInfo
      f.port = a.port
      f.target = host.includes(':') ? `[${host}]:${a.port}` : `${host}:${a.port}`
      t.teardown(() => f.close())
      resolve(f)
    })
  })
}

/** Echo server: echoes every byte and ends after the peer's end. */
export function echoServer(t: TestLike, host = '127.0.0.1'): Promise<Fixture> {
  return listenFixture(t, host, (s) => {
    s.pipe(s)
  })
}

/** Per-connection outcome of a dataServer. */
export interface DataConn {
  /** Hash/size of all bytes received until EOF. */
  received: Promise<Digest>
  /** Hash/size of all bytes the server sent (resolves after its end()). */
  sent: Promise<Digest>
}

export interface DataFixture extends Fixture {
  /** The i-th accepted connection (waits for it). */
  conn(i: number): Promise<DataConn>
}

/**
 * Server that sends `bytes` of Prng(seed) data and hashes what it receives.
 * mode 'simultaneous': starts sending at once, ends its side when done.
 * mode 'after-eof': waits for the client's EOF, then sends and ends.
 */
export async function dataServer(
  t: TestLike,
  opts: { bytes: number; seed: number; mode?: 'simultaneous' | 'after-eof'; host?: string },
): Promise<DataFixture> {
  const conns: DataConn[] = []
  const waiters = new Map<number, (c: DataConn) => void>()
  const f = await listenFixture(t, opts.host ?? '127.0.0.1', (s) => {
    const received = hashIncoming(s)
    let sent: Promise<Digest>
    if (opts.mode === 'after-eof') {
      sent = received.then(() => sendPrng(s, opts.seed, opts.bytes))
    } else {
      sent = sendPrng(s, opts.seed, opts.bytes)
    }
    // avoid unhandled rejections; tests await these explicitly
    received.catch(() => {})
    sent.catch(() => {})
    const c = { received, sent }
    conns.push(c)
    const w = waiters.get(conns.length - 1)
    if (w) {
      waiters.delete(conns.length - 1)
      w(c)
    }
  })
  const df = f as DataFixture
  df.conn = (i: number) => (conns[i] ? Promise.resolve(conns[i]!) : new Promise<DataConn>((res) => waiters.set(i, res)))
  return df
}

export interface ResetFixture extends Fixture {
  /** Resolves when the server has reset a connection. */
  resetDone: Promise<void>
}

/**
 * Server that sends `prefix` bytes of Prng(seed) data, then, as soon as
 * it receives any byte from the client, resets the connection
 * (socket.resetAndDestroy(): RST, unread data dropped).
 */
export async function resetServer(
  t: TestLike,
  opts: { prefix: number; seed: number; host?: string },
): Promise<ResetFixture> {
  let markReset: () => void = () => {}
  const resetDone = new Promise<void>((res) => {
    markReset = res
  })
  const f = await listenFixture(t, opts.host ?? '127.0.0.1', (s) => {
    s.write(prngBytes(opts.seed, opts.prefix))
    s.once('data', () => {
      s.resetAndDestroy()
      markReset()
    })
  })
  const rf = f as ResetFixture
  rf.resetDone = resetDone
  return rf
}

/**
 * A loopback port with nothing listening (or free for a server the test
 * starts later). Taken at random below the kernel's ephemeral range
 * (net.ipv4.ip_local_port_range), where no listen(0) of a test running in
 * parallel can take it before it is used, and checked free by listening on
 * it and closing.
 */
export async function refusedPort(host = '127.0.0.1'): Promise<number> {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  for (let i = 0; i < 100; i++) {
    const port = randomInt(1024, low)
    if (await freeNow(port, host)) return port
  }
  throw new Error(`refusedPort: no free port on ${host} in 1024-${low - 1} after 100 tries`)
}

/** Whether a listen on host:port succeeds now (the socket is closed again). */
function freeNow(port: number, host: string): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const s = net.createServer()
    s.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(false) : reject(e)))
    s.listen(port, host, () => s.close(() => resolve(true)))
  })
}

/** Echo server on a given port (e.g. one that was refused before). */
export function echoServerOn(t: TestLike, port: number, host = '127.0.0.1'): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {})
      s.pipe(s)
    })
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      t.teardown(() => new Promise<void>((res) => server.close(() => res())))
      resolve(server)
    })
  })
}
