// Third-party HBONE peers for the interop tests (issue 12 §3): mesh
// identities from `ugate identity init`, the Rust ztunnel-like peer
// (build/ztunnel-peer, test/interop/ztunnel-peer) as server or client, and a
// ztunnel-like server on Node's http2 (nghttp2). The same shapes serve the
// tests that point ugate's hbone listener/upstream at these peers.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import { join, resolve } from 'node:path'
import tls, { type TLSSocket } from 'node:tls'
import { repoRoot, runUgate, WAIT_MS } from './ugate.js'
import type { TestLike } from './ugate.js'
import { tempDir } from './temp.js'

export const MiB = 1024 * 1024
/** ztunnel's HTTP/2 settings (mesh-notes.md). */
export const ZTUNNEL_SETTINGS: http2.Settings = {
  initialWindowSize: 4 * MiB,
  maxFrameSize: MiB,
  maxConcurrentStreams: 200,
  maxHeaderListSize: 64 * 1024,
}
export const ZTUNNEL_CONN_WINDOW = 16 * MiB
export const ZTUNNEL_CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256'

export const peerBin = resolve(repoRoot, 'build/ztunnel-peer')

/** Fail (never skip) when the Rust peer was not built. */
export function requirePeer(): void {
  if (!existsSync(peerBin)) throw new Error(`${peerBin} missing: run ./build.sh interop`)
}

export interface Identity {
  dir: string
  id: string
  /** cert-chain.pem, key.pem, root-cert.pem as Istio names them. */
  cert: string
  key: string
  root: string
  certPem: string
  keyPem: string
  rootPem: string
}

/** A fresh standalone-mesh identity (own CA) from `ugate identity init`. */
export function makeIdentity(t: TestLike, td: string, sa: string, ns = 'home'): Identity {
  const dir = tempDir(t, `ugate-id-${sa}-`)
  const r = runUgate(['identity', 'init', '--dir', dir, '--trust-domain', td, '--namespace', ns, '--sa', sa])
  if (r.code !== 0) throw new Error(`ugate identity init failed (${r.code}): ${r.stderr.join('\n')}`)
  return readIdentity(dir, `spiffe://${td}/ns/${ns}/sa/${sa}`)
}

/** The identity files in dir (Istio's names), for the SPIFFE id `id`. */
export function readIdentity(dir: string, id: string): Identity {
  const f = (n: string) => join(dir, n)
  return {
    dir,
    id,
    cert: f('cert-chain.pem'),
    key: f('key.pem'),
    root: f('root-cert.pem'),
    certPem: readFileSync(f('cert-chain.pem'), 'utf8'),
    keyPem: readFileSync(f('key.pem'), 'utf8'),
    rootPem: readFileSync(f('root-cert.pem'), 'utf8'),
  }
}

/** ugate's `mesh` config section for `id` (its identity directory) in trust domain `td`. */
export function meshConfig(id: Identity, td: string): { mesh: { identityDir: string; trustDomain: string } } {
  return { mesh: { identityDir: id.dir, trustDomain: td } }
}

/** The dates of issueIdentity's dated certificates, as ugate's messages write them. */
const EXPIRED_FROM = '2020-01-01T00:00:00Z'
export const EXPIRED_ON = '2020-01-02T00:00:00Z'
export const NOT_VALID_BEFORE = '2099-01-01T00:00:00Z'
const NOT_VALID_UNTIL = '2099-01-02T00:00:00Z'

/** 2020-01-02T00:00:00Z → 20200102000000Z, as `openssl ca -startdate` takes it. */
const asn1Time = (iso: string) => iso.replace(/[-:T]/g, '')

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
}

/**
 * Another identity under `ca`'s root (each `identity init` makes its own CA,
 * all named alike, so a peer needs one CA for both ends): a P-256 leaf signed
 * with openssl by ca-key.pem, SPIFFE URI SAN `spiffe://td/ns/ns/sa/sa`.
 * `expired`: valid for one day in 2020 only (until EXPIRED_ON); `notYetValid`:
 * for one day from NOT_VALID_BEFORE only.
 */
