// A standalone test mesh for the HBONE tests: one CA (`ugate identity init`
// for node "a"), more nodes signed with its key by openssl, every node's
// root-cert.pem that CA. Node's http2 speaks to ugate as ztunnel would: TLS
// 1.3 only, AES-GCM only, ALPN h2, client certificates, no SNI, the peer's
// SPIFFE id checked, ztunnel's window and frame settings, a PING every 10 s.

import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { PeerCertificate, TLSSocket, TlsOptions } from 'node:tls'
import { type TestLike, runUgate } from './ugate.js'
import { tempDir } from './temp.js'

export const TRUST_DOMAIN = 'td.test'

/** ztunnel's HTTP/2 settings (src/proxy/h2). */
export const ZTUNNEL_SETTINGS: http2.Settings = {
  initialWindowSize: 4 << 20,
  maxFrameSize: 1 << 20,
  enablePush: false,
}
const ZTUNNEL_CONN_WINDOW = 16 << 20
const CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256'

export interface MeshServer {
  listen(): Promise<number>
  /** TLS sessions accepted so far. */
  sessions(): number
  /** GOAWAY on every session (the peer's pooled connection then closes). */
  goaway(): void
  /** A PING on every live session now: whether each was ACKed. */
  ping(): Promise<boolean[]>
  /** Each session's peer: the SETTINGS it sent, and the connection window it gives us now. */
  peers(): { settings: http2.Settings | null; window: number }[]
}

export interface Mesh {
  dir(node: string): string
  spiffe(node: string): string
  /** The config's `mesh` section for node. */
  config(node: string): { mesh: { identityDir: string; trustDomain: string } }
  /** An admin socket path for node. */
  socket(node: string): string
  /**
   * Node's http2 client (as node) to an HBONE port on 127.0.0.1; with `peer`,
   * the server's SPIFFE id must be exactly peer's (pinned, as ztunnel's
   * client pins its destination's), else any id of the trust domain.
   */
  connect(node: string, port: number, peer?: string): http2.ClientHttp2Session
  /** Node's TLS options as node: its key and chain, the roots, TLS 1.3 only, ALPN h2. */
  tlsOptions(node: string): TlsOptions
  /** Node's http2 server (as node), like ztunnel's inbound: client certificates of the trust domain. */
  server(node: string, onStream: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => void): MeshServer
}

function uriSan(cert: PeerCertificate): string {
  return /URI:([^,\s]+)/.exec(cert.subjectaltname ?? '')?.[1] ?? ''
}

