// Chaining through an upstream proxy: after the TCP connect to the upstream,
// ask it (SOCKS5, RFC 1928/1929, or HTTP CONNECT) for a tunnel to the
// destination. Bytes the upstream sent after its reply belong to the tunnel:
// they are returned and become the relay's first bytes toward the client.

import type { Cancel } from '../core/cancel.js'
import type { ProxyUpstreamConfig as UpstreamConfig } from '../core/config.js'
import { base64Encode, hexByte, latin1Encode, utf8Encode } from '../core/bytes.js'
import { parseResponseHead } from '../core/http-proxy.js'
import {
  SOCKS5_CMD,
  SOCKS5_METHOD,
  encodeSocks5Connect,
  encodeSocks5Greeting,
  encodeSocks5UserPass,
  parseSocks5ServerChoice,
  parseSocks5ServerReply,
  parseSocks5UserPassReply,
} from '../core/socks.js'
import { DialError } from './dial.js'
import { EofError, HandshakeStream } from './stream.js'

const REPLY_LIMIT = 16384

/** Negotiate a tunnel to host:port on `fd` (connected to u.server). */
export async function openTunnel(
  u: UpstreamConfig,
  fd: number,
  host: string,
  port: number,
  cancel: Cancel,
): Promise<Uint8Array> {
  const s = new HandshakeStream(fd, cancel)
  try {
    if (u.type === 'socks5') await socks5(u, s, host, port)
    else await httpConnect(u, s, host, port)
  } catch (e) {
    if (e instanceof EofError)
      throw new DialError('upstream-error', `${u.name} closed the connection during the handshake`)
    throw e
  }
  return s.takeRest()
}

const fail = (u: UpstreamConfig, why: string): never => {
  throw new DialError('upstream-error', `${u.name}: ${why}`)
}

/**
 * SOCKS5 UDP ASSOCIATE on `fd` (connected to u.server): the upstream's UDP
 * relay address. The association lives as long as `fd` stays open. A relay
 * announced as 0.0.0.0 or :: is at the server's own address.
 */
export async function openUdpAssociate(
  u: UpstreamConfig,
  fd: number,
  cancel: Cancel,
): Promise<{ host: string; port: number }> {
  const s = new HandshakeStream(fd, cancel)
  let relay: { host: string; port: number }
  try {
    relay = await socks5(u, s, '0.0.0.0', 0, SOCKS5_CMD.UDP_ASSOCIATE)
  } catch (e) {
    if (e instanceof EofError)
      throw new DialError('upstream-error', `${u.name} closed the connection during the handshake`)
    throw e
  }
  if (relay.port === 0) return fail(u, 'UDP ASSOCIATE answered port 0')
  if (relay.host === '0.0.0.0' || relay.host === '::') return { host: u.server.host, port: relay.port }
  return relay
}

async function socks5(
  u: UpstreamConfig,
  s: HandshakeStream,
  host: string,
  port: number,
  cmd: number = SOCKS5_CMD.CONNECT,
): Promise<{ host: string; port: number }> {
  const withAuth = u.username !== undefined
  await s.writeAll(encodeSocks5Greeting(withAuth))
  const choice = await s.read(parseSocks5ServerChoice, REPLY_LIMIT)
  if (choice.status !== 'ok') return fail(u, choice.error)
  if (choice.method === SOCKS5_METHOD.USER_PASS && withAuth) {
    await s.writeAll(encodeSocks5UserPass(u.username!, u.password!))
    const auth = await s.read(parseSocks5UserPassReply, REPLY_LIMIT)
    if (auth.status !== 'ok') return fail(u, auth.error)
    if (!auth.success) return fail(u, 'username/password rejected')
  } else if (choice.method !== SOCKS5_METHOD.NO_AUTH) {
    return fail(u, `no acceptable authentication method (server chose 0x${choice.method.toString(16)})`)
  }
  await s.writeAll(encodeSocks5Connect(host, port, cmd))
  const reply = await s.read(parseSocks5ServerReply, REPLY_LIMIT)
  if (reply.status !== 'ok') return fail(u, reply.error)
  if (reply.reply !== 0) throw new DialError(`upstream-refused:${hexByte(reply.reply)}`)
  return { host: reply.host, port: reply.port }
}

async function httpConnect(u: UpstreamConfig, s: HandshakeStream, host: string, port: number): Promise<void> {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`
  let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`
  if (u.username !== undefined) {
    head += `Proxy-Authorization: Basic ${base64Encode(utf8Encode(`${u.username}:${u.password}`))}\r\n`
  }
  await s.writeAll(latin1Encode(head + '\r\n'))
  const res = await s.read((b) => parseResponseHead(b, REPLY_LIMIT), REPLY_LIMIT)
  if (res.status !== 'ok') return fail(u, res.error)
  if (res.statusCode < 200 || res.statusCode > 299) throw new DialError(`upstream-refused:${res.statusCode}`)
}