export function issueIdentity(
  t: TestLike,
  ca: Identity,
  td: string,
  sa: string,
  o: { ns?: string; expired?: boolean; notYetValid?: boolean } = {},
): Identity {
  const ns = o.ns ?? 'home'
  const id = `spiffe://${td}/ns/${ns}/sa/${sa}`
  const dir = tempDir(t, `ugate-id-${sa}-`)
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'key.pem'])
  openssl(dir, ['req', '-new', '-key', 'key.pem', '-subj', `/O=${td}`, '-out', 'leaf.csr'])
  writeFileSync(
    join(dir, 'leaf.ext'),
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' +
      `extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:${id}\n`,
  )
  const caKey = join(ca.dir, 'ca-key.pem')
  const dates = o.expired ? [EXPIRED_FROM, EXPIRED_ON] : o.notYetValid ? [NOT_VALID_BEFORE, NOT_VALID_UNTIL] : null
  if (dates) {
    // x509 -req (openssl 3.0) cannot choose a certificate's dates; `openssl ca` can.
    writeFileSync(join(dir, 'index.txt'), '')
    writeFileSync(join(dir, 'serial'), '1000\n')
    writeFileSync(
      join(dir, 'ca.cnf'),
      '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\n[p]\nO=optional\n',
    )
    openssl(
      dir,
      ['ca', '-batch', '-config', 'ca.cnf', '-cert', ca.root, '-keyfile', caKey, '-in', 'leaf.csr'].concat([
        '-out',
        'cert-chain.pem',
        '-notext',
        '-startdate',
        asn1Time(dates[0]!),
        '-enddate',
        asn1Time(dates[1]!),
        '-extfile',
        'leaf.ext',
      ]),
    )
  } else {
    openssl(
      dir,
      ['x509', '-req', '-in', 'leaf.csr', '-CA', ca.root, '-CAkey', caKey, '-set_serial', String(Date.now())].concat([
        '-days',
        '2',
        '-extfile',
        'leaf.ext',
        '-out',
        'cert-chain.pem',
      ]),
    )
  }
  writeFileSync(join(dir, 'root-cert.pem'), ca.rootPem)
  return readIdentity(dir, id)
}

// ---- the Rust peer ------------------------------------------------------------

/** One JSON line the Rust server printed. */
export interface PeerEvent {
  event: string
  [k: string]: unknown
}

export interface RustServer {
  port: number
  events: PeerEvent[]
  /** Resolves with the first event matching `pred` (now or later). */
  next(pred: (e: PeerEvent) => boolean, ms?: number): Promise<PeerEvent>
}

/** Start `ztunnel-peer server` on 127.0.0.1:0; killed on teardown. */
export function startRustServer(
  t: TestLike,
  o: { id: Identity; roots: string; trustDomain: string; allow?: string[]; pingMs?: number },
): Promise<RustServer> {
  requirePeer()
  const args = ['server', '--listen', '127.0.0.1:0', '--cert', o.id.cert, '--key', o.id.key, '--roots', o.roots]
  args.push('--trust-domain', o.trustDomain)
  for (const a of o.allow ?? []) args.push('--allow', a)
  if (o.pingMs) args.push('--ping-ms', String(o.pingMs))
  const p = spawn(peerBin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => p.kill())
  const events: PeerEvent[] = []
  const waiters: { pred: (e: PeerEvent) => boolean; done: (e: PeerEvent) => void }[] = []
  let partial = ''
  let stderr = ''
  p.stderr.on('data', (d: Buffer) => (stderr += d))
  const srv: RustServer = {
    port: 0,
    events,
    next: (pred, ms = WAIT_MS) =>
      new Promise((res, rej) => {
        const hit = events.find(pred)
        if (hit) return res(hit)
        const timer = setTimeout(() => rej(new Error(`no such ztunnel-peer event in ${ms} ms`)), ms)
        waiters.push({ pred, done: (e) => (clearTimeout(timer), res(e)) })
      }),
  }
  return new Promise((res, rej) => {
    p.once('exit', (code) => rej(new Error(`ztunnel-peer server exited (${code}): ${stderr}`)))
    p.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n')
      partial = lines.pop()!
      for (const l of lines) {
        const e = JSON.parse(l) as PeerEvent
        events.push(e)
        for (const w of waiters.splice(0)) w.pred(e) ? w.done(e) : waiters.push(w)
        if (e.event === 'listening') {
          srv.port = Number(String(e.addr).split(':').pop())
          res(srv)
        }
      }
    })
  })
}

