// Recording origin servers (plain HTTP, raw bytes) and a curl runner for the
// proxy end-to-end tests.
//
// Every origin keeps the exact bytes each connection delivered (`RawConn`),
// so a test can check that a proxy passed the client's bytes unchanged, and
// hands the same bytes to Node's HTTP parser (through a Duplex that sits
// between the socket and the parser) to see the request as a server does.
// Everything binds to loopback, port 0, and is closed on test teardown;
// waiting is event based (data/close events), timeouts only turn a hang
// into a failure.

import { spawn, spawnSync } from 'node:child_process'
import http from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import net from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { Duplex } from 'node:stream'
import tls from 'node:tls'
import { prngBytes, sha256, within } from './servers.js'
import type { TestLike } from './ugate.js'

// ---------------------------------------------------------------------------
// tools

/** Fail (never skip) when a command the tests need is missing; names the Debian package. */
export function requireCommand(cmd: string, debPackage: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  if (r.status !== 0) {
    throw new Error(`'${cmd}' not found: install the Debian package ${debPackage} (./build.sh deps installs it)`)
  }
}

// ---------------------------------------------------------------------------
// raw recording

/** One accepted connection of a recording server. */
export interface RawConn {
  socket: Socket
  /** Every chunk received, in order. */
  chunks: Buffer[]
  /** Total bytes received so far. */
  bytes: number
  /** Everything received so far, as one buffer. */
  received(): Buffer
  /** Resolves once at least n bytes have been received (rejects if the socket closes first). */
  waitBytes(n: number): Promise<Buffer>
  /** Resolves when the peer's FIN arrived (true) or the socket closed without it (false). */
  ended: Promise<boolean>
  /** Resolves on the socket's 'close'. */
  closed: Promise<void>
}

function rawConn(socket: Socket): RawConn {
  const waiters: Array<{ n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void }> = []
  let sawEnd = false
  const rc: RawConn = {
    socket,
    chunks: [],
    bytes: 0,
    received: () => Buffer.concat(rc.chunks),
    waitBytes: (n) =>
      rc.bytes >= n
        ? Promise.resolve(rc.received())
        : socket.destroyed
          ? Promise.reject(new Error(`socket closed after ${rc.bytes}/${n} bytes`))
          : new Promise<Buffer>((resolve, reject) => waiters.push({ n, resolve, reject })),
    ended: Promise.resolve(false),
    closed: Promise.resolve(),
  }
  rc.ended = new Promise<boolean>((res) => {
    socket.once('end', () => {
      sawEnd = true
      res(true)
    })
    socket.once('close', () => res(sawEnd))
  })
  rc.closed = new Promise<void>((res) => socket.once('close', () => res()))
  socket.on('data', (d: Buffer) => {
    rc.chunks.push(d)
    rc.bytes += d.length
    for (const w of waiters.slice()) {
      if (rc.bytes >= w.n) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(rc.received())
      }
    }
  })
  socket.once('close', () => {
    for (const w of waiters.splice(0)) w.reject(new Error(`socket closed after ${rc.bytes}/${w.n} bytes`))
  })
  // A fixture must never crash the test process on a peer reset.
  socket.on('error', () => {})
  return rc
}

/**
 * A Duplex in front of a recorded socket: what the socket receives is read
 * from it, what is written to it goes to the socket. Node's HTTP parser and
 * TLS layer then work on the bytes while RawConn keeps an exact copy.
 */
export function duplexOver(rc: RawConn): Duplex {
  const raw = rc.socket
  const d = new Duplex({
    read() {
      raw.resume()
    },
    write(chunk: Buffer, _enc, cb) {
      if (raw.destroyed) return cb()
      raw.write(chunk, () => cb())
    },
    final(cb) {
      raw.end()
      cb()
    },
    destroy(err, cb) {
      raw.destroy()
      cb(err)
    },
  })
  raw.on('data', (b: Buffer) => {
    if (!d.push(b)) raw.pause()
  })
  raw.once('end', () => d.push(null))
  raw.once('close', () => d.destroy())
  d.on('error', () => {})
  return d
}

export interface RecServer {
  server: Server
  host: string
  port: number
  /** host:port ([v6]:port) */
  target: string
  conns: RawConn[]
  /** The i-th accepted connection (waits for it). */
  conn(i: number): Promise<RawConn>
  close(): Promise<void>
}

/**
 * A TCP server that records every connection's bytes; `onConn` decides what
 * else happens (nothing: the peer's FIN is answered with FIN).
 */