/** `domains`: nodes whose SPIFFE id is in another trust domain (same CA), e.g. `{ x: 'other.test' }`. */
export function mesh(t: TestLike, domains: Record<string, string> = {}): Mesh {
  const root = tempDir(t, 'ugate-mesh-')
  const made = new Set<string>()
  const dir = (node: string) => join(root, node)
  const spiffe = (node: string) => `spiffe://${domains[node] ?? TRUST_DOMAIN}/ns/test/sa/${node}`
  const ca = dir('a')

  const ensure = (node: string) => {
    if (made.has(node)) return dir(node)
    if (!made.has('a')) {
      mkdirSync(ca)
      const r = runUgate([
        'identity',
        'init',
        '--dir',
        ca,
        '--trust-domain',
        TRUST_DOMAIN,
        '--namespace',
        'test',
        '--sa',
        'a',
      ])
      if (r.code !== 0) throw new Error(`identity init: ${r.stderr.join('\n')}`)
      made.add('a')
      if (node === 'a') return ca
    }
    const d = dir(node)
    mkdirSync(d)
    const key = join(d, 'key.pem')
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key])
    execFileSync('openssl', [
      'req',
      '-new',
      '-key',
      key,
      '-subj',
      `/O=ugate test/CN=${node}`,
      '-out',
      join(d, 'csr.pem'),
    ])
    writeFileSync(
      join(d, 'ext.cnf'),
      `subjectAltName=URI:${spiffe(node)}\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`,
    )
    execFileSync('openssl', [
      'x509',
      '-req',
      '-in',
      join(d, 'csr.pem'),
      '-CA',
      join(ca, 'root-cert.pem'),
      '-CAkey',
      join(ca, 'ca-key.pem'),
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      join(d, 'ext.cnf'),
      '-out',
      join(d, 'cert-chain.pem'),
    ])
    writeFileSync(join(d, 'root-cert.pem'), readFileSync(join(ca, 'root-cert.pem')))
    made.add(node)
    return d
  }

  const tlsOptions = (node: string) => {
    const d = ensure(node)
    return {
      key: readFileSync(join(d, 'key.pem')),
      cert: readFileSync(join(d, 'cert-chain.pem')),
      ca: readFileSync(join(d, 'root-cert.pem')),
      minVersion: 'TLSv1.3' as const,
      maxVersion: 'TLSv1.3' as const,
      ciphersuites: CIPHERS,
      ALPNProtocols: ['h2'],
    }
  }

  return {
    dir: ensure,
    spiffe,
    tlsOptions,
    config: (node) => ({ mesh: { identityDir: ensure(node), trustDomain: TRUST_DOMAIN } }),
    socket: (node) => join(root, `${node}.sock`),
    connect(node, port, peer) {
      const s = http2.connect(`https://127.0.0.1:${port}`, {
        ...tlsOptions(node),
        servername: '', // no SNI, as ztunnel
        // The peer's name is its SPIFFE id, not a host name.
        checkServerIdentity: (_host, cert) =>
          (peer === undefined ? uriSan(cert).startsWith(`spiffe://${TRUST_DOMAIN}/`) : uriSan(cert) === spiffe(peer))
            ? undefined
            : new Error(`peer id ${uriSan(cert)}`),
        settings: ZTUNNEL_SETTINGS,
      })
      s.once('connect', () => s.setLocalWindowSize(ZTUNNEL_CONN_WINDOW))
      s.on('error', () => {})
      return s
    },
    server(node, onStream) {
      let sessions = 0
      const live = new Set<http2.ServerHttp2Session>()
      const all: { session: http2.ServerHttp2Session; settings: http2.Settings | null }[] = []
      const srv = http2.createSecureServer({
        ...tlsOptions(node),
        requestCert: true,
        rejectUnauthorized: true,
        settings: { ...ZTUNNEL_SETTINGS, maxConcurrentStreams: 200, maxHeaderListSize: 64 << 10 },
      })
      srv.on('session', (s) => {
        const peer = (s.socket as TLSSocket).getPeerCertificate()
        // ztunnel's inbound: the client's trust domain must be ours.
        if (!uriSan(peer).startsWith(`spiffe://${TRUST_DOMAIN}/`)) return s.destroy()
        sessions++
        live.add(s)
        const seen = { session: s, settings: null as http2.Settings | null }
        all.push(seen)
        s.once('remoteSettings', (st) => (seen.settings = st))
        // ztunnel PINGs every 10 s (an unanswered one would end the session).
        const keepAlive = setInterval(() => s.ping(() => {}), 10_000)
        keepAlive.unref()
        s.on('close', () => clearInterval(keepAlive))
        s.on('close', () => live.delete(s))
        s.setLocalWindowSize(ZTUNNEL_CONN_WINDOW)
      })
      srv.on('stream', onStream)
      t.teardown(() => srv.close())
      return {
        listen: () =>
          new Promise<number>((ok) => srv.listen(0, '127.0.0.1', () => ok((srv.address() as AddressInfo).port))),
        sessions: () => sessions,
        goaway: () => {
          for (const s of live) s.close()
        },
        ping: () => Promise.all([...live].map((s) => new Promise<boolean>((ok) => s.ping((err) => ok(err === null))))),
        peers: () => all.map((p) => ({ settings: p.settings, window: p.session.state.remoteWindowSize ?? 0 })),
      }
    },
  }
}
