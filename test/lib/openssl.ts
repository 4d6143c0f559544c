// openssl s_server / s_client as negative-case TLS peers for the HBONE
// interop tests (issue 12 §3): a server or client limited to one protocol
// version, with a given ALPN, with or without a client certificate. Bad
// certificates (other trust domain, expired) come from issueIdentity in
// hbone.ts.

import { spawn } from 'node:child_process'
import { requireCommand } from './http.js'
import type { Identity } from './hbone.js'
import { refusedPort } from './servers.js'
import { WAIT_MS } from './ugate.js'
import type { TestLike } from './ugate.js'

export interface TlsOpts {
  /** Only this protocol version. */
  tls?: '1.2' | '1.3'
  /** ALPN to offer (client) or accept (server); none when absent. */
  alpn?: string
  /** TLS 1.3 suites to offer or accept, as -ciphersuites takes them (default: openssl's). */
  ciphersuites?: string
}

export interface OpensslServer {
  port: number
  /** What s_server printed so far (ALPN chosen, client certificate, errors). */
  out: () => string
}

const version = (v?: '1.2' | '1.3') => (v ? [v === '1.2' ? '-tls1_2' : '-tls1_3'] : [])
const suites = (o: TlsOpts) => (o.ciphersuites ? ['-ciphersuites', o.ciphersuites] : [])

/**
 * openssl s_server on 127.0.0.1 with `id`'s certificate; `requireClientCert`
 * makes it demand one verified against `id`'s root (-Verify); `reverse`
 * answers each line reversed (-rev). Its stdin stays open: s_server stops at
 * end of input.
 */
export async function opensslServer(
  t: TestLike,
  id: Identity,
  o: TlsOpts & { requireClientCert?: boolean; reverse?: boolean } = {},
): Promise<OpensslServer> {
  requireCommand('openssl', 'openssl')
  const port = await refusedPort()
  const args = ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', id.cert, '-key', id.key, '-CAfile', id.root]
  args.push(...version(o.tls), ...suites(o))
  if (o.reverse) args.push('-rev')
  if (o.alpn) args.push('-alpn', o.alpn)
  if (o.requireClientCert) args.push('-Verify', '1')
  const p = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => p.kill())
  let out = ''
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`openssl s_server did not start: ${out}`)), WAIT_MS)
    p.once('exit', (code) => (clearTimeout(timer), rej(new Error(`openssl s_server exited (${code}): ${out}`))))
    const on = (d: Buffer) => {
      out += d
      if (/^ACCEPT$/m.test(out)) (clearTimeout(timer), res())
    }
    p.stdout.on('data', on)
    p.stderr.on('data', on)
  })
  return { port, out: () => out }
}

export interface OpensslClientResult {
  code: number | null
  /** "TLSv1.2" / "TLSv1.3" when the handshake completed. */
  protocol?: string
  alpn?: string
  output: string
}

/**
 * openssl s_client, no SNI. Stdin closed: handshake, then close. With
 * `untilClosed`, stdin stays open and s_client runs until the server closes
 * the connection: it then has read (and printed) the server's alert, which
 * in TLS 1.3 comes after the client's side of the handshake is done (a
 * refused client certificate). Killed after WAIT_MS.
 */
export function opensslClient(
  port: number,
  o: TlsOpts & { id?: Identity; root?: string; untilClosed?: boolean } = {},
): Promise<OpensslClientResult> {
  requireCommand('openssl', 'openssl')
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-noservername', ...version(o.tls), ...suites(o)]
  if (o.alpn) args.push('-alpn', o.alpn)
  if (o.id) args.push('-cert', o.id.cert, '-key', o.id.key)
  if (o.root ?? o.id) args.push('-CAfile', o.root ?? o.id!.root)
  return new Promise((res) => {
    const p = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    if (!o.untilClosed) p.stdin.end()
    const timer = setTimeout(() => p.kill(), WAIT_MS)
    let output = ''
    p.stdout.on('data', (d: Buffer) => (output += d))
    p.stderr.on('data', (d: Buffer) => (output += d))
    p.on('close', (code) => {
      clearTimeout(timer)
      res({
        code,
        protocol: /^New, (TLSv1\.[23]),/m.exec(output)?.[1],
        alpn: /^ALPN protocol: (\S+)/m.exec(output)?.[1],
        output,
      })
    })
  })
}