export function recordingServer(
  t: TestLike,
  opts: { host?: string; onConn?: (rc: RawConn, index: number) => void } = {},
): Promise<RecServer> {
  const host = opts.host ?? '127.0.0.1'
  return new Promise<RecServer>((resolve, reject) => {
    const waiters = new Map<number, (c: RawConn) => void>()
    const server = net.createServer({ allowHalfOpen: true })
    const rs: RecServer = {
      server,
      host,
      port: 0,
      target: '',
      conns: [],
      conn: (i) => (rs.conns[i] ? Promise.resolve(rs.conns[i]!) : new Promise<RawConn>((res) => waiters.set(i, res))),
      close: () =>
        new Promise<void>((res) => {
          for (const c of rs.conns) c.socket.destroy()
          if (!server.listening) return res()
          server.close(() => res())
        }),
    }
    server.on('connection', (s: Socket) => {
      const rc = rawConn(s)
      const i = rs.conns.length
      rs.conns.push(rc)
      if (opts.onConn) opts.onConn(rc, i)
      else s.once('end', () => s.end())
      const w = waiters.get(i)
      if (w) {
        waiters.delete(i)
        w(rc)
      }
    })
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      rs.port = (server.address() as AddressInfo).port
      rs.target = host.includes(':') ? `[${host}]:${rs.port}` : `${host}:${rs.port}`
      t.teardown(() => rs.close())
      resolve(rs)
    })
  })
}

/** A recording server that echoes every byte back (and FIN after FIN). */
export function recordingEchoServer(t: TestLike, host = '127.0.0.1'): Promise<RecServer> {
  return recordingServer(t, {
    host,
    onConn: (rc) => {
      rc.socket.pipe(rc.socket)
    },
  })
}

// ---------------------------------------------------------------------------
// HTTP origin

export interface OriginRequest {
  method: string
  url: string
  httpVersion: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  body: Buffer
  /** The connection (raw bytes) the request came on. */
  conn: RawConn
  /** Index of the connection in Origin.conns. */
  connIndex: number
}

export interface Origin extends RecServer {
  /** Name put into every response (to tell origins apart). */
  name: string
  requests: OriginRequest[]
  /** The i-th complete request (body read), waiting for it. */
  request(i: number): Promise<OriginRequest>
}

/** The body an origin sends for GET /bytes/N: N bytes of Prng(N). */
export function originBytes(n: number): Buffer {
  return prngBytes(n, n)
}

/** What an origin answers a request with (other than /bytes/N). */
export function originSummary(name: string, r: Pick<OriginRequest, 'method' | 'url' | 'body'>): string {
  return `${name} ${r.method} ${r.url} ${r.body.length} ${sha256(r.body)}\n`
}

/**
 * An HTTP/1.1 origin (HTTPS with `tls`). GET /bytes/N answers N bytes of
 * Prng(N); anything else answers originSummary() (name, method, URL, body
 * length and sha256). The raw bytes of each connection are recorded (for
 * HTTPS: the TLS records, ClientHello first).
 */
export async function httpOrigin(
  t: TestLike,
  opts: { host?: string; name?: string; tls?: { key: string; cert: string } } = {},
): Promise<Origin> {
  const name = opts.name ?? 'origin'
  const requests: OriginRequest[] = []
  const waiters = new Map<number, (r: OriginRequest) => void>()
  const hs = http.createServer()
  const connIndex = new WeakMap<object, { rc: RawConn; i: number }>()
  hs.on('request', (req, res) => {
    const parts: Buffer[] = []
    req.on('data', (d: Buffer) => parts.push(d))
    req.on('end', () => {
      const c = connIndex.get(req.socket)!
      const r: OriginRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        httpVersion: req.httpVersion,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(parts),
        conn: c.rc,
        connIndex: c.i,
      }
      requests.push(r)
      const m = /^\/bytes\/(\d+)$/.exec(r.url)
      const body = m ? originBytes(Number(m[1])) : Buffer.from(originSummary(name, r))
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': body.length,
        'X-Origin': name,
      })
      res.end(body)
      const w = waiters.get(requests.length - 1)
      if (w) {
        waiters.delete(requests.length - 1)
        w(r)
      }
    })
  })
  hs.on('clientError', (_e, s: Duplex) => s.destroy())
  const secureContext = opts.tls ? tls.createSecureContext({ key: opts.tls.key, cert: opts.tls.cert }) : undefined
  const rs = await recordingServer(t, {
    host: opts.host ?? '127.0.0.1',
    onConn: (rc, i) => {
      const d = duplexOver(rc)
      if (secureContext) {
        const ts = new tls.TLSSocket(d, { isServer: true, secureContext })
        ts.on('error', () => {})
        connIndex.set(ts, { rc, i })
        hs.emit('connection', ts)
      } else {
        connIndex.set(d, { rc, i })
        hs.emit('connection', d)
      }
    },
  })
  const o = rs as Origin
  o.name = name
  o.requests = requests
  o.request = (i) =>
    requests[i] ? Promise.resolve(requests[i]!) : new Promise<OriginRequest>((res) => waiters.set(i, res))
  return o
}

/** The request head a client sent, split at the first empty line. */
export function splitHead(b: Buffer): { head: string; body: Buffer } {
  const i = b.indexOf('\r\n\r\n')
  if (i < 0) return { head: b.toString('latin1'), body: Buffer.alloc(0) }
  return { head: b.subarray(0, i + 4).toString('latin1'), body: b.subarray(i + 4) }
}