export interface RustClientResult {
  code: number | null
  /** The client's one JSON object (or {error, stage} on a refused handshake). */
  out: {
    streams?: number
    ok?: number
    version?: string
    cipher?: string
    alpn?: string
    error?: string
    stage?: string
    results?: { status: number; sent: number; received: number; match: boolean; sha256: string; error: string | null }[]
  }
  stderr: string
}

/** Run `ztunnel-peer client` to completion. */
export function runRustClient(o: {
  id: Identity
  roots: string
  peer: string
  expectSan: string
  authority: string
  streams?: number
  bytes?: number
  /** Stop reading once all bytes came back (a server that keeps half-close to itself). */
  untilEchoed?: boolean
}): Promise<RustClientResult> {
  requirePeer()
  const args = ['client', '--peer', o.peer, '--cert', o.id.cert, '--key', o.id.key, '--roots', o.roots]
  args.push('--expect-san', o.expectSan, '--authority', o.authority)
  args.push('--streams', String(o.streams ?? 1), '--bytes', String(o.bytes ?? 0))
  if (o.untilEchoed) args.push('--until-echoed', '1')
  return new Promise((res) => {
    const p = spawn(peerBin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => (out += d))
    p.stderr.on('data', (d: Buffer) => (stderr += d))
    p.on('close', (code) => {
      let parsed: RustClientResult['out'] = {}
      try {
        parsed = JSON.parse(out) as RustClientResult['out']
      } catch {
        parsed = { error: `unparsable output: ${out}` }
      }
      res({ code, out: parsed, stderr })
    })
  })
}

/** The Rust peer's payload for stream i (xorshift64, low byte), to hash on this side. */
export function peerPayload(i: number, n: number): Buffer {
  const mask = (1n << 64n) - 1n
  let x = (0x9e3779b97f4a7c15n ^ ((BigInt(i + 1) * 0x2545f4914f6cdd1dn) & mask)) & mask
  const b = Buffer.alloc(n)
  for (let k = 0; k < n; k++) {
    x ^= (x << 13n) & mask
    x ^= x >> 7n
    x ^= (x << 17n) & mask
    b[k] = Number(x & 0xffn)
  }
  return b
}

// ---- a ztunnel-like server on Node's http2 --------------------------------------

export interface SeenStream {
  method: string
  authority: string
  status: number
  peer: string
  baggage?: string
  forwarded?: string
  traceparent?: string
}

export interface NodeHboneServer {
  port: number
  streams: SeenStream[]
  /** Handshakes refused by the trust-domain check. */
  refused: string[]
  /** SNI of each accepted connection (false: none sent). */
  sni: (string | false)[]
  pingAcks: number
}

/** ztunnel's inbound TLS: 1.3 AES-GCM only, ALPN h2, a client certificate verified against `roots`. */
function ztunnelServerTls(id: Identity, roots: string): tls.TlsOptions {
  return {
    key: id.keyPem,
    cert: id.certPem,
    ca: readFileSync(roots, 'utf8'),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: ZTUNNEL_CIPHERS,
    ALPNProtocols: ['h2'],
  }
}

/** The URI SANs of a peer certificate as Node shows them. */
export function uriSans(sock: TLSSocket): string[] {
  const alt = sock.getPeerCertificate()?.subjectaltname ?? ''
  return alt
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4))
}

/**
 * Node's http2 as ztunnel's inbound: TLS 1.3 AES-GCM only, ALPN h2, client
 * certificate verified against `roots` and in `trustDomain`, ztunnel's
 * windows, PING every `pingMs`; CONNECT ip:port → dial and relay with
 * half-close; 400 non-CONNECT or bad authority, 401 identity not in `allow`
 * (when given), 503 dial failure. Listens on `host`:`port` (default
 * 127.0.0.1, any port); bench/hbone-load.ts runs it as the bench's Node peer.
 */
