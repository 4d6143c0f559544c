// nghttpx (Debian nghttp2-proxy) as a third-party HTTP/2 CONNECT server
// for the HBONE interop tests: secure-proxy (forward proxy) mode on
// 127.0.0.1, TLS 1.3 AES-GCM only, client certificate required and verified
// against the mesh root, ztunnel's windows. Its backend is an HTTP/1 CONNECT
// proxy: by default a minimal one here, or any given host:port (ugate's own
// http listener).

import { spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { requireCommand } from './http.js'
import type { Identity } from './hbone.js'
import { refusedPort } from './servers.js'
import { WAIT_MS } from './ugate.js'
import type { TestLike } from './ugate.js'

export interface Nghttpx {
  port: number
  /** The HTTP/1 CONNECT proxy behind it; requests it saw (`CONNECT target`). */
  backend: string
  connects: string[]
  log: () => string
}

/** A minimal HTTP/1 CONNECT proxy on 127.0.0.1: dial, 200, relay with half-close. */
export function connectProxy(t: TestLike): Promise<{ target: string; connects: string[] }> {
  const connects: string[] = []
  const server = http.createServer((_req, res) => res.writeHead(405).end())
  const socks = new Set<net.Socket>()
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    connects.push(req.url ?? '')
    socks.add(client)
    client.on('error', () => {})
    const m = /^(.+):(\d+)$/.exec(req.url ?? '')
    if (!m) return void client.end('HTTP/1.1 400 Bad Request\r\n\r\n')
    const up = net.connect({ host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]), allowHalfOpen: true })
    socks.add(up)
    up.on('error', () => client.end('HTTP/1.1 503 Service Unavailable\r\n\r\n'))
    up.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length) up.write(head)
      client.pipe(up)
      up.pipe(client)
    })
  })
  return new Promise((res) => {
    server.listen(0, '127.0.0.1', () => {
      t.teardown(
        () =>
          new Promise<void>((done) => {
            for (const s of socks) s.destroy()
            server.close(() => done())
          }),
      )
      res({ target: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, connects })
    })
  })
}

/**
 * Start nghttpx -s with `id`'s certificate and client verification against
 * `id`'s root; resolves when it listens, killed on teardown.
 */
export async function startNghttpx(t: TestLike, id: Identity, backend?: string): Promise<Nghttpx> {
  requireCommand('nghttpx', 'nghttp2-proxy')
  const proxy = backend ? { target: backend, connects: [] } : await connectProxy(t)
  const port = await refusedPort()
  const [bh, bp] = [proxy.target.replace(/:\d+$/, ''), proxy.target.replace(/^.*:/, '')]
  const args = [
    '--conf=/dev/null', // not /etc/nghttpx/nghttpx.conf
    '--http2-proxy',
    `--frontend=127.0.0.1,${port}`,
    `--backend=${bh},${bp}`,
    '--workers=1',
    '--no-ocsp',
    '--verify-client',
    `--verify-client-cacert=${id.root}`,
    '--tls-min-proto-version=TLSv1.3',
    '--tls13-ciphers=TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256',
    '--frontend-http2-window-size=4194304',
    '--frontend-http2-connection-window-size=16777216',
    '--errorlog-file=/dev/stderr',
    '--log-level=INFO',
    id.key,
    id.cert,
  ]
  const p = spawn('nghttpx', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  t.teardown(() => p.kill())
  let log = ''
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`nghttpx did not listen in ${WAIT_MS} ms: ${log}`)), WAIT_MS)
    p.once('exit', (code) => (clearTimeout(timer), rej(new Error(`nghttpx exited (${code}): ${log}`))))
    p.stderr.on('data', (d: Buffer) => {
      log += d
      // Logged once the socket listens (connections queue for the worker).
      if (/Listening on 127\.0\.0\.1:\d+/.test(log)) (clearTimeout(timer), res())
    })
  })
  return { port, backend: proxy.target, connects: proxy.connects, log: () => log }
}
