// TLS helpers for the proxy end-to-end tests: a throw-away CA and server
// certificate made with the openssl CLI at test time, an independent
// ClientHello parser (SNI, ALPN) to check recorded bytes, and a Node TLS
// client that records the exact bytes it sends and receives.

import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import { track } from './servers.js'
import { duplexOver, requireCommand } from './http.js'
import type { RawConn } from './http.js'
import type { TestLike } from './ugate.js'
import { tempDir } from './temp.js'

export interface Pki {
  dir: string
  /** CA certificate file (for curl --cacert). */
  caFile: string
  caPem: string
  /** Server certificate (signed by the CA) and its key, PEM. */
  certPem: string
  keyPem: string
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
}

/**
 * A test CA and one server certificate for `names` (DNS SANs) and `ips`
 * (IP SANs), P-256 keys, valid for 2 days; files in a temp dir removed on
 * teardown.
 */
export function makePki(t: TestLike, names: string[], ips: string[] = ['127.0.0.1', '::1']): Pki {
  requireCommand('openssl', 'openssl')
  const dir = tempDir(t, 'ugate-pki-')
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=ugate test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ])
  openssl(dir, [
    'req',
    ...ec,
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    `/CN=${names[0] ?? 'ugate-test'}`,
  ])
  const san = [...names.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(',')
  writeFileSync(
    join(dir, 'server.ext'),
    `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  )
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-sha256',
    '-extfile',
    'server.ext',
    '-out',
    'server.pem',
  ])
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    certPem: readFileSync(join(dir, 'server.pem'), 'utf8'),
    keyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
  }
}

// ---------------------------------------------------------------------------
// ClientHello parsing (independent of src/core/sniff)

export interface ClientHelloInfo {
  /** Number of TLS records the ClientHello spans. */
  records: number
  /** Bytes of those records, headers included (where the hello's flight ends). */
  bytes: number
  /** Length of the ClientHello body. */
  helloLength: number
  sni: string | undefined
  alpn: string[]
}

/**
 * Parse the ClientHello at the start of `buf` (possibly split over several
 * handshake records). null when buf does not start with a complete one.
 */
export function parseClientHello(buf: Buffer): ClientHelloInfo | null {
  let off = 0
  let records = 0
  const hs: Buffer[] = []
  let have = 0
  let need = -1
  while (need < 0 || have < need) {
    if (buf.length < off + 5 || buf[off] !== 22) return null
    const len = buf.readUInt16BE(off + 3)
    if (buf.length < off + 5 + len) return null
    hs.push(buf.subarray(off + 5, off + 5 + len))
    have += len
    off += 5 + len
    records++
    if (need < 0 && have >= 4) {
      const h = Buffer.concat(hs)
      if (h[0] !== 1) return null
      need = 4 + h.readUIntBE(1, 3)
    }
  }
  const h = Buffer.concat(hs).subarray(0, need)
  const body = h.subarray(4)
  let p = 2 + 32 // client_version, random
  p += 1 + body[p]! // session id
  p += 2 + body.readUInt16BE(p) // cipher suites
  p += 1 + body[p]! // compression methods
  let sni: string | undefined
  const alpn: string[] = []
  if (p + 2 <= body.length) {
    const end = p + 2 + body.readUInt16BE(p)
    p += 2
    while (p + 4 <= end) {
      const type = body.readUInt16BE(p)
      const len = body.readUInt16BE(p + 2)
      const ext = body.subarray(p + 4, p + 4 + len)
      if (type === 0 && ext.length >= 5 && ext[2] === 0)
        sni = ext.subarray(5, 5 + ext.readUInt16BE(3)).toString('latin1')
      if (type === 16) {
        let q = 2
        while (q < ext.length) {
          alpn.push(ext.subarray(q + 1, q + 1 + ext[q]!).toString('latin1'))
          q += 1 + ext[q]!
        }
      }
      p += 4 + len
    }
  }
  return { records, bytes: off, helloLength: need - 4, sni, alpn }
}

/** Re-frame a single-record ClientHello capture into records of at most `size` handshake bytes each. */
export function reframe(capture: Buffer, size: number): Buffer {
  const info = parseClientHello(capture)
  if (info === null || info.records !== 1) throw new Error('reframe: capture is not one complete ClientHello record')
  const version = capture.subarray(1, 3)
  const hsBytes = capture.subarray(5, info.bytes)
  const out: Buffer[] = []
  for (let i = 0; i < hsBytes.length; i += size) {
    const frag = hsBytes.subarray(i, i + size)
    const hdr = Buffer.from([22, version[0]!, version[1]!, frag.length >> 8, frag.length & 0xff])
    out.push(hdr, frag)
  }
  return Buffer.concat([...out, capture.subarray(info.bytes)])
}

// ---------------------------------------------------------------------------
// a recording TLS client

export interface RecordedTls {
  socket: tls.TLSSocket
  /** The raw (TCP) side: every byte the TLS client sent / received. */
  sent: Buffer[]
  raw: RawConn
}

/**
 * Connect to host:port over TCP and run a Node TLS client on top, recording
 * the exact bytes it writes (sent) and reads (raw.chunks). Resolves once the
 * TLS handshake is done.
 */
export function tlsConnectRecording(
  port: number,
  opts: { host?: string; servername: string; ca: string; alpn?: string[] },
): Promise<RecordedTls> {
  return new Promise<RecordedTls>((resolve, reject) => {
    const sock = track(net.connect({ port, host: opts.host ?? '127.0.0.1', allowHalfOpen: true }))
    sock.setNoDelay(true)
    const sent: Buffer[] = []
    const origWrite = sock.write.bind(sock) as (chunk: unknown, ...rest: unknown[]) => boolean
    // Record what the TLS layer writes (it writes through the Duplex below).
    ;(sock as unknown as { write: typeof origWrite }).write = (chunk: unknown, ...rest: unknown[]) => {
      sent.push(Buffer.from(chunk as Uint8Array))
      return origWrite(chunk, ...rest)
    }
    const raw = rawConnFor(sock)
    const d = duplexOver(raw)
    const socket = tls.connect({
      socket: d,
      servername: opts.servername,
      ca: opts.ca,
      ALPNProtocols: opts.alpn ?? ['http/1.1'],
    })
    socket.once('secureConnect', () => {
      socket.off('error', reject)
      resolve({ socket, sent, raw })
    })
    socket.once('error', reject)
  })
}

// RawConn for a client socket, like the servers' (kept here to avoid exporting internals).
function rawConnFor(socket: net.Socket): RawConn {
  const chunks: Buffer[] = []
  const rc: RawConn = {
    socket,
    chunks,
    bytes: 0,
    received: () => Buffer.concat(chunks),
    waitBytes: () => Promise.reject(new Error('not supported on client recordings')),
    ended: new Promise<boolean>((res) => {
      let ended = false
      socket.once('end', () => {
        ended = true
        res(true)
      })
      socket.once('close', () => res(ended))
    }),
    closed: new Promise<void>((res) => socket.once('close', () => res())),
  }
  socket.on('data', (d: Buffer) => {
    chunks.push(d)
    rc.bytes += d.length
  })
  socket.on('error', () => {})
  return rc
}