export async function startNodeHboneServer(
  t: TestLike,
  o: {
    id: Identity
    roots: string
    trustDomain: string
    allow?: string[]
    pingMs?: number
    host?: string
    port?: number
  },
): Promise<NodeHboneServer> {
  const st: NodeHboneServer = { port: 0, streams: [], refused: [], sni: [], pingAcks: 0 }
  const server = http2.createSecureServer({ ...ztunnelServerTls(o.id, o.roots), settings: ZTUNNEL_SETTINGS })
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (s) => {
    const sock = s.socket as TLSSocket
    const id = uriSans(sock).find((u) => u.startsWith('spiffe://')) ?? ''
    if (!id.startsWith(`spiffe://${o.trustDomain}/`)) {
      st.refused.push(id)
      s.destroy()
      return
    }
    st.sni.push(sock.servername ?? false)
    sessions.add(s)
    s.setLocalWindowSize(ZTUNNEL_CONN_WINDOW)
    const timer = setInterval(() => s.ping((err) => err || st.pingAcks++), o.pingMs ?? 10_000)
    s.on('close', () => (clearInterval(timer), sessions.delete(s)))
    s.on('error', () => {})
    s.on('stream', (stream, headers) => {
      stream.on('error', () => {})
      const h = (n: string) => (typeof headers[n] === 'string' ? (headers[n] as string) : undefined)
      const method = h(':method') ?? ''
      const authority = h(':authority') ?? ''
      const seen: SeenStream = {
        method,
        authority,
        status: 0,
        peer: id,
        baggage: h('baggage'),
        forwarded: h('forwarded'),
        traceparent: h('traceparent'),
      }
      st.streams.push(seen)
      const answer = (status: number) => {
        seen.status = status
        stream.respond({ ':status': status }, { endStream: true })
      }
      const m = /^(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:.]+\]):(\d+)$/i.exec(authority)
      if (method !== 'CONNECT' || !m) return answer(400)
      if (o.allow && !o.allow.includes(id)) return answer(401)
      const up = net.connect({ host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]), allowHalfOpen: true })
      up.once('error', () => (seen.status ? stream.close(http2.constants.NGHTTP2_CANCEL) : answer(503)))
      up.once('connect', () => {
        seen.status = 200
        stream.respond({ ':status': 200 })
        stream.pipe(up)
        up.pipe(stream)
        stream.on('aborted', () => up.resetAndDestroy())
      })
    })
  })
  server.on('tlsClientError', () => {})
  st.port = await listenLoopback(t, server, sessions, o)
  return st
}

/**
 * Listen on `at` (default 127.0.0.1, any port; resolves with the port); on
 * teardown destroy what is in `live`, then close.
 */
function listenLoopback(
  t: TestLike,
  server: net.Server,
  live: Set<{ destroy(): unknown }>,
  at: { host?: string; port?: number } = {},
): Promise<number> {
  return new Promise((res) => {
    server.listen(at.port ?? 0, at.host ?? '127.0.0.1', () => {
      t.teardown(
        () =>
          new Promise<void>((done) => {
            for (const s of live) s.destroy()
            server.close(() => done())
          }),
      )
      res((server.address() as net.AddressInfo).port)
    })
  })
}

/**
 * Node's http2 as ztunnel's outbound: client certificate, no SNI (IP
 * literal), TLS 1.3 AES-GCM, ALPN h2, the peer's URI SAN pinned, ztunnel's
 * windows. Resolves once connected; rejects on a refused handshake.
 */