// ---------------------------------------------------------------------------
// curl

export interface CurlResult {
  /** curl's exit status (null when killed). */
  code: number | null
  stdout: Buffer
  /** stderr without the -w line. */
  stderr: string
  /** curl's `-w %{json}` variables: http_code, http_connect, errormsg, exitcode, size_header, ... */
  w: Record<string, unknown>
  args: string[]
}

const W_MARK = 'UGATE-CURL-W '

/**
 * Run curl asynchronously (the test process's servers must keep running),
 * with -sS, no config file (-q), and the -w variables written to stderr as
 * JSON. Rejects only on a hang (after timeoutMs curl is killed).
 */
export async function curl(args: string[], opts: { timeoutMs?: number; stdin?: Buffer } = {}): Promise<CurlResult> {
  requireCommand('curl', 'curl')
  const full = ['-q', '-sS', '--max-time', '15', '-w', `%{stderr}${W_MARK}%{json}\n`, ...args]
  const p = spawn('curl', full, { stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  p.stdout!.on('data', (d: Buffer) => out.push(d))
  p.stderr!.on('data', (d: Buffer) => err.push(d))
  if (opts.stdin) p.stdin!.end(opts.stdin)
  const done = new Promise<CurlResult>((resolve, reject) => {
    p.once('error', reject)
    p.once('close', (code) => {
      const text = Buffer.concat(err).toString('utf8')
      const lines = text.split('\n')
      let w: Record<string, unknown> = {}
      const keep: string[] = []
      for (const l of lines) {
        const i = l.indexOf(W_MARK)
        if (i >= 0) {
          if (i > 0) keep.push(l.slice(0, i))
          try {
            w = JSON.parse(l.slice(i + W_MARK.length)) as Record<string, unknown>
          } catch {
            keep.push(l)
          }
        } else keep.push(l)
      }
      resolve({ code, stdout: Buffer.concat(out), stderr: keep.join('\n').trim(), w, args })
    })
  })
  try {
    return await within(done, opts.timeoutMs ?? 30_000, `curl ${args.join(' ')}`)
  } catch (e) {
    p.kill('SIGKILL')
    throw e
  }
}

/** A short description of a curl result for assertion diagnostics. */
export function curlInfo(r: CurlResult): Record<string, unknown> {
  return {
    args: r.args.join(' '),
    code: r.code,
    stderr: r.stderr,
    http_code: r.w.http_code,
    http_connect: r.w.http_connect,
    errormsg: r.w.errormsg,
    stdout: r.stdout.length < 300 ? r.stdout.toString('latin1') : `${r.stdout.length} bytes`,
  }
}

// ---------------------------------------------------------------------------
// what curl sends

/** User-Agent the tests give curl (-A), so request heads are predictable. */
export const CURL_UA = 'ugate-test'

/**
 * The request head curl 7.88+ sends to an origin (after a proxy's rewrite,
 * `extra` holds what follows Accept: body fields, "Connection: close"...).
 */
export function curlHead(method: string, path: string, host: string, extra: string[] = []): string {
  return [
    `${method} ${path} HTTP/1.1`,
    `Host: ${host}`,
    `User-Agent: ${CURL_UA}`,
    'Accept: */*',
    ...extra,
    '',
    '',
  ].join('\r\n')
}

/** Decode an HTTP/1.1 chunked body (the whole of it, trailers ignored); throws on a malformed one. */
export function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = []
  let p = 0
  for (;;) {
    const eol = b.indexOf('\r\n', p)
    if (eol < 0) throw new Error(`chunked: no size line at ${p}`)
    const size = parseInt(b.subarray(p, eol).toString('latin1').split(';')[0]!, 16)
    if (!Number.isFinite(size)) throw new Error(`chunked: bad size line at ${p}`)
    p = eol + 2
    if (size === 0) return Buffer.concat(out)
    out.push(b.subarray(p, p + size))
    p += size
    if (b.subarray(p, p + 2).toString('latin1') !== '\r\n') throw new Error(`chunked: no CRLF after chunk at ${p}`)
    p += 2
  }
}

/**
 * The reason of a curl HTTPS tunnel's access line. curl sends close_notify
 * and closes its socket at once; the origin's TLS layer may still answer
 * (its own close_notify), which then meets a closed client socket: the
 * relay ends with the client's EPIPE/ECONNRESET instead of a clean eof.
 * Either is a correct report of what happened.
 */
export const TLS_TUNNEL_REASON = /^(eof|client-error:(EPIPE|ECONNRESET))$/

/**
 * Raw bytes to 127.0.0.1:port; resolves with everything received once the
 * server closes. A request with `Connection: close` through this is a sync
 * point: ugate has closed that connection (and, as it closes each one in the
 * turn it writes the answer, every earlier one) when it resolves.
 */
export function rawUntilClose(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes))
    let out = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => (out += d))
    s.on('close', () => resolve(out))
    s.on('error', reject)
  })
}