export function connectNodeHbone(o: {
  port: number
  /** The peer's address (an IP literal: no SNI is sent); default 127.0.0.1. */
  host?: string
  id: Identity
  roots: string
  expectSan: string
  maxVersion?: 'TLSv1.2' | 'TLSv1.3'
  /** Send no client certificate. */
  anonymous?: boolean
}): Promise<http2.ClientHttp2Session> {
  return new Promise((res, rej) => {
    const host = o.host ?? '127.0.0.1'
    const s = http2.connect(`https://${host.includes(':') ? `[${host}]` : host}:${o.port}`, {
      ...(o.anonymous ? {} : { key: o.id.keyPem, cert: o.id.certPem }),
      ca: readFileSync(o.roots, 'utf8'),
      minVersion: o.maxVersion ?? 'TLSv1.3',
      maxVersion: o.maxVersion ?? 'TLSv1.3',
      ciphers: ZTUNNEL_CIPHERS,
      ALPNProtocols: ['h2'],
      // ENABLE_PUSH is a client's setting: h2 takes it from a server as an error.
      settings: { ...ZTUNNEL_SETTINGS, enablePush: false },
      checkServerIdentity: (_host, cert) =>
        cert.subjectaltname?.split(', ').includes(`URI:${o.expectSan}`)
          ? undefined
          : new Error(`peer identity ${cert.subjectaltname} is not ${o.expectSan}`),
    })
    s.once('error', rej)
    s.once('close', () => rej(new Error('session closed')))
    // A refused client certificate shows after the client's side of the TLS
    // 1.3 handshake, as an alert the session does not report: the socket does.
    s.socket.once('error', rej)
    s.once('remoteSettings', () => {
      s.setLocalWindowSize(ZTUNNEL_CONN_WINDOW)
      res(s)
    })
  })
}

/** Headers as ztunnel's outbound sends them (mesh-notes.md). */
export function ztunnelHeaders(src: string, i: number): http2.OutgoingHttpHeaders {
  return {
    baggage:
      'k8s.cluster.name=interop,k8s.namespace.name=home,k8s.deployment.name=node-peer,service.name=node-peer,service.version=1',
    forwarded: `for="${src}"`,
    traceparent: `00-${'0af7651916cd43dd8448eb211c80319c'}-${(0xb7ad6b7169203331n + BigInt(i)).toString(16).padStart(16, '0')}-01`,
  }
}

// ---- an HTTP/2 server built by hand (frames written here) ------------------------

/** RFC 9113 frame types and flags used below. */
const F = { DATA: 0, HEADERS: 1, SETTINGS: 4, PING: 6, WINDOW_UPDATE: 8, ACK: 1, END_STREAM: 1, END_HEADERS: 4 }
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

function h2Frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

function windowUpdate(stream: number, n: number): Buffer {
  const p = Buffer.alloc(4)
  p.writeUInt32BE(n)
  return h2Frame(F.WINDOW_UPDATE, 0, stream, p)
}

/** PINGs a hand-written HTTP/2 end received, and a wait for their count. */
export interface PingCount {
  /** PINGs received, over all connections. */
  pings: number
  /** Resolves once `n` PINGs were received in all. */
  pinged(n: number): Promise<void>
}

function pingCount(): PingCount & { add(): void } {
  const waiters: { n: number; done: () => void }[] = []
  const c = {
    pings: 0,
    pinged: (n: number) => new Promise<void>((done) => (c.pings >= n ? done() : waiters.push({ n, done }))),
    add() {
      c.pings++
      for (const w of waiters.splice(0)) c.pings >= w.n ? w.done() : waiters.push(w)
    },
  }
  return c
}

/**
 * One end of a hand-written HTTP/2 connection on `sock`: sends an empty
 * SETTINGS (after the client preface when `client`), checks the client
 * preface when not, ACKs the peer's SETTINGS, counts PINGs in `pings` and
 * ACKs them only when `ackPing` — without, it is a peer that never answers
 * PING. Every other frame goes to `onFrame`.
 */
function handH2(
  sock: TLSSocket,
  o: { client: boolean; ackPing: boolean; pings: { add(): void } },
  onFrame: (type: number, flags: number, stream: number, payload: Buffer) => void = () => {},
): void {
  sock.write(Buffer.concat([o.client ? PREFACE : Buffer.alloc(0), h2Frame(F.SETTINGS, 0, 0)]))
  let buf = Buffer.alloc(0)
  let preface = o.client
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    if (!preface) {
      if (buf.length < PREFACE.length) return
      if (!buf.subarray(0, PREFACE.length).equals(PREFACE)) return sock.destroy()
      preface = true
      buf = buf.subarray(PREFACE.length)
    }
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const len = buf.readUIntBE(0, 3)
      const [type, flags, stream] = [buf[3]!, buf[4]!, buf.readUInt32BE(5) & 0x7fffffff]
      const payload = buf.subarray(9, 9 + len)
      buf = buf.subarray(9 + len)
      if (type === F.SETTINGS && !(flags & F.ACK)) sock.write(h2Frame(F.SETTINGS, F.ACK, 0))
      else if (type === F.PING && !(flags & F.ACK)) {
        o.pings.add()
        if (o.ackPing) sock.write(h2Frame(F.PING, F.ACK, 0, payload))
      } else onFrame(type, flags, stream, payload)
    }
  })
}

export interface HandH2Server extends PingCount {
  port: number
  /** TLS connections accepted (each a new HTTP/2 connection). */
  connections: number
}

/**
 * A minimal HBONE server on node:tls with HTTP/2 frames built by hand and
 * ztunnel's TLS (ztunnelServerTls). It answers every HEADERS (a CONNECT)
 * with `:status 200` (HPACK static index 8), echoes DATA on its stream
 * (END_STREAM included) and gives the windows back; PINGs as handH2 says.
 */
export async function startHandH2Server(
  t: TestLike,
  o: { id: Identity; roots: string; ackPing: boolean },
): Promise<HandH2Server> {
  const pings = pingCount()
  const st: HandH2Server = {
    port: 0,
    connections: 0,
    get pings() {
      return pings.pings
    },
    pinged: pings.pinged,
  }
  const socks = new Set<TLSSocket>()
  const server = tls.createServer(ztunnelServerTls(o.id, o.roots), (sock) => {
    st.connections++
    socks.add(sock)
    sock.on('close', () => socks.delete(sock))
    sock.on('error', () => {})
    handH2(sock, { client: false, ackPing: o.ackPing, pings }, (type, flags, stream, payload) => {
      if (type === F.HEADERS) sock.write(h2Frame(F.HEADERS, F.END_HEADERS, stream, Buffer.from([0x88])))
      if (type === F.DATA) {
        sock.write(h2Frame(F.DATA, flags & F.END_STREAM, stream, payload))
        if (payload.length > 0)
          sock.write(Buffer.concat([windowUpdate(0, payload.length), windowUpdate(stream, payload.length)]))
      }
    })
  })
  server.on('tlsClientError', () => {})
  st.port = await listenLoopback(t, server, socks)
  return st
}

export interface HandReverseClient extends PingCount {
  sock: TLSSocket
  /** Resolves when the public gate closed the tunnel. */
  closed: Promise<void>
}

/**
 * A gate behind NAT written by hand: dials ugate's hbone listener on
 * 127.0.0.1:port with ALPN ugate-rev (ztunnel's client TLS, `id`'s
 * certificate) and takes HTTP/2's server role on it, as a reverse tunnel's
 * dialing side does; it serves no stream, only holds the tunnel. PINGs as
 * handH2 says. Resolves once the TLS handshake is done.
 */
export function connectHandReverse(o: {
  port: number
  id: Identity
  roots: string
  ackPing: boolean
}): Promise<HandReverseClient> {
  return new Promise((res, rej) => {
    const pings = pingCount()
    const sock = tls.connect({
      host: '127.0.0.1',
      port: o.port,
      key: o.id.keyPem,
      cert: o.id.certPem,
      ca: readFileSync(o.roots, 'utf8'),
      minVersion: 'TLSv1.3',
      ciphers: ZTUNNEL_CIPHERS,
      ALPNProtocols: ['ugate-rev'],
      checkServerIdentity: () => undefined,
    })
    const closed = new Promise<void>((done) => sock.once('close', () => done()))
    sock.once('error', rej)
    sock.once('secureConnect', () => {
      if (sock.alpnProtocol !== 'ugate-rev') return rej(new Error(`ALPN ${String(sock.alpnProtocol)}, not ugate-rev`))
      sock.removeListener('error', rej)
      sock.on('error', () => {})
      handH2(sock, { client: false, ackPing: o.ackPing, pings })
      res({
        sock,
        closed,
        get pings() {
          return pings.pings
        },
        pinged: pings.pinged,
      })
    })
  })
}
